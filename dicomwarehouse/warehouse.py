"""The warehouse folder: committed Parquet per run, and the DuckDB file that queries it.

Layout of a warehouse ``DIR``::

    DIR/dicom_metadata/run-<run id>/part-*.parquet   (+ _column_paths.json, _columns_left_out.json)
    DIR/dicom_elements/run-<run id>/part-*.parquet
    DIR/ingest_errors/run-<run id>/part-*.parquet
    (each run folder also holds _bigquery_schema.json: the BigQuery schema of its shards)
    DIR/_runs/<run id>.json                            one summary per committed run
    DIR/_staging/<run id>/...                          a run in progress (never queried)
    DIR/warehouse.duckdb

A run writes only into its staging folder and is committed by renaming its folders into place,
so a run that dies leaves nothing a query sees. Every committed run is kept (the ``*_history``
views); the tables users query hold, for each source URL, the rows of the latest run that saw
it, so ingesting the same inputs twice never doubles a row.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.errors import UsageError
from dicomwarehouse.parquet import write_shard
from dicomwarehouse.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, metadata_schema

__all__ = [
    "COLUMN_PATHS_FILE",
    "DUCKDB_FILE",
    "LEFT_OUT_FILE",
    "TABLES",
    "RunCounts",
    "WarehouseError",
    "build_duckdb",
    "commit_run",
    "connect",
    "staging_dir",
]

logger = logging.getLogger(__name__)

TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")
DUCKDB_FILE = "warehouse.duckdb"
#: Written beside a run's dicom_metadata shards: the union of the run's column paths.
COLUMN_PATHS_FILE = "_column_paths.json"
#: Beside it: what BigQuery's limits left out of the run's dicom_metadata (limits.py).
LEFT_OUT_FILE = "_columns_left_out.json"
_RUNS = "_runs"
_STAGING = "_staging"


class WarehouseError(UsageError):
    """A warehouse that is missing or inconsistent; reported as one line to the user."""


@dataclass(frozen=True)
class RunCounts:
    """Rows one run committed, per table, and what BigQuery's limits left to dicom_elements."""

    instances: int
    elements: int
    errors: int
    #: column paths the column limit left out of dicom_metadata (limits.choose_columns)
    attributes_left_out: int = 0
    #: sequences nested too deep for dicom_metadata (schema.MAX_SEQUENCE_COLUMN_DEPTH)
    deep_sequences_left_out: int = 0


def staging_dir(root: Path, run_id: str) -> Path:
    """Where a run in progress writes its shards."""
    return root / _STAGING / run_id


def _row_count(directory: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in directory.glob("*.parquet"))


def _ensure_shard(directory: Path, schema: pa.Schema) -> None:
    """Give a table with no rows in this run one empty shard, so every run reads the same way."""
    if not any(directory.glob("*.parquet")):
        write_shard(schema.empty_table(), str(directory))


def _write_bigquery_schema(directory: Path, table: str) -> None:
    """Write the BigQuery schema of a run's shards beside them (the loader's job schema)."""
    from dicomwarehouse.bigquery.schema import RUN_SCHEMA_FILE, run_schema_json

    shard = min(directory.glob("*.parquet"))
    (directory / RUN_SCHEMA_FILE).write_text(run_schema_json(pq.read_schema(shard), table))


def commit_run(
    root: Path,
    run_id: str,
    *,
    expected_objects: int,
    extra_columns: Sequence[str] = (),
    summary: dict | None = None,
) -> RunCounts:
    """Move a finished run's shards from staging into the warehouse and record the run.

    Refuses (and leaves the run staged) unless every object is in exactly one of
    dicom_metadata and ingest_errors.
    """
    staging = staging_dir(root, run_id)
    metadata_dir = staging / "dicom_metadata"
    paths_file = metadata_dir / COLUMN_PATHS_FILE
    paths = json.loads(paths_file.read_text()) if paths_file.exists() else []
    schemas = {
        "dicom_metadata": metadata_schema(
            (tuple(p) for p in paths), dict.fromkeys(extra_columns, pa.string())
        ),
        "dicom_elements": ELEMENTS_SCHEMA,
        "ingest_errors": ERRORS_SCHEMA,
    }
    for table, schema in schemas.items():
        _ensure_shard(staging / table, schema)
        _write_bigquery_schema(staging / table, table)
    left_out_file = metadata_dir / LEFT_OUT_FILE
    left_out = json.loads(left_out_file.read_text()) if left_out_file.exists() else {}
    counts = RunCounts(
        instances=_row_count(staging / "dicom_metadata"),
        elements=_row_count(staging / "dicom_elements"),
        errors=_row_count(staging / "ingest_errors"),
        attributes_left_out=left_out.get("left_out_count", 0),
        deep_sequences_left_out=left_out.get("too_deep", {}).get("sequences", 0),
    )
    if counts.instances + counts.errors != expected_objects:
        raise WarehouseError(
            f"run {run_id} staged rows for {counts.instances + counts.errors} of "
            f"{expected_objects} objects; not committed (staging kept at {staging})"
        )
    for table in TABLES:
        target = root / table / f"run-{run_id}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / table, target)
    runs = root / _RUNS
    runs.mkdir(exist_ok=True)
    record = {"run_id": run_id, **asdict(counts), **(summary or {})}
    (runs / f"{run_id}.json").write_text(json.dumps(record, indent=2, default=str))
    shutil.rmtree(staging, ignore_errors=True)
    return counts


def _parquet_glob(root: Path, table: str) -> str:
    return (root.resolve() / table / "run-*" / "*.parquet").as_posix().replace("'", "''")


def build_duckdb(root: Path) -> Path:
    """(Re)create warehouse.duckdb: history views over all runs, current tables, SQL views.

    The views read the Parquet in place (nothing is copied); ``_current_objects`` is the one
    table materialized here: for each source URL, the latest run that produced a row for it.
    """
    from dicomwarehouse.views import create_duckdb_views

    path = root / DUCKDB_FILE
    con = duckdb.connect(str(path))
    try:
        for table in TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table}_history AS SELECT * FROM read_parquet("
                f"'{_parquet_glob(root, table)}', union_by_name = true, hive_partitioning = false)"
            )
        con.execute(
            """
            CREATE OR REPLACE TABLE _current_objects AS
            SELECT source_url, max(ingest_run_id) AS ingest_run_id
            FROM (
                SELECT source_url, ingest_run_id FROM dicom_metadata_history
                UNION ALL
                SELECT source_url, ingest_run_id FROM ingest_errors_history
            )
            GROUP BY source_url
            """
        )
        for table in TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table} AS SELECT h.* FROM {table}_history AS h "
                "SEMI JOIN _current_objects AS c "
                "ON h.source_url = c.source_url AND h.ingest_run_id = c.ingest_run_id"
            )
        con.execute("CREATE OR REPLACE TABLE _warehouse AS SELECT ? AS root", [str(root.resolve())])
        create_duckdb_views(con)
    finally:
        con.close()
    return path


def connect(root: Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a warehouse's DuckDB file, rebuilding its views if the folder has moved."""
    path = root / DUCKDB_FILE
    if not path.is_file():
        raise WarehouseError(f"no warehouse at {root} (missing {DUCKDB_FILE}); run ingest first")
    con = duckdb.connect(str(path), read_only=read_only)
    ((stored_root,),) = con.execute("SELECT root FROM _warehouse").fetchall()
    if stored_root != str(root.resolve()):
        con.close()
        logger.info("warehouse moved from %s; rebuilding its views", stored_root)
        build_duckdb(root)
        con = duckdb.connect(str(path), read_only=read_only)
    return con
