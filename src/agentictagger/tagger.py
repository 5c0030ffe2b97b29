"""`AgenticTagger`: the Python API over a run folder (build, assign, add items, report).

The CLI commands run the same functions (:mod:`agentictagger.pipeline`,
:func:`agentictagger.vocab.api.build_vocabulary`), under the same run lock."""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from agentictagger.catalog import Catalog, Item
from agentictagger.config import RunConfig, apply_override

log = logging.getLogger(__name__)

#: Files of a run folder :meth:`AgenticTagger.save` leaves out: the lock, and temporary files.
_NOT_SAVED = ("run.lock", "run.lock.json")


def sample_catalog_path() -> Path:
    """The shipped sample catalog: 304 Amazon Industrial & Scientific items (JSONL, ``item_id``,
    ``title``, ``brand``, ``description``, ``category``)."""
    return Path(str(resources.files("agentictagger") / "data" / "sample_catalog.jsonl"))


class NotFittedError(RuntimeError):
    """The tagger's run folder has no vocabulary or semantic-ID table yet: call ``fit`` first."""


class AgenticTagger:
    """Build a descriptor vocabulary, tag items with it, and keep the result in a run folder.

    ``config`` is a :class:`~agentictagger.config.RunConfig`, the path of a run YAML file, or
    ``None`` (defaults); ``overrides`` are ``section.field=value`` strings as for ``--set``, and
    ``run_dir`` sets where everything is written. Role objects replace the ones the config names:
    ``embedder`` (``.encode(texts) -> (n, d)`` unit vectors), ``architect`` and ``annotator``
    (the build's agents, see :mod:`agentictagger.vocab.agents`) and ``assigner`` (``.assign(items,
    vocab) -> paths``, see :mod:`agentictagger.assign`); their classes are recorded in the run's
    fingerprints, so checkpoints made by other ones are not resumed.

    Example (offline: embedding agents and key-phrase names; about a minute on 2 cores)::

        from agentictagger import AgenticTagger
        from agentictagger.catalog import Catalog
        from agentictagger.tagger import sample_catalog_path

        tagger = AgenticTagger(run_dir="runs/api", overrides=[
            "catalog.text_template='{title}. Brand: {brand}. {description}'",
            "build.min_cluster_size=12", "build.root_descriptors=8"])
        items = Catalog.load(sample_catalog_path(), tagger.config.catalog)
        tagger.fit(items.subset(range(250)))               # build + assign the first 250
        new_ids = tagger.transform(items.subset(range(250, 304)))  # the other 54, earlier IDs kept
        print(tagger.vocabulary.render(max_level=1))
        print(new_ids.head())                              # item_id, path, path_names, resolver
        tagger.rename("d1", "Lab Supplies")                 # edits: only touched items change ID
        print(tagger.edit_log[-1]["summary"])               # (also in runs/api/edits.jsonl)
        tagger.save("runs/api-copy")
        same = AgenticTagger.load("runs/api-copy")

    ``fit`` and ``transform`` hold the run folder's lock like ``agentictagger build``/``assign``.
    """

    def __init__(
        self,
        config: RunConfig | str | Path | None = None,
        *,
        overrides: Iterable[str] | None = None,
        run_dir: str | Path | None = None,
        embedder: Any = None,
        architect: Any = None,
        annotator: Any = None,
        assigner: Any = None,
    ) -> None:
        self.config = _config(config, list(overrides or []) + ([f"run_dir={run_dir}"] if run_dir is not None else []))
        self.embedder = embedder
        self.architect = architect
        self.annotator = annotator
        self.assigner = assigner
        #: What the last :meth:`transform` did (a :class:`~agentictagger.pipeline.AddResult`).
        self.last_add: Any = None

    def __repr__(self) -> str:
        return f"AgenticTagger(run_dir={str(self.run_dir)!r}, fitted={self.is_fitted})"

    # -- the run folder ---------------------------------------------------------------------------
    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def is_fitted(self) -> bool:
        return (self.run_dir / "vocabulary.json").exists() and (self.run_dir / "semantic_ids.parquet").exists()

    def _need(self, name: str) -> Path:
        path = self.run_dir / name
        if not path.exists():
            raise NotFittedError(f"{path} is missing: call fit() first (or AgenticTagger.load() a finished run folder)")
        return path

    @contextmanager
    def _lock(self, command: str) -> Iterator[None]:
        from agentictagger.runstate import RunLock

        with RunLock(self.run_dir, command) as lock:
            for note in lock.notes:
                log.warning("%s", note)
            yield

    def _embedder(self) -> Any:
        if self.embedder is None:
            from agentictagger.embed import Embedder

            self.embedder = Embedder(self.config.embedding, cache_dir=self.config.cache_dir)
        return self.embedder

    def as_catalog(self, items: Any) -> Catalog:
        """A :class:`Catalog` from a Catalog, a file path, ``Item`` objects, or dicts (read with
        ``config.catalog``: id field, text template)."""
        if isinstance(items, Catalog):
            return items
        if isinstance(items, (str, Path)):
            return Catalog.load(items, self.config.catalog)
        rows = list(items)
        if all(isinstance(r, Item) for r in rows):
            return Catalog(rows, self.config.catalog)
        if all(isinstance(r, Mapping) for r in rows):
            return Catalog.from_records(rows, self.config.catalog)
        raise TypeError("items must be a Catalog, a catalog file, Item objects or dicts")

    # -- the stages (the CLI's build / assign / assign --add) ----------------------------------------
    def build(self, catalog: Any, *, restart: bool = False, progress: Any = None) -> Any:
        """Build the vocabulary from ``catalog`` (``agentictagger build``: resumable, run-locked);
        returns the :class:`~agentictagger.vocab.builder.BuildResult`."""
        from agentictagger import pipeline
        from agentictagger.vocab.api import build_vocabulary

        cat = self.as_catalog(catalog)
        with self._lock("build"):
            pipeline.preflight(self.config, "build")
            pipeline.check_disk_space(self.config, cat)
            return build_vocabulary(
                cat, self.config, embedder=self._embedder(), progress=progress, restart=restart,
                architect=self.architect, annotator=self.annotator,
            )

    def assign(self, catalog: Any, *, restart: bool = False, progress: Any = None) -> Any:
        """Assign every item of ``catalog`` and write the semantic-ID table (``agentictagger
        assign``: resumable, run-locked); returns the :class:`~agentictagger.assign.Assignment`."""
        from agentictagger import pipeline

        cat = self.as_catalog(catalog)
        with self._lock("assign"):
            pipeline.preflight(self.config, "assign")
            pipeline.check_disk_space(self.config, cat)
            return pipeline.assign(self.config, cat, progress=progress, restart=restart, embedder=self._embedder(), assigner=self.assigner)

    def add(self, items: Any, *, progress: Any = None) -> Any:
        """Tag ``items`` into the fitted vocabulary (``agentictagger assign --add``); returns the
        :class:`~agentictagger.pipeline.AddResult` (added rows, skipped ids, the whole table)."""
        from agentictagger import pipeline

        cat = self.as_catalog(items)
        with self._lock("add"):
            pipeline.preflight(self.config, "assign")
            result = pipeline.add_items(self.config, cat, progress=progress, embedder=self._embedder(), assigner=self.assigner)
        self.last_add = result
        return result

    # -- sklearn-style ----------------------------------------------------------------------------
    def fit(self, catalog: Any, *, restart: bool = False, progress: Any = None) -> "AgenticTagger":
        """Build the vocabulary from ``catalog`` and assign every item (``agentictagger build``
        then ``assign`` then ``report``, resumable the same way); returns ``self``."""
        from agentictagger import pipeline

        cat = self.as_catalog(catalog)
        with self._lock("fit"):
            pipeline.preflight(self.config, "assign")
            self.build(cat, restart=restart, progress=progress)
            self.assign(cat, restart=restart)
            pipeline.report(self.config, cat)
        return self

    def transform(self, items: Any, *, progress: Any = None) -> Any:
        """Tag ``items`` into the fitted vocabulary and append them to the semantic-ID table
        (``agentictagger assign --add``): existing items keep their IDs, new items on a path in
        use get the next resolvers. Returns the rows of ``items`` as a DataFrame (items already
        in the table, skipped and logged, with the ID they have)."""
        from agentictagger import pipeline

        cat = self.as_catalog(items)
        self._need("semantic_ids.parquet")
        result = self.add(cat, progress=progress)
        if result.skipped:
            log.warning("%s", pipeline.describe_skipped(result.skipped))
        frame = result.table.to_frame()
        return frame[frame["item_id"].isin(set(cat.ids))].set_index("item_id").loc[cat.ids].reset_index()

    def fit_transform(self, catalog: Any, **kw: Any) -> Any:
        """``fit(catalog)``, then the semantic IDs of its items (DataFrame)."""
        cat = self.as_catalog(catalog)
        return self.fit(cat, **kw).semantic_ids

    # -- results ----------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> Any:
        """The descriptor tree (:class:`~agentictagger.vocabulary.Vocabulary`)."""
        from agentictagger.vocabulary import Vocabulary

        return Vocabulary.load(self._need("vocabulary.json"))

    @property
    def assignments(self) -> Any:
        """Every item's descriptor path (:class:`~agentictagger.assign.Assignment`)."""
        from agentictagger.assign import Assignment

        return Assignment.load_jsonl(self._need("assignments.jsonl"))

    @property
    def semantic_ids(self) -> Any:
        """The semantic-ID table as a pandas DataFrame: ``item_id, path, path_names, resolver``."""
        from agentictagger.semantic_ids import SemanticIds

        return SemanticIds.load_parquet(self._need("semantic_ids.parquet")).to_frame()

    @property
    def diagnostics(self) -> dict:
        """Coverage, utilization, collisions, depth (and NMI/purity when the fitted catalog had
        labels): ``diagnostics.json``, recomputed (without labels) when items were added since."""
        import json

        from agentictagger import pipeline

        path = self.run_dir / "diagnostics.json"
        if path.exists():
            diag = json.loads(path.read_text(encoding="utf-8"))
            if diag.get("items") == len(self.assignments):
                return diag
        self._need("assignments.jsonl")
        return json.loads(json.dumps(pipeline.report(self.config, None), default=str))

    # -- vocabulary edits ---------------------------------------------------------------------------
    def edit(self, op: str, *, catalog: Any = None, **args: Any) -> dict:
        """Apply one vocabulary edit to the run folder (run-locked) and return its edit-log record
        (also appended to ``edits.jsonl``): ``op`` is ``rename``/``move``/``merge``/``delete``,
        ``args`` as for :mod:`agentictagger.vocab.edits`. Only the items the edit touches change
        semantic ID; items it re-assigns are read from ``catalog`` (a Catalog, a file, or a list
        of them; default: the run's catalog) and placed by the run's assigner. An invalid edit
        raises :class:`~agentictagger.vocab.edits.EditError` and changes nothing."""
        from agentictagger.edit_run import edit_run

        self._need("semantic_ids.parquet")
        with self._lock("edit"):
            from agentictagger.pipeline import check_writable, preflight

            if op in ("merge", "delete"):  # they may call the run's assigner
                preflight(self.config, "assign")
            else:
                check_writable(self.run_dir)
            return edit_run(self.config, op, args, catalog=catalog, embedder=self.embedder, assigner=self.assigner)

    def rename(self, descriptor: str, name: str, definition: str | None = None) -> dict:
        """Rename a descriptor (optionally a new definition too); no item moves or changes ID.

        Example: ``tagger.rename("d2", "Hand Tools")``"""
        return self.edit("rename", descriptor=descriptor, name=name, definition=definition)

    def move(self, descriptor: str, parent: str) -> dict:
        """Move a descriptor and its subtree under ``parent`` (``"root"``: to level 1); its items
        go with it (same descriptors and resolvers, a new path prefix).

        Example: ``tagger.move("d2.3", "d5")``"""
        return self.edit("move", descriptor=descriptor, parent=parent)

    def merge(self, source: str, into: str, *, catalog: Any = None) -> dict:
        """Merge ``source`` into ``into``: its children move under ``into`` with their items; the
        items that stopped at ``source`` are re-assigned within ``into``'s subtree.

        Example: ``tagger.merge("d1.4", into="d1.2")``"""
        return self.edit("merge", source=source, target=into, catalog=catalog)

    def delete(self, descriptor: str, *, catalog: Any = None) -> dict:
        """Delete a descriptor and its subtree; their items are re-assigned within its parent's
        subtree (among the other level-1 descriptors, for a level-1 one).

        Example: ``tagger.delete("d3.2")``"""
        return self.edit("delete", descriptor=descriptor, catalog=catalog)

    @property
    def edit_log(self) -> list[dict]:
        """The run's vocabulary edits, oldest first (``edits.jsonl``)."""
        from agentictagger.edit_run import read_edit_log

        return read_edit_log(self.run_dir)

    # -- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Copy the run folder to ``path`` (a new or empty folder, or the run folder itself) with
        this tagger's settings as ``config.yaml``; :meth:`load` reads it back."""
        dest = Path(path)
        self._need("vocabulary.json")
        same = dest.exists() and dest.resolve() == self.run_dir.resolve()
        if not same:
            if dest.exists() and any(dest.iterdir()):
                raise FileExistsError(f"{dest} is not empty; save into a new or empty folder")
            with self._lock("save"):
                shutil.copytree(self.run_dir, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns(*_NOT_SAVED, "*.tmp"))
        from agentictagger.runstate import atomic_write_text

        atomic_write_text(dest / "config.yaml", self.config.model_copy(update={"run_dir": str(dest)}).dump_yaml())
        return dest

    @classmethod
    def load(cls, path: str | Path, **roles: Any) -> "AgenticTagger":
        """A tagger over the run folder ``path`` (its ``config.yaml``, with ``run_dir`` = ``path``);
        ``roles`` as for the constructor."""
        run = Path(path)
        cfg_path = run / "config.yaml"
        if not cfg_path.exists():
            raise NotFittedError(f"{cfg_path} is missing: {run} is not a run folder saved by AgenticTagger.save or built by agentictagger build")
        tagger = cls(cfg_path, run_dir=run, **roles)
        tagger._need("vocabulary.json")
        return tagger


def _config(config: RunConfig | str | Path | None, overrides: list[str]) -> RunConfig:
    if isinstance(config, RunConfig):
        if not overrides:
            return config
        data = config.model_dump(mode="json")
        for item in overrides:
            apply_override(data, item)
        return RunConfig.model_validate(data)
    return RunConfig.load(config, overrides)


__all__ = ["AgenticTagger", "NotFittedError", "sample_catalog_path"]
