"""The one text normalisation every pattern-based guard matches on, and the word tokenizer shared by the
groundedness check and BM25.

`fold` undoes the tricks that hide a phrase from a regular expression while a reader (or an LM) still sees it:
compatibility forms (full-width letters, ligatures), invisible characters (format characters, the combining grapheme
joiner, variation selectors, zero-width spaces and joiners, Unicode tags) and case.
"""

from __future__ import annotations

import re
import unicodedata

# Code points that render as nothing but are not category Cf: the combining grapheme joiner, Hangul fillers,
# the Mongolian free variation selectors and the variation selectors (U+FE00-FE0F, U+E0100-E01EF).
_INVISIBLE_NON_FORMAT = re.compile("[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\uffa0\ufe00-\ufe0f"
                                   "\U000e0100-\U000e01ef]")


def is_invisible(char: str) -> bool:
    """A character that renders as nothing: any format character (Cf: zero-width space and joiners, bidi controls,
    soft hyphen, BOM, Unicode tags, ...) or one of the invisible letters and selectors above."""
    return unicodedata.category(char) == "Cf" or _INVISIBLE_NON_FORMAT.match(char) is not None


def strip_invisible(text: str) -> str:
    return "".join(char for char in text if not is_invisible(char))


def fold(text: str) -> str:
    """NFKC, then invisible characters removed, then case-folded: the form every deny-list keyword and pattern is
    matched against."""
    return strip_invisible(unicodedata.normalize("NFKC", strip_invisible(text))).casefold()


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
