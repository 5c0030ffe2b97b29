"""What every command shares: the stderr console, one-line errors with their exit status, the run
folder's lock and logging."""

from __future__ import annotations

import errno
import logging
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console

from agentictagger.config import RunConfig

console = Console(stderr=True)


@contextmanager
def one_line_errors(verbose: bool, what: str = "error") -> Iterator[None]:
    """Any error of a command: one line on stderr and a non-zero exit (2: the run could not start,
    1: it failed); ``-v`` shows the traceback instead."""
    from rich.markup import escape

    from agentictagger.errors import RunError

    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - every error ends as one line, or a traceback with -v
        if verbose:
            raise
        text = " ".join(str(exc).split())
        if isinstance(exc, RunError):
            head, code = "error", 2
        elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            head, code = f"{what} failed", 1
            text = f"the disk is full ({exc.filename or text}); free some space or choose another --run-dir, then run again to resume"
        elif isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR):
            head, code = f"{what} failed", 1
            text = f"cannot write to {exc.filename or ''} ({exc.strerror}); choose a writable --run-dir / cache_dir or fix its permissions"
        else:
            head, code = f"{what} failed", 1
            text = f"{type(exc).__name__}: {text} (run with -v for the traceback)"
        console.print(f"[red]{head}:[/red] {escape(text)}", soft_wrap=True, highlight=False)
        raise typer.Exit(code) from exc



@contextmanager
def run_lock(cfg: RunConfig, command: str, wait: bool) -> Iterator[None]:
    """Hold the run folder for this command (another one stops, or waits with --wait); say so
    when a killed run's lock is taken over or its temporary files are removed."""
    from rich.markup import escape

    from agentictagger.run.folder import RunLock

    lock = RunLock(cfg.run_dir, command, wait=wait, on_wait=lambda msg: console.print(msg, soft_wrap=True, markup=False, highlight=False))
    with lock:
        for note in lock.notes:
            console.print(f"[yellow]note:[/yellow] {escape(note)}", soft_wrap=True, highlight=False)
        yield


def setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, show_time=False)],
    )
