"""Fuzzing parse_file: whatever bytes a .md, .txt, .rst, .html or .pdf file holds, parsing either yields sections
whose offsets add up to the full parsed text or fails with an IngestError that names the file."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from pipeline.errors import IngestError, TesseraError
from pipeline.ingest.parse import BLOCK_CHARS, SNIFF_BYTES, parse_file

FUZZ = settings.get_profile("fuzz")

# Fragments that steer the parsers into their interesting branches: headings, fences, closing hashes, line endings,
# a BOM, markup, comments, CDATA, entities, and bytes that are not UTF-8.
_MARKDOWN_BITS = ["# ", "## ", "###### ", "####### ", "#", " #", "   # ", "    # ", " ##", "```", "~~~", "````py",
                  "\n", "\r\n", "\r", "\n\n", "\t", " ", "title", "é", "日本", "\u200b", "\ufeff", "\x00", "\x7f"]
_HTML_BITS = ["<h1>", "</h1>", "<h3 class=x>", "<p>", "</p>", "<div>", "<br>", "<br/>", "<pre>", "</pre>", "<script>",
              "</script>", "<style>", "<head>", "<nav>", "<template>", "<!--", "-->", "<![CDATA[", "]]>", "<!DOCTYPE",
              "<!", "<?", "?>", "<![if", "<a href='", "&amp;", "&#x0;", "&#1114112;", "&", "<", ">", "</", "<li>",
              "<table><tr><td>", "\n", " ", "text", "é", "\x00"]
_UTF8_BREAKERS = [b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xef\xbb\xbf"]


def _mixed(bits: list[str]) -> st.SearchStrategy[bytes]:
    """UTF-8 text built from the fragments and arbitrary characters (lone surrogates become invalid bytes)."""
    piece = st.sampled_from(bits) | st.text(max_size=20)
    return st.lists(piece, max_size=40).map(lambda pieces: "".join(pieces).encode("utf-8", "surrogatepass"))


@st.composite
def _damaged(draw, valid: st.SearchStrategy[bytes]) -> bytes:
    """Valid text with an invalid sequence, a NUL or random bytes spliced in, early or past the sniffed head."""
    data = draw(valid)
    if draw(st.booleans()):
        data = b"a" * (SNIFF_BYTES + 10) + data
    at = draw(st.integers(0, len(data)))
    return data[:at] + draw(st.sampled_from(_UTF8_BREAKERS) | st.binary(min_size=1, max_size=8)) + data[at:]


def _text_files(bits: list[str]) -> st.SearchStrategy[bytes]:
    valid = _mixed(bits)
    return st.one_of(valid, valid, valid, _damaged(valid), st.binary(max_size=200))


def _huge(bits: list[str]) -> st.SearchStrategy[bytes]:
    """Files past one read block: a short fragment repeated, so some lines are longer than a block."""
    return st.builds(lambda head, body, tail: head + body * (BLOCK_CHARS // len(body) + 2) + tail,
                     _mixed(bits),
                     st.sampled_from([b"a", b"word ", b"# h\n", b"x\n\n", b"<p>y</p>", b"\xc3\xa9", b"\r\n"]),
                     _mixed(bits))


def _parse(path: Path) -> list | None:
    """Parse and consume the whole file: its sections, or None after an IngestError naming the file. Any other
    exception fails the test."""
    try:
        sections = list(parse_file(path))
    except TesseraError as error:
        assert isinstance(error, IngestError)
        assert path.name in str(error)
        event(f"IngestError: {str(error).split(': ')[1][:40]}")
        return None
    event(f"sections: {len(sections) if len(sections) < 3 else '3+'}")
    return sections


def _assert_sections_tile_the_text(sections: list | None) -> str:
    """Each section starts where the previous one ended, is non-empty and at most a block long; returns the text."""
    offset = 0
    for section in sections or []:
        assert section.start == offset
        assert section.text
        assert len(section.text) <= BLOCK_CHARS
        assert isinstance(section.heading, tuple) and all(isinstance(name, str) and name for name in section.heading)
        offset += len(section.text)
    return "".join(section.text for section in sections or [])


def _file_text(data: bytes) -> str:
    """What reading the file as text gives: UTF-8 without a BOM, every line ending read as a newline."""
    return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")


@settings(FUZZ, max_examples=300)
@given(data=_text_files(_MARKDOWN_BITS), suffix=st.sampled_from([".md", ".markdown", ".txt", ".rst"]))
@example(data=b"", suffix=".md")
@example(data=b"# a\r\n## b\r", suffix=".md")
@example(data=b"\xef\xbb\xbf# t\n```\n# not\n```\n", suffix=".md")
def test_markdown_and_text_parse_to_the_file_text_or_an_ingest_error(tmp_path, data, suffix):
    path = tmp_path / f"doc{suffix}"
    path.write_bytes(data)
    sections = _parse(path)
    text = _assert_sections_tile_the_text(sections)
    if sections is not None:
        assert text == _file_text(data)
        if suffix not in (".md", ".markdown"):
            assert all(section.heading == () for section in sections)


@settings(FUZZ, max_examples=6)
@given(data=_huge(_MARKDOWN_BITS), suffix=st.sampled_from([".md", ".txt"]))
def test_files_longer_than_a_block_still_tile_their_text(tmp_path, data, suffix):
    path = tmp_path / f"big{suffix}"
    path.write_bytes(data)
    sections = _parse(path)
    text = _assert_sections_tile_the_text(sections)
    if sections is not None:
        assert text == _file_text(data)


@settings(FUZZ, max_examples=300)
@given(data=_text_files(_HTML_BITS), suffix=st.sampled_from([".html", ".htm"]))
@example(data=b"", suffix=".html")
@example(data=b"<![if !supportLists]>x<![endif]>", suffix=".html")
@example(data=b"<!\xc3\xa9", suffix=".html")
@example(data=b"<![if0\x1b", suffix=".html")  # found by this test: bs4 raised ParserRejectedMarkup
@example(data=b"<![foo[x]]>", suffix=".html")
def test_html_parses_to_tiled_sections_or_an_ingest_error(tmp_path, data, suffix):
    path = tmp_path / f"page{suffix}"
    path.write_bytes(data)
    sections = _parse(path)
    _assert_sections_tile_the_text(sections)
    assert all(section.text.endswith("\n\n") and section.text.strip() for section in sections or [])


@settings(FUZZ, max_examples=3)
@given(data=_huge(_HTML_BITS))
def test_large_html_pages_are_cut_into_bounded_sections(tmp_path, data):
    path = tmp_path / "big.html"
    path.write_bytes(data)
    _assert_sections_tile_the_text(_parse(path))


def _pdf(pages: list[bytes]) -> bytes:
    """A minimal PDF with one content stream per page, written by hand so the streams can hold anything."""
    font = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * index} 0 R" for index in range(len(pages)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode()]
    for index, stream in enumerate(pages):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * index} 0 R >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    data = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(data))
        data += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(data)
    data += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    data += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    data += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(data)


def _text_stream(text: bytes) -> bytes:
    return b"BT /F1 12 Tf 72 720 Td (" + re.sub(rb"([()\\])", rb"\\\1", text) + b") Tj ET"


_OPERATORS = [b"BT", b"ET", b"Tj", b"TJ", b"Tf", b"Td", b"Tm", b"T*", b"'", b'"', b"/F1", b"/F9", b"12", b"-1e9", b"0",
              b"(", b")", b"[", b"]", b"<", b">", b"<<", b">>", b"(x)", b"<41>", b"q", b"Q", b"cm", b"Do", b"BI",
              b"ID", b"EI", b" ", b"\n", b"\\"]
_STREAMS = st.one_of(
    st.binary(max_size=30).map(_text_stream),
    st.lists(st.sampled_from(_OPERATORS), max_size=25).map(b" ".join),
    st.binary(max_size=60),
)
_PDFS = st.lists(_STREAMS, min_size=1, max_size=3).map(_pdf)


@st.composite
def _damaged_pdfs(draw) -> bytes:
    """A well-formed PDF, then truncated, overwritten, cut out or spliced with garbage."""
    data = bytearray(draw(_PDFS))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        damage = draw(st.sampled_from(["truncate", "overwrite", "delete", "insert"]))
        if damage == "truncate":
            del data[at:]
        elif damage == "overwrite":
            patch = draw(st.binary(min_size=1, max_size=8) | st.sampled_from([b"obj", b"R", b"<<", b"/Count 99", b"0"]))
            data[at:at + len(patch)] = patch
        elif damage == "delete":
            del data[at:at + draw(st.integers(1, 40))]
        else:
            data[at:at] = draw(st.binary(max_size=16) | st.sampled_from([b" 1 0 R ", b"endobj", b"%%EOF", b"trailer"]))
    return bytes(data)


@settings(FUZZ, max_examples=300)
@given(data=st.one_of(_PDFS, _damaged_pdfs(), st.binary(max_size=300),
                     st.binary(max_size=40).map(b"%PDF-1.7\n".__add__)))
@example(data=b"")
@example(data=b"%PDF-1.4\n")
def test_any_pdf_bytes_parse_to_tiled_page_sections_or_an_ingest_error(tmp_path, data):
    path = tmp_path / "paper.pdf"
    path.write_bytes(data)
    sections = _parse(path)
    _assert_sections_tile_the_text(sections)
    assert all(re.fullmatch(r"page [1-9]\d*", section.heading[0]) for section in sections or [])
