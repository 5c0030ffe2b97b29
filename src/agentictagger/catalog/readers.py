"""The item catalog: load, validate and render items to the one text every agent reads.

A catalog is a list of :class:`Item` in file order, each with a unique string id and a rendered
text. Loading validates every row before anything is returned: all problems (duplicate ids,
blank ids, empty text, bad bytes, bad JSON, missing template fields...) are collected and raised
together as one :class:`CatalogError`, so a user fixes a file in one pass and never works with a
half-loaded catalog.

Readers here know formats only (JSONL, CSV/TSV, Parquet, gzipped text); the shared datasets and
their fields are :mod:`agentictagger.catalog.datasets`, reached by name (``"shared:<name>"``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import random
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from agentictagger.errors import CatalogError  # noqa: F401 (defined in errors.py, with every cross-layer error)
from agentictagger.config import CatalogConfig

log = logging.getLogger(__name__)

#: At most this many problems are spelled out in one CatalogError; the rest are counted.
MAX_LISTED_PROBLEMS = 50

#: Named datasets ``Catalog.load("shared:<name>")`` reads: name -> loader. Filled by
#: :mod:`agentictagger.catalog.datasets` (imported with the package), so the readers never import
#: the dataset loaders.
DATASET_LOADERS: dict[str, Any] = {}


@dataclass(frozen=True)
class Item:
    item_id: str
    text: str  # the rendered text every agent reads
    label: str | None = None  # optional ground-truth category, for diagnostics only
    # Raw fields as read; excluded from hashing so items stay usable as dict keys / set members.
    fields: Mapping[str, Any] = field(default_factory=dict, hash=False)


# ---------------------------------------------------------------------------------------------
# Row validation and rendering
# ---------------------------------------------------------------------------------------------


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float) and math.isnan(v):
        return True
    return isinstance(v, str) and not v.strip()


def _id_to_str(v: Any) -> str | None:
    """Ids are always strings; integral floats (a Parquet/pandas artefact) lose their '.0'."""
    if isinstance(v, bool):
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, float):
        return repr(v)
    return None


def _template_fields(template: str) -> list[str]:
    """Top-level field names a str.format template uses; positional fields are a config error."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise CatalogError(f"catalog.text_template {template!r} is not a valid format string: {e}") from e
    for _, name, _, _ in parsed:
        if name is None:
            continue
        root = re.split(r"[.\[|]", name, maxsplit=1)[0]
        if root == "" or root.isdigit():
            raise CatalogError(
                f"catalog.text_template {template!r} uses a positional field '{{{name}}}'; "
                "name the row field instead, e.g. '{title}'."
            )
        if root not in names:
            names.append(root)
    return names


def _required_fields(template: str) -> list[str]:
    """Root names of the fields used without a default (each row must have them)."""
    out: list[str] = []
    for _, name, _, _ in string.Formatter().parse(template):
        if name and "|" not in name:
            root = re.split(r"[.\[]", name, maxsplit=1)[0]
            if root not in out:
                out.append(root)
    return out


def _optional_fields(template: str) -> set[str]:
    """Root names of the fields written ``{name|default}`` (optional; missing -> the default)."""
    out = set()
    for _, name, _, _ in string.Formatter().parse(template):
        if name and "|" in name:
            out.add(re.split(r"[.\[|]", name, maxsplit=1)[0])
    return out


