"""`agentictagger recsys train|evaluate|compare`: recommenders on any tokenization, a thin layer
over :mod:`agentictagger.recsys.pipeline` (``Pipeline(dataset, tokenizer, model)``)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Optional

import typer

HELP = (
    "Train and compare recommenders on item tokenizations: the feature-aware ranker (SASRec whose item "
    "embedding is a sum of feature embeddings; paper §5.2) or the T5-style generative retriever (§5.1).\n\n"
    "DATA is a shared dataset (beauty, scientific, sports) or an interaction table (CSV/TSV/Parquet/JSONL with "
    "user_id, item_id, timestamp; --items gives a catalog with item texts for rq-vae / rq-kmeans). TOKENIZER is "
    "item_id, agentictagger (needs --sid-table, the semantic_ids.parquet of `agentictagger assign`), rq-vae, "
    "rq-kmeans or random; the ranker also takes sums such as item_id+agentictagger, and warm_item_id (item IDs for "
    "items with more than 5 training interactions, one shared ID for the rarer ones).\n\n"
    "Metrics: leave-last-out test users, full ranking over all items and (ranker) 100 sampled negatives per user, "
    "on all users and on the cold-item slice.\n\n"
    "Examples:\n"
    "  agentictagger recsys train scientific --tokenizer item_id+agentictagger --sid-table runs/sci/semantic_ids.parquet --out models/sci\n"
    "  agentictagger recsys evaluate models/sci scientific\n"
    "  agentictagger recsys compare scientific --tokenizers item_id,agentictagger,rq-vae --seeds 0,1,2 "
    "--sid-table runs/sci/semantic_ids.parquet --out compare.json\n"
)

recsys_app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)

DataArg = typer.Argument(..., help="Shared dataset name or interaction table path.")
ItemsOpt = typer.Option(None, "--items", help="Catalog file with item texts (for tables; shared datasets bring theirs).")
SidOpt = typer.Option(None, "--sid-table", help="agentictagger semantic-ID table (Parquet/JSONL) covering every item.")
ModelOpt = typer.Option("ranker", "--model", help="ranker or generative.")
UserFracOpt = typer.Option(None, "--user-fraction", help="Keep a random fraction of users (a sparse slice).")
ThreadsOpt = typer.Option(1, "--threads", help="torch threads.")
MaxEpochsOpt = typer.Option(None, "--max-epochs", help="Cap on epochs (default: ranker 100, generative preset).")
PatienceOpt = typer.Option(None, "--patience", help="Validations without a better N@10 before stopping.")
MaxStepsOpt = typer.Option(None, "--max-steps", help="Cap on optimiser steps (any model).")
UserColOpt = typer.Option("user_id", "--user-col")
ItemColOpt = typer.Option("item_id", "--item-col")
NegOpt = typer.Option(100, "--negatives", help="Sampled negatives per test user (ranker; paper: 100).")
TimeColOpt = typer.Option("timestamp", "--time-col", help="'' if the table has no timestamp (file order is time).")


def _dataset(data: str, items: Optional[Path], user_fraction: Optional[float], user_col: str, item_col: str,
             time_col: str):
    from agentictagger.recsys.pipeline import Dataset

    return Dataset.load(data, items, user_col=user_col, item_col=item_col, time_col=time_col or None,
                        user_fraction=user_fraction)


def _setup(threads: int, verbose: bool) -> None:
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from agentictagger.recsys.train import configure_threads

    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(message)s")
    # k-means over item embeddings with repeated texts finds fewer distinct clusters than asked
    # for, once per level and seed; the codes are still valid (a dedup digit separates items).
    if not verbose:
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
    configure_threads(threads)


def data_summary(ds) -> str:
    """One line: users, items, interactions and density of a dataset."""
    d = ds.describe()
    density = d["interactions"] / max(1, d["users"] * d["items"])
    return (f"{d['name']}: {d['users']:,} users, {d['items']:,} items, {d['interactions']:,} interactions, "
            f"density {density:.4%} ({d['test_users']:,} test users)")


def mean_std(s: dict, key: str) -> str:
    """``mean ± std`` over seeds; the spread of one seed is not known, so it reads n/a."""
    if key not in s:
        return "-"
    if len(s.get("seeds") or []) < 2:
        return f"{s[key]['mean']:.4f} ± n/a"
    return f"{s[key]['mean']:.4f} ± {s[key]['std']:.4f}"


def _fail(exc: BaseException) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


def _print_row(title: str, test: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("slice")
    t.add_column("users", justify="right")
    cols = [(proto, m) for proto in ("full", "sampled") for m in ("R@10", "N@10") if proto in test["all"]]
    for proto, m in cols:
        t.add_column(f"{proto} {m}", justify="right")
    for name, res in test.items():
        t.add_row(name, str(res["users"]), *[f"{res[proto][m]:.4f}" for proto, m in cols])
    Console().print(t)


@recsys_app.command()
def train(
    data: str = DataArg,
    tokenizer: str = typer.Option("item_id", "--tokenizer", "-t", help="Tokenizer (or a+b for the ranker)."),
    model: str = ModelOpt,
    sid_table: Optional[Path] = SidOpt,
    items: Optional[Path] = ItemsOpt,
    seed: int = typer.Option(0, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="Folder for model.pt and metrics.json."),
    user_fraction: Optional[float] = UserFracOpt,
    max_epochs: Optional[int] = MaxEpochsOpt,
    patience: Optional[int] = PatienceOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    negatives: int = NegOpt,
    threads: int = ThreadsOpt,
    user_col: str = UserColOpt, item_col: str = ItemColOpt, time_col: str = TimeColOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Train one model to early stopping and print its test metrics.

    Example: agentictagger recsys train scientific -t item_id+agentictagger --sid-table runs/sci/semantic_ids.parquet --out models/sci
    """
    from agentictagger.recsys.pipeline import Pipeline, save_model

    _setup(threads, verbose)
    try:
        ds = _dataset(data, items, user_fraction, user_col, item_col, time_col)
        typer.echo(data_summary(ds), err=True)
        p = Pipeline(ds, tokenizer, model, sid_table=sid_table, n_negatives=negatives,
                     train_overrides={"max_epochs": max_epochs, "patience": patience, "max_steps": max_steps})
        row = p.run(seed)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if out is not None:
        save_model(p, row, out)
        typer.echo(f"saved {out / 'model.pt'} and {out / 'metrics.json'}", err=True)
    typer.echo(f"{ds.name}: {row['model']} on {row['tokenizer']}, seed {seed}: {row['epochs']} epochs "
               f"(best {row['best_epoch']}, stopped by {row['stopped_by']}), {row['train_seconds']} s", err=True)
    _print_row(f"{ds.name} · {model} · {tokenizer} · test", row["test"])


