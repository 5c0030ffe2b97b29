"""Writes the "Which code built each file" table of bench/RESULTS.md from the commits the result
files record, so a reader sees for every file which of the changes that alter builds came after it
(and so which figures would move if it were rerun). Run after committing a result file:

  python bench/render_provenance.py

A file records its commit in ``provenance.git_commit`` (and in ``git_commit`` of each part a
bench reruns on its own, e.g. the profiles of ``taxonomy_alignment.json``); a file written before
benches recorded their commit is dated by the commit that last changed it, an upper bound.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
START, END = "<!-- provenance:start -->", "<!-- provenance:end -->"

#: Changes to the code that alter what a build gives (newest first): commit, what changed. A file
#: built before one of them can differ by what that change touches.
CHANGES = [
    ("db6d1a7", "sub-jobs draw 5 times (was 20) and level-2 definitions try fewer separating examples: the tree below level 1"),
    ("22bb598", "prototypes blend each descriptor's current name when items are matched (a renamed descriptor's rows follow its new name)"),
    ("75c6185", "the name weighs 0.7 in matching (was 0.1): which items each descriptor holds, deeper jobs, names"),
    ("707ebd8", "a comma in a name is a list of phrases (LLM names only)"),
    ("d766e31", "a sub-job that ends with one descriptor adds no level (levels 3+, and through the assigner a few items above)"),
    ("5f0e4e5", "names opening with half of a fixed phrase made whole"),
    ("3c9d26a", "a refinement rename keeps the kind; a group added for failures needs a name its titles say"),
    ("110a9c9", "a modifier is qualified only by a kind ending in a lexicon word; more praise words"),
    ("f7268c4", "modifier names followed by their group's commonest kind"),
    ("977fa80", "names that praise, or end in a benefit or maker head, rejected"),
    ("9ae06b4", "key-phrase names completed to the compounds their titles write"),
    ("f61d45a", "brands written out for a brand field's initials are brand strings"),
    ("61a2576", "key phrases never span a break; a title's kind survives a removed brand"),
    ("e77d415", "a refinement rename never only drops words"),
    ("7ee6132", "product lines written after a brand are no names"),
    ("0fe2b77", "units, clauses and one-word abbreviations are no names"),
    ("0b591a2", "16 fine clusters per descriptor and float64 seeding (was 8, float32)"),
]

#: What a file's figures rest on when that is not the code its own run recorded.
NOTES = {
    "names_llm_judge.json": "judges the run folders of taxonomy_alignment.json: its offline rows the offline builds, "
    "its local-llm-l2 rows that profile's builds (see that profile's row)",
    "text_query.json": "queries the offline builds of taxonomy_alignment.json",
    "all_llm_profile.json": "its all-LLM rows match descriptors by their texts alone, which the three newest changes do not touch",
    "all_llm_profile_n300.json": "its all-LLM rows match descriptors by their texts alone, which the three newest changes do not touch",
    "all_llm_profile_first_step.json": "its all-LLM rows match descriptors by their texts alone, which the three newest changes do not touch",
    "namers_side_by_side.json": "reads the offline builds of taxonomy_alignment.json as they were then",
    "critique_names.json": "reads the builds of taxonomy_alignment.json as they were then",
}


#: Files whose figures use no vocabulary build, so no change above touches them.
NO_BUILD = {
    "sasrec_strength.json": "item-ID SASRec only",
    "chunked_ce.json": "a loss computation only",
    "embed_speed.json": "sentence-embedding speed only",
    "llm_backend.json": "LLM backends only",
    "tune_grouping.json": "scores the grouping alone",
    "tune_grouping_seeding.json": "scores the grouping alone",
}


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()


def is_ancestor(change: str, commit: str) -> bool:
    return subprocess.run(["git", "merge-base", "--is-ancestor", change, commit], cwd=REPO).returncode == 0


def parts(data: object) -> list[tuple[str, str, bool | None]]:
    """(part label, commit, uncommitted changes) for each part of a file that records a commit.
    Parts below the top level (e.g. alignment profiles) are listed by their path; the top-level
    ``provenance`` only when no part below records one."""
    found: list[tuple[str, str, bool | None]] = []

    def walk(node: object, path: list[str], depth: int) -> None:
        if not isinstance(node, dict) or depth > 5:
            return
        if path and path[-1] != "provenance" and isinstance(node.get("git_commit"), str):
            found.append((" / ".join(p for p in path if p not in ("catalogs", "profiles")), node["git_commit"],
                          node.get("git_uncommitted_changes")))
        for k, v in node.items():
            if k != "provenance":
                walk(v, [*path, k], depth + 1)

    walk(data, [], 0)
    if found:
        return found
    prov = data.get("provenance") if isinstance(data, dict) else None
    if isinstance(prov, dict) and isinstance(prov.get("git_commit"), str):
        return [("", prov["git_commit"], prov.get("git_uncommitted_changes"))]
    return []


def rows() -> list[str]:
    present = [c for c, _ in CHANGES if git("rev-parse", "--verify", "-q", c + "^{commit}")]
    out = [
        "| file (parts) | code it was built with | changes it predates |",
        "|---|---|---|",
    ]
    for f in sorted(RESULTS.glob("*.json")):
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        found = parts(data)
        recorded = bool(found)
        if not recorded:
            found = [("", git("log", "-1", "--format=%h", "--", str(f.relative_to(REPO))), None)]
        # Parts that predate the same changes share a row.
        groups: dict[tuple[str, ...], list[tuple[str, str, bool | None]]] = {}
        for label, commit, dirty in found:
            missing = tuple(c for c in present if not is_ancestor(c, commit))
            groups.setdefault(missing, []).append((label, commit, dirty))
        for missing, members in groups.items():
            labels = [m[0] for m in members if m[0]]
            listed = ", ".join(labels)
            name = f"`{f.name}`" + (f" ({listed})" if labels and len(listed) <= 80 else f" ({len(labels)} parts)" if labels else "")
            commits = list(dict.fromkeys(git("rev-parse", "--short=7", m[1]) or m[1][:7] for m in members))
            built = ", ".join(commits)
            if not recorded:
                built = f"at or before {built} (not recorded; the commit that last changed the file)"
            if any(m[2] for m in members):
                built += ", with uncommitted changes"
            if f.name in NO_BUILD:
                changed = "none it depends on: " + NO_BUILD[f.name]
            elif not missing:
                changed = "none: the current code"
            else:
                # The history is linear: a file that predates a change predates every later one.
                changed = f"`{missing[-1]}`" + (f" and the {len(missing) - 1} after it" if len(missing) > 1 else "")
            note = NOTES.get(f.name)
            out.append(f"| {name} | {built} | {changed}{'; ' + note if note else ''} |")
    return out


def render() -> str:
    lines = [
        START,
        "Changes that alter what a build gives, newest first (a file built before one of them can differ by what",
        "it touches, and by every later one):",
        "",
        *[f"- `{c}`: {what}" for c, what in CHANGES],
        "",
        *rows(),
        END,
    ]
    return "\n".join(lines)


def main() -> None:
    path = REPO / "bench" / "RESULTS.md"
    text = path.read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise SystemExit(f"{path} lacks the {START} ... {END} markers; add them where the table goes")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(head + render() + tail, encoding="utf-8")
    print(f"wrote the provenance table of {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
