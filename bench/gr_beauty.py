"""Generative retrieval (§5.1, TIGER-style) on any dataset: agentictagger IDs vs RQ-VAE vs RQ-KMeans
vs random IDs vs SASRec, over several seeds.

Every generative run uses the same T5-style model, trainer, budget, step cap, seed and beam search;
only the item tokenization differs. SASRec (full-softmax cross-entropy) gets the same budget and
the same step cap. Each seed rebuilds every tokenizer with that seed (``--sid-table`` may contain
``{seed}``: one vocabulary build per seed). With ``--vocab`` every generative model is also decoded
under critique constraints (§5.3) through agentictagger's level-1 groups.

Writes ``bench/results/gr_<dataset>.json`` after every model (a killed run keeps what finished);
``--results-md bench/RESULTS.md`` (or ``--render-only``) rewrites that file's section.

    OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python bench/gr_beauty.py --seeds 0,1,2 \\
        --sid-table 'bench/runs/align/beauty_offline_s{seed}/semantic_ids.parquet' \\
        --vocab 'bench/runs/align/beauty_offline_s{seed}/vocabulary.json' --budget-minutes 8 --threads 2
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
from dataclasses import replace
from pathlib import Path

from _plots import plot_validation_curves  # noqa: E402 (bench/ is on sys.path when run as a script)
from _provenance import write_result  # noqa: E402
from agentictagger.files import atomic_write_text  # noqa: E402

import numpy as np
import torch

from agentictagger.recsys.critique import CallableSimulator, EmbeddingSimulator, allowed_matrix, group_index
from agentictagger.recsys.data import Samples
from agentictagger.recsys.pipeline import Dataset, make_codes
from agentictagger.recsys.metrics import evaluate_rankings
from agentictagger.recsys.sasrec import SASRecConfig, evaluate_sasrec, fit_sasrec
from agentictagger.recsys.sidtable import read_level1_descriptors
from agentictagger.recsys.tokenizers import ItemCodes, random_codes_like
from agentictagger.recsys.train import (TrainConfig, configure_threads, default_device, evaluate_generative,
                                        fit_generative, preset)

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("gr_beauty")


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beauty", help="shared dataset name or interaction table (see recsys.pipeline)")
    ap.add_argument("--items", default=None, help="catalog with item texts (for a table dataset)")
    ap.add_argument("--sid-table", help="agentictagger semantic-ID table (Parquet/JSONL) for all items; may contain "
                                        "{seed} for one build per seed")
    ap.add_argument("--vocab", help="vocabulary.json of that table, for critique-constrained decoding ({seed} allowed)")
    ap.add_argument("--budget-minutes", type=float, default=8.0, help="wall time per model (training + validation)")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="also cap every model, SASRec included, at this many optimiser steps (fair when the "
                         "cores are shared)")
    ap.add_argument("--max-epochs", type=int, default=None,
                    help="train every model, SASRec included, for exactly this many epochs (no wall-time budget, "
                         "validation once per epoch, the best validation epoch kept): models compared at equal "
                         "epochs; resumable through --checkpoint-dir")
    ap.add_argument("--checkpoint-dir", default=None,
                    help="resumable training: every fit checkpoints each epoch under this folder and a rerun of the "
                         "same command continues it (default with --max-epochs: bench/runs/gr/<dataset>)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--preset", default="cpu", choices=["cpu", "paper"])
    ap.add_argument("--seeds", default="0", help="comma list; each seed retrains every model (and its tokenizer)")
    ap.add_argument("--methods", default="agentictagger,rq-vae,rq-kmeans,random,sasrec",
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
    ap.add_argument("--critique-models", default="agentictagger,rq-vae,rq-kmeans",
                    help="generative models to also decode under critique (comma list)")
    ap.add_argument("--test-users", type=int, default=None,
                    help="evaluate on a fixed random subset of test users (the same for every model and seed; stated "
                         "in the JSON notes), to fit a CPU budget")
    ap.add_argument("--val-users", type=int, default=None, help="override the preset's validation subsample")
    ap.add_argument("--lr", type=float, default=None, help="generative model learning rate (default: preset)")
    ap.add_argument("--out", default=None, help="default bench/results/gr_<dataset>.json")
    ap.add_argument("--results-md", default="", help="also (re)write this file's generative-retrieval section, e.g. "
                                                     "bench/RESULTS.md (default: do not touch it)")
    ap.add_argument("--note", action="append", default=[],
                    help="a note to store in the JSON's notes (repeatable; with --render-only, added to the JSON at --out)")
    ap.add_argument("--render-only", action="store_true",
                    help="only rewrite the RESULTS.md section from the JSON at --out (no training)")
    ap.add_argument("--cache-dir", default=str(ROOT / ".cache/agentictagger"))
    return ap.parse_args(argv)


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
    summ = res.get("summary") or summarise_rows(res["rows"], res.get("critique") or [])
    seeds = res.get("seeds", [res.get("seed", 0)])
    name = res["data"].get("name", "beauty")
    if res.get("max_epochs"):
        cap = f"{res['max_epochs']} epochs per model (no time budget; the best validation epoch is kept)"
        section = f"## Generative retrieval on {name.capitalize()} at equal epochs"
    else:
        cap = (f"{res['budget_minutes']} min budget" + (f" and {res['max_steps']} steps" if res.get("max_steps") else "")
               + " per model")
        section = f"## Generative retrieval on {name.capitalize()}"
    lines = [section, "", f"Command (run {res['finished_at'] or 'unfinished'}, {res['device']}, "
             f"{res['threads']} threads, {cap}, seeds {', '.join(map(str, seeds))}):", "",
             "```", res["command"], "```", "",
             f"{res['data'].get('name', 'beauty')}: leave-last-out, {res['data']['test_users']} test users, ranked over all "
             f"{res['data']['items']} items; history ≤ {res['max_history']} items."
             + (f" Generative models ({res['preset']} preset): T5-style {res['model']['num_layers']}+"
                f"{res['model']['num_layers']} layers, d_model {res['model']['d_model']}, d_ff {res['model']['d_ff']}, "
                f"{res['model']['num_heads']} heads x {res['model']['d_kv']}, beam {res['train']['beam_size']} through "
                f"a prefix trie, "
                + ("validation N@10 once per epoch, no early stop, the best epoch kept"
                   if res.get("max_epochs") else "early stopping on validation N@10")
                + f" ({res['train']['val_users'] or 'all'} validation users)."
                if "model" in res else ""), "",
             "Mean ± standard deviation over seeds:", "",
             "| method | loss | seeds | R@5 | N@5 | R@10 | N@10 | epochs (mean) |",
             "|---|---|---|---|---|---|---|---|"]
    loss = {r["method"]: r["loss"] for r in res["rows"]}
    for m, s_ in summ["methods"].items():
        t = s_["test"]
        cells = " | ".join(f"{t[k]['mean']:.4f} ± {t[k]['std']:.4f}" for k in ("R@5", "N@5", "R@10", "N@10"))
        lines.append(f"| {m} | {loss[m]} | {len(s_['seeds'])} | {cells} | {s_['epochs']:.2f} |")
    lines += ["", "Per run:", "", "| method | seed | N@10 | train time (s) | steps | epochs | stopped by | tokens/item | vocab |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        tpi = r.get("tokens_per_item")
        tpi_s = f"{tpi['mean']:.2f} ({tpi['min']}-{tpi['max']})" if tpi else ("1 (item ID)" if r.get("key") == "sasrec" else "-")
        lines.append(f"| {r['method']} | {r.get('seed', 0)} | {r['test']['N@10']:.4f} | {r['train_seconds']:.0f} | "
                     f"{r.get('steps', '-')} | {r['epochs']:.2f} | {r['stopped_by']} | {tpi_s} | {r.get('vocab', r.get('n_items', ''))} |")
    if summ["critique"]:
        lines += ["", "Critique-constrained decoding (§5.3): the beam may only end on items whose agentictagger "
                  "level-1 descriptor the user simulator named after reading the target item's text. Only our "
                  "IDs come with named groups; the other models are decoded through the *same* groups (our "
                  "level-1 descriptor of each item), which a deployed RQ model would not have.", "",
                  "| model | simulator | seeds | vanilla N@10 | + critique N@10 | vanilla R@10 | + critique R@10 |",
                  "|---|---|---|---|---|---|---|"]
        for c in summ["critique"]:
            v, k = c["vanilla"], c["critique"]
            lines.append(f"| {c['model']} | {c['simulator']} | {len(c['seeds'])} | {v['N@10']['mean']:.4f} ± {v['N@10']['std']:.4f} | "
                         f"{k['N@10']['mean']:.4f} ± {k['N@10']['std']:.4f} | {v['R@10']['mean']:.4f} | {k['R@10']['mean']:.4f} |")
    lines += ["", f"Raw results: `{res['out']}`.", ""]
    if res.get("max_epochs"):
        png = ROOT / "docs" / f"gr_{name}_epochs_curves.png"
        plot_validation_curves([(r["method"], r.get("valid_history") or []) for r in res["rows"]],
                               f"{name}: validation N@10 per epoch, {res['max_epochs']} epochs per model (one line per "
                               "seed; dot = best epoch, restored)", "validation N@10", png)
        lines += [f"Learning curves: [`docs/{png.name}`](../docs/{png.name}).", ""]
    notes = list(res.get("notes") or [])
    gen = [r for r in res["rows"] if r.get("key") not in ("sasrec", "popularity")]
    if gen and not res.get("max_epochs"):
        notes.append(f"Generative models reached {min(r['epochs'] for r in gen):.2f}-{max(r['epochs'] for r in gen):.2f} "
                     "epochs inside the budget (A.1 trains up to 200 epochs with patience 20): early-training "
                     "numbers, not converged ones.")
    if summ["critique"]:
        lifts = ", ".join(f"{c['model']} {c['vanilla']['N@10']['mean']:.4f} -> {c['critique']['N@10']['mean']:.4f}"
                          for c in summ["critique"])
        notes.append(f"Critique N@10 (mean over seeds): {lifts}. Every model is decoded through *our* level-1 groups, so "
                     "a lift of the RQ models as large as ours means the lift is not an accuracy win of our IDs: it "
                     "shows what critique can do once items sit in *named* groups a user can pick, which only "
                     "descriptors provide. The offline simulator embeds with the same sentence model as an offline "
                     "vocabulary, so its 'target's level-1 named' rate is optimistic; an LLM simulator is the paper's setting.")
    if notes:
        lines += [f"- {n}" for n in notes] + [""]
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n\n"
    start = text.find(section)
    block = "\n".join(lines)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        nxt = text.find("\n## ", start + len(section))
        text = text[:start] + block.rstrip("\n") + "\n\n" + (text[nxt + 1:] if nxt >= 0 else "")
    path.write_text(text, encoding="utf-8")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if args.render_only:
        out = Path(args.out or ROOT / "bench/results/gr_beauty.json")
        res = json.loads(out.read_text(encoding="utf-8"))
        new = [n for n in args.note if n not in res.setdefault("notes", [])]
        rel = str(out.resolve().relative_to(ROOT)) if out.resolve().is_relative_to(ROOT) else str(out)
        if rel != res.get("out"):  # the file was moved since the run (e.g. from an ignored run folder)
            new.append(f"Written by the run to {res.get('out')}, then moved to {rel}.")
            res["out"] = rel
        if new:
            res["notes"].extend(new)
            # notes only: the provenance stays the run's (a re-stamp would name --render-only)
            atomic_write_text(out, json.dumps(res, indent=2, ensure_ascii=False) + "\n")
        write_markdown(Path(args.results_md or ROOT / "bench/RESULTS.md"), res)
        return 0
    configure_threads(args.threads)
    device = default_device()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    known = ("agentictagger", "rq-vae", "rq-kmeans", "random", "sasrec")
    unknown = [m for m in methods if m not in known]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {', '.join(known)}")
    if "agentictagger" in methods and not args.sid_table:
        log.warning("no --sid-table: skipping the agentictagger IDs")
        methods.remove("agentictagger")
    if args.random_like == "auto":
        args.random_like = "agentictagger" if args.sid_table else "rq-kmeans"
    seeds = [int(x) for x in args.seeds.split(",")]
    t_all = time.perf_counter()
    ds = Dataset.load(args.dataset, args.items)
    data, split = ds.data, ds.split
    texts = ds.texts
    args.out = args.out or str(ROOT / f"bench/results/gr_{ds.name}.json")
    if args.max_epochs:
        # Equal epochs: no wall-time budget, no early stop; the best validation epoch is kept.
        args.budget_minutes = None
        args.checkpoint_dir = args.checkpoint_dir or str(ROOT / "bench" / "runs" / "gr" / ds.name)
    epoch_rule = ({"max_epochs": args.max_epochs, "patience": args.max_epochs, "eval_every_steps": None}
                  if args.max_epochs else {})
    import hashlib

    res: dict = {
        "command": "OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 .venv/bin/python " + " ".join(
            shlex.quote(a) for a in ["bench/gr_beauty.py", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "finished_at": None,
        "device": str(device), "threads": args.threads, "budget_minutes": args.budget_minutes,
        "max_steps": args.max_steps, "max_epochs": args.max_epochs, "preset": args.preset, "seeds": seeds, "max_history": ds.max_history,
        "out": os.path.relpath(args.out, ROOT) if os.path.isabs(args.out) else args.out,
        "data": {"name": ds.name, "users": len(data.users), "items": data.n_items, "interactions": data.n_interactions,
                 "train_samples": len(split.train), "valid_users": len(split.valid),
                 "test_users": len(subsample(split.test, args.test_users, 0)), "item_text": ds.source},
        "rows": [], "critique": [], "notes": [], "inputs": {},
    }
    res["notes"].extend(args.note)
    if args.test_users:
        res["notes"].append(f"Test metrics on a fixed random {args.test_users}-user subset of the test users (the same users "
                            "for every model and seed), not all users.")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        res["summary"] = summarise_rows(res["rows"], res["critique"])
        write_result(out, res, indent=2)
        if args.results_md:
            write_markdown(Path(args.results_md), res)

    encode, emb = None, None
    if any(m in methods for m in ("rq-vae", "rq-kmeans")) or args.random_like != "agentictagger" or args.vocab:
        from agentictagger.embed import Embedder

        embedder = Embedder(cache_dir=args.cache_dir)
        encode = embedder.encode
        emb = encode(texts)
        res["embedding"] = {"model": embedder.cfg.model, "dim": int(emb.shape[1])}

    for seed in seeds:
        test = subsample(split.test, args.test_users, 0)  # the same test users for every seed
        sid_path = args.sid_table.format(seed=seed) if args.sid_table else None
        vocab_path = args.vocab.format(seed=seed) if args.vocab else None
        res["inputs"].update({str(p): hashlib.sha256(Path(p).read_bytes()).hexdigest()[:16]
                              for p in (sid_path, vocab_path) if p})
        vocab_bytes = Path(vocab_path).read_bytes() if vocab_path else None
        codes: dict[str, ItemCodes] = {}
        for m in [m for m in methods if m in ("agentictagger", "rq-vae", "rq-kmeans")] + (
                [args.random_like] if "random" in methods and args.random_like not in methods else []):
            t = time.perf_counter()
            codes[m] = make_codes(m, ds, seed=seed, sid_table=sid_path, embeddings=emb)
            res.setdefault("tokenizer_seconds", {})[f"{m}/{seed}"] = round(time.perf_counter() - t, 1)
        if "random" in methods:
            codes["random"] = random_codes_like(codes[args.random_like], seed=seed)

        # -- generative models ---------------------------------------------------------------------
        runs = {}
        for m in [m for m in methods if m != "sasrec"]:
            c = codes[m]
            cfg, tc = preset(args.preset, c.vocab_size, budget_minutes=args.budget_minutes, seed=seed,
                             val_users=args.val_users, lr=args.lr, max_steps=args.max_steps)
            tc = replace(tc, **epoch_rule)
            log.info("training %s seed %d: %s", m, seed, c.summary())
            run = fit_generative(c, split, cfg, tc, device, checkpoint_dir=args.checkpoint_dir)
            t = time.perf_counter()
            metrics, _ = evaluate_generative(run, test)
            runs[m] = run
            res["model"], res["train"] = cfg.to_dict(), tc.to_dict()
            res["rows"].append({
                "key": m, "seed": seed, "method": m if m != "random" else f"random IDs (shape of {args.random_like})",
                "loss": "CE (next-token)",
                **c.summary(), "vocab": f"{c.n_base_tokens}+{c.n_resolver_tokens}", "test": round_metrics(metrics),
                "valid_best": round_metrics(run.fit.best_valid), "train_seconds": run.fit.train_seconds,
                "steps": run.fit.steps, "epochs": run.fit.epochs, "stopped_by": run.fit.stopped_by,
                "test_eval_seconds": round(time.perf_counter() - t, 1), "valid_history": run.fit.history,
                **{k: v for k, v in c.meta.items() if k != "rqvae"},
            })
            save()

        # -- critique-constrained decoding: every model through *our* level-1 groups ----------------
        crit_models = [m for m in args.critique_models.split(",") if m in runs]
        if vocab_bytes is not None and "agentictagger" in codes and crit_models:
            descs = read_level1_descriptors(vocab_path, text=vocab_bytes.decode("utf-8"))
            res["vocab_meta"] = json.loads(vocab_bytes).get("meta") or {}
            groups, gids = group_index(codes["agentictagger"].item_level1, descs)
            sims = []
            if args.simulator in ("offline", "both"):
                sims.append((EmbeddingSimulator(descs, encode, k=args.critique_k), test))
            if args.simulator in ("llm", "both"):
                choose, llm_name = llm_choose(args.llm_config, args.cache_dir)
                sims.append((CallableSimulator(descs, choose, name=llm_name), subsample(test, args.llm_users, 1)))
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
                        vanilla = next(r["test"] for r in res["rows"] if r.get("key") == m and r["seed"] == seed)
                    else:
                        vanilla = round_metrics(evaluate_generative(runs[m], users)[0])
                    res["critique"].append({
                        "model": m, "seed": seed, "simulator": sim.name, "users": len(users), "n_level1": len(descs),
                        "groups": "agentictagger level 1 (the only named groups; other models are restricted "
                                  "through the same groups)",
                        "mean_allowed": round(float(am.sum(1).mean()), 2),
                        "simulator_recall": round(sim_recall, 4), "simulator_seconds": round(sim_seconds, 1),
                        "vanilla": vanilla, "critique": round_metrics(cm),
                        "improvement": {k: (round(cm[k] / vanilla[k] - 1, 4) if vanilla[k] else None) for k in cm},
                        "eval_seconds": round(time.perf_counter() - t, 1),
                    })
                    save()

        # -- SASRec: the same budget *and* the same step cap ------------------------------------------
        if "sasrec" in methods:
            tc = TrainConfig(lr=0.001, weight_decay=0.0, budget_minutes=args.budget_minutes, seed=seed,
                             eval_every_steps=None, val_users=None, patience=10, max_steps=args.max_steps)
            tc = replace(tc, **epoch_rule)
            scfg = SASRecConfig(n_items=data.n_items, max_len=ds.max_history)
            run = fit_sasrec(split, data.n_items, scfg, tc, device, checkpoint_dir=args.checkpoint_dir)
            metrics = evaluate_sasrec(run, test)
            res["rows"].append({
                "key": "sasrec", "seed": seed, "method": "SASRec (item IDs)", "loss": "CE (full softmax)",
                "test": round_metrics(metrics), "valid_best": round_metrics(run.fit.best_valid),
                "train_seconds": run.fit.train_seconds, "steps": run.fit.steps, "epochs": run.fit.epochs,
                "stopped_by": run.fit.stopped_by, "n_items": data.n_items, "config": scfg.to_dict(),
                "valid_history": run.fit.history,
            })
            save()

    # -- popularity: a reference floor that needs no training ------------------------------------------
    test = subsample(split.test, args.test_users, 0)
    pop = np.bincount(np.concatenate(split.train_sequences), minlength=data.n_items)
    top = np.argsort(-pop, kind="stable")[:10]
    res["rows"].append({"key": "popularity", "seed": 0, "method": "most popular (training interactions)", "loss": "none",
                        "test": round_metrics(evaluate_rankings(np.tile(top, (len(test), 1)), test.targets)),
                        "train_seconds": 0.0, "epochs": 0.0, "stopped_by": "-", "vocab": "-"})
    res["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    res["total_seconds"] = round(time.perf_counter() - t_all, 1)
    save()
    print(json.dumps(res["summary"], indent=1))
    return 0


def summarise_rows(rows: list[dict], critique: list[dict]) -> dict:
    """Mean ± std over seeds of every method's test metrics (and of each critique row)."""
    def agg(values: list[dict]) -> dict:
        out = {}
        for k in values[0]:
            v = np.array([x[k] for x in values], dtype=float)
            out[k] = {"mean": round(float(v.mean()), 4), "std": round(float(v.std(ddof=1)) if len(v) > 1 else 0.0, 4)}
        return out

    methods: dict[str, list[dict]] = {}
    for r in rows:
        methods.setdefault(r["method"], []).append(r)
    crit: dict[tuple, list[dict]] = {}
    for c in critique:
        crit.setdefault((c["model"], c["simulator"]), []).append(c)
    return {
        "methods": {m: {"seeds": [r["seed"] for r in rs], "test": agg([r["test"] for r in rs]),
                        "epochs": round(float(np.mean([r["epochs"] for r in rs])), 2)} for m, rs in methods.items()},
        "critique": [{"model": m, "simulator": sname, "seeds": [c["seed"] for c in cs],
                      "vanilla": agg([c["vanilla"] for c in cs]), "critique": agg([c["critique"] for c in cs])}
                     for (m, sname), cs in crit.items()],
    }


if __name__ == "__main__":
    raise SystemExit(main())
