"""The HTML explorer: one self-contained ``explorer.html`` per run folder.

It opens from disk, with no server and no network request: the data and the chart library
(plotly.js, from the installed ``plotly`` package, so its version is pinned by the environment)
are written into the file. The page shows the hierarchy as a collapsible tree and as a treemap
(or sunburst) sized by item count; each descriptor's definition, item count, coverage and
utilization figures, representative items (the K-medoids exemplars of the build, else the first
members) and a sample of its members; a search over descriptor names and item texts that lists the
full path of every match and opens the tree at it; and the diagnostics tables of ``report``. Given a second run folder (``compare``), it also shows
what changed from that run to this one (:mod:`agentictagger.rundiff`): descriptors added, removed,
renamed or moved, item counts, a sample of items whose path changed, and both trees side by side.

Example::

    from agentictagger.explorer import write_explorer
    path = write_explorer("runs/demo")          # runs/demo/explorer.html
    write_explorer("runs/demo", "diff.html", compare="runs/demo-before")   # with "what changed"
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from agentictagger.vocabulary import ROOT_ID, Vocabulary

#: Members listed per descriptor, and characters kept of each item text (search and display).
MEMBER_SAMPLE = 20
EXEMPLARS = 5
TEXT_CHARS = 160


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
    from agentictagger.tagger import run_items

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


def subtree_counts(vocab: Vocabulary, paths: dict[str, list[str]]) -> dict[str, int]:
    """Assigned items per descriptor, counting every item whose path passes through it."""
    counts = {d.id: 0 for d in vocab}
    for path in paths.values():
        for did in path:
            if did in counts:
                counts[did] += 1
    return counts


def explorer_data(
    vocab: Vocabulary,
    assignment: Any,
    diag: dict | None = None,
    catalog: Any = None,
    title: str = "agentictagger explorer",
    member_sample: int = MEMBER_SAMPLE,
) -> dict:
    """Everything the page shows, as plain JSON: descriptors (with figures, exemplars and a
    sample of members), items (id, short text, path) and the diagnostics tables."""
    from agentictagger.diagnostics import diagnostic_tables

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
            }
        )
    items = [{"id": iid, "text": texts.get(iid, ""), "path": path} for iid, path in paths.items()]
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
    """JSON safe inside a <script> element."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/").replace("<!--", "<\\!--")


def render_html(data: dict) -> str:
    """The page: data and plotly.js inline, so it needs nothing but the file."""
    import plotly
    from plotly.offline import get_plotlyjs

    head, tail = _TEMPLATE.split("__PLOTLYJS__")
    for key, value in (("__TITLE__", html.escape(data["title"])), ("__PLOTLY_VERSION__", html.escape(plotly.__version__))):
        head, tail = head.replace(key, value), tail.replace(key, value)
    # The data last, so no placeholder is looked for inside item texts; plotly.js is not scanned.
    return head.replace("__DATA__", _script_json(data)) + get_plotlyjs() + tail


