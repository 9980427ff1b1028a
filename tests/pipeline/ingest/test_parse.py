"""Parsing files into Sections: heading paths, offsets into the full parsed text, bounded streaming, bad files."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from pypdf import PdfWriter

from pipeline.errors import IngestError, UnsupportedFileError
from pipeline.ingest.parse import BLOCK_CHARS, SUPPORTED_SUFFIXES, parse_file

MARKDOWN = """\
Preamble before any heading.

# Guide

Intro paragraph.

## Install

```bash
# this is a shell comment, not a heading
pip install tessera
```

Run it.

### Linux

Use apt.

## Usage ##

Ask a question.

# Appendix

The end.
"""


def write_pdf(path: Path, pages: list[str]) -> Path:
    """Write a minimal, valid PDF with one line of Helvetica text per page (pypdf cannot add text itself)."""
    font = 3 + 2 * len(pages)
    kids = " ".join(f"{3 + 2 * index} 0 R" for index in range(len(pages)))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
    ]
    for index, text in enumerate(pages):
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * index} 0 R >>".encode()
        )
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
    path.write_bytes(bytes(data))
    return path


def full_text(sections) -> str:
    return "".join(section.text for section in sections)


def assert_contiguous(sections) -> None:
    offset = 0
    for section in sections:
        assert section.start == offset
        offset += len(section.text)


def test_markdown_heading_paths_follow_nesting_and_skip_code_fences(tmp_path):
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN, encoding="utf-8")

    sections = list(parse_file(path))
    by_text = {section.text.strip().splitlines()[-1]: section.heading for section in sections}

    assert by_text["Preamble before any heading."] == ()
    assert by_text["Intro paragraph."] == ("Guide",)
    assert by_text["Run it."] == ("Guide", "Install")
    assert by_text["Use apt."] == ("Guide", "Install", "Linux")
    assert by_text["Ask a question."] == ("Guide", "Usage")
    assert by_text["The end."] == ("Appendix",)
    assert not any("shell comment" in name for section in sections for name in section.heading)


def test_markdown_parsed_text_is_the_file_text_and_offsets_are_contiguous(tmp_path):
    path = tmp_path / "guide.markdown"
    path.write_text("\ufeff" + MARKDOWN, encoding="utf-8")

    sections = list(parse_file(path))

    assert full_text(sections) == MARKDOWN
    assert_contiguous(sections)


def test_plain_text_and_rst_have_no_headings(tmp_path):
    for name in ("notes.txt", "notes.rst"):
        path = tmp_path / name
        path.write_text("Title\n=====\n\n# not markdown here\n", encoding="utf-8")

        sections = list(parse_file(path))

        assert full_text(sections) == "Title\n=====\n\n# not markdown here\n"
        assert all(section.heading == () for section in sections)


def test_html_keeps_heading_paths_and_drops_scripts_styles_and_navigation(tmp_path):
    path = tmp_path / "page.html"
    path.write_text(
        """<!doctype html><html><head><title>Ignored</title><style>p { color: red }</style></head>
        <body><nav><h2>Menu</h2><a href="/">Home</a></nav>
        <h1>Guide</h1><p>Intro <b>bold</b>
        text.</p><script>var secret = 1;</script>
        <h2>Setup</h2><div>Install it.<p>Nested</p></div><!-- a comment -->
        <h3>Detail</h3><ul><li>one</li><li>two</li></ul>
        <h2>Usage</h2><p>Use it.</p></body></html>""",
        encoding="utf-8",
    )

    sections = list(parse_file(path))
    text = full_text(sections)

    assert [section.heading for section in sections] == [
        ("Guide",),
        ("Guide", "Setup"),
        ("Guide", "Setup", "Detail"),
        ("Guide", "Usage"),
    ]
    assert "Intro bold text." in sections[0].text
    for dropped in ("secret", "color", "Menu", "Home", "Ignored", "a comment"):
        assert dropped not in text
    assert_contiguous(sections)


def test_pdf_gives_one_section_per_page(tmp_path):
    path = write_pdf(tmp_path / "paper.pdf", ["Hello from page one", "Second page text"])

    sections = list(parse_file(path))

    assert [section.heading for section in sections] == [("page 1",), ("page 2",)]
    assert "Hello from page one" in sections[0].text
    assert "Second page text" in sections[1].text
    assert_contiguous(sections)


def test_password_protected_pdf_is_an_ingest_error_naming_the_file(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    writer.encrypt(user_password="secret", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as handle:
        writer.write(handle)

    with pytest.raises(IngestError, match="locked.pdf.*encrypted"):
        parse_file(path)


def test_pdf_encrypted_without_user_password_is_read(tmp_path):
    source = write_pdf(tmp_path / "plain.pdf", ["Readable anyway"])
    writer = PdfWriter(clone_from=source)
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "owner-only.pdf"
    with path.open("wb") as handle:
        writer.write(handle)

    assert "Readable anyway" in full_text(parse_file(path))


def test_broken_pdf_is_an_ingest_error_naming_the_file(tmp_path):
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog")

    with pytest.raises(IngestError, match="broken.pdf"):
        parse_file(path)


def test_binary_file_is_rejected_when_parse_is_called(tmp_path):
    path = tmp_path / "image.txt"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

    with pytest.raises(IngestError, match="image.txt"):
        parse_file(path)


def test_invalid_utf8_is_rejected_even_far_into_the_file(tmp_path):
    path = tmp_path / "latin1.md"
    path.write_bytes(b"# Title\n\n" + b"fine text\n" * 200_000 + "caf\u00e9\n".encode("latin-1"))

    with pytest.raises(IngestError, match="latin1.md.*UTF-8"):
        parse_file(path)


def test_unsupported_suffix_names_the_supported_ones(tmp_path):
    path = tmp_path / "report.docx"
    path.write_bytes(b"PK\x03\x04")

    with pytest.raises(UnsupportedFileError, match=r"report\.docx.*\.md") as caught:
        parse_file(path)
    assert isinstance(caught.value, IngestError)
    assert ".docx" not in SUPPORTED_SUFFIXES


def test_missing_file_is_an_ingest_error(tmp_path):
    with pytest.raises(IngestError, match="missing.md"):
        parse_file(tmp_path / "missing.md")


def test_a_hard_cut_inside_a_long_line_does_not_invent_a_heading(tmp_path):
    path = tmp_path / "long.md"
    content = "# Real\n\n" + "a" * (BLOCK_CHARS - 8) + "# fake\nmore\n"
    path.write_text(content, encoding="utf-8")

    sections = list(parse_file(path))

    assert full_text(sections) == content
    assert {section.heading for section in sections} == {("Real",)}
    assert all(len(section.text) <= BLOCK_CHARS for section in sections)


def test_50_mb_markdown_streams_with_bounded_memory(tmp_path):
    paragraph = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 16 + "\n\n"
    chapter_body = paragraph * 100
    path = tmp_path / "big.md"
    chapters = 50 * 2**20 // len(chapter_body) + 1
    with path.open("w", encoding="utf-8") as handle:
        for number in range(chapters):
            handle.write(f"# Chapter {number}\n\n")
            handle.write(chapter_body)
    size = path.stat().st_size
    assert size >= 50 * 2**20

    tracemalloc.start()
    try:
        baseline, _ = tracemalloc.get_traced_memory()
        previous_end = 0
        headings = set()
        for section in parse_file(path):
            assert section.start == previous_end
            assert len(section.text) <= BLOCK_CHARS
            previous_end = section.start + len(section.text)
            headings.add(section.heading)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak - baseline < 30 * 2**20
    assert previous_end == size
    assert len(headings) == chapters
