"""How names and messages are shown on a terminal: control characters escaped, so a file name cannot forge output.

A file may be called ``"a.md\\n0 failed"`` or carry an ESC sequence that moves the cursor or recolours the terminal;
printed raw, such a name fakes report lines. Every place that shows a name to a person passes it through
:func:`printable` first.
"""

from __future__ import annotations

import unicodedata

# Control and format characters (ESC, newline, bidi overrides), line and paragraph separators, surrogates
# (undecodable bytes in a name read with surrogateescape), private-use and unassigned code points.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: object) -> str:
    """`text` with every unsafe character written as a Python escape (``\\x1b``, ``\\n``, ``\\u202e``).

    Backslashes are kept as they are, so escaping twice changes nothing: a message built from an escaped
    name can be escaped again where it is printed.
    """
    text = str(text)
    if text.isprintable():
        return text
    return "".join(_escape(char) if unicodedata.category(char) in _UNSAFE_CATEGORIES else char for char in text)


def _escape(char: str) -> str:
    point = ord(char)
    if char in "\n\r\t":
        return repr(char)[1:-1]
    if point < 0x100:
        return f"\\x{point:02x}"
    if point < 0x10000:
        return f"\\u{point:04x}"
    return f"\\U{point:08x}"
