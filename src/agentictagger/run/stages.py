"""build -> assign -> report, each a function over the run folder (the CLI calls these)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from agentictagger.errors import RunError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.run.roles import llm_client_factory, make_embedder, role_fingerprint
from agentictagger.structures.vocabulary import Vocabulary


def llm_roles(cfg: RunConfig, stage: str) -> list[str]:
    """Names (keys of ``cfg.llms``) of the LLM endpoints ``stage`` ('build' or 'assign') will call."""
    if stage == "assign":
        return [cfg.assign.llm] if cfg.assign.assigner != "embedding" else []
    b = cfg.build
    roles = [b.architect.llm] if b.architect.kind == "llm" else []
    roles += [b.annotator.llm] if b.annotator.kind == "llm" else []
    roles += [b.naming.llm] if b.naming.kind == "llm" else []
    return list(dict.fromkeys(roles))


def check_api_keys(cfg: RunConfig, stage: str) -> None:
    """A hosted endpoint without its API key stops the run before any catalog or embedding work."""
    import os

    from agentictagger.run.roles import role_llm

    for role in llm_roles(cfg, stage):
        try:
            llm = role_llm(cfg, role)
        except KeyError as exc:
            raise RunError(str(exc).strip("'\"")) from exc
        if llm.backend != "openai":
            continue
        from agentictagger.llm.backends.openai_compat import DEFAULT_BASE_URL, is_local_url

        url = llm.base_url or DEFAULT_BASE_URL
        if is_local_url(url) or (llm.api_key_env and os.environ.get(llm.api_key_env)):
            continue
        name = role if role in cfg.llms else "default"
        where = f"environment variable {llm.api_key_env} is not set" if llm.api_key_env else f"llms.{name}.api_key_env is empty"
        raise RunError(
            f"no API key for the LLM '{name}' at {url}: {where}; export it "
            f"(export {llm.api_key_env or 'OPENAI_API_KEY'}=...) or point llms.{name}.api_key_env at the variable "
            "that holds the key"
        )


def check_writable(*folders: str | Path) -> None:
    """Each folder exists (created if need be) and takes a new file; else a one-line RunError."""
    import tempfile

    for folder in folders:
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=path):
                pass
        except OSError as exc:
            raise RunError(
                f"cannot write to {path} ({exc.strerror or type(exc).__name__}); choose another folder "
                "(--run-dir / cache_dir) or make it writable"
            ) from exc


def preflight(cfg: RunConfig, stage: str) -> None:
    """Before any catalog or embedding work: API keys present, run and cache folders writable."""
    check_api_keys(cfg, stage)
    check_writable(cfg.run_dir, cfg.cache_dir)


def estimate_disk_mb(cfg: RunConfig, catalog: Catalog) -> float:
    """A generous estimate of what a build + assignment writes for ``catalog``: per item, its
    embedding (cache and state, float32), its text a few times (cache keys, prompts, logs) and the
    per-item rows of checkpoints and outputs."""
    chars = sum(len(t) for t in catalog.texts)
    per_item = 2 * 4 * 1024 + 1024  # embeddings up to 1024 dims, twice; ~1 KB of rows
    return (len(catalog) * per_item + 4 * chars) / 1e6


def check_disk_space(cfg: RunConfig, catalog: Catalog) -> None:
    import shutil

    need = estimate_disk_mb(cfg, catalog)
    free = shutil.disk_usage(cfg.run_dir).free / 1e6
    if free < need + cfg.disk_reserve_mb:
        raise RunError(
            f"not enough disk space for {cfg.run_dir}: {free:.0f} MB free, this run needs about {need:.0f} MB "
            f"plus disk_reserve_mb={cfg.disk_reserve_mb:g}; free some space or choose another --run-dir"
        )


def check_vocabulary(run_dir: str | Path) -> Vocabulary:
    """The run's vocabulary, if it is finished and not empty; else a one-line RunError."""
    run = Path(run_dir)
    path = run / "vocabulary.json"
    if not path.exists():
        raise RunError(f"no vocabulary: {path} is missing; run `agentictagger build` first")
    jobs_dir = run / "build_state" / "jobs"
    if jobs_dir.is_dir():
        import json

        unfinished = []
        for f in sorted(jobs_dir.glob("*.json")):
            try:
                status = json.loads(f.read_text(encoding="utf-8")).get("status")
            except (OSError, ValueError):
                status = "unreadable"
            if status != "done":
                unfinished.append(f"{f.stem} ({status})")
        if unfinished:
            raise RunError(
                f"the build in {run} is unfinished: {len(unfinished)} job(s) not done, e.g. {', '.join(unfinished[:3])}; "
                "run `agentictagger build` again to finish it before assigning"
            )
    try:
        vocab = Vocabulary.load(path)
    except Exception as exc:  # noqa: BLE001 - any damage: say so in one line
        raise RunError(f"{path} cannot be read ({type(exc).__name__}: {exc}); rebuild it with `agentictagger build`") from exc
    if len(vocab) == 0:
        raise RunError(f"{path} holds no descriptors: its build failed; run `agentictagger build` again before assigning")
    return vocab


