"""Finds personal data (e-mail, phone, payment card, IBAN, national id, IP address) in a text and redacts or blocks it.

Detectors read a view of the text that undoes the usual evasions (zero-width characters between digits, full-width
and Arabic-Indic digits, a full-width "@", other dashes) and map matches back onto the original text, so redaction
replaces exactly what was written. Detection is regex first, structure second: a candidate only counts when it passes
its check (Luhn for cards, mod-97 and the country's length for IBANs, SSA rules for SSNs, octet and `ipaddress`
checks for IPs), so order ids, versions, dates, ports and timestamps stay untouched. No pattern nests unbounded
repetition, so a 1 MB text is scanned in linear time.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import ipaddress
import itertools
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from typing import Literal, NamedTuple

from guardrails.base import GuardContext, GuardResult
from guardrails.errors import GuardConfigError
from guardrails.normalize import invisible_runs, is_invisible

PIIType = Literal["email", "phone", "card", "iban", "national_id", "ip"]
PII_TYPES: tuple[PIIType, ...] = ("email", "phone", "card", "iban", "national_id", "ip")
PLACEHOLDERS: dict[str, str] = {kind: f"[{kind.upper()}]" for kind in PII_TYPES}


class PIIMatch(NamedTuple):
    """One piece of personal data: its type and its [start, end) span in the text."""

    type: PIIType
    start: int
    end: int


class _Span(NamedTuple):
    """A detector's claim on part of the text; `type=None` reserves the span as not-PII (a CIDR, an invalid SSN)."""

    type: PIIType | None
    start: int
    end: int


# Every detector scans a byte view of the text with one byte per visible character, so that patterns are plain
# ASCII regexes and evasions need no pattern of their own: invisible characters are dropped (a zero-width space
# between a card's digits), a decimal digit of any script becomes its ASCII digit (full-width, Arabic-Indic), a
# character whose NFKC form is one ASCII character becomes it (a full-width "@"), a dash becomes "-", a letter or
# mark of another script becomes b"\x80" (a letter to the e-mail domain pattern, never a word character to the
# others, so a card number glued to Chinese text is still found), anything else "?". `_View.span` maps a match back
# to the original text.
#
# Patterns start with a character class and check their left boundary with a look-behind *after* that first
# character: the regex engine then skips every position that cannot start a match without entering the matcher,
# which is what keeps a 1 MB scan fast.

_OTHER_LETTER = "\x80"


@functools.lru_cache(maxsize=8192)
def _view_char(char: str) -> str:
    """What a non-ASCII character becomes in the view: "" (dropped) or one character below U+0081."""
    if is_invisible(char):
        return ""
    if (digit := unicodedata.decimal(char, None)) is not None:
        return str(digit)
    if len(compatible := unicodedata.normalize("NFKC", char)) == 1 and compatible.isascii():
        return compatible
    if unicodedata.category(char) == "Pd" or char == "\u2212":
        return "-"
    if char.isalpha() or unicodedata.category(char).startswith("M"):
        return _OTHER_LETTER
    return "?"


class _View:
    """The byte view of a text and the way back from its offsets to the text's."""

    def __init__(self, text: str) -> None:
        if text.isascii():
            self.data = text.encode("ascii")
            self._kept_before: list[int] = []
            return
        translated = text.translate({ord(char): _view_char(char) for char in set(text) if not char.isascii()})
        self.data = translated.encode("latin-1")
        # For each dropped character, in order, how many kept characters come before it.
        dropped = [] if len(translated) == len(text) else [
            index for match in invisible_runs(text) for index in range(match.start(), match.end())]
        self._kept_before = [index - rank for rank, index in enumerate(dropped)]

    def _original(self, offset: int) -> int:
        return offset + bisect.bisect_right(self._kept_before, offset)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The [start, end) span of the original text that the view's [start, end) shows."""
        if not self._kept_before:
            return start, end
        return self._original(start), self._original(end - 1) + 1


_DIGITS = b"0123456789"


def _digit_count(raw: bytes) -> int:
    return len(raw) - len(raw.translate(None, _DIGITS))


