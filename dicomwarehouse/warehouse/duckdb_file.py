"""The warehouse's DuckDB file: views over the committed runs' Parquet, for local folders.

Nothing is copied into DuckDB: every table is a view over ``read_parquet`` of the committed run
folders, plus one small materialized table (``_current_objects``) that decides which run's rows
of each source URL are current.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import duckdb

from dicomwarehouse.io.objectstore import warehouse_location
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.pausepoints import pause_point
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    DUCKDB_FILE,
    TABLES,
    WarehouseError,
    committed_runs,
    run_record_url,
)
from dicomwarehouse.warehouse.lock import WriterLock

__all__ = [
    "build_duckdb",
    "connect",
    "duckdb_build_files",
]

logger = logging.getLogger(__name__)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _committed_files(root: str, table: str, runs: Sequence[str]) -> str:
    """A DuckDB list of the Parquet globs of the committed runs of one (local) table."""
    globs = [join(root, table, f"run-{run}", "*.parquet") for run in runs]
    return "[" + ", ".join(_sql_string(g) for g in globs) + "]"


def _read_runs(root: str, table: str, runs: Sequence[str]) -> str:
    """``read_parquet`` of a table's committed shards, columns matched by name across runs."""
    return (
        f"read_parquet({_committed_files(root, table, runs)}, union_by_name = true, "
        "hive_partitioning = false)"
    )


def _add_manifest_columns(
    con: duckdb.DuckDBPyConnection, location: str, runs: Sequence[str]
) -> None:
    """Give ``dicom_metadata_raw`` the manifest columns every run now has, as NULL, when no
    committed run has them: runs committed before one became such a column lack it, and the
    views that read it (IDC's crdc_instance_uuid, ...) must bind over such a warehouse too.
    Once any run has it, ``union_by_name`` gives it, NULL in the older runs' rows."""
    present = {name for name, *_ in con.execute("DESCRIBE dicom_metadata_raw").fetchall()}
    missing = [name for name in IDC_MANIFEST_COLUMNS if name not in present]
    if missing:
        nulls = ", ".join(f'CAST(NULL AS VARCHAR) AS "{name}"' for name in missing)
        source = _read_runs(location, "dicom_metadata", runs)
        con.execute(f"CREATE OR REPLACE VIEW dicom_metadata_raw AS SELECT *, {nulls} FROM {source}")


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

    for table in ALL_TABLES:
        source = _read_runs(location, table, runs)
        con.execute(f"CREATE OR REPLACE VIEW {table}_raw AS SELECT * FROM {source}")
    _add_manifest_columns(con, location, runs)
    con.execute(
        "CREATE OR REPLACE VIEW ingest_object_events_history AS "
        "SELECT * FROM ingest_object_events_raw"
    )
    con.execute(f"CREATE OR REPLACE TABLE _current_objects AS {duckdb_sql('current_objects')}")
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


def duckdb_build_files(folder: Path) -> list[Path]:
    """Files of DuckDB builds in progress or abandoned (with their write-ahead logs)."""
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
    try:
        con = duckdb.connect(str(aside))
        try:
            # one thread: the build reads the footers of every shard (wide ones for
            # dicom_metadata) and scans the runs' URLs; each thread's buffers add to the peak
            # memory of the run's last step (343 -> 293 MiB for the build alone at 10,692 objects)
            con.execute("SET threads = 1")
            # every view bound over the tables reads the footers of every shard again (wide
            # ones for dicom_metadata); cached, they are read once per build: the build's peak
            # at 10,692 objects falls from 570 to 336 MiB (shards never change once written)
            con.execute("SET parquet_metadata_cache = true")
            _create_warehouse_objects(con, location, runs)
            pause_point("build_duckdb")  # tests query the warehouse mid-build (pausepoints)
        finally:
            con.close()  # checkpoints: the file is complete, without a write-ahead log
        os.replace(aside, path)
    finally:
        for leftover in (aside, aside.with_name(aside.name + ".wal")):
            leftover.unlink(missing_ok=True)
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