def assign(
    cfg: RunConfig,
    catalog: Catalog,
    progress: Any = None,
    restart: bool = False,
    *,
    embedder: Any = None,
    assigner: Any = None,
) -> Any:
    """Assign every catalog item a valid path; writes assignments and the semantic-ID table.

    A checkpoint made with other settings, another catalog or another vocabulary raises
    :class:`~agentictagger.run.folder.StaleStateError` before any work, unless ``restart``, which
    removes the assignment's checkpoint and outputs first; so does a table that holds items added
    with :func:`add_items` (assigning the first catalog again would drop them). LLM usage is
    appended per call to ``assign_usage.jsonl``; ``assign_usage.json`` is its sum. ``embedder``
    and ``assigner`` (optional) replace the ones the config names."""
    from agentictagger.assign import run_assign
    from agentictagger.run.folder import ASSIGN_FINGERPRINT, ASSIGN_STATE, StaleStateError, assign_fingerprint, check_fingerprint

    run_dir = Path(cfg.run_dir)
    vocab = check_vocabulary(run_dir)
    fingerprint = {**assign_fingerprint(cfg, catalog.ids, catalog.texts, vocab), **role_fingerprint("assigner", assigner)}
    check_not_edited(run_dir, "assign", restart)
    check_fingerprint(run_dir, "assign", fingerprint, fingerprint_file=ASSIGN_FINGERPRINT, state=ASSIGN_STATE, restart=restart)
    added = added_items(run_dir)
    if added:
        raise StaleStateError(
            f"{run_dir}'s semantic-ID table holds {added} item(s) added with `assign --add` after this catalog was "
            "assigned; assigning the catalog again would drop their IDs. Add more items with --add, or rerun with "
            "--restart to discard the table and assign this catalog from scratch"
        )
    with assign_usage(cfg) as usage:
        return run_assign(
            catalog, vocab, cfg.assign, run_dir, embedder=embedder or make_embedder(cfg),
            llm_client_factory=llm_client_factory(cfg, usage), progress=progress,
            meta={"fingerprint": fingerprint}, assigner=assigner,
        )


def check_not_edited(run_dir: Path, stage: str, restart: bool) -> None:
    """An edited run (``agentictagger edit``) is not built or assigned again over its edits:
    a build would discard them, an assignment renumber the IDs they kept."""
    from agentictagger.run.folder import edits_made
    from agentictagger.run.folder import StaleStateError

    if restart:
        return
    n = edits_made(run_dir) if stage == "build" else int(_assignment_meta(run_dir).get("edits") or 0)
    if n:
        what = "discard the edits" if stage == "build" else "renumber the semantic IDs the edits kept"
        hint = "add new items with `assign --add`, or " if stage == "assign" else ""
        raise StaleStateError(
            f"{run_dir}'s vocabulary was edited ({n} edit(s), see edits.jsonl); running `{stage}` again would {what}; "
            f"{hint}rerun with --restart to {stage} from scratch, or use another --run-dir"
        )


