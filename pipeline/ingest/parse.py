"""Turns one document file (Markdown, plain text, HTML, PDF) into Sections that carry heading paths and offsets.

A document's full parsed text is the concatenation of its sections' texts in order; every Section.start is an
offset into that text, so chunk offsets stay absolute even though large files are read in bounded pieces.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import PreformattedString
from bs4.exceptions import ParserRejectedMarkup
from pypdf import PasswordType, PdfReader

from pipeline.documents import Section
from pipeline.errors import IngestError, UnsupportedFileError
from pipeline.terminal import printable

log = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".rst"})
HTML_SUFFIXES = frozenset({".html", ".htm"})
PDF_SUFFIXES = frozenset({".pdf"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES | HTML_SUFFIXES | PDF_SUFFIXES

# Text files are read, and sections are capped, in pieces of about this many characters, so memory stays
# bounded however large the file is.
BLOCK_CHARS = 1 << 20
SNIFF_BYTES = 8192

_MARKDOWN_LINE = re.compile(
    r"^ {0,3}(?:(?P<hashes>#{1,6})(?=[ \t]|$)(?P<title>[^\n]*)|(?P<fence>`{3,}|~{3,})(?P<info>[^\n]*))",
    re.MULTILINE,
)
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")

_DROPPED_HTML_TAGS = ("script", "style", "nav", "noscript", "template", "head")
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "br", "caption", "dd", "details", "div", "dl",
        "dt", "fieldset", "figcaption", "figure", "footer", "form", "header", "hr", "li", "main", "ol", "p",
        "section", "summary", "table", "td", "th", "tr", "ul",
    }
)


def parse_file(path: Path) -> Iterator[Section]:
    """Parse one file into Sections, choosing the parser by the file's suffix.

    Checks that need no full parse (suffix, existence, binary content, UTF-8 validity, PDF encryption) run
    before this returns, so a bad file fails at the call rather than after half of it has been indexed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFileError(
            f"Cannot parse {path}: files ending in {suffix or '(no suffix)'!r} are not supported. "
            f"Convert it to one of {', '.join(sorted(SUPPORTED_SUFFIXES))} or leave it out of the folder."
        )
    if not path.is_file():
        raise IngestError(f"Cannot parse {path}: it does not exist or is not a regular file; check the path.")
    if suffix in PDF_SUFFIXES:
        return _pdf_sections(path, _open_pdf(path))
    _check_utf8_text(path)
    if suffix in HTML_SUFFIXES:
        return _capped(_html_sections(path))
    if suffix in MARKDOWN_SUFFIXES:
        return _markdown_sections(_read_pieces(path))
    return _text_sections(_read_pieces(path))


