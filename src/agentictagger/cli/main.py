"""`agentictagger` command line: a thin layer over the Python API.

build, assign, report and estimate take ``--config run.yaml`` and ``--set section.field=value``
overrides; explore, edit, recsys, models and config-template take their own options.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import typer  # noqa: E402
from rich.table import Table  # noqa: E402

from agentictagger.cli.common import console, one_line_errors, run_lock, setup_logging  # noqa: E402
from agentictagger.config import RunConfig, config_template  # noqa: E402

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)

from agentictagger.cli.models import models_app  # noqa: E402

app.add_typer(models_app, name="models")


def _print_version(value: bool) -> None:
    if value:
        from agentictagger import __version__

        typer.echo(f"agentictagger {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    pass

ConfigOpt = typer.Option(None, "--config", "-c", help="Run configuration (YAML).")
SetOpt = typer.Option(None, "--set", "-s", help="Override a config field: section.field=value (repeatable).")
SkipBadRowsOpt = typer.Option(
    False, "--skip-bad-rows", help="Skip catalog rows that fail validation (reported and counted) instead of stopping."
)
IdFieldOpt = typer.Option(None, "--id-field", help="Catalog column holding a unique item id (overrides catalog.id_field).")
TextTemplateOpt = typer.Option(
    None, "--text-template", help="Item text from the columns, e.g. '{title}. Brand: {brand|}' (overrides catalog.text_template)."
)
LabelFieldOpt = typer.Option(
    None, "--label-field", help="Ground-truth category column, for diagnostics only (overrides catalog.label_field)."
)


def _catalog_settings(id_field: Optional[str], text_template: Optional[str], label_field: Optional[str]) -> dict[str, Any]:
    return {"catalog.id_field": id_field, "catalog.text_template": text_template, "catalog.label_field": label_field}


def _require_run_dir(config: Optional[Path], sets: Optional[list[str]], run_dir: Optional[str], command: str) -> None:
    """build, assign and report write into a run folder: it is named (--run-dir, run_dir in the
    config or --set run_dir=...), never taken from the default silently."""
    if run_dir or any(s.split("=", 1)[0].strip() == "run_dir" for s in sets or []):
        return
    if config is not None and config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8"))
        except Exception:  # noqa: BLE001 - _load reports a broken file
            return
        if isinstance(data, dict) and data.get("run_dir"):
            return
    console.print(
        f"[red]error:[/red] {command} needs a run folder: pass --run-dir DIR (or set run_dir in the --config file)",
        soft_wrap=True, highlight=False,
    )
    raise typer.Exit(2)


RestartOpt = typer.Option(
    False, "--restart", help="Discard this stage's checkpoints and outputs in the run folder and start it clean "
    "(needed when they were made with other settings, catalog or vocabulary).",
)
WaitOpt = typer.Option(False, "--wait", help="If another build/assign is using the run folder, wait for it instead of stopping.")
ExecutorOpt = typer.Option(
    None, "--executor", help="Where the per-item stages run: local or ray (overrides scale.executor; ray implies shards)."
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
    from rich.markup import escape

    try:
        cat = Catalog.load(cfg.catalog.path, cfg.catalog)
    except CatalogError as exc:  # one line, or one line per bad row
        console.print(f"[red]catalog error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    if cat.skipped_rows:
        console.print(f"catalog: {len(cat)} items loaded, {len(cat.skipped_rows)} bad row(s) skipped (--skip-bad-rows)")
    return cat


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
        self._t0 = self._last_print = time.monotonic()
        self._last_print -= 10
        self._last_line = ""

    def __call__(self, stats: dict) -> None:
        done, running, queued = stats.get("done", 0), stats.get("running", 0), stats.get("queued", 0)
        cov = stats.get("last_coverage")
        line = f"jobs {done} done/{running} run/{queued} queued"
        if cov is not None:
            line += f" | L{stats.get('level')} cov {cov:.0%}"
        usage = stats.get("usage")
        if usage:
            line += f" | calls {usage['calls']} (+{usage['cache_hits']} cached) tok {usage['tokens']} ${usage['cost']:.3f}"
        if stats.get("phase"):
            line += f" | {stats['phase']}"
        self.progress.update(self.task, completed=done, total=max(1, done + running + queued), line=line)
        # Without a terminal (a log file, CI) the live line is not drawn: a plain line when it
        # changes, at most every 10 s.
        now = time.monotonic()
        if not console.is_terminal and line != self._last_line and now - self._last_print >= 10:
            console.print(f"[{now - self._t0:6.0f}s] {line}", markup=False, highlight=False)
            self._last_line, self._last_print = line, now

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


def _do_build(cfg: RunConfig, catalog: Any = None, restart: bool = False) -> Any:
    from agentictagger.api import AgenticTagger
    from agentictagger.errors import BuildError, LLMError
    from agentictagger.llm.models import ModelError
    from agentictagger.vocab.summary import build_summary

    tagger = AgenticTagger(cfg)
    tagger.preflight("build")  # before the catalog is read
    catalog = catalog if catalog is not None else _catalog(cfg)
    t0 = time.monotonic()
    with _BuildProgress() as bar:
        try:
            result = tagger.build(catalog, progress=bar, restart=restart)
        except BuildError as exc:
            _fail("build failed", exc, "vocabulary.json not written; ")
        except (LLMError, ModelError, ImportError) as exc:  # an LLM endpoint or model that cannot start
            _fail("build failed", exc, "")
    summary = build_summary(cfg.run_dir, result)
    table = Table(title=f"vocabulary built in {time.monotonic() - t0:.1f}s ({summary['build_items']} items)")
    for col in ("level", "jobs", "descriptors", "jobs refined", "coverage first -> last step", "Wilcoxon p", "items tagged"):
        table.add_column(col, justify="right")
    ref = summary["refinement"]
    for lv, row in summary["coverage_by_level"].items():
        r = ref.get("by_level", {}).get(lv, {})
        p = r.get("wilcoxon_p_greater")
        table.add_row(
            lv,
            str(row["jobs"]),
            str(row["descriptors"]),
            str(r.get("jobs_refined", 0)) + (f" ({r['refinements_rejected']} not applied)" if r.get("refinements_rejected") else ""),
            f"{r.get('coverage_before', row['coverage_in_jobs']):.1%} -> {row['coverage_in_jobs']:.1%}",
            f"{p:.2g}" if p is not None else "-",
            f"{row['share_of_all_items_tagged']:.1%}",
        )
    console.print(table)
    if cfg.build.annotator.kind == "embedding" and cfg.build.annotator.judge == "names":
        console.print("coverage: items whose group's name and definition, read alone, pick that group among its siblings")
    for lv, row in summary.get("llm_names", {}).items():
        rules = ", ".join(f"{rule} {n}" for rule, n in row["fallbacks_by_rule"].items())
        console.print(
            f"level {lv}: {row['llm']} of {row['descriptors']} names by the LLM"
            + (f"; {row['fallbacks']} key-phrase fallback(s), the LLM's name broke: {rules}" if row["fallbacks"] else ""),
            soft_wrap=True,
        )
    failed = summary.get("failed_calls") or {}
    if any(failed.values()) or summary.get("unanswered_items"):
        per_stage = ", ".join(f"{stage} {n}" for stage, n in sorted(failed.items()) if n) or "none"
        unanswered = summary.get("unanswered_items", 0)
        console.print(
            f"[yellow]failed LLM calls[/yellow] (for good, after retries and re-asks) per stage: {per_stage}"
            + (
                f"; {unanswered} item(s) of the final steps have no annotator answer (run the build again to retry them)"
                if unanswered
                else ""
            ),
            soft_wrap=True,
        )
    for w in result.warnings[:10]:  # the builder logs them at INFO: printed here once
        console.print(f"[yellow]warning:[/yellow] {w}", soft_wrap=True)
    return result


@app.command()
def build(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (overrides catalog.path)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (required unless the config sets run_dir)."),
    skip_bad_rows: bool = SkipBadRowsOpt,
    restart: bool = RestartOpt,
    wait: bool = WaitOpt,
    id_field: Optional[str] = IdFieldOpt,
    text_template: Optional[str] = TextTemplateOpt,
    label_field: Optional[str] = LabelFieldOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Build the descriptor vocabulary (resumes a killed run in the same run folder).

    Example: agentictagger build --catalog items.jsonl --run-dir runs/a --set build.min_cluster_size=20
    """
    setup_logging(verbose)
    _require_run_dir(config, sets, run_dir, "build")
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir, "catalog.skip_bad_rows": skip_bad_rows or None,
                                 **_catalog_settings(id_field, text_template, label_field)})
    with one_line_errors(verbose, "build"), run_lock(cfg, "build", wait):
        _do_build(cfg, restart=restart)
    console.print(f"outputs: {Path(cfg.run_dir) / 'vocabulary.json'}, build_log.jsonl, usage.json")


