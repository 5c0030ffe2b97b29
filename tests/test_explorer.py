"""The HTML explorer in a real browser: Chromium from the OS packages, headless, driven by
playwright (its Python package only: no browser download). A small offline run is built and
assigned through the CLI, `agentictagger explore` writes explorer.html, and the page is opened
from disk (file://): every level-1 descriptor shows with its count, expanding a node shows its
children, a search for an item title lists that item's full path and opens the tree at it, the
chart draws, and the page makes no network request and logs no console error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from test_honest_build import CLI, write_catalog

from agentictagger.assign.base import Assignment
from agentictagger.explorer import subtree_counts
from agentictagger.vocabulary import Vocabulary

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
    chromium = find_chromium()
    if not chromium:
        pytest.skip("Chromium not found and could not be installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install -e '.[dev]')")
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

            # The diagnostics tables are drawn.
            assert page.locator("table.diagnostics").count() >= 2

            shot = tmp_path / "explorer.png"
            page.screenshot(path=str(shot), full_page=False)
            print(f"explorer screenshot: {shot}")
        finally:
            context.close()
    assert shot.stat().st_size > 10_000
    assert requests and all(u.startswith(("file:", "data:")) for u in requests), [u for u in requests if not u.startswith(("file:", "data:"))]
    assert not errors, errors
