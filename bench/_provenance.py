"""Where a result file came from: every JSON under bench/results/ is written by its script through
:func:`write_result`, which stamps it with the git commit (and whether the tree had uncommitted
changes), the versions of the packages that shape results, the full command line and the date.

One convention for spread, stated here and stamped into every file: ``±`` (``std``/``sd`` fields)
is the sample standard deviation (ddof=1) over seeds; a single seed has none (0.0).
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agentictagger", "numpy", "scipy", "scikit-learn", "torch", "sentence-transformers", "pandas", "pyarrow",
            "openai", "xllamacpp", "llama-cpp-python", "ray")
SPREAD = "± / std / sd = sample standard deviation (ddof=1) over seeds; one seed: 0.0"


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _portable(arg: str) -> str:
    """A path argument as typed from a checkout's root: relative to this repository, else to the
    checkout (a git worktree or clone) it lies in, else its file name alone. No result file may
    carry a machine-specific path (a bench run from a worktree writing into the main checkout)."""
    if "=" in arg and arg.startswith("-"):
        opt, _, val = arg.partition("=")
        return f"{opt}={_portable(val)}"
    p = Path(arg)
    if not (p.is_absolute() or p.exists()):
        return arg
    full = p.resolve()
    try:
        return str(full.relative_to(ROOT))
    except ValueError:
        pass
    if not p.is_absolute():
        return arg
    for parent in full.parents:
        if (parent / ".git").exists():
            return str(full.relative_to(parent))
    return full.name


def command_line(argv: list[str] | None = None) -> str:
    """The command that ran this script, as typed from the repository root (interpreter relative)."""
    argv = list(sys.argv if argv is None else argv)
    exe = Path(sys.executable)
    try:
        exe_s = str(exe.relative_to(ROOT))
    except ValueError:
        exe_s = "python"
    return " ".join(shlex.quote(x) for x in [exe_s, *map(_portable, argv)])


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_uncommitted_changes": bool(status) if status is not None else None,
        "packages": versions,
        "python": sys.version.split()[0],
        "command": command_line(argv),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "spread": SPREAD,
    }


def stamp(result: dict[str, Any], argv: list[str] | None = None) -> dict[str, Any]:
    """``result`` with its ``provenance`` (see the module docstring)."""
    return {**result, "provenance": provenance(argv)}


def write_result(path: str | Path, result: dict[str, Any], *, argv: list[str] | None = None, **dump: Any) -> Path:
    """Write ``result`` stamped with its provenance to ``path``, atomically."""
    from agentictagger.files import atomic_write_text

    dump.setdefault("indent", 1)
    dump.setdefault("ensure_ascii", False)
    atomic_write_text(path, json.dumps(stamp(result, argv), **dump) + "\n")
    return Path(path)
