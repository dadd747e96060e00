"""The warehouse folder: committed Parquet per run, and the DuckDB file that queries it.

Layout of a warehouse ``DIR``::

    DIR/dicom_metadata/run-<run id>/part-*.parquet         (+ _column_paths.json,
                                                              _columns_left_out.json)
    DIR/dicom_elements/run-<run id>/part-*.parquet
    DIR/ingest_errors/run-<run id>/part-*.parquet
    DIR/ingest_object_events/run-<run id>/part-*.parquet   the ledger (see ``ledger``)
    (each run folder also holds _bigquery_schema.json: the BigQuery schema of its shards)
    DIR/_runs/<run id>.json                                 the commit record of a run
    DIR/warehouse.duckdb

A run writes its shards straight into its own ``run-<run id>`` folders (nothing is renamed,
so the same protocol works on object storage). Its commit is the last write, the run record
``_runs/<run id>.json``: a run is committed exactly when that record exists, and every reader
looks only at committed runs. A run killed at any point therefore leaves nothing a query sees,
and the next writer removes its leftovers before it starts.

Every committed run is kept (the ``*_history`` views, with ``is_current``); the tables users
query hold, for each source URL, the rows of the latest run that read it, unless a later full
listing found it deleted. Ingesting the same inputs twice never doubles a row.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.errors import UsageError
from dicomwarehouse.ledger import EVENTS_SCHEMA, EVENTS_TABLE, KnownObject, known_objects
from dicomwarehouse.parquet import write_shard
from dicomwarehouse.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, metadata_schema

__all__ = [
    "COLUMN_PATHS_FILE",
    "DUCKDB_FILE",
    "LEFT_OUT_FILE",
    "RUNS_FOLDER",
    "TABLES",
    "RunCounts",
    "WarehouseError",
    "build_duckdb",
    "commit_run",
    "committed_runs",
    "connect",
    "exclusive_writer",
    "read_known_objects",
    "remove_uncommitted",
    "run_dir",
    "run_output",
    "staged_urls",
]

logger = logging.getLogger(__name__)

TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")
_ALL_TABLES = (*TABLES, EVENTS_TABLE)
DUCKDB_FILE = "warehouse.duckdb"
#: Written beside a run's dicom_metadata shards: the union of the run's column paths.
COLUMN_PATHS_FILE = "_column_paths.json"
#: Beside it: what BigQuery's limits left out of the run's dicom_metadata (limits.py).
LEFT_OUT_FILE = "_columns_left_out.json"
#: Folder of the run records; a run is committed exactly when its record is here.
RUNS_FOLDER = "_runs"
_LOCK = ".lock"


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


def run_dir(root: Path, table: str, run_id: str) -> Path:
    """The folder of one table's shards of one run."""
    return root / table / f"run-{run_id}"


def run_output(root: Path, run_id: str) -> str:
    """The pipeline's output template for a run: its folders, with a ``{table}`` placeholder."""
    return str(root / "{table}" / f"run-{run_id}")


def committed_runs(root: Path) -> list[str]:
    """Ids of the committed runs, oldest first (run ids sort by start time)."""
    runs = root / RUNS_FOLDER
    return sorted(p.stem for p in runs.glob("*.json")) if runs.is_dir() else []


