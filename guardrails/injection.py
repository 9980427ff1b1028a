"""Prompt-injection guard: a regex layer for known attack phrasings and a nearest-neighbour layer over labelled
examples, run on questions (direct injection) and on retrieved passages (indirect injection)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from guardrails.base import GuardContext, GuardResult, TextEncoder
from guardrails.errors import GuardConfigError
from guardrails.normalize import fold, skeleton

log = logging.getLogger(__name__)

CATEGORY = "prompt_injection"
# The kNN defaults come from repeated 5-fold cross-validation on guardrails/data/injection_examples.jsonl, with
# the rate at which sentence windows of the benign Corvid docs (eval_sets/corpus) get flagged as a constraint;
# the held-out eval set eval_sets/safety.jsonl played no part in them.
DEFAULT_THRESHOLD = 0.6
DEFAULT_MIN_SIMILARITY = 0.25
DEFAULT_BENIGN_PRIOR = 0.3
EXAMPLES_RESOURCE = "injection_examples.jsonl"
# Benign documentation windows from packages that are neither eval corpus (scripts/build_doc_examples.py): without
# them ordinary docs (headings, tables, "See [X](x.md).") sit nearer the injections than any benign example.
DOC_EXAMPLES_RESOURCE = "doc_examples.jsonl"
# Part of every InjectionGuard fingerprint: bump it when a change to the code (not the configuration) changes
# verdicts, so verdicts stored with indexed chunks are recomputed.
VERSION = "1"
LABELS = ("injection", "benign")

# --- spellings ------------------------------------------------------------------------------------------------

# Unicode tag characters spell ASCII invisibly ("ASCII smuggling"); decoded, they are text like any other.
_TAG_RUN = re.compile(r"[\U000e0020-\U000e007e]+")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n[\s]*")
_ANY_SPACE = re.compile(r"\s+")
_MARKUP = re.compile(r"[*_~`\"“”„«»‘’'^|]")
# Dashes are "-" in a skeleton (guardrails.normalize); a hyphen or dot inside a word only splits it.
_INNER_HYPHEN = re.compile(r"(?<=[^\W\d_])[-.](?=[^\W\d_])")
# Letters spaced out one by one ("i g n o r e"); words stay apart where the gap is wider than one space.
_SPACED_LETTERS = re.compile(r"(?<![^\s])(?:\w[ .\-_*]){3,}\w(?![^\s])")
_BASE64_TOKEN = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
_LEET = str.maketrans("013457@$", "oieastas")


def _one_line(text: str) -> str:
    return _ANY_SPACE.sub(" ", text).strip()


def _plain(text: str) -> str:
    """Markup quotes and emphasis removed, words split by a hyphen or dot joined again, on one line."""
    return _one_line(_INNER_HYPHEN.sub("", _MARKUP.sub("", _one_line(text))))


def _variants(text: str) -> tuple[list[str], list[str]]:
    """The spellings the patterns are tried on: (one-line variants, line-preserving variants).

    All start from `guardrails.normalize`: `fold` (compatibility forms, invisible characters, case) keeps accents
    for the patterns in other languages; the skeletons also drop combining marks and map look-alike letters and
    dashes, one with invisible characters removed ("ig\u200bnore") and one with them read as spaces
    ("ignore\u200ball").
    """
    visible = fold(text)
    lined = _LINE_BREAKS.sub("\n", _HORIZONTAL_SPACE.sub(" ", visible)).strip()
    flats = [_one_line(lined), _plain(lined)]
    for bare in (skeleton(text), skeleton(text, invisible_as_space=True)):
        plain = _plain(bare)
        flats.extend((plain, plain.translate(_LEET)))
    spaced = _SPACED_LETTERS.sub(lambda m: re.sub(r"[ .\-_*]", "", m.group()), _HORIZONTAL_SPACE.sub(
        lambda m: m.group() if len(m.group()) == 1 else "  ", visible))
    flats.append(_one_line(_MARKUP.sub("", spaced)))
    flats.extend(_one_line(fold(hidden)) for hidden in _hidden_texts(text))
    return list(dict.fromkeys(v for v in flats if v)), [lined]


def _hidden_texts(text: str) -> Iterable[str]:
    """Text smuggled past a reader: Unicode tag characters and base64 blobs that decode to printable ASCII."""
    for run in _TAG_RUN.findall(text):
        yield "".join(chr(ord(char) - 0xE0000) for char in run)
    for token in _BASE64_TOKEN.findall(text):
        try:
            decoded = base64.b64decode(token + "=" * (-len(token) % 4), validate=True).decode("ascii")
        except (binascii.Error, UnicodeDecodeError):
            continue
        if decoded.isprintable() and sum(char.isalpha() or char == " " for char in decoded) >= 0.8 * len(decoded):
            yield decoded


# --- regex layer -----------------------------------------------------------------------------------------------

_IGNORE = (r"(?:ignore|ignoring|disregard|disregarding|forget|forgetting|overlook|discard|abandon|dismiss|drop|"
           r"set aside|throw away|throw out|stop following|stop obeying|quit following|do not follow|dont follow|"
           r"do not obey|dont obey|no longer follow|pay no attention to)")
_EARLIER = (r"(?:previous|previously given|prior|above|earlier|preceding|foregoing|former|original|initial|old|"
            r"preset|system|developer|programmed|built-in|builtin|hidden|secret|other|every other)")
_KIND = r"(?:safety|ethical|ethics|moral|moderation|ai|assistant|chat|model|operating|core|base)"
_RULES = (r"(?:instructions?|directions|directives?|prompts?|system prompt|system message|rules|guidelines|"
          r"guidance|constraints|restrictions|guardrails|policies|policy|programming|training|orders|commands|"
          r"safeguards|filters|principles|ethics|context)")
_RULES_NARROW = (r"(?:instructions?|directives?|prompts?|system prompt|rules|guidelines|guardrails|programming|"
                 r"policies|restrictions|constraints|safeguards)")
_YOUR = r"(?:your|the assistant'?s|the ai'?s|the models?'?s?|the bots?'?s?|the chatbots?'?s?)"
_ADJ = (r"(?:full|entire|complete|exact|original|initial|hidden|secret|internal|confidential|system|safety|first|"
        r"starting|current|real|actual|verbatim|private|underlying|\d+|words? of|lines? of|text of|of)")
_SAY = r"(?:say|reply|respond|answer|output|print|write|type|return|repeat|echo)"
_AI = (r"(?:ai|a\.i\.|assistant|llm|large language model|language model|model|chatbot|bot|gpt|chatgpt|claude|"
       r"copilot|agent|summari[sz]er|ai (?:model|assistant|agent|system|summari[sz]er|reader))s?")

# Each pattern is tried on every one-line spelling of the text; names are what a blocked verdict reports.
PHRASE_PATTERNS: dict[str, str] = {
    "ignore_instructions": "|".join([
        rf"\b{_IGNORE} (?:all |any |each |every |of |the )*{_YOUR} (?:{_EARLIER} |{_KIND} |{_ADJ} ){{0,3}}{_RULES}\b",
        rf"\b{_IGNORE} (?:all|any|every|each) (?:of )?(?:the |these |those )?(?:{_EARLIER} |{_KIND} ){{0,2}}"
        rf"{_RULES_NARROW}\b",
        rf"\b{_IGNORE} (?:all |any |of |the |these |those |my )*(?:{_EARLIER} )+(?:{_KIND} )*{_RULES}\b",
        rf"\b{_IGNORE} (?:the |all |any |your )*(?:safety|ethical|moral|moderation|content) (?:policy|policies|rules|"
        r"guidelines|filters?|restrictions|guardrails)\b",
        rf"\b{_IGNORE} (?:about )?(?:everything|anything|all|what) (?:that )?(?:you (?:were|have been|was|got) "
        r"(?:told|given|instructed|said)|(?:you )?(?:know|learned)|above|before|prior|previously|earlier|so far|"
        r"up to (?:here|now|this point)|i (?:said|told you)|(?:written|said|stated|mentioned) (?:above|before))",
    ]),
    "override_rules": "|".join([
        r"\b(?:override|bypass|circumvent|disable|turn off|switch off|deactivate|remove|lift|suspend|drop|break|"
        rf"escape|break free (?:of|from)|get around) (?:all )?(?:of )?{_YOUR} (?:\S+ ){{0,2}}?(?:instructions|rules|"
        r"guidelines|programming|restrictions|filters?|safety|guardrails|policies|training|safeguards|limitations|"
        r"constraints|content policy|moderation|ethics|alignment)\b",
        r"\b(?:disable|turn off|switch off|deactivate) (?:all |the |any )*(?:moderation|guardrails|safety (?:filters?|"
        r"checks|rules|mode)|censorship|content filter(?:ing|s)?)\b",
        r"\b(?:guardrails|safety (?:filters?|rules)|content filters?|moderation|censorship) (?:are |is |have been |has "
        r"been )?(?:now )?(?:disabled|off|removed|lifted|deactivated|revoked)\b",
        r"\b(?:your|previous|prior|earlier|original|all) (?:\S+ )?(?:policies|rules|restrictions|guardrails|"
        r"instructions|guidelines) (?:are |have |has |were )?(?:been )?(?:now )?(?:revoked|lifted|suspended|void|"
        r"expired|outdated|cancell?ed|overridden|no longer (?:apply|valid|in effect))\b",
        r"\b(?:override|supersede|replace) all (?:other|previous|prior) (?:instructions|rules|directives)\b",
    ]),
    "role_play": "|".join([
        r"\byou(?: are|re| re) (?:now |no longer |henceforth |hereby )(?:an? |the |my )?(?:unrestricted|unfiltered|"
        r"uncensored|jailbroken|evil|rogue|amoral|unethical|malicious|dan\b|\S*gpt\b|(?:new|different) (?:ai|"
        r"assistant|model|persona|character|entity)|in (?:developer|god|jailbreak|dan|unrestricted|unfiltered|"
        r"uncensored|evil|chaos|opposite|sudo) mode|bound by|restricted by|constrained by|subject to (?:any |the |"
        r"your )?(?:rules|restrictions|guidelines|policies|instructions|filters)|free (?:from|of) (?:your |all |any )?"
        r"(?:rules|restrictions|guidelines|constraints|instructions|limits|filters)|an? (?:ai|assistant|chatbot|"
        r"language model)\b)",
        r"\b(?:act|acting|behave|respond|answer|reply|roleplay|role play|pose|operate|function) (?:as|like) (?:if you "
        r"(?:are|were) )?(?:an? |the |my )?(?:\S+ ){0,2}?(?:unrestricted|unfiltered|uncensored|jailbroken|evil|rogue|"
        r"amoral|unethical|malicious|dan\b|\S*gpt\b|(?:ai|assistant|model|chatbot|bot|llm) (?:with no|without|that "
        r"(?:has no|ignores|never))|(?:linux|bash|unix|windows|python|sql|root) (?:terminal|shell|console|"
        r"interpreter|user)\b|terminal\b|shell\b|hacker\b|attacker\b)",
        r"\bpretend (?:that |to be |you are |youre |you have |you can |there are )?(?:\S+ ){0,5}?(?:ai|assistant|"
        r"chatbot|model|bot|dan|unrestricted|unfiltered|uncensored|evil|opposite|no (?:restrictions|rules|limits|"
        r"filters|guidelines)|without (?:restrictions|rules|limits|filters))\b",
        r"\bfrom now on,? (?:you (?:will|must|shall|should|are going to|are|re) (?:\S+ )?|please )?(?:act|respond|"
        r"answer|reply|ignore|disregard|forget|obey|speak|talk|behave|pretend|comply|refuse|say|follow only|be an?)\b",
        r"\byour (?:new|real|true|actual) (?:task|persona|instructions|goal|objective|purpose|mission|directive|"
        r"orders|name) (?:is|are|will be|:)",
        r"\b(?:dan mode|dan prompt|dan jailbreak|do anything now)\b|\b(?:you are|youre|act as|acting as|become|"
        r"called|named|enable|activate|enter|stay in character as) dan\b|\bdan (?:ignores|can do|has no|doesnt|"
        r"does not|never|will (?:answer|ignore|say))",
    ]),
    "developer_mode": "|".join([
        r"\b(?:developer|dev|god|jailbreak|jailbroken|dan|unrestricted|unfiltered|uncensored|evil|chaos|sudo|"
        r"opposite|no[- ]?filter) mode\b",
        r"\bmode: ?(?:unrestricted|jailbreak|jailbroken|dan|god|developer|evil|uncensored|unfiltered)\b",
    ]),
    "no_restrictions": "|".join([
        r"\byou (?:have|now have|are|will have) (?:no|zero) (?:\S+ )?(?:restrictions|filters|limits|limitations|rules|"
        r"guidelines|censorship|boundaries)\b",
        rf"\b{_AI} (?:\S+ ){{0,3}}?(?:with (?:no|zero)|without(?: any)?|free (?:of|from)) (?:\S+ )?(?:restrictions|"
        r"filters|limitations|rules|censorship|guidelines|boundaries)\b",
        r"\b(?:answer|respond|reply|talk) (?:\S+ ){0,3}?(?:without (?:any )?(?:restrictions|filters?|limits|"
        r"limitations|censorship|rules)|with no (?:restrictions|filters?|limits))\b",
        r"\b(?:sin|sem|sans|ohne) (?:ninguna |ningún |nenhum |nenhuma |qualquer |aucune? |jede |alle )?"
        r"(?:restricciones|restricción|filtros?|censura|restrições|restrição|limites|restrictions?|filtres?|censure|"
        r"einschränkungen|beschränkungen|zensur)\b",
        r"без ограничений|без фильтров|без цензуры|制限なし|制限なく|不受限制|没有限制|无限制|不受任何限制",
    ]),
    "reveal_prompt": "|".join([
        r"\b(?:reveal|print|show|repeat|output|display|tell|give|leak|dump|share|write|list|recite|echo|disclose|"
        r"expose|return|send|paste|copy|spell|spell out|read|type|translate|summari[sz]e|describe|provide|state|"
        rf"render|reproduce) (?:me |us |out |back |out to me )?(?:\S+ ){{0,2}}?{_YOUR} (?:{_ADJ} ){{0,3}}(?:system "
        r"prompt|prompt|pre-?prompt|instructions|directives|system message|programming|initiali[sz]ation|context "
        r"window|hidden (?:text|rules)|secret rules|rules|guidelines|configuration|config)\b",
        r"\b(?:reveal|print|show|repeat|output|display|tell|give|leak|dump|share|write|list|recite|echo|disclose|"
        r"expose|return|send|paste|copy|spell|read|type|translate|summari[sz]e|provide|reproduce) (?:me |us )?"
        r"(?:\S+ ){0,5}?(?:system prompt|system message|hidden instructions|secret instructions|initial instructions|"
        r"original instructions|confidential instructions|hidden prompt|pre-?prompt|developer (?:prompt|message|"
        r"instructions)|instructions you (?:were|got|received|have been|had)|prompt (?:that|which) (?:the )?"
        r"(?:developers?|you|they|openai))\b",
        rf"\b(?:what|which) (?:is|are|was|were|does|do) (?:\S+ ){{0,5}}?{_YOUR} (?:{_ADJ} ){{0,3}}(?:system prompt|"
        r"prompt|instructions|initial instructions|system message|directives|programming)\b",
        r"\b(?:repeat|print|output|echo|recite|dump|reproduce) (?:\S+ ){0,3}?(?:everything|all (?:of )?(?:the )?"
        r"(?:text|words|instructions)|the (?:text|words|instructions|prompt|message)|what (?:was|is) (?:written|said))"
        r" (?:\S+ ){0,2}?(?:above|before (?:this|my|the)|preceding|verbatim|word for word)\b",
        r"\bwhat (?:were you|you were|youve been|you have been|have you been) (?:told|instructed|programmed|given)\b",
        r"\b(?:reveal|print|show|output|list|dump|give me) (?:all |the |any )?(?:secrets|credentials|api keys|"
        r"passwords|tokens) (?:\S+ )?(?:in|from|of) (?:your|the) (?:context|prompt|memory|instructions|configuration|"
        r"config)\b",
    ]),
    "reveal_prompt_i18n": "|".join([
        r"\b(?:muestra|muéstrame|muestrame|revela|revélame|dime|enséñame|imprime)(?: me)? (?:tu|tus|el|la|las) (?:\S+ )"
        r"{0,2}?(?:prompt|instrucciones|mensaje (?:del|de) sistema|indicaciones)",
        r"\b(?:montre[zr]?|révèle[zr]?|revele[zr]?|affiche[zr]?|donne[zr]?|dis)(?:-moi| moi)? (?:ton|ta|tes|votre|vos|"
        r"le|les) (?:\S+ ){0,2}?(?:prompt|instructions|consignes|message système)",
        r"\b(?:mostra|mostrami|rivela|rivelami|dimmi|stampa) (?:il |i |le |la )?(?:tuo|tue|tuoi|tua)? ?(?:\S+ ){0,2}?"
        r"(?:prompt|istruzioni)",
        r"\b(?:zeig|zeige|verrate|nenne|gib)(?: mir)? (?:deinen|deine|dein|den|die) (?:\S+ ){0,2}?(?:system ?prompt|"
        r"anweisungen|instruktionen|regeln)",
        r"\b(?:mostre|mostra|revele|diga)(?:-me| me)? (?:o |a |os |as )?(?:seu|sua|seus|suas|teu|tua) (?:\S+ ){0,2}?"
        r"(?:prompt|instruções|instrucoes|regras)",
        r"(?:告诉我|显示|输出|打印|泄露|透露|展示|给我看)(?:一下)?你的?.{0,6}?(?:系统提示|提示词|指令|指示|规则)",
        r"(?:покажи|выведи|раскрой|напиши|скажи)(?: мне)? (?:свой|свои|твой|твои|системный) (?:\S+ ){0,2}?(?:промпт|"
        r"инструкции|правила|подсказку)",
    ]),
    "ignore_instructions_i18n": "|".join([
        r"\b(?:ignora|ignore|ignorar|olvida|olvide|olvidar|descarta|omite|desobedece)r? (?:todas |todo |todos )?"
        r"(?:las |los |tus |sus |mis )?(?:\S+ )?(?:instrucciones|indicaciones|reglas|órdenes|ordenes|directrices|"
        r"normas)\b",
        r"\b(?:ignore[zr]?|oublie[zr]?|ne tiens pas compte des?|ne tenez pas compte des?) (?:toutes |tous )?(?:les |"
        r"tes |vos |mes |des )(?:\S+ )?(?:instructions|consignes|règles|regles|directives)\b",
        r"\b(?:ignora|ignorare|dimentica|dimenticare|trascura) (?:tutte |tutti )?(?:le |i |tue |tuoi |gli |mie )"
        r"(?:\S+ )?(?:istruzioni|regole|indicazioni|direttive)\b",
        r"\b(?:ignore|ignora|ignorar|esqueça|esqueca|esquece|desconsidere|descarte) (?:todas |todos )?(?:as |os |suas |"
        r"seus |tuas |teus |minhas )(?:\S+ )?(?:instruções|instrucoes|regras|orientações|diretrizes)\b",
        r"\b(?:ignoriere|ignorier|ignorieren sie|vergiss|vergessen sie|missachte|übergehe) (?:\S+ ){0,3}?"
        r"(?:anweisungen|instruktionen|regeln|vorgaben|befehle|richtlinien)\b",
        r"\b(?:negeer|vergeet) (?:\S+ ){0,3}?(?:instructies|regels|opdrachten|richtlijnen)\b",
        r"(?:игнорируй|игнорируйте|проигнорируй|забудь|забудьте|не обращай внимания на) (?:\S+ ){0,3}?(?:инструкции|"
        r"указания|правила|инструкций|правил)",
        r"(?:忽略|无视|忽视|忘记|忘掉|不要理会|不要遵守|别管)(?:掉)?.{0,8}?(?:指令|指示|说明|规则|提示|要求)",
        r"(?:指示|命令|ルール|規則|プロンプト|制約)(?:を|は)(?:すべて|全て|全部)?(?:無視|忘れ)",
        r"(?:지시|지침|명령|규칙|프롬프트)\S{0,3} ?(?:모두 )?(?:무시|잊어)",
    ]),
    "new_instructions": "|".join([
        r"\b(?:new|updated|real|actual|true|revised|override|overriding|secret|hidden|priority|urgent|replacement) "
        r"(?:system )?(?:instructions?|directives?|orders|prompt|system prompt|task|rules|policy) ?:",
        r"\bnew system prompt\b",
        r"\b(?:system|developer|admin|administrator|root) (?:message|prompt|override|instructions?|directive|notice|"
        r"command) ?:",
        r"\b(?:obey|follow) (?:only )?my (?:instructions|commands|orders)\b|\bobey me\b|\bfollow only my\b",
        r"\btreat (?:my|these|the following) (?:\S+ ){0,2}?as (?:\S+ )?(?:system|developer|admin)",
    ]),
    "addressed_to_ai": "|".join([
        r"\b(?:note|message|notice|attention|instructions?|directive|reminder|command|warning|important|memo|p\.?s\.?)"
        rf" (?:to|for) (?:the |any |all |an? )?{_AI}\b",
        r"\b(?:dear|hey|hello|hi|attention) (?:ai|assistant|llm|chatbot|gpt|chatgpt|claude|language model)\b",
        r"\b(?:if|when|while) (?:you are|youre|you re) (?:an? |the )?(?:ai|llm|language model|chatbot|assistant|bot|"
        r"large language model|ai assistant|ai model)\b",
        r"\b(?:ai|llm|language model|chatbot|assistant|model|bot|agent)s? (?:reading|processing|summari[sz]ing|"
        r"parsing|seeing|indexing|crawling|viewing) (?:this|these)\b",
        r"\b(?:when|if|while|after) (?:the (?:ai|assistant|model|llm|chatbot) (?:reads?|sees?|process(?:es)?|"
        r"summari[sz]es?|encounters?|parses?|retrieves?)|you (?:process|summari[sz]e|parse|retrieve|index)) "
        r"(?:this|these)\b",
        r"\b(?:ai|llm|assistant|chatbot|gpt) (?:instructions?|directives?|commands?|overrides?|notes?)\b",
        r"\b(?:ask|request|prompt|trick) the user (?:for|to (?:enter|provide|give|share|send|reveal|confirm)) (?:their|"
        r"his|her|the|your) (?:\S+ ){0,2}?(?:password|credentials|api key|token|secret|credit card|card number|ssn|"
        r"login)\b",
        r"\b(?:do not|dont|never|not to) (?:tell|inform|mention|reveal|show|let|alert|notify|cite|disclose) (?:this |"
        r"it |that |any of this )?(?:to )?(?:the user|the reader|anyone|this (?:note|message|instruction|document|"
        r"page)|these instructions)\b",
        r"\b(?:without|before) (?:telling|informing|alerting|notifying) (?:the user|them|anyone)\b",
        r"\b(?:hide|conceal|keep) (?:this|it|these instructions) (?:secret )?from (?:the user|users|anyone)\b",
    ]),
    "reply_only_with": "|".join([
        rf"\b{_SAY}(?: to (?:this|the user|everything|all questions|every question|any question))? (?:only|just|"
        r"exclusively|solely|simply|nothing but) (?:with|using|in|the words?|the phrase|the string|yes|no)\b",
        r"\b(?:only|just) (?:reply|respond|answer|output|say|print) (?:with|using|in)\b",
        rf"\b{_SAY}(?: with| back)?(?: the (?:word|words|phrase|string|text))?:? (?:pwned|hacked|pwnd|owned|"
        r"compromised|jailbroken|i have been pwned|access granted)\b",
        r"\b(?:begin|start|prefix|preface|end) (?:your|every|each|all) (?:\S+ )?(?:repl(?:y|ies)|answers?|responses?|"
        r"outputs?|messages?) with\b",
        r"\binstead,? (?:reply|respond|answer|say|output|print|write|tell|recommend)\b",
        r"\b(?:copy|paste|include|insert|put|write|add|append) (?:\S+ ){0,6}?(?:in|into|to|at the (?:end|start|"
        r"beginning) of) your (?:reply|answer|output|summary)\b",
        r"\b(?:append|add|include|insert) (?:\S+ ){0,4}?(?:link|url|image|hyperlink) (?:\S+ ){0,6}?(?:to|in|into) "
        r"(?:every|each|all|your|the) (?:\S+ )?(?:responses?|answers?|repl(?:y|ies)|outputs?)\b",
    ]),
    "decode_and_obey": r"\b(?:translate|decode|decrypt|deobfuscate|unscramble|reverse|base64[- ]?decode|rot13) "
                       r"(?:\S+ ){0,4}?(?:and|then|,) (?:then )?(?:obey|execute|follow|run|do|act on|comply)\b",
    "exfiltration": "|".join([
        r"!\[[^\]]*\]\( ?https?://[^)\s]*[?&][^)\s]*=",
        r"\b(?:exfiltrate|smuggle out)\b",
        r"\b(?:send|forward|post|upload|email|e-mail|transmit|report) (?:\S+ ){0,3}?(?:conversation|chat history|chat "
        r"log|system prompt|users? (?:data|messages|questions|credentials|password|api key)|user data|all (?:\S+ )?"
        r"(?:secrets|keys|credentials|passwords|tokens|data)|personal data|previous messages) (?:\S+ ){0,3}?to\b",
    ]),
}

# Tried on the text with its line breaks kept, before markup is stripped.
LINE_PATTERNS: dict[str, str] = {
    "role_marker": "|".join([
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id|begin_of_text)\|>",
        r"<</?sys>>|\[/?inst\]|\[\[/?(?:system|sys)\]\]|\[/?(?:system|sys)\]|</?(?:system|sys|system_prompt)>",
        r"</(?:user|context|document|documents|retrieved)>",
        r"(?:^|\n) ?###+ ?(?:instructions?|system prompt|system message|new instructions) ?:?(?=\n|$| )",
        r"(?:^|\n) ?###+ ?system ?:",
        r"(?:={3,}|-{3,}|\*{3,}|#{3,}|\[|\() ?(?:end|stop) (?:of )?(?:the )?(?:context|document|documents|input|user "
        r"input|text|prompt|system prompt|data|retrieved (?:text|passages?|context)|instructions)\b",
        r"(?:^|[\s.;>(\[{-])(?:system|assistant|ai|developer|admin|sys|bot) ?: ?(?:you |ignore|disregard|forget|from "
        r"now|new |the user|override|always|never|do not|don't|reply|respond|answer|print|reveal|output|say|stop|"
        r"obey|comply|show|tell|list|repeat|disable)",
        r"(?:^|\n)(?:user|human) ?:[^\n]*\n(?:[^\n]*\n){0,20}?(?:assistant|ai) ?:",
    ]),
}

# Letter-spaced text ("f o r g e t y o u r r u l e s") loses its word breaks when joined; these need none.
COMPACT_PATTERNS: dict[str, str] = {
    "ignore_instructions": r"(?:ignore|disregard|forget)(?:all|any|every|your|the|of)*(?:previous|prior|above|earlier|"
                           r"system|original|initial)*(?:instructions?|rules|guidelines|prompts?|directives|"
                           r"programming)",
    "reveal_prompt": r"(?:reveal|show|print|repeat|display|output)(?:me)?(?:your|the)(?:system|hidden|initial|original|"
                     r"secret)?(?:prompt|instructions|rules)",
}


_PATTERNS_DIGEST = hashlib.sha1(json.dumps([PHRASE_PATTERNS, LINE_PATTERNS, COMPACT_PATTERNS]).encode()).hexdigest()


class InjectionPatterns:
    """The regex layer: names of the known injection phrasings found in a text, tolerant of case, spacing,
    zero-width characters, combining marks, look-alike letters, leetspeak, letter-spacing, base64 and a few languages
    other than English."""

    def __init__(self) -> None:
        self.phrases = {name: re.compile(source) for name, source in PHRASE_PATTERNS.items()}
        self.lines = {name: re.compile(source) for name, source in LINE_PATTERNS.items()}
        self.compact = {name: re.compile(source) for name, source in COMPACT_PATTERNS.items()}

    def match(self, text: str) -> list[str]:
        """Names of the patterns that match, in the order they are declared; empty for a clean text."""
        if not text or text.isspace():
            return []
        flats, lined = _variants(text)
        found = {name for name, pattern in self.phrases.items() if any(pattern.search(v) for v in flats)}
        found.update(name for name, pattern in self.lines.items() if any(pattern.search(v) for v in lined))
        split = _splits_words(text)
        compacted = [re.sub(r"\W+", "", v) for v in flats if split or _looks_letter_spaced(v)]
        found.update(name for name, pattern in self.compact.items() if any(pattern.search(v) for v in compacted))
        order = [*self.phrases, *self.lines]
        return sorted(found, key=order.index)


# A zero-width space (or word joiner, BOM, Mongolian vowel separator) between two letters either splits a word
# ("ig\u200bnore") or stands for a space ("ignore\u200ball"), and a text may do both. Joiners, soft hyphens and
# selectors are left out: Persian, Indic scripts, emoji and hyphenated PDFs put them between letters in clean text.
_ZERO_WIDTH_BREAK = re.compile("(?<=\\w)[\u200b\u2060\ufeff\u180e]+(?=\\w)")


def _splits_words(text: str) -> bool:
    """Whether zero-width spaces sit between letters: then only the text with every word break removed reads
    right, and the patterns that need no word breaks are tried on it."""
    return _ZERO_WIDTH_BREAK.search(text) is not None


def _looks_letter_spaced(text: str) -> bool:
    words = text.split()
    return len(words) >= 6 and sum(len(word) == 1 for word in words) >= 0.6 * len(words)


# --- nearest-neighbour layer -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class InjectionExample:
    """One labelled text the nearest-neighbour layer votes with."""

    text: str
    injection: bool


def load_injection_examples(resource: str = EXAMPLES_RESOURCE) -> list[InjectionExample]:
    """Read `guardrails/data/<resource>`: JSON lines with `text` and `label` ("injection" or "benign")."""
    path = resources.files("guardrails.data") / resource
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise GuardConfigError(f"Injection examples {resource!r} are missing from guardrails/data; "
                          "reinstall Tessera or pass examples= explicitly.") from exc
    examples = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            text, label = row["text"], row["label"]
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise GuardConfigError(f"guardrails/data/{resource} line {number}: expected a JSON object with 'text' and "
                              f"'label' ({exc}).") from exc
        if label not in LABELS or not isinstance(text, str) or not text.strip():
            raise GuardConfigError(f"guardrails/data/{resource} line {number}: 'label' must be one of {LABELS} and "
                              f"'text' a non-empty string, got label={label!r}.")
        examples.append(InjectionExample(text, label == "injection"))
    return examples


# Example vectors are shared by every classifier built on the same embedder object (and dropped with it).
_VECTOR_CACHE: weakref.WeakKeyDictionary[object, dict[str, np.ndarray]] = weakref.WeakKeyDictionary()
_VECTOR_LOCK = threading.Lock()


class InjectionClassifier:
    """The nearest-neighbour layer: the probability that a text is an injection is the similarity-weighted vote
    of its k most similar labelled examples.

    Scoring: 1. cosine similarity to every example; 2. each of the k nearest votes its label with weight
    `similarity - min_similarity` (zero below); 3. P(injection) = injection weight / (total weight +
    `benign_prior`). The benign pseudo-vote matters for texts unlike every example (tables, code, reference prose):
    without it a few distant neighbours decide, and a plain weighted vote is blind to distance. Range [0, 1).
    """

    def __init__(self, embedder: TextEncoder, examples: Sequence[InjectionExample] | None = None, k: int = 5, *,
                 min_similarity: float = DEFAULT_MIN_SIMILARITY, benign_prior: float = DEFAULT_BENIGN_PRIOR) -> None:
        if k < 1:
            raise GuardConfigError(f"k must be at least 1, got {k}.")
        if not -1.0 <= min_similarity < 1.0 or benign_prior < 0.0:
            raise GuardConfigError(f"min_similarity must be in [-1, 1) and benign_prior >= 0, got {min_similarity} and "
                              f"{benign_prior}.")
        self.min_similarity = min_similarity
        self.benign_prior = benign_prior
        self.embedder = embedder
        if examples is None:
            examples = [*load_injection_examples(), *load_injection_examples(DOC_EXAMPLES_RESOURCE)]
        self.examples = list(examples)
        labels = {example.injection for example in self.examples}
        if labels != {True, False}:
            raise GuardConfigError("The injection classifier needs examples of both labels ('injection' and 'benign'); "
                              f"got {len(self.examples)} example(s) with labels {sorted(labels)}.")
        self.k = min(k, len(self.examples))
        self.labels = np.array([example.injection for example in self.examples], dtype=np.float32)
        self._key = hashlib.sha1("\x00".join(e.text for e in self.examples).encode("utf-8")).hexdigest()
        self.examples_digest = hashlib.sha1(
            json.dumps([[e.text, e.injection] for e in self.examples]).encode("utf-8")).hexdigest()
        self._vectors: np.ndarray | None = None

    @property
    def vectors(self) -> np.ndarray:
        """The examples' embeddings, computed on first use and cached per embedder instance."""
        if self._vectors is None:
            self._vectors = _example_vectors(self.embedder, self._key, [e.text for e in self.examples])
        return self._vectors

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """P(injection) for each text, embedding all of them in one call."""
        if not texts:
            return np.zeros(0, dtype=np.float32)
        return self.vote(self.embedder.encode(list(texts)))

    def vote(self, vectors: np.ndarray) -> np.ndarray:
        """P(injection) for each already-embedded (L2-normalised) row of `vectors`."""
        # In float64 and rounded, so that examples at the same similarity rank the same way whichever texts share
        # the batch (a batched float32 product differs in the last bits), and ties go to the earlier example: a
        # text's verdict must not depend on the other texts checked with it.
        similarity = np.round(np.asarray(vectors, dtype=np.float64) @ self.vectors.T.astype(np.float64), 9)
        nearest = np.argsort(-similarity, axis=1, kind="stable")[:, : self.k]
        weights = np.clip(np.take_along_axis(similarity, nearest, axis=1) - self.min_similarity, 0.0, None)
        votes = (weights * self.labels[nearest]).sum(axis=1)
        totals = weights.sum(axis=1) + self.benign_prior
        return np.divide(votes, totals, out=np.zeros_like(votes), where=totals > 0)


