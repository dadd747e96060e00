"""BigQuery's limits by design: 15 RECORD levels, 10,000 columns, and what is left out.

The rule is tested on counts alone (deterministic, rarest first, ties by tag order, never a
required or existing column, never a child without its sequence) and end to end: a file nested
40 levels deep, and a generated corpus whose union has more than 10,000 leaf columns, both
through the real ingest; what is left out stays in dicom_elements and is counted.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dicom_samples import base_dataset, dicom_bytes, every_vr_dataset
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.tables.bigquery_schema import (
    RUN_SCHEMA_FILE,
    arrow_schema_to_bigquery,
    count_columns,
)
from dicomwarehouse.tables.limits import (
    BIGQUERY_MAX_COLUMNS,
    choose_columns,
    field_counts,
    record_depth,
)
from dicomwarehouse.tables.parquet import metadata_table
from dicomwarehouse.tables.schema import (
    BIGQUERY_MAX_RECORD_DEPTH,
    MAX_SEQUENCE_COLUMN_DEPTH,
    keyword_paths,
    metadata_schema,
)
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import LEFT_OUT_FILE, committed_column_paths
from dicomwarehouse.warehouse.views import referenced_keywords

CONTENT_SEQUENCE = 0x0040A730
CODE_VALUE = 0x00080100
PERSON_NAME = 0x0040A123
PATIENT_NAME = 0x00100010


def _run_folder(warehouse: Path, table: str = "dicom_metadata") -> Path:
    (folder,) = sorted((warehouse / table).glob("run-*"))[-1:]
    return folder


def _fields(paths) -> int:
    return count_columns(arrow_schema_to_bigquery(metadata_schema(paths), "dicom_metadata"))[0]


# --- counting ---------------------------------------------------------------------------------


def test_arrow_and_bigquery_counts_agree() -> None:
    paths = [(PATIENT_NAME,), (CONTENT_SEQUENCE,), (CONTENT_SEQUENCE, PERSON_NAME)]
    schema = metadata_schema(paths)
    fields, leaves, depth = count_columns(arrow_schema_to_bigquery(schema, "dicom_metadata"))
    assert field_counts(pa.struct(list(schema))) == (fields, leaves)
    assert max(record_depth(f.type) for f in schema) == depth == 3  # sequence, PN, group
    # PN: the record, 3 groups and 15 strings; a sequence: its record and OtherElements (4)
    assert _fields([*paths, (0x00100020,)]) - _fields(paths) == 1
    assert _fields(paths) - _fields(paths[1:]) == 19
    assert _fields([(CONTENT_SEQUENCE,)]) - _fields([]) == 5


# --- the rule, on counts ----------------------------------------------------------------------


def _seq(n: int) -> int:
    return 0x00091000 + n  # private sequences Tag_00091000, Tag_00091001, ...


def _counts(rare: int, common: int = 2) -> dict[tuple[int, ...], int]:
    counts = {}
    for n in range(common):
        counts[(_seq(n),)] = 50
        counts[(_seq(n), CODE_VALUE)] = 50
    for n in range(common, common + rare):
        counts[(_seq(n),)] = 1
        counts[(_seq(n), CODE_VALUE)] = 1
        counts[(_seq(n), PERSON_NAME)] = 1
    return counts


def test_nothing_is_left_out_under_the_limit() -> None:
    counts = _counts(rare=3)
    choice = choose_columns(counts)
    assert choice.left_out == {}
    assert set(choice.paths) == set(counts)
    assert choice.fields == _fields(counts)


def test_rarest_paths_go_first_ties_last_in_tag_order() -> None:
    counts = _counts(rare=10)
    limit = _fields(counts) - 30  # room for all but a bit more than one rare sequence
    choice = choose_columns(counts, limit=limit)
    assert choice.fields <= limit
    assert _fields(choice.paths) == choice.fields
    # only rare paths, from the last tags backwards: the last sequence with all its children
    assert set(choice.left_out.values()) == {1}
    last, before = _seq(11), _seq(10)
    assert {(last,), (last, CODE_VALUE), (last, PERSON_NAME)} <= choice.left_out.keys()
    assert (before, PERSON_NAME) in choice.left_out  # 25 + 19 >= 30 fields
    assert (before,) not in choice.left_out and (before, CODE_VALUE) not in choice.left_out
    for dropped in choice.left_out:
        for kept in choice.paths:
            assert (counts.get(dropped, 0), kept) < (counts.get(kept, 0), dropped)
    # a child never stays without its sequence
    for path in choice.paths:
        assert all(path[:i] in choice.paths for i in range(1, len(path)))


def test_the_rule_is_deterministic() -> None:
    counts = _counts(rare=40)
    items = list(counts.items())
    random.Random(7).shuffle(items)
    limit = _fields(counts) // 2
    assert choose_columns(dict(items), limit=limit) == choose_columns(counts, limit=limit)


def test_required_and_existing_columns_stay_and_count() -> None:
    counts = _counts(rare=10)
    required = keyword_paths(["Modality", "PatientName"])  # no object had them
    existing = {(_seq(11),), (_seq(11), CODE_VALUE)}  # an earlier run has the last sequence
    earlier = {(0x00091100,), (0x00091100, PERSON_NAME)}  # and one this run does not have
    limit = _fields({**counts, **dict.fromkeys(required | earlier, 1)}) - 60
    choice = choose_columns(counts, required=required, existing=existing | earlier, limit=limit)
    assert required <= set(choice.paths)
    assert existing <= set(choice.paths)
    assert not earlier & set(choice.paths)  # counted, but not this run's columns
    assert choice.fields == _fields(set(choice.paths) | earlier) <= limit
    assert (_seq(10), PERSON_NAME) in choice.left_out  # the budget went to what exists


def test_rows_with_values_of_left_out_columns_still_convert() -> None:
    """metadata_table ignores keys the schema lacks, at the top and inside structs."""
    kept = [(CONTENT_SEQUENCE,), (CONTENT_SEQUENCE, CODE_VALUE)]
    schema = metadata_schema(kept)
    row = {
        "ContentSequence": [
            {
                "CodeValue": "x",
                "PersonName": {"Alphabetic": {"FamilyName": "Doe"}},
                "OtherElements": [],
            }
        ],
        "Tag_00091000": [{"OtherElements": []}],
        "source_url": "a",
        "ingest_run_id": "r",
        "ingested_at": None,
    }
    table = metadata_table([row], schema)
    assert table.column("ContentSequence").to_pylist() == [
        [{"CodeValue": "x", "OtherElements": []}]
    ]
    assert "Tag_00091000" not in table.column_names


# --- 40 levels deep, through the ingest -------------------------------------------------------


def _nested_with_names(depth: int) -> Dataset:
    """ContentSequence nested ``depth`` deep; every item has a PN and a private element, so
    the deepest kept level has a PN struct and OtherElements inside."""
    node = Dataset()
    node.CodeValue = "deepest"
    for level in range(depth, 0, -1):
        parent = Dataset()
        parent.PersonName = f"Level{level}^Name"
        parent.add_new(0x00290010, "LO", "ACME")
        parent.add_new(0x00291001, "SH", f"L{level}")
        parent.ContentSequence = Sequence([node])
        node = parent
    ds = base_dataset()
    ds.ContentSequence = node.ContentSequence
    return ds


@pytest.fixture(scope="module")
def deep_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("deep")
    (root / "in").mkdir()
    (root / "in" / "deep.dcm").write_bytes(dicom_bytes(_nested_with_names(40)))
    (root / "in" / "flat.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    summary = ingest([str(root / "in")], root / "w")
    return root / "w", summary


def test_forty_levels_stop_at_fifteen_record_levels(deep_warehouse) -> None:
    warehouse, summary = deep_warehouse
    folder = _run_folder(warehouse)
    fields = json.loads((folder / RUN_SCHEMA_FILE).read_text())
    _total, _leaves, depth = count_columns(fields)
    assert depth == BIGQUERY_MAX_RECORD_DEPTH == 15
    arrow = pq.read_schema(next(folder.glob("*.parquet")))
    assert max(record_depth(f.type) for f in arrow) == 15
    # the chain: 13 ContentSequence levels, the 13th with PersonName and OtherElements inside
    level = next(f for f in fields if f["name"] == "ContentSequence")
    for _ in range(MAX_SEQUENCE_COLUMN_DEPTH - 1):
        level = next(f for f in level["fields"] if f["name"] == "ContentSequence")
    names = {f["name"] for f in level["fields"]}
    assert {"PersonName", "OtherElements"} <= names
    assert "ContentSequence" not in names  # the 14th level is not a column
    assert summary.deep_sequences_left_out == 1
    assert "1 sequences nested too deep" in summary.describe()
    record = json.loads(next((warehouse / "_runs").glob("*.json")).read_text())
    assert record["deep_sequences_left_out"] == 1


def test_forty_levels_stay_complete_in_dicom_elements(deep_warehouse) -> None:
    warehouse, _ = deep_warehouse
    con = connect(warehouse)
    try:
        rows = con.execute(
            "SELECT depth, value_strings FROM dicom_elements WHERE keyword = 'CodeValue'"
            " AND source_url LIKE '%deep.dcm'"
        ).fetchall()
        assert rows == [(40, ["deepest"])]
        names = con.execute(
            "SELECT count(*) FROM dicom_elements WHERE keyword = 'PersonName'"
            " AND source_url LIKE '%deep.dcm'"
        ).fetchone()
        assert names == (39,)  # one in each item of the 40 levels but the innermost
        (reasons,) = con.execute(
            "SELECT list(a.reason) FROM (SELECT unnest(ingest_anomalies) AS a FROM dicom_metadata"
            " WHERE source_url LIKE '%deep.dcm')"
        ).fetchone()
        assert any("deeper than 13 levels" in reason for reason in reasons)
    finally:
        con.close()


# --- more than 10,000 columns, through the ingest ---------------------------------------------

_COMMON = 3
_FILES = 30
_RARE_PER_FILE = 20


def _private_sequence_tag(n: int) -> int:
    group = 0x0009 + 2 * (n // 0xF0)
    return (group << 16) | (0x1000 + n % 0xF0)


def _wide_file(index: int) -> Dataset:
    """A small file with the common private sequences and 20 of its own, each item holding a
    CodeValue and a PersonName: 25 columns per rare sequence, 600 of them over the corpus."""
    ds = base_dataset(SeriesDescription=f"wide {index}")
    numbers = [*range(_COMMON)]
    numbers += [_COMMON + index * _RARE_PER_FILE + k for k in range(_RARE_PER_FILE)]
    for n in numbers:
        tag = _private_sequence_tag(n)
        ds.add_new((tag >> 16 << 16) | 0x0010, "LO", "WIDE TEST")
        item = Dataset()
        item.CodeValue = f"C{n}"
        item.PersonName = f"Name{n}^Given"
        ds.add_new(tag, "SQ", Sequence([item]))
    return ds


@pytest.fixture(scope="module")
def wide_warehouse(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("wide")
    (root / "in").mkdir()
    for index in range(_FILES):
        (root / "in" / f"{index:02d}.dcm").write_bytes(dicom_bytes(_wide_file(index)))
    return root, ingest([str(root / "in")], root / "w")


def test_a_corpus_wider_than_the_limit_is_cut_to_it(wide_warehouse) -> None:
    root, summary = wide_warehouse
    folder = _run_folder(root / "w")
    left_out = json.loads((folder / LEFT_OUT_FILE).read_text())
    kept = {tuple(p) for p in json.loads((folder / "_column_paths.json").read_text())}
    dropped = {tuple(entry["path"]): entry["objects"] for entry in left_out["left_out"]}
    union = kept | dropped.keys()
    assert (
        count_columns(arrow_schema_to_bigquery(metadata_schema(union), "dicom_metadata"))[1]
        > BIGQUERY_MAX_COLUMNS
    )  # more than 10,000 leaves met
    fields = json.loads((folder / RUN_SCHEMA_FILE).read_text())
    assert count_columns(fields)[0] <= BIGQUERY_MAX_COLUMNS
    assert count_columns(fields)[0] == left_out["warehouse_fields"]
    assert summary.attributes_left_out == left_out["left_out_count"] == len(dropped) > 0
    assert f"{len(dropped)} rare attributes (column limit)" in summary.describe()
    # the common sequences and every column the views read stay
    for n in range(_COMMON):
        assert (_private_sequence_tag(n),) in kept
    assert keyword_paths(referenced_keywords()) <= kept
    # rarest first (every left-out path was in one file), ties last in tag order first
    assert set(dropped.values()) == {1}
    kept_sequences = {p[0] for p in kept if len(p) == 1 and p[0] >> 16 & 1}
    dropped_sequences = {p[0] for p in dropped if len(p) == 1}
    assert max(kept_sequences) < min(dropped_sequences)
    for path in kept:
        assert all(path[:i] in kept for i in range(1, len(path)))


def test_left_out_attributes_stay_in_dicom_elements(wide_warehouse) -> None:
    root, _ = wide_warehouse
    folder = _run_folder(root / "w")
    left_out = json.loads((folder / LEFT_OUT_FILE).read_text())
    sequences = [entry["path"][0] for entry in left_out["left_out"] if len(entry["path"]) == 1]
    assert sequences
    con = connect(root / "w")
    try:
        columns = {name for name, *_ in con.execute("DESCRIBE dicom_metadata").fetchall()}
        tags = [f"{tag:08X}" for tag in sequences]
        assert not {f"Tag_{tag}" for tag in tags} & columns
        assert "Tag_00091000" in columns
        rows = con.execute(
            "SELECT tag_path, value_strings FROM dicom_elements WHERE keyword = 'CodeValue'"
        ).fetchall()
        found = {path[:8]: values for path, values in rows if path[:8] in tags}
        assert sorted(found) == sorted(tags)  # every left-out sequence's value is there
        assert con.execute("SELECT count(*) FROM dicom_metadata").fetchone() == (_FILES,)
    finally:
        con.close()


def test_a_later_run_counts_the_columns_earlier_runs_made(wide_warehouse) -> None:
    root, _ = wide_warehouse
    (root / "more").mkdir(exist_ok=True)
    extra = _wide_file(_FILES + 5)  # 20 sequences no earlier run had
    (root / "more" / "x.dcm").write_bytes(dicom_bytes(extra))
    summary = ingest([str(root / "more")], root / "w")
    union = committed_column_paths(root / "w")
    assert _fields(union) <= BIGQUERY_MAX_COLUMNS
    # the budget was (almost) spent by the first run: (nearly) all 60 new paths stay out
    assert summary.attributes_left_out >= 50