@contextlib.contextmanager
def exclusive_writer(root: Path) -> Iterator[None]:
    """Hold the warehouse's write lock: one ingest at a time may stage and commit."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / _LOCK, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WarehouseError(f"another ingest is writing to {root}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def remove_uncommitted(root: Path) -> list[str]:
    """Delete what runs that never committed left behind; returns their ids.

    Call only while holding ``exclusive_writer``: then no run is in progress.
    """
    committed = set(committed_runs(root))
    removed: set[str] = set()
    for table in _ALL_TABLES:
        for folder in (root / table).glob("run-*"):
            run_id = folder.name.removeprefix("run-")
            if run_id not in committed:
                removed.add(run_id)
                shutil.rmtree(folder, ignore_errors=True)
    if removed:
        logger.warning("removed %d uncommitted run(s): %s", len(removed), sorted(removed))
    return sorted(removed)


def _row_count(directory: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in directory.glob("*.parquet"))


def _ensure_shard(directory: Path, schema: pa.Schema) -> None:
    """Give a table with no rows in this run one empty shard, so every run reads the same way."""
    if not any(directory.glob("*.parquet")):
        write_shard(schema.empty_table(), str(directory))


def staged_urls(root: Path, run_id: str) -> dict[str, str]:
    """Source URL -> table ("dicom_metadata" or "ingest_errors") of a run's staged rows."""
    found: dict[str, str] = {}
    for table in ("dicom_metadata", "ingest_errors"):
        for path in sorted(run_dir(root, table, run_id).glob("*.parquet")):
            for url in pq.read_table(path, columns=["source_url"]).column(0).to_pylist():
                found[url] = table
    return found


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
    events: pa.Table | None = None,
    extra_columns: Sequence[str] = (),
    summary: dict[str, Any] | None = None,
) -> RunCounts:
    """Commit a finished run: complete its folders, then write its run record.

    Refuses (leaving the run uncommitted, hence invisible) unless every object read is in
    exactly one of dicom_metadata and ingest_errors. The run record is the last write: it is
    the commit.
    """
    paths_file = run_dir(root, "dicom_metadata", run_id) / COLUMN_PATHS_FILE
    paths = json.loads(paths_file.read_text()) if paths_file.exists() else []
    schemas = {
        "dicom_metadata": metadata_schema(
            (tuple(p) for p in paths), dict.fromkeys(extra_columns, pa.string())
        ),
        "dicom_elements": ELEMENTS_SCHEMA,
        "ingest_errors": ERRORS_SCHEMA,
        EVENTS_TABLE: EVENTS_SCHEMA,
    }
    if events is not None and events.num_rows:
        write_shard(events, str(run_dir(root, EVENTS_TABLE, run_id)))
    for table, schema in schemas.items():
        _ensure_shard(run_dir(root, table, run_id), schema)
        _write_bigquery_schema(run_dir(root, table, run_id), table)
    left_out_file = run_dir(root, "dicom_metadata", run_id) / LEFT_OUT_FILE
    left_out = json.loads(left_out_file.read_text()) if left_out_file.exists() else {}
    counts = RunCounts(
        instances=_row_count(run_dir(root, "dicom_metadata", run_id)),
        elements=_row_count(run_dir(root, "dicom_elements", run_id)),
        errors=_row_count(run_dir(root, "ingest_errors", run_id)),
        attributes_left_out=left_out.get("left_out_count", 0),
        deep_sequences_left_out=left_out.get("too_deep", {}).get("sequences", 0),
    )
    if counts.instances + counts.errors != expected_objects:
        raise WarehouseError(
            f"run {run_id} wrote rows for {counts.instances + counts.errors} of "
            f"{expected_objects} objects; not committed"
        )
    runs = root / RUNS_FOLDER
    runs.mkdir(exist_ok=True)
    record = {"run_id": run_id, **asdict(counts), **(summary or {})}
    temporary = runs / f".{run_id}.json.tmp"
    temporary.write_text(json.dumps(record, indent=2, default=str))
    os.replace(temporary, runs / f"{run_id}.json")  # the commit point
    return counts


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _committed_files(root: Path, table: str, runs: Sequence[str]) -> str:
    """A DuckDB list of the Parquet globs of the committed runs of one table."""
    base = root.resolve()
    globs = [(base / table / f"run-{run}" / "*.parquet").as_posix() for run in runs]
    return "[" + ", ".join(_sql_string(g) for g in globs) + "]"


def read_known_objects(root: Path) -> dict[str, KnownObject]:
    """The ledger's current knowledge per URL, from the committed runs' events."""
    runs = committed_runs(root)
    if not runs:
        return {}
    con = duckdb.connect()
    try:
        relation = con.sql(
            f"SELECT * FROM read_parquet({_committed_files(root, EVENTS_TABLE, runs)}) "
            "WHERE outcome <> 'skipped' "
            "QUALIFY row_number() OVER (PARTITION BY source_url ORDER BY ingest_run_id DESC) = 1"
        )
        columns = relation.columns
        rows = [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()
    return known_objects(rows)


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


def build_duckdb(root: Path) -> Path:
    """(Re)create warehouse.duckdb over the committed runs: history, current, ledger, views.

    The views read the Parquet in place (nothing is copied); ``_current_objects`` is the one
    table materialized here: for each current source URL, the latest run that read it.
    """
    from dicomwarehouse.views import create_duckdb_views

    runs = committed_runs(root)
    if not runs:
        raise WarehouseError(f"no committed run in {root}")
    path = root / DUCKDB_FILE
    con = duckdb.connect(str(path))
    try:
        for table in _ALL_TABLES:
            con.execute(
                f"CREATE OR REPLACE VIEW {table}_raw AS SELECT * FROM read_parquet("
                f"{_committed_files(root, table, runs)}, union_by_name = true, "
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
        run_files = [
            _sql_string((root.resolve() / RUNS_FOLDER / f"{run}.json").as_posix()) for run in runs
        ]
        con.execute(
            "CREATE OR REPLACE VIEW ingest_runs AS SELECT * FROM read_json_auto("
            f"[{', '.join(run_files)}], union_by_name = true) ORDER BY run_id"
        )
        con.execute(
            "CREATE OR REPLACE TABLE _warehouse AS SELECT ? AS root, ? AS runs",
            [str(root.resolve()), len(runs)],
        )
        create_duckdb_views(con)
    finally:
        con.close()
    return path


def connect(root: Path, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open a warehouse's DuckDB file, rebuilding its views if the folder moved or grew."""
    path = root / DUCKDB_FILE
    if not path.is_file():
        raise WarehouseError(f"no warehouse at {root} (missing {DUCKDB_FILE}); run ingest first")
    con = duckdb.connect(str(path), read_only=read_only)
    ((stored_root, stored_runs),) = con.execute("SELECT root, runs FROM _warehouse").fetchall()
    if stored_root != str(root.resolve()) or stored_runs != len(committed_runs(root)):
        con.close()
        logger.info("warehouse moved or changed since its views were built; rebuilding them")
        build_duckdb(root)
        con = duckdb.connect(str(path), read_only=read_only)
    return con
