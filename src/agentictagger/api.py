"""`AgenticTagger`: the Python API over a run folder (build, assign, add items, report).

The CLI commands run the same functions (:mod:`agentictagger.run.stages`,
:func:`agentictagger.run.build.build_vocabulary`), under the same run lock."""

from __future__ import annotations

import logging
import shutil
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from agentictagger.errors import NotFittedError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.catalog import Catalog, Item
from agentictagger.config import RunConfig, apply_override
from agentictagger.run.folder import RUN_ITEMS, run_items, write_run_items  # noqa: F401 (fit keeps its items)

log = logging.getLogger(__name__)

#: Files of a run folder :meth:`AgenticTagger.save` leaves out: the lock, and temporary files.
_NOT_SAVED = ("run.lock", "run.lock.json")

#: The texts of the items a run was fitted on and given since (``item_id``, ``text``, and
#: ``title``/``label`` when known), so the explorer and edits find them without a catalog file.

#: Suffixes that make a string a catalog file rather than an item text.
_CATALOG_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".gz")


def sample_catalog_path() -> Path:
    """The shipped sample catalog: 304 Amazon Industrial & Scientific items (JSONL, ``item_id``,
    ``title``, ``brand``, ``description``, ``category``)."""
    return Path(str(resources.files("agentictagger") / "data" / "sample_catalog.jsonl"))


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
        from agentictagger.api import sample_catalog_path

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
        from agentictagger.embed import as_encoder

        self.embedder = as_encoder(embedder)
        self.architect = architect
        self.annotator = annotator
        self.assigner = assigner
        #: What the last :meth:`transform` did (a :class:`~agentictagger.run.stages.AddResult`).
        self.last_add: Any = None
        self._preflighted: set[str] = set()

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
        from agentictagger.run.folder import RunLock

        with RunLock(self.run_dir, command) as lock:
            for note in lock.notes:
                log.warning("%s", note)
            yield

    def _embedder(self) -> Any:
        if self.embedder is None:
            from agentictagger.embed import Embedder

            self.embedder = Embedder(self.config.embedding, cache_dir=self.config.cache_dir)
        return self.embedder

    def as_catalog(
        self,
        items: Any,
        *,
        ids: Iterable[Any] | None = None,
        id_column: str | None = None,
        text_column: str | None = None,
        template: str | None = None,
    ) -> Catalog:
        """A :class:`Catalog` from any of: a Catalog; a catalog file path (or ``"shared:<name>"``);
        a list (or pandas Series) of item texts; a pandas DataFrame; dicts; ``Item`` objects; one
        item text. Rows are read with ``config.catalog`` (id field, text template), changed by
        ``id_column`` (the id field), ``text_column`` (the text is that column) or ``template``
        (a text template such as ``'{title}. {description}'``). Texts, and rows without the id
        column, get ``ids`` when given, else an id made from their content (the same text always
        gets the same id)."""
        if isinstance(items, Catalog):
            return items
        cfg = self.config.catalog
        if id_column is not None or text_column is not None or template is not None:
            if text_column is not None and template is not None:
                raise ValueError("give text_column= or template=, not both")
            update: dict[str, Any] = {}
            if id_column is not None:
                update["id_field"] = id_column
            if text_column is not None:
                update["text_template"] = "{" + text_column + "}"
            if template is not None:
                update["text_template"] = template
            cfg = cfg.model_copy(update=update)
        if isinstance(items, Path) or (isinstance(items, str) and _looks_like_file(items)):
            return Catalog.load(items, cfg)
        if isinstance(items, str):
            items = [items]
        id_list = None if ids is None else [str(i) for i in ids]
        if _is_dataframe(items):
            if items.columns.duplicated().any():
                raise ValueError("the DataFrame has repeated column names; rename them first")
            rows = items.astype(object).where(items.notna(), None).to_dict("records")
            return self._from_rows(rows, cfg, id_list, "<DataFrame>")
        if _is_series(items):
            items = items.tolist()
        rows = list(items)
        if rows and all(isinstance(r, Item) for r in rows):
            return Catalog(rows, cfg)
        if all(isinstance(r, str) for r in rows):
            texts_cfg = cfg.model_copy(update={"id_field": "item_id", "text_template": "{text}", "label_field": None})
            ids_ = id_list if id_list is not None else [_content_id(t) for t in rows]
            _check_ids(ids_, len(rows))
            return Catalog.from_records([{"item_id": i, "text": t} for i, t in zip(ids_, rows)], texts_cfg, source="<texts>")
        if all(isinstance(r, Mapping) for r in rows):
            return self._from_rows([dict(r) for r in rows], cfg, id_list, "<records>")
        kinds = sorted({type(r).__name__ for r in rows})
        raise TypeError(
            f"items must be a Catalog, a catalog file, item texts, a pandas DataFrame, dicts or Item objects (got {', '.join(kinds)})"
        )

    @staticmethod
    def _from_rows(rows: list[dict], cfg: Any, ids: list[str] | None, source: str) -> Catalog:
        if ids is not None:
            _check_ids(ids, len(rows))
            for r, i in zip(rows, ids):
                r[cfg.id_field] = i
        elif rows and not any(cfg.id_field in r for r in rows):
            import json

            for r in rows:
                r[cfg.id_field] = _content_id(json.dumps(r, sort_keys=True, ensure_ascii=False, default=str))
        return Catalog.from_records(rows, cfg, source=source)

    # -- the stages (every CLI command goes through these) -----------------------------------------
    def preflight(self, stage: str) -> None:
        """Before any catalog or embedding work: the API keys the stage's LLM roles need are set,
        the run and cache folders are writable. Checked once per stage for this tagger."""
        from agentictagger.run import stages

        if stage not in self._preflighted:
            stages.preflight(self.config, stage)
            self._preflighted.add(stage)

    def build(self, catalog: Any, *, restart: bool = False, progress: Any = None) -> Any:
        """Build the vocabulary from ``catalog`` (``agentictagger build``: resumable, run-locked);
        returns the :class:`~agentictagger.vocab.builder.BuildResult`."""
        from agentictagger.run import stages
        from agentictagger.run.build import build_vocabulary

        cat = self.as_catalog(catalog)
        with self._lock("build"):
            self.preflight("build")
            stages.check_disk_space(self.config, cat)
            return build_vocabulary(
                cat, self.config, embedder=self._embedder(), progress=progress, restart=restart,
                architect=self.architect, annotator=self.annotator,
            )

    def assign(self, catalog: Any, *, restart: bool = False, progress: Any = None) -> Any:
        """Assign every item of ``catalog`` and write the semantic-ID table (``agentictagger
        assign``: resumable, run-locked); returns the :class:`~agentictagger.assign.Assignment`."""
        from agentictagger.run import stages

        cat = self.as_catalog(catalog)
        with self._lock("assign"):
            self.preflight("assign")
            stages.check_vocabulary(self.run_dir)  # a missing, empty or unfinished vocabulary: before any work
            stages.check_disk_space(self.config, cat)
            return stages.assign(self.config, cat, progress=progress, restart=restart, embedder=self._embedder(), assigner=self.assigner)

    def add(self, items: Any, *, progress: Any = None) -> Any:
        """Tag ``items`` into the fitted vocabulary (``agentictagger assign --add``); returns the
        :class:`~agentictagger.run.stages.AddResult` (added rows, skipped ids, the whole table)."""
        from agentictagger.run import stages

        cat = self.as_catalog(items)
        with self._lock("add"):
            self.preflight("assign")
            result = stages.add_items(self.config, cat, progress=progress, embedder=self._embedder(), assigner=self.assigner)
            if len(result) and (self.run_dir / RUN_ITEMS).exists():
                write_run_items(self.run_dir, cat.subset([r.item_id for r in result.added]), append=True)
        self.last_add = result
        return result

    def uses_shards(self) -> bool:
        """Whether ``assign`` goes through shards for this config's catalog (a folder of shards, a
        file over ``scale.shard_size`` items, ``scale.sharded: always`` or the Ray executor)."""
        from agentictagger.run.shards import use_shards

        return use_shards(self.config, self.config.catalog.path)

    def check_vocabulary(self) -> Any:
        """The run's vocabulary, or a one-line :class:`~agentictagger.errors.RunError` when it is
        missing, empty or its build is unfinished (before any assignment work)."""
        from agentictagger.run import stages

        return stages.check_vocabulary(self.run_dir)

    def assign_sharded(self, source: Any = None, *, restart: bool = False, progress: Any = None) -> Any:
        """Assign a large catalog through shards (``agentictagger assign`` for a folder of shards,
        a big file, or ``scale.executor: ray``): streamed, resumed by shard, on this machine or Ray.
        ``source``: a catalog path or folder (default ``catalog.path``), or a catalog. Returns the
        :class:`~agentictagger.run.shards.ShardedRun`."""
        from agentictagger.errors import RunError
        from agentictagger.run import stages
        from agentictagger.run.shards import assign_sharded

        source = source if source is not None else self.config.catalog.path
        if not source:
            raise RunError("no catalog: set catalog.path in the config or pass --catalog FILE")
        with self._lock("assign"):
            self.preflight("assign")
            stages.check_vocabulary(self.run_dir)
            return assign_sharded(self.config, source, restart=restart, progress=progress,
                                  embedder=self.embedder, assigner=self.assigner)

    def report(self, catalog: Any = None) -> dict:
        """Compute the diagnostics of the run (``agentictagger report``) and write
        ``diagnostics.json``; with a labelled ``catalog``, NMI and purity against its labels."""
        from agentictagger.run import stages

        return stages.report(self.config, self.as_catalog(catalog) if catalog is not None else None)

    def explore(self, out: str | Path | None = None, *, catalog: Any = None, catalog_path: str | Path | None = None,
                compare: str | Path | None = None, plotly_js: str = "inline", warn: Any = None) -> Path:
        """Write the run's HTML explorer (``agentictagger explore``; default ``RUN_DIR/explorer.html``)
        and return its path. See :func:`agentictagger.run.explorer.write_explorer`."""
        from agentictagger.run.explorer import write_explorer
        from agentictagger.run.folder import settle_commit

        settle_commit(self.run_dir)  # an edit committed by a killed run: finished before it is shown
        return write_explorer(self.run_dir, out, catalog=catalog, catalog_path=catalog_path, compare=compare,
                              plotly_js=plotly_js, warn=warn)

    def estimate(self, items: int | None = None, *, measured: str | Path | None = None, model: str | None = None,
                 **options: Any) -> dict:
        """Time and dollars of building the vocabulary and assigning ``items`` (default: the items
        of ``catalog.path``) on ``options['workers']`` workers (``agentictagger estimate``): a dict
        with the ``build`` and ``assign`` rows and ``warnings``. ``options``: ``workers``,
        ``price_in``, ``price_out``, ``prefix_caching``, ``cached_price_factor``, ``batch``, ``rpm``,
        ``latency_s`` (see :mod:`agentictagger.run.estimate`)."""
        from agentictagger.run.estimate import build_estimate, count_items, estimate_table, estimate_warnings, load_measured

        n = items if items is not None or not self.config.catalog.path else count_items(self.config)
        meas = load_measured(measured)
        return {
            "items": n,
            "assign": estimate_table(self.config, meas, n, model=model, **options),
            "build": build_estimate(self.config, meas, n, **options),
            "warnings": estimate_warnings(self.config, model, options.get("price_in"), options.get("price_out")),
        }

    # -- sklearn-style ----------------------------------------------------------------------------
    def fit(self, catalog: Any, *, restart: bool = False, progress: Any = None, **read: Any) -> "AgenticTagger":
        """Build the vocabulary from ``catalog`` and assign every item (``agentictagger build``
        then ``assign`` then ``report``, resumable the same way); returns ``self``. ``catalog``
        is anything :meth:`as_catalog` reads (``read``: ``ids``, ``id_column``, ``text_column``,
        ``template``). The items' texts are kept in the run folder (``items.jsonl``), so the
        explorer and edits show and find them without a catalog file."""
        from agentictagger.run import stages

        cat = self.as_catalog(catalog, **read)
        with self._lock("fit"):
            self.preflight("assign")
            self.build(cat, restart=restart, progress=progress)
            self.assign(cat, restart=restart)
            write_run_items(self.run_dir, cat)
            stages.report(self.config, cat)
        return self

    def transform(self, items: Any, *, progress: Any = None, **read: Any) -> Any:
        """Tag ``items`` into the fitted vocabulary and append them to the semantic-ID table
        (``agentictagger assign --add``): existing items keep their IDs, new items on a path in
        use get the next resolvers. Returns the rows of ``items`` as a DataFrame (items already
        in the table, skipped and logged, with the ID they have). ``items`` and ``read`` as for
        :meth:`fit`. To tag without writing anything, use :meth:`predict`."""

        cat = self.as_catalog(items, **read)
        self._need("semantic_ids.parquet")
        result = self.add(cat, progress=progress)
        if result.skipped:
            log.warning("%s", result.skipped_note())
        frame = result.table.to_frame()
        return frame[frame["item_id"].isin(set(cat.ids))].set_index("item_id").loc[cat.ids].reset_index()

    def predict(self, items: Any, *, progress: Any = None, **read: Any) -> Any:
        """The semantic IDs ``items`` would get, without writing anything: no file of the run
        folder changes (no lock, checkpoint, usage log or table write). Items already in the
        table come with the ID they have; the others with the path the run's assigner gives
        them and the resolver :meth:`transform` would give them now (the next free one on
        their path). Returns a DataFrame ``item_id, path, path_names, resolver``, in the order
        of ``items``; ``items`` and ``read`` as for :meth:`fit`."""
        from agentictagger.assign import assign_catalog
        from agentictagger.assign.driver import run_assigner
        from agentictagger.run.roles import llm_client_factory
        from agentictagger.structures.semantic_ids import SemanticIds

        cat = self.as_catalog(items, **read)
        vocab = self.vocabulary
        table = SemanticIds.read(self._need("semantic_ids.parquet"))
        known = set(table.to_frame()["item_id"])
        new = cat.subset([i for i in cat.ids if i not in known])
        if len(new):
            assigner = self.assigner or run_assigner(self.config.assign, self._embedder(), llm_client_factory(self.config))
            table = table.extend(assign_catalog(new, vocab, assigner, progress=progress), vocab)
        frame = table.to_frame()
        return frame[frame["item_id"].isin(set(cat.ids))].set_index("item_id").loc[cat.ids].reset_index()

    tag = predict

    def fit_transform(self, catalog: Any, **kw: Any) -> Any:
        """``fit(catalog)``, then the semantic IDs of its items (DataFrame)."""
        read = {k: kw.pop(k) for k in ("ids", "id_column", "text_column", "template") if k in kw}
        cat = self.as_catalog(catalog, **read)
        return self.fit(cat, **kw).semantic_ids

    # -- results ----------------------------------------------------------------------------------
    @property
    def vocabulary(self) -> Any:
        """The descriptor tree (:class:`~agentictagger.structures.vocabulary.Vocabulary`)."""
        from agentictagger.structures.vocabulary import Vocabulary

        return Vocabulary.load(self._need("vocabulary.json"))

    @property
    def assignments(self) -> Any:
        """Every item's descriptor path (:class:`~agentictagger.assign.Assignment`)."""
        from agentictagger.structures.assignment import Assignment

        return Assignment.load_jsonl(self._need("assignments.jsonl"))

    @property
    def semantic_ids(self) -> Any:
        """The semantic-ID table as a pandas DataFrame: ``item_id, path, path_names, resolver``."""
        from agentictagger.structures.semantic_ids import SemanticIds

        return SemanticIds.read(self._need("semantic_ids.parquet")).to_frame()

    @property
    def diagnostics(self) -> dict:
        """Coverage, utilization, collisions, depth (and NMI/purity when the fitted catalog had
        labels): ``diagnostics.json``, recomputed (without labels) when items were added since."""
        import json

        from agentictagger.run import stages

        path = self.run_dir / "diagnostics.json"
        if path.exists():
            diag = json.loads(path.read_text(encoding="utf-8"))
            if diag.get("items") == len(self.assignments):
                return diag
        self._need("assignments.jsonl")
        return json.loads(json.dumps(stages.report(self.config, None), default=str))

    # -- vocabulary edits ---------------------------------------------------------------------------
    def edit(self, op: str, *, catalog: Any = None, **args: Any) -> dict:
        """Apply one vocabulary edit to the run folder (run-locked) and return its edit-log record
        (also appended to ``edits.jsonl``): ``op`` is ``rename``/``move``/``merge``/``delete``,
        ``args`` as for :mod:`agentictagger.vocab.edits`. Only the items the edit touches change
        semantic ID; items it re-assigns are read from ``catalog`` (a Catalog, a file, or a list
        of them; default: the run's catalog) and placed by the run's assigner. An invalid edit
        raises :class:`~agentictagger.vocab.edits.EditError` and changes nothing."""
        from agentictagger.run.edit import edit_run

        self._need("semantic_ids.parquet")
        with self._lock("edit"):
            from agentictagger.run.stages import check_writable, preflight

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
        from agentictagger.run.folder import read_edit_log

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
        from agentictagger.files import atomic_write_text

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


def _looks_like_file(text: str) -> bool:
    """A string given as items names a catalog file (else it is one item's text)."""
    if text.startswith("shared:"):
        return True
    if "\n" in text or len(text) > 1024:
        return False
    try:
        exists = Path(text).exists()
    except OSError:  # not a possible path (too long a name)
        exists = False
    return exists or text.lower().rstrip().endswith(_CATALOG_SUFFIXES)


def _is_dataframe(obj: Any) -> bool:
    return type(obj).__name__ == "DataFrame" and hasattr(obj, "to_dict") and hasattr(obj, "columns")


def _is_series(obj: Any) -> bool:
    return type(obj).__name__ == "Series" and hasattr(obj, "tolist")


def _content_id(text: str) -> str:
    """A stable id for an item given without one: a digest of its content."""
    import hashlib

    return "t" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_ids(ids: list[str], n: int) -> None:
    if len(ids) != n:
        raise ValueError(f"ids= has {len(ids)} value(s) for {n} item(s)")


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
