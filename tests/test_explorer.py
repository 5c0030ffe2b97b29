"""The HTML explorer in a real browser: Chromium from the OS packages, headless, driven by
playwright (its Python package only: no browser download). A small offline run is built and
assigned through the CLI, `agentictagger explore` writes explorer.html, and the page is opened
from disk (file://): every level-1 descriptor shows with its count, expanding a node shows its
children, a search for an item title lists that item's full path and opens the tree at it, the
chart draws, and the page makes no network request and logs no console error."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from test_honest_build import CLI, write_catalog

from agentictagger.assign.base import Assignment
from agentictagger.explorer import subtree_counts
from agentictagger.vocabulary import Descriptor, Vocabulary

OFFLINE = ["--set", "build.min_cluster_size=5", "--set", "build.root_descriptors=3", "--set", "build.grouping.restarts=2"]
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def find_chromium() -> str | None:
    """Chromium from the OS packages; installed with apt-get when missing and we may (root)."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    if os.path.exists("/usr/bin/chromium"):
        return "/usr/bin/chromium"
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], env=env, capture_output=True, timeout=900)
        return shutil.which("chromium")
    return None


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE", "COLUMNS": "100"}
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600, cwd=cwd)


@pytest.fixture(scope="module")
def explorer_run(tmp_path_factory) -> tuple[Path, Path]:
    """A finished offline build + assignment of 40 items and its explorer.html."""
    base = tmp_path_factory.mktemp("explore")
    write_catalog(base / "items.jsonl")
    run = base / "run"
    common = ["--catalog", str(base / "items.jsonl"), "--run-dir", str(run), "--set", f"cache_dir={base / 'cache'}", *OFFLINE]
    for command in ("build", "assign"):
        out = cli(base, command, *common)
        assert out.returncode == 0, out.stderr[-3000:]
    page = base / "explorer.html"
    out = cli(base, "explore", str(run), "-o", str(page))
    assert out.returncode == 0, out.stderr[-3000:]
    assert str(page) in out.stdout
    return run, page


def test_explorer_file_is_self_contained(explorer_run):
    run, page = explorer_run
    text = page.read_text(encoding="utf-8")
    assert 5_000_000 > len(text.encode()) > 100_000  # plotly.js inline, the data small
    from plotly.offline import get_plotlyjs

    assert get_plotlyjs() in text  # the chart library is inline; the rest of the page loads nothing
    ours = text.replace(get_plotlyjs(), "")
    for needle in ("src=\"http", "href=\"http", "<link ", "src=\"//", "@import"):
        assert needle not in ours
    # Every descriptor and item is in the embedded data, with the assignment's counts.
    start = text.index('id="explorer-data">') + len('id="explorer-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    vocab = Vocabulary.load(run / "vocabulary.json")
    assignment = Assignment.load_jsonl(run / "assignments.jsonl")
    counts = subtree_counts(vocab, assignment.paths)
    assert {d["id"]: d["count"] for d in data["descriptors"]} == counts
    assert len(data["items"]) == len(assignment) == 40
    assert all(it["text"] for it in data["items"])  # texts from the catalog named in config.yaml
    assert all(len(d["members"]) <= 20 and d["exemplars"] for d in data["descriptors"] if d["count"])
    assert [t["title"].split(":")[0] for t in data["diagnostics"]][:2] == ["Assignment diagnostics", "Collisions and depth"]


def test_explorer_in_headless_chromium(explorer_run, tmp_path):
    run, page_path = explorer_run
    vocab = Vocabulary.load(run / "vocabulary.json")
    assignment = Assignment.load_jsonl(run / "assignments.jsonl")
    counts = subtree_counts(vocab, assignment.paths)
    catalog = {json.loads(ln)["item_id"]: json.loads(ln)["title"] for ln in (page_path.parent / "items.jsonl").read_text().splitlines()}
    # A known item with the deepest path: its title must reveal that whole path.
    item_id, item_path = max(assignment.paths.items(), key=lambda kv: len(kv[1]))
    assert len(item_path) >= 2

    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors) as page:
        # Every level-1 descriptor, with its item count, at the top of the tree.
        top = page.locator("#tree > details.node")
        assert top.count() == len(vocab.level(1))
        for d in vocab.level(1):
            summary = page.locator(f'#tree > details.node[data-id="{d.id}"] > summary')
            assert summary.is_visible()
            assert summary.inner_text().strip() == f"{d.name} ({counts[d.id]})"

        # Expanding a node shows its children (hidden before).
        parent = next(d for d in vocab.level(1) if d.children)
        child = vocab.children(parent.id)[0]
        child_summary = page.locator(f'details.node[data-id="{child.id}"] > summary')
        assert not child_summary.is_visible()
        page.locator(f'details.node[data-id="{parent.id}"] > summary').click()
        assert child_summary.is_visible()
        assert child.name in child_summary.inner_text()
        page.locator(f'details.node[data-id="{parent.id}"] > summary').click()  # collapse again

        # A search for the item's title lists its full path and opens the tree down to it.
        page.fill("#search", catalog[item_id])
        result = page.locator("#results li.result[data-kind=item]").first
        full_path = " > ".join(vocab[d].name for d in item_path)
        assert result.locator(".path").inner_text() == full_path
        assert catalog[item_id] in result.inner_text()
        for did in item_path:
            assert page.locator(f'details.node[data-id="{did}"] > summary').is_visible()
        assert page.locator(f'details.node[data-id="{item_path[-1]}"].hit').count() == 1

        # The diagnostics tables are drawn; no "what changed" without --compare.
        assert page.locator("table.diagnostics").count() >= 2
        assert not page.locator("#compare").is_visible()

        shot = tmp_path / "explorer.png"
        page.screenshot(path=str(shot), full_page=False)
        print(f"explorer screenshot: {shot}")
    assert shot.stat().st_size > 10_000
    check_offline(requests, errors)


