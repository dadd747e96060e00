"""What a warehouse folder holds, read for publishing: its runs, shards and run schemas.

The layout is the one ``warehouse.commit_run`` writes (``DIR/<table>/run-<id>/part-*.parquet``,
``DIR/_runs/<id>.json``), read through an :class:`~dicomwarehouse.io.objectstore.ObjectStore`
so that the same code reads a local folder or a gs:// prefix. A run is committed exactly when its
run record exists (``warehouse``): folders of other runs are a run in progress or the leftovers
of one that died, and are never published. The ledger (``ingest_object_events``) is optional per
run: runs committed before it existed have none.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from dicomwarehouse.io.objectstore import ObjectStore, StoredObject
from dicomwarehouse.tables.bigquery_schema import RUN_SCHEMA_FILE, Field, arrow_schema_to_bigquery
from dicomwarehouse.tables.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, metadata_schema
from dicomwarehouse.warehouse.layout import (
    COLUMN_PATHS_FILE,
    EVENTS_TABLE,
    LEFT_OUT_FILE,
    RUNS_FOLDER,
    TABLES,
    WarehouseError,
)
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA

__all__ = ["PUBLISHED_TABLES", "RunTable", "WarehouseRun", "read_warehouse"]

#: The warehouse tables a publish loads: the three of every run, and the ledger where it exists.
PUBLISHED_TABLES = (*TABLES, EVENTS_TABLE)

_RUN_FOLDER = re.compile(r"^run-(?P<run_id>[^/]+)/(?P<name>[^/]+)$")
_FALLBACK_SCHEMAS = {
    "dicom_elements": ELEMENTS_SCHEMA,
    "ingest_errors": ERRORS_SCHEMA,
    EVENTS_TABLE: EVENTS_SCHEMA,
}


@dataclass(frozen=True)
class RunTable:
    """One table's folder of one run: its Parquet shards and its BigQuery schema."""

    table: str
    folder: str  # URL or path of the run folder, ending in "/"
    shards: tuple[StoredObject, ...]
    schema: tuple[Field, ...]

    @property
    def size(self) -> int:
        return sum(shard.size for shard in self.shards)


@dataclass(frozen=True)
class WarehouseRun:
    """One committed ingest run: its tables, when it started, and its run record.

    ``tables`` has the three tables of every run, and the ledger when the run wrote one.
    """

    run_id: str
    started_at: dt.datetime
    tables: dict[str, RunTable]
    record: dict = field(default_factory=dict)
    left_out: dict = field(default_factory=dict)

    @property
    def day(self) -> str:
        """The run's UTC day as YYYYMMDD: the history tables' partition of its rows."""
        return f"{self.started_at:%Y%m%d}"


def _started_at(run_id: str, record: dict) -> dt.datetime:
    """When a run started: its record's started_at, else the timestamp its id starts with."""
    if record.get("started_at"):
        return dt.datetime.fromisoformat(record["started_at"]).astimezone(dt.timezone.utc)
    try:
        stamp = dt.datetime.strptime(run_id.split("-", 1)[0], "%Y%m%dT%H%M%S%fZ")
    except ValueError as exc:
        raise WarehouseError(f"run {run_id}: no summary record and no timestamp in its id") from exc
    return stamp.replace(tzinfo=dt.timezone.utc)


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def _run_schema(
    store: ObjectStore, table: str, folder: str, names: set[str], shards: Sequence[StoredObject]
) -> tuple[Field, ...]:
    """The run's BigQuery schema: its ``_bigquery_schema.json``, else rebuilt.

    Runs committed before that file existed: dicom_metadata from ``_column_paths.json``, the
    fixed tables from their schemas in code, or (local folders) the first shard's own schema.
    """
    if RUN_SCHEMA_FILE in names:
        return tuple(json.loads(store.read_text(folder + RUN_SCHEMA_FILE)))
    if not folder.startswith("gs://") and shards:
        import pyarrow.parquet as pq

        return tuple(arrow_schema_to_bigquery(pq.read_schema(shards[0].url), table))
    if table == "dicom_metadata":
        paths = json.loads(store.read_text(folder + COLUMN_PATHS_FILE))
        arrow: pa.Schema = metadata_schema(tuple(p) for p in paths)
    else:
        arrow = _FALLBACK_SCHEMAS[table]
    return tuple(arrow_schema_to_bigquery(arrow, table))


def read_warehouse(root: str, store: ObjectStore) -> list[WarehouseRun]:
    """Every committed run of the warehouse at ``root`` (a folder or gs:// prefix), by run id.

    Raises WarehouseError when there is no committed run, or a run lacks one of its tables.
    """
    records = {}
    for stored in store.list(_join(root, RUNS_FOLDER) + "/"):
        name = stored.url.rsplit("/", 1)[-1]
        if name.endswith(".json") and not name.startswith("."):
            records[name[: -len(".json")]] = json.loads(store.read_text(stored.url))
    if not records:
        raise WarehouseError(f"no warehouse at {root} (no committed runs); run ingest first")
    folders: dict[str, dict[str, dict[str, StoredObject]]] = {}
    for table in PUBLISHED_TABLES:
        prefix = _join(root, table) + "/"
        for stored in store.list(prefix):
            relative = stored.url[len(prefix) :].replace("\\", "/")
            match = _RUN_FOLDER.match(relative)
            if match and match["run_id"] in records:
                run = folders.setdefault(match["run_id"], {})
                run.setdefault(table, {})[match["name"]] = stored
    runs = []
    for run_id in sorted(records):
        tables = {}
        for table in PUBLISHED_TABLES:
            files = folders.get(run_id, {}).get(table)
            if files is None:
                if table == EVENTS_TABLE:
                    continue
                raise WarehouseError(f"run {run_id} has no {table} folder; not publishable")
            folder = _join(root, table, f"run-{run_id}") + "/"
            shards = tuple(files[name] for name in sorted(files) if name.endswith(".parquet"))
            schema = _run_schema(store, table, folder, set(files), shards)
            tables[table] = RunTable(table, folder, shards, schema)
        metadata_files = folders[run_id]["dicom_metadata"]
        left_out = (
            json.loads(store.read_text(metadata_files[LEFT_OUT_FILE].url))
            if LEFT_OUT_FILE in metadata_files
            else {}
        )
        record = records[run_id]
        runs.append(WarehouseRun(run_id, _started_at(run_id, record), tables, record, left_out))
    return runs
