"""The warehouse folder: commit, current versus history, re-ingest, moved folders."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from dicom_samples import base_dataset, dicom_bytes
from pydicom.dataset import Dataset

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.warehouse.commit import commit_run
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import WarehouseError, run_dir

TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")


def counts(root: Path, suffix: str = "") -> dict[str, int]:
    con = connect(root)
    try:
        return {t: con.sql(f"SELECT count(*) FROM {t}{suffix}").fetchall()[0][0] for t in TABLES}
    finally:
        con.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    source = tmp_path / "in"
    source.mkdir()
    for index in range(3):
        ds = base_dataset(SeriesDescription=f"v1-{index}")
        (source / f"{index}.dcm").write_bytes(dicom_bytes(ds))
    (source / "broken.dcm").write_bytes(b"DICM but not really")
    return source


def test_ingesting_twice_doubles_no_row(folder: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w"
    ingest([str(folder)], warehouse)
    first = counts(warehouse)
    assert first["dicom_metadata"] == 3
    assert first["ingest_errors"] == 1
    ingest([str(folder)], warehouse)
    assert counts(warehouse) == first
    assert counts(warehouse, "_history") == {t: 2 * n for t, n in first.items()}


def test_latest_run_wins_per_object(folder: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w"
    ingest([str(folder)], warehouse)
    (folder / "0.dcm").write_bytes(dicom_bytes(base_dataset(SeriesDescription="v2")))
    (folder / "broken.dcm").write_bytes(dicom_bytes(base_dataset(SeriesDescription="fixed")))
    ingest([str(folder / "0.dcm"), str(folder / "broken.dcm")], warehouse)
    con = connect(warehouse)
    descriptions = sorted(
        row[0] for row in con.sql("SELECT SeriesDescription FROM dicom_metadata").fetchall()
    )
    assert descriptions == ["fixed", "v1-1", "v1-2", "v2"]
    assert con.sql("SELECT count(*) FROM ingest_errors").fetchall() == [(0,)]
    runs = con.sql("SELECT count(DISTINCT ingest_run_id) FROM dicom_elements").fetchall()
    assert runs == [(2,)]  # elements follow their object's latest run


def test_an_unfinished_run_is_invisible_and_refused(folder: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w"
    ingest([str(folder)], warehouse)
    before = counts(warehouse)
    unfinished = Path(run_dir(warehouse, "dicom_metadata", "29990101T000000000000Z-deadbeef"))
    unfinished.mkdir(parents=True)
    shutil.copy(next((warehouse / "dicom_metadata").glob("run-*/*.parquet")), unfinished)
    assert counts(warehouse) == before
    with pytest.raises(WarehouseError, match="not committed"):
        commit_run(warehouse, "29990101T000000000000Z-deadbeef", expected_objects=99)
    assert counts(warehouse) == before


def test_moved_warehouse_still_opens(folder: Path, tmp_path: Path) -> None:
    ingest([str(folder)], tmp_path / "w")
    shutil.move(tmp_path / "w", tmp_path / "moved")
    assert counts(tmp_path / "moved")["dicom_metadata"] == 3


def test_missing_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WarehouseError, match="no warehouse"):
        connect(tmp_path)


def _referencing(**item: object) -> bytes:
    """An object with one ReferencedSeriesSequence item of the given attributes."""
    ds = base_dataset()
    reference = Dataset()
    for keyword, value in item.items():
        setattr(reference, keyword, value)
    ds.ReferencedSeriesSequence = [reference]
    return dicom_bytes(ds)


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_runs_of_different_schemas_read_as_one_union_by_name(tmp_path: Path) -> None:
    """The build binds each span of runs of one schema on one footer (its memory must not grow
    with the shards), yet the tables read as DuckDB's union_by_name over every shard."""
    source, warehouse = tmp_path / "in", tmp_path / "w"
    source.mkdir()
    (source / "a.dcm").write_bytes(_referencing(SeriesInstanceUID="1.2.3"))
    ingest([str(source)], warehouse)
    ingest([str(source)], warehouse)  # the same columns: the same schema, one span
    (source / "b.dcm").write_bytes(_referencing(SeriesInstanceUID="1.2.4", Modality="CT"))
    (source / "c.dcm").write_bytes(dicom_bytes(base_dataset(BodyPartExamined="HEAD")))
    ingest([str(source / "b.dcm"), str(source / "c.dcm")], warehouse)
    shards = sorted(str(p) for p in warehouse.glob("dicom_metadata/run-*/*.parquet"))
    schemas = [pq.read_schema(shard) for shard in shards]
    spans = 1 + sum(not a.equals(b, check_metadata=False) for a, b in itertools.pairwise(schemas))
    assert spans == 2
    expected = duckdb.connect()
    union = f"read_parquet({shards}, union_by_name = true)"
    con = connect(warehouse)
    try:
        assert con.sql("DESCRIBE dicom_metadata_raw").fetchall() == (
            expected.sql(f"DESCRIBE SELECT * FROM {union}").fetchall()
        )
        order = "ORDER BY source_url, ingest_run_id"
        assert con.sql(f"SELECT * FROM dicom_metadata_raw {order}").fetchall() == (
            expected.sql(f"SELECT * FROM {union} {order}").fetchall()
        )
        [(definition,)] = con.sql(
            "SELECT sql FROM duckdb_views() WHERE view_name = 'dicom_metadata_raw'"
        ).fetchall()
        assert definition.count("read_parquet(") == spans
        current = con.sql("SELECT count(*) FROM dicom_metadata").fetchall()
        assert current == [(3,)]  # a.dcm once (its latest run), b.dcm, c.dcm
    finally:
        con.close()
        expected.close()