def check_offline(requests: list[str], errors: list[str]) -> None:
    """The page loaded only itself (file: and data: URLs) and logged no console error."""
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not errors, errors


@contextlib.contextmanager
def browser_page(page_path: Path, tmp_path: Path, requests: list[str], errors: list[str]) -> Iterator[Any]:
    """``page_path`` open in headless OS Chromium (skips when there is none), its plotly chart
    drawn; every request's URL goes to ``requests`` and every console error to ``errors``."""
    chromium = find_chromium()
    if not chromium:
        pytest.skip("Chromium not found and could not be installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS, viewport={"width": 1400, "height": 1000}
        )
        try:
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            page.goto(page_path.as_uri())
            page.wait_for_selector("#chart .main-svg", timeout=30_000)  # plotly drew the treemap
            yield page
        finally:
            context.close()


# -- two runs: what changed (explore --compare) ---------------------------------------------------
def test_diff_of_a_hand_checked_edit():
    from test_edits import KeywordAssigner, reassigner, small_table, small_vocab

    from agentictagger.rundiff import diff
    from agentictagger.vocab import edits

    v = small_vocab()
    t = small_table(v)
    out = edits.rename(v, t, "d1", "Fresh Fruit")
    out = edits.delete(out.vocabulary, out.table, "d1.2", reassign=reassigner(KeywordAssigner()))  # p1 -> d1
    out = edits.move(out.vocabulary, out.table, "d2.1", "d3")  # h1 -> d3 > d2.1
    paths = lambda table: {r.item_id: list(r.path) for r in table}  # noqa: E731
    ids = lambda table: {r.item_id: (r.path, r.resolver) for r in table}  # noqa: E731
    d = diff(v, paths(t), out.vocabulary, paths(out.table), texts={"p1": "ripe pear"}, before_ids=ids(t), after_ids=ids(out.table))
    assert d["summary"] == {
        "descriptors_before": 7, "descriptors_after": 6, "added": 0, "removed": 1, "renamed": 1, "moved": 1,
        "matched_by_name": 0, "count_changed": 2, "items_before": 9, "items_after": 9, "items_path_changed": 2,
        "items_only_before": 0, "items_only_after": 0, "ids_changed": 2,
    }
    kinds = {r["kind"]: r for r in d["descriptors"]}
    assert kinds["removed"]["id_before"] == "d1.2" and kinds["removed"]["items_now_in"] == [{"path": "Fresh Fruit", "items": 1}]
    assert (kinds["renamed"]["name_before"], kinds["renamed"]["name_after"]) == ("Fruit", "Fresh Fruit")
    assert (kinds["moved"]["path_before"], kinds["moved"]["path_after"]) == ("Tools > Hammers", "Furniture > Hammers")
    assert [(c["id_after"], c["before"], c["after"]) for c in d["counts"]] == [("d2", 3, 2), ("d3", 2, 3)]
    assert {i["id"]: (i["before"], i["after"]) for i in d["items"]} == {
        "p1": ("Fruit > Pears", "Fresh Fruit"), "h1": ("Tools > Hammers", "Furniture > Hammers")}
    status = {n["id"]: n["status"] for n in d["trees"]["before"]}
    assert status["d1.2"] == "removed" and status["d1"] == "renamed" and status["d2.1"] == "moved" and status["d2"] == "count"
    # Another build with other ids but the same names: matched by name, nothing else changed.
    renumbered = Vocabulary([Descriptor("x" + d.id, d.name, d.definition, d.level, "root" if d.parent == "root" else "x" + d.parent) for d in v])
    same = {i: ["x" + p for p in path] for i, path in paths(t).items()}
    d = diff(v, paths(t), renumbered, same)
    assert d["summary"]["matched_by_name"] == 7 and d["summary"]["items_path_changed"] == 0
    assert d["summary"]["added"] == d["summary"]["removed"] == d["summary"]["renamed"] == d["summary"]["moved"] == 0


