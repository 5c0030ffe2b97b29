"""`agentictagger` command line: a thin layer over the Python API.

Every command takes ``--config run.yaml`` and ``--set section.field=value`` overrides.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agentictagger.config import RunConfig, config_template  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
console = Console(stderr=True)

from agentictagger.llm.models_cli import models_app  # noqa: E402

app.add_typer(models_app, name="models")

ConfigOpt = typer.Option(None, "--config", "-c", help="Run configuration (YAML).")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config field: section.field=value (repeatable).")


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )


def _load(config: Optional[Path], sets: Optional[list[str]], **extra: Any) -> RunConfig:
    overrides = list(sets or [])
    overrides += [f"{k}={v}" for k, v in extra.items() if v is not None]
    from pydantic import ValidationError
    from rich.markup import escape

    from agentictagger.config import describe_errors

    try:
        return RunConfig.load(config, overrides)
    except ValidationError as exc:  # one line per bad setting: its dotted name and allowed range
        for line in describe_errors(exc):
            console.print(f"[red]configuration error:[/red] {escape(line)}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    except Exception as exc:  # YAML / file errors: say what and where, no traceback
        text = " ".join(str(exc).split())
        console.print(f"[red]configuration error:[/red] {escape(text)}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc


def _catalog(cfg: RunConfig):
    from agentictagger.catalog import Catalog, CatalogError

    if not cfg.catalog.path:
        console.print("[red]no catalog:[/red] set catalog.path in the config or pass --catalog FILE")
        raise typer.Exit(2)
    try:
        return Catalog.load(cfg.catalog.path, cfg.catalog)
    except CatalogError as exc:
        console.print(f"[red]catalog error:[/red] {exc}")
        raise typer.Exit(2) from exc


class _BuildProgress:
    """A live line: jobs done / running / queued, coverage, calls, tokens, cost."""

    def __init__(self, usage_source: Any = None) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            SpinnerColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[line]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("build", total=1, line="starting")
        self.usage_source = usage_source

    def __call__(self, stats: dict) -> None:
        done, running, queued = stats.get("done", 0), stats.get("running", 0), stats.get("queued", 0)
        cov = stats.get("last_coverage")
        line = f"jobs {done} done/{running} run/{queued} queued"
        if cov is not None:
            line += f" | L{stats.get('level')} cov {cov:.0%}"
        usage = stats.get("usage")
        if usage:
            line += f" | calls {usage['calls']} (+{usage['cache_hits']} cached) tok {usage['tokens']} ${usage['cost']:.3f}"
        self.progress.update(self.task, completed=done, total=max(1, done + running + queued), line=line)

    def __enter__(self) -> "_BuildProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _fail(what: str, exc: BaseException, note: str) -> None:
    """One line on stderr (never wrapped, never read as markup), exit status 1."""
    from rich.markup import escape

    text = " ".join(str(exc).split())
    console.print(f"[red]{what}:[/red] {escape(note)}{escape(text)}", soft_wrap=True, highlight=False)
    raise typer.Exit(1) from exc


def _do_build(cfg: RunConfig) -> Any:
    from agentictagger.llm.models import ModelError
    from agentictagger.llm.types import LLMError
    from agentictagger.vocab.api import build_vocabulary
    from agentictagger.vocab.builder import BuildError
    from agentictagger.vocab.summary import build_summary

    catalog = _catalog(cfg)
    t0 = time.monotonic()
    with _BuildProgress() as bar:
        try:
            result = build_vocabulary(catalog, cfg, progress=bar)
        except BuildError as exc:
            _fail("build failed", exc, "vocabulary.json not written; ")
        except (LLMError, ModelError, ImportError) as exc:  # an LLM endpoint or model that cannot start
            _fail("build failed", exc, "")
    summary = build_summary(cfg.run_dir)
    table = Table(title=f"vocabulary built in {time.monotonic() - t0:.1f}s ({summary['build_items']} items)")
    for col in ("level", "jobs", "descriptors", "coverage in jobs", "items tagged"):
        table.add_column(col, justify="right")
    for lv, row in summary["coverage_by_level"].items():
        table.add_row(lv, str(row["jobs"]), str(row["descriptors"]), f"{row['coverage_in_jobs']:.1%}", f"{row['share_of_all_items_tagged']:.1%}")
    console.print(table)
    ref = summary["refinement"]
    if ref.get("jobs_refined"):
        console.print(
            f"refinement: {ref['jobs_refined']} jobs refined, coverage {ref['mean_first']:.1%} -> {ref['mean_last']:.1%}"
        )
    for w in result.warnings[:10]:
        console.print(f"[yellow]warning:[/yellow] {w}")
    return result


@app.command()
def build(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (overrides catalog.path)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (overrides run_dir)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build the descriptor vocabulary (resumes a killed run in the same run folder)."""
    _setup_logging(verbose)
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir})
    _do_build(cfg)
    console.print(f"outputs: {Path(cfg.run_dir) / 'vocabulary.json'}, build_log.jsonl, usage.json")


