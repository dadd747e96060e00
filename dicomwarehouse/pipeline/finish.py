"""The last step of a run: commit what the pipeline wrote, then publish when asked.

It runs where the run's data is complete: as the pipeline's final step (on a Beam worker, once
every shard is written), so a Dataflow job launched from a Flex Template, whose launcher does
not wait for the job, still commits itself; and in the launching process when a run has
nothing to read. It is idempotent: a retried step finds its run committed and only publishes.

What the step needs from the launcher travels in two ways. Small facts (run id, lock token,
the run record's launch-time fields, the publish request) are fields of :class:`RunFinish`,
pickled into the pipeline. The ledger rows of the run (one per listed object, millions at
IDC scale) are written by the launcher to ``DIR/_plans/<run id>.parquet`` before the
pipeline starts, with outcome ``pending`` for the objects to read; the step fills in
``ingested`` or ``failed`` from what the pipeline wrote. The objects to read travel the same
way (``DIR/_plans/<run id>.objects.parquet``, read by the pipeline's first step), so the job
graph stays small however many objects a run reads.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dicomwarehouse.io.objectstore import store_for, write_json
from dicomwarehouse.io.refs import ListingFailure, ObjectRef
from dicomwarehouse.io.urls import is_gs_url, join
from dicomwarehouse.pipeline.faults import fault_point
from dicomwarehouse.tables.parquet import read_parquet, write_parquet
from dicomwarehouse.warehouse.commit import commit_run, staged_urls
from dicomwarehouse.warehouse.duckdb_file import build_duckdb
from dicomwarehouse.warehouse.layout import (
    PLANS_FOLDER,
    STAGING_FOLDER,
    TABLES,
    committed_runs,
    run_dir,
    shard_urls,
)
from dicomwarehouse.warehouse.ledger import FAILED, INGESTED, PENDING
from dicomwarehouse.warehouse.lock import WriterLock, keep_lease

__all__ = [
    "PUBLISH_REPORTS_FOLDER",
    "RunFinish",
    "objects_url",
    "plan_url",
    "publish_report_url",
    "read_objects",
    "write_objects",
    "write_plan",
]

logger = logging.getLogger(__name__)

#: ``DIR/_publish_reports/<run id>.json``: what the publish at the end of a run did.
PUBLISH_REPORTS_FOLDER = "_publish_reports"


def plan_url(warehouse: str, run_id: str) -> str:
    return join(warehouse, PLANS_FOLDER, f"{run_id}.parquet")


def objects_url(warehouse: str, run_id: str) -> str:
    return join(warehouse, PLANS_FOLDER, f"{run_id}.objects.parquet")


_EXTRAS = pa.list_(pa.struct([("name", pa.string()), ("value", pa.string())]))
_OBJECTS_SCHEMA = pa.schema(
    [
        ("url", pa.string()),
        ("size", pa.int64()),
        ("extras", _EXTRAS),
        ("generation", pa.string()),
        ("etag", pa.string()),
        ("md5", pa.string()),
        ("crc32c", pa.string()),
        # a listing entry that named no object (listing.ListingFailure): its error row to be
        ("listing_error_type", pa.string()),
        ("listing_error_message", pa.string()),
    ]
)


def write_objects(warehouse: str, run_id: str, refs: Sequence[ObjectRef]) -> str:
    """Store the objects a run reads, for the pipeline to read; returns the file's URL."""
    rows = []
    for ref in refs:
        row = {**asdict(ref), "extras": [{"name": n, "value": v} for n, v in ref.extras]}
        if isinstance(ref, ListingFailure):
            row["listing_error_type"] = row.pop("error_type")
            row["listing_error_message"] = row.pop("message")
        rows.append(row)
    url = objects_url(warehouse, run_id)
    write_parquet(url, pa.Table.from_pylist(rows, schema=_OBJECTS_SCHEMA))
    return url


def read_objects(url: str) -> Iterator[ObjectRef]:
    """The objects ``write_objects`` stored, in order."""
    for row in read_parquet(url).to_pylist():
        extras = tuple((pair["name"], pair["value"]) for pair in row.pop("extras") or ())
        error_type = row.pop("listing_error_type")
        message = row.pop("listing_error_message")
        if error_type is None:
            yield ObjectRef(**row, extras=extras)
        else:
            yield ListingFailure(**row, extras=extras, error_type=error_type, message=message)