# --- e-mail -------------------------------------------------------------------------------------------------------

# Labels of an internationalised domain hold letters of other scripts (b"\x80" in the view): "bücher.de", "例子.广告".
_EMAIL_DOMAIN = re.compile(rb"@(?:[A-Za-z0-9\x80](?:[A-Za-z0-9\x80-]{0,61}[A-Za-z0-9\x80])?\.)+"
                           rb"(?:[A-Za-z]{2,63}(?![A-Za-z0-9-])|\x80{2,63}(?![A-Za-z0-9\x80-]))")
_EMAIL_LOCAL = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}\Z")
_LOCAL_PART_MAX = 64


def _find_emails(view: bytes) -> Iterator[_Span]:
    # Anchored on "@" (a fast literal scan); the local part is then read backwards from it.
    if b"@" not in view:
        return
    for match in _EMAIL_DOMAIN.finditer(view):
        at = match.start()
        local = _EMAIL_LOCAL.search(view, max(0, at - _LOCAL_PART_MAX), at)
        if local is not None:
            yield _Span("email", local.start(), match.end())


# --- IBAN ---------------------------------------------------------------------------------------------------------

# Lengths from the SWIFT IBAN registry for the countries users here are likely to write; an IBAN of another country
# is accepted when the whole candidate passes mod-97 at a plausible length.
_IBAN_LENGTHS: dict[bytes, int] = {
    country.encode(): length for country, length in {
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
        "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
        "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
        "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
        "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
        "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24,
        "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
    }.items()
}
# Anchored on the two check digits; the look-behind reads the country code in front of them.
_IBAN = re.compile(rb"\d\d(?<=(?<![A-Za-z0-9])[A-Za-z]{2}\d\d)(?:[ -]?[A-Za-z0-9]){11,30}")
_IBAN_DIGITS = {ord(ch): str(int(ch, 36)) for ch in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


def _iban_checksum_ok(compact: bytes) -> bool:
    rearranged = (compact[4:] + compact[:4]).decode("ascii")
    return int(rearranged.translate(_IBAN_DIGITS)) % 97 == 1


def _iban_span(view: bytes, start: int, end: int) -> _Span | None:
    candidate = view[start:end].upper()
    compact = candidate.replace(b" ", b"").replace(b"-", b"")
    length = _IBAN_LENGTHS.get(candidate[:2])
    if length is None:
        if not 15 <= len(compact) <= 34:
            return None
        length = len(compact)
    elif len(compact) < length:
        return None
    compact = compact[:length]
    # Written compact or in the standard groups of four, split by spaces or dashes: other spacing is words of prose
    # that merely pass mod-97.
    separator = candidate[4:5]
    groups = [compact[i:i + 4] for i in range(0, length, 4)]
    written = separator.join(groups) if separator in (b" ", b"-") else compact
    stop = start + len(written)
    if not candidate.startswith(written) or view[stop:stop + 1].isalnum():
        return None
    if _iban_checksum_ok(compact):
        return _Span("iban", start, stop)
    # A mistyped IBAN of a known country is reserved whole, so that no other detector claims a slice of it.
    return _Span(None, start, stop) if candidate[:2] in _IBAN_LENGTHS else None


def _find_ibans(view: bytes) -> Iterator[_Span]:
    # A greedy candidate may run on into the next words ("DE89 ... 00 and GB82..."): it is cut at the country's
    # length, and the search resumes where the IBAN ended, not where the candidate did.
    position = 0
    while (match := _IBAN.search(view, position)) is not None:
        span = _iban_span(view, match.start() - 2, match.end())
        if span is None:
            position = match.start() + 1
        else:
            position = span.end
            yield span


# --- payment card -------------------------------------------------------------------------------------------------

# A maximal run of 13-19 digits with single spaces or dashes between them: never a slice of a longer number.
_CARD = re.compile(rb"\d(?<![\w.+]\d)(?<!\d[ -]\d)(?:[ -]?\d){12,18}(?![\w]|[ -]?\d|\.\d)")
# Dots between digits are mostly versions, decimals and addresses: a card written with dots needs the groups
# cards are printed in (4-4-4-4, 4-4-4-4-3, Amex's 4-6-5).
_DOTTED_CARD = re.compile(rb"\d(?<![\w.+]\d)\d{3}\.(?:\d{4}\.\d{4}\.\d{4}(?:\.\d{3})?|\d{6}\.\d{5})(?![\w]|\.\d)")
_DIGIT_VALUE = bytes.maketrans(_DIGITS, bytes(range(10)))
_LUHN_DOUBLED = bytes.maketrans(_DIGITS, bytes([0, 2, 4, 6, 8, 1, 3, 5, 7, 9]))


def _luhn_ok(digits: bytes) -> bool:
    backwards = digits[::-1]
    return (sum(backwards[0::2].translate(_DIGIT_VALUE)) + sum(backwards[1::2].translate(_LUHN_DOUBLED))) % 10 == 0


def _card_prefix_ok(digits: bytes) -> bool:
    # Card networks issue from 3-6 (Amex, Diners, JCB, Visa, Mastercard, Discover, UnionPay, Maestro) and from
    # Mastercard's 2221-2720; this keeps compact timestamps and ids starting 0, 1, 7, 8 or 9 out.
    return digits[:1] in (b"3", b"4", b"5", b"6") or 2221 <= int(digits[:4]) <= 2720


def _find_cards(view: bytes) -> Iterator[_Span]:
    matches = _CARD.finditer(view)
    if b"." in view:
        matches = itertools.chain(matches, _DOTTED_CARD.finditer(view))
    for match in matches:
        digits = match.group().translate(None, b" -.")
        if _card_prefix_ok(digits) and _luhn_ok(digits):
            yield _Span("card", match.start(), match.end())


# --- national ids -------------------------------------------------------------------------------------------------

_SSN = re.compile(rb"\d(?<![\w-]\d)\d\d-\d\d-\d{4}(?![\w]|-\d)")
# UK National Insurance number: the first letter is not D F I Q U V, the second not D F I O Q U V, and the pairs
# BG GB KN NK NT TN ZZ are never issued.
_UK_NINO = re.compile(
    rb"[A-CEGHJ-PR-TW-Z](?<![\w][A-Z])(?!(?<=B)G|(?<=G)B|(?<=K)N|(?<=N)[KT]|(?<=T)N|(?<=Z)Z)"
    rb"[A-CEGHJ-NPR-TW-Z] ?\d\d ?\d\d ?\d\d ?[A-D](?!\w)"
)
# Most national ids (passport, DNI, BSN, PESEL, Aadhaar, ...) have no shape that sets them apart from an order id,
# so the generic detector needs the label a person writes in front of one; only the value after it is redacted.
_ID_LABELS = (
    b"passport", b"national id", b"national-id", b"nationalid", b"identity card", b"id card", b"id number",
    b"tax id", b"tax-id", b"ssn", b"social security", b"personal id", b"personnummer", b"bsn", b"dni", b"nif",
    b"cpf", b"aadhaar", b"pesel", b"steuer-id", b"steuerid", b"codice fiscale", b"nino", b"national insurance",
)
_LABELLED_ID = re.compile(
    rb"(?:" + b"|".join(re.escape(label) for label in _ID_LABELS) + rb")"
    rb"(?:entity)?(?:[ -]?(?:number|no\.?|num|#))?\s{0,3}(?:is\s|:|#|=)?\s{0,3}"
    rb"(?P<id>[a-z]{0,3}\d[\da-z-]{3,20})(?![a-z0-9])"
)
_LABELLED_ID_MIN_DIGITS = 5


def _ssn_valid(ssn: bytes) -> bool:
    area, group, serial = ssn[:3], ssn[4:6], ssn[7:]
    return area not in (b"000", b"666") and area[:1] != b"9" and group != b"00" and serial != b"0000"


def _find_national_ids(view: bytes) -> Iterator[_Span]:
    if b"-" in view:
        for match in _SSN.finditer(view):
            # An invalid SSN is still reserved, so that the phone detector does not claim it instead.
            yield _Span("national_id" if _ssn_valid(match.group()) else None, match.start(), match.end())
    for match in _UK_NINO.finditer(view):
        yield _Span("national_id", match.start(), match.end())
    lowered = view.lower()
    for match in _LABELLED_ID.finditer(lowered):
        if lowered[match.start() - 1:match.start()].isalnum():
            continue
        if _digit_count(match.group("id")) >= _LABELLED_ID_MIN_DIGITS:
            yield _Span("national_id", match.start("id"), match.end("id"))


# --- IP addresses -------------------------------------------------------------------------------------------------

_IPV4 = re.compile(rb"\d(?<![\w.]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w]|\.\d)")
# Anchored on the first colon; the group in front of it (up to 4 hex digits) is read backwards.
_IPV6_TAIL = re.compile(rb":[0-9A-Fa-f.]*:[0-9A-Fa-f.:]*")
_IPV6_HEAD = re.compile(rb"[0-9A-Fa-f]{1,4}\Z")
_IPV6_MAX_CHARS = 45
_CIDR_SUFFIX = re.compile(rb"/\d{1,3}(?!\w)")


def _ipv4_value(raw: bytes) -> int | None:
    parts = raw.split(b".")
    if any(len(part) > 1 and part[:1] == b"0" for part in parts):
        return None
    octets = [int(part) for part in parts]
    if max(octets) > 255:
        return None
    return octets[0] << 24 | octets[1] << 16 | octets[2] << 8 | octets[3]


def _ipv4_is_shared(value: int) -> bool:
    # 0.0.0.0, loopback 127/8 and netmasks (255.255.255.0) are the same on every machine: they identify no one.
    inverted = ~value & 0xFFFFFFFF
    is_netmask = value >> 24 == 0xFF and inverted & (inverted + 1) == 0
    return value == 0 or value >> 24 == 127 or is_netmask


def _ip_span(view: bytes, start: int, end: int, shared: bool) -> _Span:
    # An address written with a prefix length (10.0.0.0/8) names a network in a config, not someone's machine,
    # so it is reserved as not-PII, the prefix included.
    cidr = _CIDR_SUFFIX.match(view, end)
    if cidr is not None:
        return _Span(None, start, cidr.end())
    return _Span(None if shared else "ip", start, end)


def _find_ipv6(view: bytes) -> Iterator[_Span]:
    for match in _IPV6_TAIL.finditer(view):
        head = _IPV6_HEAD.search(view, max(0, match.start() - 4), match.start())
        start = head.start() if head is not None else match.start()
        end = match.start() + len(match.group().rstrip(b"."))
        candidate = view[start:end]
        # Cheap structural tests first: clock times (12:30:45) and MAC addresses fail here, not in `ipaddress`.
        if len(candidate) > _IPV6_MAX_CHARS or (b"::" not in candidate and candidate.count(b":") < 6):
            continue
        before, after = view[start - 1:start] if start else b"", view[end:end + 1]
        if before.isalnum() or before in (b"_", b":", b".") or after.isalnum() or after == b"_":
            continue
        # Requiring a decimal digit keeps C++/Ruby scopes built from hex letters (Face::Bad) out.
        if candidate.translate(None, _DIGITS) == candidate:
            continue
        try:
            address = ipaddress.IPv6Address(candidate.decode("ascii"))
        except ValueError:
            continue
        yield _ip_span(view, start, end, address.is_loopback or address.is_unspecified)


def _find_ips(view: bytes) -> Iterator[_Span]:
    # IPv6 first, so that an IPv4-mapped address (::ffff:192.0.2.128) is claimed whole.
    if b"::" in view or view.count(b":") >= 6:
        yield from _find_ipv6(view)
    if b"." in view:
        for match in _IPV4.finditer(view):
            value = _ipv4_value(match.group())
            if value is not None:
                yield _ip_span(view, match.start(), match.end(), _ipv4_is_shared(value))


# --- phone numbers ------------------------------------------------------------------------------------------------

# Without a "+" or a trunk "0" in front, a national number must have the North American 3-3-4 grouping: bare digit
# runs (timestamps, order ids) and other groupings (dates, versions) are too often something else.
_PHONE = re.compile(
    rb"""
    [+(\d](?<![\w+.-][(\d])(?<![\w+-]\+)                              # a first character not glued to a token;
                                                                        # "+" may follow a full stop ("me.+44 ...")
    (?:
        (?<=\+)\d{1,3}(?:[ .-]?\(\d{1,4}\))?[ .-]?\d+(?:[ .-]\d+)*         # +44 20 7946 0958, +1 (415) 555-2671
      | (?<=\()\d{2,5}\)[ .-]?\d+(?:[ .-]\d+)*                             # (555) 123-4567, (02) 1234 5678
      | (?<=1)[ .-]\d{3}(?P<a>[ .-])\d{3}(?P=a)\d{4}                       # 1-800-555-1234
      | (?<=\d)\d\d(?P<b>[ .-])\d{3}(?P=b)\d{4}                            # 555-123-4567, 555.123.4567
      | (?<=0)(?<!\d[ .-]0)\d{1,4}(?P<c>[ .-])\d{2,}(?:(?P=c)\d{2,})*      # 020 7946 0958, 06 12 34 56 78
      | (?<=0)[1-9]\d{8,9}                                                 # 0612345678
    )
    (?!\w|[.:/-]\d)
    """,
    re.VERBOSE,
)
_PHONE_DIGITS = range(9, 16)  # E.164 allows at most 15 digits, country code included


def _find_phones(view: bytes) -> Iterator[_Span]:
    for match in _PHONE.finditer(view):
        number = match.group()
        # A single space also separates a phone number from the next number ("+1 555 123 4567 4111..."):
        # drop trailing groups until the digits fit E.164.
        while _digit_count(number) > _PHONE_DIGITS.stop - 1 and (cut := max(map(number.rfind, b" .-"))) > 0:
            number = number[:cut]
        if _digit_count(number) in _PHONE_DIGITS:
            yield _Span("phone", match.start(), match.start() + len(number))


# What a detector reads next to a match is at most two bytes on either side: a look-around, or a separator inside a
# longer candidate. Blanking a match can only change what is found there if a neighbour touches it ...
_TOUCHING_BEFORE = re.compile(rb"[\w+(.:/@%\x80-]")
_TOUCHING_AFTER = re.compile(rb"[\w+(:\x80]")
# ... or a number goes on past one separator (the card and phone patterns look two bytes back and ahead).
_SEPARATOR = re.compile(rb"[\s.:/-]")


def _glued(view: bytes, kind: PIIType, start: int, end: int) -> bool:
    """Whether blanking view[start:end] to a placeholder could change what the detectors find next to it."""
    before, after = view[max(0, start - 2):start].rjust(2), view[end:end + 2].ljust(2)
    # An e-mail's local part is read backwards from its "@" through dots, dashes and "%": into an e-mail before it.
    return bool(_TOUCHING_BEFORE.match(before, 1) or _TOUCHING_AFTER.match(after)
                or (kind == "email" and after[:1] in b"._%-")
                or (before[:1].isdigit() and _SEPARATOR.match(before, 1) and view[start:start + 1].isdigit())
                or (after[1:].isdigit() and _SEPARATOR.match(after)))


# Earlier detectors win overlaps: an e-mail's digits are not a phone, a card is not a phone, a CIDR is not an IP.
_DETECTORS: tuple[tuple[PIIType, Callable[[bytes], Iterable[_Span]]], ...] = (
    ("email", _find_emails),
    ("iban", _find_ibans),
    ("card", _find_cards),
    ("national_id", _find_national_ids),
    ("ip", _find_ips),
    ("phone", _find_phones),
)


# Part of every PIIGuard fingerprint: bump it when a change to the detectors changes what is found, so verdicts
# (and redacted texts) stored with indexed chunks are made again.
VERSION = "1"

class PIIGuard:
    """Flags personal data in a text and redacts it to placeholders (`action="redact"`) or blocks the text.

    Steps: run each enabled detector in priority order (e-mail, IBAN, card, national id, IP, phone); keep a
    candidate only if it passes its structural check and overlaps no earlier claim; replace each kept span with its
    placeholder (`[EMAIL]`, `[PHONE]`, ...). The verdict's `scores` count matches per type and its `reason` names
    only types and counts, so the original text never leaves the guard.
    """

    def __init__(self, types: Iterable[str] = PII_TYPES, action: Literal["redact", "block"] = "redact",
                 name: str = "pii") -> None:
        types = (types,) if isinstance(types, str) else tuple(types)
        unknown = sorted(set(types) - set(PII_TYPES))
        if unknown:
            raise GuardConfigError(f"Unknown PII type(s) {unknown}; choose from {list(PII_TYPES)}.")
        if not types:
            raise GuardConfigError(f"PIIGuard needs at least one PII type; choose from {list(PII_TYPES)}.")
        if action not in ("redact", "block"):
            raise GuardConfigError(f"PIIGuard action must be 'redact' or 'block', not {action!r}.")
        self.types: tuple[PIIType, ...] = tuple(kind for kind in PII_TYPES if kind in types)
        self.action = action
        self.name = name

    @property
    def fingerprint(self) -> str:
        """What a verdict depends on besides the text (detector version, types, action): equal fingerprints give
        equal verdicts and equal redactions, so the context chain's outcome can be stored with a chunk at ingest."""
        parts = [VERSION, self.name, self.action, *self.types]
        return hashlib.sha1("\x00".join(parts).encode("utf-8")).hexdigest()[:16]

    def find_pii(self, text: str) -> list[PIIMatch]:
        """Every piece of personal data of the enabled types, sorted by position, never overlapping."""
        if not text:
            return []
        view = _View(text)
        data = view.data
        found: list[PIIMatch] = []
        # Each piece found is blanked to what its placeholder will read ("[...]") and, when one is glued to its
        # neighbours, the detectors look at the blanked view afresh: a neighbour it hid ("a@b.io+44 20 7946 0958")
        # is found now and not only when the redacted text is redacted again. This makes redaction idempotent.
        while True:
            placed = self._detect(data)
            found.extend(PIIMatch(kind, *view.span(start, end)) for kind, start, end in placed)
            if not any(_glued(data, *span) for span in placed):
                break
            blanked = bytearray(data)
            for _, start, end in placed:
                blanked[start:end] = b"[" + b"?" * (end - start - 2) + b"]"
            data = bytes(blanked)
        found.sort(key=lambda match: match.start)
        return found

    def _detect(self, view: bytes) -> list[tuple[PIIType, int, int]]:
        """(type, start, end) of each piece of personal data in the view, the detectors taking turns by priority."""
        claimed = bytearray(len(view))
        found = []
        for kind, detect in _DETECTORS:
            if kind not in self.types:
                continue
            for span_type, start, end in detect(view):
                if claimed.find(1, start, end) != -1:
                    continue
                claimed[start:end] = b"\x01" * (end - start)
                if span_type is not None:
                    found.append((span_type, start, end))
        return found

    def redact(self, text: str) -> str:
        """The text with each piece of personal data replaced by its placeholder, e.g. `[EMAIL]`."""
        return _redact(text, self.find_pii(text))

    def check(self, text: str, context: GuardContext | None = None) -> GuardResult:
        matches = self.find_pii(text)
        counts = dict.fromkeys(self.types, 0)
        for match in matches:
            counts[match.type] += 1
        scores = {kind: float(count) for kind, count in counts.items()}
        if not matches:
            return GuardResult.allow(self.name, scores=scores)
        summary = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count)
        redacted = _redact(text, matches)
        if self.action == "block":
            return GuardResult.block(self.name, "pii", f"personal data found: {summary}", scores=scores,
                                     redacted_text=redacted)
        return GuardResult.allow(self.name, scores=scores, redacted_text=redacted, category="pii",
                                 reason=f"personal data redacted: {summary}")


def _redact(text: str, matches: list[PIIMatch]) -> str:
    parts: list[str] = []
    position = 0
    for match in matches:
        parts.append(text[position:match.start])
        parts.append(PLACEHOLDERS[match.type])
        position = match.end
    parts.append(text[position:])
    return "".join(parts)