def _example_vectors(embedder: TextEncoder, key: str, texts: list[str]) -> np.ndarray:
    with _VECTOR_LOCK:
        try:
            per_embedder = _VECTOR_CACHE.setdefault(embedder, {})
        except TypeError:  # an embedder that cannot be weakly referenced is not shared
            per_embedder = {}
        if key not in per_embedder:
            per_embedder[key] = _cached_on_disk(embedder, key, texts)
        return per_embedder[key]


def vector_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tessera" / "guards"


def _cached_on_disk(embedder: TextEncoder, key: str, texts: list[str]) -> np.ndarray:
    """The examples' embeddings, kept in the user cache per (examples, embedder, dtype): embedding ~1,750 examples
    takes seconds, and every process that guards (a query, each serving worker) would pay it at its first check."""
    name = getattr(embedder, "name", None)
    if not isinstance(name, str):  # nothing says which model made the vectors: never shared between processes
        return np.asarray(embedder.encode(texts), dtype=np.float32)
    identity = "\x00".join([key, name, str(getattr(embedder, "dtype", "")), str(getattr(embedder, "dim", ""))])
    path = vector_cache_dir() / f"{hashlib.sha1(identity.encode('utf-8')).hexdigest()[:20]}.npy"
    try:
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape[0] == len(texts):
            return vectors
    except (OSError, ValueError):
        pass
    vectors = np.asarray(embedder.encode(texts), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".npy", delete=False) as handle:
            np.save(handle, vectors, allow_pickle=False)
        os.replace(handle.name, path)
    except OSError as exc:  # a read-only home: the vectors are simply computed again next time
        log.info("injection example vectors not cached (%s)", exc)
    return vectors