def publish_report_url(warehouse: str, run_id: str) -> str:
    return join(warehouse, PUBLISH_REPORTS_FOLDER, f"{run_id}.json")


def write_plan(warehouse: str, run_id: str, events: pa.Table) -> None:
    """Store the run's planned ledger rows where its finishing step will read them."""
    write_parquet(plan_url(warehouse, run_id), events)


def _remove_unreported_shards(warehouse: str, run_id: str, reported: Sequence[str]) -> int:
    """Delete shards no successful bundle reported: leftovers of bundles that were retried."""
    keep = set(reported)
    removed = 0
    for table in TABLES:
        for url in shard_urls(warehouse, table, run_id):
            if url not in keep:
                store_for(url).delete(url)
                removed += 1
    if removed:
        logger.warning("run %s: removed %d shards of retried bundles", run_id, removed)
    return removed


@dataclass(frozen=True)
class RunFinish:
    """Commit one run, build its DuckDB views (local) and publish it (when asked). Picklable."""

    warehouse: str
    run_id: str
    lock_token: str
    extra_columns: tuple[str, ...] = ()
    #: the run record's fields known at launch (sources, options, listing counts, ...)
    summary: dict[str, Any] = field(default_factory=dict)
    publish: Any = None  # publish_options.PublishRequest

    def __call__(
        self, shards: Sequence[str] | None, header_bytes_read: int = 0, read_requests: int = 0
    ) -> None:
        """``shards``: every shard the pipeline reported (None: no pipeline ran)."""
        lock = WriterLock(self.warehouse, token=self.lock_token)
        lock.check()
        keep_lease(self.warehouse, self.lock_token)  # a publish may outlast a lease
        try:
            if self.run_id not in committed_runs(self.warehouse):
                fault_point("before_commit")
                logger.info("committing run %s", self.run_id)  # phase marks (benchmarks/scale)
                self._commit(shards, header_bytes_read, read_requests)
                logger.info("committed run %s", self.run_id)
            fault_point("after_commit")
            if not is_gs_url(self.warehouse):
                build_duckdb(self.warehouse)
                logger.info("built warehouse.duckdb of run %s", self.run_id)
            if self.publish is not None:
                report = self.publish.publish(self.warehouse)
                write_json(publish_report_url(self.warehouse, self.run_id), report.to_json())
        finally:
            lock.release()  # gs:// only (and its heartbeat here): a local lock is the launcher's

    def _commit(self, shards: Sequence[str] | None, header_bytes: int, requests: int) -> None:
        if shards is not None:
            _remove_unreported_shards(self.warehouse, self.run_id, shards)
        staging = join(run_dir(self.warehouse, "dicom_metadata", self.run_id), STAGING_FOLDER)
        store_for(staging).remove_tree(staging)
        planned = read_parquet(plan_url(self.warehouse, self.run_id))
        pending = pc.equal(planned["outcome"], PENDING)
        ingested = [
            url
            for url, table in staged_urls(self.warehouse, self.run_id).items()
            if table == "dicom_metadata"
        ]
        outcome = pc.if_else(
            pending,
            pc.if_else(pc.is_in(planned["source_url"], pa.array(ingested, pa.string())),
                       INGESTED, FAILED),
            planned["outcome"],
        )  # fmt: skip
        events = planned.set_column(
            planned.schema.get_field_index("outcome"), planned.schema.field("outcome"), outcome
        )
        read = pc.sum(pending.cast(pa.int64())).as_py() or 0
        failed = pc.sum(pc.and_(pending, pc.equal(outcome, FAILED)).cast(pa.int64())).as_py()
        commit_run(
            self.warehouse,
            self.run_id,
            expected_objects=read,
            events=events,
            extra_columns=self.extra_columns,
            summary={
                **self.summary,
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "failed": failed or 0,
                "header_bytes_read": header_bytes,
                "read_requests": requests,
            },
        )
        for url in (
            plan_url(self.warehouse, self.run_id),
            objects_url(self.warehouse, self.run_id),
        ):
            store_for(url).delete(url)
