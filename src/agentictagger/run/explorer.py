"""The HTML explorer: one ``explorer.html`` per run folder.

It opens from disk, with no server and no network request: the data and, by default, the chart
library (plotly.js, from the installed ``plotly`` package, so its version is pinned by the
environment) are written into the file. With ``plotly_js="beside"`` the library is written once
as ``plotly-<version>.min.js`` next to the page and the page loads it from there (a few hundred
KB per page instead of ~4.8 MB; the two files travel together). The page shows the hierarchy as a
collapsible tree and as a treemap (or sunburst) sized by item count; each descriptor's definition,
item count, coverage and utilization figures, representative items (the K-medoids exemplars of
the build, else the first members), its full member list with their semantic-ID resolvers and a
CSV download of them; a search over descriptor names, ids and item texts (word forms: "tapes"
finds "tape") that lists the full path of every match and opens the tree at it; deep links
(``explorer.html#d3.1`` opens that descriptor; selecting one sets the address); a legend of the
figures; and the diagnostics tables of ``report``. Every name and text is shown as text, never
as markup. Given a second run folder (``compare``), it also shows what changed from that run to
this one (:mod:`agentictagger.run.compare`): descriptors added, removed, renamed or moved, item
counts, a sample of items whose path changed, both trees side by side, and a warning when the
two runs look unrelated (other items, other texts, or vocabularies with hardly a name in common).

Example::

    from agentictagger.run.explorer import write_explorer
    path = write_explorer("runs/demo")          # runs/demo/explorer.html
    write_explorer("runs/demo", "diff.html", compare="runs/demo-before")   # with "what changed"
    write_explorer("runs/demo", plotly_js="beside")   # + runs/demo/plotly-<version>.min.js
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Callable

from agentictagger.structures.vocabulary import ROOT_ID, Vocabulary

log = logging.getLogger(__name__)

#: Members listed per descriptor before "show all", exemplars shown, and characters kept of
#: each item text (search and display).
MEMBER_SAMPLE = 20
EXEMPLARS = 5
TEXT_CHARS = 160
#: Where the page gets plotly.js: written into it, or from one shared file next to it.
PLOTLY_JS_MODES = ("inline", "beside")


def _title(item: Any) -> str:
    """A short display text: the catalog row's title (or name) field, else the rendered text."""
    fields = getattr(item, "fields", None) or {}
    for key in ("title", "name"):
        v = fields.get(key)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return item.text


