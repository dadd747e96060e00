"""Committing a run: complete its folders, then write its run record, the commit point.

A run's shards are already in its own ``run-<id>`` folders; the commit only checks them, writes
what readers need beside them and finally the record. Leftovers of runs that never committed
are removed by the next writer (``remove_uncommitted``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
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
from dicomwarehouse.warehouse.duckdb_file import duckdb_build_files
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    COLUMN_PATHS_FILE,
    EVENTS_TABLE,
    LEFT_OUT_FILE,
    PLANS_FOLDER,
    WarehouseError,
    committed_runs,
    run_dir,
    run_record_url,
    shard_urls,
)
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA

__all__ = [
    "RunCounts",
    "commit_run",
    "remove_uncommitted",
    "staged_urls",
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


def remove_uncommitted(root: Location) -> list[str]:
    """Delete what runs that never committed left behind; returns their ids.

    Also removes the files of DuckDB builds that were cut short. Call only while holding
    ``exclusive_writer``: then no run, and no build, is in progress.
    """
    location = warehouse_location(root)
    store = store_for(location)
    committed = set(committed_runs(location))
    leftovers: set[tuple[str, str]] = set()
    for table in ALL_TABLES:
        prefix = join(location, table) + "/"
        for stored in store.list(prefix):
            folder = stored.url[len(prefix) :].split("/", 1)[0]
            run_id = folder.removeprefix("run-")
            if folder.startswith("run-") and run_id not in committed:
                leftovers.add((table, run_id))
    for table, run_id in sorted(leftovers):
        store.remove_tree(run_dir(location, table, run_id))
    for stored in store.list(join(location, PLANS_FOLDER) + "/"):
        run_id = stored.url.rsplit("/", 1)[-1].split(".", 1)[0]  # <run id>[.objects].parquet
        if run_id not in committed:
            leftovers.add((PLANS_FOLDER, run_id))
            store.delete(stored.url)
    if not is_gs_url(location):  # DuckDB builds cut short (only lock holders build)
        for leftover in duckdb_build_files(Path(location)):
            leftover.unlink(missing_ok=True)
    removed = sorted({run_id for _, run_id in leftovers})
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

    Counted in Arrow (one string column, not Python strings): a run of millions of objects
    holds its UIDs in a few hundred MB at the commit.
    """
    columns: list[pa.ChunkedArray] = []
    without = 0
    for url in shard_urls(root, "dicom_metadata", run_id):
        with store_for(url).open_input(url) as handle:
            shard = pq.ParquetFile(handle)
            if "SOPInstanceUID" not in shard.schema_arrow.names:
                without += shard.metadata.num_rows
                continue
            column = shard.read(columns=["SOPInstanceUID"]).column(0).cast(pa.string())
            without += column.null_count
            columns.append(column)
    if not columns:
        return 0, without
    chunks = [chunk for column in columns for chunk in column.chunks]
    uids = pa.chunked_array(chunks, pa.string())
    return pc.count_distinct(uids, mode="only_valid").as_py(), without


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
    return counts
