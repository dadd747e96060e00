"""Committing a run: complete its folders, then write its run record, the commit point.

A run's shards are already in its own ``run-<id>`` folders; the commit only checks them, writes
what readers need beside them and finally the record. Before it writes anything, a run names
those folders (``start_run``); the leftovers of runs that never committed are removed by the
next writer (``remove_uncommitted``), which deletes only the folders such runs named: its cost
grows with the failed runs, not with the warehouse.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.io.objectstore import (
    read_json_if_present,
    store_for,
    warehouse_location,
    write_json,
)
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.tables.parquet import read_parquet, write_shard
from dicomwarehouse.tables.schema import (
    ELEMENTS_SCHEMA,
    ERRORS_SCHEMA,
    column_path_problem,
    metadata_schema,
)
from dicomwarehouse.warehouse.duckdb_file import bounded_connection, duckdb_build_files
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    COLUMN_PATHS_FILE,
    EVENTS_TABLE,
    LEFT_OUT_FILE,
    PLANS_FOLDER,
    STARTED_FOLDER,
    WarehouseError,
    run_dir,
    run_record_url,
    shard_urls,
    started_record_url,
)
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA

__all__ = [
    "RunCounts",
    "commit_run",
    "remove_uncommitted",
    "staged_urls",
    "start_run",
]

logger = logging.getLogger(__name__)


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
    #: distinct SOPInstanceUIDs among the run's dicom_metadata rows: fewer than ``instances``
    #: when copies of an object (or objects reusing a UID) were read, as the instances view,
    #: one row per SOPInstanceUID, shows
    sop_instance_uids: int = 0
    #: rows of the run without a SOPInstanceUID (DICOMDIRs, damaged objects)
    instances_without_uid: int = 0


def _run_folders(run_id: str) -> list[str]:
    """A run's output folders, relative to its warehouse (so a moved folder stays valid)."""
    return [f"{table}/run-{run_id}" for table in ALL_TABLES]


def start_run(root: Location, run_id: str) -> None:
    """Record, before a run writes anything, the folders it writes: what clean-up may delete.

    Call while holding ``exclusive_writer``; ``commit_run`` removes the record.
    """
    location = warehouse_location(root)
    write_json(
        started_record_url(location, run_id), {"run_id": run_id, "outputs": _run_folders(run_id)}
    )


def _files_by_run(location: str, folder: str) -> dict[str, list[str]]:
    """The files of a small folder by the run id they name (``<run id>[.suffix].ext``)."""
    prefix = join(location, folder) + "/"
    found: dict[str, list[str]] = {}
    for stored in store_for(location).list(prefix):
        name = stored.url[len(prefix) :]
        if "/" not in name and not name.startswith("."):
            found.setdefault(name.split(".", 1)[0], []).append(stored.url)
    return found


def remove_uncommitted(root: Location) -> list[str]:
    """Delete what runs that never committed left behind; returns their ids.

    The runs are those named in ``_started/`` (and, for runs started before that record
    existed, in ``_plans/``) that have no run record: both folders hold only runs in flight,
    so this lists a few small prefixes and each failed run's own folders, never the tables'
    history. Objects no run named are left alone. Also removes the files of DuckDB builds that
    were cut short. Call only while holding ``exclusive_writer``: then no run, and no build, is
    in progress.
    """
    location = warehouse_location(root)
    store = store_for(location)
    removed: list[str] = []
    started = _files_by_run(location, STARTED_FOLDER)
    plans = _files_by_run(location, PLANS_FOLDER)
    for run_id in sorted(started.keys() | plans.keys()):
        if store.stat(run_record_url(location, run_id)) is None:
            record = read_json_if_present(started_record_url(location, run_id)) or {}
            for folder in record.get("outputs") or _run_folders(run_id):
                if folder in _run_folders(run_id):  # only a run's own folders, whatever it says
                    store.remove_tree(join(location, folder))
            removed.append(run_id)
        for url in plans.get(run_id, []):
            store.delete(url)
        # last: a clean-up cut short is done again by the next writer
        store.delete(started_record_url(location, run_id))
    if not is_gs_url(location):  # DuckDB builds cut short (only lock holders build)
        for leftover in duckdb_build_files(Path(location)):
            if leftover.is_dir():  # a build's spill folder
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
    if removed:
        logger.warning("removed %d uncommitted run(s): %s", len(removed), removed)
    return removed