@contextmanager
def assign_usage(cfg: RunConfig) -> Iterator[Any]:
    """The assignment's usage tracker: per-call log ``assign_usage.jsonl``, its sum written to
    ``assign_usage.json`` at the end (also when the assignment fails)."""
    import json

    from agentictagger.llm.usage import UsageTracker
    from agentictagger.files import atomic_write_text

    run_dir = Path(cfg.run_dir)
    usage = UsageTracker.with_log(run_dir / "assign_usage.jsonl", carried_from=run_dir / "assign_usage.json")
    try:
        yield usage
    finally:
        usage.sync()
        total = UsageTracker.from_log(run_dir / "assign_usage.jsonl").to_dict()
        atomic_write_text(run_dir / "assign_usage.json", json.dumps(total, indent=2, sort_keys=True) + "\n")


def _assignment_meta(run_dir: Path) -> dict:
    """The meta line of the run's ``assignments.jsonl`` (empty when there is none)."""
    path = run_dir / "assignments.jsonl"
    if not path.exists():
        return {}
    import json

    with path.open(encoding="utf-8") as fh:  # the meta is the first line
        first = fh.readline()
    try:
        return dict(json.loads(first).get("meta") or {})
    except (ValueError, AttributeError, TypeError):
        return {}


def added_items(run_dir: Path) -> int:
    """How many items of the run's table came from ``assign --add`` (0 when none or no table)."""
    return sum(int(batch.get("items", 0)) for batch in _assignment_meta(run_dir).get("added") or [])


def load_assigned_run(run_dir: Path, what: str = "", hint: str = "") -> tuple[Vocabulary, Any, Any]:
    """A finished run's vocabulary, semantic-ID table and assignment; a one-line RunError when
    it has no table yet (``what``/``hint`` complete the message)."""
    from agentictagger.structures.assignment import Assignment
    from agentictagger.structures.semantic_ids import SemanticIds

    vocab = check_vocabulary(run_dir)
    table_path, a_path = run_dir / "semantic_ids.parquet", run_dir / "assignments.jsonl"
    if not (table_path.exists() and a_path.exists()):
        raise RunError(f"no semantic-ID table in {run_dir} {what}; run `agentictagger assign` first{hint}")
    return vocab, SemanticIds.read(table_path), Assignment.load_jsonl(a_path)


def describe_skipped(skipped: list[str], limit: int = 5) -> str:
    """One line for the items ``assign --add`` skipped because the table already has them."""
    shown = ", ".join(skipped[:limit]) + (" ..." if len(skipped) > limit else "")
    return f"skipped {len(skipped)} item(s) already in the semantic-ID table (their IDs are kept): {shown}"


@dataclass
class AddResult:
    """What :func:`add_items` did: the semantic-ID rows of the items it added (in catalog order),
    the ids it skipped because the table already had them, and the whole table after."""

    added: Any  # SemanticIds of the new items
    skipped: list[str]
    table: Any  # SemanticIds of every item
    assignment: Any  # the run's Assignment, every item

    def __len__(self) -> int:
        return len(self.added)

    def skipped_note(self) -> str:
        """One line for the skipped items ('' when none)."""
        return describe_skipped(self.skipped) if self.skipped else ""