class _TemplateFormatter(string.Formatter):
    """str.format, plus optional fields: ``{brand|}`` / ``{brand|n/a}`` render the text after '|'
    when the field is missing, null or blank (the default cannot hold ':', '!', '{' or '}')."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        name, sep, default = field_name.partition("|")
        if not sep:
            return super().get_field(field_name, args, kwargs)
        try:
            obj, _ = super().get_field(name, args, kwargs)
        except (KeyError, IndexError, AttributeError, TypeError):
            return default, name
        return (default if _is_missing(obj) else obj), name


_FORMATTER = _TemplateFormatter()

#: Columns that usually hold ground-truth classes; the default item text (no text_template) leaves
#: them out, as it does catalog.label_field. Name them in a text_template to use them.
LABEL_LIKE_COLUMNS = frozenset({"label", "labels", "category", "categories", "class", "gold", "ground_truth"})


def _label_like(column: str) -> bool:
    c = column.strip().lower()
    return c in LABEL_LIKE_COLUMNS or c.endswith(("_label", "_category", "_categories", "_class"))


def _text_like(value: Any) -> bool:
    """A string with letters in it that is not a bare URL."""
    if not isinstance(value, str) or not any(ch.isalpha() for ch in value):
        return False
    v = value.strip()
    return not (v.startswith(("http://", "https://")) and " " not in v)


_SELECTOR_STEP = re.compile(r"\[(-?\d+)\]|\[([^\]]+)\]|\.([^.\[\]]+)")


def parse_selector(selector: str) -> tuple[str, list[int | str]]:
    """``'categories[0][1]'`` -> ``('categories', [0, 1])``; ``'meta.category'`` -> ``('meta', ['category'])``."""
    m = re.match(r"[^.\[\]]+", selector)
    if not m:
        raise CatalogError(f"catalog.label_field {selector!r} must start with a field name, e.g. 'categories[0][1]'")
    steps: list[int | str] = []
    pos = m.end()
    while pos < len(selector):
        s = _SELECTOR_STEP.match(selector, pos)
        if not s:
            raise CatalogError(
                f"catalog.label_field {selector!r}: cannot read {selector[pos:]!r}; write field[index] or "
                "field.key, e.g. 'categories[0][1]' or 'meta.category'"
            )
        steps.append(int(s.group(1)) if s.group(1) is not None else (s.group(2) or s.group(3)))
        pos = s.end()
    return m.group(0), steps


def select_value(row: Mapping[str, Any], selector: str) -> Any:
    """The value ``selector`` names inside ``row`` (a column named exactly ``selector`` wins), or None."""
    if selector in row:
        return row[selector]
    root, steps = parse_selector(selector)
    value: Any = row.get(root)
    for step in steps:
        if isinstance(step, int) and isinstance(value, (list, tuple)) and -len(value) <= step < len(value):
            value = value[step]
        elif isinstance(step, str) and isinstance(value, Mapping):
            value = value.get(step)
        else:
            return None
    return value


def truncate_text(text: str, max_chars: int, ellipsis: str = "…") -> str:
    """Cut ``text`` to at most ``max_chars`` characters at a sentence or word boundary."""
    if len(text) <= max_chars:
        return text
    room = max(1, max_chars - len(ellipsis))
    cut = text[:room]
    # Prefer the end of a sentence, then a word boundary, as long as little is thrown away.
    sentence_end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "))
    if sentence_end >= room * 0.6:
        return cut[: sentence_end + 1]
    space = cut.rfind(" ")
    if space >= room * 0.8:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + ellipsis


class RowReader:
    """Validates rows one at a time, collecting every problem instead of stopping at the first."""

    def __init__(self, cfg: CatalogConfig, source: str, unit: str) -> None:
        self.cfg = cfg
        self.source = source
        self.unit = unit  # "line", "row" or "record": how positions are named in messages
        self.problems: list[str] = []
        self.items: list[Item] = []
        self.first_seen: dict[str, int] = {}
        self.truncated: list[tuple[str, int]] = []
        self.keys_seen: Counter[str] = Counter()
        self.rows = 0
        self.template = cfg.text_template or None
        self.template_fields = _template_fields(self.template) if self.template else []
        self.optional_fields = _optional_fields(self.template) if self.template else set()
        self.required_fields = _required_fields(self.template) if self.template else []
        self.label_root = parse_selector(cfg.label_field)[0] if cfg.label_field else None
        self.nested_labels = 0  # rows whose label value is a list or mapping (a selector is missing)
        self.skipped: list[str] = []  # problems of rows skipped under catalog.skip_bad_rows
        self.default_columns: Counter[str] = Counter()  # columns the default text was made of
        self.by_kind: dict[str, list[int]] = {}  # problem text (without its position) -> positions
        self.kind_at: dict[int, str] = {}  # index in problems -> its key in by_kind
        self.id_values: dict[str, set[str] | None] = {}  # id-like column -> its values (None: not unique)
        if self.label_root and self.label_root in self.template_fields:
            raise CatalogError(
                f"catalog.text_template uses the label field '{cfg.label_field}': the ground-truth "
                "label must never be part of the item text. Remove it from the template or unset "
                "catalog.label_field."
            )
        bad = [f for f in self.template_fields if f in set(cfg.exclude_fields)]
        if bad:
            raise CatalogError(
                f"catalog.text_template uses excluded field(s) {bad}; remove them from the template "
                "or from catalog.exclude_fields."
            )

    def problem(self, pos: int, item_id: str | None, what: str) -> None:
        where = f"{self.unit} {pos}"
        if item_id is not None:
            where += f" (id {item_id!r})"
        self.problems.append(f"{where}: {what}")
        if item_id is None:  # a problem with an item id names that item: never merged with others
            self.by_kind.setdefault(what, []).append(pos)
            self.kind_at[len(self.problems) - 1] = what

    def _track_id_columns(self, row: Mapping[str, Any]) -> None:
        """Values of the columns that could hold ids, to name the likely one when the id field is missing."""
        for k, v in row.items():
            if k == self.cfg.id_field or not _ID_LIKE.search(str(k)):
                continue
            seen = self.id_values.setdefault(k, set())
            if seen is None:
                continue
            key = None if _is_missing(v) else _id_to_str(v)
            if key is None or key in seen:
                self.id_values[k] = None
            else:
                seen.add(key)

    def likely_id_columns(self) -> list[str]:
        """Id-like columns (id, sku, asin, ...) that hold a unique value in every row."""
        return [k for k, v in self.id_values.items() if v is not None and len(v) == self.rows]

    def listed_problems(self) -> list[str]:
        """The problems, one line per kind: the same problem on many rows is one line naming them."""
        out, done = [], set()
        for i, text in enumerate(self.problems):
            what = self.kind_at.get(i)
            if what is None:
                out.append(text)
            elif what not in done:
                done.add(what)
                positions = self.by_kind[what]
                out.append(text if len(positions) == 1 else f"{self.unit}s {_ranges(positions)} ({len(positions)} {self.unit}s): {what}")
        return out

    def add(self, pos: int, row: Any) -> None:
        self.rows += 1
        cfg = self.cfg
        if not isinstance(row, Mapping):
            self.problem(pos, None, f"is a JSON {type(row).__name__}, not an object; write one object per line")
            return
        self.keys_seen.update(row.keys())
        self._track_id_columns(row)
        raw_id = row.get(cfg.id_field)
        item_id = None if _is_missing(raw_id) else _id_to_str(raw_id)
        if _is_missing(raw_id):
            self.problem(pos, None, f"missing or blank id field '{cfg.id_field}'; give every item a unique id")
        elif item_id is None:
            self.problem(
                pos, None, f"id field '{cfg.id_field}' holds a {type(raw_id).__name__}; ids must be strings or integers"
            )
        elif item_id in self.first_seen:
            self.problem(
                pos,
                item_id,
                f"duplicate id, first seen on {self.unit} {self.first_seen[item_id]}; "
                "give each item a unique id or remove the repeated row",
            )
        else:
            self.first_seen[item_id] = pos

        text = self._render(pos, item_id, row)
        if text is None:
            return
        if not any(ch.isalnum() for ch in text):
            self.problem(
                pos,
                item_id,
                ("rendered item text is empty" if not text else f"rendered item text {text[:40]!r} has no letters or digits")
                + "; fill its text fields"
                + (" or change catalog.text_template" if self.template else ""),
            )
            return
        if len(text) > cfg.max_text_chars:
            self.truncated.append((item_id or "?", len(text)))
            text = truncate_text(text, cfg.max_text_chars)

        label = None
        if cfg.label_field:
            lv = select_value(row, cfg.label_field)
            if isinstance(lv, (list, tuple, Mapping)):
                self.nested_labels += 1
            label = None if _is_missing(lv) else str(lv)
        if item_id is not None and self.first_seen.get(item_id) == pos:
            self.items.append(Item(item_id=item_id, text=text, label=label, fields=dict(row)))

    def _render(self, pos: int, item_id: str | None, row: Mapping[str, Any]) -> str | None:
        if self.template:
            missing = [f for f in self.required_fields if _is_missing_field(row, f)]
            if missing:
                self.problem(
                    pos,
                    item_id,
                    f"text_template field(s) {missing} missing or null; add them to the row or change "
                    "catalog.text_template (an optional field with a default: '{" + missing[0] + "|}')",
                )
                return None
            try:
                return _FORMATTER.vformat(self.template, (), row).strip()
            except (KeyError, IndexError, AttributeError, ValueError, TypeError) as e:
                self.problem(pos, item_id, f"text_template cannot render this row ({type(e).__name__}: {e})")
                return None
        # No template: the values of the text-like columns, one per line, without the column names
        # (names would become the most frequent words of every item); never the id, the excluded
        # fields, the label field or a label-like column.
        skip = {self.cfg.id_field, *self.cfg.exclude_fields}
        if self.label_root:
            skip.add(self.label_root)
        cols = [k for k, v in row.items() if k not in skip and not _label_like(str(k)) and _text_like(v)]
        self.default_columns.update(cols)
        return "\n".join(row[k].strip() for k in cols)

    def finish(self) -> list[Item]:
        cfg = self.cfg
        if self.rows == 0:
            self.problems.append(f"{self.source} holds no items; a catalog needs at least one row")
        if self.problems and self.cfg.skip_bad_rows and self.items:
            self.skipped, self.problems = self.problems, []
            listed = "; ".join(self.skipped[:5]) + (f"; ... {len(self.skipped) - 5} more" if len(self.skipped) > 5 else "")
            log.warning(
                "catalog %s: skipped %d bad row(s) of %d (catalog.skip_bad_rows / --skip-bad-rows): %s",
                self.source, len(self.skipped), self.rows, listed,
            )
        if self.problems:
            # The diagnosis first (a wrong id field or template explains every row), then the
            # problems, the same problem on many rows as one line.
            hints: list[str] = []
            if self.rows and cfg.id_field not in self.keys_seen:
                fields = ", ".join(sorted(self.keys_seen)[:20]) or "none"
                likely = self.likely_id_columns()
                suggest = (
                    f"; the likely id column is '{likely[0]}' (a unique value in every row): pass --id-field {likely[0]} "
                    f"or set catalog.id_field={likely[0]}"
                    if likely else "; set catalog.id_field (--id-field) to the column holding a unique item id"
                )
                hints.append(f"No row has the id field '{cfg.id_field}' (fields seen: {fields}){suggest}.")
            missing_tpl = [f for f in self.required_fields if f not in self.keys_seen]
            if self.rows and missing_tpl:
                hints.append(f"No row has template field(s) {missing_tpl}; check catalog.text_template (--text-template).")
            listed = self.listed_problems()
            shown = listed[:MAX_LISTED_PROBLEMS]
            rest = len(listed) - len(shown)
            msg = [
                (hints[0] + " " if hints else "")
                + f"catalog {self.source}: {len(self.problems)} problem(s) in {self.rows} row(s); "
                "nothing was loaded." + ("" if hints else " Fix these rows and load again:")
            ]
            msg += hints[1:]
            msg += ["  " + p for p in shown]
            if rest:
                msg.append(f"  ... and {rest} more problem(s) not listed")
            raise CatalogError("\n".join(msg), self.problems)
        if self.truncated:
            longest = max(n for _, n in self.truncated)
            examples = ", ".join(repr(i) for i, _ in self.truncated[:3])
            log.warning(
                "catalog %s: %d of %d item texts were longer than %d characters and were truncated "
                "(longest %d; e.g. %s); raise catalog.max_text_chars to keep more.",
                self.source,
                len(self.truncated),
                len(self.items),
                cfg.max_text_chars,
                longest,
                examples,
            )
        if self.label_root and self.label_root not in self.keys_seen:
            log.warning("catalog %s: no row has the label field '%s'; labels are all empty", self.source, self.label_root)
        if self.nested_labels:
            log.warning(
                "catalog %s: catalog.label_field '%s' holds lists or objects in %d row(s); select one value inside "
                "them, e.g. '%s[0][1]' (level 2 of the first path)",
                self.source, cfg.label_field, self.nested_labels, cfg.label_field,
            )
        if self.default_columns:
            log.info(
                "catalog %s: no text_template; item text = the values of %s (set catalog.text_template to choose)",
                self.source, ", ".join(sorted(self.default_columns)),
            )
        return self.items


#: Column names that may hold item ids (for the suggestion when the id field is missing).
_ID_LIKE = re.compile(r"(^|[_\W])(id|ids|sku|asin|key|code|uuid|guid|ean|upc|isbn|gtin|pid)($|[_\W])|id$", re.I)


def _ranges(positions: list[int], limit: int = 8) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``"1-3, 7, 9-10"`` (the first ``limit`` runs, then "...")."""
    runs: list[list[int]] = []
    for p in sorted(positions):
        if runs and p == runs[-1][1] + 1:
            runs[-1][1] = p
        else:
            runs.append([p, p])
    text = ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in runs[:limit])
    return text + (", ..." if len(runs) > limit else "")


