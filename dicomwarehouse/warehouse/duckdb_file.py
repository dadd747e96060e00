"""The warehouse's DuckDB file: views over the committed runs' Parquet, for local folders.

Nothing is copied into DuckDB: every table is a view over ``read_parquet`` of the committed run
folders, plus one small materialized table (``_current_objects``) that decides which run's rows
of each source URL are current.

The build's memory must not grow with the warehouse (issue 15): it is the last step of every
ingest, in the pipeline's process. What grew was DuckDB's hold on Parquet footers, several MB
each once decoded for the wide dicom_metadata shards: ``union_by_name`` reads and keeps the
footer of every shard to bind a view, and a scan of many files keeps each file's footer until
the scan ends. So the views read each span of runs of one schema as a plain file list, which
DuckDB binds on its first footer alone, and the current-state rule is computed from narrow
tables filled one shard at a time, under a memory limit DuckDB spills past.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from dicomwarehouse.io.objectstore import warehouse_location
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.testpoints import pause_point
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    DUCKDB_FILE,
    EVENTS_TABLE,
    TABLES,
    WarehouseError,
    committed_runs,
    run_record_url,
    shard_urls,
)
from dicomwarehouse.warehouse.lock import WriterLock

__all__ = [
    "WORKING_MEMORY_LIMIT",
    "bounded_connection",
    "build_duckdb",
    "connect",
    "duckdb_build_files",
]

logger = logging.getLogger(__name__)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


#: DuckDB's working memory in a run's last step (the commit's UID count, the build); past it,
#: what grows with the objects (a run's UIDs, the current-state rule's tables and aggregation)
#: spills to a temporary folder
WORKING_MEMORY_LIMIT = "128MB"

#: What the current-state rule (``sql/internal/current_objects.sql``) reads of each history
#: table, by the name the rule gives it: (the table, its string columns the rule reads)
_RULE_INPUTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "dicom_metadata_history": ("dicom_metadata", ("source_url", "ingest_run_id")),
    "ingest_errors_history": ("ingest_errors", ("source_url", "ingest_run_id")),
    "ingest_object_events_history": (EVENTS_TABLE, ("source_url", "ingest_run_id", "outcome")),
}


def _committed_files(root: str, table: str, runs: Sequence[str]) -> str:
    """A DuckDB list of the Parquet globs of the committed runs of one (local) table."""
    globs = [join(root, table, f"run-{run}", "*.parquet") for run in runs]
    return "[" + ", ".join(_sql_string(g) for g in globs) + "]"


def _runs_by_schema(root: str, table: str, runs: Sequence[str]) -> list[list[str]]:
    """The runs of one table in their order, cut into spans of one Parquet schema.

    Every shard of a run has the run's one schema (``pipeline.transforms``), so a span's files
    share it too and DuckDB reads a span as a plain file list, bound on its first footer alone.
    Runs without a shard of the table are left out.
    """
    spans: list[list[str]] = []
    previous = None
    for run in runs:
        shards = shard_urls(root, table, run)
        if not shards:
            continue
        schema = pq.read_schema(shards[0])
        if previous is None or not schema.equals(previous, check_metadata=False):
            spans.append([])
        spans[-1].append(run)
        previous = schema
    return spans or [list(runs)]


def _raw_select(root: str, table: str, runs: Sequence[str]) -> str:
    """Every committed row of one table: its spans of one schema, united by column name.

    ``UNION ALL BY NAME`` gives the columns and types ``read_parquet``'s ``union_by_name``
    gives over all the files (order of first appearance, widened types, NULL where a run
    lacks a column), binding only one footer per span.
    """
    return " UNION ALL BY NAME ".join(
        f"SELECT * FROM read_parquet({_committed_files(root, table, span)}, "
        "hive_partitioning = false)"
        for span in _runs_by_schema(root, table, runs)
    )


def _create_current_objects(
    con: duckdb.DuckDBPyConnection, location: str, runs: Sequence[str]
) -> None:
    """Materialize ``_current_objects``: the current-state rule over narrow copies of the
    columns it reads, filled one shard at a time (a scan of many files would hold every
    file's footer until its end), then dropped."""
    from dicomwarehouse.warehouse.internal_sql import duckdb_sql

    reading: dict[str, str] = {}
    for name, (table, columns) in _RULE_INPUTS.items():
        narrow = f"_rule_{table}"
        typed = ", ".join(f"{column} VARCHAR" for column in columns)
        con.execute(f"CREATE OR REPLACE TEMP TABLE {narrow} ({typed})")
        names = ", ".join(columns)
        for run in runs:
            for url in shard_urls(location, table, run):
                con.execute(f"INSERT INTO {narrow} SELECT {names} FROM read_parquet(?)", [url])
        reading[name] = narrow
    rule = duckdb_sql("current_objects", reading=reading)
    con.execute(f"CREATE OR REPLACE TABLE _current_objects AS {rule}")
    for narrow in reading.values():
        con.execute(f"DROP TABLE {narrow}")


def _add_manifest_columns(con: duckdb.DuckDBPyConnection, source: str) -> None:
    """Give ``dicom_metadata_raw`` (the select ``source``) the manifest columns every run now
    has, as NULL, when no committed run has them: runs committed before one became such a
    column lack it, and the views that read it (IDC's crdc_instance_uuid, ...) must bind over
    such a warehouse too. Once any run has it, ``_raw_select`` gives it, NULL in the older
    runs' rows."""
    from dicomwarehouse.warehouse.views import view_columns

    present = {name for name, _ in view_columns(con, "dicom_metadata_raw")}
    missing = [name for name in IDC_MANIFEST_COLUMNS if name not in present]
    if missing:
        nulls = ", ".join(f'CAST(NULL AS VARCHAR) AS "{name}"' for name in missing)
        con.execute(
            f"CREATE OR REPLACE VIEW dicom_metadata_raw AS SELECT *, {nulls} FROM ({source})"
        )


def _local_root(root: Location) -> str:
    """A local warehouse's absolute path; a one-line refusal for gs:// (no httpfs here)."""
    location = warehouse_location(root)
    if is_gs_url(location):
        raise WarehouseError(
            f"{location} is on Cloud Storage, which DuckDB cannot read here (no httpfs): "
            "query it in BigQuery after 'dicomwarehouse publish bigquery', or copy it to a "
            "local folder ('gcloud storage cp -r') and query that"
        )
    return location


def _create_warehouse_objects(
    con: duckdb.DuckDBPyConnection, location: str, runs: Sequence[str]
) -> None:
    """Create the tables and views of a warehouse over its committed ``runs`` in ``con``.

    The views read the Parquet in place (nothing is copied); ``_current_objects`` is the one
    table materialized here: for each current source URL, the latest run that read it.
    """
    from dicomwarehouse.warehouse.internal_sql import duckdb_sql
    from dicomwarehouse.warehouse.views import create_duckdb_views

    selects = {table: _raw_select(location, table, runs) for table in ALL_TABLES}
    for table, select in selects.items():
        con.execute(f"CREATE OR REPLACE VIEW {table}_raw AS {select}")
    _add_manifest_columns(con, selects["dicom_metadata"])
    con.execute(
        "CREATE OR REPLACE VIEW ingest_object_events_history AS "
        "SELECT * FROM ingest_object_events_raw"
    )
    _create_current_objects(con, location, runs)
    for table in TABLES:
        history = duckdb_sql("history_rows", table)
        con.execute(f"CREATE OR REPLACE VIEW {table}_history AS {history}")
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {duckdb_sql('current_rows', table)}")
    con.execute(f"CREATE OR REPLACE VIEW ingest_objects AS {duckdb_sql('ingest_objects')}")
    run_files = [_sql_string(run_record_url(location, run)) for run in runs]
    con.execute(
        "CREATE OR REPLACE VIEW ingest_runs AS SELECT * FROM read_json_auto("
        f"[{', '.join(run_files)}], union_by_name = true) ORDER BY run_id"
    )
    con.execute(
        "CREATE OR REPLACE TABLE _warehouse AS SELECT ? AS root, ? AS runs",
        [location, len(runs)],
    )
    create_duckdb_views(con)


def bounded_connection(database: str, spill: str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for a run's last step, which runs in the pipeline's process.

    One thread (each thread's buffers add to the peak), at most :data:`WORKING_MEMORY_LIMIT`
    of working memory, past which DuckDB spills to the folder ``spill``, no row order kept
    where none is asked, and no Parquet metadata cache: it would keep the footer of every
    shard scanned (see the module's docstring).
    """
    con = duckdb.connect(database)
    try:
        con.execute("SET threads = 1")
        con.execute(f"SET memory_limit = '{WORKING_MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = {_sql_string(spill)}")
        con.execute("SET preserve_insertion_order = false")
        con.execute("SET parquet_metadata_cache = false")
    except BaseException:
        con.close()
        raise
    return con


def duckdb_build_files(folder: Path) -> list[Path]:
    """Files of DuckDB builds in progress or abandoned (with their write-ahead logs and
    spill folders)."""
    return sorted(folder.glob(f".{DUCKDB_FILE}.*.tmp*"))


def build_duckdb(root: Location) -> Path:
    """(Re)create warehouse.duckdb over the committed runs: history, current, ledger, views.

    Call while holding the writer lock (an ingest, or ``connect`` when no ingest runs): the new
    file is built aside under a temporary name in the same folder and then replaces the old one
    with one ``os.replace``. DuckDB locks a file for as long as a read-write connection is open
    on it, so building in place would make every reader fail with a lock error for the length
    of the build; built aside, a reader opens either the previous file or the new one, whole,
    and a reader still open on the previous file keeps reading it until it closes.
    """
    location = _local_root(root)
    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no committed run in {location}")
    path = Path(location) / DUCKDB_FILE
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    spill = aside.with_name(aside.name + ".spill")
    try:
        con = bounded_connection(str(aside), str(spill))
        try:
            _create_warehouse_objects(con, location, runs)
            pause_point("build_duckdb")  # tests query the warehouse mid-build (testpoints)
        finally:
            con.close()  # checkpoints: the file is complete, without a write-ahead log
        os.replace(aside, path)
    finally:
        for leftover in (aside, aside.with_name(aside.name + ".wal")):
            leftover.unlink(missing_ok=True)
        shutil.rmtree(spill, ignore_errors=True)
    return path


def _open_current(location: str, *, read_only: bool) -> duckdb.DuckDBPyConnection | None:
    """The warehouse's DuckDB file, opened, if it exists and describes this folder as it is.

    None when it is missing, or was built elsewhere (the folder moved) or before the latest
    committed run.
    """
    path = Path(location) / DUCKDB_FILE
    if not path.is_file():
        return None
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        ((stored_root, stored_runs),) = con.execute("SELECT root, runs FROM _warehouse").fetchall()
    except BaseException:
        con.close()
        raise
    if stored_root == location and stored_runs == len(committed_runs(location)):
        return con
    con.close()
    return None


def _lock_if_free(location: str) -> WriterLock | None:
    """The writer lock, if it can be had at once: None while an ingest writes, or when the
    folder cannot be written (a read-only copy or mount)."""
    lock = WriterLock(location)
    try:
        lock.acquire()
    except (WarehouseError, OSError):
        return None
    return lock


def connect(root: Location, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a warehouse, which never waits for nor fails on a writer.

    The warehouse's file is opened read-only when it is current. When it is missing (a gs://
    warehouse copied down) or stale (the folder moved, or a run committed since it was built),
    it is rebuilt in place if the writer lock is free at once; while an ingest holds the lock
    (between its commit and its own rebuild), and on a warehouse that cannot be written, the
    same tables and views are built in memory for this connection instead, and nothing in the
    folder is written. ``read_only=False`` opens the file read-write (an in-memory build is
    always writable, and is lost on close).
    """
    location = _local_root(root)
    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no warehouse at {root} (no committed run); run ingest first")
    con = _open_current(location, read_only=read_only)
    if con is not None:
        return con
    lock = _lock_if_free(location)
    if lock is not None:
        try:
            logger.info("warehouse moved or changed since its views were built; rebuilding them")
            build_duckdb(location)
        except OSError as exc:
            logger.info("could not rebuild %s (%s); building in memory", DUCKDB_FILE, exc)
        finally:
            lock.release()
        # still stale when a connection of this process holds the previous file open (DuckDB
        # then serves the database it has open under that path) or an ingest committed since
        con = _open_current(location, read_only=read_only)
        if con is not None:
            return con
    logger.info("%s is being written or cannot be; views built in memory", location)
    con = duckdb.connect(":memory:")
    try:
        _create_warehouse_objects(con, location, committed_runs(location))
    except BaseException:
        con.close()
        raise
    return con
