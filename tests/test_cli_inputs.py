"""Catalog and run-folder errors of the CLI: a catalog keyed by another column is diagnosed
first (the likely id column named, repeated row problems collapsed into one line), --id-field /
--text-template / --label-field read it, and build / assign / report need a named run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_run_state import OFFLINE, cli

from agentictagger.structures.semantic_ids import SemanticIds

KINDS = ["apple", "pear", "hammer", "chair"]


@pytest.fixture
def sku_csv(tmp_path: Path) -> Path:
    lines = ["sku,title,colour,kind"] + [f"S{k}{i},{k} number {i},red,{k}" for k in KINDS for i in range(15)]
    path = tmp_path / "items.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_catalog_keyed_by_another_column_is_diagnosed_first(tmp_path, sku_csv):
    out = cli(tmp_path, "build", "--catalog", str(sku_csv), "--run-dir", str(tmp_path / "run"), *OFFLINE)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines[0].startswith("catalog error: No row has the id field 'item_id'"), out.stderr
    assert "the likely id column is 'sku'" in lines[0] and "--id-field sku" in lines[0]
    assert out.stderr.count("missing or blank id field") == 1 and "lines 2-61 (60 lines)" in out.stderr
    assert "more problem" not in out.stderr and len(lines) == 2
    assert not (tmp_path / "run" / "vocabulary.json").exists()


def test_id_field_text_template_and_label_field_flags(tmp_path, sku_csv):
    common = ["--catalog", str(sku_csv), "--run-dir", str(tmp_path / "run"), "--set", f"cache_dir={tmp_path / 'cache'}",
              *OFFLINE, "--id-field", "sku", "--text-template", "{title}, {colour}", "--label-field", "kind"]
    for command in ("build", "assign", "report"):
        out = cli(tmp_path, command, *common)
        assert out.returncode == 0, (command, out.stderr[-2000:])
    ids = {r.item_id for r in SemanticIds.read(tmp_path / "run" / "semantic_ids.parquet")}
    assert ids == {f"S{k}{i}" for k in KINDS for i in range(15)}
    diag = json.loads((tmp_path / "run" / "diagnostics.json").read_text())
    assert json.dumps(diag).count("nmi") >= 1  # labels were read from the kind column
    cfg = (tmp_path / "run" / "config.yaml").read_text()
    assert "id_field: sku" in cfg and "text_template: '{title}, {colour}'" in cfg and "label_field: kind" in cfg


@pytest.mark.parametrize("command", ["build", "assign", "report"])
def test_build_assign_and_report_need_a_run_folder(tmp_path, sku_csv, command):
    out = cli(tmp_path, command, "--catalog", str(sku_csv), "--id-field", "sku", *OFFLINE)
    assert out.returncode == 2
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: {command} needs a run folder: pass --run-dir DIR (or set run_dir in the --config file)"]
    assert not (tmp_path / "runs").exists()
    # A run folder named in the config file, or with --set, is enough.
    (tmp_path / "run.yaml").write_text(f"run_dir: {tmp_path / 'named'}\n")
    for named in (["--config", str(tmp_path / "run.yaml")], ["--set", f"run_dir={tmp_path / 'named'}"]):
        out = cli(tmp_path, command, "--catalog", str(sku_csv), "--id-field", "sku", *OFFLINE, *named)
        assert "needs a run folder" not in out.stderr
