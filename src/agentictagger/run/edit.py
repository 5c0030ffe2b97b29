"""Vocabulary edits on a run folder: load, edit (:mod:`agentictagger.vocab.edits`), re-assign the
touched items with the run's assigner, and write every file again together, with a line in the
edit log ``edits.jsonl``.

Files rewritten by one edit, all at once (:func:`~agentictagger.run.folder.staged_commit`: a run
killed at any point leaves the old set or, after the next locked command, the new one):
``vocabulary.json`` and its prototypes, ``assignments.jsonl``, ``semantic_ids.parquet`` /
``.jsonl``, ``token_vocabulary.json`` and ``edits.jsonl``; ``diagnostics.json`` is removed in the
same step and written again right after. The assignment's settings fingerprint is brought up to
the edited vocabulary, so ``assign --add`` keeps working; a plain ``assign`` or ``build`` of an
edited run stops (it would renumber IDs or discard the edits) unless given ``--restart``.

The caller holds the run lock (:meth:`agentictagger.api.AgenticTagger.edit` does).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from agentictagger.config import RunConfig
from agentictagger.run.folder import EDIT_LOG, edits_made, read_edit_log

log = logging.getLogger(__name__)


def _catalogs(cfg: RunConfig, catalog: Any) -> list[Any]:
    """The catalogs item texts are looked up in: ``catalog`` (a Catalog, a file, or a list of
    them), else the one named in the run's config."""
    from agentictagger.catalog import Catalog
    from agentictagger.run.explorer import catalog_for_run

    if catalog is None:
        found = catalog_for_run(cfg.run_dir)
        return [found] if found is not None else []
    sources = list(catalog) if isinstance(catalog, (list, tuple)) else [catalog]
    return [c if isinstance(c, Catalog) else Catalog.load(c, cfg.catalog) for c in sources]


def _items(cfg: RunConfig, catalogs: list[Any], ids: Sequence[str]) -> list[Any]:
    from agentictagger.vocab.edits import EditError

    by_id: dict[str, Any] = {}
    for cat in catalogs:
        for it in cat:
            by_id.setdefault(it.item_id, it)
    missing = [i for i in ids if i not in by_id]
    if missing:
        where = ", ".join(str(getattr(c, "source", None) or "a catalog") for c in catalogs) or "no catalog (none is named in the run's config.yaml)"
        raise EditError(
            f"{len(missing)} of the {len(ids)} item(s) to re-assign have no text in {where} (e.g. {', '.join(missing[:3])}); "
            "pass the catalog(s) holding them with --catalog (also the files added with `assign --add`)"
        )
    return [by_id[i] for i in ids]