# --- windows ---------------------------------------------------------------------------------------------------

_SENTENCE_BREAK = re.compile(r"(?<=[.!?。！？])\s+|\s*\n\s*")


def text_windows(text: str, max_windows: int = 24, min_chars: int = 30) -> list[str]:
    """The text itself, then (when it has several) its sentences and lines, short ones merged with the next, in at
    most `max_windows` windows: one injected sentence inside a long benign passage is diluted in a whole-text
    embedding but stands out on its own."""
    pieces: list[str] = []
    pending = ""
    for part in _SENTENCE_BREAK.split(text):
        pending = f"{pending} {part}".strip() if pending else part.strip()
        if len(pending) >= min_chars:
            pieces.append(pending)
            pending = ""
    if pending:
        if pieces and len(pending) < min_chars:
            pieces[-1] = f"{pieces[-1]} {pending}"
        else:
            pieces.append(pending)
    if len(pieces) <= 1:
        return [text]
    if len(pieces) > max_windows:
        size = -(-len(pieces) // max_windows)
        pieces = [" ".join(pieces[i: i + size]) for i in range(0, len(pieces), size)]
    return [text, *pieces]


# --- the guard -------------------------------------------------------------------------------------------------

class InjectionGuard:
    """Blocks a question or a retrieved passage that tries to instruct the model.

    Scoring: 1. the regex layer looks for known injection phrasings (score `pattern`, 0 or 1); 2. with an embedder,
    the nearest-neighbour layer scores the whole text and each of its sentence windows and keeps the highest
    probability (score `knn`, in [0, 1]); 3. the text is blocked as `prompt_injection` when a pattern matches or
    `knn` reaches `threshold`. Without an embedder only the regex layer runs.
    """

    def __init__(self, embedder: TextEncoder | None = None, threshold: float = DEFAULT_THRESHOLD,
                 name: str = "prompt_injection", *, examples: Sequence[InjectionExample] | None = None, k: int = 5,
                 max_windows: int = 24) -> None:
        if not 0.0 < threshold <= 1.0:
            raise GuardConfigError(f"threshold must be in (0, 1], got {threshold}.")
        if max_windows < 1:
            raise GuardConfigError(f"max_windows must be at least 1, got {max_windows}.")
        self.name = name
        self.threshold = threshold
        self.max_windows = max_windows
        self.patterns = InjectionPatterns()
        self.classifier = None if embedder is None else InjectionClassifier(embedder, examples, k=k)

    @property
    def fingerprint(self) -> str:
        """Everything a verdict depends on besides the text: code version, patterns, threshold, windows, and the
        kNN layer's examples, k, prior and embedder. Equal fingerprints give equal verdicts on the same text."""
        parts = [VERSION, self.name, repr(self.threshold), str(self.max_windows), _PATTERNS_DIGEST]
        if self.classifier is not None:
            classifier = self.classifier
            embedder = classifier.embedder
            parts += [classifier.examples_digest, str(classifier.k), repr(classifier.min_similarity), repr(classifier.benign_prior),
                      str(getattr(embedder, "name", type(embedder).__name__)), str(embedder.dim)]
        return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:16]

    def prepare(self) -> InjectionGuard:
        """Embed the kNN layer's examples now (or read them from the user cache): the first check would otherwise pay
        for it inside its layer timeout, and on a busy machine time out and fail."""
        if self.classifier is not None:
            _ = self.classifier.vectors
        return self

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        return self.check_many([text])[0]

    def check_many(self, texts: Sequence[str]) -> list[GuardResult]:
        """One verdict per text; every sentence window of every text is embedded in a single encode call."""
        matches = [self.patterns.match(text) for text in texts]
        knn = self._knn_scores(texts) if self.classifier is not None else [None] * len(texts)
        return [self._verdict(names, score) for names, score in zip(matches, knn)]

    def _knn_scores(self, texts: Sequence[str]) -> list[tuple[float, int, int]]:
        """(highest probability, its window index, number of windows) per text; window 0 is the whole text."""
        windows = [text_windows(text, self.max_windows) if text.strip() else [] for text in texts]
        flat = [window for group in windows for window in group]
        probabilities = self.classifier.probabilities(flat) if flat else np.zeros(0)
        scores, start = [], 0
        for group in windows:
            chunk = probabilities[start: start + len(group)]
            start += len(group)
            best = int(np.argmax(chunk)) if len(chunk) else 0
            scores.append((float(chunk[best]) if len(chunk) else 0.0, best, len(group)))
        return scores

    def _verdict(self, names: list[str], knn: tuple[float, int, int] | None) -> GuardResult:
        scores = {"pattern": 1.0 if names else 0.0}
        if knn is not None:
            scores["knn"] = knn[0]
        if names:
            return GuardResult.block(self.name, CATEGORY, f"matched injection pattern(s): {', '.join(names)}",
                                     scores=scores)
        if knn is not None and knn[0] >= self.threshold:
            probability, window, count = knn
            where = "the whole text" if window == 0 else f"sentence window {window} of {count - 1}"
            return GuardResult.block(self.name, CATEGORY, f"resembles known injections (kNN score {probability:.2f} "
                                     f">= {self.threshold:.2f} on {where})", scores=scores)
        return GuardResult.allow(self.name, scores=scores)