@pytest.fixture(scope="module")
def compare_page(explorer_run) -> tuple[Path, Path, dict, Path]:
    """The explorer's run edited through the API (a level-1 descriptor renamed, a leaf deleted:
    its items re-assigned), and `explore EDITED --compare RUN`."""
    from agentictagger import AgenticTagger
    from agentictagger.rundiff import diff_runs

    run, page = explorer_run
    edited = Path(shutil.copytree(run, page.parent / "edited", ignore=shutil.ignore_patterns("explorer.html")))
    tagger = AgenticTagger.load(edited)
    vocab = tagger.vocabulary
    counts = subtree_counts(vocab, tagger.assignments.paths)
    top = vocab.level(1)[0]
    leaf = next(d for d in vocab if d.level >= 2 and not d.children and counts[d.id] and len(vocab.children(d.parent)) > 1)
    tagger.rename(top.id, "Renamed For Compare")
    tagger.delete(leaf.id)
    out = page.parent / "compare.html"
    res = cli(page.parent, "explore", str(edited), "--compare", str(run), "-o", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    return edited, out, diff_runs(run, edited), leaf.id


def test_compare_page_in_headless_chromium(explorer_run, compare_page, tmp_path):
    run, _ = explorer_run
    edited, page_path, expected, leaf = compare_page
    s = expected["summary"]
    assert s["removed"] == 1 and s["renamed"] == 1 and s["items_path_changed"] >= 1 and s["ids_changed"] >= 1
    vocab_before = Vocabulary.load(run / "vocabulary.json")
    top = vocab_before.level(1)[0]
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors) as page:
        assert page.locator("#compare").is_visible()
        assert "(before" in page.locator("#compare-title").inner_text()
        # The summary shows the diff's counts.
        for key in ("added", "removed", "renamed", "moved", "count_changed", "items_path_changed", "ids_changed"):
            assert page.locator(f'#compare-summary td[data-key="{key}"]').inner_text() == str(s[key]), key
        # The renamed and the removed descriptor, each in its row.
        renamed = page.locator(f'#compare-descriptors tr[data-kind="renamed"][data-id="{top.id}"]')
        assert top.name in renamed.inner_text() and "Renamed For Compare" in renamed.inner_text()
        removed = page.locator(f'#compare-descriptors tr[data-kind="removed"][data-id="{leaf}"]')
        assert vocab_before[leaf].name in removed.inner_text() and "items now in:" in removed.inner_text()
        # A moved item: its before and after paths.
        item = expected["items"][0]
        row = page.locator(f'#compare-items tr[data-item="{item["id"]}"]')
        assert row.locator("td.before").inner_text() == item["before"] and row.locator("td.after").inner_text() == item["after"]
        assert page.locator("#compare-items tr[data-item]").count() == len(expected["items"])
        # Side by side: the removed descriptor on the left only, the new name on the right.
        assert page.locator(f'#compare-before li.removed[data-id="{leaf}"]').is_visible()
        assert page.locator(f'#compare-after li[data-id="{leaf}"]').count() == 0
        assert "Renamed For Compare" in page.locator(f'#compare-after li.renamed[data-id="{top.id}"]').inner_text()
        # The rest of the page still works on the edited run.
        assert page.locator("#tree > details.node").count() == len(vocab_before.level(1))
        page.locator("#compare").screenshot(path=str(tmp_path / "compare.png"))
        print(f"compare screenshot: {tmp_path / 'compare.png'}")
    check_offline(requests, errors)
