"""Assignment on Beauty: a 2,000-item build vocabulary, then the full catalog.

  nice python bench/assign_beauty.py [--vocab runs/beauty2k/vocabulary.json]

On the 2,000 build items (the ids in the build folder's build_state/build_items.json):
  * assign with the default assigner (embedding), check every path, diagnostics and token report;
  * our utilization vs free-form keywords on the same items: top-3 TF-IDF words (all 2,000 items,
    offline) and 3 keywords from the embedded LLM (a seeded sample, SmolLM2-135M-Instruct);
  * throughput of the LLM assigner at level 1 with vs without prefix reuse, same items, one run;
    and items/s of the embedding assigner.
Then all 12,101 Beauty items with the default assigner into runs/beauty_full/ (assignments.jsonl,
semantic_ids.parquet/.jsonl, token_vocabulary.json, diagnostics.json, vocabulary.json), timed.
Writes bench/results/assign_beauty.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from agentictagger.assign import EmbeddingAssigner, LLMAssigner, assign_catalog, run_assign
from agentictagger.config import AssignConfig
from agentictagger.catalog import load_shared
from agentictagger.config import EmbeddingConfig, LLMConfig
from agentictagger.run.report import compute_diagnostics, run_report
from agentictagger.vocab.freeform import compare, llm_keywords, tfidf_keywords
from agentictagger.structures.semantic_ids import SemanticIds
from agentictagger.structures.vocabulary import Vocabulary

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command_line, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def throughput(items, vocab, n_items: int, choice_mode: str) -> dict:
    """The LLM assigner on level 1 only, the same items with prefix reuse off then on.

    No response cache (each answer is really computed); one warm-up call first so model loading
    is not timed.
    """
    from agentictagger.llm.factory import make_client

    out: dict = {"level": 1, "descriptors_at_level": len(vocab.children()), "items": n_items, "choice_mode": choice_mode}
    sample = items[:n_items]
    warm = make_client(LLMConfig(max_concurrency=1), None)
    LLMAssigner(warm, choice_mode=choice_mode, max_level=1).assign(items[-1:], vocab)
    for reuse in (False, True):
        client = make_client(LLMConfig(max_concurrency=1, prefix_reuse=reuse), None)
        a = LLMAssigner(client, choice_mode=choice_mode, max_level=1)
        t0 = time.perf_counter()
        paths = a.assign(sample, vocab)
        dt = time.perf_counter() - t0
        s = dict(a.stats)
        evaluated = s.get("prompt_tokens", 0) - s.get("cached_prompt_tokens", 0)
        out["with_prefix_reuse" if reuse else "without_prefix_reuse"] = {
            "seconds": round(dt, 2),
            "items_per_s": round(n_items / dt, 3),
            "prompt_tokens_per_item": s.get("prompt_tokens", 0) / n_items,
            "cached_prompt_tokens_per_item": s.get("cached_prompt_tokens", 0) / n_items,
            "prompt_tokens_evaluated_per_item": evaluated / n_items,
            "completion_or_choice_tokens_per_item": s.get("completion_tokens", 0) / n_items,
            "calls": s.get("calls", 0),
            "failed_calls": s.get("failed_calls", 0),
            "paths": paths,
        }
    on, off = out["with_prefix_reuse"], out["without_prefix_reuse"]
    out["same_answers"] = on.pop("paths") == off.pop("paths")
    out["evaluated_prompt_tokens_reduction"] = off["prompt_tokens_evaluated_per_item"] / max(on["prompt_tokens_evaluated_per_item"], 1e-9)
    out["speedup"] = on["items_per_s"] / off["items_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vocab", default=str(ROOT / "runs/beauty2k/vocabulary.json"))
    ap.add_argument("--freeform-llm-items", type=int, default=100, help="items for the LLM free-form keywords (seeded sample)")
    ap.add_argument("--throughput-items", type=int, default=20)
    ap.add_argument("--choice-mode", default=None, help="embedded choice mode for the throughput run (default: LLMConfig's)")
    ap.add_argument("--full-run-dir", default=str(ROOT / "runs/beauty_full"))
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache/agentictagger"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/assign_beauty.json"))
    args = ap.parse_args()

    from agentictagger.embed import Embedder

    t_start = time.perf_counter()
    vocab_path = Path(args.vocab)
    vocab = Vocabulary.load(vocab_path)
    catalog = load_shared("beauty")
    ids_file = vocab_path.parent / "build_state" / "build_items.json"
    if ids_file.exists():
        build_ids = json.loads(ids_file.read_text(encoding="utf-8"))
        items_note = f"the {len(build_ids)} build items listed in {ids_file.relative_to(ROOT) if ids_file.is_relative_to(ROOT) else ids_file}"
    else:
        build_ids = catalog.sample(2000, seed=0).ids
        items_note = "catalog.sample(2000, seed=0) (no build_items.json next to the vocabulary)"
    items = catalog.subset(build_ids)
    embedder = Embedder(EmbeddingConfig(), cache_dir=args.cache_dir)
    cfg = AssignConfig()
    res: dict = {
        "dataset": "Amazon 2014 Beauty (titles only)",
        "vocabulary": str(vocab_path.relative_to(ROOT) if vocab_path.is_relative_to(ROOT) else vocab_path),
        "vocabulary_descriptors": len(vocab),
        "vocabulary_meta": vocab.meta,
        "items": items_note,
        "assign_config": cfg.model_dump(mode="json"),
        "command": command_line(),
    }

    # 1. The 2,000 build items with the default assigner.
    log(f"assigning {len(items)} build items ({len(vocab)} descriptors)")
    # Encode (or load from cache) items and descriptors first, so the timing below is assignment only.
    embedder.encode(items.texts)
    assigner = EmbeddingAssigner(embedder, lookahead=cfg.lookahead)
    assigner.index(vocab)
    t0 = time.perf_counter()
    a = assign_catalog(items, vocab, assigner, chunk_size=len(items))
    dt = time.perf_counter() - t0
    invalid = [i for i, p in a if not vocab.is_valid_path(p)]
    diag = compute_diagnostics(a, vocab)
    diag["token_vocabulary"] = SemanticIds.from_assignment(a, vocab).token_report(vocab)
    res["build_items"] = {"invalid_paths": len(invalid), "invalid_examples": invalid[:5], "assign_seconds_embeddings_cached": round(dt, 3), "diagnostics": diag}

    # 2. Utilization: ours vs free form on the same items.
    ours = list(a.paths.values())
    vocab_ids = [d.id for d in vocab]
    res["freeform"] = {
        "all_build_items": {
            "reference": "top-3 TF-IDF words per item (sklearn, English stop words), offline",
            **compare(ours, vocab_ids, {"tfidf_top3": tfidf_keywords(items.texts, 3)}),
        }
    }
    if not args.skip_llm:
        from agentictagger.llm.factory import make_client

        sub = items.sample(args.freeform_llm_items, seed=0)
        log(f"free-form keywords from the embedded LLM on {len(sub)} items")
        client = make_client(LLMConfig(max_concurrency=1), Path(args.cache_dir) / "llm")
        t0 = time.perf_counter()
        kws, stats = llm_keywords(sub.items, client, n=3)
        res["freeform"]["llm_sample"] = {
            "reference": "3 keywords per item (JSON array of 3 strings) from the embedded SmolLM2-135M-Instruct, "
            f"seeded sample of {len(sub)} build items; ours on the same items",
            "seconds": round(time.perf_counter() - t0, 1),
            "llm_stats": stats,
            "examples": {i: k for i, k in list(zip(sub.ids, kws))[:5]},
            **compare([a[i] for i in sub.ids], vocab_ids, {"llm_keywords": kws, "tfidf_top3": tfidf_keywords(sub.texts, 3)}),
        }
        mode = args.choice_mode or LLMConfig().choice_mode
        log(f"throughput with vs without prefix reuse ({args.throughput_items} items, {mode})")
        res["throughput_llm"] = throughput(items.items, vocab, args.throughput_items, mode)
    res["throughput_embedding"] = {
        "items": len(items),
        "items_per_s_assignment_only": round(len(items) / dt, 1),
        "note": "item and descriptor embeddings already computed: the vectorised walk alone. Encoding speed: bench/results/embed_speed.json",
    }

    # 3. All of Beauty with the default assigner, written where the recsys bench reads it.
    run = Path(args.full_run_dir)
    for stale in ("assignments.partial.jsonl",):
        (run / stale).unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(vocab_path, run / "vocabulary.json")
    log(f"assigning all {len(catalog)} Beauty items into {run}")
    before = dict(embedder.stats)
    t0 = time.perf_counter()
    full = run_assign(catalog, vocab, cfg, run, embedder=embedder)
    full_s = time.perf_counter() - t0
    report = run_report(run, catalog, vocab)
    res["full_catalog"] = {
        "items": len(full),
        "invalid_paths": sum(1 for _, p in full if not vocab.is_valid_path(p)),
        "unique_semantic_ids": len({(tuple(r.path), r.resolver) for r in SemanticIds.read(run / "semantic_ids.parquet")}),
        "run_dir": str(run.relative_to(ROOT) if run.is_relative_to(ROOT) else run),
        "seconds_including_encoding_or_cache_reads": round(full_s, 1),
        "items_per_s_including_encoding_or_cache_reads": round(len(full) / full_s, 1),
        "embedding_stats_this_run": {k: embedder.stats[k] - before.get(k, 0) for k in embedder.stats},
        "diagnostics": report,
    }
    res["seconds_total"] = round(time.perf_counter() - t_start, 1)
    write_result(args.out, res, default=str)
    log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
