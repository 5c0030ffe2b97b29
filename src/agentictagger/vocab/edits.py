"""Vocabulary edits: rename, move, merge and delete descriptors, re-assigning only the items they touch.

Pure functions over a :class:`~agentictagger.structures.vocabulary.Vocabulary` and the run's semantic-ID
table (:class:`~agentictagger.structures.semantic_ids.SemanticIds`): no files are read or written here (the
run folder side is :mod:`agentictagger.run.edit`). Each returns an :class:`EditOutcome` with the
new vocabulary and table; the inputs are not changed.

What each edit does to items (every other item keeps its semantic ID, path and resolver):

* ``rename(d, name)``: no item moves and no ID changes; the items under ``d`` get the new name in
  their ``path_names``.
* ``move(d, parent)``: ``d`` and its subtree go under ``parent`` (or ``"root"``) with their items:
  each keeps its descriptors below ``d`` and its resolver; only the path's prefix changes.
* ``merge(source, target)``: ``source``'s children (with their items, as in a move) become
  children of ``target``; items that stopped at ``source`` itself are re-assigned within
  ``target``'s subtree; ``target`` also takes ``source``'s matching vectors and exemplars.
* ``delete(d)``: ``d`` and its subtree go; their items are re-assigned within the subtree of
  ``d``'s parent (among the level-1 descriptors left, for a level-1 ``d``).

Re-assignment goes through a callback (see :func:`assign_within`, which runs the run's assigner
over a subtree). Re-assigned items get the next free resolver on their new path; an item whose
kept resolver would collide with another's gets the next free one too. Descriptor ids never
change: after a move or merge an id no longer spells its path (``d3.1`` may sit under ``d5``).

Validation raises :class:`EditError` (one line) for an unknown id, moving a descriptor under
itself or its own subtree, merging a descriptor with its ancestor or descendant, a name another
sibling has (case-insensitive), an edit that changes nothing, and deleting the last level-1
descriptor.

Example::

    from agentictagger.vocab import edits
    out = edits.rename(vocab, table, "d2", "Hand Tools")
    out = edits.delete(out.vocabulary, out.table, "d2.3", reassign=lambda ids, v, node: ...)
    print(out.summary())
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

from agentictagger.errors import EditError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.structures.semantic_ids import SemanticId, SemanticIds
from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

#: ``reassign(item_ids, vocabulary, node)``: a full path (level 1 first) for each item, inside
#: the subtree of ``node`` of the edited ``vocabulary`` (``"root"``: anywhere).
Reassign = Callable[[list[str], Vocabulary, str], dict[str, list[str]]]

OPS = ("rename", "move", "merge", "delete")


@dataclass
class EditOutcome:
    """What an edit did: the new vocabulary and semantic-ID table, and the items it touched."""

    op: str
    args: dict[str, Any]
    before: SemanticIds
    vocabulary: Vocabulary
    table: SemanticIds
    #: Items the assigner placed again (their descriptor was deleted or merged away).
    reassigned: list[str] = field(default_factory=list)
    #: Items that kept their descriptors but whose path prefix changed (a moved or merged subtree).
    repathed: list[str] = field(default_factory=list)
    #: Items whose path names changed but whose ID did not (a rename).
    renamed: list[str] = field(default_factory=list)
    #: What changed in the tree, for the log: e.g. ``{"removed": [...], "moved": {...}}``.
    descriptors: dict[str, Any] = field(default_factory=dict)

    @property
    def affected(self) -> list[str]:
        """Items whose semantic ID may have changed: re-assigned or re-pathed."""
        return [*self.reassigned, *self.repathed]

    def id_changes(self) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
        """``(item_id, before tokens, after tokens)`` of every item whose semantic ID changed."""
        out = []
        for r in self.table:
            old = self.before[r.item_id]
            if (old.path, old.resolver) != (r.path, r.resolver):
                out.append((r.item_id, old.tokens, r.tokens))
        return out

    def summary(self) -> str:
        """One line: the edit and how many items it touched."""
        changed = len(self.id_changes())
        parts = [f"{len(self.reassigned)} item(s) re-assigned", f"{changed} semantic ID(s) changed"]
        if self.renamed:
            parts.append(f"{len(self.renamed)} item(s) show the new name")
        parts.append(f"{len(self.table) - changed} unchanged")
        return f"{describe(self.op, self.args)}: " + ", ".join(parts)


def describe(op: str, args: dict[str, Any]) -> str:
    """The edit in words, e.g. ``delete d2.3`` or ``rename d1 -> 'Fruit'``."""
    if op == "rename":
        return f"rename {args['descriptor']} -> {args['name']!r}"
    if op == "move":
        return f"move {args['descriptor']} under {args['parent']}"
    if op == "merge":
        return f"merge {args['source']} into {args['target']}"
    return f"{op} {args.get('descriptor', '')}".strip()


# -- helpers --------------------------------------------------------------------------------------
def name_key(name: str) -> str:
    """How sibling names are compared: case and runs of whitespace ignored."""
    return " ".join(name.split()).casefold()


def need(vocab: Vocabulary, did: str, what: str = "descriptor", allow_root: bool = False) -> str:
    """``did`` if it is in ``vocab`` (or is ``"root"`` when allowed); else :class:`EditError`."""
    did = str(did).strip()
    if allow_root and did == ROOT_ID:
        return did
    if did not in vocab:
        top = ", ".join(d.id for d in vocab.children(ROOT_ID)[:6])
        raise EditError(
            f"unknown {what} {did!r}: no descriptor has that id (level 1 here: {top}"
            f"{' ...' if len(vocab.children(ROOT_ID)) > 6 else ''}; `agentictagger report` or explorer.html shows every id)"
        )
    return did


def subtree_ids(vocab: Vocabulary, did: str) -> list[str]:
    """``did`` and every descriptor below it, parents first."""
    out, stack = [], [did]
    while stack:
        d = stack.pop(0)
        out.append(d)
        stack.extend(c.id for c in vocab.children(d))
    return out


def path_ids(vocab: Vocabulary, did: str) -> list[str]:
    """Descriptor ids from level 1 down to ``did`` (empty for the root)."""
    return [] if did == ROOT_ID else [d.id for d in vocab.path_to(did)]


def _label(vocab: Vocabulary, did: str) -> str:
    return "the root" if did == ROOT_ID else f"{did} ({vocab[did].name!r})"


def _check_names(vocab: Vocabulary, parent: str, names: Iterable[tuple[str, str]], skip: Iterable[str] = ()) -> None:
    """Each ``(id, name)`` may join ``parent``'s children only if no other child there has that name."""
    skip = set(skip)
    taken = {name_key(c.name): c.id for c in vocab.children(parent) if c.id not in skip}
    for did, name in names:
        other = taken.get(name_key(name))
        if other is not None and other != did:
            raise EditError(
                f"name collision: {_label(vocab, parent)} already has a child named {vocab[other].name!r} ({other}); "
                f"{did} would be a second one. Rename or merge one of them first"
            )


