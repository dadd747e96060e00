"""The warehouse's DuckDB file: views over the committed runs' Parquet, for local folders.

Nothing is copied into DuckDB: every table is a view over ``read_parquet`` of the committed run
folders, plus one small materialized table (``_current_objects``) that decides which run's rows
of each source URL are current.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import duckdb

from dicomwarehouse.io.objectstore import warehouse_location
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    DUCKDB_FILE,
    TABLES,
    WarehouseError,
    committed_runs,
    run_record_url,
)

__all__ = [
    "build_duckdb",
    "connect",
]

logger = logging.getLogger(__name__)


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _committed_files(root: str, table: str, runs: Sequence[str]) -> str:
    """A DuckDB list of the Parquet globs of the committed runs of one (local) table."""
    globs = [join(root, table, f"run-{run}", "*.parquet") for run in runs]
    return "[" + ", ".join(_sql_string(g) for g in globs) + "]"


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


def build_duckdb(root: Location) -> Path:
    """(Re)create warehouse.duckdb over the committed runs: history, current, ledger, views.

    The views read the Parquet in place (nothing is copied); ``_current_objects`` is the one
    table materialized here: for each current source URL, the latest run that read it.
    """
    from dicomwarehouse.warehouse.internal_sql import duckdb_sql
    from dicomwarehouse.warehouse.views import create_duckdb_views

    location = _local_root(root)
    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no committed run in {location}")
    path = Path(location) / DUCKDB_FILE
    con = duckdb.connect(str(path))
    try:
        for table in ALL_TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table}_raw AS SELECT * FROM read_parquet("
                f"{_committed_files(location, table, runs)}, union_by_name = true, "
                "hive_partitioning = false)"
            )
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
    finally:
        con.close()
    return path


def connect(root: Location, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a warehouse's DuckDB file, rebuilding its views if the folder moved or grew.

    A folder of committed runs without the file (a gs:// warehouse copied down) gets one.
    """
    location = _local_root(root)
    path = Path(location) / DUCKDB_FILE
    if not path.is_file():
        if not committed_runs(location):
            raise WarehouseError(f"no warehouse at {root} (no committed run); run ingest first")
        build_duckdb(location)
    con = duckdb.connect(str(path), read_only=read_only)
    ((stored_root, stored_runs),) = con.execute("SELECT root, runs FROM _warehouse").fetchall()
    if stored_root != location or stored_runs != len(committed_runs(location)):
        con.close()
        logger.info("warehouse moved or changed since its views were built; rebuilding them")
        build_duckdb(location)
        con = duckdb.connect(str(path), read_only=read_only)
    return con
