"""Settings load from tessera.yaml with TESSERA_* overrides; bad values fail at start-up with the fix."""

import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for name in list(__import__("os").environ):
        if name.startswith("TESSERA_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_run_the_embedded_models_on_a_local_store():
    settings = load_settings()
    assert settings.lm == "local/smollm2"
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
