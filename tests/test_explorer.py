"""The HTML explorer in a real browser: Chromium from the OS packages, headless, driven by
playwright (its Python package only: no browser download). A small offline run is built and
assigned through the CLI, `agentictagger explore` writes explorer.html, and the page is opened
from disk (file://): every level-1 descriptor shows with its count, expanding a node shows its
children, a search for an item title lists that item's full path and opens the tree at it, the
chart draws, and the page makes no network request and logs no console error. The same page at
phone width (390x844) has no horizontal overflow; deep links, search by id and by word form, the
CSV of a descriptor's members, the footer's plotly.js version, hostile names and titles (shown as
text, never as markup, also in the chart), failed writes, a shared plotly.js file, and the warning
for two unrelated runs are checked too."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest
from test_honest_build import CLI, write_catalog

from agentictagger.structures.assignment import Assignment
from agentictagger.run.compare import subtree_counts
from agentictagger.structures.semantic_ids import SemanticIds
from agentictagger.structures.vocabulary import Descriptor, Vocabulary

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


LOCAL = ("file:", "data:", "blob:")


def check_offline(requests: list[str], errors: list[str]) -> None:
    """The page loaded only itself (file:, data: and its own blob: URLs) and logged no console error."""
    assert requests and all(u.startswith(LOCAL) for u in requests), [u for u in requests if not u.startswith(LOCAL)]
    assert not errors, errors


@contextlib.contextmanager
def browser_page(
    page_path: Path, tmp_path: Path, requests: list[str], errors: list[str], viewport: tuple[int, int] = (1400, 1000),
    fragment: str = "", messages: list[str] | None = None,
) -> Iterator[Any]:
    """``page_path`` (plus ``#fragment``) open in headless OS Chromium (skips when there is none)
    at ``viewport``, its plotly chart drawn; every request's URL goes to ``requests``, every
    console error to ``errors``, and every console message to ``messages``."""
    chromium = find_chromium()
    if not chromium:
        pytest.skip("Chromium not found and could not be installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path)
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True,
        )
        try:
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
            if messages is not None:
                page.on("console", lambda m: messages.append(f"console.{m.type}: {m.text}"))
            page.goto(page_path.as_uri() + (f"#{fragment}" if fragment else ""))
            page.wait_for_selector("#chart .main-svg", timeout=30_000)  # plotly drew the treemap
            yield page
        finally:
            context.close()


# -- two runs: what changed (explore --compare) ---------------------------------------------------
def test_diff_of_a_hand_checked_edit():
    from test_edits import KeywordAssigner, reassigner, small_table, small_vocab

    from agentictagger.run.compare import diff
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
    from agentictagger.run.compare import diff_runs

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
        # An edit of the same run is no unrelated run: no warning.
        assert not page.locator("#compare-warning").is_visible()
        assert expected["relation"]["related"] and not expected["relation"]["reasons"]
        # The rest of the page still works on the edited run.
        assert page.locator("#tree > details.node").count() == len(vocab_before.level(1))
        page.locator("#compare").screenshot(path=str(tmp_path / "compare.png"))
        print(f"compare screenshot: {tmp_path / 'compare.png'}")
    check_offline(requests, errors)


# -- phone width, deep links, search, members CSV, footer -----------------------------------------
def no_overflow(page: Any) -> None:
    width = page.evaluate("window.innerWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= width, "the page scrolls sideways"
    wide = page.evaluate(
        "Array.from(document.querySelectorAll('body *')).filter(e => e.offsetParent !== null && e.closest('.scroll') === null"
        " && e.getBoundingClientRect().right > window.innerWidth + 1).map(e => e.tagName + '.' + e.className).slice(0, 5)"
    )
    assert not wide, f"elements past the right edge: {wide}"


@pytest.mark.parametrize("viewport", [(1400, 900), (390, 844)], ids=["desktop", "phone"])
def test_layout_at_desktop_and_phone_width(explorer_run, tmp_path, viewport):
    run, page_path = explorer_run
    vocab = Vocabulary.load(run / "vocabulary.json")
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors, viewport=viewport) as page:
        # Everything open: the tree, every member list, the legend; still no sideways scrolling.
        page.click("#expand-all")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        no_overflow(page)
        chart, tree = page.locator("#chart").bounding_box(), page.locator("main > section").first.bounding_box()
        assert chart["x"] >= 0 and chart["x"] + chart["width"] <= viewport[0]
        if viewport[0] < 800:  # one column: the chart under the tree, as wide as the screen allows
            assert chart["y"] > tree["y"] and chart["width"] > 0.8 * viewport[0]
        else:  # two columns: the chart beside the tree
            assert chart["x"] > tree["x"] + tree["width"] and abs(chart["y"] - tree["y"]) < 150
        assert page.locator("#tree > details.node").count() == len(vocab.level(1))
        page.screenshot(path=str(tmp_path / f"explorer-{viewport[0]}.png"))
    check_offline(requests, errors)


def test_deep_link_search_and_csv(explorer_run, tmp_path):
    run, page_path = explorer_run
    vocab = Vocabulary.load(run / "vocabulary.json")
    assignment = Assignment.load_jsonl(run / "assignments.jsonl")
    counts = subtree_counts(vocab, assignment.paths)
    titles = {json.loads(ln)["item_id"]: json.loads(ln)["title"] for ln in (page_path.parent / "items.jsonl").read_text().splitlines()}
    deep = next(d for d in vocab if d.level >= 2 and counts[d.id])  # e.g. d1.1
    other = [d for d in vocab.children(deep.parent) if d.id != deep.id] + vocab.children(deep.id)
    other = other[0]  # visible once the deep link has opened the path
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors, fragment=deep.id) as page:
        # page.html#d1.1 opens that descriptor: its path is open and it is selected.
        node = page.locator(f'details.node[data-id="{deep.id}"]')
        assert node.get_attribute("class").split().count("selected") == 1
        assert node.locator(":scope > summary").is_visible()
        assert node.evaluate("e => e.open")
        # Selecting another descriptor sets the address to it.
        page.locator(f'details.node[data-id="{other.id}"] > summary').click()
        assert page.evaluate("location.hash") == f"#{other.id}"
        assert "selected" in page.locator(f'details.node[data-id="{other.id}"]').get_attribute("class")
        page.click("#collapse-all")

        # Search by descriptor id: that descriptor first.
        page.fill("#search", deep.id)
        first = page.locator("#results li.result").first
        assert first.get_attribute("data-kind") == "descriptor" and first.get_attribute("data-id") == deep.id
        assert vocab[deep.id].name in first.inner_text()

        # Search by another word form: "<word>s" finds items whose title has only "<word>".
        item_id = next(iter(assignment.paths))
        word = next(w for w in titles[item_id].split() if w.isalpha() and len(w) >= 4)
        plural = word.lower() + ("es" if word.lower().endswith(("s", "x", "ch", "sh")) else "s")
        assert plural not in titles[item_id].lower()
        page.fill("#search", plural)
        hit = page.locator(f'#results li.result[data-kind=item][data-id="{item_id}"]')
        assert hit.count() == 1
        assert hit.locator("mark").first.inner_text().lower() == word.lower()  # the matched word is highlighted
        assert page.locator(f'details.node[data-id="{assignment.paths[item_id][-1]}"].hit').count() == 1
        # Clicking the result shows that item, highlighted, in its descriptor's member list.
        hit.click()
        shown = page.locator(f'details.node[data-id="{assignment.paths[item_id][-1]}"] li.hit-item[data-item="{item_id}"]')
        assert shown.is_visible()

        # A search with no match leaves the tree as it was before searching (all closed).
        page.click("#collapse-all")
        page.fill("#search", "")
        page.fill("#search", plural)
        assert page.locator("details.node[open]").count() >= 1
        page.fill("#search", "qqqzzznothing")
        assert page.locator("#result-note").inner_text() == "0 matches"
        assert page.locator("details.node[open]").count() == 0

        # Every member of the largest level-1 descriptor, as CSV, with paths and resolvers.
        big = max(vocab.level(1), key=lambda d: counts[d.id])
        page.fill("#search", "")
        page.locator(f'details.node[data-id="{big.id}"] > summary').click()
        with page.expect_download() as info:
            page.locator(f'button.csv[data-id="{big.id}"]').click()
        download = info.value
        assert download.suggested_filename == f"members-{big.id}.csv"
        rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8-sig"))))
        members = [i for i, p in assignment.paths.items() if big.id in p]
        assert len(rows) == counts[big.id] == len(members)
        assert [r["item_id"] for r in rows] == members
        ids = {r.item_id: r for r in SemanticIds.read(run / "semantic_ids.parquet")}
        for r in rows:
            assert r["text"] == titles[r["item_id"]]
            assert r["path_ids"] == " > ".join(assignment.paths[r["item_id"]])
            assert r["path_names"] == " > ".join(vocab[d].name for d in assignment.paths[r["item_id"]])
            assert int(r["resolver"]) == ids[r["item_id"]].resolver
        # The member list shows all of them too, with their resolvers.
        members_box = page.locator(f'details.node[data-id="{big.id}"] > .info > details.members')
        members_box.locator(":scope > summary").click()
        members_box.locator(f'li[data-item="{members[-1]}"]').wait_for()  # drawn when the list opens
        assert members_box.locator("li").count() == len(members)
        assert members_box.locator("li .sid").first.inner_text() == f"#{ids[members[0]].resolver}"

        # The legend explains the figures.
        legend = page.locator("#legend")
        legend.locator("summary").click()
        for term in ("util. (vocab)", "cov. where children exist", "#N", "ID (d3.1)"):
            assert term in legend.inner_text()
    check_offline(requests, errors)


def test_footer_names_the_embedded_plotly_js_and_treemap_counts(explorer_run, tmp_path):
    from plotly.offline import get_plotlyjs_version

    _, page_path = explorer_run
    requests: list[str] = []
    errors: list[str] = []
    messages: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors, messages=messages) as page:
        version = get_plotlyjs_version()
        assert page.evaluate("Plotly.version") == version
        footer = page.locator("#footer").inner_text()
        assert f"plotly.js {version} (embedded)" in footer
        # Zoom into a box, then hover along the top (path bar, parent band): every box has its
        # own path and count, none reads "-".
        page.locator("#chart g.slice").nth(1).click(force=True)
        page.wait_for_timeout(800)
        box = page.locator("#chart").bounding_box()
        texts = []
        for dy in range(2, 90, 6):
            for fx in (0.1, 0.5, 0.9):
                page.mouse.move(box["x"] + fx * box["width"], box["y"] + dy)
                texts += page.evaluate("Array.from(document.querySelectorAll('.hoverlayer text')).map(t => t.textContent)")
        assert texts and not [t for t in texts if t.startswith("-")], texts
        assert not [m for m in messages if "could not be found" in m], messages[:3]
    check_offline(requests, errors)


# -- hostile names and titles ---------------------------------------------------------------------
HOSTILE_NAMES = {
    "d1": "<!-- not a comment",
    "d1.1": "</script><script>window.__pwned = 1</script>",
    "d1.2": '<b>Bold</b> <a href="https://example.com/x">link</a>',
    "d2": "\"Quotes\" & 'single' &amp; Crème brûlée 日本語 🚀",
    "d2.1": '<img src=x onerror="window.__pwned = 2">',
}
HOSTILE_TITLES = [
    "<!-- title {i}", "</script><script>window.__pwned = 3</script> {i}", "<b>bold</b> item {i}",
    '<a href="https://example.com/{i}">click</a>', "\"quoted\" 'item' {i} & more", "=HYPERLINK(\"x\") {i}",
    "Crème brûlée 日本語 🚀 {i}", "<img src=x onerror=\"window.__pwned = 4\"> {i}",
]


def write_hostile_run(base: Path) -> tuple[Path, Path, dict[str, str], dict[str, list[str]]]:
    """A run folder written directly (vocabulary, assignment, semantic IDs) whose descriptor
    names and item titles are all markup, and its catalog: 30 items under d1.1, 4 under d1.2,
    4 under d2.1, 2 stopping at d2."""
    from agentictagger.structures.semantic_ids import SemanticIds

    run = base / "hostile-run"
    run.mkdir(parents=True)
    v = Vocabulary()
    for did, name in HOSTILE_NAMES.items():
        parent = did.rsplit(".", 1)[0] if "." in did else "root"
        v.add(Descriptor(did, name, f"{name} (definition)", did.count(".") + 1, parent))
    paths: dict[str, list[str]] = {}
    for n, leaf in [(30, ["d1", "d1.1"]), (4, ["d1", "d1.2"]), (4, ["d2", "d2.1"]), (2, ["d2"])]:
        for _ in range(n):
            paths[f"h{len(paths)}"] = list(leaf)
    titles = {iid: HOSTILE_TITLES[k % len(HOSTILE_TITLES)].format(i=k) for k, iid in enumerate(paths)}
    v.save(run / "vocabulary.json")
    assignment = Assignment(paths)
    assignment.save_jsonl(run / "assignments.jsonl")
    SemanticIds.from_assignment(assignment, v).save_parquet(run / "semantic_ids.parquet")
    catalog = base / "hostile.jsonl"
    catalog.write_text("".join(json.dumps({"item_id": i, "title": t}, ensure_ascii=False) + "\n" for i, t in titles.items()), encoding="utf-8")
    return run, catalog, titles, paths


@pytest.fixture(scope="module")
def hostile_page(tmp_path_factory) -> tuple[Path, Path, dict[str, str], dict[str, list[str]]]:
    base = tmp_path_factory.mktemp("hostile")
    run, catalog, titles, paths = write_hostile_run(base)
    page = base / "hostile.html"
    out = cli(base, "explore", str(run), "--catalog", str(catalog), "-o", str(page))
    assert out.returncode == 0, out.stderr[-3000:]
    return run, page, titles, paths


def test_hostile_text_is_data_not_markup(hostile_page):
    _, page_path, titles, _ = hostile_page
    text = page_path.read_text(encoding="utf-8")
    start = text.index('id="explorer-data">') + len('id="explorer-data">')
    raw = text[start:text.index("</script>", start)]
    assert "<" not in raw and ">" not in raw  # nothing in the data can close the element or open a comment
    data = json.loads(raw)
    assert {d["id"]: d["name"] for d in data["descriptors"]} == HOSTILE_NAMES
    assert {it["id"]: it["text"] for it in data["items"]} == titles


def test_hostile_page_renders_as_text(hostile_page, tmp_path):
    _, page_path, titles, paths = hostile_page
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors) as page:
        page.click("#expand-all")
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        # Every name shows, as the characters it has.
        for did, name in HOSTILE_NAMES.items():
            assert page.locator(f'details.node[data-id="{did}"] > summary .name').inner_text() == name
        for iid in ("h0", "h1", "h2", "h3", "h7"):
            assert page.locator(f'details.members li[data-item="{iid}"]').first.inner_text().startswith(titles[iid])
        # A search for markup finds it as text.
        page.fill("#search", "<b>")
        assert page.locator('#results li.result[data-kind=descriptor][data-id="d1.2"]').count() == 1
        assert page.locator("#results li.result[data-kind=item]").count() == sum(1 for t in titles.values() if "<b>" in t)
        # No markup from the data is live: no element it would create, no script it would run.
        live = page.evaluate(
            "Array.from(document.querySelectorAll('main b, main a[href^=http], main img, main script, .below b, .below img'))"
            ".map(e => e.outerHTML)")
        assert not live, live
        assert page.evaluate("window.__pwned") is None
        # The chart (plotly draws its own small HTML): labels and hover texts are text too.
        assert page.locator("#chart a").count() == 0
        assert page.locator('#chart tspan[style*="bold"]').count() == 0
        chart_text = page.evaluate("Array.from(document.querySelectorAll('#chart text')).map(t => t.textContent).join(' | ')")
        assert "<b>Bold</b>" in chart_text and "<!-- not a comment" in chart_text, chart_text
        box = page.locator("#chart g.slice").nth(2).bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        hover = page.evaluate("Array.from(document.querySelectorAll('.hoverlayer text')).map(t => t.textContent).join(' ')")
        assert "<" in hover or "\"" in hover or "&" in hover, hover
        assert page.locator(".hoverlayer a").count() == 0
        # The CSV keeps every member's text as it is (a leading "=" is quoted for spreadsheets).
        with page.expect_download() as info:
            page.locator('button.csv[data-id="d1"]').click()
        rows = list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
        assert [r["item_id"] for r in rows] == [i for i, p in paths.items() if "d1" in p] and len(rows) == 34
        for r in rows:
            t = titles[r["item_id"]]
            assert r["text"] == ("'" + t if t.startswith("=") else t)
            assert r["path_names"] == " > ".join(HOSTILE_NAMES[d] for d in paths[r["item_id"]])
        no_overflow(page)
    check_offline(requests, errors)


# -- writing the page: failures leave nothing, a shared plotly.js -----------------------------------
def test_failed_write_leaves_nothing(hostile_page, tmp_path, monkeypatch):
    run, page_path, _, _ = hostile_page
    catalog = page_path.parent / "hostile.jsonl"
    # -o a folder: one line, exit 1, and no temporary file anywhere.
    folder = tmp_path / "runs"
    folder.mkdir()
    out = cli(tmp_path, "explore", str(run), "--catalog", str(catalog), "-o", str(folder))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "is a folder" in out.stdout + out.stderr and len((out.stdout + out.stderr).strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"] and not list(folder.iterdir())
    # A write that fails at the rename (full disk, lost mount): the old page is kept, no *.tmp.
    import agentictagger.files as files
    from agentictagger.run.explorer import write_explorer

    target = tmp_path / "page.html"
    target.write_text("old page", encoding="utf-8")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", fail)
    with pytest.raises(OSError):
        write_explorer(run, target, catalog_path=catalog)
    assert target.read_text(encoding="utf-8") == "old page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["page.html", "runs"]


def test_plotly_js_beside_the_page(hostile_page, tmp_path):
    from plotly.offline import get_plotlyjs, get_plotlyjs_version

    run, inline_page, _, _ = hostile_page
    catalog = inline_page.parent / "hostile.jsonl"
    pages = [tmp_path / "a.html", tmp_path / "b.html"]
    for p in pages:
        out = cli(tmp_path, "explore", str(run), "--catalog", str(catalog), "--plotly-js", "beside", "-o", str(p))
        assert out.returncode == 0, out.stderr[-3000:]
    lib = tmp_path / f"plotly-{get_plotlyjs_version()}.min.js"
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted(["a.html", "b.html", lib.name])  # one shared copy
    assert lib.read_text(encoding="utf-8") == get_plotlyjs()
    size, inline_size = pages[0].stat().st_size, inline_page.stat().st_size
    print(f"page sizes: inline {inline_size:,} B, beside {size:,} B + {lib.stat().st_size:,} B shared")
    assert size < 200_000 < inline_size and inline_size - size > 0.9 * lib.stat().st_size
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(pages[1], tmp_path, requests, errors) as page:
        assert page.evaluate("Plotly.version") == get_plotlyjs_version()
        assert f"from {lib.name}" in page.locator("#footer").inner_text()
    assert lib.as_uri() in requests
    check_offline(requests, errors)
    bad = cli(tmp_path, "explore", str(run), "--plotly-js", "cdn", "-o", str(tmp_path / "c.html"))
    assert bad.returncode == 2 and "--plotly-js must be one of inline, beside" in bad.stdout + bad.stderr


# -- two unrelated runs ------------------------------------------------------------------------------
def test_relation_of_runs():
    from test_edits import small_table, small_vocab

    from agentictagger.run.compare import diff

    v = small_vocab()
    paths = {r.item_id: list(r.path) for r in small_table(v)}
    texts = {i: f"text of {i}" for i in paths}
    same = diff(v, paths, v, paths, texts=texts, before_texts=texts)["relation"]
    assert same["related"] and same["reasons"] == [] and same["items_in_both"] == len(paths)
    # The same item ids with other texts: other catalogs.
    other_texts = {i: f"something else {i}" for i in paths}
    rel = diff(v, paths, v, paths, texts=texts, before_texts=other_texts)["relation"]
    assert not rel["related"] and rel["reasons"][0].startswith("other catalogs: of 9 item ids in both, 9 have another text")
    # Other items and other names: both reasons.
    renamed = Vocabulary([Descriptor(d.id, f"Other {k}", "", d.level, d.parent) for k, d in enumerate(v)])
    moved_items = {f"x{i}": p for i, p in paths.items()}
    rel = diff(v, paths, renamed, moved_items)["relation"]
    assert not rel["related"] and [r.split(":")[0] for r in rel["reasons"]] == ["other items", "other vocabularies"]
    # Different build sets alone (a subsample, added items) are a note, not a warning.
    a, b = small_vocab(), small_vocab()
    a.meta["fingerprint"], b.meta["fingerprint"] = {"catalog.items": "aaa"}, {"catalog.items": "bbb"}
    rel = diff(a, paths, b, paths)["relation"]
    assert rel["related"] and rel["same_build_items"] is False and len(rel["notes"]) == 1


def test_compare_of_unrelated_runs_warns(explorer_run, hostile_page, tmp_path):
    run, _ = explorer_run
    hostile_run, _, _, _ = hostile_page
    page_path = tmp_path / "unrelated.html"
    out = cli(tmp_path, "explore", str(run), "--compare", str(hostile_run), "-o", str(page_path))
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("warning:")]
    assert len(lines) == 2 and all("look unrelated" in ln for ln in lines), out.stderr
    assert "other items: only 0 of 40 items" in lines[0] and "other vocabularies" in lines[1]
    requests: list[str] = []
    errors: list[str] = []
    with browser_page(page_path, tmp_path, requests, errors, viewport=(390, 844)) as page:
        warning = page.locator("#compare-warning")
        assert warning.is_visible() and "look unrelated" in warning.inner_text()
        assert warning.locator("li").count() == 2
        assert page.locator("#compare").is_visible()
        no_overflow(page)
    check_offline(requests, errors)
