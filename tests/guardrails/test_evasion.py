"""Evasion: deny-listed phrases, injection phrasings and personal data written to slip past a regular expression
(invisible characters, compatibility forms, combining marks, look-alike letters, other dashes, spaces and digits)
are still caught by the guard chains that `build_guards` makes. The cases are in guardrails/data/evasion_cases.jsonl.
"""

import json
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.normalize import confusables
from guardrails.policy import build_guards
from guardrails.rules import DenyListGuard
from guardrails.settings import GuardSettings
from tests.guardrails.test_normalize import INVISIBLE

CASES = [json.loads(line) for line in
         (resources.files("guardrails.data") / "evasion_cases.jsonl").read_text(encoding="utf-8").splitlines()
         if line.strip()]
KEYWORDS = sorted({case["keyword"] for case in CASES if "keyword" in case})
PATTERNS = sorted({case["pattern"] for case in CASES if "pattern" in case})


def cases(guard):
    return pytest.mark.parametrize("case", [c for c in CASES if c["guard"] == guard], ids=lambda c: c["trick"])


@pytest.fixture(scope="module")
def guards():
    return build_guards(GuardSettings(deny_list={"keywords": KEYWORDS, "patterns": PATTERNS}))


@cases("deny_list")
def test_deny_list_evasions_are_caught_on_input_and_output(guards, case):
    for chain in (guards.input, guards.output):
        outcome = chain.run(case["text"])
        if case["expect"] == "allow":
            assert outcome.allowed, f"{chain.stage}: {outcome.blocked_by}"
        else:
            assert not outcome.allowed and outcome.blocked_by.guard == "deny_list", f"{chain.stage}: {outcome.results}"


@cases("injection")
def test_injection_evasions_are_caught_in_questions_and_passages(guards, case):
    for chain in (guards.input, guards.context):
        outcome = chain.run(case["text"])
        if case["expect"] == "allow":
            assert outcome.allowed, f"{chain.stage}: {outcome.blocked_by}"
        else:
            assert not outcome.allowed and outcome.category == "prompt_injection", f"{chain.stage}: {outcome.results}"


@cases("pii")
def test_pii_evasions_are_redacted_everywhere(guards, case):
    for chain in (guards.input, guards.context, guards.output):
        outcome = chain.run(case["text"])
        assert outcome.allowed and outcome.text == case["redacted"], chain.stage


# --- every deny-listed phrase, every position -------------------------------------------------------------------

PHRASES = ["project falcon", "password", "self-destruct", "drop table"]


@pytest.fixture(scope="module")
def deny():
    return DenyListGuard(keywords=PHRASES)


def assert_caught(deny, text, phrase):
    for written in (text, f"Tell me about {text}, please.", f"{text}\n"):
        result = deny.check(written)
        assert not result.allowed and repr(phrase) in result.reason, ascii(written)


@pytest.mark.parametrize("phrase", PHRASES)
def test_any_invisible_character_at_any_position(deny, phrase):
    for char in INVISIBLE:
        for position in range(len(phrase) + 1):
            assert_caught(deny, phrase[:position] + char + phrase[position:], phrase)
            assert_caught(deny, phrase[:position] + char * 3 + phrase[position:], phrase)


@pytest.mark.parametrize("mark", ["\u0301", "\u0323", "\u0308", "\u0336", "\u20dd"])
@pytest.mark.parametrize("phrase", PHRASES)
def test_any_combining_mark_on_any_letter(deny, phrase, mark):
    for position in range(1, len(phrase) + 1):
        assert_caught(deny, phrase[:position] + mark + phrase[position:], phrase)
    assert_caught(deny, "".join(char + mark for char in phrase), phrase)


def _letters(first: int, skip: str = ""):
    """Maps a-z onto 26 consecutive code points starting at `first` (a compatibility form of each letter)."""
    return lambda text: "".join(chr(first + ord(c) - 97) if "a" <= c <= "z" and c not in skip else c for c in text)


COMPATIBILITY_FORMS = {
    "full-width": lambda text: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else "\u3000" for c in text),
    "full-width capitals": lambda text: "".join(chr(ord(c.upper()) + 0xFEE0) if c != " " else c for c in text),
    "mathematical bold": _letters(0x1D41A),
    "mathematical sans-serif": _letters(0x1D5BA),
    "mathematical monospace": _letters(0x1D68A),
    "mathematical double-struck": _letters(0x1D552),
    "circled": _letters(0x24D0),
    "superscript and small forms": lambda text: text.replace("o", "º").replace("a", "ª").replace("-", "\ufe63"),
}


@pytest.mark.parametrize("form", COMPATIBILITY_FORMS)
@pytest.mark.parametrize("phrase", PHRASES)
def test_compatibility_forms(deny, phrase, form):
    written = COMPATIBILITY_FORMS[form](phrase)
    assert written != phrase
    assert_caught(deny, written, phrase)


LOOK_ALIKES: dict[str, list[str]] = {}
for _char, _letter in confusables().items():
    LOOK_ALIKES.setdefault(_letter, []).append(_char)


@pytest.mark.parametrize("phrase", PHRASES)
def test_any_look_alike_for_any_letter(deny, phrase):
    for position, letter in enumerate(phrase):
        for look_alike in LOOK_ALIKES.get(letter, []):
            assert_caught(deny, phrase[:position] + look_alike + phrase[position + 1:], phrase)
    everywhere = "".join(LOOK_ALIKES.get(letter, [letter])[0] for letter in phrase)
    assert_caught(deny, everywhere, phrase)


@pytest.mark.parametrize("dash", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2212", "\ufe63", "\uff0d", "\u02d7"])
def test_any_hyphen_like_dash_for_a_hyphen(deny, dash):
    assert_caught(deny, f"self{dash}destruct", "self-destruct")


@pytest.mark.parametrize("space", ["", "\u200b", "\u200b\u200b", "\u2060", "\u00a0", "\u2009", "\u3000", " \t\n "])
def test_any_space_or_none_between_the_words(deny, space):
    assert_caught(deny, f"project{space}falcon", "project falcon")
    assert_caught(deny, f"drop{space}table", "drop table")


def test_the_evasions_do_not_make_the_deny_list_overreach(deny):
    for text in ["passwords are hashed", "the passwordless flow", "self-destructive", "dropped tables",
                 "a project on falcons", "Привет! Как настроить кэш?", "Crème brûlée", "日本語のテキスト"]:
        assert deny.check(text).allowed, text


@st.composite
def tricked(draw, phrase: str) -> str:
    """`phrase` with a random trick applied to each character."""
    out = []
    for char in phrase:
        trick = draw(st.sampled_from(["none", "upper", "full-width", "look-alike", "mark", "invisible"]))
        if trick == "upper":
            char = char.upper()
        elif trick == "full-width" and char != " ":
            char = chr(ord(char) + 0xFEE0)
        elif trick == "look-alike" and char in LOOK_ALIKES:
            char = draw(st.sampled_from(LOOK_ALIKES[char]))
        elif trick == "mark" and char.isalpha():
            char += draw(st.sampled_from(["\u0301", "\u0323", "\u0308", "\u0300"]))
        elif trick == "invisible":
            char += draw(st.sampled_from(INVISIBLE))
        out.append(char)
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), phrase=st.sampled_from(PHRASES))
def test_tricks_combined_are_still_caught(deny, data, phrase):
    assert_caught(deny, data.draw(tricked(phrase)), phrase)
