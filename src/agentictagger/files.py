"""Atomic file writes: every final file of a run, a checkpoint, a model or a result goes through
:func:`atomic_file` (a temporary file beside the target, fsynced, then renamed into place), so a
crash or a full disk leaves the old file whole and at most one ``*.at.tmp`` file that the next run
removes."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator


#: The ending of every temporary file :func:`atomic_file` makes: ``<name>.<pid>-<thread>.at.tmp``.
#: Only such names are removed as leftovers of a killed run.
TMP_SUFFIX = ".at.tmp"


def tmp_path_for(path: str | Path) -> Path:
    """The temporary name :func:`atomic_file` writes ``path`` under (unique per process and thread)."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}{TMP_SUFFIX}")


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; on a clean exit it is fsynced and renamed into
    place, on an error removed: a crash or a full disk leaves the old file whole (and at most a
    ``*.at.tmp`` file, removed by the next run). Every final file of a run goes through here."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(path)
    try:
        yield tmp
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_bytes(data)