def _is_missing_field(row: Mapping[str, Any], name: str) -> bool:
    return name not in row or row[name] is None or (isinstance(row[name], float) and math.isnan(row[name]))


# ---------------------------------------------------------------------------------------------
# File readers: each yields (position, row) and reports its own format problems to the builder.
# ---------------------------------------------------------------------------------------------

_BOM = b"\xef\xbb\xbf"


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix.lower() == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise CatalogError(f"catalog {path}: not a readable gzip file ({e}); re-compress it or drop '.gz'") from e
    return data[len(_BOM):] if data.startswith(_BOM) else data


def _undecodable(b: RowReader, pos: int, err: UnicodeDecodeError) -> None:
    b.problem(
        pos,
        None,
        f"bytes {err.object[err.start:err.end]!r} at column {err.start + 1} are not UTF-8; "
        "re-save the file as UTF-8",
    )


def _feed_jsonl(b: RowReader, data: bytes) -> None:
    feed_jsonl_lines(b, enumerate(data.split(b"\n"), start=1))


def feed_jsonl_lines(b: RowReader, lines: Iterable[tuple[int, bytes]]) -> None:
    """Rows of JSONL lines given as (line number, bytes); read in pieces by :mod:`agentictagger.run.shards`."""
    for pos, raw in lines:
        if not raw.strip():
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            b.rows += 1
            _undecodable(b, pos, e)
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            b.rows += 1
            b.problem(pos, None, f"malformed JSON ({e.msg} at column {e.colno}); fix or remove this line")
            continue
        b.add(pos, row)