@recsys_app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="A folder written by `recsys train --out`."),
    data: str = DataArg,
    items: Optional[Path] = ItemsOpt,
    user_fraction: Optional[float] = UserFracOpt,
    negatives: int = NegOpt,
    threads: int = ThreadsOpt,
    user_col: str = UserColOpt, item_col: str = ItemColOpt, time_col: str = TimeColOpt,
    json_out: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
) -> None:
    """Score a saved model on a dataset's test users (the dataset it was trained on).

    Example: agentictagger recsys evaluate models/sci scientific
    """
    from agentictagger.recsys.pipeline import evaluate_saved

    _setup(threads, False)
    try:
        ds = _dataset(data, items, user_fraction, user_col, item_col, time_col)
        typer.echo(data_summary(ds), err=True)
        res = evaluate_saved(model_dir, ds, n_negatives=negatives)
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    if json_out:
        typer.echo(json.dumps(res, indent=1))
    else:
        _print_row(f"{ds.name} · {res['model']} · {res['tokenizer']} · test", res["test"])


@recsys_app.command()
def compare(
    data: str = DataArg,
    tokenizers: str = typer.Option("item_id,agentictagger", "--tokenizers", help="Comma list (a+b allowed for the ranker)."),
    model: str = ModelOpt,
    seeds: str = typer.Option("0,1,2", "--seeds"),
    sid_table: Optional[str] = typer.Option(
        None, "--sid-table", help="Semantic-ID table; may contain {seed} for one build per seed."),
    items: Optional[Path] = ItemsOpt,
    out: Path = typer.Option(Path("recsys_compare.json"), "--out", help="JSON results (rows appended as they finish)."),
    user_fraction: Optional[float] = UserFracOpt,
    max_epochs: Optional[int] = MaxEpochsOpt,
    patience: Optional[int] = PatienceOpt,
    max_steps: Optional[int] = MaxStepsOpt,
    negatives: int = NegOpt,
    threads: int = ThreadsOpt,
    user_col: str = UserColOpt, item_col: str = ItemColOpt, time_col: str = TimeColOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Every tokenizer x seed on the same data and budget; prints mean ± std over seeds.

    Example: agentictagger recsys compare scientific --tokenizers item_id,agentictagger,rq-vae --sid-table runs/sci/semantic_ids.parquet
    """
    from agentictagger.recsys.pipeline import Pipeline, append_row, claim_row, popularity_row, summarise

    _setup(threads, verbose)
    try:
        ds = _dataset(data, items, user_fraction, user_col, item_col, time_col)
        typer.echo(data_summary(ds), err=True)
        emb = None
        toks = [t.strip() for t in tokenizers.split(",") if t.strip()]
        if not toks:
            raise ValueError("--tokenizers is empty: give a comma list, e.g. --tokenizers item_id,agentictagger")
        if any(p in ("rq-vae", "rq-kmeans") for t in toks for p in t.split("+")):
            emb = ds.embeddings()
        for seed in [int(s) for s in seeds.split(",")]:
            for tok in toks:
                if not claim_row(out, (ds.name, model, tok, seed)):
                    continue
                table = sid_table.format(seed=seed) if sid_table else None
                p = Pipeline(ds, tok, model, sid_table=table, embeddings=emb, n_negatives=negatives,
                             train_overrides={"max_epochs": max_epochs, "patience": patience, "max_steps": max_steps})
                row = p.run(seed)
                append_row(out, row)
                typer.echo(f"{tok} seed {seed}: full N@10 {row['test']['all']['full']['N@10']:.4f} "
                           f"({row['epochs']} epochs, {row['train_seconds']} s)", err=True)
        if model == "ranker":
            append_row(out, popularity_row(ds, negatives))
    except (ValueError, FileNotFoundError) as exc:
        _fail(exc)
    res = json.loads(out.read_text())
    res["summary"] = summarise(res["rows"])
    res["dataset"] = ds.describe()
    out.write_text(json.dumps(res, indent=1) + "\n")
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{ds.name} · test, mean ± std over seeds")
    for c in ("model", "tokenizer", "seeds", "full N@10", "sampled N@10", "cold full N@10", "epochs"):
        t.add_column(c)

    ms = mean_std
    for s in res["summary"]:
        t.add_row(s["model"], s["tokenizer"], ",".join(map(str, s["seeds"])), ms(s, "all/full/N@10"),
                  ms(s, "all/sampled/N@10"), ms(s, "cold_items/full/N@10"),
                  f"{s['epochs']['mean']:.1f}" if "epochs" in s else "-")
    Console().print(t)
    typer.echo(f"wrote {out}", err=True)