def rebuild(
    vocab: Vocabulary,
    children: dict[str, list[str]],
    changes: dict[str, dict[str, Any]] | None = None,
    prototypes: dict[str, tuple[Any, Any]] | None = None,
) -> Vocabulary:
    """A new vocabulary with the tree ``children`` (parent id -> child ids, ``"root"`` first),
    descriptors copied from ``vocab`` with ``changes`` (id -> fields) applied, parents and levels
    set from the tree, and prototypes kept (``prototypes`` overrides some: id -> (rows, their name
    weights)). Descriptors not
    reachable from the root are left out."""
    changes = changes or {}
    out = Vocabulary(meta=dict(vocab.meta))

    def walk(parent: str, level: int) -> None:
        for cid in children.get(parent, []):
            d = vocab[cid]
            out.add(replace(d, **changes.get(cid, {}), parent=parent, level=level, children=[]))
            walk(cid, level + 1)

    walk(ROOT_ID, 1)
    for d in out:
        if d.id in (prototypes or {}):
            rows, weights = prototypes[d.id]
            out.prototypes[d.id] = rows
            if weights is not None and any(float(w) for w in weights):
                out.name_weights[d.id] = weights
        else:
            out.copy_prototype(vocab, d.id)
    return out


def tree_of(vocab: Vocabulary) -> dict[str, list[str]]:
    """The tree as parent id -> child ids (``"root"`` included), lists copied."""
    tree = {ROOT_ID: [d.id for d in vocab.children(ROOT_ID)]}
    for d in vocab:
        tree[d.id] = [c.id for c in vocab.children(d.id)]
    return tree