def _check_utf8_text(path: Path) -> None:
    """Reject binary and non-UTF-8 files up front; decoding incrementally keeps memory bounded for big files."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    consumed = 0
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
            if b"\x00" in head:
                raise IngestError(
                    f"Cannot parse {path}: it contains NUL bytes, so it is binary (or UTF-16) rather than "
                    "UTF-8 text. Leave it out of the folder, or re-save it as UTF-8 text."
                )
            block = head
            while block:
                decoder.decode(block)
                consumed += len(block)
                block = handle.read(BLOCK_CHARS)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"Cannot parse {path}: it is not valid UTF-8 (bad byte near offset {consumed + exc.start}). "
            "Re-save it with UTF-8 encoding."
        ) from exc
    except OSError as exc:
        raise IngestError(f"Cannot read {path}: {exc}. Check the file's permissions.") from exc


def _cut_point(text: str, limit: int) -> int:
    """Where to end a piece of at most `limit` characters: after a blank line if one is in the second half,
    else after the last line break, else hard at `limit` (one enormous line)."""
    paragraph = text.rfind("\n\n", limit // 2, limit)
    if paragraph != -1:
        return paragraph + 2
    line = text.rfind("\n", 0, limit)
    if line != -1:
        return line + 1
    return limit


def _read_pieces(path: Path, block_chars: int = BLOCK_CHARS) -> Iterator[str]:
    """Stream a UTF-8 file as consecutive pieces of at most `block_chars` characters cut at line boundaries."""
    try:
        with path.open(encoding="utf-8-sig") as handle:
            pending = ""
            while block := handle.read(block_chars):
                pending += block
                while len(pending) >= block_chars:
                    cut = _cut_point(pending, block_chars)
                    yield pending[:cut]
                    pending = pending[cut:]
            if pending:
                yield pending
    except UnicodeDecodeError as exc:
        raise IngestError(
            f"Cannot parse {path}: it stopped being valid UTF-8 while it was read (was it being written?). "
            "Re-save it with UTF-8 encoding and ingest it again."
        ) from exc
    except OSError as exc:
        raise IngestError(f"Cannot read {path}: {exc}. Check the file's permissions.") from exc


def _text_sections(pieces: Iterable[str]) -> Iterator[Section]:
    offset = 0
    for piece in pieces:
        yield Section(text=piece, heading=(), start=offset)
        offset += len(piece)


def _markdown_sections(pieces: Iterable[str]) -> Iterator[Section]:
    """Split Markdown at ATX headings ('#' to '######'), tracking the nesting as the heading path.

    A heading line belongs to the section it opens, so the parsed text is the file's text unchanged.
    Lines inside fenced code blocks are never headings.
    """
    stack: list[tuple[int, str]] = []
    heading: tuple[str, ...] = ()
    fence: str | None = None
    offset = 0
    at_line_start = True
    for piece in pieces:
        cursor = 0
        for match in _MARKDOWN_LINE.finditer(piece):
            if match.start() == 0 and not at_line_start:
                continue  # the previous piece was hard-cut inside this line
            marker = match["fence"]
            if marker:
                if fence is None:
                    fence = marker
                elif marker[0] == fence[0] and len(marker) >= len(fence) and not match["info"].strip():
                    fence = None
                continue
            if fence is not None:
                continue
            title = _CLOSING_HASHES.sub("", match["title"].strip()).strip()
            if not title:
                continue
            if match.start() > cursor:
                yield Section(text=piece[cursor : match.start()], heading=heading, start=offset + cursor)
            cursor = match.start()
            level = len(match["hashes"])
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, title))
            heading = tuple(name for _, name in stack)
        if cursor < len(piece):
            yield Section(text=piece[cursor:], heading=heading, start=offset + cursor)
        offset += len(piece)
        at_line_start = piece.endswith("\n")


def _capped(sections: Iterable[Section]) -> Iterator[Section]:
    """Cut sections longer than BLOCK_CHARS at line boundaries, so every format yields pieces of bounded size."""
    for section in sections:
        text, start = section.text, section.start
        while len(text) > BLOCK_CHARS:
            cut = _cut_point(text, BLOCK_CHARS)
            yield Section(text=text[:cut], heading=section.heading, start=start)
            text, start = text[cut:], start + cut
        if text:
            yield Section(text=text, heading=section.heading, start=start)


def _html_sections(path: Path) -> Iterator[Section]:
    """Sections of an HTML page split at h1–h6; scripts, styles, navigation and <head> are dropped."""
    try:
        soup = BeautifulSoup(path.read_text(encoding="utf-8-sig"), "html.parser")
    except ParserRejectedMarkup as exc:
        # Python's parser gives up on some malformed declarations ("<![if0>"); bs4 lists the parser's complaint last.
        complaint = str(exc).strip().splitlines()[-1].strip()
        raise IngestError(
            f"Cannot parse {path}: the HTML parser rejected it ({complaint}). "
            "Fix the malformed markup (a '<!' or '<![' declaration), or save the page as text."
        ) from exc
    for tag in soup.find_all(_DROPPED_HTML_TAGS):
        tag.decompose()
    heading: tuple[str, ...] = ()
    paragraphs: list[str] = []
    offset = 0
    for event, value in _html_events(soup):
        if event == "heading":
            if paragraphs:
                text = "".join(f"{paragraph}\n\n" for paragraph in paragraphs)
                yield Section(text=text, heading=heading, start=offset)
                offset += len(text)
            heading = value
            paragraphs = [value[-1]]
        else:
            paragraphs.append(value[0])
    if paragraphs:
        yield Section(text="".join(f"{paragraph}\n\n" for paragraph in paragraphs), heading=heading, start=offset)


def _html_events(soup: BeautifulSoup) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Walk the tree in document order, yielding ('heading', path) and ('paragraph', (text,)) events.

    The walk uses an explicit stack, because deeply nested pages would overflow Python's recursion limit.
    """
    levels: list[tuple[int, str]] = []
    inline: list[str] = []
    stack: list[tuple[Tag | NavigableString, bool]] = [(soup, False)]

    def paragraph() -> Iterator[tuple[str, tuple[str, ...]]]:
        text = " ".join("".join(inline).split())
        inline.clear()
        if text:
            yield "paragraph", (text,)

    while stack:
        node, closing = stack.pop()
        if closing:
            yield from paragraph()
        elif isinstance(node, NavigableString):
            if not isinstance(node, PreformattedString):  # comments, doctypes, CDATA
                inline.append(str(node))
        elif node.name in _HTML_HEADINGS:
            yield from paragraph()
            title = " ".join(node.get_text(" ").split())
            if title:
                level = _HTML_HEADINGS[node.name]
                while levels and levels[-1][0] >= level:
                    levels.pop()
                levels.append((level, title))
                yield "heading", tuple(name for _, name in levels)
        elif node.name == "pre":
            yield from paragraph()
            text = node.get_text().strip("\n")
            if text.strip():
                yield "paragraph", (text,)
        else:
            if node.name in _HTML_BLOCK_TAGS:
                yield from paragraph()
                stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
    yield from paragraph()


