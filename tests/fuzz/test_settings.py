"""Fuzzing the settings loader on raw file contents: whatever bytes tessera.yaml holds (bad YAML, other encodings,
NULs, tags, anchors, deep nesting), loading either gives Settings or raises a ConfigError naming the file.

tests/pipeline/test_config.py fuzzes well-formed YAML mappings and TESSERA_* variables; this starts one step earlier.
"""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError

FUZZ = settings.get_profile("fuzz")

_YAML_BITS = ["lm: ", "retrieval:\n  k: ", "guards:\n  deny_list:\n    keywords: ", "chunking: {size: ", "store: ",
              "- ", "[", "]", "{", "}", ": ", "\n", "  ", "\t", "'", '"', "&a ", "*a", "!!python/object:os.system ",
              "!!binary ", "!!set ", "? ", "---\n", "...\n", "%YAML 1.1\n", "#", "<<: *a", "null", "~", "1e309", "0x1F",
              "2024-01-01", "yes", "on", ".inf", "-", "|\n  ", ">\n  ", "local/smollm2", "foo/bar", "\x00", "\x85",
              "\ufeff", "\ud800", "é"]
_YAML_TEXT = st.lists(st.sampled_from(_YAML_BITS) | st.text(max_size=8), max_size=30).map("".join)
_CONTENTS = st.one_of(
    _YAML_TEXT.map(lambda text: text.encode("utf-8", "surrogatepass")),
    _YAML_TEXT.map(lambda text: text.encode("utf-16", "surrogatepass")),
    st.binary(max_size=64),
)


@settings(FUZZ, max_examples=200)
@given(data=_CONTENTS)
@example(data=b"lm: \xff\n")  # found by this test: invalid UTF-8 escaped as a UnicodeDecodeError
@example(data=b"retrieval: " + b"[" * 5000)  # found by this test: PyYAML ran out of stack (RecursionError)
@example(data=b"a: &a [*a]")
@example(data=b"lm: !!python/object/apply:os.system ['true']")
def test_any_config_file_loads_or_is_a_config_error_naming_it(tmp_path, data):
    path = tmp_path / "tessera.yaml"
    path.write_bytes(data)
    try:
        loaded = load_settings(path)
    except ConfigError as error:
        assert path.name in str(error) or "TESSERA_" in str(error) or "Invalid settings" in str(error)
    else:
        assert isinstance(loaded, Settings)