def retable(
    before: SemanticIds, vocab: Vocabulary, new_paths: dict[str, Sequence[str]], reassigned: Iterable[str] = ()
) -> SemanticIds:
    """The semantic-ID table after an edit: every row in its place; ``new_paths`` gives the rows
    whose path changed. Rows not ``reassigned`` keep their resolver (unless that would collide
    with a row placed before them); re-assigned and colliding rows get the next free resolver on
    their path, in table order. Path names come from ``vocab``. Every path must be valid in it."""
    again = set(reassigned)
    rows: list[SemanticId | None] = []
    taken: set[tuple[tuple[str, ...], int]] = set()
    later: list[int] = []
    for n, r in enumerate(before):
        path = tuple(new_paths.get(r.item_id, r.path))
        if not vocab.is_valid_path(list(path)):
            raise ValueError(f"item {r.item_id!r}: path {list(path)} is not valid in the edited vocabulary")
        names = tuple(vocab[d].name for d in path)
        if r.item_id in again or (path, r.resolver) in taken:
            rows.append(SemanticId(r.item_id, path, names, -1))
            later.append(n)
            continue
        taken.add((path, r.resolver))
        rows.append(SemanticId(r.item_id, path, names, r.resolver))
    nxt: dict[tuple[str, ...], int] = {}
    for path, res in taken:
        nxt[path] = max(nxt.get(path, 0), res + 1)
    for n in later:
        row = rows[n]
        assert row is not None
        rows[n] = replace(row, resolver=nxt.get(row.path, 0))
        nxt[row.path] = rows[n].resolver + 1  # type: ignore[union-attr]
    return SemanticIds([r for r in rows if r is not None])


def _items_through(table: SemanticIds, did: str) -> list[SemanticId]:
    return [r for r in table if did in r.path]


def _reassigned_paths(reassign: Reassign | None, ids: list[str], vocab: Vocabulary, node: str) -> dict[str, list[str]]:
    """Run ``reassign`` for ``ids`` within ``node``; check it placed each one inside ``node``."""
    if not ids:
        return {}
    if reassign is None:
        raise ValueError("this edit re-assigns items: pass reassign=")
    got = reassign(list(ids), vocab, node)
    prefix = path_ids(vocab, node)
    for i in ids:
        p = got.get(i)
        if p is None:
            raise ValueError(f"reassign gave no path for item {i!r}")
        if list(p[: len(prefix)]) != prefix or not vocab.is_valid_path(list(p)):
            raise ValueError(f"reassign placed item {i!r} at {list(p)}, outside {node}'s subtree {prefix}")
    return {i: list(got[i]) for i in ids}


# -- the edits ------------------------------------------------------------------------------------
def rename(vocab: Vocabulary, table: SemanticIds, descriptor: str, name: str, definition: str | None = None) -> EditOutcome:
    """Give ``descriptor`` a new name (and, optionally, definition). No item moves."""
    did = need(vocab, descriptor)
    d = vocab[did]
    name = " ".join(str(name).split())
    if not name:
        raise EditError(f"cannot rename {did}: the new name is empty")
    new_def = d.definition if definition is None else " ".join(str(definition).split())
    if name == d.name and new_def == d.definition:
        raise EditError(f"nothing to change: {did} is already named {name!r}" + (" with that definition" if definition is not None else ""))
    _check_names(vocab, d.parent, [(did, name)])
    # The name is now the user's: who wrote the old one, and why an LLM's was not used, no longer apply.
    fields = {"name": name, "definition": new_def}
    if name != d.name:
        fields.update(named_by="user", naming_problems=[])
    new_vocab = rebuild(vocab, tree_of(vocab), {did: fields})
    out = retable(table, new_vocab, {})
    args = {"descriptor": did, "name": name, **({"definition": new_def} if definition is not None else {})}
    change = {"id": did, "name_before": d.name, "name_after": name}
    if definition is not None:
        change.update(definition_before=d.definition, definition_after=new_def)
    return EditOutcome(
        "rename", args, table, new_vocab, out,
        renamed=[r.item_id for r in _items_through(table, did)], descriptors={"renamed": change},
    )