def _open_pdf(path: Path) -> PdfReader:
    """Open a PDF, decrypting it when it only has an empty user password (common for 'protected' PDFs)."""
    # pypdf raises many exception types on malformed files; each is turned into an IngestError naming the file.
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            _decrypt_without_password(path, reader)
        len(reader.pages)
    except IngestError:
        raise
    except Exception as exc:
        raise IngestError(
            f"Cannot parse {path}: it is not a readable PDF ({type(exc).__name__}: {exc}). "
            "Check that the file is complete, or re-export it from the program that made it."
        ) from exc
    return reader


def _decrypt_without_password(path: Path, reader: PdfReader) -> None:
    fix = "Save an unencrypted copy (for example by printing it to PDF) and ingest that."
    try:
        result = reader.decrypt("")
    except Exception as exc:
        raise IngestError(f"Cannot parse {path}: the PDF is encrypted ({exc}). {fix}") from exc
    if result == PasswordType.NOT_DECRYPTED:
        raise IngestError(f"Cannot parse {path}: the PDF is encrypted with a password. {fix}")


def _pdf_sections(path: Path, reader: PdfReader) -> Iterator[Section]:
    """One section per page with text, headed ('page N',); pages without extractable text are skipped."""
    offset = 0
    for number, page in enumerate(reader.pages, start=1):
        try:
            text = page.extract_text() or ""
        except Exception as exc:
            raise IngestError(
                f"Cannot parse page {number} of {path} ({type(exc).__name__}: {exc}). "
                "Re-export the PDF, or leave it out of the folder."
            ) from exc
        if not text.strip():
            log.debug("page %d of %s has no extractable text (scanned image?)", number, printable(path))
            continue
        text = text.rstrip() + "\n\n"
        yield from _capped([Section(text=text, heading=(f"page {number}",), start=offset)])
        offset += len(text)
