"""Catalog loading and validation, on small hand-made files and the real shared datasets."""

from __future__ import annotations

import csv
import gzip
import json
import logging
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agentictagger.catalog import (
    MAX_LISTED_PROBLEMS,
    Catalog,
    CatalogError,
    Item,
    load_sequences,
    load_shared,
    shared_data_root,
    truncate_text,
)
from agentictagger.config import CatalogConfig

ROWS = [
    {"item_id": "A1", "title": "Red nail polish", "brand": "OPI", "category": "nails"},
    {"item_id": "A2", "title": "Steel bolts M6", "brand": "Acme", "category": "hardware"},
    {"item_id": "A3", "title": "Lab beaker 250 ml", "brand": "Pyrex", "category": "lab"},
]
TPL = CatalogConfig(text_template="{title}. Brand: {brand}", label_field="category")


def write_jsonl(path: Path, lines: list[str | bytes]) -> Path:
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n"
    path.write_bytes(data)
    return path


def load_error(path: Path, cfg: CatalogConfig | None = None) -> CatalogError:
    with pytest.raises(CatalogError) as ei:
        Catalog.load(path, cfg)
    return ei.value


# -- rendering ---------------------------------------------------------------------------------


def test_template_rendering_labels_and_string_ids(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS]
    rows[0]["item_id"] = 17  # ids are always strings
    p = write_jsonl(tmp_path / "c.jsonl", [json.dumps(r) for r in rows])
    cat = Catalog.load(p, TPL)
    assert cat.ids == ["17", "A2", "A3"]
    assert cat.texts[1] == "Steel bolts M6. Brand: Acme"
    assert cat.labels == ["nails", "hardware", "lab"]
    assert cat.by_id("A3").fields["brand"] == "Pyrex"
    assert cat.index_of("A2") == 1 and "A2" in cat and "nope" not in cat


def test_default_rendering_joins_string_fields_without_id_label_or_excluded() -> None:
    cfg = CatalogConfig(label_field="category", exclude_fields=["brand"])
    rec = {"item_id": "x", "title": "Bolt", "brand": "Acme", "category": "hw", "price": 3.5, "note": "  "}
    cat = Catalog.from_records([rec], cfg)
    assert cat[0].text == "Bolt"  # values only, no column names
    assert cat[0].label == "hw"


def test_template_may_not_use_label_or_excluded_fields() -> None:
    with pytest.raises(CatalogError, match="label"):
        Catalog.from_records(ROWS, CatalogConfig(text_template="{title} {category}", label_field="category"))
    with pytest.raises(CatalogError, match="excluded"):
        Catalog.from_records(ROWS, CatalogConfig(text_template="{title} {brand}", exclude_fields=["brand"]))
    with pytest.raises(CatalogError, match="positional"):
        Catalog.from_records(ROWS, CatalogConfig(text_template="{} {title}"))


def test_overlong_text_truncated_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    recs = [{"item_id": str(i), "title": "word " * 100} for i in range(5)] + [{"item_id": "s", "title": "short"}]
    with caplog.at_level(logging.WARNING, logger="agentictagger.catalog"):
        cat = Catalog.from_records(recs, CatalogConfig(text_template="{title}", max_text_chars=50))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "5 of 6" in warnings[0].getMessage()
    assert all(len(t) <= 50 for t in cat.texts)
    assert cat.by_id("s").text == "short"


def test_truncate_text_prefers_boundaries() -> None:
    s = "First sentence here. Second sentence is much longer than the rest of it."
    assert truncate_text(s, 30) == "First sentence here."
    assert truncate_text(s, 40) == "First sentence here. Second sentence…"
    assert truncate_text("abcdefghij", 5) == "abcd…"
    assert truncate_text("short", 10) == "short"


# -- validation: every case is one error naming the line and the id -----------------------------


def test_duplicate_ids_report_both_lines(tmp_path: Path) -> None:
    p = write_jsonl(tmp_path / "c.jsonl", [json.dumps(ROWS[0]), json.dumps(ROWS[1]), json.dumps(ROWS[0])])
    err = load_error(p, TPL)
    assert len(err.problems) == 1
    assert re.search(r"line 3 \(id 'A1'\): duplicate id, first seen on line 1", err.problems[0])
    assert "nothing was loaded" in str(err)


