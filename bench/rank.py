"""Ranking with descriptor features (paper §5.2, B.2): a thin loop over ``recsys.pipeline``.

For each seed and each item representation — (a) one-hot item ID, (b) agentictagger descriptor
path + resolver, (c) RQ-VAE and RQ-KMeans codes the same way, (d) item ID + descriptors — trains
the feature-aware SASRec to early stopping on validation N@10 and scores the test users with full
ranking and with 100 sampled negatives (the same negatives for every row), on all test users, on
the cold-item slice (targets with <= 5 training interactions) and on the long-tail slice (targets
outside the 20 % most-interacted items). Rows are appended to the JSON as they finish; a rerun skips finished rows.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/rank.py --dataset beauty --threads 1
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/rank.py --dataset beauty --user-fraction 0.2 \\
        --out bench/results/rank_beauty_sparse.json
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/rank.py --dataset scientific --recipe strength

``--recipe`` picks the training recipe every row of the run shares (``recsys.pipeline.RECIPES``):
``quick`` (history 20, patience 3; the default) or ``strength`` (the strongest item-ID SASRec
setting of ``bench/sasrec_strength.py``: history 50, patience 10; results go to
``rank_<dataset>_strength.json``). Training is resumable: each run saves its state after every
epoch under ``bench/runs/rank/<dataset>/``; kill the bench and start the same command again and
the unfinished row continues from its last epoch.

The agentictagger tables come from ``bench/taxonomy_alignment.py`` (offline profile, one build
per seed): ``bench/runs/align/<dataset>_offline_s<seed>/semantic_ids.parquet``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse
import json
import logging
import platform
import shlex
import sys
import time
from pathlib import Path

from _provenance import write_result  # noqa: E402 (bench/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FEATURES = "item_id,agentictagger,rq-vae,rq-kmeans,item_id+agentictagger"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beauty", help="shared dataset name or interaction table")
    ap.add_argument("--user-fraction", type=float, default=None, help="keep this fraction of users (sparse slice)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--features", default=DEFAULT_FEATURES)
    ap.add_argument("--sid-table", default="bench/runs/align/{dataset}_offline_s{seed}/semantic_ids.parquet",
                    help="semantic-ID table per seed ({dataset}, {seed} are filled in)")
    ap.add_argument("--recipe", default="quick", choices=("quick", "strength"),
                    help="training recipe shared by every row (recsys.pipeline.RECIPES)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument("--id-dropout", type=float, default=None,
                    help="item-ID dropout for features that start with item_id: each step leaves an item's ID out "
                         "with this probability; rows are labelled '<features> (ID dropout P)'")
    ap.add_argument("--cold-without-id", action="store_true",
                    help="with --id-dropout: at evaluation, items in the cold slice go without their ID")
    ap.add_argument("--out", default=None, help="default bench/results/rank_<dataset>[_<recipe>].json (no suffix for quick)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("agentictagger.recsys.train").setLevel(logging.INFO)
    logging.getLogger("agentictagger.recsys.train").addFilter(lambda r: "validation" in r.getMessage() % () if not r.args else "validation" in r.msg)

    from dataclasses import replace

    from agentictagger.recsys.pipeline import (COLD_MAX_TRAIN_INTERACTIONS, RECIPES, SHORT_HEAD_SHARE, Dataset,
                                               Pipeline, append_row, claim_row, popularity_row, ranker_train_config,
                                               summarise)
    from agentictagger.recsys.train import configure_threads

    configure_threads(args.threads)
    recipe = RECIPES[args.recipe]
    ds = Dataset.load(args.dataset, user_fraction=args.user_fraction, max_history=recipe.max_history)
    suffix = "" if recipe.name == "quick" else f"_{recipe.name}"
    out = Path(args.out or ROOT / f"bench/results/rank_{ds.name}{suffix}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    emb = ds.embeddings(ROOT / ".cache/agentictagger")
    overrides = {**recipe.train, **{k: v for k, v in {"patience": args.patience, "max_epochs": args.max_epochs}.items()
                                    if v is not None}}
    overridden = {k: v for k, v in overrides.items() if recipe.train.get(k) != v}  # by --patience / --max-epochs
    for seed in [int(s) for s in args.seeds.split(",")]:
        table = args.sid_table.format(dataset=args.dataset, seed=seed)
        for feat in args.features.split(","):
            label = feat if args.id_dropout is None else (
                f"{feat} (ID dropout {args.id_dropout:g}{', cold items without ID' if args.cold_without_id else ''})")
            if not claim_row(out, (ds.name, "ranker", label, seed)):
                continue  # finished, or another bench process is on it
            needs_sid = "agentictagger" in feat or "random" in feat
            ranker = recipe.ranker if args.id_dropout is None else replace(
                recipe.ranker, id_dropout=args.id_dropout,
                id_min_count=COLD_MAX_TRAIN_INTERACTIONS + 1 if args.cold_without_id else 0)
            p = Pipeline(ds, feat, "ranker", sid_table=table if needs_sid else None, embeddings=emb, ranker=ranker,
                         train_overrides=overrides, cache_dir=ROOT / ".cache/agentictagger",
                         checkpoint_dir=ROOT / "bench/runs/rank" / ds.name)
            t = time.perf_counter()
            row = p.run(seed)
            row["tokenizer"], row["recipe"] = label, recipe.name
            if needs_sid:
                row["sid_table"] = os.path.relpath(table, ROOT) if os.path.isabs(table) else table
            append_row(out, row)
            a = row["test"]["all"]
            print(f"{ds.name} seed {seed} {label:<24} full N@10 {a['full']['N@10']:.4f}  sampled N@10 "
                  f"{a['sampled']['N@10']:.4f}  epochs {row['epochs']} (best {row['best_epoch']})  "
                  f"{time.perf_counter() - t:.0f}s", flush=True)
    append_row(out, popularity_row(ds))
    from filelock import FileLock

    with FileLock(str(out) + ".lock"):  # other bench processes may still be appending rows
        res = json.loads(out.read_text())
        command = "OMP_WAIT_POLICY=PASSIVE .venv/bin/python " + " ".join(
            shlex.quote(a) for a in ["bench/rank.py", *(argv if argv is not None else sys.argv[1:])])
        commands = res.get("commands") or ([res["command"]] if res.get("command") else [])
        res.update({
            "command": command,
            "commands": commands + ([command] if command not in commands else []),  # every run that added rows
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {args.threads} torch thread(s) per run, cores shared",
            "dataset": ds.describe(),
            "recipe": recipe.describe() | ({"overridden": overridden} if overridden else {}),
            "protocol": ("leave-last-out; test = last item, validation = second-last; full ranking over all items "
                         "(history items not masked) and 100 sampled negatives per test user drawn uniformly from "
                         "items the user never interacted with (seed 0, the same for every row); cold_items = test "
                         f"targets with <= {COLD_MAX_TRAIN_INTERACTIONS} training interactions; long_tail = test "
                         f"targets outside the {SHORT_HEAD_SHARE:.0%} most-interacted items; early stopping on "
                         "validation N@10 (full ranking, all validation users, once per epoch), patience "
                         f"{ranker_train_config(**overrides).patience}, best epoch restored; every row's model and training settings "
                         "are in its config / train_config."),
            "summary": summarise(res["rows"]),
        })
        write_result(out, res)
    for s in res["summary"]:
        k = "all/full/N@10"
        print(f"{s['tokenizer']:<24} {s['model']:<10} full N@10 {s[k]['mean']:.4f} ± {s[k]['std']:.4f}  "
              f"sampled N@10 {s['all/sampled/N@10']['mean']:.4f} ± {s['all/sampled/N@10']['std']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
