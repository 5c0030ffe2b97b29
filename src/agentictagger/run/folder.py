"""The run folder's own state: settings fingerprints of checkpoints, the run lock, and leftovers.

* A *fingerprint* is a flat ``{dotted setting: value}`` of everything that shapes a stage's
  results: its config section(s), the identity of its inputs (catalog items, vocabulary) and of
  the models it calls. It is written next to the stage's checkpoints before the first one; a later
  run of the stage compares, and on any difference stops with :class:`StaleStateError` naming the
  changed keys, unless asked to ``restart`` (the stage's checkpoints and outputs are removed first).
  Settings that cannot change results (parallelism, timeouts, retries, prices, failure thresholds)
  are left out, so changing them resumes.
* :class:`RunLock`: one ``build``/``assign`` per run folder at a time (an OS file lock, released
  by the kernel when its process dies), with the holder's pid, host and start time beside it so a
  second run can say who holds it, and a run that finds a dead holder's record can say so.
* :func:`claim_run_folder`: a run folder is ours only if it carries our marker
  (``run_manifest.json``, written when the folder is first used): a folder that holds other files
  and no marker is refused, so nothing of the user's is ever overwritten or deleted.
* :func:`remove_leftovers`: temporary files of atomic writes that a killed run left behind (only
  names :func:`atomic_file` makes).
* :func:`staged_commit`: several files of the run folder replaced together (an edit of the
  vocabulary rewrites the vocabulary, the assignments, the semantic-ID table and the edit log):
  a run killed at any point leaves either all of the old files or, once the commit point is
  passed, all of the new ones after the next locked command (:func:`finish_commit`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

if TYPE_CHECKING:
    from agentictagger.catalog import Catalog

from agentictagger.errors import RunError, RunLockedError, StaleStateError  # noqa: F401 (defined in errors.py)
from agentictagger.files import TMP_SUFFIX, atomic_file, atomic_write_bytes, atomic_write_text, tmp_path_for  # noqa: F401

log = logging.getLogger(__name__)

BUILD_FINGERPRINT = Path("build_state") / "fingerprint.json"
ASSIGN_FINGERPRINT = Path("assignments.partial.fingerprint.json")
#: ``assign --add``: the checkpoint of a batch of new items, and what it was made with.
ADD_PARTIAL = "assignments.add.partial.jsonl"
ADD_FINGERPRINT = "assignments.add.partial.fingerprint.json"
LOCK_FILE = "run.lock"
LOCK_OWNER = "run.lock.json"
#: The marker that makes a folder a run folder: written when a command first takes an empty or
#: new folder. A non-empty folder without it is refused (it may hold the user's own files).
RUN_MANIFEST = "run_manifest.json"

#: What a build owns in the run folder: removed by ``build --restart``. The usage log stays
#: (what was paid for was paid for).
#: The edit log goes with the vocabulary it edited.
BUILD_STATE = ("build_state", "vocabulary.json", "vocabulary.prototypes.npz", "build_log.jsonl", "config.yaml", "edits.jsonl")
#: Inside a folder a stage owns, the files it writes there (``--restart`` removes these and
#: nothing else: a file someone else put there stays, and so does the folder then).
OWNED_IN_FOLDERS = {"build_state": ("fingerprint.json", "build_items.json", "jobs/*.json")}
#: What an assignment owns: removed by ``assign --restart``.
ASSIGN_STATE = (
    "assignments.partial.jsonl",
    str(ASSIGN_FINGERPRINT),
    ADD_PARTIAL,
    ADD_FINGERPRINT,
    "assignments.jsonl",
    "semantic_ids.parquet",
    "semantic_ids.jsonl",
    "token_vocabulary.json",
)

#: LLM endpoint settings that change answers (the rest: timeouts, retries, concurrency, prices,
#: threads, key variable, prefix reuse, only change how fast or at what price they come).
LLM_RESULT_FIELDS = (
    "backend",
    "model",
    "model_path",
    "base_url",
    "n_ctx",
    "context_tokens",
    "choice_mode",
    "structured_output",
    "temperature",
    "max_tokens",
    "max_reasks",
)
#: Build and assign settings that never change results. ``build.architect.fallback`` only
#: decides what happens when the LLM architect's answers stay invalid (fail the job, or let the
#: offline architect write that step): a step the LLM wrote is the same under either value, and
#: who wrote each step is recorded with it and in the vocabulary's meta. So a build that failed
#: for want of a fallback resumes with one allowed.
NOT_RESULTS = frozenset(
    {
        "build.max_parallel_jobs",
        "build.max_failed_call_share",
        "build.architect.fallback",
        "assign.max_empty_share",
    }
)
#: Assign settings each assigner reads (besides max_level); the others do not change its results.
_ASSIGN_FIELDS = {
    "embedding": {"stop_quantile", "min_similarity", "lookahead", "checkpoint_every"},
    "llm": {"llm", "items_per_call", "allow_stop", "max_item_chars"},
    "hybrid": {"llm", "shortlist", "lookahead", "items_per_call", "allow_stop", "max_item_chars"},
    "single_call": {"llm", "allow_stop", "max_item_chars", "single_call_max_paths", "single_call_max_tree_chars"},
}


# -- small helpers ------------------------------------------------------------------------------
def digest(obj: Any) -> str:
    """A short stable hash of a JSON-able value."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return "sha256:" + hashlib.sha256(blob).hexdigest()[:20]