@pytest.mark.parametrize(
    "bad_line, expect",
    [
        ('{"item_id": "", "title": "t", "brand": "b"}', r"line 2: missing or blank id field 'item_id'"),
        ('{"title": "t", "brand": "b"}', r"line 2: missing or blank id field"),
        ('{"item_id": "Z", "title": "  ", "brand": ""}', None),  # renders to "." -> not empty; see below
        ('{"item_id": "Z", "title": "t"}', r"line 2 \(id 'Z'\): text_template field\(s\) \['brand'\] missing"),
        ('{"item_id": "Z", "title": "t", "brand": null}', r"line 2 \(id 'Z'\): text_template field\(s\) \['brand'\]"),
        ('{"item_id": "Z", "title": "t", ', r"line 2: malformed JSON"),
        ('["Z", "t"]', r"line 2: is a JSON list, not an object"),
        ('{"item_id": ["Z"], "title": "t", "brand": "b"}', r"line 2: id field 'item_id' holds a list"),
    ],
)
def test_each_bad_row_is_named(tmp_path: Path, bad_line: str, expect: str | None) -> None:
    p = write_jsonl(tmp_path / "c.jsonl", [json.dumps(ROWS[0]), bad_line, json.dumps(ROWS[1])])
    if expect is None:
        assert len(Catalog.load(p, TPL)) == 3
        return
    err = load_error(p, TPL)
    assert len(err.problems) == 1, err.problems
    assert re.search(expect, err.problems[0]), err.problems[0]


def test_empty_text_is_an_error() -> None:
    with pytest.raises(CatalogError) as ei:
        Catalog.from_records([ROWS[0], {"item_id": "E", "title": "   "}], CatalogConfig(text_template="{title}"))
    assert ei.value.problems == [
        "record 2 (id 'E'): rendered item text is empty; fill its text fields or change catalog.text_template"
    ]
    with pytest.raises(CatalogError, match=r"record 1 \(id 'E'\): rendered item text is empty"):
        Catalog.from_records([{"item_id": "E", "n": 3}])


def test_undecodable_bytes_are_reported_per_line(tmp_path: Path) -> None:
    bad = b'{"item_id": "B", "title": "caf\xe9", "brand": "x"}'
    p = write_jsonl(tmp_path / "c.jsonl", [json.dumps(ROWS[0]), bad, json.dumps(ROWS[1]), bad.replace(b'"B"', b'"C"')])
    err = load_error(p, TPL)
    assert [e.split(":")[0] for e in err.problems] == ["line 2", "line 4"]
    assert "not UTF-8" in err.problems[0]

    c = tmp_path / "c.csv"
    c.write_bytes(b"item_id,title,brand\nA,ok,x\nB,caf\xe9,x\n")
    err = load_error(c, TPL)
    assert err.problems[0].startswith("line 3:") and "not UTF-8" in err.problems[0]


def test_all_problems_in_one_error_and_nothing_half_loaded(tmp_path: Path) -> None:
    lines = [json.dumps(ROWS[0]), "not json", json.dumps({"item_id": "A1", "title": "t", "brand": "b"}), json.dumps({"title": "x", "brand": "y"})]
    p = write_jsonl(tmp_path / "c.jsonl", lines)
    err = load_error(p, TPL)
    assert len(err.problems) == 3
    assert [pr.split(":")[0].split(" (")[0] for pr in err.problems] == ["line 2", "line 3", "line 4"]


def test_long_problem_lists_are_capped(tmp_path: Path) -> None:
    # One problem on every row: the diagnosis first, then one line naming the rows.
    p = write_jsonl(tmp_path / "c.jsonl", [json.dumps({"title": f"t{i}"}) for i in range(120)])
    err = load_error(p)
    assert len(err.problems) == 120
    msg = str(err)
    assert msg.startswith("No row has the id field 'item_id' (fields seen: title); set catalog.id_field (--id-field)")
    assert msg.count("missing or blank id") == 1 and "lines 1-120 (120 lines): missing or blank id field" in msg
    # Problems that differ row by row are listed up to the cap.
    rows = [json.dumps({"item_id": "same", "title": f"t{i}"}) for i in range(MAX_LISTED_PROBLEMS + 21)]
    msg = str(load_error(write_jsonl(tmp_path / "d.jsonl", rows)))
    assert msg.count("duplicate id") == MAX_LISTED_PROBLEMS and "and 20 more problem(s) not listed" in msg


def test_csv_column_count_and_empty_file(tmp_path: Path) -> None:
    c = tmp_path / "c.csv"
    c.write_text('item_id,title,brand\nA,"Bolt, steel",Acme\nB,too,many,cells\n', encoding="utf-8")
    err = load_error(c, TPL)
    assert err.problems == ["line 3: has 4 columns but the header has 3; fix delimiters/quoting"]
    e = tmp_path / "e.jsonl"
    e.write_text("\n\n", encoding="utf-8")
    assert "holds no items" in str(load_error(e))
    (tmp_path / "c.xlsx").write_text("x")
    with pytest.raises(CatalogError, match="unknown file type"):
        Catalog.load(tmp_path / "c.xlsx")
    with pytest.raises(CatalogError, match="does not exist"):
        Catalog.load(tmp_path / "missing.jsonl")


# -- formats round-trip --------------------------------------------------------------------------


