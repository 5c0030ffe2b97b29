"""Do builds repeat exactly? How the embedding's padding (``embedding.padding``) decides it.

sentence-transformers pads each batch to its longest text, so the matrices a text meets, and the
last bits of its vector, depend on the texts it is encoded with. ``padding: bucket`` pads every
text to the next multiple of 8 tokens and encodes it only beside texts of that length. This bench
measures, for both settings, on Amazon 2018 Industrial_and_Scientific's development half
(crc32(item_id) even, as ``bench/tune_grouping.py``; no labels read):

1. **Vectors**: 400 texts (200 titles, 200 of their first three words, the length of names and
   phrases), encoded all at once, in shuffled requests of 16, one at a time, and in the shuffled
   requests of 16 from two threads side by side, as a build's jobs encode (no cache): how many
   texts get a different vector (bit for bit) in another layout, and the largest difference.
2. **Speed**: encoding the half's titles and their first three words (no cache), each setting 3
   times, interleaved.
3. **Builds**: the offline build (default settings, seed 0), three times per setting: (a) from an
   empty cache, (b) again on (a)'s cache (warm), (c) from a cache holding the item texts encoded in
   shuffled batches of 16 (another batch history), (d) again from an empty cache; whether the
   vocabulary (names and tree) and every item's path are the same as (a)'s.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/embed_determinism.py

writes bench/results/embed_determinism.json and prints a short table.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from _provenance import command_line, write_result  # noqa: E402
from tune_renames import built, naming_catalog  # noqa: E402

from agentictagger.config import EmbeddingConfig  # noqa: E402
from agentictagger.embed import Embedder  # noqa: E402

SETTINGS = ("batch", "bucket")


def layouts(emb: Embedder, texts: list[str], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The texts' vectors in three layouts, rows in the texts' order."""
    whole = emb.encode(texts)
    order = rng.permutation(len(texts))
    shuffled = np.empty_like(whole)
    for i in range(0, len(order), 16):
        idx = order[i : i + 16]
        shuffled[idx] = emb.encode([texts[j] for j in idx])
    alone = np.stack([emb.encode([t])[0] for t in texts])
    # As a build's jobs do: requests of 16 texts from two threads, encoded side by side (each
    # request under one batch, so they share the model and its tokenizer; see embed._EncodeGate).
    side = np.empty_like(whole)
    chunks = [order[i : i + 16] for i in range(0, len(order), 16)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        for idx, arr in zip(chunks, pool.map(lambda idx: emb.encode([texts[j] for j in idx]), chunks)):
            side[idx] = arr
    return {"whole": whole, "shuffled_16": shuffled, "alone": alone, "side_by_side_16": side}


def vector_check(texts: list[str], setting: str, seed: int) -> dict:
    emb = Embedder(EmbeddingConfig(padding=setting, cache=False))
    vs = layouts(emb, texts, np.random.default_rng(seed))
    base = vs["whole"]
    out = {}
    for name in ("shuffled_16", "alone", "side_by_side_16"):
        diff = np.abs(vs[name] - base)
        out[f"whole_vs_{name}"] = {
            "texts_with_another_vector": int(np.count_nonzero(diff.max(axis=1) > 0)),
            "max_abs_difference": float(diff.max()),
        }
    return out


def speed(texts: list[str], setting: str) -> float:
    emb = Embedder(EmbeddingConfig(padding=setting, cache=False))
    t0 = time.monotonic()
    emb.encode(texts)
    return round(time.monotonic() - t0, 2)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_check(dev, setting: str, work: Path, seed: int) -> dict:
    """Builds (a) cold, (b) warm on (a)'s cache, (c) on a cache filled in shuffled batches, (d) cold
    again, from another empty cache."""
    root = work / setting
    if root.exists():
        shutil.rmtree(root)
    cold, other, cold_again = root / "cache_a", root / "cache_c", root / "cache_d"
    filler = Embedder(EmbeddingConfig(padding=setting), cache_dir=other)
    order = np.random.default_rng(seed).permutation(len(dev.texts))
    for i in range(0, len(order), 16):
        filler.encode([dev.texts[j] for j in order[i : i + 16]])
    rows = {}
    for name, cache in (("a_cold", cold), ("b_warm", cold), ("c_other_batches", other), ("d_cold_again", cold_again)):
        run_dir = root / name
        sets = [f"seed={seed}", f"cache_dir={cache}", f"embedding.padding={setting}"]
        t0 = time.monotonic()
        vocab, paths, _, _ = built(run_dir, dev, sets)
        rows[name] = {
            "seconds": round(time.monotonic() - t0, 1),
            "descriptors": len(vocab),
            "vocabulary_sha256": digest(run_dir / "vocabulary.json"),
            "names": {d.id: d.name for d in vocab},
            "paths": paths,
        }
    base = rows["a_cold"]
    out = {}
    for name, r in rows.items():
        same_names = r["names"] == base["names"]
        out[name] = {
            "seconds": r["seconds"],
            "descriptors": r["descriptors"],
            "vocabulary_sha256": r["vocabulary_sha256"],
            "same_vocabulary_file_as_a": r["vocabulary_sha256"] == base["vocabulary_sha256"],
            "same_names_and_tree_as_a": same_names,
            "items_with_another_path_than_a": sum(p != q for p, q in zip(r["paths"], base["paths"])),
            "descriptor_names_differing_from_a": sorted(
                {f"{base['names'].get(k, '-')} -> {r['names'].get(k, '-')}" for k in set(r["names"]) | set(base["names"])
                 if r["names"].get(k) != base["names"].get(k)}
            )[:20],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "embed_determinism.json"))
    args = ap.parse_args()
    dev = naming_catalog("scientific")
    rng = np.random.default_rng(args.seed)
    titles = [dev.texts[i] for i in rng.choice(len(dev.texts), 200, replace=False)]
    sample = titles + [" ".join(t.split()[:3]) for t in titles]
    short = [" ".join(t.split()[:3]) for t in dev.texts]

    vectors = {s: vector_check(sample, s, args.seed) for s in SETTINGS}
    for s in SETTINGS:
        print(f"{s}: vectors {vectors[s]}", flush=True)
    times: dict[str, list[float]] = {s: [] for s in SETTINGS}
    for r in range(3):
        for s in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
            times[s].append(speed(dev.texts + short, s))
    print(f"encoding seconds: {times}", flush=True)
    work = REPO / "bench" / "runs" / "embed_determinism"
    builds = {}
    for s in SETTINGS:
        builds[s] = build_check(dev, s, work, args.seed)
        print(f"{s}: builds " + ", ".join(f"{k}: same as a {v['same_names_and_tree_as_a']}, "
                                          f"{v['items_with_another_path_than_a']} items moved" for k, v in builds[s].items()),
              flush=True)
    result = {
        "command": command_line(),
        "what": "whether vectors and offline builds repeat exactly under embedding.padding batch / bucket, on "
        f"Scientific's development half ({len(dev)} items; no labels read)",
        "vector_sample": {"texts": len(sample), "titles": len(titles), "first_three_words": len(sample) - len(titles)},
        "vectors": vectors,
        "encoding_seconds": {s: {"runs": t, "mean": round(float(np.mean(t)), 2), "sd": round(float(np.std(t, ddof=1)), 2)}
                             for s, t in times.items()},
        "encoded_texts_per_run": len(dev.texts) + len(short),
        "builds": builds,
        "machine": "2 cores, no GPU",
    }
    write_result(Path(args.out), result)
    print("\n| padding | texts with another vector (shuffled batches / alone / side by side, of 400) | encoding s (mean ± sd) "
          "| warm build = cold | other batch history = cold | second cold build = cold |")
    print("|---|---|---|---|---|---|")
    for s in SETTINGS:
        v, b = vectors[s], builds[s]
        print(f"| {s} | {v['whole_vs_shuffled_16']['texts_with_another_vector']} / {v['whole_vs_alone']['texts_with_another_vector']} "
              f"/ {v['whole_vs_side_by_side_16']['texts_with_another_vector']} "
              f"| {result['encoding_seconds'][s]['mean']} ± {result['encoding_seconds'][s]['sd']} "
              f"| {b['b_warm']['same_names_and_tree_as_a']} ({b['b_warm']['items_with_another_path_than_a']} items moved) "
              f"| {b['c_other_batches']['same_names_and_tree_as_a']} ({b['c_other_batches']['items_with_another_path_than_a']} items moved) "
              f"| {b['d_cold_again']['same_names_and_tree_as_a']} ({b['d_cold_again']['items_with_another_path_than_a']} items moved) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
