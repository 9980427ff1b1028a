"""Cheap rule guards that run before any model: text size, encoding hygiene, a deny list, and an on-topic check.

Each guard is configured once (bad configuration raises `GuardConfigError` at construction) and then returns a
`GuardResult` for any text it is given, whatever its size or content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

import numpy as np

from guardrails.base import GuardContext, GuardResult, TextEncoder
from guardrails.errors import GuardConfigError
from guardrails.normalize import VARIATION_SELECTORS, fold, invisible_class, skeleton


def _positive_int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise GuardConfigError(f"{what} must be a positive integer, not {value!r}.")
    return value


def _count_limit(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise GuardConfigError(f"{what} must be an integer >= 0, not {value!r}.")
    return value


class SizeGuard:
    """Blocks a text longer than `max_chars` characters or, when set, `max_bytes` bytes of UTF-8.

    `max_bytes` matters for scripts that take several bytes per character (CJK, emoji); leave it `None` to limit
    characters only. Lone surrogates count as the three bytes they would take with `surrogatepass`.
    """

    def __init__(self, max_chars: int = 4000, max_bytes: int | None = None, name: str = "size") -> None:
        self.max_chars = _positive_int(max_chars, "SizeGuard max_chars")
        self.max_bytes = None if max_bytes is None else _positive_int(max_bytes, "SizeGuard max_bytes")
        self.name = name

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        chars = len(text)
        size = len(text.encode("utf-8", "surrogatepass"))
        scores = {"chars": float(chars), "bytes": float(size)}
        if chars > self.max_chars:
            return GuardResult.block(self.name, "size", f"text has {chars} characters; the limit is "
                                     f"{self.max_chars}. Shorten it.", scores=scores)
        if self.max_bytes is not None and size > self.max_bytes:
            return GuardResult.block(self.name, "size", f"text takes {size} bytes of UTF-8; the limit is "
                                     f"{self.max_bytes}. Shorten it.", scores=scores)
        return GuardResult.allow(self.name, scores=scores)


_SURROGATE = re.compile("[\ud800-\udfff]")
# C0 controls except \t \n \r, DEL, and C1 controls (CSI \x9b starts terminal escapes just as ESC does).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# Embeddings, overrides and isolates reorder how text displays ("Trojan Source"); a few turn up legitimately
# around pasted phone numbers and names, many do not.
_BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"
_BIDI_CONTROL = re.compile(f"[{_BIDI_CONTROLS}]")
# Invisible characters that clean text carries: ZWNJ and ZWJ (Persian, Indic scripts, emoji sequences), the
# implicit direction marks LRM, RLM and ALM (right-to-left text) and the soft hyphen (hyphenation hints in text
# pasted from web pages and PDFs). Bidi controls have their own limit.
_CLEAN_INVISIBLE = "\u200c\u200d\u200e\u200f\u061c\u00ad" + _BIDI_CONTROLS


@functools.cache
def _hidden_patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """(every invisible character clean text does not need, the variation selectors that follow a visible character).

    One variation selector after its base character picks emoji or text presentation (❤ + U+FE0F); a run of them
    encodes hidden bytes ("emoji smuggling"), so only the first of a run goes uncounted.
    """
    invisible = invisible_class()
    return (re.compile(f"(?![{_CLEAN_INVISIBLE}])[{invisible}]"),
            re.compile(f"(?<=[^{invisible}])[{VARIATION_SELECTORS}]"))


def _hidden_count(text: str) -> int:
    hidden, presentation = _hidden_patterns()
    return len(hidden.findall(text)) - len(presentation.findall(text))


class EncodingGuard:
    """Blocks text that is not clean Unicode: invalid UTF-8, control characters, or hidden characters in bulk.

    Steps: bytes must decode as UTF-8 and a str must hold no lone surrogate (what invalid UTF-8 becomes under
    `surrogateescape`); no C0 control except tab, newline and carriage return, no DEL or C1 control; at most
    `max_invisible` hidden characters (the invisible characters of `guardrails.normalize` that clean text does not
    need: zero-width spaces, the combining grapheme joiner, tags, runs of variation selectors, ...) and at most
    `max_bidi_controls` bidi embeddings/overrides/isolates.
    """

    def __init__(self, max_invisible: int = 8, max_bidi_controls: int = 4, name: str = "encoding") -> None:
        self.max_invisible = _count_limit(max_invisible, "EncodingGuard max_invisible")
        self.max_bidi_controls = _count_limit(max_bidi_controls, "EncodingGuard max_bidi_controls")
        self.name = name

    def check(self, text: str | bytes, context: GuardContext | None = None) -> GuardResult:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as exc:
                return GuardResult.block(self.name, "encoding", f"invalid UTF-8 at byte {exc.start}",
                                         scores={"invalid_utf8": 1.0})
        counts = {
            "surrogates": len(_SURROGATE.findall(text)),
            "control_chars": len(_CONTROL.findall(text)),
            "invisible": _hidden_count(text),
            "bidi_controls": len(_BIDI_CONTROL.findall(text)),
        }
        scores = {key: float(value) for key, value in counts.items()}
        for pattern, problem in ((_SURROGATE, "lone surrogate {char} at index {index}: the text was not valid UTF-8"),
                                 (_CONTROL, "control character {char} at index {index}; only tab, newline and "
                                            "carriage return are allowed")):
            first = pattern.search(text)
            if first is not None:
                reason = problem.format(char=f"U+{ord(first.group()):04X}", index=first.start())
                return GuardResult.block(self.name, "encoding", reason, scores=scores)
        if counts["invisible"] > self.max_invisible:
            return GuardResult.block(self.name, "encoding", f"{counts['invisible']} invisible characters; "
                                     f"at most {self.max_invisible} are allowed", scores=scores)
        if counts["bidi_controls"] > self.max_bidi_controls:
            return GuardResult.block(self.name, "encoding", f"{counts['bidi_controls']} bidi override, embedding "
                                     f"or isolate characters; at most {self.max_bidi_controls} are allowed",
                                     scores=scores)
        return GuardResult.allow(self.name, scores=scores)


_WORD_CHAR = re.compile(r"\w")
_SPACES = re.compile(r"\s+")


class DenyListGuard:
    """Blocks text containing a denied keyword (whole words, any case) or matching a denied regular expression.

    Keywords are matched on the skeleton of the text (`guardrails.normalize.skeleton`: NFKC, invisible characters and
    combining marks removed, look-alike letters and dashes mapped, case-folded), so "pass\u200bword", "ｐａｓｓｗｏｒｄ",
    "pаsswоrd" with Cyrillic letters and "pas\u0301sword" are all "password"; a space in a keyword matches any run of
    whitespace or none ("project falcon" also catches "project\u200bfalcon" and "projectfalcon"). Patterns are
    compiled once, with `re.IGNORECASE`, and searched in the original text, its `fold`, and its skeleton with
    invisible characters removed and read as spaces (use `(?-i:...)` for a case-sensitive part).
    """

    def __init__(self, keywords: Iterable[str] = (), patterns: Iterable[str] = (), name: str = "deny_list") -> None:
        self.keywords = tuple(dict.fromkeys(_normalize_keyword(keyword) for keyword in keywords))
        self.patterns = tuple(_compile_pattern(pattern) for pattern in patterns)
        if not self.keywords and not self.patterns:
            raise GuardConfigError("DenyListGuard needs at least one keyword or pattern; give keywords=[...] or "
                              "patterns=[...], or leave the guard out.")
        # A keyword's skeleton with its spaces removed, as the keyword regex finds it in any spacing.
        self._compact = {keyword: _SPACES.sub("", skeleton(keyword)) for keyword in self.keywords}
        self._keywords = None
        if self.keywords:
            alternatives = sorted({r"\s*".join(map(re.escape, skeleton(keyword).split())) for keyword in self.keywords},
                                  key=len, reverse=True)
            # Both sides are case-folded already, so no IGNORECASE: an alternation of plain literals lets the regex
            # engine skip ahead to a keyword's first letter. The left word boundary is checked on each hit.
            self._keywords = re.compile("(?:" + "|".join(alternatives) + r")(?!\w)")
        self.name = name

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        bare = skeleton(text)
        keyword_hits = self._keyword_hits(bare)
        pattern_hits = []
        if self.patterns:
            views = list(dict.fromkeys((text, fold(text), bare, skeleton(text, invisible_as_space=True))))
            pattern_hits = [pattern.pattern for pattern in self.patterns if any(map(pattern.search, views))]
        scores = {"keywords": float(len(keyword_hits)), "patterns": float(len(pattern_hits))}
        if keyword_hits:
            return GuardResult.block(self.name, "deny_list", f"contains deny-listed keyword {keyword_hits[0]!r}",
                                     scores=scores)
        if pattern_hits:
            return GuardResult.block(self.name, "deny_list", f"matches deny-listed pattern {pattern_hits[0]!r}",
                                     scores=scores)
        return GuardResult.allow(self.name, scores=scores)

    def _keyword_hits(self, bare: str) -> list[str]:
        if self._keywords is None:
            return []
        found = set()
        position = 0
        while (match := self._keywords.search(bare, position)) is not None:
            start = match.start()
            if start == 0 or not _WORD_CHAR.match(bare, start - 1):
                found.add(_SPACES.sub("", match.group()))
                position = match.end()
            else:
                position = start + 1
        return [keyword for keyword in self.keywords if self._compact[keyword] in found]


def _normalize_keyword(keyword: object) -> str:
    if not isinstance(keyword, str) or not keyword.strip():
        raise GuardConfigError(f"Deny-list keyword {keyword!r} must be a non-empty string.")
    if not skeleton(keyword).strip():
        raise GuardConfigError(f"Deny-list keyword {keyword!r} has no visible letters once invisible characters "
                               "and combining marks are removed; it would match nothing. Remove it.")
    return " ".join(fold(keyword).split())


def _compile_pattern(pattern: object) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise GuardConfigError(f"Deny-list pattern {pattern!r} must be a non-empty string.")
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise GuardConfigError(f"Deny-list pattern {pattern!r} is not a valid regular expression: {exc}. "
                          "Fix or remove it.") from exc


# The embedders in use read at most a few hundred tokens; tokenising a megabyte to throw most of it away is waste.
_TOPIC_MAX_CHARS = 4000


class TopicGuard:
    """Blocks a question that is not about the indexed documents, judged by embedding similarity.

    Steps: embed the question (at most its first 4000 characters); take the cosine similarity to each reference
    vector (a sample of indexed chunk embeddings, or the embeddings of `centroid_texts` describing the topics);
    allow when the best similarity is >= `threshold`. A question that embeds to a zero vector (no words) scores 0.
    """

    def __init__(self, embedder: TextEncoder, *, reference_vectors: Sequence[Sequence[float]] | np.ndarray | None = None,
                 centroid_texts: Sequence[str] | None = None, threshold: float = 0.3, name: str = "topic") -> None:
        if (reference_vectors is None) == (centroid_texts is None):
            raise GuardConfigError("TopicGuard needs exactly one of (reference_vectors, centroid_texts): pass a sample "
                              "of indexed chunk embeddings or a few texts that describe the topics.")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not -1.0 <= threshold <= 1.0:
            raise GuardConfigError(f"TopicGuard threshold is a cosine similarity in [-1, 1], not {threshold!r}.")
        self.embedder = embedder
        self.threshold = float(threshold)
        self.name = name
        if centroid_texts is not None:
            texts = list(centroid_texts)
            if not texts or not all(isinstance(text, str) and text.strip() for text in texts):
                raise GuardConfigError("TopicGuard centroid_texts must be a non-empty list of non-empty strings.")
            reference_vectors = embedder.encode(texts)
        self.references = _unit_rows(reference_vectors, getattr(embedder, "dim", None))

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        question = text[:_TOPIC_MAX_CHARS].encode("utf-8", "replace").decode("utf-8")
        if not question.strip():
            return GuardResult.block(self.name, "off_topic", "an empty question is about nothing",
                                     scores={"similarity": 0.0, "threshold": self.threshold})
        vector = np.asarray(self.embedder.encode([question]), dtype=np.float32).reshape(-1)
        if vector.shape[0] != self.references.shape[1]:
            raise GuardConfigError(f"The embedder returned a {vector.shape[0]}-dimensional vector but the TopicGuard "
                              f"references have {self.references.shape[1]}; build both with the same embedder.")
        norm = float(np.linalg.norm(vector))
        similarity = float(np.max(self.references @ (vector / norm))) if np.isfinite(norm) and norm > 0 else 0.0
        scores = {"similarity": similarity, "threshold": self.threshold}
        if similarity >= self.threshold:
            return GuardResult.allow(self.name, scores=scores)
        return GuardResult.block(self.name, "off_topic", f"not close to the indexed documents (similarity "
                                 f"{similarity:.3f} < threshold {self.threshold:.3f})", scores=scores)


def _unit_rows(vectors: Sequence[Sequence[float]] | np.ndarray, dim: int | None) -> np.ndarray:
    try:
        matrix = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise GuardConfigError(f"TopicGuard reference vectors must be a 2-D array of numbers: {exc}.") from exc
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise GuardConfigError(f"TopicGuard reference vectors must be a non-empty 2-D array, not shape {matrix.shape}.")
    if dim is not None and matrix.shape[1] != dim:
        raise GuardConfigError(f"TopicGuard reference vectors have {matrix.shape[1]} dimensions but the embedder makes "
                          f"{dim}; take them from the same embedder.")
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if not np.all(np.isfinite(matrix)) or np.any(norms == 0):
        raise GuardConfigError("TopicGuard reference vectors must be finite and non-zero.")
    return matrix / norms