def _feed_csv(b: RowReader, data: bytes, delimiter: str) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        # Name every bad line, not only the first, before giving up on the file.
        for pos, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                b.rows += 1
                _undecodable(b, pos, e)
        return
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise CatalogError(f"catalog {b.source}: unreadable CSV header ({e})") from e
    header = [h.strip() for h in header]
    dupes = [h for h, n in Counter(header).items() if n > 1]
    if dupes:
        raise CatalogError(f"catalog {b.source}: the header repeats column(s) {dupes}; rename them")
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            b.rows += 1
            b.problem(start, None, f"unreadable CSV ({e}); fix the quoting on this line")
            start = reader.line_num + 1
            continue
        pos, start = start, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            b.rows += 1
            b.problem(
                pos, None, f"has {len(cells)} columns but the header has {len(header)}; fix delimiters/quoting"
            )
            continue
        # CSV cannot tell an empty string from a missing value; an empty cell is kept as "" (as
        # JSON "" would be), so optional template fields may be blank. Blank ids are still errors.
        b.add(pos, dict(zip(header, cells)))


def _feed_parquet(b: RowReader, path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several unrelated types for corrupt files
        raise CatalogError(f"catalog {path}: not a readable Parquet file ({e})") from e
    for pos, row in enumerate(rows, start=1):
        b.add(pos, {k: v for k, v in row.items() if v is not None})


def format_of(path: Path) -> str:
    name = path.name.lower()
    for suffix, fmt in (
        (".jsonl.gz", "jsonl"),
        (".ndjson.gz", "jsonl"),
        (".jsonl", "jsonl"),
        (".ndjson", "jsonl"),
        (".csv.gz", "csv"),
        (".csv", "csv"),
        (".tsv.gz", "tsv"),
        (".tsv", "tsv"),
        (".parquet", "parquet"),
        (".pq", "parquet"),
    ):
        if name.endswith(suffix):
            return fmt
    raise CatalogError(
        f"catalog {path}: unknown file type; use .jsonl, .csv, .tsv or .parquet (optionally .gz for text formats)"
    )


# ---------------------------------------------------------------------------------------------
# Catalog
# ---------------------------------------------------------------------------------------------


class Catalog:
    """Items in a fixed order (file order), with unique string ids."""

    def __init__(self, items: Iterable[Item], config: CatalogConfig | None = None, source: str = "<items>") -> None:
        self.items: list[Item] = list(items)
        self.config = config or CatalogConfig()
        self.source = source
        self.skipped_rows: list[str] = []  # problems of rows left out under catalog.skip_bad_rows
        self._index: dict[str, int] = {}
        dupes = []
        for i, it in enumerate(self.items):
            if it.item_id in self._index:
                dupes.append(f"item {i}: duplicate id {it.item_id!r} (first at item {self._index[it.item_id]})")
            self._index.setdefault(it.item_id, i)
        if dupes:
            raise CatalogError(f"catalog {source}: duplicate item ids\n  " + "\n  ".join(dupes[:MAX_LISTED_PROBLEMS]), dupes)

    # -- container protocol ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __getitem__(self, i: int) -> Item:
        return self.items[i]

    def __repr__(self) -> str:
        return f"Catalog({len(self)} items from {self.source})"

    @property
    def ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    @property
    def texts(self) -> list[str]:
        return [it.text for it in self.items]

    @property
    def labels(self) -> list[str | None]:
        return [it.label for it in self.items]

    def index_of(self, item_id: str) -> int:
        try:
            return self._index[item_id]
        except KeyError:
            raise KeyError(f"item id {item_id!r} is not in catalog {self.source} ({len(self)} items)") from None

    def by_id(self, item_id: str) -> Item:
        return self.items[self.index_of(item_id)]

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def subset(self, item_ids_or_indices: Iterable[str | int]) -> "Catalog":
        """A catalog of the given items, in the given order (ids are strings, indices ints)."""
        picked: list[Item] = []
        for key in item_ids_or_indices:
            if isinstance(key, str):
                picked.append(self.by_id(key))
            else:
                try:
                    idx = int(key)  # accepts numpy integers
                except (TypeError, ValueError):
                    raise TypeError(f"subset() takes item ids (str) or indices (int), got {key!r}") from None
                if not -len(self) <= idx < len(self):
                    raise IndexError(f"index {idx} is out of range for catalog {self.source} ({len(self)} items)")
                picked.append(self.items[idx])
        return Catalog(picked, self.config, source=f"{self.source}[subset]")

    def sample(self, n: int, seed: int = 0) -> "Catalog":
        """``n`` items drawn at random (reproducible by seed), kept in catalog order."""
        if n < 0:
            raise ValueError(f"sample size must be >= 0, got {n}")
        if n >= len(self):
            return self
        idx = sorted(random.Random(seed).sample(range(len(self)), n))
        return Catalog([self.items[i] for i in idx], self.config, source=f"{self.source}[sample {n}, seed {seed}]")

    def to_jsonl(self, path: str | Path) -> Path:
        """Write the items' raw fields, one object per line; ``Catalog.load(path, catalog.config)``
        reads the same catalog back. Written to a temporary file first so a crash leaves no torn file."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        id_field = self.config.id_field
        from agentictagger.files import atomic_file

        opener = gzip.open if path.name.endswith(".gz") else open
        with atomic_file(path) as tmp, opener(tmp, "wt", encoding="utf-8") as f:
            for it in self.items:
                row = dict(it.fields) if it.fields else {"text": it.text}
                row.setdefault(id_field, it.item_id)
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        return path

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, cfg: CatalogConfig | None = None) -> "Catalog":
        """Load and validate a JSONL / CSV / TSV / Parquet file (text formats may be gzipped).

        ``"shared:<name>"`` (e.g. ``"shared:scientific"``) names a shared dataset, read by its
        loader (:mod:`agentictagger.catalog.datasets`), which knows the dataset's fields. A file
        is read by its format alone, whatever its name.
        """
        cfg = cfg or CatalogConfig()
        if isinstance(path, str) and path.startswith("shared:"):
            name = path.split(":", 1)[1]
            if name not in DATASET_LOADERS:
                raise CatalogError(f"unknown shared dataset {name!r}; choose one of {', '.join(DATASET_LOADERS)}")
            return DATASET_LOADERS[name](name)
        path = Path(path)
        if not path.exists():
            raise CatalogError(f"catalog file {path} does not exist; check catalog.path")
        if path.is_dir():
            raise CatalogError(f"catalog {path} is a directory, not a file; give the catalog file inside it (catalog.path / --catalog)")
        fmt = format_of(path)
        b = RowReader(cfg, str(path), "row" if fmt == "parquet" else "line")
        if fmt == "parquet":
            _feed_parquet(b, path)
        else:
            data = _read_bytes(path)
            if fmt == "jsonl":
                _feed_jsonl(b, data)
            else:
                _feed_csv(b, data, "," if fmt == "csv" else "\t")
        cat = cls(b.finish(), cfg, source=str(path))
        cat.skipped_rows = b.skipped
        return cat

    @classmethod
    def from_records(
        cls, records: Iterable[Mapping[str, Any]], cfg: CatalogConfig | None = None, source: str = "<records>"
    ) -> "Catalog":
        """Build from in-memory rows, with the same validation as :meth:`load` (positions are 1-based)."""
        cfg = cfg or CatalogConfig()
        b = RowReader(cfg, source, "record")
        for pos, row in enumerate(records, start=1):
            b.add(pos, row)
        cat = cls(b.finish(), cfg, source=source)
        cat.skipped_rows = b.skipped
        return cat


# ---------------------------------------------------------------------------------------------
# The project's shared datasets
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# Interaction sequences
# ---------------------------------------------------------------------------------------------


def read_sequences(path: str | Path) -> list[tuple[str, list[str]]]:
    """Per-user item sequences from a TSV file (optionally gzipped), in file order: one user per
    line, the space-separated item ids (oldest first) in the last column and the user in the
    second of three or more columns (``user_idx, user_id, item_ids``), else in the first. A
    header line naming ``item_ids`` / ``item_idxs`` is skipped. A malformed line raises
    :class:`CatalogError` naming it."""
    path = Path(path)
    out: list[tuple[str, list[str]]] = []
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t"), start=1):
            if not row or not any(c.strip() for c in row):
                continue
            if lineno == 1 and ({"item_ids", "item_idxs"} & set(row)):
                continue  # header
            if len(row) < 2:
                raise CatalogError(f"{path}:{lineno}: expected a user and a space-separated item list separated "
                                   f"by a tab; got {row!r}")
            items = row[-1].split()
            if not items:
                raise CatalogError(f"{path}:{lineno}: user {row[0]} has an empty item sequence")
            out.append((row[1] if len(row) >= 3 else row[0], items))
    return out
