"""Vocabulary diagnostics: judge a vocabulary and its assignment without training a recommender.

Coverage, utilization (paper B.3: share of descriptors used by more than one item), cardinality,
collisions, depth, and, where ground-truth categories exist, NMI and purity per level.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from agentictagger.vocab.quality import purity, utilization  # noqa: F401 (figures the report shows)

if TYPE_CHECKING:
    from agentictagger.structures.assignment import Assignment
    from agentictagger.structures.vocabulary import Vocabulary

LabelPath = Sequence[str]


def normalise_labels(labels: Mapping[str, str | LabelPath | None]) -> dict[str, list[str]]:
    """Label paths per item; a string label is one level (or a path when written 'A > B')."""
    out: dict[str, list[str]] = {}
    for k, v in labels.items():
        if v is None:
            continue
        path = [p.strip() for p in v.split(" > ")] if isinstance(v, str) else [str(p) for p in v]
        path = [p for p in path if p]
        if path:
            out[k] = path
    return out


def compute_diagnostics(
    assignment: "Assignment",
    vocab: "Vocabulary",
    labels: Mapping[str, str | LabelPath | None] | None = None,
    max_label_levels: int = 2,
) -> dict:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    paths = assignment.paths
    n = len(paths)
    depth = max(vocab.depth, max((len(p) for p in paths.values()), default=0))
    out: dict[str, Any] = {"items": n, "vocabulary_descriptors": len(vocab), "vocabulary_depth": vocab.depth}

    # Coverage: share of items with a level-l descriptor; and among items whose level-(l-1)
    # descriptor has children (so a level-l choice existed), the share that took one.
    cov, cov_avail = {}, {}
    for lvl in range(1, depth + 1):
        reached = sum(1 for p in paths.values() if len(p) >= lvl)
        could = sum(1 for p in paths.values() if len(p) >= lvl - 1 and (lvl == 1 or vocab[p[lvl - 2]].children))
        cov[lvl] = reached / n if n else float("nan")
        cov_avail[lvl] = reached / could if could else float("nan")
    out["coverage_per_level"] = cov
    out["coverage_where_children_exist"] = cov_avail

    # Cardinality per level: descriptors used vs available.
    card = {}
    for lvl in range(1, depth + 1):
        used = {p[lvl - 1] for p in paths.values() if len(p) >= lvl}
        card[lvl] = {"used": len(used), "vocabulary": len(vocab.level(lvl))}
    out["cardinality_per_level"] = card

    util = utilization(list(paths.values()), [d.id for d in vocab])
    util_level = {}
    for lvl in range(1, depth + 1):
        u = utilization([[p[lvl - 1]] if len(p) >= lvl else [] for p in paths.values()], [d.id for d in vocab.level(lvl)])
        util_level[lvl] = {"over_vocabulary": u.get("over_vocabulary"), "over_used": u["over_used"]}
    util["per_level"] = util_level
    out["utilization"] = util

    buckets = Counter(tuple(p) for p in paths.values())
    colliding = sum(c for c in buckets.values() if c > 1)
    largest_path, largest = buckets.most_common(1)[0] if buckets else ((), 0)
    sizes = np.array(list(buckets.values()) or [0])
    out["collisions"] = {
        "distinct_paths": len(buckets),
        "collision_rate": colliding / n if n else float("nan"),
        "largest_bucket": int(largest),
        "largest_bucket_path": [vocab[d].name for d in largest_path],
        "mean_bucket_size": float(sizes.mean()),
        "median_bucket_size": float(np.median(sizes)),
        "items_per_distinct_path": n / len(buckets) if buckets else float("nan"),
    }
    out["depth_distribution"] = dict(sorted(Counter(len(p) for p in paths.values()).items()))
    out["mean_depth"] = float(np.mean([len(p) for p in paths.values()])) if n else float("nan")

    if labels:
        lab = normalise_labels(labels)
        rows = []
        label_levels = min(max_label_levels, max((len(v) for v in lab.values()), default=0))
        for lvl in range(1, min(depth, 3) + 1):
            for m in range(1, label_levels + 1):
                ids = [i for i in paths if i in lab and len(lab[i]) >= m]
                if not ids:
                    continue
                # A cluster is the path prefix down to level l (an item that stopped above l keeps
                # its shorter prefix); a label is the label path down to level m.
                clusters = [" / ".join(paths[i][:lvl]) for i in ids]
                truth = [" / ".join(lab[i][:m]) for i in ids]
                rows.append(
                    {
                        "level": lvl,
                        "label_level": m,
                        "items": len(ids),
                        "clusters": len(set(clusters)),
                        "classes": len(set(truth)),
                        "nmi": float(normalized_mutual_info_score(truth, clusters)),
                        "ari": float(adjusted_rand_score(truth, clusters)),
                        "purity": purity(clusters, truth),
                    }
                )
        out["label_agreement"] = rows
        out["labelled_items"] = sum(1 for i in paths if i in lab)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.3f}"
    return str(v)


def diagnostic_tables(diag: dict) -> list[dict]:
    """The diagnostics as plain tables, each ``{"title", "columns", "rows", "caption"}`` (cells are
    strings): per-level figures, collisions and depth, label agreement. The terminal (rich) and the
    HTML explorer both draw these."""
    build = diag.get("build_coverage_per_level") or {}
    cols = ["level", "assigned cov.", "cov. where children exist"]
    if build:
        cols.append("build-time cov.")
    cols += ["used / vocab", "util. (vocab)", "util. (used)"]
    rows = []
    for lvl, c in diag["coverage_per_level"].items():
        card = diag["cardinality_per_level"][lvl]
        u = diag["utilization"]["per_level"][lvl]
        row = [str(lvl), _fmt(c), _fmt(diag["coverage_where_children_exist"][lvl])]
        if build:
            b = build.get(str(lvl)) or build.get(lvl)
            row.append(_fmt(b["coverage_in_jobs"]) if b else "")
        row += [f"{card['used']} / {card['vocabulary']}", _fmt(u["over_vocabulary"]), _fmt(u["over_used"])]
        rows.append(row)
    u = diag["utilization"]
    rows.append(["all", "", "", *([""] if build else []), f"{u['unique_terms']} / {u.get('vocabulary_size', '')}", _fmt(u.get("over_vocabulary")), _fmt(u["over_used"])])
    caption = (
        "build-time cov.: share of each level's build jobs that the annotators accepted, before assignment puts every item somewhere"
        if build else ""
    )
    tables = [{"title": f"Assignment diagnostics: {diag['items']} items, {diag['vocabulary_descriptors']} descriptors",
               "columns": cols, "rows": rows, "caption": caption}]
    c = diag["collisions"]
    tables.append({
        "title": "Collisions and depth",
        "columns": ["measure", "value"],
        "rows": [
            ["distinct paths", str(c["distinct_paths"])],
            ["items sharing their full path", _fmt(c["collision_rate"])],
            ["largest bucket", f"{c['largest_bucket']} ({' > '.join(c['largest_bucket_path'])})"],
            ["mean / median bucket size", f"{_fmt(c['mean_bucket_size'])} / {_fmt(c['median_bucket_size'])}"],
            ["depth distribution", ", ".join(f"{k}: {v}" for k, v in diag["depth_distribution"].items())],
        ],
        "caption": "",
    })
    if diag.get("label_agreement"):
        tables.append({
            "title": f"Agreement with ground-truth categories ({diag['labelled_items']} labelled items)",
            "columns": ["our level", "label level", "clusters", "classes", "NMI", "ARI", "purity"],
            "rows": [
                [str(r["level"]), str(r["label_level"]), str(r["clusters"]), str(r["classes"]), _fmt(r["nmi"]),
                 _fmt(r.get("ari", float("nan"))), _fmt(r["purity"])]
                for r in diag["label_agreement"]
            ],
            "caption": "",
        })
    return tables


def render_tables(diag: dict) -> list:
    """Rich tables for people: per-level figures, collisions, and label agreement."""
    from rich.table import Table

    out = []
    for spec in diagnostic_tables(diag):
        t = Table(title=spec["title"])
        for i, col in enumerate(spec["columns"]):
            t.add_column(col, justify="left" if spec["columns"] == ["measure", "value"] and i == 0 else "right")
        for row in spec["rows"]:
            t.add_row(*row)
        if spec["caption"]:
            t.caption = spec["caption"]
        out.append(t)
    return out


def print_diagnostics(diag: dict, console: Any = None) -> None:
    from rich.console import Console

    console = console or Console()
    for t in render_tables(diag):
        console.print(t)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def save_diagnostics(diag: dict, path: str | Path) -> None:
    from agentictagger.files import atomic_write_text

    atomic_write_text(path, json.dumps(diag, indent=1, ensure_ascii=False, default=_json_default))


def labels_from_catalog(catalog: Any) -> dict[str, str | None] | None:
    items = list(catalog.items) if hasattr(catalog, "items") else list(catalog)
    labels = {it.item_id: getattr(it, "label", None) for it in items}
    return labels if any(v is not None for v in labels.values()) else None


def run_report(run_dir: str | Path, catalog: Any = None, vocab: "Vocabulary | None" = None) -> dict:
    """Read ``assignments.jsonl`` (and ``vocabulary.json`` unless given) from ``run_dir``, write
    ``diagnostics.json`` there and return it. Labels come from the catalog when it has them."""
    from agentictagger.structures.assignment import Assignment
    from agentictagger.structures.semantic_ids import SemanticIds
    from agentictagger.structures.vocabulary import Vocabulary

    run = Path(run_dir)
    a_path = run / "assignments.jsonl"
    if not a_path.exists():
        raise FileNotFoundError(f"{a_path} not found: run `agentictagger assign` for this run folder first")
    assignment = Assignment.load_jsonl(a_path)
    if vocab is None:
        v_path = run / "vocabulary.json"
        if not v_path.exists():
            raise FileNotFoundError(f"{v_path} not found: build or copy the vocabulary into the run folder")
        vocab = Vocabulary.load(v_path)
    assignment.validate(vocab)
    diag = compute_diagnostics(assignment, vocab, labels_from_catalog(catalog) if catalog is not None else None)
    diag["token_vocabulary"] = SemanticIds.from_assignment(assignment, vocab).token_report(vocab)
    diag["assigner"] = assignment.meta.get("assigner")
    if (run / "build_state" / "jobs").is_dir():
        # What the build's annotators accepted, before assignment forces every item somewhere.
        from agentictagger.vocab.summary import coverage_by_level, load_jobs

        jobs = load_jobs(run)
        if jobs:
            n_build = sum(len(j.items) for j in jobs if j.level == 1)
            diag["build_coverage_per_level"] = coverage_by_level(jobs, n_build)
    from agentictagger.vocab.summary import failed_calls

    failed: dict[str, int] = {}
    for name in ("usage.json", "assign_usage.json"):  # build and assign: LLM calls failed for good
        if (run / name).exists():
            try:
                usage = json.loads((run / name).read_text(encoding="utf-8"))
            except ValueError:
                continue
            for stage, n in failed_calls(usage).items():
                failed[stage] = failed.get(stage, 0) + n
    diag["failed_calls"] = failed
    save_diagnostics(diag, run / "diagnostics.json")
    return diag


def render_tree(vocab: "Vocabulary", assignment: "Assignment", max_level: int = 2) -> Any:
    """A rich Tree of the top levels, each descriptor with its assigned item count (items whose
    path passes through it)."""
    from rich.markup import escape
    from rich.tree import Tree

    counts: Counter[str] = Counter(did for path in assignment.paths.values() for did in path)
    root = Tree(f"[bold]{len(assignment)} items[/bold], levels 1-{min(max_level, vocab.depth)} of {vocab.depth}")

    def walk(node: Any, pid: str) -> None:
        for d in vocab.children(pid):
            if d.level > max_level:
                return
            child = node.add(f"{escape(d.name)} [dim]({counts.get(d.id, 0)})[/dim]")
            walk(child, d.id)

    walk(root, "root")
    return root
