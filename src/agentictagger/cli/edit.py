"""`agentictagger edit RUN_DIR rename|move|merge|delete ...`: vocabulary edits from the command
line, a thin layer over :meth:`agentictagger.api.AgenticTagger.edit`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

HELP = (
    "Edit a finished run's vocabulary: rename, move, merge or delete descriptors.\n\n"
    "Only the items an edit touches change semantic ID (every other item keeps its path and resolver); items whose "
    "descriptor goes away are re-assigned with the run's assigner. Each edit is appended to RUN_DIR/edits.jsonl (time, "
    "edit, items touched, before/after IDs); an edit that would break the tree is refused with one line saying why, "
    "and changes nothing. Descriptor ids are in `agentictagger report` and explorer.html.\n\n"
    "Examples:\n"
    '  agentictagger edit runs/a rename d2 "Hand Tools"\n'
    "  agentictagger edit runs/a move d2.3 d5      (d2.3 and its subtree go under d5; root = level 1)\n"
    "  agentictagger edit runs/a merge d1.4 d1.2   (d1.4's children and items go to d1.2)\n"
    "  agentictagger edit runs/a delete d3.2       (its items are re-assigned within d3)\n"
    "  agentictagger edit runs/a log\n"
)

edit_app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)

CatalogOpt = typer.Option(
    None, "--catalog",
    help="Catalog file(s) with the texts of items to re-assign (repeatable; default: the run's catalog). "
    "Pass the files added with `assign --add` too.",
)
WaitOpt = typer.Option(False, "--wait", help="If another command is using the run folder, wait for it instead of stopping.")
VerboseOpt = typer.Option(False, "--verbose", "-v")


@edit_app.callback()
def _edit(ctx: typer.Context, run_dir: Path = typer.Argument(..., help="A finished run folder (built and assigned).")) -> None:
    ctx.ensure_object(dict)["run_dir"] = run_dir


def _apply(ctx: typer.Context, op: str, verbose: bool, wait: bool, catalog: Optional[list[Path]] = None, **args: Any) -> None:
    from rich.markup import escape

    from agentictagger.cli.common import console, one_line_errors, run_lock, setup_logging
    from agentictagger.errors import RunError
    from agentictagger.api import AgenticTagger, NotFittedError

    run_dir: Path = ctx.obj["run_dir"]
    setup_logging(verbose)
    with one_line_errors(verbose, "edit"):
        try:
            tagger = AgenticTagger.load(run_dir)
            with run_lock(tagger.config, "edit", wait):
                record = tagger.edit(op, catalog=[str(c) for c in catalog] if catalog else None, **args)
        except NotFittedError as exc:
            raise RunError(_not_ready(run_dir, exc)) from exc
    if record.get("already_applied"):
        console.print(
            f"already applied: edit {record.get('edit')} ({record.get('time', '')}) made this change; nothing to do: "
            f"{escape(record['summary'])}", soft_wrap=True, highlight=False,
        )
        return
    console.print(escape(record["summary"]), soft_wrap=True, highlight=False)
    console.print(
        f"edit {record['edit']} logged in {run_dir / 'edits.jsonl'}; see it with `agentictagger explore {run_dir}`",
        soft_wrap=True, highlight=False, markup=False,
    )


def _not_ready(run_dir: Path, exc: Exception) -> str:
    """What to run before a run folder can be edited (it has no vocabulary, or no semantic IDs yet)."""
    if not (run_dir / "config.yaml").exists() and not (run_dir / "vocabulary.json").exists():
        return f"{run_dir} is not a run folder (no config.yaml or vocabulary.json); give the folder of a built and assigned run"
    if not (run_dir / "vocabulary.json").exists():
        return (f"{run_dir} has no vocabulary yet (not built, or a build --restart is under way); run "
                f"`agentictagger build --run-dir {run_dir}` and `agentictagger assign --run-dir {run_dir}`, then edit")
    return f"{run_dir} has no semantic-ID table yet; run `agentictagger assign --run-dir {run_dir}` first, then edit"


@edit_app.command()
def rename(
    ctx: typer.Context,
    descriptor: str = typer.Argument(..., help="Descriptor id, e.g. d2.1."),
    name: str = typer.Argument(..., help="The new name (unique among its siblings)."),
    definition: Optional[str] = typer.Option(None, "--definition", help="A new definition too."),
    wait: bool = WaitOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Rename a descriptor; no item moves or changes ID.

    Example: agentictagger edit runs/a rename d2 "Hand Tools" --definition "Tools used by hand"
    """
    _apply(ctx, "rename", verbose, wait, descriptor=descriptor, name=name, definition=definition)


@edit_app.command()
def move(
    ctx: typer.Context,
    descriptor: str = typer.Argument(..., help="Descriptor id to move (with its subtree)."),
    parent: str = typer.Argument(..., help="The new parent's id, or 'root' for level 1."),
    wait: bool = WaitOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Move a descriptor and its subtree under another parent; its items go with it (same descriptors and resolvers, a new path prefix).

    Example: agentictagger edit runs/a move d2.3 d5
    """
    _apply(ctx, "move", verbose, wait, descriptor=descriptor, parent=parent)


@edit_app.command()
def merge(
    ctx: typer.Context,
    source: str = typer.Argument(..., help="Descriptor id that goes away."),
    target: str = typer.Argument(..., help="Descriptor id that takes its children and items."),
    catalog: Optional[list[Path]] = CatalogOpt,
    wait: bool = WaitOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Merge SOURCE into TARGET: SOURCE's children move under TARGET with their items; items that stopped at SOURCE are re-assigned within TARGET's subtree.

    Example: agentictagger edit runs/a merge d1.4 d1.2
    """
    _apply(ctx, "merge", verbose, wait, catalog, source=source, target=target)


@edit_app.command()
def delete(
    ctx: typer.Context,
    descriptor: str = typer.Argument(..., help="Descriptor id to delete (with its subtree)."),
    catalog: Optional[list[Path]] = CatalogOpt,
    wait: bool = WaitOpt,
    verbose: bool = VerboseOpt,
) -> None:
    """Delete a descriptor and its subtree; their items are re-assigned within its parent's subtree (among the other level-1 descriptors, for a level-1 one).

    Example: agentictagger edit runs/a delete d3.2
    """
    _apply(ctx, "delete", verbose, wait, catalog, descriptor=descriptor)


@edit_app.command("log")
def show_log(ctx: typer.Context) -> None:
    """Print the run's edit log, one line per edit (full records: RUN_DIR/edits.jsonl).

    Example: agentictagger edit runs/a log
    """
    from agentictagger.api import AgenticTagger

    for rec in AgenticTagger(run_dir=str(ctx.obj["run_dir"])).edit_log:
        typer.echo(f"{rec.get('edit', '?')}\t{rec.get('time', '')}\t{rec.get('summary', rec.get('op'))}")