def move(vocab: Vocabulary, table: SemanticIds, descriptor: str, parent: str) -> EditOutcome:
    """Put ``descriptor`` (with its subtree and their items) under ``parent`` (``"root"``: at level 1)."""
    did = need(vocab, descriptor)
    new_parent = need(vocab, parent, "parent", allow_root=True)
    d = vocab[did]
    if new_parent == did or new_parent in subtree_ids(vocab, did):
        raise EditError(f"cannot move {did} under {new_parent}: {new_parent} is {did} itself or inside its subtree (a descriptor cannot be its own ancestor)")
    if d.parent == new_parent:
        raise EditError(f"nothing to change: {did} is already under {_label(vocab, new_parent)}")
    _check_names(vocab, new_parent, [(did, d.name)])
    tree = tree_of(vocab)
    tree[d.parent].remove(did)
    tree[new_parent].append(did)
    new_vocab = rebuild(vocab, tree)
    prefix = path_ids(vocab, new_parent)
    moved = _items_through(table, did)
    new_paths = {r.item_id: [*prefix, *r.path[r.path.index(did):]] for r in moved}
    out = retable(table, new_vocab, new_paths)
    change = {"id": did, "name": d.name, "parent_before": d.parent, "parent_after": new_parent,
              "level_before": d.level, "level_after": new_vocab[did].level, "subtree": len(subtree_ids(vocab, did))}
    return EditOutcome("move", {"descriptor": did, "parent": new_parent}, table, new_vocab, out,
                       repathed=[r.item_id for r in moved], descriptors={"moved": change})


def merge(vocab: Vocabulary, table: SemanticIds, source: str, target: str, reassign: Reassign | None = None) -> EditOutcome:
    """Merge ``source`` into ``target``: ``source``'s children (and their items) move under
    ``target``, items that stopped at ``source`` are re-assigned within ``target``'s subtree, and
    ``source`` is removed."""
    import numpy as np

    src, dst = need(vocab, source, "source"), need(vocab, target, "target")
    if src == dst:
        raise EditError(f"cannot merge {src} into itself")
    if dst in subtree_ids(vocab, src):
        raise EditError(f"cannot merge {src} into {dst}: {dst} is inside {src}'s subtree (merge a descriptor only with one outside its own branch)")
    if src in subtree_ids(vocab, dst):
        raise EditError(f"cannot merge {src} into its ancestor {dst}: move {src}'s children up or delete {src} instead")
    s, t = vocab[src], vocab[dst]
    _check_names(vocab, dst, [(c.id, c.name) for c in vocab.children(src)])
    tree = tree_of(vocab)
    tree[s.parent].remove(src)
    tree[dst].extend(tree.pop(src))
    exemplars = list(dict.fromkeys([*t.exemplars, *s.exemplars]))
    protos = {}
    if src in vocab.prototypes and dst in vocab.prototypes:
        # Both descriptors' rows, each blended with the target's name when items are matched.
        protos[dst] = (
            np.concatenate([np.atleast_2d(vocab.prototypes[dst]), np.atleast_2d(vocab.prototypes[src])]),
            np.concatenate([vocab.row_name_weights(dst), vocab.row_name_weights(src)]),
        )
    new_vocab = rebuild(vocab, tree, {dst: {"item_count": t.item_count + s.item_count, "exemplars": exemplars}}, protos)
    prefix = path_ids(vocab, dst)
    through = _items_through(table, src)
    stopped = [r.item_id for r in through if r.path[-1] == src]
    new_paths = {r.item_id: [*prefix, *r.path[r.path.index(src) + 1:]] for r in through if r.path[-1] != src}
    new_paths.update(_reassigned_paths(reassign, stopped, new_vocab, dst))
    out = retable(table, new_vocab, new_paths, stopped)
    change = {"removed": {"id": src, "name": s.name}, "into": {"id": dst, "name": t.name},
              "children_moved": [c.id for c in vocab.children(src)]}
    return EditOutcome("merge", {"source": src, "target": dst}, table, new_vocab, out, reassigned=stopped,
                       repathed=[i for i in new_paths if i not in set(stopped)], descriptors={"merged": change})


