"""build -> assign -> report, each a function over the run folder (the CLI calls these)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentictagger.catalog import Catalog
from agentictagger.config import RunConfig
from agentictagger.vocabulary import Vocabulary


class RunError(RuntimeError):
    """A run cannot start or did not finish; the message (one line) says what to do."""


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

    from agentictagger.vocab.api import role_llm

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


def llm_client_factory(cfg: RunConfig, usage: Any = None):
    """``factory(role_name) -> LLMClient`` over the run's named LLM endpoints, one client each."""
    from agentictagger.llm.factory import make_client
    from agentictagger.vocab.api import role_llm

    clients: dict[str, Any] = {}

    def factory(name: str) -> Any:
        if name not in clients:
            clients[name] = make_client(role_llm(cfg, name), Path(cfg.cache_dir) / "llm", usage=usage)
        return clients[name]

    return factory


def assign(cfg: RunConfig, catalog: Catalog, progress: Any = None, restart: bool = False) -> Any:
    """Assign every catalog item a valid path; writes assignments and the semantic-ID table.

    A checkpoint made with other settings, another catalog or another vocabulary raises
    :class:`~agentictagger.runstate.StaleStateError` before any work, unless ``restart``, which
    removes the assignment's checkpoint and outputs first. LLM usage is appended per call to
    ``assign_usage.jsonl``; ``assign_usage.json`` is its sum."""
    import json

    from agentictagger.assign import run_assign
    from agentictagger.embed import Embedder
    from agentictagger.llm.usage import UsageTracker
    from agentictagger.runstate import ASSIGN_FINGERPRINT, ASSIGN_STATE, assign_fingerprint, atomic_write_text, check_fingerprint

    run_dir = Path(cfg.run_dir)
    vocab = check_vocabulary(run_dir)
    fingerprint = assign_fingerprint(cfg, catalog.ids, catalog.texts, vocab)
    check_fingerprint(run_dir, "assign", fingerprint, fingerprint_file=ASSIGN_FINGERPRINT, state=ASSIGN_STATE, restart=restart)
    usage = UsageTracker.with_log(run_dir / "assign_usage.jsonl", carried_from=run_dir / "assign_usage.json")
    embedder = Embedder(cfg.embedding, cache_dir=cfg.cache_dir)
    try:
        return run_assign(
            catalog, vocab, cfg.assign, run_dir, embedder=embedder,
            llm_client_factory=llm_client_factory(cfg, usage), progress=progress,
            meta={"fingerprint": fingerprint},
        )
    finally:
        usage.sync()
        total = UsageTracker.from_log(run_dir / "assign_usage.jsonl").to_dict()
        atomic_write_text(run_dir / "assign_usage.json", json.dumps(total, indent=2, sort_keys=True) + "\n")


def report(cfg: RunConfig, catalog: Catalog | None) -> dict:
    from agentictagger.diagnostics import run_report

    return run_report(cfg.run_dir, catalog)


def assign_and_report(cfg: RunConfig, catalog: Catalog, console: Any, restart: bool = False) -> dict:
    from agentictagger.diagnostics import print_diagnostics

    assignment = assign(cfg, catalog, restart=restart)
    diag = report(cfg, catalog)
    print_diagnostics(diag, console)
    run_dir = Path(cfg.run_dir)
    console.print(
        f"assigned {len(assignment)} items. Outputs in {run_dir}/: "
        "vocabulary.json, assignments.jsonl, semantic_ids.parquet/.jsonl, diagnostics.json, build_log.jsonl, usage.json"
    )
    return diag