def _same(a: Catalog, b: Catalog) -> None:
    assert a.ids == b.ids and a.texts == b.texts and a.labels == b.labels


def test_jsonl_csv_parquet_gz_round_trip(tmp_path: Path) -> None:
    rows = [dict(r) for r in ROWS] + [{"item_id": "007", "title": 'Quote "q", comma', "brand": "Ünï", "category": "x"}]
    ref = Catalog.from_records(rows, TPL)

    j = tmp_path / "c.jsonl"
    j.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with gzip.open(tmp_path / "c.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(j.read_text(encoding="utf-8"))
    with open(tmp_path / "c.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(tmp_path / "c.csv", "rb") as src, gzip.open(tmp_path / "c.csv.gz", "wb") as dst:
        dst.write(src.read())
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")

    for name in ("c.jsonl", "c.jsonl.gz", "c.csv", "c.csv.gz", "c.parquet"):
        _same(ref, Catalog.load(tmp_path / name, TPL))
    assert Catalog.load(tmp_path / "c.csv", TPL).by_id("007").text == 'Quote "q", comma. Brand: Ünï'

    out = ref.to_jsonl(tmp_path / "out" / "again.jsonl")
    _same(ref, Catalog.load(out, ref.config))


def test_parquet_integer_ids_and_blank_csv_cells(tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist([{"id": 5, "t": "five"}, {"id": 6, "t": None}]), tmp_path / "n.parquet")
    err = load_error(tmp_path / "n.parquet", CatalogConfig(id_field="id", text_template="{t}"))
    assert err.problems == [
        "row 2 (id '6'): text_template field(s) ['t'] missing or null; add them to the row or change catalog.text_template"
            " (an optional field with a default: '{t|}')"
    ]
    pq.write_table(pa.Table.from_pylist([{"id": 5, "t": "five"}]), tmp_path / "n.parquet")
    assert Catalog.load(tmp_path / "n.parquet", CatalogConfig(id_field="id")).ids == ["5"]
    c = tmp_path / "b.csv"
    c.write_text("item_id,title,brand,category\nA,Bolt,,hw\n,Nut,x,\n", encoding="utf-8")
    err = load_error(c, TPL)
    assert err.problems == ["line 3: missing or blank id field 'item_id'; give every item a unique id"]
    c.write_text("item_id,title,brand,category\nA,Bolt,,\n", encoding="utf-8")
    cat = Catalog.load(c, TPL)
    assert cat[0].text == "Bolt. Brand:" and cat[0].label is None


def test_subset_sample_and_items() -> None:
    recs = [{"item_id": f"i{k}", "title": f"thing {k}"} for k in range(20)]
    cat = Catalog.from_records(recs, CatalogConfig(text_template="{title}"))
    assert cat.subset(["i3", 0, "i19"]).ids == ["i3", "i0", "i19"]
    with pytest.raises(KeyError, match="i99"):
        cat.subset(["i99"])
    s1, s2, s3 = cat.sample(5, seed=1), cat.sample(5, seed=1), cat.sample(5, seed=2)
    assert s1.ids == s2.ids != s3.ids and len(s1) == 5
    assert s1.ids == sorted(s1.ids, key=cat.index_of)  # catalog order kept
    assert len(cat.sample(100)) == 20
    assert {cat[0], cat[0]} == {cat[0]}  # items are hashable despite their fields dict
    assert isinstance(cat[0], Item)


def test_sample_catalog_ships_and_loads() -> None:
    path = Path(__file__).resolve().parents[1] / "src" / "agentictagger" / "data" / "sample_catalog.jsonl"
    cfg = CatalogConfig(
        id_field="item_id", text_template="{title}. Brand: {brand}. {description}", label_field="category"
    )
    cat = Catalog.load(path, cfg)
    assert 250 <= len(cat) <= 350
    counts: dict[str, int] = {}
    for lab in cat.labels:
        assert lab
        counts[lab] = counts.get(lab, 0) + 1
    assert len(counts) >= 6 and min(counts.values()) >= 30
    assert not any(lab in t for t, lab in zip(cat.texts, cat.labels) if lab and "," in lab)


# -- shared datasets ---------------------------------------------------------------------------

def test_shared_data_is_looked_for_next_to_the_repository(monkeypatch):
    """Without $AGENTICTAGGER_DATA the shared data is looked for in ../shared/data beside the
    repository (and shared/data inside it), not beside the package's own folders."""
    monkeypatch.delenv("AGENTICTAGGER_DATA", raising=False)
    repo = Path(__file__).resolve().parents[1]
    with pytest.raises(CatalogError) as exc:
        shared_data_root(None, "no-such-dataset")
    assert str(repo.parent / "shared" / "data") in str(exc.value)
    assert str(repo / "shared" / "data") in str(exc.value)


def _shared_available() -> bool:
    try:
        shared_data_root(None, "scientific")
        return True
    except CatalogError:
        return False


shared = pytest.mark.skipif(not _shared_available(), reason="shared/data not found (set AGENTICTAGGER_DATA)")


@shared
def test_load_shared_scientific() -> None:
    cat = load_shared("scientific")
    assert len(cat) == 4344
    assert cat.ids[:3] == ["0", "1", "2"]
    labels = {lab for lab in cat.labels if lab is not None}
    assert len(labels) == 25
    assert sum(lab is None for lab in cat.labels) == 131
    assert "Tapes, Adhesives & Sealants" in labels  # split only on commas not followed by a space
    for it in cat:
        assert "Industrial & Scientific" not in it.text
        if it.fields["categories"]:
            assert it.fields["categories"] not in it.text
    assert cat[0].text.startswith("SUPCO SPP6 Relay/Capacitor") and "Brand: Sealed Unit Parts Co., Inc." in cat[0].text


@shared
def test_load_shared_beauty_and_sports(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="agentictagger.catalog"):
        beauty = load_shared("beauty")
    assert len(beauty) == 12101
    assert beauty.by_id("B004756YJA").text == "OPI Nail Lacquer, Simmer and Shimmer, 0.5-Fluid Ounce"
    assert all(t.strip() for t in beauty.texts)
    assert "7 items have an empty title" in caplog.text
    assert beauty.by_id("B001RD37ZO").text == beauty.by_id("B001RD37ZO").fields["idgenrec_text_id"]
    sports = load_shared("sports")
    assert len(sports) == 18357 and sports[0].text == "ghost armorers tool 332 punch hunting fishing"


@pytest.mark.parametrize(
    "raw, clean",
    [  # shapes found in Office_Products descriptions
        ("USB cablediv.aplusAnnotate {font-family: Arial, sans-serif; font-size: 13px;}div.aplusAcontentHead "
         "{font-size: 15px; }", "USB cable"),
        ("helps you conserve energy .aplusAcontentLegal ol {list-style-position:outside; margin:0em 1em 0em;}",
         "helps you conserve energy"),
        ("Easy to use..caption {font-size: 12px;} Writes smoothly.", "Easy to use. Writes smoothly."),
        (".aplusCurrentViewBg {background-color:#ffffcc; .aplusAcontentLegal ol {list-style-position:outer; ma", ""),
        ("hr ul {padding-left:1.1em; list-style-position:outside; /*remove ind", ""),
        # not style sheets: left alone
        ("Pack of 12 {assorted: colors} pens", "Pack of 12 {assorted: colors} pens"),
        ("Pens for a class. Fine tip.", "Pens for a class. Fine tip."),
        ("<b>Bold</b> &amp; clear", "Bold & clear"),
    ],
)
def test_shared_text_cleaning_drops_markup_and_style_sheets(raw: str, clean: str) -> None:
    from agentictagger.catalog.datasets import _clean

    assert _clean(raw) == clean


@shared
def test_load_shared_office_has_no_style_sheet_text() -> None:
    office = load_shared("office")
    assert not [it.item_id for it in office if re.search(r"[{}]|font-family|aplus", it.text)]


@shared
@pytest.mark.parametrize(
    "name, users, interactions, min_len, max_len",
    [("beauty", 22363, 198502, 5, 204), ("sports", 35598, 296337, 5, 296), ("scientific", 8317, 58492, 5, 78)],
)
def test_load_sequences_counts(name: str, users: int, interactions: int, min_len: int, max_len: int) -> None:
    seqs = load_sequences(name)
    lens = [len(s) for _, s in seqs]
    assert len(seqs) == users and sum(lens) == interactions
    assert min(lens) == min_len and max(lens) == max_len
    assert len({u for u, _ in seqs}) == users


@shared
def test_sequences_use_catalog_ids() -> None:
    cat = load_shared("scientific")
    seqs = load_sequences("scientific")
    assert seqs[0] == ("0", ["0", "1", "2", "3", "4", "5", "6", "7", "8"])
    assert all(i in cat for _, s in seqs[:500] for i in s)


@shared
def test_shared_datasets_load_by_name_and_files_by_format_alone() -> None:
    cat = Catalog.load("shared:scientific")
    assert len(cat) == 4344 and cat.labels[0] == "Industrial Electrical"
    assert Catalog.load("shared:beauty").ids[:1] == ["B004756YJA"]
    with pytest.raises(CatalogError, match="unknown shared dataset 'toys'; choose one of scientific, office, beauty, sports"):
        Catalog.load("shared:toys")
    # The same file given by path is read by its format, with the settings given: no name magic.
    path = shared_data_root(None, "scientific") / "scientific" / "items.jsonl.gz"
    plain = Catalog.load(path, CatalogConfig(id_field="item_idx", text_template="{title}"))
    assert plain.ids == cat.ids and plain.labels[0] is None
