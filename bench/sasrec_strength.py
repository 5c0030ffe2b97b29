"""Item-ID SASRec against the literature: the published recipe on the Beauty leave-last-out split.

Trains plain SASRec (one embedding per item, full-softmax cross-entropy at every position) with the
recipe of the public reproduction the project anchors on (history 50, 2 blocks, d 64, 1 head,
feed-forward width d, dropout 0.2, Adam lr 1e-3 constant, batch 256, up to 200 epochs), with early
stopping on validation N@10 (full ranking, every validation user, once per epoch) and a long
patience, and scores the best epoch on the test users. Writes the learning curve (training loss,
validation N@10 / R@10 per epoch), the best validation epoch and its test N@10 / R@10 against the
anchor, throughput (steps/s, epochs/hour), and checks on the validation/test gap.

Training is resumable: state is saved after every epoch under
``bench/runs/sasrec_strength/item_id-<fingerprint of data and settings>/``; kill the run and start
the same command again and it continues from the last finished epoch.

    nice -n 15 .venv/bin/python bench/sasrec_strength.py                  # train (or resume), then report
    .venv/bin/python bench/sasrec_strength.py --report-only                # report a run in progress

``--report-only`` trains nothing: it reads the checkpoint, scores its best epoch so far and writes
the JSON marked ``"status": "in progress"`` with the epochs done.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import logging
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

from _provenance import write_result  # noqa: E402 (bench/ is on sys.path when run as a script)

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ANCHOR = {
    "N@10": 0.0591,
    "what": "full-ranking test N@10 of SASRec with full-softmax CE on Amazon 2014 Beauty 5-core, leave-one-out, "
            "in a public 200-GPU-epoch reproduction (the recipe below: history 50, 2 blocks, d 64, 1 head, "
            "dropout 0.2, Adam lr 1e-3, batch 256)",
    "target": "within 10 %: test N@10 >= 0.0532",
    "protocol": "full ranking with every item the user has seen before the target removed (the reference toolkit "
                "removes seen items in full-ranking evaluation unless told to keep them); no Beauty target repeats "
                "an item its user has seen, so removing them only removes wrong answers",
}
PRIOR = {"what": "bench/results/rank_beauty.json, (a) item ID (SASRec), 3 seeds: history 20, 2 heads, feed-forward 4d, "
                 "dropout 0.3, AdamW lr 2e-3 cosine, grad clip 1, patience 3", "test N@10": 0.0374}


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for p in ("torch", "numpy", "agentictagger", "matplotlib"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            out[p] = None
    return out


def _r(x, n: int = 5):
    return round(float(x), n) if x is not None else None


def gap_checks(ds, split, model, val_metrics, test_metrics) -> dict:
    """Data- and protocol-level facts about validation vs test: is the test set harder for every
    scorer (popularity too), do its targets repeat history items or sit in the cold tail more
    often, and does filtering history items change the picture."""
    from agentictagger.recsys.metrics import evaluate_rankings
    from agentictagger.recsys.pipeline import COLD_MAX_TRAIN_INTERACTIONS
    from agentictagger.recsys.ranking import rank_items

    counts = ds.train_counts()
    top = np.argsort(-counts, kind="stable")[:10]
    out = {}
    for name, s, cut in (("valid", split.valid, 1), ("test", split.test, 0)):
        # everything the user has seen before the target (not only the last max_len items)
        seen = [ds.data.sequences[u][: len(ds.data.sequences[u]) - 1 - cut] for u in s.users]
        pop = evaluate_rankings(np.tile(top, (len(s), 1)), s.targets, (10,))
        in_hist = np.mean([t in set(h.tolist()) for h, t in zip(seen, s.targets)])
        masked = evaluate_rankings(rank_items(model, s.histories, 10, exclude=seen), s.targets, (10, 20))
        out[name] = {"users": len(s), "popularity N@10": _r(pop["N@10"]), "popularity R@10": _r(pop["R@10"]),
                     "target in own history": _r(in_hist),
                     f"target with <= {COLD_MAX_TRAIN_INTERACTIONS} training interactions":
                         _r(np.mean(counts[s.targets] <= COLD_MAX_TRAIN_INTERACTIONS)),
                     "target training interactions, median": float(np.median(counts[s.targets])),
                     "mean history length": _r(np.mean([len(h) for h in s.histories]), 3),
                     "model N@10": _r((val_metrics if name == "valid" else test_metrics)["N@10"]),
                     "model N@10, history items filtered": _r(masked["N@10"]),
                     "model R@10, history items filtered": _r(masked["R@10"])}
    v, t = out["valid"], out["test"]
    out["reading"] = (
        f"model N@10 valid/test {v['model N@10']:.4f}/{t['model N@10']:.4f} (ratio {t['model N@10'] / v['model N@10']:.2f}); "
        f"popularity {v['popularity N@10']:.4f}/{t['popularity N@10']:.4f}; cold targets "
        f"{v[f'target with <= {COLD_MAX_TRAIN_INTERACTIONS} training interactions']:.3f}/"
        f"{t[f'target with <= {COLD_MAX_TRAIN_INTERACTIONS} training interactions']:.3f}; "
        f"targets repeating a history item {v['target in own history']:.4f}/{t['target in own history']:.4f}")
    return out


def throughput(history: list[dict], steps_per_epoch: int) -> dict:
    sps = [r["steps_per_s"] for r in history if r.get("steps_per_s")]
    # wall seconds per epoch from consecutive records (training + validation); resumed runs do not
    # count the time they were stopped
    secs = np.diff([0.0] + [r["seconds"] for r in history])
    per_epoch = float(np.median(secs)) if len(secs) else None
    return {"steps_per_epoch": steps_per_epoch,
            "train_steps_per_s_median": _r(np.median(sps), 3) if sps else None,
            "epoch_wall_seconds_median": _r(per_epoch, 1),
            "validation_seconds_median": _r(np.median([r["validation_seconds"] for r in history]), 1) if history else None,
            "epochs_per_hour": _r(3600 / per_epoch, 1) if per_epoch else None}


def plot(combined: dict, path: Path) -> None:
    """Training loss and validation N@10 per epoch of every setting in the JSON."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 6.5))
    for i, res in enumerate(combined["runs"].values()):
        m, t = res["settings"]["model"], res["settings"]["train"]
        tag = f"{m.get('block', 'pre_norm')} block, history {m['max_len']}, dropout {m['dropout']}, lr {t['lr']:g}"
        curve, c = res["curve"], f"C{i}"
        ep = [r["epoch"] for r in curve]
        status = res["status"] + (f", {res['epochs_done']} epochs" if res["status"] != "finished" else "")
        a.plot(ep, [r["train_loss"] for r in curve], marker=".", color=c, label=f"{tag} [{status}]")
        b.plot(ep, [r["valid N@10"] for r in curve], marker=".", color=c, label=f"validation N@10, {tag}")
        best = res["best"]
        if best.get("test N@10") is not None:
            b.scatter([best["epoch"]], [best["test N@10"]], color=c, marker="*", s=120, zorder=3,
                      label=f"test N@10 at its best validation epoch ({best['test N@10']:.4f})")
            filt = res["gap_checks"]["test"]["model N@10, history items filtered"]
            b.scatter([best["epoch"]], [filt], facecolors="none", edgecolors=c, marker="*", s=120, zorder=3,
                      label=f"the same, history items filtered ({filt:.4f})")
    a.set_xlabel("epoch"), a.set_ylabel("training loss (full-softmax CE, mean over the epoch)")
    a.set_title("training loss"), a.legend(fontsize=7)
    b.axhline(ANCHOR["N@10"], color="k", ls="--", lw=1, label=f"anchor {ANCHOR['N@10']} (test N@10)")
    b.axhline(0.9 * ANCHOR["N@10"], color="k", ls=":", lw=1, label="anchor - 10 %")
    b.axhline(PRIOR["test N@10"], color="C7", ls="-.", lw=1, label=f"previous recipe, test ({PRIOR['test N@10']})")
    b.set_xlabel("epoch"), b.set_ylabel("N@10 (full ranking, all users)")
    b.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=1)
    b.set_title("SASRec (item IDs), Beauty")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def setting_tag(cfg, tc) -> str:
    return (f"{cfg.block} block, history {cfg.max_len}, d {cfg.d_model} x {cfg.num_layers} blocks, {cfg.num_heads} head(s), ff {cfg.ff_mult}d, "
            f"dropout {cfg.dropout}, lr {tc.lr:g} {tc.lr_schedule}, batch {tc.batch_size}, wd {tc.weight_decay:g}, "
            f"clip {tc.grad_clip:g}, patience {tc.patience}, seed {tc.seed}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="beauty")
    ap.add_argument("--max-len", type=int, default=50, help="history length (positions)")
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--ff-mult", type=int, default=1, help="feed-forward width in units of d-model")
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--block", default="pre_norm", choices=("pre_norm", "sasrec"),
                    help="pre_norm: torch's pre-norm layer; sasrec: the original SASRec block and initialisation")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"))
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-clip", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--max-epochs", type=int, default=200)
    ap.add_argument("--patience", type=int, default=20, help="epochs without a better validation N@10")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--run-root", default="bench/runs/sasrec_strength")
    ap.add_argument("--out", default="bench/results/sasrec_strength.json")
    ap.add_argument("--plot", default="docs/sasrec_strength.png")
    ap.add_argument("--report-only", action="store_true", help="train nothing; report the checkpoint as it is")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)

    import torch

    from agentictagger.recsys.pipeline import Dataset
    from agentictagger.recsys.ranking import (FeatureSASRec, ItemFeatures, RankerConfig, evaluate_ranker, fit_ranker,
                                              run_fingerprint, training_chunks)
    from agentictagger.recsys.train import TrainConfig, configure_threads

    configure_threads(args.threads)
    t_start = time.perf_counter()
    ds = Dataset.load(args.dataset, max_history=args.max_len)
    split = ds.split
    feats = ItemFeatures.item_ids(ds.data.n_items)
    cfg = RankerConfig(d_model=args.d_model, num_layers=args.layers, num_heads=args.heads, dropout=args.dropout,
                       max_len=args.max_len, ff_mult=args.ff_mult, block=args.block)
    tc = TrainConfig(lr=args.lr, weight_decay=args.weight_decay, batch_size=args.batch_size,
                     max_epochs=args.max_epochs, patience=args.patience, warmup_steps=0, seed=args.seed,
                     max_history=args.max_len, lr_schedule=args.lr_schedule, grad_clip=args.grad_clip,
                     eval_every_steps=None, val_users=None)
    run_root = ROOT / args.run_root
    ckpt = run_root / f"{feats.name}-{run_fingerprint(split, feats, cfg, tc)}" / "checkpoint.pt"
    device = torch.device("cpu")
    if args.report_only:
        if not ckpt.exists():
            raise SystemExit(f"no checkpoint for these settings at {ckpt.relative_to(ROOT)}: start the run first")
        blob = torch.load(ckpt, map_location="cpu", weights_only=False)
        model = FeatureSASRec(cfg, feats)
        model.load_state_dict(blob["best_state"] if blob["best_state"] is not None else blob["model"])
        model.eval()
    else:
        run = fit_ranker(split, feats, cfg, tc, device, checkpoint_dir=run_root)
        model = run.model
        blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    st = blob["state"]
    history = st["history"]
    steps_per_epoch = int(np.ceil(len(training_chunks(split.train_sequences, cfg.max_len)) / tc.batch_size))

    t = time.perf_counter()
    ks = (5, 10, 20, 50)
    val = evaluate_ranker(model, split.valid, ks=ks)["full"]
    test = evaluate_ranker(model, split.test, ks=ks)["full"]
    gap = gap_checks(ds, split, model, val, test)
    eval_s = time.perf_counter() - t

    best_epoch = round(st["best_step"] / steps_per_epoch, 3) if history else None
    status = "finished" if st["finished"] else "in progress"
    res = {
        "status": status,
        "epochs_done": st["epoch"],
        "stopped_by": st["stopped"] or None,
        "resumed_at_epochs": st["resumed_at_epochs"],
        "dataset": ds.describe(),
        "protocol": ("leave-last-out: test target = last item (its input includes the validation item), validation "
                     "target = second-last, training on each user's prefix before both; full ranking over all "
                     "items, history items not masked (a history-filtered N@10 is given under gap_checks for "
                     "comparison); early stopping on validation N@10 (all validation users, once per epoch), best "
                     "epoch restored; the test set is scored once, at the best validation epoch."),
        "settings": {"model": cfg.to_dict(), "train": tc.to_dict(), "optimizer": "AdamW (weight decay as set; 0 = Adam)",
                     "features": feats.summary(), "threads": args.threads,
                     "run_folder": os.path.relpath(ckpt.parent, ROOT)},
        "anchor": ANCHOR,
        "prior": PRIOR,
        "best": {"epoch": best_epoch, "valid N@10": _r(val["N@10"]), "valid R@10": _r(val["R@10"]),
                 "test N@10": _r(test["N@10"]), "test R@10": _r(test["R@10"]),
                 "test vs anchor": _r(test["N@10"] / ANCHOR["N@10"] - 1, 4),
                 "test N@10, seen items filtered (the anchor's protocol)": gap["test"]["model N@10, history items filtered"],
                 "test R@10, seen items filtered": gap["test"]["model R@10, history items filtered"],
                 "test vs anchor, same protocol": _r(gap["test"]["model N@10, history items filtered"] / ANCHOR["N@10"] - 1, 4),
                 "within 10 % of the anchor, same protocol": bool(gap["test"]["model N@10, history items filtered"]
                                                                  >= 0.9 * ANCHOR["N@10"])},
        "test_all_cutoffs": {k: _r(v) for k, v in test.items()},
        "valid_all_cutoffs": {k: _r(v) for k, v in val.items()},
        "curve": [{"epoch": r["epoch"], "train_loss": r["train_loss"], "valid N@10": _r(r["N@10"]),
                   "valid R@10": _r(r["R@10"]), "steps_per_s": r["steps_per_s"], "seconds": r["seconds"]}
                  for r in history],
        "throughput": throughput(history, steps_per_epoch),
        "wall_seconds_training": _r(st["elapsed"], 1),
        "train_step_seconds": _r(st["train_seconds"], 1),
        "report_eval_seconds": _r(eval_s, 1),
        "gap_checks": gap,
        "command": ("nice -n 15 .venv/bin/python " if not args.report_only else ".venv/bin/python ") + " ".join(
            shlex.quote(a) for a in ["bench/sasrec_strength.py", *(argv if argv is not None else sys.argv[1:])]),
        "train_command": "OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE nice -n 15 .venv/bin/python " + " ".join(
            shlex.quote(a) for a in ["bench/sasrec_strength.py", *(argv if argv is not None else sys.argv[1:])]
            if a != "--report-only") + "  # starts the run, or resumes it after the last finished epoch",
        "git_commit": _git("rev-parse", "HEAD") + ("-dirty" if _git("status", "--porcelain", "--", "src/agentictagger/recsys", "bench/sasrec_strength.py") else ""),
        "versions": _versions(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores shared with other work, {args.threads} torch thread(s), "
                   f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}",
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "report_seconds": None,
    }
    res["report_seconds"] = _r(time.perf_counter() - t_start, 1)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    combined = {"runs": {}}
    if out.exists():
        prev = json.loads(out.read_text())
        # one entry per run folder (data + settings fingerprint)
        combined["runs"] = {k: v for k, v in prev.get("runs", {}).items()
                            if v["settings"]["run_folder"] != res["settings"]["run_folder"]}
    tag = setting_tag(cfg, tc)
    combined["runs"][tag] = res
    # the strongest setting is chosen on validation N@10, never on test
    strongest = max(combined["runs"], key=lambda k: combined["runs"][k]["best"]["valid N@10"] or -1)
    sb = combined["runs"][strongest]
    combined = {
        "what": "item-ID SASRec (full-softmax CE) on the Beauty leave-last-out split against a published anchor; one "
                "entry per setting (runs), the strongest chosen by validation N@10",
        "anchor": ANCHOR, "prior": PRIOR,
        "strongest": {"setting": strongest, "status": sb["status"], "epochs_done": sb["epochs_done"], **sb["best"]},
        "updated": res["date"], "last_command": res["command"],
        "runs": combined["runs"],
    }
    write_result(out, combined)
    if args.plot:
        plot(combined, ROOT / args.plot)
    b = res["best"]
    print(f"[{status}, {st['epoch']} epochs] best epoch {b['epoch']}: valid N@10 {b['valid N@10']:.4f}, "
          f"test N@10 {b['test N@10']:.4f} R@10 {b['test R@10']:.4f} ({b['test vs anchor']:+.1%} vs {ANCHOR['N@10']}); "
          f"{res['throughput']['epochs_per_hour']} epochs/h; gap: {gap['reading']}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