def add_items(
    cfg: RunConfig,
    catalog: Catalog,
    progress: Any = None,
    *,
    embedder: Any = None,
    assigner: Any = None,
) -> AddResult:
    """Tag the items of ``catalog`` into a finished run's vocabulary and append them to its
    semantic-ID table: every existing row keeps its ID, a new item on a path in use gets the next
    resolver, and items whose ids the table already has are skipped (listed in the result).

    The run's vocabulary must be the one its table was assigned with, and the assignment settings
    the same (else :class:`~agentictagger.run.folder.StaleStateError` naming the changed keys). A
    killed add resumes from ``assignments.add.partial.jsonl``; the outputs are written atomically,
    the Parquet table first. The caller holds the run lock."""
    import json
    import time

    from agentictagger.assign import Assignment, assign_catalog
    from agentictagger.assign.driver import check_empty_share, run_assigner, write_outputs
    from agentictagger.run.folder import (
        ADD_FINGERPRINT,
        ADD_PARTIAL,
        StaleStateError,
        assign_fingerprint,
        atomic_write_text,
        describe_changes,
        items_digest,
    )
    from agentictagger.structures.semantic_ids import SemanticIds

    run_dir = Path(cfg.run_dir)
    vocab, table, old = load_assigned_run(run_dir, "to add to", " (without --add)")
    # The Parquet table is written first: items in it but not yet in assignments.jsonl (a run
    # killed between the two writes) are taken from it.
    paths = {r.item_id: list(r.path) for r in table}
    old_fp = dict(old.meta.get("fingerprint") or {})
    new_fp = json.loads(json.dumps({**assign_fingerprint(cfg, [], [], vocab), **role_fingerprint("assigner", assigner)}, default=str))
    keys = [k for k in set(old_fp) | set(new_fp) if k != "catalog.items"]
    before, now = {k: old_fp.get(k, "<unset>") for k in keys}, {k: new_fp.get(k, "<unset>") for k in keys}
    if old_fp and before != now:
        raise StaleStateError(
            f"{run_dir}'s semantic-ID table was assigned with other settings (changed: {describe_changes(before, now)}); "
            "new items must be tagged like the existing ones: use the same settings, or rerun `assign` with --restart"
        )
    skipped = [it.item_id for it in catalog if it.item_id in paths]
    new = catalog.subset([it.item_id for it in catalog if it.item_id not in paths])
    # A killed add's checkpoint is reused only for the same new items under the same settings.
    add_fp = {**new_fp, "catalog.items": items_digest(new.ids, new.texts)}
    ck, fp_path = run_dir / ADD_PARTIAL, run_dir / ADD_FINGERPRINT
    if fp_path.exists() and json.loads(fp_path.read_text(encoding="utf-8")).get("fingerprint") != add_fp:
        ck.unlink(missing_ok=True)
    atomic_write_text(fp_path, json.dumps({"stage": "assign --add", "fingerprint": add_fp}, indent=1, default=str))
    if len(new):
        with assign_usage(cfg) as usage:
            assigner = assigner or run_assigner(cfg.assign, embedder or make_embedder(cfg), llm_client_factory(cfg, usage))
            fresh = assign_catalog(new, vocab, assigner, chunk_size=cfg.assign.checkpoint_every, checkpoint=ck, progress=progress)
        check_empty_share(fresh, cfg.assign)
    else:
        fresh = Assignment({}, {"items": 0, "empty_paths": 0})
    added = table.extend(fresh, vocab) if len(fresh) else table
    meta = dict(old.meta)
    lost = [i for i in paths if i not in old.paths]  # added by a run killed before assignments.jsonl was written
    if lost:
        meta["added"] = [*(meta.get("added") or []), {"items": len(lost), "recovered": True}]
    if len(fresh):
        batch = {"items": len(fresh), "skipped_existing": len(skipped), "catalog.items": add_fp["catalog.items"],
                 "empty_paths": fresh.meta.get("empty_paths", 0), "time": round(time.time(), 3)}
        meta["added"] = [*(meta.get("added") or []), batch]
    assignment = Assignment({**paths, **fresh.paths}, meta)
    write_outputs(run_dir, assignment, added, vocab)
    ck.unlink(missing_ok=True)
    fp_path.unlink(missing_ok=True)
    return AddResult(SemanticIds([added[i] for i in fresh.paths]), skipped, added, assignment)


def report(cfg: RunConfig, catalog: Catalog | None) -> dict:
    from agentictagger.run.report import run_report
    from agentictagger.run.folder import settle_commit

    settle_commit(cfg.run_dir)  # an edit committed by a killed run: finished before it is reported
    return run_report(cfg.run_dir, catalog)