def _row_count(root: str, table: str, run_id: str) -> int:
    total = 0
    for url in shard_urls(root, table, run_id):
        with store_for(url).open_input(url) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def _sop_instance_uids(root: str, run_id: str) -> tuple[int, int]:
    """Distinct SOPInstanceUIDs of a run's dicom_metadata shards, and rows without one.

    Counted by DuckDB over a table it fills one shard's column at a time, under its working
    memory limit: a run's UIDs (some 100 bytes an object) would otherwise all be in memory at
    the commit, which would grow with the run. Shards are read here, not by DuckDB, as they
    may be on Cloud Storage.
    """
    without = 0
    with tempfile.TemporaryDirectory(prefix="dicomwarehouse-uids-") as spill:
        con = bounded_connection(":memory:", spill)
        try:
            con.execute("CREATE TABLE uids (uid VARCHAR)")
            for url in shard_urls(root, "dicom_metadata", run_id):
                with store_for(url).open_input(url) as handle:
                    shard = pq.ParquetFile(handle)
                    if "SOPInstanceUID" not in shard.schema_arrow.names:
                        without += shard.metadata.num_rows
                        continue
                    column = shard.read(columns=["SOPInstanceUID"]).column(0).cast(pa.string())
                without += column.null_count
                con.register("shard_uids", pa.table({"uid": column}))
                con.execute("INSERT INTO uids SELECT uid FROM shard_uids WHERE uid IS NOT NULL")
                con.unregister("shard_uids")
            [(distinct,)] = con.sql(
                "SELECT count(*) FROM (SELECT DISTINCT uid FROM uids)"
            ).fetchall()
        finally:
            con.close()
    return distinct, without


def staged_urls(root: Location, run_id: str) -> dict[str, str]:
    """Source URL -> table ("dicom_metadata" or "ingest_errors") of a run's staged rows."""
    found: dict[str, str] = {}
    for table in ("dicom_metadata", "ingest_errors"):
        for url in shard_urls(root, table, run_id):
            for source in read_parquet(url, ["source_url"]).column(0).to_pylist():
                found[source] = table
    return found


def commit_run(
    root: Location,
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
    from dicomwarehouse.tables.bigquery_schema import RUN_SCHEMA_FILE, run_schema_json

    location = warehouse_location(root)
    metadata_dir = run_dir(location, "dicom_metadata", run_id)
    paths = read_json_if_present(join(metadata_dir, COLUMN_PATHS_FILE)) or []
    schemas = {
        "dicom_metadata": metadata_schema(
            (tuple(p) for p in paths), dict.fromkeys(extra_columns, pa.string())
        ),
        "dicom_elements": ELEMENTS_SCHEMA,
        "ingest_errors": ERRORS_SCHEMA,
        EVENTS_TABLE: EVENTS_SCHEMA,
    }
    if events is not None and events.num_rows:
        store_for(location).remove_tree(run_dir(location, EVENTS_TABLE, run_id))  # a retry
        write_shard(events, run_dir(location, EVENTS_TABLE, run_id))
    for table, schema in schemas.items():
        shards = shard_urls(location, table, run_id)
        if not shards:  # one empty shard, so every run reads the same way
            shards = [write_shard(schema.empty_table(), run_dir(location, table, run_id))]
        with store_for(shards[0]).open_input(shards[0]) as handle:
            shard_schema = pq.read_schema(handle)
        # the loader's job schema, beside the shards
        store_for(location).write_bytes(
            join(run_dir(location, table, run_id), RUN_SCHEMA_FILE),
            run_schema_json(shard_schema, table).encode("utf-8"),
        )
    left_out = read_json_if_present(join(metadata_dir, LEFT_OUT_FILE)) or {}
    sop_instance_uids, without_uid = _sop_instance_uids(location, run_id)
    counts = RunCounts(
        instances=_row_count(location, "dicom_metadata", run_id),
        elements=_row_count(location, "dicom_elements", run_id),
        errors=_row_count(location, "ingest_errors", run_id),
        attributes_left_out=left_out.get("left_out_count", 0),
        deep_sequences_left_out=left_out.get("too_deep", {}).get("sequences", 0),
        sop_instance_uids=sop_instance_uids,
        instances_without_uid=without_uid,
    )
    if counts.instances + counts.errors != expected_objects:
        raise WarehouseError(
            f"run {run_id} wrote rows for {counts.instances + counts.errors} of "
            f"{expected_objects} objects; not committed"
        )
    record = {
        "run_id": run_id,
        **asdict(counts),
        # columns typed STRING because their path has no type of its own (schema._leaf_type)
        "columns_of_unknown_type": sum(column_path_problem(tuple(p)) is not None for p in paths),
        **(summary or {}),
    }
    write_json(run_record_url(location, run_id), record, indent=2)  # the commit point
    store_for(location).delete(started_record_url(location, run_id))  # nothing left to clean
    return counts
