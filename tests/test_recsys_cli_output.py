"""What `agentictagger recsys` prints about its data and results: a data summary line, "n/a"
for the spread of a single seed, RQ codebooks capped by the catalog's size, and no sklearn
convergence warnings from k-means over repeated item texts."""

from __future__ import annotations

import json
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from test_recsys_cli import _tiny
from typer.testing import CliRunner

from agentictagger.cli import app
from agentictagger.recsys.pipeline import Dataset, codebook_sizes_for, make_codes


def test_compare_prints_a_data_summary_and_na_for_one_seed(tmp_path):
    table, sid = _tiny(tmp_path)
    out = tmp_path / "cmp.json"
    res = CliRunner().invoke(app, ["recsys", "compare", str(table), "--tokenizers", "item_id", "--seeds", "0",
                                   "--max-epochs", "1", "--negatives", "30", "--out", str(out)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "interactions: 120 users, 60 items, 720 interactions, density 10.0000% (120 test users)" in res.output
    assert "± n/a" in res.output and "± 0.0000" not in res.output
    assert json.loads(out.read_text())["summary"][0]["seeds"] == [0]


def test_rq_codebooks_are_capped_by_the_item_count(tmp_path):
    assert codebook_sizes_for(304, (256, 256, 256)) == (19, 19, 19)
    assert codebook_sizes_for(4385, (256, 256, 256)) == (256, 256, 256)  # the benchmarks' catalogs keep 256
    assert codebook_sizes_for(10, (256, 8)) == (2, 2)
    table, _ = _tiny(tmp_path)
    ds = Dataset.load(table)
    emb = np.random.default_rng(0).normal(size=(ds.data.n_items, 8)).astype(np.float32)
    codes = make_codes("rq-kmeans", ds, embeddings=emb)
    assert codes.n_base_tokens <= 3 * 3  # 60 items: 3 entries per level
    assert "3x3x3" in codes.description


def test_kmeans_convergence_warnings_are_not_shown(tmp_path):
    table, _ = _tiny(tmp_path)
    items = tmp_path / "items.jsonl"
    # Two distinct texts for 60 items: k-means finds fewer distinct clusters than asked for.
    items.write_text("".join(json.dumps({"item_id": f"it{i}", "title": f"widget kind {i % 2}"}) + "\n" for i in range(60)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = CliRunner().invoke(app, ["recsys", "compare", str(table), "--items", str(items), "--tokenizers", "rq-kmeans",
                                       "--seeds", "0", "--max-epochs", "1", "--negatives", "30",
                                       "--out", str(tmp_path / "cmp.json")])
    assert res.exit_code == 0, res.output
    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert "ConvergenceWarning" not in res.output
