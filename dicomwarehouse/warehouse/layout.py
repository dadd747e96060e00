"""The warehouse: committed Parquet per run, in a local folder or under a gs:// prefix.

Layout of a warehouse ``DIR`` (a folder, or ``gs://bucket/prefix``)::

    DIR/dicom_metadata/run-<run id>/part-*.parquet         (+ _column_paths.json,
                                                              _columns_left_out.json)
    DIR/dicom_elements/run-<run id>/part-*.parquet
    DIR/ingest_errors/run-<run id>/part-*.parquet
    DIR/ingest_object_events/run-<run id>/part-*.parquet   the ledger (see ``ledger``)
    (each run folder also holds _bigquery_schema.json: the BigQuery schema of its shards)
    DIR/_runs/<run id>.json                                 the commit record of a run
    DIR/_started/<run id>.json                              what a run writes (until it commits)
    DIR/warehouse.duckdb                                    (local warehouses only)

A run writes its shards straight into its own ``run-<run id>`` folders (nothing is renamed:
object stores cannot rename atomically, see ``objectstore``). Its commit is the last write, the
run record ``_runs/<run id>.json``: a run is committed exactly when that record exists, and every
reader looks only at committed runs. A run killed at any point therefore leaves nothing a query
sees, and the next writer removes its leftovers before it starts. Before writing anything a run
names its output folders in ``_started/<run id>.json`` (removed when it commits), so that
clean-up lists only the few runs that did not commit and deletes only their folders, never
walking the tables' history.

Every committed run is kept (the ``*_history`` views, with ``is_current``); the tables users
query hold, for each source URL, the rows of the latest run that read it, unless a later full
listing found it deleted. Ingesting the same inputs twice never doubles a row.

A gs:// warehouse is queried in BigQuery (``publish bigquery`` loads it in place): DuckDB here
has no httpfs extension, so ``warehouse.duckdb`` is built for local warehouses only.
"""

from __future__ import annotations

import logging
from typing import Any

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.objectstore import read_json_if_present, store_for, warehouse_location
from dicomwarehouse.io.urls import Location, join
from dicomwarehouse.tables.schema import ColumnPath

__all__ = [
    "ALL_TABLES",
    "COLUMN_PATHS_FILE",
    "DUCKDB_FILE",
    "EVENTS_TABLE",
    "LEFT_OUT_FILE",
    "PLANS_FOLDER",
    "RUNS_FOLDER",
    "STAGING_FOLDER",
    "STARTED_FOLDER",
    "TABLES",
    "WarehouseError",
    "committed_column_paths",
    "committed_runs",
    "read_run_record",
    "run_dir",
    "run_output",
    "run_record_url",
    "shard_urls",
    "started_record_url",
]

logger = logging.getLogger(__name__)

TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")
#: The ledger: one row per object a run was given (see ``ledger``).
EVENTS_TABLE = "ingest_object_events"
ALL_TABLES = (*TABLES, EVENTS_TABLE)
DUCKDB_FILE = "warehouse.duckdb"
#: Written beside a run's dicom_metadata shards: the union of the run's column paths.
COLUMN_PATHS_FILE = "_column_paths.json"
#: Beside it: what BigQuery's limits left out of the run's dicom_metadata (limits.py).
LEFT_OUT_FILE = "_columns_left_out.json"
#: Folder of the run records; a run is committed exactly when its record is here.
RUNS_FOLDER = "_runs"
#: Folder of the records of runs that started and have not committed: each names the folders
#: its run writes, which are all that clean-up after a failed run deletes.
STARTED_FOLDER = "_started"
#: Folder where runs of earlier versions kept their planned ledger rows and objects to read;
#: runs now plan in the pipeline and write their ledger rows to their own run folder, but
#: clean-up still removes what an interrupted earlier run left here.
PLANS_FOLDER = "_plans"
#: Inside a run's dicom_metadata folder: rows staged until the run's schema is known
#: (``pipeline.transforms``); removed when the run commits.
STAGING_FOLDER = "_staging"


class WarehouseError(UsageError):
    """A warehouse that is missing or inconsistent; reported as one line to the user."""


def run_dir(root: Location, table: str, run_id: str) -> str:
    """The folder (path or gs:// prefix) of one table's shards of one run."""
    return join(warehouse_location(root), table, f"run-{run_id}")


def run_output(root: Location, run_id: str) -> str:
    """The pipeline's output template for a run: its folders, with a ``{table}`` placeholder."""
    return run_dir(root, "{table}", run_id)


def _runs_prefix(root: str) -> str:
    return join(root, RUNS_FOLDER) + "/"


def run_record_url(root: str, run_id: str) -> str:
    return _runs_prefix(root) + f"{run_id}.json"


def started_record_url(root: str, run_id: str) -> str:
    return join(root, STARTED_FOLDER, f"{run_id}.json")


def read_run_record(root: Location, run_id: str) -> dict[str, Any] | None:
    """The run record of a committed run, or None when the run did not commit."""
    return read_json_if_present(run_record_url(warehouse_location(root), run_id))


def committed_runs(root: Location) -> list[str]:
    """Ids of the committed runs, oldest first (run ids sort by start time)."""
    location = warehouse_location(root)
    names = (
        stored.url.rsplit("/", 1)[-1] for stored in store_for(location).list(_runs_prefix(location))
    )
    return sorted(
        name[: -len(".json")] for name in names if name.endswith(".json") and name[0] != "."
    )


def shard_urls(root: Location, table: str, run_id: str) -> list[str]:
    """The Parquet shards of one table of one run, by name."""
    folder = run_dir(root, table, run_id)
    return sorted(
        stored.url
        for stored in store_for(folder).list(folder + "/")
        if stored.url.endswith(".parquet") and stored.url.rsplit("/", 1)[-1][0] != "."
    )


def committed_column_paths(root: Location) -> set[ColumnPath]:
    """The union of the column paths of every committed run of a warehouse (local or gs://)."""
    paths: set[ColumnPath] = set()
    for run_id in committed_runs(root):
        path_file = join(run_dir(root, "dicom_metadata", run_id), COLUMN_PATHS_FILE)
        paths.update(tuple(p) for p in read_json_if_present(path_file) or ())
    return paths
