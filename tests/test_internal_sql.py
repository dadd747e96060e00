"""The warehouse's own SQL (``sql/internal/``): the current-state rule and the ledger view.

Golden tests on real DuckDB over small hand-made history and ledger tables, one object per case
the rule has to get right: a replaced object, an object deleted by a full listing, a failed
re-read, an object read by two runs on one day, a deleted object that came back, an unchanged
object skipped by a later run, and an object that never read. The expected rows are written
out here from the rule as documented (docs/warehouse.md, the header of current_objects.sql),
not from what the SQL returns. The same rows must come from the text DuckDB runs and from the
text a BigQuery publish runs, and both texts must be the one file's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from dicomwarehouse.bigquery.sql import CURRENT_VIEWS, current_view_sql, qualified_name
from dicomwarehouse.warehouse import internal_sql
from dicomwarehouse.warehouse.internal_sql import (
    DUCKDB_TABLES,
    TABLE_HISTORY,
    duckdb_sql,
    internal_dir,
    load_internal,
)
from dicomwarehouse.warehouse.views import _sql_dir, load_views, to_duckdb

PROJECT, DATASET = "my-project", "dicom"

# Run ids sort by their start time (the ingest_run_id column's description); R1 and R2 start
# on the same day.
R1 = "20260105T010000000000Z-aaaaaaaa"
R2 = "20260105T130000000000Z-bbbbbbbb"
R3 = "20260106T010000000000Z-cccccccc"
R4 = "20260107T010000000000Z-dddddddd"

# (source_url, generation, action, outcome, run): what each run saw and did with each object.
EVENTS = [
    # replaced: read in R1, changed and read again in R3, skipped as unchanged in R4
    ("replaced.dcm", "1", "new", "ingested", R1),
    ("replaced.dcm", "2", "changed", "ingested", R3),
    ("replaced.dcm", "2", "unchanged", "skipped", R4),
    # deleted: read in R1, missing from R3's full listing
    ("deleted.dcm", "1", "new", "ingested", R1),
    ("deleted.dcm", "1", "deleted", "deleted", R3),
    # failed re-read: read in R1, changed in R3 and the read failed
    ("reread.dcm", "1", "new", "ingested", R1),
    ("reread.dcm", "2", "changed", "failed", R3),
    # two runs on one day: R1 and R2 both read the same version
    ("twice.dcm", "1", "new", "ingested", R1),
    ("twice.dcm", "1", "reingested", "ingested", R2),
    # came back: read in R1, missing from R3's full listing, listed and read again in R4
    ("back.dcm", "1", "new", "ingested", R1),
    ("back.dcm", "1", "deleted", "deleted", R3),
    ("back.dcm", "1", "new", "ingested", R4),
    # unchanged: read in R1, skipped in R4 (a skip reads nothing and writes no row)
    ("kept.dcm", "1", "new", "ingested", R1),
    ("kept.dcm", "1", "unchanged", "skipped", R4),
    # never read: failed in R1, not retried (skipped) in R4
    ("junk.txt", "1", "new", "failed", R1),
    ("junk.txt", "1", "unchanged", "skipped", R4),
]

# The rows each run wrote: a dicom_metadata row per object it read, an ingest_errors row per
# object whose read failed (the runs' outputs, consistent with EVENTS).
METADATA = [
    ("replaced.dcm", R1, "v1"),
    ("replaced.dcm", R3, "v2"),
    ("deleted.dcm", R1, "v1"),
    ("reread.dcm", R1, "v1"),
    ("twice.dcm", R1, "v1"),
    ("twice.dcm", R2, "v1"),
    ("back.dcm", R1, "v1"),
    ("back.dcm", R4, "v1"),
    ("kept.dcm", R1, "v1"),
]
ERRORS = [("reread.dcm", R3, "parse"), ("junk.txt", R1, "parse")]

# The rule: per source_url the latest run that read it, unless a later full listing lacked it.
CURRENT_OBJECTS = [
    ("back.dcm", R4),  # read again after its deletion
    ("junk.txt", R1),  # its failure is its current state
    ("kept.dcm", R1),  # R4 skipped it: R1's row stays current
    ("replaced.dcm", R3),
    ("reread.dcm", R3),  # the failed read is the latest: its v1 row is history only
    ("twice.dcm", R2),  # one current row, not two
]
CURRENT_METADATA = [
    ("back.dcm", R4, "v1"),
    ("kept.dcm", R1, "v1"),
    ("replaced.dcm", R3, "v2"),
    ("twice.dcm", R2, "v1"),
]
CURRENT_ERRORS = [("junk.txt", R1, "parse"), ("reread.dcm", R3, "parse")]

# ingest_objects: (source_url, generation, first seen, last seen, status, deleted_run_id)
INGEST_OBJECTS = [
    ("back.dcm", "1", R1, R4, "ingested", R3),
    ("deleted.dcm", "1", R1, R1, "deleted", R3),
    ("junk.txt", "1", R1, R4, "failed", None),
    ("kept.dcm", "1", R1, R4, "ingested", None),
    ("replaced.dcm", "1", R1, R1, "superseded", None),
    ("replaced.dcm", "2", R3, R4, "ingested", None),
    ("reread.dcm", "1", R1, R1, "superseded", None),
    ("reread.dcm", "2", R3, R3, "failed", None),
    ("twice.dcm", "1", R1, R2, "ingested", None),
]


def _load_tables(con: duckdb.DuckDBPyConnection, names: dict[str, str]) -> None:
    """The hand-made history and ledger tables, named as ``names`` says (engine names)."""
    con.execute(
        f"CREATE TABLE {names['dicom_metadata_history']} "
        "(source_url VARCHAR, ingest_run_id VARCHAR, SeriesDescription VARCHAR)"
    )
    con.executemany(f"INSERT INTO {names['dicom_metadata_history']} VALUES (?, ?, ?)", METADATA)
    con.execute(
        f"CREATE TABLE {names['ingest_errors_history']} "
        "(source_url VARCHAR, ingest_run_id VARCHAR, stage VARCHAR)"
    )
    con.executemany(f"INSERT INTO {names['ingest_errors_history']} VALUES (?, ?, ?)", ERRORS)
    con.execute(
        "CREATE TABLE ingest_object_events_history (source_url VARCHAR, source_size BIGINT, "
        "source_generation VARCHAR, source_etag VARCHAR, source_md5 VARCHAR, action VARCHAR, "
        "outcome VARCHAR, ingest_run_id VARCHAR)"
    )
    con.executemany(
        "INSERT INTO ingest_object_events_history VALUES (?, 100, ?, NULL, NULL, ?, ?, ?)",
        EVENTS,
    )


@pytest.fixture
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    """The tables under DuckDB's names, with the views build_duckdb creates from the files."""
    con = duckdb.connect()
    _load_tables(con, DUCKDB_TABLES)
    con.execute(f"CREATE TABLE _current_objects AS {duckdb_sql('current_objects')}")
    for table in ("dicom_metadata", "ingest_errors"):
        con.execute(f"CREATE VIEW {table}_history AS {duckdb_sql('history_rows', table)}")
        con.execute(f"CREATE VIEW {table} AS {duckdb_sql('current_rows', table)}")
    con.execute(f"CREATE VIEW ingest_objects AS {duckdb_sql('ingest_objects')}")
    yield con
    con.close()


