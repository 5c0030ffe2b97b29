"""`agentictagger recsys` end to end on a tiny generated dataset (a table + a semantic-ID table)."""

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from agentictagger.cli import app
from agentictagger.structures.semantic_ids import SemanticId, SemanticIds


def _tiny(tmp_path):
    """60 items in 3 groups; users walk within a group, so descriptors carry the signal."""
    rng = np.random.default_rng(0)
    rows, sids = [], []
    for i in range(60):
        g = i % 3
        sids.append(SemanticId(f"it{i}", (f"g{g}", f"g{g}.{i % 2}"), (f"G{g}", f"S{i % 2}"), i // 6))
    for u in range(120):
        g = u % 3
        items = rng.choice([i for i in range(60) if i % 3 == g], size=6, replace=False)
        rows += [{"user_id": f"u{u}", "item_id": f"it{i}", "timestamp": t} for t, i in enumerate(items)]
    table = tmp_path / "interactions.csv"
    pd.DataFrame(rows).sample(frac=1, random_state=0).to_csv(table, index=False)  # shuffled: time sorts it
    sid = tmp_path / "semantic_ids.parquet"
    SemanticIds(sids).save_parquet(sid)
    return table, sid


def test_recsys_train_evaluate_compare(tmp_path):
    table, sid = _tiny(tmp_path)
    r = CliRunner()
    out = tmp_path / "model"
    res = r.invoke(app, ["recsys", "train", str(table), "-t", "item_id+agentictagger", "--sid-table", str(sid),
                         "--out", str(out), "--max-epochs", "3", "--negatives", "30"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs"] <= 3 and metrics["test"]["all"]["users"] == 120
    assert set(metrics["test"]["all"]) >= {"full", "sampled", "users"}
    res = r.invoke(app, ["recsys", "evaluate", str(out), str(table), "--json", "--negatives", "30"])
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout[res.stdout.index("{"):])
    assert again["test"]["all"]["full"] == metrics["test"]["all"]["full"]  # the saved model scores the same
    cmp_out = tmp_path / "cmp.json"
    res = r.invoke(app, ["recsys", "compare", str(table), "--tokenizers", "item_id,agentictagger", "--seeds", "0,1",
                         "--sid-table", str(sid), "--max-epochs", "2", "--out", str(cmp_out), "--negatives", "30"])
    assert res.exit_code == 0, res.output
    got = json.loads(cmp_out.read_text())
    assert sorted((x["tokenizer"], x["seed"]) for x in got["rows"] if x["model"] == "ranker") == [
        ("agentictagger", 0), ("agentictagger", 1), ("item_id", 0), ("item_id", 1)]
    assert {s["tokenizer"] for s in got["summary"]} == {"item_id", "agentictagger", "-"}
    # a rerun finds every row done and trains nothing
    res = r.invoke(app, ["recsys", "compare", str(table), "--tokenizers", "item_id", "--seeds", "0", "--negatives", "30",
                         "--out", str(cmp_out)])
    assert res.exit_code == 0 and "seed 0: full" not in res.output


def test_recsys_generative_and_errors(tmp_path):
    table, sid = _tiny(tmp_path)
    r = CliRunner()
    res = r.invoke(app, ["recsys", "train", str(table), "-t", "agentictagger", "--model", "generative",
                         "--sid-table", str(sid), "--max-steps", "20"])
    assert res.exit_code == 0, res.output
    res = r.invoke(app, ["recsys", "train", str(table), "-t", "item_id"])
    assert res.exit_code == 2 and "cannot draw 100 negatives" in res.output  # before any training
    res = r.invoke(app, ["recsys", "train", str(table), "-t", "agentictagger", "--negatives", "30"])
    assert res.exit_code == 2 and "needs a semantic-ID table" in res.output
    res = r.invoke(app, ["recsys", "train", str(table), "-t", "bogus"])
    assert res.exit_code == 2 and "unknown tokenizer" in res.output
