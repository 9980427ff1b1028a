"""The where-language of metadata filters: ``product = "gateway" AND version >= 4``, parsed into the engine-neutral
conditions of :class:`~pipeline.store.base.SearchFilter`, so both backends apply them the same way.

A filter is conditions joined by ``AND``. A condition compares a field with a value (``=``, ``!=``, ``<``, ``<=``,
``>``, ``>=``) or lists values (``field IN ("a", "b")``, ``field NOT IN (...)``). Values are quoted strings, numbers,
``true`` or ``false``. Fields name metadata columns; ``source`` and ``tags`` name the chunk's own fields.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.errors import QueryError
from pipeline.store.base import METADATA_FIELD, Condition, FieldMatch, FieldRange, SearchFilter

CHUNK_FILTER_FIELDS = ("source", "tags")
Value = str | int | float | bool

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<op><=|>=|!=|==|=|<|>)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
      | (?P<bad>\S)
    )""",
    re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")


class WhereSyntaxError(QueryError):
    """A where-filter that does not parse; the message points at the position."""


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def parse_where(text: str) -> tuple[Condition, ...]:
    """The conditions of a where-filter, all of which must hold."""
    return _Parser(text).parse()


def where_filter(text: str | None) -> SearchFilter | None:
    """A SearchFilter holding the parsed `text` (None when there is no filter)."""
    if text is None or not text.strip():
        return None
    return SearchFilter(where=parse_where(text))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = self._tokens(text)
        self.at = 0

    def parse(self) -> tuple[Condition, ...]:
        conditions = [self._condition()]
        while self._peek() is not None:
            self._keyword("AND", "AND between conditions (OR is not supported; run two queries)")
            conditions.append(self._condition())
        return tuple(conditions)

    def _condition(self) -> Condition:
        token = self._next("a field name")
        if token.kind != "word" or token.text.upper() in ("AND", "IN", "NOT", "TRUE", "FALSE"):
            self._fail(token.position, f"expected a field name, found {token.text!r}")
        field = token.text if token.text in CHUNK_FILTER_FIELDS else f"{METADATA_FIELD}.{token.text}"
        following = self._next("an operator (=, !=, <, <=, >, >=, IN)")
        if following.kind == "word" and following.text.upper() in ("IN", "NOT"):
            negate = following.text.upper() == "NOT"
            if negate:
                self._keyword("IN", "IN after NOT")
            return FieldMatch(field, tuple(self._list()), negate=negate)
        if following.kind != "op":
            self._fail(following.position, f"expected an operator (=, !=, <, <=, >, >=, IN), found {following.text!r}")
        value_token = self._next("a value")
        value = self._value(value_token)
        op = following.text
        if op in ("=", "==", "!="):
            if isinstance(value, float):
                return FieldRange(field, gte=value, lte=value, negate=op == "!=")
            return FieldMatch(field, (value,), negate=op == "!=")
        if isinstance(value, (str, bool)):
            self._fail(value_token.position, f"{op} compares numbers; {value_token.text} is not a number")
        bound = {"<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}[op]
        return FieldRange(field, **{bound: float(value)})

    def _list(self) -> list[Value]:
        opening = self._next("'('")
        if opening.text != "(":
            self._fail(opening.position, f"expected '(' to open the list of values, found {opening.text!r}")
        values = []
        while True:
            token = self._next("a value")
            value = self._value(token)
            if isinstance(value, float):
                self._fail(token.position, "IN lists strings, whole numbers or true/false, not fractions")
            values.append(value)
            separator = self._next("',' or ')'")
            if separator.text == ")":
                return values
            if separator.text != ",":
                self._fail(separator.position, f"expected ',' or ')' in the list of values, found {separator.text!r}")

    def _value(self, token: _Token) -> Value:
        if token.kind == "string":
            return _ESCAPE.sub(r"\1", token.text[1:-1])
        if token.kind == "number":
            number = float(token.text)
            return int(token.text) if re.fullmatch(r"-?\d+", token.text) else number
        if token.kind == "word" and token.text.lower() in ("true", "false"):
            return token.text.lower() == "true"
        hint = " (quote strings: \"gateway\")" if token.kind == "word" else ""
        self._fail(token.position, f"expected a value, found {token.text!r}{hint}")

    def _keyword(self, word: str, what: str) -> None:
        token = self._next(what)
        if token.kind != "word" or token.text.upper() != word:
            self._fail(token.position, f"expected {what}, found {token.text!r}")

    def _peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _next(self, what: str) -> _Token:
        token = self._peek()
        if token is None:
            self._fail(len(self.text), f"expected {what}, found the end of the filter")
        self.at += 1
        return token

    def _tokens(self, text: str) -> list[_Token]:
        tokens = []
        for match in _TOKEN.finditer(text):
            kind = match.lastgroup
            if kind is None:
                continue
            start = match.start(kind)
            if kind == "bad":
                quote = " (an unclosed quote?)" if match[kind] in "\"'" else ""
                self._fail(start, f"unexpected character {match[kind]!r}{quote}")
            tokens.append(_Token(kind, match[kind], start))
        if not tokens:
            self._fail(0, "the filter is empty")
        return tokens

    def _fail(self, position: int, problem: str):
        raise WhereSyntaxError(
            f"Bad --where filter: {problem} at position {position + 1}:\n  {self.text}\n  {' ' * position}^\n"
            'Write conditions joined by AND, e.g. product = "gateway" AND version >= 4.'
        )
