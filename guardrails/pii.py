"""Finds personal data (e-mail, phone, payment card, IBAN, national id, IP address) in a text and redacts or blocks it.

Detection is regex-first and checksum-second: a candidate only counts when its structure is valid (Luhn for cards,
mod-97 and the country's length for IBANs, SSA rules for SSNs, `ipaddress` for IPs), so order ids, versions, dates,
ports and timestamps stay untouched. Every pattern is anchored at a token boundary and has no nested unbounded
repetition, so a 1 MB text is scanned in linear time.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from guardrails.base import GuardContext, GuardResult
from pipeline.errors import ConfigError

PIIType = Literal["email", "phone", "card", "iban", "national_id", "ip"]
PII_TYPES: tuple[PIIType, ...] = ("email", "phone", "card", "iban", "national_id", "ip")
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind.upper()}]" for kind in PII_TYPES}


@dataclass(frozen=True, slots=True)
class PIIMatch:
    """One piece of personal data: its type and its [start, end) span in the text."""

    type: PIIType
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class _Span:
    """A detector's claim on part of the text; `type=None` reserves the span as not-PII (a CIDR, an invalid SSN)."""

    type: PIIType | None
    start: int
    end: int


# --- e-mail -------------------------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)


def _find_emails(text: str) -> Iterator[_Span]:
    if "@" not in text:
        return
    for match in _EMAIL.finditer(text):
        yield _Span("email", match.start(), match.end())


# --- IBAN ---------------------------------------------------------------------------------------------------------

# IBAN lengths from the SWIFT IBAN registry for the countries users here are likely to write; other countries are
# accepted when the whole candidate passes mod-97 at a plausible length.
_IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
    "UA": 29, "VG": 24, "XK": 20,
}
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]){11,30}")


def _iban_checksum_ok(compact: str) -> bool:
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _find_ibans(text: str) -> Iterator[_Span]:
    # A greedy candidate may run on into the next words ("DE89 ... 00 and GB82..."): cut it at the country's
    # length and resume the search where the IBAN ended, not where the candidate did.
    position = 0
    while (match := _IBAN.search(text, position)) is not None:
        span = _iban_span(text, match)
        if span is None:
            position = match.start() + 1
        else:
            position = span.end
            yield span


def _iban_span(text: str, match: re.Match[str]) -> _Span | None:
    candidate = match.group().upper()
    positions = [i for i, ch in enumerate(candidate) if ch != " "]
    length = _IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        if not 15 <= len(positions) <= 34:
            return None
        length = len(positions)
    elif len(positions) < length:
        return None
    end = match.start() + positions[length - 1] + 1
    if end < len(text) and text[end].isalnum():
        return None
    compact = "".join(candidate[i] for i in positions[:length])
    if not (compact.isascii() and compact.isalnum() and _iban_checksum_ok(compact)):
        return None
    return _Span("iban", match.start(), end)


# --- payment card -------------------------------------------------------------------------------------------------

