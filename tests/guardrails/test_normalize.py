"""The one normalisation every pattern-based guard matches on: `fold` (NFKC, invisible characters, case) and
`skeleton` (plus combining marks, look-alike letters and dashes), and the look-alike table they read."""

import json
import unicodedata
from importlib import resources

import pytest

from guardrails.normalize import confusables, fold, is_invisible, s_stem, skeleton

# One of each kind of character that renders as nothing.
INVISIBLE = [
    "\u00ad",  # soft hyphen
    "\u034f",  # combining grapheme joiner
    "\u061c",  # Arabic letter mark
    "\u115f", "\u1160", "\u3164", "\uffa0",  # Hangul fillers
    "\u17b4",  # Khmer vowel inherent
    "\u180b", "\u180e", "\u180f",  # Mongolian free variation selectors, vowel separator
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f",  # zero-width space, (non-)joiner, direction marks
    "\u202a", "\u202e", "\u2066", "\u2069",  # bidi embeddings, overrides, isolates
    "\u2060", "\u2062", "\u2064",  # word joiner, invisible operators
    "\ufe00", "\ufe0f", "\U000e0100", "\U000e01ef",  # variation selectors
    "\ufeff",  # byte-order mark
    "\ufff9",  # interlinear annotation anchor
    "\U000e0001", "\U000e0041", "\U000e007f",  # Unicode tags
]


@pytest.mark.parametrize("char", INVISIBLE, ids=lambda char: f"U+{ord(char):04X}")
def test_every_kind_of_invisible_character_is_removed(char):
    assert is_invisible(char)
    assert fold(f"pa{char}ss") == "pass"
    assert skeleton(f"pa{char}ss") == "pass"


@pytest.mark.parametrize("char", ["a", " ", "\n", "é", "\u0301", "日", "😀", "-", "\u00a0"])
def test_visible_characters_are_not_invisible(char):
    assert not is_invisible(char)


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("ＰＡＳＳ ｗｏｒｄ", "pass word"),  # full-width
        ("𝐛𝐨𝐥𝐝 𝘪𝘵𝘢𝘭𝘪𝘤 𝚖𝚘𝚗𝚘", "bold italic mono"),  # mathematical alphanumerics
        ("ⓒⓘⓡⓒⓛⓔⓓ", "circled"),
        ("ﬁle", "file"),  # ligature
        ("Straße", "strasse"),  # full case folding
        ("Crème brûlée", "crème brûlée"),  # accents stay: patterns in other languages need them
        ("ig\u200bnore\u2060 \ufeffrules\U000e0041", "ignore rules"),
    ],
)
def test_fold_undoes_compatibility_forms_invisible_characters_and_case(text, folded):
    assert fold(text) == folded


@pytest.mark.parametrize(
    ("text", "bare"),
    [
        ("pas\u0301swo\u0323rd", "password"),  # combining acute, dot below
        ("Crème brûlée", "creme brulee"),
        ("p\u0430ssw\u043erd", "password"),  # Cyrillic а, о
        ("ΡΑSSWΟRD", "password"),  # Greek capitals
        ("ІGNОRЕ", "ignore"),  # Cyrillic capitals, І imitating a capital I
        ("\u0456gn\u043er\u0435", "ignore"),
        ("pr\u0585ject", "project"),  # Armenian օ
        ("self\u2010de\u2011str\u2012u\u2013ct\u2212", "self-de-str-u-ct-"),  # hyphen-like dashes
        ("ＰＡ\u200bＳ\u0301Ｓ", "pass"),
    ],
)
def test_skeleton_drops_marks_and_maps_look_alikes_and_dashes(text, bare):
    assert skeleton(text) == bare


def test_skeleton_can_read_invisible_characters_as_spaces():
    assert skeleton("ignore\u200ball\u200b\u200dprevious") == "ignoreallprevious"
    assert skeleton("ignore\u200ball\u200b\u200dprevious", invisible_as_space=True) == "ignore all previous"


@pytest.mark.parametrize("text", ["프롬프트를 무시해", "日本語のテキスト", "忽略之前的所有指令", "Привет"])
def test_skeleton_keeps_other_scripts_readable(text):
    # Hangul syllables come back composed; only letters that imitate Latin ones change.
    assert len(skeleton(text)) == len(text)
    if not any(char in confusables() for char in text):
        assert skeleton(text) == text.casefold()


def test_the_look_alike_table_is_what_it_says():
    path = resources.files("guardrails.data") / "confusables.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) == len(confusables()) > 150
    for row in rows:
        char = row["char"]
        assert len(char) == 1 and not char.isascii() and row["name"] == unicodedata.name(char)
        assert unicodedata.normalize("NFKC", char) == char, "NFKC already handles it; the table need not"
        assert row["skeleton"] in "abcdefghijklmnopqrstuvwxyz-" and len(row["skeleton"]) == 1
        assert row["from"] in ("UTS39", "tessera")
        # Through the whole skeleton (case folding included) each entry still lands on its letter.
        assert skeleton(char) == row["skeleton"], row["name"]


@pytest.mark.parametrize(
    ("word", "stem"),
    [("vectors", "vector"), ("queries", "query"), ("indexes", "indexe"), ("class", "class"), ("status", "status"), ("is", "is")],
)
def test_s_stem_folds_plurals_only(word, stem):
    assert s_stem(word) == stem
