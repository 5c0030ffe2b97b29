"""Text query -> descriptor -> items: do a person's words find the items through the descriptors?

The paper's abstract counts term-based retrieval among the uses of named descriptors. Here the
queries are the human category names of a labelled catalog (Amazon's category names at two
depths, each with at least ``--min-items`` items), and a query's relevant items are the items
carrying that category. Every method returns a set of items for a query; the score is the set's
precision, recall and F1 against the relevant items, averaged over queries (macro).

* **ours (names)**: the query's best descriptor at any level, by the cosine between the query
  and the descriptor's name + definition (the text the assigner embeds), in the offline build's
  embedding space; the items are those whose assigned path passes through that descriptor.
* **ours without names**: the same tree and assignment, but each descriptor matched by the mean
  embedding of its assigned items (what a tree of unnamed codes, e.g. RQ-VAE or RQ-KMeans semantic
  IDs, allows: a code has no text, so a query can only reach it through its items).
* **RQ-KMeans codes**: the semantic IDs the generative-retrieval bench compares against
  (residual KMeans over the same embeddings, ``recsys.tokenizers.rq_kmeans_codes``) with
  codebooks of (our level-1 count, our level-2 count / level-1 count); every code prefix of
  length 1 or 2 is a node, matched by the mean embedding of its items (a code has no name).
* **KMeans**: flat KMeans (n_init 10) on the item embeddings with k = our number of level-2
  descriptors, the query's nearest centroid's cluster.
* **dense, same size**: the N items closest to the query, N = the size of ours' answer (the
  strongest baseline: an embedding search needs no vocabulary at all).
* **TF-IDF, same size**: the N items with the highest TF-IDF cosine to the query (scikit-learn).

Scientific's settings were chosen on it (development); Office was used to choose nothing (held
out). Builds are the offline profile of ``bench/taxonomy_alignment.py`` (same run folders), seeds
0-2; nothing here is tuned.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/text_query.py [--catalogs scientific office] [--seeds 0 1 2]

writes bench/results/text_query.json and prints a short table.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _provenance import write_result  # noqa: E402
from taxonomy_alignment import mean_sd, run_profile  # noqa: E402

from agentictagger.catalog import LCREC_LABEL_LEVEL, load_shared, scientific_label  # noqa: E402
from agentictagger.config import RunConfig  # noqa: E402
from agentictagger.structures.assignment import Assignment  # noqa: E402
from agentictagger.structures.vocabulary import Vocabulary, descriptor_text  # noqa: E402

METHODS = ("ours (names)", "ours without names", "RQ-KMeans codes", "KMeans", "dense, same size", "TF-IDF, same size")


def unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def prf(got: set[int], rel: set[int]) -> tuple[float, float, float]:
    hit = len(got & rel)
    p = hit / len(got) if got else 0.0
    r = hit / len(rel) if rel else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def queries_of(catalog, level: int, min_items: int) -> dict[str, set[int]]:
    by: dict[str, set[int]] = defaultdict(set)
    for r, it in enumerate(catalog):
        lab = scientific_label(it.fields.get("categories"), level)
        if lab:
            by[lab].add(r)
    return {q: rows for q, rows in sorted(by.items()) if len(rows) >= min_items}


def evaluate(name: str, seeds: list[int], min_items: int) -> dict:
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import TfidfVectorizer

    from agentictagger.embed import Embedder

    catalog = load_shared(name)
    ids = catalog.ids
    row = {i: r for r, i in enumerate(ids)}
    cfg = RunConfig()
    embedder = Embedder(cfg.embedding, cache_dir=str(REPO / cfg.cache_dir))
    emb = unit(embedder.encode(catalog.texts))
    lvl = LCREC_LABEL_LEVEL[name]
    query_sets = {f"Amazon level {lv}": queries_of(catalog, lv, min_items) for lv in (lvl, lvl + 1)}
    tfidf = TfidfVectorizer(sublinear_tf=True, stop_words="english")
    tf_items = tfidf.fit_transform(catalog.texts)
    qvec = {q: v for qs in query_sets.values() for q, v in zip(qs, unit(embedder.encode(list(qs))))}
    out: dict = {
        "catalog": name,
        "role": "development (settings chosen here)" if name == "scientific" else "held out (nothing chosen here)",
        "items": len(ids),
        "query_sets": {k: {"queries": len(v), "relevant_items_median": int(np.median([len(s) for s in v.values()]))}
                       for k, v in query_sets.items()},
        "per_seed": [],
    }
    for seed in seeds:
        info = run_profile(name, "offline", seed, False, [])
        run_dir = REPO / info["run_dir"]
        vocab = Vocabulary.load(run_dir / "vocabulary.json")
        paths = Assignment.load_jsonl(run_dir / "assignments.jsonl").paths
        members: dict[str, set[int]] = defaultdict(set)
        for i, path in paths.items():
            for d in path:
                members[d].add(row[i])
        dids = [d.id for d in vocab if members.get(d.id)]
        name_vecs = unit(embedder.encode([descriptor_text(vocab[d].name, vocab[d].definition) for d in dids]))
        cent_vecs = unit(np.stack([emb[sorted(members[d])].mean(axis=0) for d in dids]))
        k2 = len(vocab.level(2)) or len(vocab.level(1))
        km = KMeans(n_clusters=k2, n_init=10, random_state=seed).fit(emb)
        km_members = [set(np.flatnonzero(km.labels_ == c).tolist()) for c in range(k2)]
        km_cent = unit(km.cluster_centers_)
        from agentictagger.recsys.tokenizers import rq_kmeans_codes

        k1 = len(vocab.level(1))
        rq = rq_kmeans_codes(emb, codebook_sizes=(k1, max(2, round(k2 / max(1, k1)))), seed=seed)
        rq_nodes: dict[tuple[int, ...], set[int]] = defaultdict(set)
        for r, code in enumerate(rq.codes):
            for depth in (1, 2):
                rq_nodes[tuple(code[:depth])].add(r)
        rq_sets = list(rq_nodes.values())
        rq_cent = unit(np.stack([emb[sorted(m)].mean(axis=0) for m in rq_sets]))
        entry: dict = {"seed": seed, "run_dir": info["run_dir"], "descriptors": len(dids), "kmeans_k": k2,
                       "rq_kmeans_nodes": len(rq_sets), "query_sets": {}}
        for qs_name, qs in query_sets.items():
            scores: dict[str, list[tuple[float, float, float]]] = {m: [] for m in METHODS}
            sizes: list[int] = []
            examples = []
            for q, rel in qs.items():
                v = qvec[q]
                best = int(np.argmax(name_vecs @ v))
                ours = members[dids[best]]
                sizes.append(len(ours))
                scores["ours (names)"].append(prf(ours, rel))
                scores["ours without names"].append(prf(members[dids[int(np.argmax(cent_vecs @ v))]], rel))
                scores["RQ-KMeans codes"].append(prf(rq_sets[int(np.argmax(rq_cent @ v))], rel))
                scores["KMeans"].append(prf(km_members[int(np.argmax(km_cent @ v))], rel))
                n = len(ours)
                scores["dense, same size"].append(prf(set(np.argsort(-(emb @ v))[:n].tolist()), rel))
                tq = (tf_items @ tfidf.transform([q]).T).toarray().ravel()
                scores["TF-IDF, same size"].append(prf(set(np.argsort(-tq, kind="stable")[:n].tolist()), rel))
                if len(examples) < 12:
                    examples.append({"query": q, "relevant": len(rel), "descriptor": vocab.path_names(dids[best]),
                                     "retrieved": n, "f1": round(scores["ours (names)"][-1][2], 3)})
            entry["query_sets"][qs_name] = {
                "methods": {m: {"precision": round(float(np.mean([s[0] for s in v])), 4),
                                "recall": round(float(np.mean([s[1] for s in v])), 4),
                                "f1": round(float(np.mean([s[2] for s in v])), 4)} for m, v in scores.items()},
                "ours_retrieved_median": int(np.median(sizes)),
                "examples": examples,
            }
        out["per_seed"].append(entry)
    out["summary"] = {
        qs: {m: {k: mean_sd([e["query_sets"][qs]["methods"][m][k] for e in out["per_seed"]]) for k in ("precision", "recall", "f1")}
             for m in METHODS}
        for qs in query_sets
    }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--catalogs", nargs="+", default=["scientific", "office"], choices=["scientific", "office"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--min-items", type=int, default=10, help="queries: categories with at least this many items")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "text_query.json"))
    a = ap.parse_args()
    result = {"what": __doc__.split("\n\n")[0], "seeds": a.seeds, "min_items": a.min_items,
              "catalogs": {c: evaluate(c, a.seeds, a.min_items) for c in a.catalogs}}
    write_result(a.out, result)
    print(f"{'catalog':<11} {'queries':<16} " + " ".join(f"{m[:18]:>19}" for m in METHODS) + "   (F1, mean ± sd over seeds)")
    for c, r in result["catalogs"].items():
        for qs, by in r["summary"].items():
            cells = " ".join(f"{by[m]['f1']['mean']:.3f} ± {by[m]['f1']['sd']:.3f}".rjust(19) for m in METHODS)
            print(f"{c:<11} {qs + ' (' + str(r['query_sets'][qs]['queries']) + ')':<16} {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