# A maximal run of 13-19 digits with single spaces or dashes between them: never part of a longer number.
_CARD = re.compile(r"(?<![\w.])(?<!\d[ -])\d(?:[ -]?\d){12,18}(?![\w]|[ -]?\d|\.\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = ord(ch) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _card_prefix_ok(digits: str) -> bool:
    # Card networks issue from 3-6 (Amex, Diners, JCB, Visa, Mastercard, Discover, UnionPay, Maestro) and
    # Mastercard's 2221-2720; this keeps compact timestamps and other ids starting 1, 7, 8, 9, 0 out.
    return digits[0] in "3456" or 2221 <= int(digits[:4]) <= 2720


def _find_cards(text: str) -> Iterator[_Span]:
    for match in _CARD.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if digits.isascii() and _card_prefix_ok(digits) and _luhn_ok(digits):
            yield _Span("card", match.start(), match.end())


# --- national ids -------------------------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w]|-\d)")
# UK National Insurance number: prefix letters exclude D F I Q U V (and O second), some pairs are never issued.
_UK_NINO = re.compile(
    r"\b(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
)
# Most national ids (passport, DNI, BSN, PESEL, Aadhaar, ...) have no shape that sets them apart from an order id,
# so the generic detector needs the label a person writes in front of one; only the value after it is redacted.
_LABELLED_ID = re.compile(
    r"\b(?:passport|national[ -]?id(?:entity)?|identity[ -]?card|id[ -]?card|id[ -]?number|tax[ -]?id|ssn|"
    r"social[ -]security|personal[ -]id|personnummer|bsn|dni|nif|cpf|aadhaar|pesel|steuer-?id|codice[ -]fiscale|"
    r"nino|national[ -]insurance)"
    r"(?:[ -]?(?:number|no\.?|num|#))?\s{0,3}(?:is\s|:|#|=)?\s{0,3}"
    r"(?P<id>[A-Z]{0,3}\d[\dA-Z-]{3,20})\b",
    re.IGNORECASE,
)


def _ssn_valid(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _find_national_ids(text: str) -> Iterator[_Span]:
    if "-" in text:
        for match in _SSN.finditer(text):
            # An invalid SSN shape is still reserved, so the phone detector does not claim it instead.
            kind = "national_id" if _ssn_valid(*match.groups()) else None
            yield _Span(kind, match.start(), match.end())
    for match in _UK_NINO.finditer(text):
        yield _Span("national_id", match.start(), match.end())
    for match in _LABELLED_ID.finditer(text):
        value = match.group("id")
        if sum(ch.isdigit() for ch in value) >= 5:
            yield _Span("national_id", match.start("id"), match.end("id"))


# --- IP addresses -------------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*")
_CIDR_SUFFIX = re.compile(r"/\d{1,3}(?!\w)")


def _is_netmask(address: ipaddress.IPv4Address) -> bool:
    inverted = ~int(address) & 0xFFFFFFFF
    return int(address) >> 24 == 0xFF and inverted & (inverted + 1) == 0


def _find_ips(text: str) -> Iterator[_Span]:
    # An address written with a prefix length (10.0.0.0/8) names a network in a config, not a person's machine,
    # so it is reserved as not-PII. Loopback, unspecified and netmask values are the same everywhere.
    if "." in text:
        for match in _IPV4.finditer(text):
            try:
                address = ipaddress.IPv4Address(match.group())
            except ValueError:
                continue
            if _CIDR_SUFFIX.match(text, match.end()):
                yield _Span(None, match.start(), _CIDR_SUFFIX.match(text, match.end()).end())
            elif address.is_loopback or address.is_unspecified or _is_netmask(address):
                yield _Span(None, match.start(), match.end())
            else:
                yield _Span("ip", match.start(), match.end())
    if "::" in text or text.count(":") >= 7:
        for match in _IPV6.finditer(text):
            candidate = match.group().rstrip(".")
            end = match.start() + len(candidate)
            if len(candidate) > 45 or not any(ch.isdigit() for ch in candidate):
                continue
            if end < len(text) and (text[end].isalnum() or text[end] == "_"):
                continue
            try:
                address = ipaddress.IPv6Address(candidate)
            except ValueError:
                continue
            cidr = _CIDR_SUFFIX.match(text, end)
            if cidr:
                yield _Span(None, match.start(), cidr.end())
            elif address.is_loopback or address.is_unspecified:
                yield _Span(None, match.start(), end)
            else:
                yield _Span("ip", match.start(), end)


# --- phone numbers ------------------------------------------------------------------------------------------------

_PHONE = re.compile(
    r"""
    (?<![\w+.-])
    (?:
        \+\d{1,3}(?:[ .-]?\(\d{1,4}\))?[ .-]?\d+(?:[ .-]\d+)*             # +44 20 7946 0958, +1 (415) 555-2671
      | \(\d{2,5}\)[ .-]?\d+(?:[ .-]\d+)*                                  # (555) 123-4567, (02) 1234 5678
      | (?:1[ .-])?\d{3}(?P<nanp>[ .-])\d{3}(?P=nanp)\d{4}                 # 555-123-4567, 1-800-555-1234
      | 0\d{1,4}(?P<trunk>[ .-])\d{2,}(?:(?P=trunk)\d{2,})*                # 020 7946 0958, 06 12 34 56 78
      | 0[1-9]\d{8,9}                                                      # 0612345678
    )
    (?!\w|[.:/-]\d)
    """,
    re.VERBOSE,
)


def _find_phones(text: str) -> Iterator[_Span]:
    # Without a "+" or a leading trunk "0", a national number must have the 3-3-4 grouping: bare digit runs
    # (timestamps, order ids) and other groupings (dates, versions) are too often not phone numbers.
    for match in _PHONE.finditer(text):
        digits = sum(ch.isdigit() for ch in match.group())
        if 9 <= digits <= 15:
            yield _Span("phone", match.start(), match.end())


# Earlier detectors win overlaps: an e-mail's digits are not a phone, a card is not a phone, a CIDR is not an IP.
_DETECTORS: tuple[tuple[PIIType, Callable[[str], Iterable[_Span]]], ...] = (
    ("email", _find_emails),
    ("iban", _find_ibans),
    ("card", _find_cards),
    ("national_id", _find_national_ids),
    ("ip", _find_ips),
    ("phone", _find_phones),
)


class PIIGuard:
    """Flags personal data in a text: redacts it to placeholders (`action="redact"`) or blocks the text.

    Steps: run each enabled detector in priority order (e-mail, IBAN, card, national id, IP, phone); keep a
    candidate only if it passes its checksum/structure test and does not overlap an earlier claim; replace each kept
    span with its placeholder. The verdict's `scores` count matches per type; its `reason` never quotes the text.
    """

    def __init__(self, types: Iterable[str] = PII_TYPES, action: Literal["redact", "block"] = "redact",
                 name: str = "pii") -> None:
        types = tuple(types)
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:
            raise ConfigError(f"Unknown PII type(s) {unknown}; choose from {list(PII_TYPES)}.")
        if not types:
            raise ConfigError(f"PIIGuard needs at least one PII type; choose from {list(PII_TYPES)}.")
        if action not in ("redact", "block"):
            raise ConfigError(f"PIIGuard action must be 'redact' or 'block', not {action!r}.")
        self.types: tuple[PIIType, ...] = tuple(kind for kind in PII_TYPES if kind in types)
        self.action = action
        self.name = name

    def find_pii(self, text: str) -> list[PIIMatch]:
        """Every piece of personal data of the enabled types, sorted by position, never overlapping."""
        if not text:
            return []
        claimed = bytearray(len(text))
        found: list[PIIMatch] = []
        for kind, detect in _DETECTORS:
            if kind not in self.types:
                continue
            for span in detect(text):
                if claimed.find(1, span.start, span.end) != -1:
                    continue
                claimed[span.start:span.end] = b"\x01" * (span.end - span.start)
                if span.type is not None:
                    found.append(PIIMatch(span.type, span.start, span.end))
        found.sort(key=lambda match: match.start)
        return found

    def redact(self, text: str) -> str:
        """The text with each piece of personal data replaced by its placeholder, e.g. `[EMAIL]`."""
        return self._redact(text, self.find_pii(text))

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        matches = self.find_pii(text)
        counts = {kind: 0 for kind in self.types}
        for match in matches:
            counts[match.type] += 1
        scores = {kind: float(count) for kind, count in counts.items()}
        if not matches:
            return GuardResult.allow(self.name, scores=scores)
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        redacted = self._redact(text, matches)
        if self.action == "block":
            return GuardResult.block(self.name, "pii", f"personal data found: {summary}", scores=scores,
                                     redacted_text=redacted)
        return GuardResult.allow(self.name, scores=scores, redacted_text=redacted, category="pii",
                                 reason=f"personal data redacted: {summary}")

    @staticmethod
    def _redact(text: str, matches: list[PIIMatch]) -> str:
        if not matches:
            return text
        parts: list[str] = []
        position = 0
        for match in matches:
            parts.append(text[position:match.start])
            parts.append(PLACEHOLDERS[match.type])
            position = match.end
        parts.append(text[position:])
        return "".join(parts)
