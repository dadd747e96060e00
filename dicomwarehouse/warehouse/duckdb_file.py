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


_CURRENT_OBJECTS = """
CREATE OR REPLACE TABLE _current_objects AS
WITH produced AS (
    SELECT source_url, max(ingest_run_id) AS ingest_run_id
    FROM (
        SELECT source_url, ingest_run_id FROM dicom_metadata_raw
        UNION ALL
        SELECT source_url, ingest_run_id FROM ingest_errors_raw
    )
    GROUP BY source_url
),
deleted AS (
    SELECT source_url, max(ingest_run_id) AS deleted_run_id
    FROM ingest_object_events_raw
    WHERE outcome = 'deleted'
    GROUP BY source_url
)
SELECT p.source_url, p.ingest_run_id
FROM produced AS p
LEFT JOIN deleted AS d ON d.source_url = p.source_url
WHERE d.deleted_run_id IS NULL OR d.deleted_run_id < p.ingest_run_id
"""


_INGEST_OBJECTS = """
CREATE OR REPLACE VIEW ingest_objects AS
WITH events AS (
    SELECT *, coalesce(source_generation, source_etag, source_md5, '') AS version_key
    FROM ingest_object_events_history
),
versions AS (
    SELECT
        source_url,
        version_key,
        any_value(source_generation) AS source_generation,
        any_value(source_etag) AS source_etag,
        any_value(source_md5) AS source_md5,
        any_value(source_size) AS source_size,
        min(ingest_run_id) AS first_seen_run_id,
        max(ingest_run_id) AS last_seen_run_id,
        arg_max(outcome, ingest_run_id) FILTER (WHERE outcome NOT IN ('skipped', 'deleted'))
            AS last_outcome
    FROM events
    WHERE outcome <> 'deleted'
    GROUP BY source_url, version_key
),
latest AS (
    SELECT source_url, arg_max(version_key, ingest_run_id) AS version_key
    FROM events
    WHERE outcome <> 'deleted'
    GROUP BY source_url
),
deletions AS (
    SELECT source_url, max(ingest_run_id) AS deleted_run_id
    FROM events
    WHERE outcome = 'deleted'
    GROUP BY source_url
)
SELECT
    v.source_url,
    v.source_generation,
    v.source_etag,
    v.source_md5,
    v.source_size,
    v.first_seen_run_id,
    v.last_seen_run_id,
    CASE
        WHEN l.version_key <> v.version_key THEN 'superseded'
        WHEN d.deleted_run_id > v.last_seen_run_id THEN 'deleted'
        ELSE v.last_outcome
    END AS status,
    d.deleted_run_id
FROM versions AS v
JOIN latest AS l ON l.source_url = v.source_url
LEFT JOIN deletions AS d ON d.source_url = v.source_url
"""


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
        con.execute(_CURRENT_OBJECTS)
        for table in TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table}_history AS SELECT h.*, "
                "(c.source_url IS NOT NULL) AS is_current FROM {table}_raw AS h "
                "LEFT JOIN _current_objects AS c "
                "ON h.source_url = c.source_url AND h.ingest_run_id = c.ingest_run_id".format(
                    table=table
                )
            )
            con.execute(
                f"CREATE OR REPLACE VIEW {table} AS SELECT h.* FROM {table}_raw AS h "
                "SEMI JOIN _current_objects AS c "
                "ON h.source_url = c.source_url AND h.ingest_run_id = c.ingest_run_id"
            )
        con.execute(_INGEST_OBJECTS)
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