def items_digest(ids: Sequence[str], texts: Sequence[str], extra: Sequence[Any] | None = None) -> str:
    """Identity of a set of items: their ids and texts in order (and e.g. their brands)."""
    h = hashlib.sha256()
    for k, (i, t) in enumerate(zip(ids, texts)):
        h.update(json.dumps([i, t, extra[k] if extra is not None else None], ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return f"sha256:{h.hexdigest()[:20]} ({len(ids)} items)"


def vocabulary_digest(vocab: Any) -> str:
    """Identity of a vocabulary: its descriptors and prototype vectors (its meta left out)."""
    import numpy as np

    h = hashlib.sha256()
    h.update(json.dumps(vocab.to_dict()["descriptors"], sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for did in sorted(vocab.prototypes):
        h.update(did.encode("utf-8"))
        h.update(np.asarray(vocab.prototypes[did], dtype=np.float16).tobytes())
        if did in vocab.name_weights:
            h.update(b"w" + np.asarray(vocab.name_weights[did], dtype=np.float16).tobytes())
    return f"sha256:{h.hexdigest()[:20]} ({len(vocab)} descriptors)"


def flatten(prefix: str, data: Any) -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for k, v in data.items():
            out.update(flatten(f"{prefix}.{k}" if prefix else str(k), v))
        return out
    return {prefix: data}


# -- whose folder -------------------------------------------------------------------------------
def _made_by_us_before_markers(run: Path) -> bool:
    """A run folder from before the marker existed: it holds a stage fingerprint only we write."""
    for fp in (run / BUILD_FINGERPRINT, run / ASSIGN_FINGERPRINT):
        try:
            if json.loads(fp.read_text(encoding="utf-8")).get("stage") in ("build", "assign"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def claim_run_folder(run_dir: str | Path, command: str = "") -> str | None:
    """Make sure ``run_dir`` is a folder this tool may write and delete in, before any work.

    A new or empty folder is created and marked (``run_manifest.json``); a folder with the
    marker is ours. A folder that holds anything else and no marker may be the user's own
    (their data, their config): it is refused with one line (:class:`RunError`), so a build's
    outputs, ``--restart`` or the cleanup of temporary files never touch files we did not write.
    A path that cannot be a folder (a file, a read-only or virtual file system) is refused the
    same way. Returns a note when a folder from before the marker was adopted."""
    run = Path(run_dir)
    if run.exists() and not run.is_dir():
        raise RunError(f"cannot use {run} as the run folder: it is a file, not a folder; choose another --run-dir")
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(
            f"cannot write to {run}: the run folder cannot be created ({exc.strerror or type(exc).__name__}); choose "
            "another --run-dir in a place you can write"
        ) from exc
    marker = run / RUN_MANIFEST
    if marker.exists():
        return None
    note = None
    try:
        others = sorted(p.name for p in run.iterdir() if p.name not in (LOCK_FILE, LOCK_OWNER, RUN_MANIFEST))
    except OSError as exc:
        raise RunError(f"cannot read the run folder {run} ({exc.strerror}); choose another --run-dir") from exc
    if others:
        if not _made_by_us_before_markers(run):
            shown = ", ".join(others[:4]) + (" ..." if len(others) > 4 else "")
            raise RunError(
                f"{run} is not empty and is not an agentictagger run folder (no {RUN_MANIFEST}; it holds {shown}); "
                "a run writes and deletes files in its folder, so it only uses a new or empty one: choose another --run-dir"
            )
        note = f"adopted {run} as a run folder (made before {RUN_MANIFEST} existed)"
    manifest = {
        "tool": "agentictagger",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "created_by": command,
        "owns": "only the files agentictagger writes here; other files in this folder are never changed or removed",
    }
    try:
        atomic_write_text(marker, json.dumps(manifest, indent=1) + "\n")
    except OSError as exc:
        raise RunError(
            f"cannot write to the run folder {run} ({exc.strerror or type(exc).__name__}); choose another --run-dir "
            "or make it writable"
        ) from exc
    return note


def write_run_config(run_dir: str | Path, cfg: Any) -> None:
    """``config.yaml``: the resolved settings of the build, written atomically, but never over
    the YAML file they were read from (``--config RUN_DIR/config.yaml``): when that file says
    anything else than what would be written (comments, other values), the build stops with one
    line instead of overwriting it."""
    target = Path(run_dir) / "config.yaml"
    text = cfg.dump_yaml()
    source = getattr(cfg, "source", None)
    if source and target.exists() and Path(source).resolve() == target.resolve():
        if target.read_text(encoding="utf-8") == text:
            return
        raise RunError(
            f"--config {source} is the file the build writes its resolved settings to ({target}); it would be "
            "overwritten: keep your config outside the run folder or under another name (e.g. run.yaml) and pass that"
        )
    atomic_write_text(target, text)


def remove_owned(run_dir: str | Path, names: Iterable[str]) -> list[str]:
    """Remove the stage files ``names`` of ``run_dir``: a file by its name, a folder by the files
    the stage writes in it (:data:`OWNED_IN_FOLDERS`), the folder itself only once empty. Returns
    what was removed (relative names)."""
    run = Path(run_dir)
    removed: list[str] = []
    for name in names:
        target = run / name
        if target.is_dir():
            files = [f for pat in OWNED_IN_FOLDERS.get(name, ()) for f in target.glob(pat) if f.is_file()]
            files += [f for f in target.rglob(f"*{TMP_SUFFIX}") if f.is_file()]
            for f in files:
                f.unlink(missing_ok=True)
            for d in sorted((d for d in target.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True) + [target]:
                with contextlib.suppress(OSError):
                    d.rmdir()  # only when empty: files someone else put there stay
            if files or not target.exists():
                removed.append(name)
        elif target.exists():
            target.unlink()
            removed.append(name)
    return removed


# -- fingerprints -------------------------------------------------------------------------------
def llm_identity(cfg: Any, name: str) -> dict[str, Any]:
    """``llms.<entry>.<field>`` for the endpoint a role named ``name`` resolves to."""
    entry = name if name in cfg.llms else "default"
    llm = cfg.llms[entry]
    return {f"llms.{entry}.{f}": getattr(llm, f) for f in LLM_RESULT_FIELDS}


def build_fingerprint(cfg: Any, ids: Sequence[str], texts: Sequence[str], brands: Sequence[str]) -> dict[str, Any]:
    """What shapes a build: the build section, the seed, the build set's items, the embedding
    model and the LLM endpoints of the roles that call one."""
    b = cfg.build
    fp = {k: v for k, v in flatten("build", b.model_dump(mode="json")).items() if k not in NOT_RESULTS}
    fp.update(
        {
            "seed": cfg.seed,
            "catalog.items": items_digest(ids, texts, brands),
            "catalog.brand_field": cfg.catalog.brand_field,
            "embedding.model": cfg.embedding.model,
        }
    )
    if b.architect.kind == "llm":
        fp.update(llm_identity(cfg, b.architect.llm))
    if b.annotator.kind == "llm":
        fp.update(llm_identity(cfg, b.annotator.llm))
    if b.naming.kind == "llm":
        fp.update(llm_identity(cfg, b.naming.llm))
    return fp


def assign_fingerprint(cfg: Any, ids: Sequence[str], texts: Sequence[str], vocab: Any) -> dict[str, Any]:
    """What shapes an assignment: the assigner and the settings it reads, the catalog's items,
    the vocabulary, and the embedding model / LLM endpoint it uses."""
    a = cfg.assign
    used = _ASSIGN_FIELDS.get(a.assigner, set(type(a).model_fields)) | {"assigner", "max_level"}
    if a.assigner == "embedding" and not a.stop_quantile:
        used = used - {"checkpoint_every"}  # chunks matter only to the per-chunk stop calibration
    fp = {f"assign.{k}": v for k, v in a.model_dump(mode="json").items() if k in used and f"assign.{k}" not in NOT_RESULTS}
    fp["catalog.items"] = items_digest(ids, texts)
    fp["vocabulary"] = vocabulary_digest(vocab)
    if a.assigner in ("embedding", "hybrid"):
        fp["embedding.model"] = cfg.embedding.model
    if a.assigner != "embedding":
        fp.update(llm_identity(cfg, a.llm))
    return fp


def _show(v: Any) -> str:
    text = json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
    return text if len(text) <= 40 else text[:37] + "..."


def changed_keys(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    return sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))


def describe_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 8) -> str:
    keys = changed_keys(old, new)
    parts = []
    for k in keys[:limit]:
        if k in ("catalog.items", "vocabulary"):
            parts.append(f"{k} (now {_show(new.get(k, '<unset>'))})")
        else:
            parts.append(f"{k} {_show(old.get(k, '<unset>'))} -> {_show(new.get(k, '<unset>'))}")
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts)


def check_fingerprint(
    run_dir: str | Path,
    stage: str,
    fingerprint: dict[str, Any],
    *,
    fingerprint_file: Path,
    state: Iterable[str],
    restart: bool = False,
) -> None:
    """Make ``run_dir`` safe for ``stage`` under ``fingerprint``, or raise :class:`StaleStateError`.

    No checkpoints: the fingerprint is written. Same fingerprint: resume. Different, or
    checkpoints without one: raise, naming the changed keys, unless ``restart``, which removes the
    stage's ``state`` paths first. Checkpoints from before fingerprints existed are adopted with a
    warning (they cannot be checked)."""
    run = Path(run_dir)
    fp_path = run / fingerprint_file
    present = [p for p in state if (run / p).exists()]
    if restart and present:
        removed = remove_owned(run, present)
        log.warning("%s --restart: removed %s from %s", stage, ", ".join(removed), run)
        present = []
    if fp_path.exists():
        old = json.loads(fp_path.read_text(encoding="utf-8")).get("fingerprint", {})
        if old == fingerprint:
            return
        raise StaleStateError(
            f"{run} holds {stage} checkpoints made with other settings (changed: {describe_changes(old, fingerprint)}); "
            f"rerun with --restart to discard them and start the {stage} over, or use another --run-dir"
        )
    if present:
        log.warning(
            "%s: the %s checkpoints in %s predate settings fingerprints and cannot be checked; they are "
            "resumed as if made with the current settings (rerun with --restart if they were not)",
            stage, stage, run,
        )
    atomic_write_text(fp_path, json.dumps({"stage": stage, "fingerprint": fingerprint}, indent=1, ensure_ascii=False, default=str))


# -- leftovers ----------------------------------------------------------------------------------
_TMP = re.compile(r"\.\d+-\d+" + re.escape(TMP_SUFFIX) + "$")


def remove_leftovers(run_dir: str | Path) -> list[Path]:
    """Remove temporary files of atomic writes (``<name>.<pid>-<thread>.at.tmp``, the names
    :func:`atomic_file` makes; no other file) in ``run_dir`` and its ``build_state``. Call only
    while holding the run lock: then no other run is writing them."""
    run = Path(run_dir)
    if not run.is_dir():
        return []
    removed = []
    # The folder itself and the build's state; not deeper folders a user may keep there (a
    # cache shared with other runs, which this run's lock does not cover).
    for p in [*run.glob("*"), *run.glob("build_state/**/*")]:
        if _TMP.search(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p)
            except OSError as exc:  # pragma: no cover - e.g. a read-only subfolder
                log.warning("could not remove leftover %s: %s", p, exc)
    return removed


# -- several files replaced together --------------------------------------------------------------
#: Where :func:`staged_commit` writes the new files, and the name that folder takes at the commit point.
COMMIT_STAGING = "commit.staging"
COMMIT_READY = "commit.ready"
_MANIFEST = "MANIFEST.json"


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a platform without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def staged_commit(run_dir: str | Path, remove: Sequence[str] = ()) -> Iterator[Path]:
    """Replace several files of ``run_dir`` together: yields an empty staging folder; every file
    written there replaces the run folder's file of the same name, and the ``remove`` names are
    deleted, when the block ends without an error (an error discards the staging folder and
    changes nothing).

    The commit point is one directory rename (``commit.staging`` -> ``commit.ready``, after every
    staged file and the manifest are synced); the files are then moved into place one by one. A
    process killed before the commit point leaves the old files (the staging folder is removed by
    the next locked command); killed after it, the next locked command (:class:`RunLock`) moves
    the rest into place (:func:`finish_commit`). Call only while holding the run lock."""
    run = Path(run_dir)
    stage = run / COMMIT_STAGING
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    try:
        yield stage
        names = sorted(p.name for p in stage.iterdir() if p.is_file())
        for name in names:
            with open(stage / name, "rb") as fh:
                os.fsync(fh.fileno())
        atomic_write_text(stage / _MANIFEST, json.dumps({"replace": names, "remove": list(remove)}))
        _fsync_dir(stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    os.rename(stage, run / COMMIT_READY)  # the commit point
    _fsync_dir(run)
    finish_commit(run)


def finish_commit(run_dir: str | Path) -> str | None:
    """Complete or discard a :func:`staged_commit` that a killed process left in ``run_dir``:
    a committed one (``commit.ready``) is moved into place, an uncommitted staging folder is
    removed. Returns a note saying which, or None when there was nothing to do. Call only while
    holding the run lock (:class:`RunLock` calls it)."""
    run = Path(run_dir)
    ready, stage = run / COMMIT_READY, run / COMMIT_STAGING
    note = None
    if ready.is_dir():
        manifest = json.loads((ready / _MANIFEST).read_text(encoding="utf-8"))
        for name in manifest.get("replace", []):
            src = ready / name
            if src.exists():  # else moved already, before the process was killed
                os.replace(src, run / name)
        for name in manifest.get("remove", []):
            (run / name).unlink(missing_ok=True)
        _fsync_dir(run)
        shutil.rmtree(ready)
        note = f"finished writing {len(manifest.get('replace', []))} file(s) of a committed change that an interrupted run left"
    if stage.exists():
        shutil.rmtree(stage, ignore_errors=True)
        note = (note + "; " if note else "") + "discarded the staged files of a change that an interrupted run did not commit"
    return note


def settle_commit(run_dir: str | Path) -> str | None:
    """For readers (``report``, ``explore``, ``edit log``): a change committed by a run that was
    killed before moving every file into place is finished now, under the run lock (waiting for a
    command that holds it), so a reader never shows the old state of a committed edit. Returns
    the note, or None when there was nothing to finish."""
    run = Path(run_dir)
    if not (run / COMMIT_READY).is_dir():
        return None
    with RunLock(run, "finish an interrupted edit", wait=True) as lock:
        return "; ".join(n for n in lock.notes if "committed change" in n) or None


# -- the lock -----------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_owner(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "another process"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"`agentictagger {owner.get('command', '?')}` (pid {owner.get('pid', '?')} on {owner.get('host', '?')}, since {started})"


#: Run folders this process holds, per thread: (resolved folder, thread id) -> nesting depth.
_HELD: dict[tuple[str, int], int] = {}
_HELD_GUARD = threading.Lock()


class RunLock:
    """Exclusive use of a run folder by one ``build``/``assign``/``edit``.

    Reentrant within a thread: a RunLock taken while the same thread already holds the folder
    (the CLI's lock around an :class:`~agentictagger.api.AgenticTagger` method that locks
    too) is a no-op; another thread or process is refused (or waits) as usual.

    An OS lock (``fcntl.flock`` via ``filelock``) on ``run.lock``: the kernel releases it when its
    process dies, however it dies, so a lock can never outlive its holder on the same machine.
    ``run.lock.json`` names the holder (command, pid, host, start time) for the message a second
    run prints, and is removed on release; finding it when the lock was free means the last
    holder was killed (``notes`` says so). On return, leftover temporary files are removed."""

    def __init__(self, run_dir: str | Path, command: str, *, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.command = command
        self.wait = wait
        self.on_wait = on_wait
        self.notes: list[str] = []
        self._lock: Any = None
        self._nested_key: tuple[str, int] | None = None
        self._key_held: tuple[str, int] | None = None

    def _key(self) -> tuple[str, int]:
        return (str(self.run_dir.resolve()), threading.get_ident())

    def owner(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.run_dir / LOCK_OWNER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def acquire(self) -> "RunLock":
        from filelock import FileLock, Timeout

        key = self._key()
        with _HELD_GUARD:
            if key in _HELD:  # this thread holds it already: nested use
                _HELD[key] += 1
                self._nested_key = key
                return self
        adopted = claim_run_folder(self.run_dir, self.command)  # ours, or refused before anything is written
        if adopted:
            self.notes.append(adopted)
        lock = FileLock(str(self.run_dir / LOCK_FILE), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            holder = describe_owner(self.owner())
            if not self.wait:
                raise RunLockedError(
                    f"{self.run_dir} is in use by {holder}; wait for it to finish, or rerun with --wait to queue behind it"
                ) from None
            if self.on_wait:
                self.on_wait(f"{self.run_dir} is in use by {holder}; waiting for it to finish (--wait)")
            lock.acquire(timeout=-1, poll_interval=0.2)
        self._lock = lock
        self._key_held = key
        with _HELD_GUARD:
            _HELD[key] = 1
        try:
            self._after_acquire()
        except BaseException:
            self.release()
            raise
        return self

    def _after_acquire(self) -> None:
        """Holding the lock: record the holder, note a killed holder's lock, finish or discard a
        change it left half-written, remove its temporary files."""
        stale = self.owner()
        if stale:
            here = stale.get("host") == socket.gethostname()
            how = "is no longer running" if here and not _pid_alive(int(stale.get("pid", 0))) else "did not release it"
            self.notes.append(
                f"took over the lock of {describe_owner(stale)}, which {how} (killed?); its checkpoints are resumed"
            )
        owner = {"command": self.command, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        atomic_write_text(self.run_dir / LOCK_OWNER, json.dumps(owner))
        finished = finish_commit(self.run_dir)
        if finished:
            self.notes.append(finished)
        removed = remove_leftovers(self.run_dir)
        if removed:
            self.notes.append(
                f"removed {len(removed)} temporary file(s) left by an interrupted run: "
                + ", ".join(str(p.relative_to(self.run_dir)) for p in removed[:5])
                + (" ..." if len(removed) > 5 else "")
            )

    def release(self) -> None:
        if self._nested_key is not None:
            with _HELD_GUARD:
                _HELD[self._nested_key] -= 1
            self._nested_key = None
            return
        if self._lock is None:
            return
        with _HELD_GUARD:
            _HELD.pop(self._key_held, None)
        try:
            (self.run_dir / LOCK_OWNER).unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


# -- the build log ------------------------------------------------------------------------------
def complete_build_log(run_dir: str | Path) -> int:
    """Make ``build_log.jsonl`` hold a record of every step in the build's job states.

    The builder saves a step's state, then appends its log record; a run killed between the two
    would lose the record. This appends each missing one (marked ``"recovered": true``) and
    drops a last line cut short by a crash, so the log stays append-only and complete. Returns
    the number of records added."""
    run = Path(run_dir)
    path = run / "build_log.jsonl"
    jobs_dir = run / "build_state" / "jobs"
    logged: set[tuple[str, int]] = set()
    if path.exists():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(path, "r+b") as fh:
                fh.truncate(keep)
            log.warning("%s: dropped a last line cut short by a crash", path)
            data = data[:keep]
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and "step" in row and "job" in row:
                logged.add((row["job"], row["step"]))
    missing = []
    for f in sorted(jobs_dir.glob("*.json")) if jobs_dir.is_dir() else []:
        try:
            job = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for step in job.get("steps", []):
            if (job["job_id"], step["step"]) not in logged:
                # The builder's record format: job, level, parent path, the step, its descriptor count.
                missing.append(
                    {
                        "time": time.time(),
                        "job": job["job_id"],
                        "level": job["level"],
                        "parent_path": job["parent_path"],
                        **step,
                        "descriptors": len(step.get("descriptors", [])),
                        "recovered": True,
                    }
                )
    if missing:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in missing))
        log.warning("%s: %d step record(s) lost by an interrupted run were recovered from the job states", path, len(missing))
    return len(missing)


# -- the edit log ---------------------------------------------------------------------------------
EDIT_LOG = "edits.jsonl"


def read_edit_log(run_dir: str | Path) -> list[dict]:
    """The run's edit log, oldest first (empty when it was never edited). An edit committed by
    a run killed before it moved every file into place is finished first."""
    settle_commit(run_dir)
    path = Path(run_dir) / EDIT_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def edits_made(run_dir: str | Path) -> int:
    """How many edits the run folder's vocabulary has had (``vocabulary.json``'s ``meta.edits``)."""
    path = Path(run_dir) / "vocabulary.json"
    if not path.exists():
        return 0
    try:
        return int(json.loads(path.read_text(encoding="utf-8")).get("meta", {}).get("edits", 0) or 0)
    except (ValueError, TypeError, AttributeError):
        return 0


# -- the items an API run keeps --------------------------------------------------------------------
#: The items :meth:`AgenticTagger.fit` / ``transform`` were given, kept in the run folder.
RUN_ITEMS = "items.jsonl"


def write_run_items(run_dir: str | Path, catalog: "Catalog", append: bool = False) -> Path:
    """Keep the items' texts in the run folder (``items.jsonl``: ``item_id``, ``text``, and
    ``title`` and ``label`` when the item has them), written atomically; ``append`` adds to the
    items already there (an id already there is not written twice)."""
    import json

    from agentictagger.files import atomic_write_text

    path = Path(run_dir) / RUN_ITEMS
    lines: list[str] = []
    seen: set[str] = set()
    if append and path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                lines.append(line)
                seen.add(json.loads(line)["item_id"])
    for it in catalog:
        if it.item_id in seen:
            continue
        row: dict[str, Any] = {"item_id": it.item_id, "text": it.text}
        title = next((it.fields.get(k) for k in ("title", "name") if isinstance(it.fields.get(k), str) and it.fields.get(k).strip()), None)
        if title:
            row["title"] = title
        if it.label is not None:
            row["label"] = it.label
        lines.append(json.dumps(row, ensure_ascii=False))
        seen.add(it.item_id)
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def run_items(run_dir: str | Path) -> "Catalog | None":
    """The items kept in a run folder by :meth:`AgenticTagger.fit` and ``transform``, or None."""
    from agentictagger.catalog import Catalog
    from agentictagger.config import CatalogConfig

    path = Path(run_dir) / RUN_ITEMS
    if not path.exists():
        return None
    import json

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    has_labels = any("label" in r for r in rows)
    cfg = CatalogConfig(id_field="item_id", text_template="{text}", label_field="label" if has_labels else None,
                        max_text_chars=max([CatalogConfig().max_text_chars, *(len(r["text"]) for r in rows)]))
    return Catalog.from_records(rows, cfg, source=str(path))
