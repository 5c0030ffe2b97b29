"""Generative retrieval on Amazon Beauty: agentictagger IDs vs RQ-KMeans IDs vs random IDs vs SASRec.

Every generative run uses the same T5-style model, trainer, budget, seed and beam search; only the
item tokenization differs. SASRec (full-softmax cross-entropy) gets the same budget. With
``--sid-table`` and ``--vocab`` the agentictagger model is also decoded under critique constraints
(§5.3): the beam may only end on items whose level-1 descriptor the user simulator named after
reading the target item's title.

Writes ``bench/results/gr_beauty.json`` (after every method, so a killed run keeps what finished)
and the section "Generative retrieval on Beauty" of ``bench/RESULTS.md``.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python bench/gr_beauty.py \\
        --sid-table runs/beauty/semantic_ids.parquet --vocab runs/beauty/vocabulary.json \\
        --budget-minutes 8 --threads 2
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch starts its thread pool
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from agentictagger.recsys.critique import CallableSimulator, EmbeddingSimulator, allowed_matrix, group_index
from agentictagger.recsys.data import Samples, leave_last_out, load_shared_sequences
from agentictagger.recsys.metrics import evaluate_rankings
from agentictagger.recsys.sasrec import SASRecConfig, evaluate_sasrec, fit_sasrec
from agentictagger.recsys.sidtable import read_level1_descriptors, read_semantic_id_table
from agentictagger.recsys.tokenizers import ItemCodes, random_codes_like, rq_kmeans_codes, semantic_id_codes
from agentictagger.recsys.train import (TrainConfig, configure_threads, default_device, evaluate_generative,
                                        fit_generative, preset)

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Generative retrieval on Beauty"
log = logging.getLogger("gr_beauty")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sid-table", help="agentictagger semantic-ID table (Parquet/JSONL) for all Beauty items")
    ap.add_argument("--vocab", help="vocabulary.json of that table, for critique-constrained decoding")
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="wall time per model (training + validation)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="also cap every model at this many optimiser steps (fair when the cores are shared)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--methods", default="agentictagger,rq-kmeans,random,sasrec",
                    help="comma list; agentictagger is skipped without --sid-table")
    ap.add_argument("--random-like", default="auto", choices=["auto", "rq-kmeans", "agentictagger"],
                    help="whose codes the random IDs permute across items; auto = agentictagger when "
                         "--sid-table is given (the floor that isolates what the descriptors mean), else rq-kmeans")
    ap.add_argument("--critique-k", type=int, default=2, help="level-1 descriptors the offline simulator names")
    ap.add_argument("--simulator", default="offline", choices=["offline", "llm", "both"],
                    help="critique user simulator: offline embedding top-k, an LLM (the paper's setting), or both")
    ap.add_argument("--llm-config", help="RunConfig YAML whose llms['simulator'] (or 'default') endpoint plays the user")
    ap.add_argument("--llm-users", type=int, default=300,
                    help="test users the LLM simulator reads (one call each; vanilla is re-scored on the same users)")
    ap.add_argument("--critique-models", default="agentictagger",
                    help="generative models to also decode under critique (comma list)")
    ap.add_argument("--test-users", type=int, default=None, help="evaluate on a random subset (development only)")
    ap.add_argument("--val-users", type=int, default=None, help="override the preset's validation subsample")
    ap.add_argument("--lr", type=float, default=None, help="generative model learning rate (default: preset)")
    ap.add_argument("--out", default=str(ROOT / "bench/results/gr_beauty.json"))
    ap.add_argument("--results-md", default=str(ROOT / "bench/RESULTS.md"), help="'' to skip")
    ap.add_argument("--render-only", action="store_true",
                    help="only rewrite the RESULTS.md section from the JSON at --out (no training)")
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache/agentictagger"))
    return ap.parse_args(argv)


def item_texts(item_ids: list[str]) -> tuple[list[str], str]:
    from agentictagger.catalog import load_shared

    cat = load_shared("beauty")
    return [cat.by_id(i).text for i in item_ids], "agentictagger.catalog.load_shared('beauty')"


def subsample(s: Samples, n: int | None, seed: int) -> Samples:
    if n is None or n >= len(s):
        return s
    return s.subset(np.sort(np.random.default_rng(seed).choice(len(s), n, replace=False)))


def round_metrics(m: dict) -> dict:
    return {k: round(float(v), 4) for k, v in m.items()}


def llm_choose(config_path: str | None, cache_dir: str):
    """A ``choose(text, descriptors) -> ids`` callable on any configured LLM backend.

    Shared instructions and the level-1 list come first and the item last, so prefix caching pays
    for the shared part once; the answer is constrained to a JSON list of known ids."""
    from agentictagger.config import LLMConfig, RunConfig
    from agentictagger.llm.factory import make_client
    from agentictagger.llm.types import JsonSchemaConstraint

    rc = RunConfig.load(config_path) if config_path else RunConfig()
    cfg = rc.llms.get("simulator") or rc.llms.get("default") or LLMConfig()
    client = make_client(cfg, cache_dir)

    def choose(text, descriptors):
        listing = "\n".join(f"- {d.id}: {d.name}" + (f" ({d.definition})" if d.definition else "") for d in descriptors)
        system = ("You are a shopper telling a recommender what you want next. From the list of top-level "
                  "product categories, pick every category that could describe the product you want. "
                  'Answer as JSON: {"categories": [ids]}.\n\nCategories:\n' + listing)
        schema = {"type": "object", "properties": {"categories": {
            "type": "array", "items": {"enum": [d.id for d in descriptors]}, "minItems": 1, "maxItems": 5}},
            "required": ["categories"]}
        req = client.chat_request(system, f"The product you want next: {text}",
                                  constraint=JsonSchemaConstraint(schema, name="critique"), max_tokens=64)
        return list(dict.fromkeys(client.complete(req, stage="user_simulator").parsed["categories"]))

    return choose, f"llm:{cfg.backend}:{cfg.model}"


def write_markdown(path: Path, res: dict) -> None:
    lines = [SECTION, "", f"Command (run {res['finished_at'] or 'unfinished'}, {res['device']}, "
             f"{res['threads']} threads, {res['budget_minutes']} min budget per model):", "",
             "```", res["command"], "```", "",
             f"Amazon Beauty 5-core, leave-last-out, {res['data']['test_users']} test users, ranked over all "
             f"{res['data']['items']} items; history ≤ {res['max_history']} items; seed {res['seed']}."
             + (f" Generative models ({res['preset']} preset): T5-style {res['model']['num_layers']}+"
                f"{res['model']['num_layers']} layers, d_model {res['model']['d_model']}, d_ff {res['model']['d_ff']}, "
                f"{res['model']['num_heads']} heads x {res['model']['d_kv']}, beam {res['train']['beam_size']} through "
                f"a prefix trie, early stopping on validation N@10 ({res['train']['val_users'] or 'all'} validation users)."
                if "model" in res else ""), "",
             "| method | loss | R@5 | N@5 | R@10 | N@10 | train time (s) | epochs | stopped by | tokens/item | vocab (base+resolvers) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        t = r["test"]
        tpi = r.get("tokens_per_item")
        tpi_s = f"{tpi['mean']:.2f} ({tpi['min']}-{tpi['max']})" if tpi else ("1 (item ID)" if r.get("key") == "sasrec" else "-")
        lines.append(f"| {r['method']} | {r['loss']} | {t['R@5']:.4f} | {t['N@5']:.4f} | {t['R@10']:.4f} | "
                     f"{t['N@10']:.4f} | {r['train_seconds']:.0f} | {r['epochs']:.2f} | {r['stopped_by']} | {tpi_s} | "
                     f"{r.get('vocab', r.get('n_items', ''))} |")
    if res.get("critique"):
        lines += ["", "Critique-constrained decoding (§5.3): the beam may only end on items whose level-1 "
                  "descriptor the user simulator named after reading the target item's text.", "",
                  "| model | simulator | users | level-1 named per user (of all) | target's level-1 named | | R@5 | N@5 | R@10 | N@10 |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for c in res["critique"]:
            for label, m in (("vanilla", c["vanilla"]), ("+critique", c["critique"])):
                lines.append(f"| {c['model']} | {c['simulator']} | {c.get('users', res['data']['test_users'])} | "
                             f"{c.get('mean_allowed', c.get('k'))} ({c['n_level1']}) | "
                             f"{c['simulator_recall']:.3f} | {label} | {m['R@5']:.4f} | "
                             f"{m['N@5']:.4f} | {m['R@10']:.4f} | {m['N@10']:.4f} |")
    lines += ["", f"Raw results: `bench/results/{Path(res['out']).name}`.", ""]
    notes = list(res.get("notes") or [])
    gen = [r for r in res["rows"] if r.get("key") != "sasrec" and "tokens_per_item" in r]
    if gen:
        ep = ", ".join(f"{r['method']} {r['epochs']:.2f}" for r in gen)
        notes.append(f"Epochs the generative models reached inside the budget: {ep} (A.1 trains up to 200 epochs "
                     "with patience 20), so these are early-training numbers, not converged ones; SASRec's cheaper "
                     "steps buy it more epochs in the same wall time.")
    if res.get("critique"):
        meta = res.get("vocab_meta") or {}
        how = (f"this vocabulary was built by the '{meta.get('architect')}' architect and '{meta.get('annotator')}' "
               "annotator" if meta else "the vocabulary's build mode is not recorded")
        notes.append("The critique 'leaks' the target's level-1 descriptor by design (§5.3). The offline simulator "
                     f"embeds with the same sentence model as the offline agents; {how}, so where both are "
                     "'embedding' the simulator and the vocabulary share one notion of similarity and the "
                     "'target's level-1 named' rate is optimistic. An LLM simulator is the paper's setting.")
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    start = text.find(SECTION)
    block = "\n".join(lines)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + block + (text[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.render_only:
        write_markdown(Path(args.results_md), json.loads(Path(args.out).read_text(encoding="utf-8")))
        return 0
    configure_threads(args.threads)
    device = default_device()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in ("agentictagger", "rq-kmeans", "random", "sasrec")]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from agentictagger, rq-kmeans, random, sasrec")
    if "agentictagger" in methods and not args.sid_table:
        log.warning("no --sid-table: skipping the agentictagger IDs")
        methods.remove("agentictagger")
    if args.random_like == "auto":
        args.random_like = "agentictagger" if args.sid_table else "rq-kmeans"
    t_all = time.perf_counter()
    data = load_shared_sequences("beauty")
    split = leave_last_out(data, max_history=20)
    test = subsample(split.test, args.test_users, args.seed)
    texts, text_source = item_texts(data.item_ids)

    res: dict = {
        "command": "OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(
            shlex.quote(a) for a in ["bench/gr_beauty.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "finished_at": None,
        "device": str(device), "threads": args.threads, "budget_minutes": args.budget_minutes,
        "preset": args.preset, "seed": args.seed, "max_history": 20, "out": args.out,
        "data": {"users": len(data.users), "items": data.n_items, "interactions": data.n_interactions,
                 "train_samples": len(split.train), "valid_users": len(split.valid), "test_users": len(test),
                 "item_text": text_source},
        "rows": [], "critique": [], "notes": [],
    }
    if args.test_users:
        res["notes"].append(f"DEVELOPMENT RUN: test metrics on a random {len(test)}-user subset, not all users.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        out.write_text(json.dumps(res, indent=2) + "\n", encoding="utf-8")
        if args.results_md:
            write_markdown(Path(args.results_md), res)

    # -- tokenizers ------------------------------------------------------------------------------
    encode = None
    codes: dict[str, ItemCodes] = {}
    needs_emb = any(m in methods for m in ("rq-kmeans", "random")) or args.vocab
    if needs_emb:
        from agentictagger.embed import Embedder

        embedder = Embedder(cache_dir=args.cache_dir)
        encode = embedder.encode
        t = time.perf_counter()
        emb = encode(texts)
        res["embedding"] = {"model": embedder.cfg.model, "dim": int(emb.shape[1]), "seconds": round(time.perf_counter() - t, 1)}
    sid_rows = read_semantic_id_table(args.sid_table) if args.sid_table else None
    # The table and vocabulary are not committed (runs/ is ignored): record what was read.
    import hashlib

    res["inputs"] = {str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]
                     for p in (args.sid_table, args.vocab) if p}
    vocab_bytes = Path(args.vocab).read_bytes() if args.vocab else None  # read once, before anything can rewrite it
    if sid_rows is not None:
        codes["agentictagger"] = semantic_id_codes(sid_rows, data.item_ids)
    if "rq-kmeans" in methods or ("random" in methods and args.random_like == "rq-kmeans"):
        t = time.perf_counter()
        codes["rq-kmeans"] = rq_kmeans_codes(emb, (256, 256, 256), seed=args.seed)
        res["rq_kmeans_seconds"] = round(time.perf_counter() - t, 1)
    if "random" in methods:
        if args.random_like not in codes:
            raise SystemExit(f"--random-like {args.random_like}: those codes are not built (give --sid-table?)")
        codes["random"] = random_codes_like(codes[args.random_like], seed=args.seed)

    # -- generative models -------------------------------------------------------------------------
    runs = {}
    for m in [m for m in methods if m != "sasrec"]:
        c = codes[m]
        cfg, tc = preset(args.preset, c.vocab_size, budget_minutes=args.budget_minutes, seed=args.seed,
                         val_users=args.val_users, lr=args.lr, max_steps=args.max_steps)
        log.info("training %s: %s", m, c.summary())
        run = fit_generative(c, split, cfg, tc, device)
        t = time.perf_counter()
        metrics, _ = evaluate_generative(run, test)
        runs[m] = run
        res["model"], res["train"] = cfg.to_dict(), tc.to_dict()
        res["rows"].append({
            "key": m, "method": m if m != "random" else f"random IDs (shape of {args.random_like})",
            "loss": "CE (next-token)",
            **c.summary(), "vocab": f"{c.n_base_tokens}+{c.n_resolver_tokens}", "test": round_metrics(metrics),
            "valid_best": round_metrics(run.fit.best_valid), "train_seconds": run.fit.train_seconds,
            "steps": run.fit.steps, "epochs": run.fit.epochs, "stopped_by": run.fit.stopped_by,
            "test_eval_seconds": round(time.perf_counter() - t, 1), "valid_history": run.fit.history, **c.meta,
        })
        save()

    # -- critique-constrained decoding ---------------------------------------------------------------
    crit_models = [m for m in args.critique_models.split(",") if m in runs]
    if args.vocab and sid_rows is not None and crit_models:
        descs = read_level1_descriptors(args.vocab, text=vocab_bytes.decode("utf-8"))
        res["vocab_meta"] = json.loads(vocab_bytes).get("meta") or {}
        item_l1 = codes["agentictagger"].item_level1
        groups, gids = group_index(item_l1, descs)
        sims = []
        if args.simulator in ("offline", "both"):
            sims.append((EmbeddingSimulator(descs, encode, k=args.critique_k), test))
        if args.simulator in ("llm", "both"):
            choose, llm_name = llm_choose(args.llm_config, args.cache_dir)
            sims.append((CallableSimulator(descs, choose, name=llm_name),
                         subsample(test, args.llm_users, args.seed + 1)))
        for sim, users in sims:
            t = time.perf_counter()
            allowed = sim.allowed([texts[i] for i in users.targets])
            sim_seconds = time.perf_counter() - t
            am = allowed_matrix(allowed, gids)
            sim_recall = float(am[np.arange(len(users)), groups[users.targets]].mean())
            for m in crit_models:
                t = time.perf_counter()
                cm, _ = evaluate_generative(runs[m], users, am, groups, len(gids))
                if users is test:
                    vanilla = next(r["test"] for r in res["rows"] if r.get("key") == m)
                else:
                    vanilla = round_metrics(evaluate_generative(runs[m], users)[0])
                res["critique"].append({
                    "model": m, "simulator": sim.name, "users": len(users), "n_level1": len(descs),
                    "mean_allowed": round(float(am.sum(1).mean()), 2),
                    "simulator_recall": round(sim_recall, 4), "simulator_seconds": round(sim_seconds, 1),
                    "vanilla": vanilla, "critique": round_metrics(cm),
                    "improvement": {k: (round(cm[k] / vanilla[k] - 1, 4) if vanilla[k] else None) for k in cm},
                    "eval_seconds": round(time.perf_counter() - t, 1),
                })
                save()

    # -- SASRec ----------------------------------------------------------------------------------------
    if "sasrec" in methods:
        tc = TrainConfig(lr=0.001, weight_decay=0.0, budget_minutes=args.budget_minutes, seed=args.seed,
                         eval_every_steps=None, val_users=None, patience=10)
        scfg = SASRecConfig(n_items=data.n_items, max_len=20)
        run = fit_sasrec(split, data.n_items, scfg, tc, device)
        metrics = evaluate_sasrec(run, test)
        res["rows"].append({
            "key": "sasrec", "method": "SASRec (item IDs)", "loss": "CE (full softmax)", "test": round_metrics(metrics),
            "valid_best": round_metrics(run.fit.best_valid), "train_seconds": run.fit.train_seconds,
            "steps": run.fit.steps, "epochs": run.fit.epochs, "stopped_by": run.fit.stopped_by,
            "n_items": data.n_items, "config": scfg.to_dict(), "valid_history": run.fit.history,
        })
        save()

    # -- popularity: a reference floor that needs no training ------------------------------------------
    pop = np.bincount(np.concatenate(split.train_sequences), minlength=data.n_items)
    top = np.argsort(-pop, kind="stable")[:10]
    res["rows"].append({"key": "popularity", "method": "most popular (training interactions)", "loss": "none",
                        "test": round_metrics(evaluate_rankings(np.tile(top, (len(test), 1)), test.targets)),
                        "train_seconds": 0.0, "epochs": 0.0, "stopped_by": "-", "vocab": "-"})

    res["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    save()
    print(json.dumps({r["method"]: r["test"] for r in res["rows"]}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