@app.command()
def assign(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (overrides catalog.path)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder holding vocabulary.json (required unless the config sets run_dir)."),
    skip_bad_rows: bool = SkipBadRowsOpt,
    restart: bool = RestartOpt,
    id_field: Optional[str] = IdFieldOpt,
    text_template: Optional[str] = TextTemplateOpt,
    label_field: Optional[str] = LabelFieldOpt,
    add: bool = typer.Option(
        False, "--add", help="Append the catalog's items to the run's semantic-ID table: existing items keep their IDs, "
        "items already in the table are skipped (reported), new ones on a path in use get the next resolver.",
    ),
    wait: bool = WaitOpt,
    executor: Optional[str] = ExecutorOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Give every item one valid descriptor path; write the semantic-ID table (resumable).
    With --add, tag new items into a finished run without changing any existing ID. Large
    catalogs (a folder of shards, a big file, or --executor ray) go through shards: see scale.*.

    Example: agentictagger assign --catalog items.jsonl --run-dir runs/a  (then: --add --catalog new_items.jsonl)
    """
    from rich.markup import escape
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from agentictagger.api import AgenticTagger

    setup_logging(verbose)
    _require_run_dir(config, sets, run_dir, "assign")
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir, "catalog.skip_bad_rows": skip_bad_rows or None,
                                 "scale.executor": executor, **_catalog_settings(id_field, text_template, label_field)})
    if add and restart:
        console.print("[red]error:[/red] --add keeps the run's semantic IDs and --restart discards them: use one of them")
        raise typer.Exit(2)
    tagger = AgenticTagger(cfg)
    if not add and tagger.uses_shards():
        with one_line_errors(verbose, "assign"), run_lock(cfg, "assign", wait):
            _assign_sharded(tagger, restart)
        return
    with one_line_errors(verbose, "assign"), run_lock(cfg, "assign", wait):
        tagger.preflight("assign")
        tagger.check_vocabulary()  # a missing, empty or unfinished vocabulary: before any work
        cat = _catalog(cfg)
        with Progress(*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task(f"assign ({cfg.assign.assigner})", total=len(cat))
            tick = lambda done, total: bar.update(task, completed=done, total=total)  # noqa: E731
            if add:
                added = tagger.add(cat, progress=tick)
            else:
                result = tagger.assign(cat, progress=tick, restart=restart)
    if add:
        if added.skipped:
            console.print(f"[yellow]{escape(added.skipped_note())}[/yellow]", soft_wrap=True, highlight=False)
        console.print(
            f"added {len(added)} new items ({len(added.table)} in all) -> {cfg.run_dir}/semantic_ids.parquet, assignments.jsonl",
            highlight=False,
        )
        return
    stats = result.meta.get("stats") or {}
    failed = f"; {stats['failed_calls']} LLM call(s) failed for good" if stats.get("failed_calls") else ""
    empty = f"; {result.meta['empty_paths']} empty path(s)" if result.meta.get("empty_paths") else ""
    if result.meta.get("unfinished_paths"):
        empty += (f"; {result.meta['unfinished_paths']} unfinished path(s) (a call failed for good below level 1; "
                  "run `agentictagger assign` again to retry them)")
    console.print(f"assigned {len(result)} items -> {cfg.run_dir}/semantic_ids.parquet, assignments.jsonl{failed}{empty}")


def _assign_sharded(tagger: Any, restart: bool) -> None:
    """`assign` through shards (agentictagger.run.shards): streamed, resumed by shard, local or Ray."""
    from rich.markup import escape
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from agentictagger.errors import CatalogError

    cfg = tagger.config
    with Progress(*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn(), console=console) as bar:
        task = bar.add_task(f"assign ({cfg.assign.assigner}, shards on {cfg.scale.executor})", total=None)
        try:
            out = tagger.assign_sharded(cfg.catalog.path, restart=restart,
                                        progress=lambda done, total: bar.update(task, completed=done, total=total))
        except CatalogError as exc:
            console.print(f"[red]catalog error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from exc
    kept = len(out.kept["assignments"])
    merged = "semantic_ids.parquet, assignments.jsonl and " if out.merged else ""
    console.print(
        f"assigned {out.items} items in {out.shards} shard(s) on {out.executor} ({kept} finished shard(s) kept) -> "
        f"{cfg.run_dir}/{merged}shards/semantic_ids/ (manifest.json)" + (f"; {out.empty_paths} empty path(s)" if out.empty_paths else "")
        + (f"; {out.meta['unfinished_paths']} unfinished path(s) (a call failed for good below level 1; rerun "
           "`agentictagger assign` to retry them)" if out.meta.get("unfinished_paths") else ""),
        highlight=False, soft_wrap=True,
    )


@app.command()
def estimate(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    items: Optional[int] = typer.Option(None, "--items", "-n", help="Catalog size (instead of a catalog file)."),
    catalog: Optional[str] = typer.Option(None, help="Catalog file or folder whose items are counted (overrides catalog.path)."),
    workers: int = typer.Option(1, "--workers", "-w", help="Workers (cores, or Ray workers) running the per-item stages."),
    model: Optional[str] = typer.Option(None, help="Hosted model of the price table (default: each LLM role's model)."),
    price_in: Optional[float] = typer.Option(None, help="USD per 1M prompt tokens (default: the LLM's price_per_million_input)."),
    price_out: Optional[float] = typer.Option(None, help="USD per 1M completion tokens (default: price_per_million_output)."),
    prefix_caching: bool = typer.Option(True, "--prefix-caching/--no-prefix-caching", help="Providers bill cached prompt prefixes lower."),
    cached_price_factor: float = typer.Option(0.5, help="Price of a cached prompt token as a share of the input price."),
    batch: Optional[bool] = typer.Option(None, "--batch/--online", help="Batch API (default: the LLM's mode)."),
    rpm: Optional[float] = typer.Option(None, help="Requests per minute the provider allows (default: the LLM's requests_per_minute)."),
    latency_s: float = typer.Option(1.0, help="Seconds one LLM request takes (the provider's latency; paces "
                                    "workers x max_concurrency requests in flight)."),
    measured: Optional[Path] = typer.Option(
        None, help="A scale.json written by bench/scale.py (default: the figures shipped with agentictagger)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Time and dollars of building the vocabulary and assigning 10^5 ... 10^8 items (and this
    catalog) on N workers, from measured per-item and per-call costs (shipped with the package;
    bench/make_estimate_calibration.py writes them from bench/results/). Dollars are shown with
    and without prefix caching.

    Example: agentictagger estimate --catalog shared:beauty --workers 8 --set assign.assigner=llm --set llms.default.model=gpt-4o-mini
    """
    from rich.markup import escape

    from agentictagger.api import AgenticTagger
    from agentictagger.run.estimate import check_options, render_build, render_estimate

    setup_logging(verbose)
    try:
        check_options(items=items, workers=workers, price_in=price_in, price_out=price_out,
                      cached_price_factor=cached_price_factor, rpm=rpm, latency_s=latency_s)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from exc
    cfg = _load(config, sets, **{"catalog.path": catalog})
    with one_line_errors(verbose, "estimate"):
        est = AgenticTagger(cfg).estimate(items, measured=measured, model=model, price_in=price_in, price_out=price_out,
                                          prefix_caching=prefix_caching, cached_price_factor=cached_price_factor,
                                          batch=batch, rpm=rpm, latency_s=latency_s, workers=workers)
    rows, build_rows, warnings = est["assign"], est["build"], est["warnings"]
    for w in warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True, highlight=False)
    typer.echo("build (vocabulary):\n" + render_build(build_rows))
    typer.echo("\nassignment:\n" + render_estimate(rows))