def _rows(con: duckdb.DuckDBPyConnection, query: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM ({query}) ORDER BY ALL").fetchall()


def test_current_state_rule_on_duckdb(duck: duckdb.DuckDBPyConnection) -> None:
    assert _rows(duck, "SELECT * FROM _current_objects") == CURRENT_OBJECTS
    assert _rows(duck, "SELECT * FROM dicom_metadata") == CURRENT_METADATA
    assert _rows(duck, "SELECT * FROM ingest_errors") == CURRENT_ERRORS


def test_history_keeps_every_run_and_marks_the_current_rows(
    duck: duckdb.DuckDBPyConnection,
) -> None:
    history = _rows(duck, "SELECT * FROM dicom_metadata_history")
    assert [row[:3] for row in history] == sorted(METADATA)
    assert [row[:3] for row in history if row[3]] == CURRENT_METADATA
    errors = _rows(duck, "SELECT * FROM ingest_errors_history")
    assert [row[:3] for row in errors if row[3]] == CURRENT_ERRORS
    assert len(errors) == len(ERRORS)


def test_ingest_objects_on_duckdb(duck: duckdb.DuckDBPyConnection) -> None:
    got = _rows(
        duck,
        "SELECT source_url, source_generation, first_seen_run_id, last_seen_run_id, status, "
        "deleted_run_id FROM ingest_objects",
    )
    assert got == INGEST_OBJECTS


def test_bigquery_text_selects_the_same_rows(duck: duckdb.DuckDBPyConnection) -> None:
    """The publish's views, translated for DuckDB over the same tables under BigQuery's names,
    pick the rows DuckDB's own views pick."""
    con = duckdb.connect()
    try:
        _load_tables(con, {name: name for name in DUCKDB_TABLES})
        prefix = qualified_name(PROJECT, DATASET, "")[:-1]  # `my-project.dicom.
        con.execute(
            "CREATE TABLE dicom_elements_history (source_url VARCHAR, ingest_run_id VARCHAR)"
        )
        for name, sql in current_view_sql(PROJECT, DATASET).items():
            bare = sql.replace(prefix, "").replace("`", "")
            con.execute(f"CREATE VIEW {name} AS {to_duckdb(bare)}")
        assert _rows(con, "SELECT * FROM current_objects") == CURRENT_OBJECTS
        for table in ("dicom_metadata", "ingest_errors"):
            assert _rows(con, f"SELECT * FROM {table}") == _rows(duck, f"SELECT * FROM {table}")
    finally:
        con.close()


def test_bigquery_and_duckdb_texts_come_from_one_file() -> None:
    """Each text the engines run is the file with its table names replaced, and nothing else:
    the BigQuery text verbatim (comments and layout too), the DuckDB text as sqlglot translates
    the file (so both engines follow the same source)."""
    views = current_view_sql(PROJECT, DATASET)
    assert list(views) == ["current_objects", *CURRENT_VIEWS]
    for name, sql in views.items():
        source = load_internal("current_objects" if name == "current_objects" else "current_rows")
        sqlglot.parse_one(sql, read="bigquery")  # BigQuery's dialect reads it
        unqualified = sql.replace(
            qualified_name(PROJECT, DATASET, f"{name}_history"), TABLE_HISTORY
        )
        for table in source.tables:
            unqualified = unqualified.replace(qualified_name(PROJECT, DATASET, table), table)
        assert unqualified == source.sql, name

    for name in ("current_objects", "current_rows", "history_rows", "ingest_objects"):
        source = load_internal(name)
        duck_text = duckdb_sql(name, "dicom_metadata")
        original = sqlglot.parse_one(source.sql, read="bigquery")
        renamed = {**DUCKDB_TABLES, TABLE_HISTORY: "dicom_metadata_raw"}
        for table in original.find_all(exp.Table):
            table.set("this", exp.to_identifier(renamed.get(table.name, table.name)))
        assert duck_text == to_duckdb(original.sql(dialect="bigquery")), name


def test_internal_files_are_documented_and_read_known_tables() -> None:
    known = {
        "dicom_metadata_history",
        "ingest_errors_history",
        "ingest_object_events_history",
        "current_objects",
        TABLE_HISTORY,
    }
    files = sorted(path.stem for path in internal_dir().glob("*.sql"))
    assert files == ["current_objects", "current_rows", "history_rows", "ingest_objects"]
    for name in files:
        query = load_internal(name)
        statements = sqlglot.parse(query.sql, read="bigquery")
        assert len(statements) == 1 and isinstance(statements[0], exp.Query), name
        assert query.description, name
        assert query.tables <= known, (name, query.tables - known)


def test_documented_columns_are_the_output_columns(duck: duckdb.DuckDBPyConnection) -> None:
    for name, relation in (
        ("current_objects", "_current_objects"),
        ("ingest_objects", "ingest_objects"),
    ):
        columns = [row[0] for row in duck.execute(f"DESCRIBE {relation}").fetchall()]
        assert columns == list(load_internal(name).column_descriptions), name


def test_internal_files_are_not_curated_views() -> None:
    assert internal_dir().parent == _sql_dir()
    curated = {view.name for view in load_views()}
    assert not curated & {path.stem for path in internal_dir().glob("*.sql")}


def test_a_file_for_several_tables_needs_a_table() -> None:
    with pytest.raises(ValueError, match="name one"):
        internal_sql.duckdb_sql("current_rows")


def test_internal_files_are_found_where_the_wheel_puts_them(tmp_path: Path) -> None:
    """An installed wheel has ``sql/`` inside the package (pyproject's force-include), with
    ``internal/`` in it; a copy laid out that way, away from the checkout, finds the files."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).parents[1]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert mapping == {"sql": "dicomwarehouse/sql"}
    site = tmp_path / "site"
    shutil.copytree(root / "dicomwarehouse", site / "dicomwarehouse")
    shutil.copytree(root / "sql", site / mapping["sql"])
    script = (
        "from dicomwarehouse.warehouse.internal_sql import duckdb_sql, internal_dir\n"
        "from dicomwarehouse.warehouse.views import load_views\n"
        "print(internal_dir())\n"
        "print(len(duckdb_sql('ingest_objects')) > 0, len(load_views()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        check=True,
    )
    folder, loaded = done.stdout.splitlines()
    assert folder == str(site / "dicomwarehouse" / "sql" / "internal")
    assert loaded == f"True {len(load_views())}"
