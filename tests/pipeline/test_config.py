"""Settings load from tessera.yaml with TESSERA_* overrides; bad values fail at start-up with the fix."""

import os

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from pipeline.config import Settings, load_settings
from pipeline.errors import ConfigError
from pipeline.lm.models import default_embedded_lm


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("TESSERA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_run_the_embedded_models_on_a_local_store():
    settings = load_settings()
    assert settings.lm == default_embedded_lm()
    assert settings.embedder == "all-MiniLM-L6-v2"
    assert str(settings.store.path) == ".tessera/store" and settings.store.url is None


def test_yaml_file_then_environment_then_arguments(tmp_path, monkeypatch):
    (tmp_path / "tessera.yaml").write_text(
        "lm: openai/gpt-4.1-mini\ncollection: manuals\nrerank:\n  kind: none\nchunking:\n  size: 400\n  overlap: 50\n"
    )
    settings = load_settings()
    assert (settings.lm, settings.collection, settings.rerank.kind, settings.chunking.size) == (
        "openai/gpt-4.1-mini", "manuals", "none", 400
    )
    monkeypatch.setenv("TESSERA_LM", "anthropic/claude-sonnet-4")
    monkeypatch.setenv("TESSERA_CHUNKING__SIZE", "600")
    settings = load_settings()
    assert settings.lm == "anthropic/claude-sonnet-4" and settings.chunking.size == 600
    assert settings.chunking.overlap == 50
    assert load_settings(lm="local/smollm2").lm == "local/smollm2"


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("lm: gpt4\n", "provider/model"),
        ("lm: local/llama\n", "local/smollm2"),
        ("chunking:\n  size: 100\n  overlap: 100\n", "must be smaller"),
        ("rerank:\n  kind: cross-encoder\n", "rerank.model"),
        ("retrieval:\n  mode: fuzzy\n", "hybrid"),
        ("store:\n  path: x\n  url: http://localhost:6333\n", "only one of"),
        ("colection: docs\n", "unknown setting"),
        ("- just\n- a list\n", "mapping"),
        ("lm: [unclosed\n", "not valid YAML"),
    ],
)
def test_invalid_settings_name_the_field_and_the_fix(tmp_path, yaml_text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert expected in str(error.value)


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.yaml")


def test_bad_environment_value_is_reported(monkeypatch):
    monkeypatch.setenv("TESSERA_RETRIEVAL__K", "-3")
    with pytest.raises(ConfigError, match="retrieval.k"):
        load_settings()


def test_a_list_variable_that_is_not_json_names_the_variable_and_the_json_form(monkeypatch):
    monkeypatch.setenv("TESSERA_GUARDS__DENY_LIST__KEYWORDS", "foo,bar")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert "TESSERA_GUARDS__DENY_LIST__KEYWORDS" in str(error.value)
    assert """'["foo", "bar"]'""" in str(error.value)


def test_a_valid_json_list_variable_is_used(monkeypatch):
    monkeypatch.setenv("TESSERA_GUARDS__DENY_LIST__KEYWORDS", '["foo", "bar"]')
    assert load_settings().guards.deny_list.keywords == ["foo", "bar"]


def test_an_unknown_nested_key_lists_the_keys_of_its_own_section(tmp_path):
    path = tmp_path / "tessera.yaml"
    path.write_text("guards:\n  deny_list:\n    keyword: [secret]\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    message = str(error.value)
    assert "guards.deny_list.keyword" in message and "keywords" in message and "patterns" in message
    assert "collection" not in message


def test_config_naming_a_folder_says_it_is_a_folder(tmp_path):
    with pytest.raises(ConfigError) as error:
        load_settings(tmp_path)
    assert "is a folder" in str(error.value) and "does not exist" not in str(error.value)


@pytest.mark.parametrize("pattern", ["(unclosed", "[z-a]", ""])
def test_a_bad_deny_list_regex_fails_when_the_settings_load(tmp_path, pattern):
    path = tmp_path / "tessera.yaml"
    path.write_text(f"guards:\n  deny_list:\n    patterns: [{pattern!r}]\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert "guards.deny_list.patterns" in str(error.value) and "regular expression" in str(error.value)


@pytest.mark.parametrize("field", ["lm", "judge_lm"])
def test_a_provider_litellm_does_not_know_fails_when_the_settings_load(monkeypatch, field):
    monkeypatch.setenv(f"TESSERA_{field.upper()}", "foo/bar")
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert field in str(error.value) and "'foo'" in str(error.value) and "openai/gpt-4.1-mini" in str(error.value)


def test_a_store_url_without_a_scheme_says_what_to_write(tmp_path):
    path = tmp_path / "tessera.yaml"
    path.write_text("store:\n  url: localhost:6333\n")
    with pytest.raises(ConfigError, match="http://localhost:6333"):
        load_settings(path)


def test_ingest_and_tracing_sections_default_to_the_safe_choice():
    settings = load_settings()
    assert settings.ingest.follow_links is False
    assert settings.tracing.record_questions is True


def _field_names(model):
    names = set(model.model_fields)
    for field in model.model_fields.values():
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            names |= _field_names(field.annotation)
    return names


_KEYS = st.sampled_from(sorted(_field_names(Settings) | {"bogus"})) | st.integers(-3, 3)
_LEAVES = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=12) | st.sampled_from(
    ["openai/x", "local/smollm2", "foo/bar", "ollama_chat/", "/", "http://h:1", "(", "closed", "[z-a]", "cross-encoder"]
)
_VALUES = st.recursive(_LEAVES, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEYS, inner, max_size=3), max_leaves=8)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_KEYS, _VALUES, max_size=4))
def test_any_yaml_mapping_either_loads_or_fails_with_a_config_error(tmp_path, data):
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_settings(path)
    except ConfigError as error:
        assert str(error).strip()


_VARIABLES = st.sampled_from([
    "TESSERA_LM", "TESSERA_STORE", "TESSERA_STORE__URL", "TESSERA_RETRIEVAL__K", "TESSERA_GUARDS",
    "TESSERA_GUARDS__DENY_LIST", "TESSERA_GUARDS__DENY_LIST__KEYWORDS", "TESSERA_GUARDS__DENY_LIST__PATTERNS",
    "TESSERA_GUARDS__PII__TYPES", "TESSERA_GUARDS__LLAMA_GUARD__CATEGORIES", "TESSERA_BOGUS", "TESSERA_GUARDS__BOGUS__X",
])
_ENV_TEXT = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=16) | st.sampled_from(
    ['["a"]', "[1, 2]", '{"a": 1}', "{", "null", "3", "foo/bar", '["("]']
)


@settings(max_examples=80, deadline=None)
@given(variables=st.dictionaries(_VARIABLES, _ENV_TEXT, max_size=3))
def test_any_tessera_variables_either_load_or_fail_with_a_config_error(variables):
    os.environ.update(variables)
    try:
        load_settings()
    except ConfigError as error:
        assert str(error).strip()
    finally:
        for name in variables:
            del os.environ[name]
