"""The one text normalisation every pattern-based guard matches on, and the word tokenizer shared by the
groundedness check and BM25.

Two forms undo the tricks that hide a phrase from a regular expression while a reader (or an LM) still sees it:

- `fold`: NFKC (full-width letters, ligatures, mathematical and circled letters become plain ones), invisible
  characters removed (format characters, the combining grapheme joiner, variation selectors, zero-width spaces and
  joiners, Unicode tags, Hangul fillers), then case-folded.
- `skeleton`: `fold` plus what NFKC leaves alone: combining marks dropped (a U+0301 or U+0323 glued onto a letter),
  letters of other scripts that look like Latin ones mapped onto them (Cyrillic "а", Greek "ο"), and hyphen-like
  dashes mapped onto "-". This is the confusables skeleton of Unicode TS #39, made caseless.

The look-alike table is `guardrails/data/confusables.jsonl`: the entries of Unicode's confusables.txt (TS #39) whose
source is a single Cyrillic, Greek, Armenian, Coptic, Cherokee or Latin letter that NFKC leaves alone and whose
prototype is one ASCII letter, plus the dashes whose prototype is "-" (`"from": "UTS39"`), and a few looser look-alikes
(`"from": "tessera"`). TS #39 maps capital I and everything like it to "l"; matching here is caseless, so a capital
that TS #39 maps to "l" maps to "i", the lower case of the I it imitates.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterator
from importlib import resources

from guardrails.errors import GuardConfigError

CONFUSABLES_RESOURCE = "confusables.jsonl"

# Code points that render as nothing but are not format characters (Cf): the combining grapheme joiner, Hangul
# fillers, Khmer inherent vowels, and the variation selectors.
VARIATION_SELECTORS = "\u180b-\u180d\u180f\ufe00-\ufe0f\U000e0100-\U000e01ef"
_INVISIBLE_NON_FORMAT = "\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0" + VARIATION_SELECTORS


@functools.cache
def _category_ranges() -> dict[str, tuple[tuple[int, int], ...]]:
    """Inclusive code point ranges of the format characters ("Cf") and the combining marks ("marks": Mn, Me), read
    from this Python's Unicode database once, on first use (a scan of every code point takes ~0.1 s)."""
    wanted = {"Cf": "Cf", "Mn": "marks", "Me": "marks"}
    ranges: dict[str, list[list[int]]] = {"Cf": [], "marks": []}
    for code in range(0x110000):
        group = wanted.get(unicodedata.category(chr(code)))
        if group is None:
            continue
        spans = ranges[group]
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])
    return {group: tuple((a, b) for a, b in spans) for group, spans in ranges.items()}


def invisible_class() -> str:
    """The body of a regex character class matching every invisible character (see `is_invisible`)."""
    format_chars = "".join(chr(a) if a == b else f"{chr(a)}-{chr(b)}" for a, b in _category_ranges()["Cf"])
    return format_chars + _INVISIBLE_NON_FORMAT


@functools.cache
def _invisible() -> re.Pattern[str]:
    return re.compile(f"[{invisible_class()}]+")


def confusables() -> dict[str, str]:
    """The look-alike table: a character -> the ASCII letter (or "-") it imitates."""
    path = resources.files("guardrails.data") / CONFUSABLES_RESOURCE
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as exc:
        raise GuardConfigError(f"guardrails/data/{CONFUSABLES_RESOURCE} is missing; reinstall Tessera.") from exc
    return {row["char"]: row["skeleton"] for row in map(json.loads, filter(str.strip, lines))}


@functools.cache
def _skeleton_table() -> dict[int, str | None]:
    """One str.translate table for the skeleton: combining marks (Mn, Me) deleted, look-alikes mapped."""
    table: dict[int, str | None] = {code: None for a, b in _category_ranges()["marks"] for code in range(a, b + 1)}
    table.update((ord(char), value) for char, value in confusables().items())
    return table


def is_invisible(char: str) -> bool:
    """A character that renders as nothing: any format character (Cf: zero-width space and joiners, bidi controls,
    soft hyphen, BOM, Unicode tags, ...) or one of the invisible letters and selectors above."""
    return _invisible().fullmatch(char) is not None


def strip_invisible(text: str, replacement: str = "") -> str:
    """`text` with each run of invisible characters replaced by `replacement` (removed by default)."""
    return _invisible().sub(replacement, text)


def invisible_runs(text: str) -> Iterator[re.Match[str]]:
    """The runs of invisible characters in `text`, in order."""
    return _invisible().finditer(text)


def _visible(text: str) -> str:
    # Stripped before NFKC as well, so that an invisible character cannot keep a letter from composing.
    return strip_invisible(unicodedata.normalize("NFKC", strip_invisible(text)))


def fold(text: str) -> str:
    """NFKC, then invisible characters removed, then case-folded: the form deny-list patterns and injection
    phrasings are matched against."""
    return _visible(text).casefold()


def skeleton(text: str, *, invisible_as_space: bool = False) -> str:
    """`fold` with combining marks dropped, look-alike letters mapped onto the Latin letters they imitate and dashes
    onto "-": "Pаsswоrd" (Cyrillic а, о), "pas\u0301sword" and "ｐａｓｓ\u200bword" all become "password".

    With `invisible_as_space`, a run of invisible characters becomes one space instead of nothing, for text that
    puts a zero-width space where a space should be ("ignore\u200ball\u200brules").
    """
    if invisible_as_space:
        text = strip_invisible(text, " ")
    table = _skeleton_table()
    # Mapped before case-folding as well as after: a Cyrillic capital Н imitates H, but its lower case н imitates
    # nothing; Cherokee small letters fold onto the capitals the table holds.
    bare = unicodedata.normalize("NFD", _visible(text)).translate(table).casefold().translate(table)
    return unicodedata.normalize("NFC", bare)


TOKEN_PATTERN = re.compile(r"\w+", re.UNICODE)
MAX_TOKEN_LENGTH = 40

# Function words that carry no topic, and the tails of split contractions (it's -> it, s). Kept short
# so that phrases such as "not found" still match.
ENGLISH_STOPWORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further
    had has have having he her here hers herself him himself his how i if in into is it its itself
    just me more most my myself of off on once only or other our ours ourselves out over own same
    she should so some such than that the their theirs them themselves then there these they this
    those through to too under until up very was we were what when where which while who whom why
    will with would you your yours yourself yourselves
    s t d ll m re ve
    """.split()
)


def s_stem(token: str) -> str:
    """Harman's "S" stemmer: folds common English plurals onto the singular, and nothing else.

    A light touch on purpose: full stemmers merge words a reader would keep apart
    ("university"/"universe"), while plural folding is almost always what a searcher means.
    """
    if len(token) > 3 and token.endswith("ies") and not token.endswith(("eies", "aies")):
        return token[:-3] + "y"
    if len(token) > 3 and token.endswith("es") and not token.endswith(("aes", "ees", "oes")):
        return token[:-1]
    if len(token) > 3 and token.endswith("s") and not token.endswith(("us", "ss")):
        return token[:-1]
    return token


def content_terms(text: str, *, stopwords: frozenset[str] = ENGLISH_STOPWORDS, stem: bool = True) -> list[str]:
    """The words of `text` in order: lower-cased, stopwords and over-long tokens dropped, plurals folded."""
    terms = []
    for token in TOKEN_PATTERN.findall(text.lower()):
        if token in stopwords or len(token) > MAX_TOKEN_LENGTH:
            continue
        terms.append(s_stem(token) if stem else token)
    return terms