@app.command()
def report(
    config: Optional[Path] = ConfigOpt,
    sets: Optional[list[str]] = SetOpt,
    catalog: Optional[str] = typer.Option(None, help="Catalog file (labels, if any, give NMI/purity)."),
    run_dir: Optional[str] = typer.Option(None, help="Run folder (required unless the config sets run_dir)."),
    skip_bad_rows: bool = SkipBadRowsOpt,
    id_field: Optional[str] = IdFieldOpt,
    text_template: Optional[str] = TextTemplateOpt,
    label_field: Optional[str] = LabelFieldOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """The descriptor tree (top levels, item counts) and the vocabulary diagnostics: coverage,
    utilization, collisions, depth, NMI/purity vs labels.

    Example: agentictagger report --run-dir runs/a --catalog items.jsonl
    """
    from agentictagger.api import AgenticTagger

    setup_logging(verbose)
    _require_run_dir(config, sets, run_dir, "report")
    cfg = _load(config, sets, **{"catalog.path": catalog, "run_dir": run_dir, "catalog.skip_bad_rows": skip_bad_rows or None,
                                 **_catalog_settings(id_field, text_template, label_field)})
    cat = _catalog(cfg) if cfg.catalog.path else None
    with one_line_errors(verbose, "report"):
        try:
            diag = AgenticTagger(cfg).report(cat)
        except FileNotFoundError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    _print_tree_and_diagnostics(cfg.run_dir, diag)
    failed = diag.get("failed_calls") or {}
    if any(failed.values()):
        console.print("failed LLM calls (for good) per stage: " + ", ".join(f"{k} {v}" for k, v in sorted(failed.items()) if v))
    console.print(f"written: {cfg.run_dir}/diagnostics.json")


def _print_tree_and_diagnostics(run_dir: str | Path, diag: dict) -> None:
    """The descriptor tree (levels 1-2, with item counts) beside the diagnostics tables; below
    them when the terminal is too narrow for both."""
    from rich.columns import Columns
    from rich.console import Group
    from rich.panel import Panel

    from agentictagger.structures.assignment import Assignment
    from agentictagger.run.report import render_tables, render_tree
    from agentictagger.structures.vocabulary import Vocabulary

    run = Path(run_dir)
    tree = render_tree(Vocabulary.load(run / "vocabulary.json"), Assignment.load_jsonl(run / "assignments.jsonl"))
    console.print(Columns([Panel(tree, title="Descriptors (items)", expand=False), Group(*render_tables(diag))]))


@app.command()
def explore(
    run_dir: Path = typer.Argument(..., help="A finished run folder (vocabulary.json and assignments.jsonl)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write the page (default RUN_DIR/explorer.html)."),
    catalog: Optional[Path] = typer.Option(
        None, help="Catalog file for the item texts (default: the catalog named in RUN_DIR/config.yaml, if it exists)."
    ),
    compare: Optional[Path] = typer.Option(
        None, "--compare", help="Another run folder: the page also shows what changed from it (before) to RUN_DIR (after)."
    ),
    plotly_js: str = typer.Option(
        "inline", "--plotly-js", help="inline: plotly.js inside the page (one file, ~4.8 MB); beside: one shared "
        "plotly-<version>.min.js written next to the page, which loads it from there (the page ~0.1 MB + its data)."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write one self-contained HTML page to browse the run: the tree, a treemap/sunburst by item
    count, each descriptor's figures and members (CSV download), a search over names, ids and item
    texts, deep links (page.html#d3.1), the diagnostics. It opens from disk: no server, no network.
    With --compare, also what changed from another run (and a warning when the two look unrelated).

    Example: agentictagger explore runs/demo -o explorer.html  (or: explore runs/a --compare runs/a-before)
    """
    from agentictagger.api import AgenticTagger
    from agentictagger.run.explorer import PLOTLY_JS_MODES

    if plotly_js not in PLOTLY_JS_MODES:
        console.print(f"error: --plotly-js must be one of {', '.join(PLOTLY_JS_MODES)} (given: {plotly_js})",
                      soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(2)

    def warn(reason: str) -> None:
        typer.echo(f"warning: {compare} and {run_dir} look unrelated: {reason}", err=True)

    setup_logging(verbose)
    with one_line_errors(verbose, "explore"):
        try:
            path = AgenticTagger(run_dir=str(run_dir)).explore(output, catalog_path=catalog, compare=compare,
                                                               plotly_js=plotly_js, warn=warn)
        except FileNotFoundError as exc:
            console.print(f"error: {exc}", soft_wrap=True, highlight=False, markup=False)
            raise typer.Exit(2) from exc
    typer.echo(f"explorer: {path}")


@app.command("config-template")
def config_template_cmd() -> None:
    """Print a YAML config with every field, its default and its description.

    Example: agentictagger config-template > run.yaml; agentictagger build -c run.yaml
    """
    typer.echo(config_template())


from agentictagger.api import sample_catalog_path  # noqa: E402,F401  (the demo's catalog; also the API's)


#: The demo's local-LLM settings: Qwen2.5-Coder-1.5B (``make local-llm``) names levels 1-3, one
#: call per job naming its sibling groups together; deeper levels keep key-phrase names. To keep
#: the demo within minutes on 2 cores, the LLM is not asked to rename (the key-phrase levels still
#: are) and each job refines once.
DEMO_LLM_SETTINGS = [
    "build.naming.kind=llm",
    "build.naming.max_level=3",
    "build.naming.refine_steps=0",
    "build.naming.titles_per_group=3",
    "build.naming.definitions=keyphrase",
    "build.naming.max_reasks=1",
    "build.refine_steps=1",
    "build.max_refine_steps=1",
    "llms.namer.backend=local",
    "llms.namer.model_path=qwen2.5-coder-1.5b-instruct",
    "llms.namer.n_threads=2",
]


def demo_config(run_dir: str = "runs/demo", llm: bool = False, llm_levels: int = 3) -> RunConfig:
    return RunConfig.load(
        None,
        [
            *(DEMO_LLM_SETTINGS if llm else []),
            *([f"build.naming.max_level={llm_levels}"] if llm else []),
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
        help="Name levels 1-3 with the local LLM (needs `make local-llm`), or use key-phrase names only.",
    ),
    llm_levels: int = typer.Option(3, "--llm-levels", min=1, max=20, help="Levels 1..N named by the local LLM (with --llm)."),
    restart: bool = RestartOpt,
    wait: bool = WaitOpt,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """End to end on the shipped sample catalog (304 Amazon Industrial & Scientific items):
    build -> assign -> report. Grouping and matching use sentence embeddings; with --llm (default)
    the local Qwen2.5-Coder-1.5B model names the descriptors of levels 1-3. Writes explorer.html too.

    Example: agentictagger demo --offline --run-dir runs/demo
    """
    setup_logging(verbose)
    cfg = demo_config(run_dir, llm=llm, llm_levels=llm_levels)
    roles = f"embedding grouping, local-LLM names at levels 1-{llm_levels}" if llm else "offline embedding agents, key-phrase names"
    console.print(f"[bold]agentictagger demo[/bold]: {sample_catalog_path().name}, {roles}")
    cat = _catalog(cfg)  # loaded once: its warnings print once
    with one_line_errors(verbose, "demo"), run_lock(cfg, "demo", wait):
        result = _do_build(cfg, cat, restart=restart)
        console.print(result.vocabulary.render(max_level=2), markup=False)
        _maybe_assign_and_report(cfg, cat, restart=restart)


def _maybe_assign_and_report(cfg: RunConfig, cat: Any = None, restart: bool = False) -> None:
    from agentictagger.api import AgenticTagger
    from agentictagger.run.report import print_diagnostics

    cat = cat if cat is not None else _catalog(cfg)
    tagger = AgenticTagger(cfg)
    assignment = tagger.assign(cat, restart=restart)
    print_diagnostics(tagger.report(cat), console)
    console.print(
        f"assigned {len(assignment)} items. Outputs in {cfg.run_dir}/: "
        "vocabulary.json, assignments.jsonl, semantic_ids.parquet/.jsonl, diagnostics.json, build_log.jsonl, usage.json"
    )
    console.print(f"explorer: {tagger.explore(catalog=cat)} (open it in a browser; no server needed)", highlight=False, soft_wrap=True)


from agentictagger.cli.edit import edit_app  # noqa: E402  (`agentictagger edit RUN_DIR rename|move|merge|delete`)

app.add_typer(edit_app, name="edit")

from agentictagger.cli.recsys import recsys_app  # noqa: E402  (`agentictagger recsys train|evaluate|compare`)

app.add_typer(recsys_app, name="recsys")


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