def write_explorer(
    run_dir: str | Path,
    out: str | Path | None = None,
    catalog: Any = None,
    catalog_path: str | Path | None = None,
    compare: str | Path | None = None,
) -> Path:
    """Write ``explorer.html`` for a finished run folder (vocabulary.json and assignments.jsonl)
    and return its path. Item texts come from ``catalog`` (or ``catalog_path``, or the catalog
    named in the run's config.yaml); without one, items show by id. Diagnostics come from the
    run's diagnostics.json, else are computed here (not written). With ``compare`` (another run
    folder, taken as "before"), the page also shows what changed from it to this run."""
    from agentictagger.assign.base import Assignment
    from agentictagger.diagnostics import compute_diagnostics, labels_from_catalog

    run = Path(run_dir)
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
    data = explorer_data(vocab, assignment, diag, catalog, title=f"agentictagger explorer: {run.resolve().name}")
    data["compare"] = None
    if compare is not None:
        from agentictagger.rundiff import diff_runs

        data["compare"] = diff_runs(compare, run, texts={it["id"]: it["text"] for it in data["items"] if it["text"]})
    target = Path(out) if out else run / "explorer.html"
    from agentictagger.runstate import atomic_write_text

    atomic_write_text(target, render_html(data))
    return target


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d232a; background: #f6f7f9; }
header { padding: 10px 18px; background: #24323f; color: #fff; }
header h1 { font-size: 18px; margin: 0; }
header .sub { font-size: 12px; opacity: .8; }
main { display: grid; grid-template-columns: minmax(340px, 1fr) minmax(380px, 1.2fr); gap: 14px; padding: 14px 18px; }
section { background: #fff; border: 1px solid #dde2e7; border-radius: 6px; padding: 10px 12px; min-width: 0; }
section h2 { font-size: 15px; margin: 0 0 8px; }
#search { width: 100%; box-sizing: border-box; padding: 6px 8px; font-size: 14px; border: 1px solid #b8c2cc; border-radius: 4px; }
#results { list-style: none; padding: 0; margin: 6px 0 0; max-height: 220px; overflow: auto; }
#results li { padding: 3px 4px; border-bottom: 1px solid #eef0f2; cursor: pointer; }
#results li:hover { background: #eef4fb; }
.kind { font-size: 11px; color: #fff; background: #6b7c8c; border-radius: 3px; padding: 0 4px; margin-right: 4px; }
.kind.desc { background: #2f6f9f; }
.path { color: #2a5a80; }
details.node { margin-left: 14px; }
details.node > summary { cursor: pointer; padding: 1px 0; }
details.node.hit > summary .name { background: #ffe58f; }
.count { color: #5a6772; font-variant-numeric: tabular-nums; }
.info { margin: 2px 0 6px 18px; padding: 6px 8px; border-left: 3px solid #cfd8e0; background: #fafbfc; font-size: 13px; }
.badge { display: inline-block; font-size: 11px; background: #e8eef4; border-radius: 3px; padding: 0 5px; margin: 0 4px 2px 0; }
.info ul { margin: 2px 0 4px; padding-left: 18px; }
.muted { color: #7a8691; }
#chart { height: 520px; }
section.side { align-self: start; position: sticky; top: 8px; }
.tabs button { font-size: 12px; padding: 3px 8px; margin-right: 4px; border: 1px solid #b8c2cc; background: #fff; border-radius: 3px; cursor: pointer; }
.tabs button.on { background: #24323f; color: #fff; }
table { border-collapse: collapse; margin: 4px 0 12px; font-size: 13px; }
th, td { border: 1px solid #dde2e7; padding: 2px 8px; text-align: right; }
th { background: #f0f3f6; }
td:first-child, th:first-child { text-align: left; }
caption { caption-side: top; text-align: left; font-weight: 600; padding: 4px 0; }
.note { font-size: 12px; color: #5a6772; }
.wide { grid-column: 1 / -1; }
div.below { display: grid; grid-template-columns: 1fr; gap: 14px; padding: 0 18px 14px; }
#compare h3 { font-size: 14px; margin: 12px 0 4px; }
#compare td, #compare th { text-align: left; }
#compare td.num, #compare th.num { text-align: right; font-variant-numeric: tabular-nums; }
.sbs { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.sbs ul { list-style: none; padding: 0; margin: 0; font-size: 13px; max-height: 480px; overflow: auto; }
.sbs li { padding: 1px 4px; }
li.removed, tr[data-kind=removed] { background: #fde2e1; }
li.added, tr[data-kind=added] { background: #dff3e3; }
li.renamed, li.moved, tr[data-kind=renamed], tr[data-kind=moved] { background: #fff4cc; }
li.count .count { font-weight: 600; }
.tag { font-size: 11px; color: #5a6772; margin-left: 4px; }
</style>
</head>
<body>
<header><h1 id="title">__TITLE__</h1><div class="sub" id="subtitle"></div></header>
<main>
<section>
  <h2>Search</h2>
  <input id="search" type="search" placeholder="descriptor name or item text" autocomplete="off">
  <div class="note" id="result-note"></div>
  <ul id="results"></ul>
  <h2 style="margin-top:10px">Hierarchy</h2>
  <div class="note"><a href="#" id="expand-all">expand all</a> · <a href="#" id="collapse-all">collapse all</a></div>
  <div id="tree"></div>
</section>
<section class="side">
  <h2>Items per descriptor</h2>
  <div class="tabs"><button id="tab-treemap" class="on">treemap</button><button id="tab-sunburst">sunburst</button></div>
  <div id="chart"></div>
  <div class="note">Area: items assigned under each descriptor. Click a box to open it in the tree. Chart: plotly.js __PLOTLY_VERSION__ (embedded).</div>
</section>
</main>
<div class="below">
<section class="wide" id="compare" hidden>
  <h2>What changed</h2>
  <div class="note" id="compare-title"></div>
  <table id="compare-summary"></table>
  <h3>Descriptors added, removed, renamed, moved</h3>
  <table id="compare-descriptors"></table>
  <h3>Item counts that changed</h3>
  <table id="compare-counts"></table>
  <h3>Items whose path changed <span class="note" id="compare-items-note"></span></h3>
  <table id="compare-items"></table>
  <h3>Side by side</h3>
  <div class="sbs"><div><b id="compare-before-title"></b><ul id="compare-before"></ul></div>
  <div><b id="compare-after-title"></b><ul id="compare-after"></ul></div></div>
</section>
<section class="wide">
  <h2>Diagnostics</h2>
  <div id="diagnostics"></div>
</section>
</div>
<script type="application/json" id="explorer-data">__DATA__</script>
<script>__PLOTLYJS__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("explorer-data").textContent);
  var byId = {};
  data.descriptors.forEach(function (d) { byId[d.id] = d; });
  var itemById = {};
  data.items.forEach(function (it) { itemById[it.id] = it; });

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function pct(x) { return x === null || x === undefined ? "n/a" : (100 * x).toFixed(1) + "%"; }
  function pathNames(ids) { return ids.map(function (i) { return byId[i] ? byId[i].name : i; }).join(" > "); }
  function itemLabel(id) { var it = itemById[id]; return it && it.text ? it.text + " [" + id + "]" : id; }

  document.getElementById("subtitle").textContent =
    data.items_total + " items, " + data.descriptors.length + " descriptors, " + data.roots.length + " at level 1" +
    (data.has_texts ? "" : " (no catalog found: items show by id; pass --catalog)");

  // ---- the tree: one <details> per descriptor ------------------------------------------------
  var nodes = {};
  function buildNode(id) {
    var d = byId[id];
    var det = el("details", {"class": "node", "data-id": id, "data-level": String(d.level)});
    var sum = el("summary");
    sum.appendChild(el("span", {"class": "name"}, d.name));
    sum.appendChild(document.createTextNode(" "));
    sum.appendChild(el("span", {"class": "count"}, "(" + d.count + ")"));
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
    if (d.exemplars.length) {
      info.appendChild(el("div", {"class": "muted"}, "Representative items (" + d.exemplars_from + "):"));
      var ul = el("ul", {"class": "exemplars"});
      d.exemplars.forEach(function (i) { ul.appendChild(el("li", null, itemLabel(i))); });
      info.appendChild(ul);
    }
    if (d.members.length) {
      var more = el("details", {"class": "members"});
      more.appendChild(el("summary", {"class": "muted"}, "Members (" + d.members.length + " of " + d.count + ")"));
      var ul2 = el("ul");
      d.members.forEach(function (i) { ul2.appendChild(el("li", null, itemLabel(i))); });
      more.appendChild(ul2);
      info.appendChild(more);
    }
    det.appendChild(info);
    d.children.forEach(function (c) { det.appendChild(buildNode(c)); });
    nodes[id] = det;
    return det;
  }
  var tree = document.getElementById("tree");
  data.roots.forEach(function (r) { tree.appendChild(buildNode(r)); });

  function openPath(ids) {
    ids.forEach(function (i) { if (nodes[i]) nodes[i].open = true; });
  }
  function reveal(ids) {
    openPath(ids);
    var last = nodes[ids[ids.length - 1]];
    if (last) { last.scrollIntoView({block: "nearest"}); }
  }
  document.getElementById("expand-all").addEventListener("click", function (e) {
    e.preventDefault(); Object.keys(nodes).forEach(function (k) { nodes[k].open = true; });
  });
  document.getElementById("collapse-all").addEventListener("click", function (e) {
    e.preventDefault(); Object.keys(nodes).forEach(function (k) { nodes[k].open = false; });
  });

  // ---- search over descriptor names and item texts -------------------------------------------
  function idsTo(id) { var out = []; while (id && id !== "root") { out.unshift(id); id = byId[id].parent; } return out; }
  var search = document.getElementById("search"), results = document.getElementById("results");
  var note = document.getElementById("result-note");
  var LIMIT = 200;
  function runSearch() {
    var q = search.value.trim().toLowerCase();
    results.innerHTML = "";
    Object.keys(nodes).forEach(function (k) { nodes[k].classList.remove("hit"); });
    if (!q) { note.textContent = ""; return; }
    var hits = [];
    data.descriptors.forEach(function (d) {
      if (d.name.toLowerCase().indexOf(q) >= 0 || (d.definition || "").toLowerCase().indexOf(q) >= 0)
        hits.push({kind: "descriptor", label: d.name, path: idsTo(d.id)});
    });
    data.items.forEach(function (it) {
      if (it.text.toLowerCase().indexOf(q) >= 0 || it.id.toLowerCase() === q)
        hits.push({kind: "item", label: it.text || it.id, id: it.id, path: it.path});
    });
    note.textContent = hits.length + " match" + (hits.length === 1 ? "" : "es") + (hits.length > LIMIT ? " (first " + LIMIT + " shown)" : "");
    hits.slice(0, LIMIT).forEach(function (h) {
      var li = el("li", {"class": "result", "data-kind": h.kind});
      li.appendChild(el("span", {"class": "kind" + (h.kind === "descriptor" ? " desc" : "")}, h.kind));
      li.appendChild(el("span", {"class": "label"}, h.label));
      li.appendChild(document.createTextNode(" — "));
      li.appendChild(el("span", {"class": "path"}, h.path.length ? pathNames(h.path) : "(no descriptor)"));
      li.addEventListener("click", function () { reveal(h.path); });
      results.appendChild(li);
      openPath(h.path);
      var last = nodes[h.path[h.path.length - 1]];
      if (last) last.classList.add("hit");
    });
  }
  search.addEventListener("input", runSearch);

  // ---- treemap / sunburst (plotly.js, embedded) ----------------------------------------------
  var ids = [], labels = [], parents = [], values = [], hover = [];
  data.descriptors.forEach(function (d) {
    ids.push(d.id); labels.push(d.name); parents.push(d.parent === "root" ? "" : d.parent); values.push(d.count);
    hover.push(pathNames(idsTo(d.id)));
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
  }
  ["treemap", "sunburst"].forEach(function (k) {
    document.getElementById("tab-" + k).addEventListener("click", function () {
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
    diagDiv.appendChild(table);
    if (t.caption) diagDiv.appendChild(el("div", {"class": "note"}, t.caption));
  });
})();
</script>
</body>
</html>
"""
