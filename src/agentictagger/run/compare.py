"""What changed between two runs: descriptors added, removed, renamed or moved, item counts, and
items whose path changed. Shown by ``agentictagger explore RUN_DIR --compare OTHER_RUN_DIR``
(OTHER is "before", RUN_DIR "after"), e.g. a run and the same run after ``agentictagger edit``.

Descriptors are matched by id first, then, among the rest, by name (case-insensitive, when the
name is unique on both sides): two independent builds number their descriptors alike, and an
edit keeps ids, so an id match is the common case; a name match catches a rebuilt run. An item's
path "changed" when its before path, mapped through the matching, is not its after path (a
rename alone changes no path; a move changes the paths below the moved descriptor).

Such a matching means something only for two runs over the same items, so ``relation`` says
whether they look related, with one reason per failed check: fewer than half of the smaller
run's items in both; (when both catalogs' texts are known) fewer than half of the shared ids
with the same text; fewer than a fifth of the smaller vocabulary's descriptor names in both.
Build sets that differ (the ``catalog.items`` digest in each vocabulary's fingerprint) are
noted without a warning: a subsample build or an ``assign --add`` does that to related runs.

Example::

    from agentictagger.run.compare import diff_runs
    d = diff_runs("runs/a-before", "runs/a")
    print(d["summary"])
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from agentictagger.vocab.edits import name_key as _key
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

#: Items listed with before/after paths, descriptors per side-by-side tree, count rows kept.
ITEM_SAMPLE = 50
TREE_NODES = 400
COUNT_ROWS = 100
_KIND_ORDER = {"removed": 0, "added": 1, "renamed": 2, "moved": 3, "matched by name": 4}
#: Below these shares two runs are called unrelated: items in both (of the smaller run), shared
#: ids with the same text, descriptor names in both (of the smaller vocabulary).
MIN_SHARED_ITEMS = 0.5
MIN_SAME_TEXTS = 0.5
MIN_SHARED_NAMES = 0.2


def subtree_counts(vocab: Vocabulary, paths: dict[str, list[str]]) -> dict[str, int]:
    """Assigned items per descriptor, counting every item whose path passes through it."""
    counts = {d.id: 0 for d in vocab}
    for path in paths.values():
        for did in path:
            if did in counts:
                counts[did] += 1
    return counts


def _counts(vocab: Vocabulary, paths: dict[str, list[str]]) -> dict[str, int]:

    return subtree_counts(vocab, paths)


def match_descriptors(before: Vocabulary, after: Vocabulary) -> tuple[dict[str, str], dict[str, str]]:
    """``(before id -> after id, before id -> "id" | "name")``: by id, then by unique name."""
    match = {d.id: d.id for d in before if d.id in after}
    how = {d: "id" for d in match}
    taken = set(match.values())
    left_b = Counter(_key(d.name) for d in before if d.id not in match)
    left_a = Counter(_key(d.name) for d in after if d.id not in taken)
    by_name = {_key(d.name): d.id for d in after if d.id not in taken and left_a[_key(d.name)] == 1}
    for d in before:
        k = _key(d.name)
        if d.id not in match and left_b[k] == 1 and k in by_name:
            match[d.id] = by_name[k]
            how[d.id] = "name"
    return match, how


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def relation(
    before: Vocabulary,
    before_paths: dict[str, list[str]],
    after: Vocabulary,
    after_paths: dict[str, list[str]],
    *,
    before_texts: dict[str, str] | None = None,
    after_texts: dict[str, str] | None = None,
) -> dict:
    """Whether two runs look like versions of one another (see the module docstring):
    ``{"related", "reasons", "notes", "items_in_both", "same_texts", "texts_compared",
    "names_in_both", "same_build_items"}``; ``reasons`` says, in one line each, why not."""
    both = [i for i in after_paths if i in before_paths]
    smaller = min(len(before_paths), len(after_paths))
    reasons: list[str] = []
    notes: list[str] = []
    if smaller and len(both) < MIN_SHARED_ITEMS * smaller:
        reasons.append(f"other items: only {len(both)} of {smaller} items ({_pct(len(both) / smaller)}) are in both runs")
    compared = same = 0
    if before_texts and after_texts:
        for i in both:
            tb, ta = before_texts.get(i), after_texts.get(i)
            if tb and ta:
                compared += 1
                same += _key(tb) == _key(ta)
        if compared and same < MIN_SAME_TEXTS * compared:
            reasons.append(f"other catalogs: of {compared} item ids in both, {compared - same} have another text "
                           f"({_pct((compared - same) / compared)})")
    names_b, names_a = {_key(d.name) for d in before}, {_key(d.name) for d in after}
    shared_names = len(names_b & names_a)
    smaller_v = min(len(names_b), len(names_a))
    if smaller_v and shared_names < MIN_SHARED_NAMES * smaller_v:
        reasons.append(f"other vocabularies: only {shared_names} of {smaller_v} descriptor names are in both, so "
                       "descriptors are paired by id alone and \"renamed\" or \"moved\" says nothing about meaning")
    fp_b = (before.meta.get("fingerprint") or {}).get("catalog.items")
    fp_a = (after.meta.get("fingerprint") or {}).get("catalog.items")
    same_build = None if not (fp_b and fp_a) else fp_b == fp_a
    if same_build is False and not reasons:
        notes.append("the two vocabularies were built from different item sets (another catalog, text template, "
                     "subsample or added items)")
    return {
        "related": not reasons,
        "reasons": reasons,
        "notes": notes,
        "items_in_both": len(both),
        "same_texts": same if compared else None,
        "texts_compared": compared,
        "names_in_both": shared_names,
        "same_build_items": same_build,
    }


def _names(vocab: Vocabulary, path: list[str]) -> str:
    return " > ".join(vocab[d].name if d in vocab else d for d in path)


def diff(
    before: Vocabulary,
    before_paths: dict[str, list[str]],
    after: Vocabulary,
    after_paths: dict[str, list[str]],
    *,
    texts: dict[str, str] | None = None,
    before_ids: dict[str, tuple] | None = None,
    after_ids: dict[str, tuple] | None = None,
    sample: int = ITEM_SAMPLE,
    before_texts: dict[str, str] | None = None,
) -> dict:
    """The changes from (``before``, its item paths) to (``after``, its item paths), as plain
    JSON: ``summary`` counts, ``descriptors`` (one row per added/removed/renamed/moved one),
    ``counts`` (descriptors whose item count changed, largest change first), ``items`` (a sample
    of items whose path changed, with both paths), and ``trees`` (both hierarchies with each
    node's status, for a side-by-side view). ``before_ids``/``after_ids`` (item -> (path,
    resolver)), when given, add how many semantic IDs changed. ``relation`` (:func:`relation`,
    with ``before_texts`` and ``texts`` as the two runs' item texts) says whether the two runs
    look related at all."""
    texts = texts or {}
    match, how = match_descriptors(before, after)
    cb, ca = _counts(before, before_paths), _counts(after, after_paths)

    rows, count_rows, status_b, status_a = _matched_rows(before, after, match, how, cb, ca)
    rows += _unmatched_rows(before, before_paths, after, after_paths, match, cb, ca, status_b, status_a)
    rows.sort(key=lambda r: (_KIND_ORDER.get(r["kind"], 9), r["id_before"] or r["id_after"]))
    count_rows.sort(key=lambda r: (-abs(r["delta"]), r["id_after"]))

    common = [i for i in after_paths if i in before_paths]
    changed = [i for i in common if [match.get(d) for d in before_paths[i]] != list(after_paths[i])]
    items = [
        {"id": i, "text": texts.get(i, ""), "before": _names(before, before_paths[i]) or "(no descriptor)",
         "after": _names(after, after_paths[i]) or "(no descriptor)"}
        for i in changed[:sample]
    ]
    ids_changed = None
    if before_ids is not None and after_ids is not None:
        ids_changed = sum(1 for i in common if i in before_ids and i in after_ids and before_ids[i] != after_ids[i])
    kinds = Counter(k for r in rows for k in r["kinds"])
    summary = {
        "descriptors_before": len(before),
        "descriptors_after": len(after),
        "added": kinds["added"],
        "removed": kinds["removed"],
        "renamed": kinds["renamed"],
        "moved": kinds["moved"],
        "matched_by_name": kinds["matched by name"],
        "count_changed": len(count_rows),
        "items_before": len(before_paths),
        "items_after": len(after_paths),
        "items_path_changed": len(changed),
        "items_only_before": sum(1 for i in before_paths if i not in after_paths),
        "items_only_after": len(after_paths) - len(common),
        "ids_changed": ids_changed,
    }
    return {
        "summary": summary,
        "relation": relation(before, before_paths, after, after_paths, before_texts=before_texts, after_texts=texts),
        "descriptors": rows,
        "counts": count_rows[:COUNT_ROWS],
        "items": items,
        "trees": {"before": _tree(before, cb, status_b), "after": _tree(after, ca, status_a)},
    }


def _matched_rows(before: Vocabulary, after: Vocabulary, match: dict[str, str], how: dict[str, str],
                  cb: dict[str, int], ca: dict[str, int]) -> tuple[list[dict], list[dict], dict[str, str], dict[str, str]]:
    """Rows for the descriptors both runs have (renamed, moved, matched by name), rows for those
    whose item count changed, and each one's status in either tree."""

    def mapped_parent(did: str) -> str | None:
        p = before[did].parent
        return ROOT_ID if p == ROOT_ID else match.get(p)

    rows: list[dict] = []
    status_b: dict[str, str] = {}
    status_a: dict[str, str] = {}
    count_rows = []
    for b, a in match.items():
        db, da = before[b], after[a]
        kinds = []
        if how[b] == "name":
            kinds.append("matched by name")
        if db.name != da.name:
            kinds.append("renamed")
        if mapped_parent(b) != da.parent:
            kinds.append("moved")
        if kinds:
            rows.append({
                "kind": next((k for k in kinds if k != "matched by name"), kinds[0]),
                "kinds": kinds, "id_before": b, "id_after": a, "name_before": db.name, "name_after": da.name,
                "path_before": _names(before, [d.id for d in before.path_to(b)]),
                "path_after": _names(after, [d.id for d in after.path_to(a)]),
                "count_before": cb[b], "count_after": ca[a],
            })
        status = next((k for k in kinds if k != "matched by name"), "")
        if cb[b] != ca[a]:
            count_rows.append({"id_before": b, "id_after": a, "name": da.name, "path": _names(after, [d.id for d in after.path_to(a)]),
                               "before": cb[b], "after": ca[a], "delta": ca[a] - cb[b]})
            status = status or "count"
        status_b[b] = status_a[a] = status
    return rows, count_rows, status_b, status_a


def _unmatched_rows(before: Vocabulary, before_paths: dict[str, list[str]], after: Vocabulary,
                    after_paths: dict[str, list[str]], match: dict[str, str], cb: dict[str, int], ca: dict[str, int],
                    status_b: dict[str, str], status_a: dict[str, str]) -> list[dict]:
    """Rows for the descriptors only one run has: removed ones (with where their items are now)
    and added ones; their status is set in ``status_b`` / ``status_a``."""
    matched_after = set(match.values())
    rows: list[dict] = []
    # Where the items of a removed descriptor are now (a delete or merge sends them somewhere).
    now_in: dict[str, Counter] = {}
    for d in before:
        if d.id not in match:
            status_b[d.id] = "removed"
            now_in[d.id] = Counter()
    for iid, path in before_paths.items():
        for did in path:
            if did in now_in and iid in after_paths:
                now_in[did][_names(after, after_paths[iid]) or "(no descriptor)"] += 1
    for d in before:
        if d.id not in match:
            rows.append({
                "kind": "removed", "kinds": ["removed"], "id_before": d.id, "id_after": None, "name_before": d.name,
                "name_after": None, "path_before": _names(before, [x.id for x in before.path_to(d.id)]), "path_after": None,
                "count_before": cb[d.id], "count_after": None,
                "items_now_in": [{"path": p, "items": n} for p, n in now_in[d.id].most_common(3)],
            })
    for d in after:
        if d.id not in matched_after:
            status_a[d.id] = "added"
            rows.append({
                "kind": "added", "kinds": ["added"], "id_before": None, "id_after": d.id, "name_before": None,
                "name_after": d.name, "path_before": None, "path_after": _names(after, [x.id for x in after.path_to(d.id)]),
                "count_before": None, "count_after": ca[d.id],
            })
    return rows


def _tree(vocab: Vocabulary, counts: dict[str, int], status: dict[str, str]) -> list[dict]:
    """The hierarchy in depth-first order (first TREE_NODES nodes) with counts and statuses."""
    out: list[dict] = []

    def walk(pid: str) -> None:
        for d in vocab.children(pid):
            if len(out) >= TREE_NODES:
                return
            out.append({"id": d.id, "name": d.name, "level": d.level, "count": counts.get(d.id, 0), "status": status.get(d.id, "")})
            walk(d.id)

    walk(ROOT_ID)
    return out


def _load(run_dir: Path) -> tuple[Vocabulary, Any, dict[str, tuple] | None]:
    from agentictagger.structures.assignment import Assignment
    from agentictagger.structures.semantic_ids import SemanticIds

    for name, hint in (("vocabulary.json", "build"), ("assignments.jsonl", "assign")):
        if not (run_dir / name).exists():
            raise FileNotFoundError(f"{run_dir / name} not found: run `agentictagger {hint}` for this run folder first")
    vocab = Vocabulary.load(run_dir / "vocabulary.json")
    assignment = Assignment.load_jsonl(run_dir / "assignments.jsonl")
    ids = None
    if (run_dir / "semantic_ids.parquet").exists():
        ids = {r.item_id: (r.path, r.resolver) for r in SemanticIds.read(run_dir / "semantic_ids.parquet")}
    return vocab, assignment, ids


def diff_runs(
    before_dir: str | Path,
    after_dir: str | Path,
    texts: dict[str, str] | None = None,
    sample: int = ITEM_SAMPLE,
    before_texts: dict[str, str] | None = None,
) -> dict:
    """:func:`diff` of two run folders (vocabulary.json, assignments.jsonl, and the semantic-ID
    tables when both have one), with ``before``/``after`` naming them. ``texts`` are the after
    run's item texts, ``before_texts`` the before run's (both optional)."""
    b, a = Path(before_dir), Path(after_dir)
    vb, ab, ib = _load(b)
    va, aa, ia = _load(a)
    out = diff(vb, ab.paths, va, aa.paths, texts=texts, before_ids=ib, after_ids=ia, sample=sample, before_texts=before_texts)
    out["before"] = {"name": b.resolve().name, "path": str(b), "edits": int(vb.meta.get("edits", 0) or 0)}
    out["after"] = {"name": a.resolve().name, "path": str(a), "edits": int(va.meta.get("edits", 0) or 0)}
    return out


__all__ = ["diff", "diff_runs", "match_descriptors", "relation"]