def delete(vocab: Vocabulary, table: SemanticIds, descriptor: str, reassign: Reassign | None = None) -> EditOutcome:
    """Remove ``descriptor`` and its subtree; re-assign their items within its parent's subtree."""
    did = need(vocab, descriptor)
    d = vocab[did]
    if d.parent == ROOT_ID and len(vocab.children(ROOT_ID)) == 1:
        raise EditError(f"cannot delete {did}: it is the only level-1 descriptor, and a vocabulary needs at least one")
    gone = subtree_ids(vocab, did)
    tree = tree_of(vocab)
    tree[d.parent].remove(did)
    new_vocab = rebuild(vocab, tree)
    items = [r.item_id for r in _items_through(table, did)]
    new_paths = _reassigned_paths(reassign, items, new_vocab, d.parent)
    out = retable(table, new_vocab, new_paths, items)
    change = {"id": did, "name": d.name, "parent": d.parent, "removed": gone}
    return EditOutcome("delete", {"descriptor": did}, table, new_vocab, out, reassigned=items, descriptors={"deleted": change})


def apply(op: str, vocab: Vocabulary, table: SemanticIds, args: dict[str, Any], reassign: Reassign | None = None) -> EditOutcome:
    """Run the edit named ``op`` with keyword ``args`` (as in the log's ``args``)."""
    if op == "rename":
        return rename(vocab, table, args["descriptor"], args["name"], args.get("definition"))
    if op == "move":
        return move(vocab, table, args["descriptor"], args["parent"])
    if op == "merge":
        return merge(vocab, table, args["source"], args["target"], reassign)
    if op == "delete":
        return delete(vocab, table, args["descriptor"], reassign)
    raise EditError(f"unknown edit {op!r}; use one of {', '.join(OPS)}")


# -- re-assignment within a subtree -----------------------------------------------------------------
def subtree_vocabulary(vocab: Vocabulary, node: str) -> Vocabulary:
    """The descriptors below ``node`` as a vocabulary of their own (``node``'s children at level
    1, ids and prototypes kept), for an assigner that walks from the root."""
    if node == ROOT_ID:
        return vocab
    base = vocab[node].level
    out = Vocabulary(meta=dict(vocab.meta))
    for did in subtree_ids(vocab, node)[1:]:
        d = vocab[did]
        out.add(replace(d, level=d.level - base, parent=ROOT_ID if d.parent == node else d.parent, children=[]))
        out.copy_prototype(vocab, did)
    return out


def assign_within(assigner: Any, items: Sequence[Any], vocab: Vocabulary, node: str, max_level: int | None = None) -> dict[str, list[str]]:
    """Place ``items`` (``item_id``, ``text``) with ``assigner`` (``.assign(items, vocab)``) inside
    ``node``'s subtree: the assigner walks the subtree as if it were the whole vocabulary, and
    each path is prefixed with ``node``'s own path. An item the assigner stops at once stays at
    ``node``; ``max_level`` cuts paths as the run's ``assign.max_level`` does."""
    prefix = path_ids(vocab, node)
    if not items:
        return {}
    if node != ROOT_ID and not vocab.children(node):
        return {it.item_id: list(prefix) for it in items}
    sub = subtree_vocabulary(vocab, node)
    paths = assigner.assign(list(items), sub)
    if len(paths) != len(items):
        raise RuntimeError(f"assigner returned {len(paths)} paths for {len(items)} items")
    out = {}
    for it, p in zip(items, paths):
        full = [*prefix, *p]
        if max_level:
            full = full[: max(max_level, len(prefix))]
        out[it.item_id] = full
    return out


__all__ = [
    "EditError", "EditOutcome", "OPS", "apply", "assign_within", "delete", "describe", "merge", "move", "rename",
    "rebuild", "retable", "subtree_vocabulary",
]