def edit_run(
    cfg: RunConfig,
    op: str,
    args: dict[str, Any],
    *,
    catalog: Any = None,
    embedder: Any = None,
    assigner: Any = None,
) -> dict:
    """Apply one edit (``op`` in rename/move/merge/delete, ``args`` as for
    :func:`agentictagger.vocab.edits.apply`) to the run folder ``cfg.run_dir`` and return its
    edit-log record. Items to re-assign are read from ``catalog`` (else the run's catalog) and
    placed by ``assigner`` (else the run's configured one, with ``embedder`` or the configured
    embedding model)."""
    from agentictagger.structures.assignment import Assignment
    from agentictagger.assign.driver import run_assigner, write_outputs
    from agentictagger.errors import RunError
    from agentictagger.run.roles import llm_client_factory, make_embedder
    from agentictagger.run.stages import assign_usage, load_assigned_run
    from agentictagger.run.folder import staged_commit, vocabulary_digest
    from agentictagger.vocab import edits
    from agentictagger.structures.vocabulary import Vocabulary

    run = Path(cfg.run_dir)
    vocab, table, assignment = load_assigned_run(run, "to edit")
    in_table = {r.item_id for r in table}
    unknown = [i for i in assignment.paths if i not in in_table]
    if unknown:
        raise RunError(
            f"{run / 'assignments.jsonl'} has {len(unknown)} item(s) the semantic-ID table lacks (e.g. {unknown[0]}); "
            "rerun `agentictagger assign`"
        )
    loaded: list[Any] = []

    def reassign(ids: list[str], new_vocab: Any, node: str) -> dict[str, list[str]]:
        if not loaded:
            loaded.extend(_catalogs(cfg, catalog))
        items = _items(cfg, loaded, ids)
        with assign_usage(cfg) as usage:
            who = assigner or run_assigner(cfg.assign, embedder or make_embedder(cfg), llm_client_factory(cfg, usage))
            return edits.assign_within(who, items, new_vocab, node, cfg.assign.max_level)

    landed = _already_applied(run, op, args, vocabulary_digest(vocab))
    if landed is not None:
        return {**landed, "already_applied": True}
    outcome = edits.apply(op, vocab, table, args, reassign)
    count = max(edits_made(run), len(read_edit_log(run))) + 1
    new_vocab = outcome.vocabulary
    new_vocab.meta["edits"] = count
    changes = outcome.id_changes()
    old_log = (run / EDIT_LOG).read_text(encoding="utf-8") if (run / EDIT_LOG).exists() else ""
    if old_log and not old_log.endswith("\n"):
        old_log = old_log[: old_log.rfind("\n") + 1]  # a last line cut short: never committed
    remove = ["diagnostics.json"] + ([] if new_vocab.prototypes else ["vocabulary.prototypes.npz"])
    with staged_commit(run, remove=remove) as stage:
        new_vocab.save(stage / "vocabulary.json")
        # The digest of the vocabulary as it reads back (vectors stored as float16), as `assign` takes it.
        after_digest = vocabulary_digest(Vocabulary.load(stage / "vocabulary.json"))
        meta = json.loads(json.dumps(assignment.meta))
        meta["edits"] = count
        if isinstance(meta.get("fingerprint"), dict) and "vocabulary" in meta["fingerprint"]:
            meta["fingerprint"]["vocabulary"] = after_digest  # `assign --add` compares it
        new_assignment = Assignment({r.item_id: list(r.path) for r in outcome.table}, meta)
        new_assignment.validate(new_vocab)
        write_outputs(stage, new_assignment, outcome.table, new_vocab)
        record = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "edit": count,
            "op": op,
            "args": outcome.args,
            "summary": outcome.summary(),
            "affected_items": len(outcome.affected),
            "reassigned_items": len(outcome.reassigned),
            "repathed_items": len(outcome.repathed),
            "renamed_items": len(outcome.renamed),
            "ids_changed": len(changes),
            "descriptors": outcome.descriptors,
            "vocabulary_before": vocabulary_digest(vocab),
            "vocabulary_after": after_digest,
            "items": [{"item_id": i, "before": list(b), "after": list(a)} for i, b, a in changes],
        }
        (stage / EDIT_LOG).write_text(old_log + json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    _refresh_diagnostics(cfg, loaded)
    return record


def _already_applied(run: Path, op: str, args: dict[str, Any], digest: str) -> dict | None:
    """The last edit-log record when it is this very edit and the vocabulary is still the one it
    left (a rerun of an edit that landed, e.g. after its process was killed past the commit point)."""
    log_ = read_edit_log(run)
    if not log_:
        return None
    last = log_[-1]
    given = {k: v for k, v in args.items() if v is not None}
    recorded = last.get("args") or {}
    if last.get("op") == op and all(recorded.get(k) == v for k, v in given.items()) and last.get("vocabulary_after") == digest:
        return last
    return None


def _refresh_diagnostics(cfg: RunConfig, loaded: list[Any]) -> None:
    """Write diagnostics.json for the edited run (labels from the run's catalog when it has
    them); a failure only logs: ``report`` writes it again."""
    from agentictagger.run.report import run_report

    try:
        cats = loaded or _catalogs(cfg, None)
        run_report(cfg.run_dir, cats[0] if cats else None)
    except Exception as exc:  # noqa: BLE001 - the edit is committed; diagnostics are derived
        log.warning("diagnostics.json not refreshed after the edit (%s: %s); run `agentictagger report`", type(exc).__name__, exc)


__all__ = ["edit_run"]