@app.command()
def assign(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (overrides catalog.path)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder holding vocabulary.json."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Give every item one valid descriptor path; write the semantic-ID table (resumable)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from agentictagger import pipeline

    _setup_logging(verbose)
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir})
    cat = _catalog(cfg)
    if not (Path(cfg.run_dir) / "vocabulary.json").exists():
        console.print(f"[red]no vocabulary:[/red] {cfg.run_dir}/vocabulary.json is missing; run `agentictagger build` first")
        raise typer.Exit(2)
    with Progress(*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(f"assign ({cfg.assign.assigner})", total=len(cat))
        result = pipeline.assign(cfg, cat, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"assigned {len(result)} items -> {cfg.run_dir}/semantic_ids.parquet, assignments.jsonl")


@app.command()
def report(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (labels, if any, give NMI/purity)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder."),
) -> None:
    """Vocabulary diagnostics: coverage, utilization, collisions, depth, NMI/purity vs labels."""
    from agentictagger import pipeline
    from agentictagger.diagnostics import print_diagnostics

    _setup_logging(False)
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir})
    cat = _catalog(cfg) if cfg.catalog.path else None
    try:
        diag = pipeline.report(cfg, cat)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    print_diagnostics(diag, console)
    console.print(f"written: {cfg.run_dir}/diagnostics.json")


@app.command("config-template")
def config_template_cmd() -> None:
    """Print a YAML config with every field, its default and its description."""
    typer.echo(config_template())


def sample_catalog_path() -> Path:
    return Path(str(resources.files("agentictagger") / "data" / "sample_catalog.jsonl"))


#: The demo's local-LLM settings: Qwen2.5-Coder-1.5B (``make local-llm``) names the level-1
#: groups, one call each (10-30 s per call on 2 cores); deeper levels keep key-phrase names.
DEMO_LLM_SETTINGS = [
    "build.naming.kind=llm",
    "build.naming.max_level=1",
    "llms.namer.backend=local",
    "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
    "llms.namer.n_threads=2",
]


def demo_config(run_dir: str = "runs/demo", llm: bool = False) -> RunConfig:
    return RunConfig.load(
        None,
        [
            *(DEMO_LLM_SETTINGS if llm else []),
            f"run_dir={run_dir}",
            f"catalog.path={sample_catalog_path()}",
            "catalog.id_field=item_id",
            "catalog.text_template='{title}. Brand: {brand}. {description}'",
            "catalog.label_field=category",
            # 304 items: smaller sub-jobs than the paper's 30 so the demo shows a hierarchy.
            "build.min_cluster_size=12",
            "build.root_descriptors=10",
        ],
    )


@app.command()
def demo(
    run_dir: str = typer.Option("runs/demo", help="Run folder."),
    llm: bool = typer.Option(
        True,
        "--llm/--offline",
        help="Name level 1 with the local LLM (needs `make local-llm`), or use key-phrase names only.",
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """End to end on the shipped sample catalog (304 Amazon Industrial & Scientific items):
    build -> assign -> report. Grouping and matching use sentence embeddings; with --llm (default)
    the local Qwen2.5-Coder-1.5B model names the level-1 descriptors."""
    _setup_logging(verbose)
    cfg = demo_config(run_dir, llm=llm)
    roles = "embedding grouping, local-LLM names at level 1" if llm else "offline embedding agents, key-phrase names"
    console.print(f"[bold]agentictagger demo[/bold]: {sample_catalog_path().name}, {roles}")
    result = _do_build(cfg)
    console.print(result.vocabulary.render(max_level=2), markup=False)
    _maybe_assign_and_report(cfg)


def _maybe_assign_and_report(cfg: RunConfig) -> None:
    from agentictagger.pipeline import assign_and_report

    assign_and_report(cfg, _catalog(cfg), console)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