def _short(text: str, n: int = TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def catalog_for_run(run_dir: str | Path, catalog_path: str | Path | None = None) -> Any:
    """The catalog a run was built from: ``catalog_path`` if given, else the path in the run's
    ``config.yaml`` (read with its catalog settings) when that file still exists, else the items
    kept in the run folder by the Python API (``items.jsonl``); None otherwise."""
    from agentictagger.catalog import Catalog
    from agentictagger.config import RunConfig
    from agentictagger.run.folder import run_items

    run = Path(run_dir)
    cfg = RunConfig.load(run / "config.yaml") if (run / "config.yaml").exists() else RunConfig()
    path = catalog_path or cfg.catalog.path
    if not path:
        return run_items(run)  # the items an API run was fitted on, kept in the run folder
    candidates = [Path(path)] if catalog_path or Path(path).is_absolute() else [Path(path), run.parent / path]
    for p in candidates:
        if p.exists():
            return Catalog.load(p, cfg.catalog)
    if catalog_path:
        raise FileNotFoundError(f"catalog {catalog_path} not found")
    return run_items(run)


def explorer_data(
    vocab: Vocabulary,
    assignment: Any,
    diag: dict | None = None,
    catalog: Any = None,
    title: str = "agentictagger explorer",
    member_sample: int = MEMBER_SAMPLE,
    resolvers: dict[str, int] | None = None,
) -> dict:
    """Everything the page shows, as plain JSON: descriptors (with figures, exemplars and the
    first ``member_sample`` members), items (id, short text, path, and the semantic-ID resolver
    when ``resolvers`` is given; the page lists a descriptor's full membership from these) and
    the diagnostics tables."""
    from agentictagger.run.compare import subtree_counts
    from agentictagger.run.report import diagnostic_tables

    paths: dict[str, list[str]] = dict(assignment.paths)
    counts = subtree_counts(vocab, paths)
    n = len(paths)
    texts: dict[str, str] = {}
    if catalog is not None:
        for it in catalog:
            if it.item_id in paths:
                texts[it.item_id] = _short(_title(it))
    members: dict[str, list[str]] = {d.id: [] for d in vocab}
    ends_here: dict[str, int] = {d.id: 0 for d in vocab}
    for iid, path in paths.items():
        for did in path:
            if did in members and len(members[did]) < member_sample:
                members[did].append(iid)
        if path and path[-1] in ends_here:
            ends_here[path[-1]] += 1

    descriptors = []
    for d in vocab:
        kids = vocab.children(d.id)
        into_children = sum(counts[k.id] for k in kids)
        used_kids = sum(1 for k in kids if counts[k.id] > 0)
        shared_kids = sum(1 for k in kids if counts[k.id] > 1)
        exemplars = [i for i in d.exemplars if i in paths][:EXEMPLARS] or members[d.id][:EXEMPLARS]
        descriptors.append(
            {
                "id": d.id,
                "name": d.name,
                "definition": d.definition,
                "level": d.level,
                "parent": d.parent,
                "children": [k.id for k in kids],
                "count": counts[d.id],
                "build_count": d.item_count,
                "share": counts[d.id] / n if n else 0.0,
                "ends_here": ends_here[d.id],
                # Of this descriptor's items, the share that went on to one of its children.
                "coverage": (into_children / counts[d.id]) if kids and counts[d.id] else None,
                "children_used": used_kids,
                # Utilization as in the diagnostics: children used by more than one item.
                "utilization": (shared_kids / len(kids)) if kids else None,
                "exemplars_from": "exemplars" if any(i in paths for i in d.exemplars) else "first members",
                "exemplars": exemplars,
                "members": members[d.id],
                "named_by": d.named_by,
                "naming_problems": list(d.naming_problems),
            }
        )
    items = []
    for iid, path in paths.items():
        row: dict[str, Any] = {"id": iid, "text": texts.get(iid, ""), "path": path}
        if resolvers is not None and iid in resolvers:
            row["resolver"] = int(resolvers[iid])
        items.append(row)
    return {
        "title": title,
        "items_total": n,
        "has_texts": bool(texts),
        "roots": [d.id for d in vocab.children(ROOT_ID)],
        "descriptors": descriptors,
        "items": items,
        "diagnostics": diagnostic_tables(diag) if diag else [],
    }


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a <script> element and still valid JSON: every ``<``, ``>`` and
    ``&`` is written as a ``\\u`` escape, so no text can close the element or open a comment."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)
    return text


def plotly_js_version() -> str:
    """The version of the plotly.js bundle the installed ``plotly`` package embeds (not the
    Python package's own version)."""
    from plotly.offline import get_plotlyjs_version

    return get_plotlyjs_version()


def plotly_js_filename() -> str:
    """The shared file name used by ``plotly_js="beside"``: ``plotly-<bundle version>.min.js``."""
    return f"plotly-{plotly_js_version()}.min.js"


def render_html(data: dict, plotly_js: str = "inline") -> str:
    """The page. ``plotly_js="inline"``: plotly.js is in the page, so it needs nothing but the
    file; ``"beside"``: the page loads :func:`plotly_js_filename` from its own folder."""
    from plotly.offline import get_plotlyjs

    if plotly_js not in PLOTLY_JS_MODES:
        raise ValueError(f"plotly_js must be one of {', '.join(PLOTLY_JS_MODES)} (given: {plotly_js!r})")
    head, tail = _TEMPLATE.split("__PLOTLYJS__")
    subs = (("__TITLE__", html.escape(data["title"])), ("__PLOTLY_VERSION__", html.escape(plotly_js_version())),
            ("__PLOTLY_MODE__", "embedded" if plotly_js == "inline" else "from " + html.escape(plotly_js_filename())))
    for key, value in subs:
        head, tail = head.replace(key, value), tail.replace(key, value)
    # The data last, so no placeholder is looked for inside item texts; plotly.js is not scanned.
    head = head.replace("__DATA__", _script_json(data))
    if plotly_js == "inline":
        return head + "<script>" + get_plotlyjs() + "</script>" + tail
    return head + f'<script src="{html.escape(plotly_js_filename())}"></script>' + tail


def write_explorer(
    run_dir: str | Path,
    out: str | Path | None = None,
    catalog: Any = None,
    catalog_path: str | Path | None = None,
    compare: str | Path | None = None,
    plotly_js: str = "inline",
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Write ``explorer.html`` for a finished run folder (vocabulary.json and assignments.jsonl)
    and return its path. Item texts come from ``catalog`` (or ``catalog_path``, or the catalog
    named in the run's config.yaml); without one, items show by id. Diagnostics come from the
    run's diagnostics.json, else are computed here (not written). With ``compare`` (another run
    folder, taken as "before"), the page also shows what changed from it to this run; when the
    two look unrelated, each reason is passed to ``warn`` (default: logged as a warning) and
    shown on the page. ``plotly_js``: ``"inline"`` (one self-contained file) or ``"beside"``
    (the page plus one shared ``plotly-<version>.min.js`` in its folder). Files are written
    atomically: a failed write leaves the old file, or none, and no temporary file."""
    from agentictagger.structures.assignment import Assignment
    from agentictagger.run.report import compute_diagnostics, labels_from_catalog
    from agentictagger.files import atomic_write_text

    if plotly_js not in PLOTLY_JS_MODES:
        raise ValueError(f"plotly_js must be one of {', '.join(PLOTLY_JS_MODES)} (given: {plotly_js!r})")
    run = Path(run_dir)
    target = Path(out) if out else run / "explorer.html"
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder: give a file name for the page (e.g. {target / 'explorer.html'})")
    for name, hint in (("vocabulary.json", "build"), ("assignments.jsonl", "assign")):
        if not (run / name).exists():
            raise FileNotFoundError(f"{run / name} not found: run `agentictagger {hint}` for this run folder first")
    vocab = Vocabulary.load(run / "vocabulary.json")
    assignment = Assignment.load_jsonl(run / "assignments.jsonl")
    assignment.validate(vocab)
    if catalog is None:
        catalog = catalog_for_run(run, catalog_path)
    diag_path = run / "diagnostics.json"
    if diag_path.exists():
        diag = json.loads(diag_path.read_text(encoding="utf-8"))
    else:
        diag = compute_diagnostics(assignment, vocab, labels_from_catalog(catalog) if catalog is not None else None)
    data = explorer_data(vocab, assignment, diag, catalog, title=f"agentictagger explorer: {run.resolve().name}",
                         resolvers=_resolvers(run))
    data["compare"] = None
    if compare is not None:
        from agentictagger.run.compare import diff_runs

        data["compare"] = diff_runs(compare, run, texts={it["id"]: it["text"] for it in data["items"] if it["text"]},
                                    before_texts=_texts_of(compare))
        for reason in data["compare"]["relation"]["reasons"]:
            (warn or log.warning)(reason)
    page = render_html(data, plotly_js)
    if plotly_js == "beside":
        from plotly.offline import get_plotlyjs

        lib = target.parent / plotly_js_filename()
        js = get_plotlyjs()
        if not lib.exists() or lib.stat().st_size != len(js.encode("utf-8")) or lib.read_text(encoding="utf-8") != js:
            atomic_write_text(lib, js)
    atomic_write_text(target, page)
    return target


def _resolvers(run: Path) -> dict[str, int] | None:
    """item -> resolver from the run's semantic-ID table, when it has one."""
    path = run / "semantic_ids.parquet"
    if not path.exists():
        return None
    from agentictagger.structures.semantic_ids import SemanticIds

    try:
        return {r.item_id: int(r.resolver) for r in SemanticIds.read(path)}
    except Exception as exc:  # noqa: BLE001 - the page works without resolvers; say why they are missing
        log.warning("semantic IDs not shown: %s could not be read (%s)", path, exc)
        return None


def _texts_of(run_dir: str | Path) -> dict[str, str] | None:
    """Item texts of another run's catalog (as in :func:`catalog_for_run`), or None when it has
    none that can be read: used to tell runs over the same ids but different items apart."""
    try:
        cat = catalog_for_run(run_dir)
    except Exception as exc:  # noqa: BLE001 - the comparison still works on ids alone
        log.info("catalog of %s not read (%s): comparing by item ids only", run_dir, exc)
        return None
    return None if cat is None else {it.item_id: _short(_title(it)) for it in cat}


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
* { box-sizing: border-box; }
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; overflow-wrap: anywhere; }
header { padding: 10px 18px; background: #24323f; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .sub { font-size: 12px; opacity: .8; }
main { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1.2fr); gap: 14px; padding: 14px 18px; }
section { background: #fff; border: 1px solid #dde2e7; border-radius: 6px; padding: 10px 12px; min-width: 0; }
section h2 { font-size: 15px; margin: 0 0 8px; }
#search { width: 100%; padding: 6px 8px; font-size: 14px; border: 1px solid #b8c2cc; border-radius: 4px; }
#results { list-style: none; padding: 0; margin: 6px 0 0; max-height: 220px; overflow: auto; }
#results li { padding: 3px 4px; border-bottom: 1px solid #eef0f2; cursor: pointer; }
#results li:hover { background: #eef4fb; }
mark { background: #ffe58f; color: inherit; padding: 0; }
.kind { font-size: 11px; color: #fff; background: #6b7c8c; border-radius: 3px; padding: 0 4px; margin-right: 4px; }
.kind.desc { background: #2f6f9f; }
.path { color: #2a5a80; }
details.node { margin-left: 14px; }
#tree > details.node { margin-left: 0; }
details.node > summary { cursor: pointer; padding: 1px 0; }
details.node.hit > summary .name { background: #ffe58f; }
details.node.selected > summary { outline: 2px solid #2f6f9f; outline-offset: 1px; border-radius: 2px; }
li.hit-item { background: #ffe58f; }
.count { color: #5a6772; font-variant-numeric: tabular-nums; }
.info { margin: 2px 0 6px 18px; padding: 6px 8px; border-left: 3px solid #cfd8e0; background: #fafbfc; font-size: 13px; }
.badge { display: inline-block; font-size: 11px; background: #e8eef4; border-radius: 3px; padding: 0 5px; margin: 0 4px 2px 0; }
.info ul { margin: 2px 0 4px; padding-left: 18px; }
.sid { color: #5a6772; font-size: 11px; margin-left: 3px; }
button.small { font-size: 11px; padding: 1px 6px; border: 1px solid #b8c2cc; background: #fff; border-radius: 3px; cursor: pointer; margin: 2px 4px 2px 0; }
.muted { color: #7a8691; }
#chart { height: 520px; width: 100%; }
section.side { align-self: start; position: sticky; top: 8px; }
.tabs button { font-size: 12px; padding: 3px 8px; margin-right: 4px; border: 1px solid #b8c2cc; background: #fff; border-radius: 3px; cursor: pointer; }
.tabs button.on { background: #24323f; color: #fff; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 4px 0 12px; font-size: 13px; }
th, td { border: 1px solid #dde2e7; padding: 2px 8px; text-align: right; overflow-wrap: normal; }
th { background: #f0f3f6; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
.note { font-size: 12px; color: #5a6772; }
.wide { grid-column: 1 / -1; }
div.below { display: grid; grid-template-columns: minmax(0, 1fr); gap: 14px; padding: 0 18px 14px; }
#compare h3 { font-size: 14px; margin: 12px 0 4px; }
#compare td, #compare th { text-align: left; overflow-wrap: anywhere; }
#compare td.num, #compare th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sbs { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 12px; }
.sbs ul { list-style: none; padding: 0; margin: 0; font-size: 13px; max-height: 480px; overflow: auto; }
.sbs li { padding: 1px 4px; }
li.removed, tr[data-kind=removed] { background: #fde2e1; }
li.added, tr[data-kind=added] { background: #dff3e3; }
li.renamed, li.moved, tr[data-kind=renamed], tr[data-kind=moved] { background: #fff4cc; }
li.count .count { font-weight: 600; }
.tag { font-size: 11px; color: #5a6772; margin-left: 4px; }
.warning { margin: 14px 18px 0; padding: 8px 12px; border: 1px solid #e0a800; background: #fff4cc; border-radius: 6px; }
.warning ul { margin: 4px 0 0; padding-left: 18px; }
details.legend { margin: 0 0 8px; font-size: 13px; }
details.legend > summary { cursor: pointer; color: #2a5a80; }
details.legend dl { margin: 4px 0 0; display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 10px; }
details.legend dt { font-weight: 600; }
details.legend dd { margin: 0; }
footer { padding: 6px 18px 14px; font-size: 12px; color: #5a6772; }


@media (max-width: 820px) {
  header, footer { padding-left: 10px; padding-right: 10px; }
  main { grid-template-columns: minmax(0, 1fr); padding: 10px; gap: 10px; }
  div.below { padding: 0 10px 10px; gap: 10px; }
  section.side { position: static; }
  #chart { height: 380px; }
  .sbs { grid-template-columns: minmax(0, 1fr); }
  .warning { margin: 10px 10px 0; }
  details.node { margin-left: 10px; }
  .info { margin-left: 6px; }
  details.legend dl { grid-template-columns: minmax(0, 1fr); }
  details.legend dd { margin: 0 0 4px 8px; }
}
</style>
</head>
<body>
<header><h1 id="title">__TITLE__</h1><div class="sub" id="subtitle"></div></header>
<div class="warning" id="compare-warning" role="alert" hidden><strong>These two runs look unrelated</strong>: the "what changed" below pairs their descriptors by id or name only.<ul id="compare-reasons"></ul></div>
<main>
<section>
  <h2>Search</h2>
  <input id="search" type="search" placeholder="descriptor name or id (d3.1), or item text" autocomplete="off">
  <div class="note" id="result-note"></div>
  <ul id="results"></ul>
  <h2 style="margin-top:10px">Hierarchy</h2>
  <details class="legend" id="legend"><summary>How to read this page</summary>
  <dl>
    <dt>ID (d3.1)</dt><dd>A descriptor's id: d3.1 is child 1 of level-1 descriptor 3. Open a descriptor by its id with the search, or by address: explorer.html#d3.1. Ids never change, so after a move an id no longer spells its path.</dd>
    <dt>semantic ID, #N</dt><dd>An item's ID is the ids of its path plus a resolver #N: items that share a full path are numbered #0, #1, #2, so no two items have the same ID.</dd>
    <dt>(N), items</dt><dd>Items assigned to the descriptor or anywhere below it; the treemap's areas show the same.</dd>
    <dt>stop here</dt><dd>Items whose path ends at this descriptor (it fit none of its children).</dd>
    <dt>coverage into children</dt><dd>Of a descriptor's items, the share that went on to one of its children.</dd>
    <dt>utilization, children used</dt><dd>Children used by more than one item, as a share of all children; children used by at least one.</dd>
    <dt>assigned cov.</dt><dd>Diagnostics: share of all items whose path reaches that level.</dd>
    <dt>cov. where children exist</dt><dd>Diagnostics: of the items that could go one level deeper (their descriptor has children), the share that did.</dd>
    <dt>build-time cov.</dt><dd>Diagnostics: share of the build's items the annotators accepted at that level, before assignment puts every item somewhere.</dd>
    <dt>used / vocab</dt><dd>Diagnostics: descriptors at that level used by at least one item / all descriptors at that level.</dd>
    <dt>util. (vocab), util. (used)</dt><dd>Diagnostics: descriptors used by more than one item, as a share of all the level's descriptors (vocab) or of those used at all (used).</dd>
    <dt>representative items</dt><dd>The build's K-medoids exemplars of a descriptor (else its first members).</dd>
  </dl></details>
  <div class="note"><a href="#" id="expand-all">expand all</a> · <a href="#" id="collapse-all">collapse all</a></div>
  <div id="tree"></div>
</section>
<section class="side">
  <h2>Items per descriptor</h2>
  <div class="tabs"><button id="tab-treemap" class="on">treemap</button><button id="tab-sunburst">sunburst</button></div>
  <div id="chart"></div>
  <div class="note" id="chart-note">Area: items assigned under each descriptor. Click a box to open it in the tree.</div>
</section>
</main>
<div class="below">
<section class="wide" id="compare" hidden>
  <h2>What changed</h2>
  <div class="note" id="compare-title"></div>
  <ul class="note" id="compare-notes"></ul>
  <div class="scroll"><table id="compare-summary"></table></div>
  <h3>Descriptors added, removed, renamed, moved</h3>
  <div class="scroll"><table id="compare-descriptors"></table></div>
  <h3>Item counts that changed</h3>
  <div class="scroll"><table id="compare-counts"></table></div>
  <h3>Items whose path changed <span class="note" id="compare-items-note"></span></h3>
  <div class="scroll"><table id="compare-items"></table></div>
  <h3>Side by side</h3>
  <div class="sbs"><div><strong id="compare-before-title"></strong><ul id="compare-before"></ul></div>
  <div><strong id="compare-after-title"></strong><ul id="compare-after"></ul></div></div>
</section>
<section class="wide">
  <h2>Diagnostics</h2>
  <div id="diagnostics"></div>
</section>
</div>
<footer id="footer" data-plotly-version="__PLOTLY_VERSION__">agentictagger explorer · chart: plotly.js __PLOTLY_VERSION__ (__PLOTLY_MODE__)</footer>
<script type="application/json" id="explorer-data">__DATA__</script>
__PLOTLYJS__
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("explorer-data").textContent);
  var byId = {};
  data.descriptors.forEach(function (d) { byId[d.id] = d; });
  var itemById = {};
  data.items.forEach(function (it) { itemById[it.id] = it; });
  // Every member of every descriptor, in catalog order (the page lists and exports them all).
  var membersOf = {};
  data.descriptors.forEach(function (d) { membersOf[d.id] = []; });
  data.items.forEach(function (it) { it.path.forEach(function (p) { if (membersOf[p]) membersOf[p].push(it.id); }); });

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(x) { return x === null || x === undefined ? "n/a" : (100 * x).toFixed(1) + "%"; }
  function pathNames(ids) { return ids.map(function (i) { return byId[i] ? byId[i].name : i; }).join(" > "); }
  function itemLabel(id) { var it = itemById[id]; return it && it.text ? it.text + " [" + id + "]" : id; }
  // plotly.js draws labels and hover texts as its own small HTML (<b>, <a href>, <br>): escape
  // every text handed to it so a name shows as the characters it has.
  function plotlyText(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }

  document.getElementById("subtitle").textContent =
    data.items_total + " items, " + data.descriptors.length + " descriptors, " + data.roots.length + " at level 1" +
    (data.has_texts ? "" : " (no catalog found: items show by id; pass --catalog)");

  // ---- selection and deep links (explorer.html#d3.1) -----------------------------------------
  var nodes = {}, selected = null, searchOpened = [];
  function idsTo(id) { var out = []; while (id && id !== "root" && byId[id]) { out.unshift(id); id = byId[id].parent; } return out; }
  function hashId() { try { return decodeURIComponent(location.hash.slice(1)); } catch (e) { return ""; } }
  function openPath(ids) { ids.forEach(function (i) { if (nodes[i]) nodes[i].open = true; }); }
  function select(id, scroll, keepOwn) {
    // keepOwn: leave the node's own open state (a click on its summary toggles it).
    if (!byId[id] || !nodes[id]) return false;
    if (selected && nodes[selected]) nodes[selected].classList.remove("selected");
    selected = id;
    nodes[id].classList.add("selected");
    openPath(keepOwn ? idsTo(id).slice(0, -1) : idsTo(id));
    if (hashId() !== id) {
      try { history.replaceState(null, "", "#" + encodeURIComponent(id)); } catch (e) { location.hash = encodeURIComponent(id); }
    }
    if (scroll) nodes[id].scrollIntoView({block: "nearest"});
    return true;
  }
  function fromHash() {
    var id = hashId();
    if (id && id !== selected) select(id, true);
  }

  // ---- the tree: one <details> per descriptor ------------------------------------------------
  var MEMBER_CHUNK = 500;
  function memberItem(i) {
    var li = el("li", {"data-item": i}, itemLabel(i));
    var it = itemById[i];
    if (it && it.resolver !== undefined) li.appendChild(el("span", {"class": "sid", "title": "resolver: numbers items that share this full path"}, "#" + it.resolver));
    return li;
  }
  function showMembers(id, upTo) {
    // Renders members in chunks; upTo (an index) makes sure that member is drawn.
    var box = nodes[id].querySelector(":scope > .info > details.members");
    var ul = box.querySelector("ul"), more = box.querySelector("button.more"), all = membersOf[id];
    var want = Math.max(Math.min(all.length, ul.children.length + MEMBER_CHUNK), (upTo || 0) + 1);
    for (var k = ul.children.length; k < Math.min(want, all.length); k++) ul.appendChild(memberItem(all[k]));
    var left = all.length - ul.children.length;
    more.hidden = left <= 0;
    more.textContent = "show " + Math.min(left, MEMBER_CHUNK) + " more of " + left;
  }
  function buildNode(id) {
    var d = byId[id];
    var det = el("details", {"class": "node", "data-id": id, "data-level": String(d.level)});
    var sum = el("summary");
    sum.appendChild(el("span", {"class": "name"}, d.name));
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", {"class": "count"}, "(" + d.count + ")"));
    sum.addEventListener("click", function () { if (!det.open) select(id, false, true); });
    det.appendChild(sum);
    var info = el("div", {"class": "info"});
    if (d.definition && d.definition !== d.name) info.appendChild(el("div", {"class": "definition"}, d.definition));
    var badges = el("div");
    [["items", d.count + " (" + pct(d.share) + " of all)"],
     ["level", String(d.level)],
     ["id", d.id],
     d.children.length ? ["coverage into children", pct(d.coverage)] : null,
     d.children.length ? ["children used", d.children_used + " / " + d.children.length] : null,
     d.children.length ? ["utilization", pct(d.utilization)] : null,
     d.ends_here ? ["stop here", String(d.ends_here)] : null,
     d.named_by ? ["named by", d.named_by] : null].forEach(function (b) {
      if (b) badges.appendChild(el("span", {"class": "badge"}, b[0] + ": " + b[1]));
    });
    info.appendChild(badges);
    if (d.naming_problems && d.naming_problems.length) {
      info.appendChild(el("div", {"class": "muted"}, "The LLM's name was not used: " + d.naming_problems.join("; ")));
    }
    if (d.exemplars.length) {
      info.appendChild(el("div", {"class": "muted"}, "Representative items (" + d.exemplars_from + "):"));
      var ul = el("ul", {"class": "exemplars"});
      d.exemplars.forEach(function (i) { ul.appendChild(el("li", null, itemLabel(i))); });
      info.appendChild(ul);
    }
    if (membersOf[id].length) {
      var csv = el("button", {"class": "small csv", "type": "button", "data-id": id}, "download members as CSV");
      csv.addEventListener("click", function () { downloadMembers(id); });
      info.appendChild(csv);
      var more = el("details", {"class": "members"});
      more.appendChild(el("summary", {"class": "muted"}, "Members (" + membersOf[id].length + ")"));
      more.appendChild(el("ul"));
      var next = el("button", {"class": "small more", "type": "button"});
      next.hidden = true;
      next.addEventListener("click", function () { showMembers(id); });
      more.appendChild(next);
      more.addEventListener("toggle", function () { if (more.open && !more.querySelector("li")) showMembers(id); });
      info.appendChild(more);
    }
    det.appendChild(info);
    d.children.forEach(function (c) { det.appendChild(buildNode(c)); });
    nodes[id] = det;
    return det;
  }
  var tree = document.getElementById("tree");
  data.roots.forEach(function (r) { tree.appendChild(buildNode(r)); });

  function reveal(ids) {
    // Opened on purpose: a later search does not close these.
    searchOpened = searchOpened.filter(function (k) { return ids.indexOf(k) < 0; });
    openPath(ids);
    var last = ids[ids.length - 1];
    if (last) select(last, true);
  }
  function revealItem(itemId, ids) {
    reveal(ids);
    var last = ids[ids.length - 1];
    if (!last) return;
    var prev = document.querySelector("li.hit-item");
    if (prev) prev.classList.remove("hit-item");
    var box = nodes[last].querySelector(":scope > .info > details.members");
    var index = membersOf[last].indexOf(itemId);
    if (!box || index < 0) return;
    box.open = true;
    showMembers(last, index);
    var li = box.querySelectorAll("li")[index];
    li.classList.add("hit-item");
    li.scrollIntoView({block: "nearest"});
  }
  document.getElementById("expand-all").addEventListener("click", function (e) {
    e.preventDefault(); Object.keys(nodes).forEach(function (k) { nodes[k].open = true; });
  });
  document.getElementById("collapse-all").addEventListener("click", function (e) {
    e.preventDefault(); Object.keys(nodes).forEach(function (k) { nodes[k].open = false; });
  });

  // ---- CSV of a descriptor's members ---------------------------------------------------------
  function csvCell(v, text) {
    v = v === null || v === undefined ? "" : String(v);
    if (text && /^[=+\-@\t\r]/.test(v)) v = "'" + v;  // not a formula when opened in a spreadsheet
    return /[",\r\n]/.test(v) ? '"' + v.replace(/"/g, '""') + '"' : v;
  }
  function membersCsv(id) {
    var lines = [["item_id", "text", "path_ids", "path_names", "resolver"].join(",")];
    membersOf[id].forEach(function (i) {
      var it = itemById[i];
      lines.push([csvCell(i), csvCell(it.text, true), csvCell(it.path.join(" > ")), csvCell(pathNames(it.path), true),
                  csvCell(it.resolver)].join(","));
    });
    return "\ufeff" + lines.join("\r\n") + "\r\n";
  }
  function downloadMembers(id) {
    var url = URL.createObjectURL(new Blob([membersCsv(id)], {type: "text/csv;charset=utf-8"}));
    var a = el("a", {"href": url, "download": "members-" + id.replace(/[^A-Za-z0-9._-]/g, "_") + ".csv"});
    document.body.appendChild(a);
    a.click();
    setTimeout(function () { URL.revokeObjectURL(url); a.remove(); }, 1000);
  }

  // ---- search over descriptor names and ids and item texts, by word form ----------------------
  function fold(s) { return String(s).normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase(); }
  function stem(w) {
    // English plurals to their singular: tapes > tape, boxes > box, batteries > battery.
    if (w.length < 4) return w;
    if (/ies$/.test(w) && w.length > 4) return w.slice(0, -3) + "y";
    if (/(s|x|z|ch|sh)es$/.test(w)) return w.slice(0, -2);
    if (/[^sui]s$/.test(w)) return w.slice(0, -1);
    return w;
  }
  var WORD = /[\p{L}\p{N}]+/gu;
  function forms(text) {
    var out = [];
    (fold(text).match(WORD) || []).forEach(function (w) { out.push(w); var s = stem(w); if (s !== w) out.push(s); });
    return out;
  }
  function wordMatches(qForms, w) {
    var f = fold(w), s = stem(f);
    return qForms.some(function (q) { return f.indexOf(q) === 0 || s.indexOf(q) === 0; });
  }
  function textMatches(query, text) {
    // The query as typed (a substring), or every query word as the start of a word of the text,
    // either taken as written or in its singular form.
    var t = fold(text);
    if (t.indexOf(query.folded) >= 0) return true;
    if (!query.words.length) return false;
    var tf = forms(text);
    return query.words.every(function (qf) {
      return tf.some(function (w) { return qf.some(function (q) { return w.indexOf(q) === 0; }); });
    });
  }
  function highlighted(text, query) {
    // The text as nodes, matched words (or the typed substring) inside <mark>.
    var frag = document.createDocumentFragment(), t = fold(text), at = t.indexOf(query.folded);
    if (at >= 0 && t.length === text.length) {
      frag.appendChild(document.createTextNode(text.slice(0, at)));
      frag.appendChild(el("mark", null, text.slice(at, at + query.folded.length)));
      frag.appendChild(document.createTextNode(text.slice(at + query.folded.length)));
      return frag;
    }
    var all = [].concat.apply([], query.words), last = 0, m;
    WORD.lastIndex = 0;
    while ((m = WORD.exec(text)) !== null) {
      if (!wordMatches(all, m[0])) continue;
      frag.appendChild(document.createTextNode(text.slice(last, m.index)));
      frag.appendChild(el("mark", null, m[0]));
      last = m.index + m[0].length;
    }
    frag.appendChild(document.createTextNode(text.slice(last)));
    return frag;
  }
  var search = document.getElementById("search"), results = document.getElementById("results");
  var note = document.getElementById("result-note");
  var LIMIT = 200;
  function runSearch() {
    // The nodes the previous query opened close again, so the tree shows this query's matches
    // only (none: the tree as it was).
    var raw = search.value.trim();
    searchOpened.forEach(function (k) { nodes[k].open = false; });
    searchOpened = [];
    results.innerHTML = "";
    Object.keys(nodes).forEach(function (k) { nodes[k].classList.remove("hit"); });
    if (!raw) { note.textContent = ""; return; }
    // Word forms for queries of words; a query with other characters (<b>, d3.1, 1/2") is
    // looked for as typed.
    var words = !/^[\p{L}\p{N}\s'’-]+$/u.test(raw) ? [] :
      (fold(raw).match(WORD) || []).map(function (w) { var s = stem(w); return s === w ? [w] : [w, s]; });
    var query = {folded: fold(raw), words: words};
    var hits = [], idq = raw.toLowerCase();
    data.descriptors.forEach(function (d) {
      if (d.id.toLowerCase() === idq) hits.unshift({kind: "descriptor", label: d.name + " [" + d.id + "]", path: idsTo(d.id), id: d.id});
      else if (textMatches(query, d.name) || textMatches(query, d.definition || ""))
        hits.push({kind: "descriptor", label: d.name, path: idsTo(d.id), id: d.id});
    });
    data.items.forEach(function (it) {
      if (it.id.toLowerCase() === idq || (it.text && textMatches(query, it.text)))
        hits.push({kind: "item", label: it.text || it.id, id: it.id, path: it.path});
    });
    note.textContent = hits.length + " match" + (hits.length === 1 ? "" : "es") + (hits.length > LIMIT ? " (first " + LIMIT + " shown)" : "");
    hits.slice(0, LIMIT).forEach(function (h) {
      var li = el("li", {"class": "result", "data-kind": h.kind, "data-id": h.id});
      li.appendChild(el("span", {"class": "kind" + (h.kind === "descriptor" ? " desc" : "")}, h.kind));
      var label = el("span", {"class": "label"});
      label.appendChild(highlighted(h.label, query));
      li.appendChild(label);
      li.appendChild(document.createTextNode(" — "));
      li.appendChild(el("span", {"class": "path"}, h.path.length ? pathNames(h.path) : "(no descriptor)"));
      li.addEventListener("click", function () { if (h.kind === "item") revealItem(h.id, h.path); else reveal(h.path); });
      results.appendChild(li);
      h.path.forEach(function (k) { if (nodes[k] && !nodes[k].open) { nodes[k].open = true; searchOpened.push(k); } });
      var last = nodes[h.path[h.path.length - 1]];
      if (last) last.classList.add("hit");
    });
  }
  search.addEventListener("input", runSearch);

  // ---- treemap / sunburst (plotly.js) --------------------------------------------------------
  // One explicit root (all items), so every box, the path bar included, has its own count.
  var ids = ["root"], labels = ["All items"], parents = [""], values = [data.items_total], hover = ["All items"];
  data.descriptors.forEach(function (d) {
    ids.push(d.id); labels.push(plotlyText(d.name)); parents.push(d.parent === "root" ? "root" : d.parent); values.push(d.count);
    hover.push(plotlyText(pathNames(idsTo(d.id)) + " [" + d.id + "]"));
  });
  var kind = "treemap";
  function drawChart() {
    var trace = {type: kind, ids: ids, labels: labels, parents: parents, values: values, branchvalues: "total",
                 customdata: hover, hovertemplate: "%{customdata}<br>%{value} items<extra></extra>", maxdepth: 3};
    if (kind === "treemap") trace.textinfo = "label+value";
    Plotly.react("chart", [trace], {margin: {t: 10, l: 4, r: 4, b: 4}}, {displaylogo: false, responsive: true});
  }
  if (window.Plotly) {
    drawChart();
    document.getElementById("chart").on("plotly_click", function (ev) {
      var p = ev && ev.points && ev.points[0];
      if (p && byId[p.id]) reveal(idsTo(p.id));
    });
  } else {
    document.getElementById("chart-note").textContent =
      "The chart library (plotly.js __PLOTLY_VERSION__, __PLOTLY_MODE__) did not load; the tree and search work without it.";
  }
  ["treemap", "sunburst"].forEach(function (k) {
    document.getElementById("tab-" + k).addEventListener("click", function () {
      if (!window.Plotly) return;
      kind = k; drawChart();
      document.getElementById("tab-treemap").classList.toggle("on", k === "treemap");
      document.getElementById("tab-sunburst").classList.toggle("on", k === "sunburst");
    });
  });

  // ---- what changed from another run (explore --compare) -------------------------------------
  function row(table, cells, attrs, head) {
    var tr = el("tr", attrs);
    cells.forEach(function (c) {
      var num = typeof c === "number";
      tr.appendChild(el(head ? "th" : "td", num ? {"class": "num"} : null, c === null || c === undefined ? "" : String(c)));
    });
    table.appendChild(tr);
    return tr;
  }
  function renderCompare(c) {
    var section = document.getElementById("compare");
    section.hidden = false;
    document.getElementById("compare-title").textContent =
      "From " + c.before.name + " (before, " + c.before.path + ") to " + c.after.name + " (after, this page)" +
      (c.after.edits ? "; " + c.after.edits + " edit(s) in its edits.jsonl" : "");
    var rel = c.relation || {reasons: [], notes: []};
    if (rel.reasons.length) {
      document.getElementById("compare-warning").hidden = false;
      rel.reasons.forEach(function (r) { document.getElementById("compare-reasons").appendChild(el("li", null, r)); });
    }
    rel.notes.forEach(function (r) { document.getElementById("compare-notes").appendChild(el("li", null, "Note: " + r)); });
    var s = c.summary, sum = document.getElementById("compare-summary");
    [["descriptors", s.descriptors_before, s.descriptors_after],
     ["items", s.items_before, s.items_after]].forEach(function (r) {
      row(sum, [r[0] + " (before → after)", r[1] + " → " + r[2]]);
    });
    [["added", "descriptors added"], ["removed", "descriptors removed"], ["renamed", "descriptors renamed"],
     ["moved", "descriptors moved"], ["matched_by_name", "matched by name (id changed)"],
     ["count_changed", "descriptors whose item count changed"], ["items_path_changed", "items whose path changed"],
     ["ids_changed", "items whose semantic ID changed"], ["items_only_before", "items only before"],
     ["items_only_after", "items only after"]].forEach(function (r) {
      if (s[r[0]] === null || s[r[0]] === undefined) return;
      var tr = row(sum, [r[1], s[r[0]]]);
      tr.lastChild.setAttribute("data-key", r[0]);
    });
    var dt = document.getElementById("compare-descriptors");
    row(dt, ["change", "before", "after", "items before", "items after"], null, true);
    if (!c.descriptors.length) row(dt, ["no descriptor added, removed, renamed or moved", "", "", "", ""]);
    c.descriptors.forEach(function (d) {
      var before = d.id_before ? d.path_before + " [" + d.id_before + "]" : "";
      var after = d.id_after ? d.path_after + " [" + d.id_after + "]" : "";
      if (d.items_now_in && d.items_now_in.length)
        after = "items now in: " + d.items_now_in.map(function (x) { return x.path + " (" + x.items + ")"; }).join("; ");
      row(dt, [d.kinds.join(", "), before, after, d.count_before, d.count_after],
          {"data-kind": d.kind, "data-id": d.id_before || d.id_after});
    });
    var ct = document.getElementById("compare-counts");
    row(ct, ["descriptor (after)", "before", "after", "change"], null, true);
    if (!c.counts.length) row(ct, ["no item count changed", "", "", ""]);
    c.counts.forEach(function (r) {
      row(ct, [r.path + " [" + r.id_after + "]", r.before, r.after, (r.delta > 0 ? "+" : "") + r.delta], {"data-id": r.id_after});
    });
    var it = document.getElementById("compare-items");
    document.getElementById("compare-items-note").textContent =
      "(" + c.items.length + " of " + s.items_path_changed + " shown)";
    row(it, ["item", "path before", "path after"], null, true);
    c.items.forEach(function (r) {
      var tr = row(it, [r.text ? r.text + " [" + r.id + "]" : r.id, r.before, r.after], {"data-item": r.id});
      tr.children[1].className = "before"; tr.children[2].className = "after";
    });
    [["before", c.before.name + " (before)"], ["after", c.after.name + " (after)"]].forEach(function (side) {
      document.getElementById("compare-" + side[0] + "-title").textContent = side[1];
      var ul = document.getElementById("compare-" + side[0]);
      c.trees[side[0]].forEach(function (n) {
        var li = el("li", {"data-id": n.id, "class": n.status || ""});
        li.style.paddingLeft = (4 + 16 * (n.level - 1)) + "px";
        li.appendChild(el("span", {"class": "name"}, n.name));
        li.appendChild(document.createTextNode(" "));
        li.appendChild(el("span", {"class": "count"}, "(" + n.count + ")"));
        if (n.status) li.appendChild(el("span", {"class": "tag"}, n.status));
        ul.appendChild(li);
      });
    });
  }
  if (data.compare) renderCompare(data.compare);

  // ---- diagnostics tables --------------------------------------------------------------------
  var diagDiv = document.getElementById("diagnostics");
  if (!data.diagnostics.length) diagDiv.appendChild(el("div", {"class": "note"}, "No diagnostics."));
  data.diagnostics.forEach(function (t) {
    var wrap = el("div", {"class": "scroll"});
    var table = el("table", {"class": "diagnostics"});
    table.appendChild(el("caption", null, t.title));
    var tr = el("tr");
    t.columns.forEach(function (c) { tr.appendChild(el("th", null, c)); });
    table.appendChild(tr);
    t.rows.forEach(function (r) {
      var row = el("tr");
      r.forEach(function (c) { row.appendChild(el("td", null, c)); });
      table.appendChild(row);
    });
    wrap.appendChild(table);
    diagDiv.appendChild(wrap);
    if (t.caption) diagDiv.appendChild(el("div", {"class": "note"}, t.caption));
  });

  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
</script>
</body>
</html>
"""
