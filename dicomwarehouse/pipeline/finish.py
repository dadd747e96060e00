"""The last step of a run: commit what the pipeline wrote, then publish when asked.

It runs where the run's data is complete: as the pipeline's final step (on a Beam worker, once
every shard is written), so a Dataflow job launched from a Flex Template, whose launcher does
not wait for the job, still commits itself; and in the launching process when a run has
nothing to read. It is idempotent: a retried step finds its run committed and only publishes.

What the step needs from the launcher (run id, lock token, the run record's launch-time
fields, the publish request) are fields of :class:`RunFinish`, pickled into the pipeline.
What the pipeline learnt reaches it as arguments: every shard written (the run's ledger rows
included: ``planning`` and ``ExtractObjects`` write them, with their outcomes, into the run's
own ledger folder), the bytes and requests read, and the counts of the planning (objects
listed, per action, list requests).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from dicomwarehouse.io.objectstore import store_for, write_json
from dicomwarehouse.io.urls import is_gs_url, join
from dicomwarehouse.pipeline.planning import LIST_REQUESTS, LISTED
from dicomwarehouse.tables.parquet import read_parquet
from dicomwarehouse.testpoints import fault_point
from dicomwarehouse.warehouse.commit import commit_run
from dicomwarehouse.warehouse.duckdb_file import build_duckdb
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    EVENTS_TABLE,
    STAGING_FOLDER,
    committed_runs,
    run_dir,
    shard_urls,
)
from dicomwarehouse.warehouse.ledger import ACTIONS, FAILED, READ_ACTIONS
from dicomwarehouse.warehouse.lock import WriterLock, keep_lease

__all__ = [
    "PUBLISH_REPORTS_FOLDER",
    "RunFinish",
    "publish_report_url",
]

logger = logging.getLogger(__name__)

#: ``DIR/_publish_reports/<run id>.json``: what the publish at the end of a run did.
PUBLISH_REPORTS_FOLDER = "_publish_reports"


def publish_report_url(warehouse: str, run_id: str) -> str:
    return join(warehouse, PUBLISH_REPORTS_FOLDER, f"{run_id}.json")


def _remove_unreported_shards(warehouse: str, run_id: str, reported: Sequence[str]) -> int:
    """Delete shards no successful bundle reported: leftovers of bundles that were retried."""
    keep = set(reported)
    removed = 0
    for table in ALL_TABLES:
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
        self,
        shards: Sequence[str] | None,
        header_bytes_read: int = 0,
        read_requests: int = 0,
        counts: dict[str, int] | None = None,
    ) -> None:
        """``shards``: every shard the pipeline reported (None: no pipeline ran); ``counts``:
        the planning's counts (objects listed, per action, list requests)."""
        lock = WriterLock(self.warehouse, token=self.lock_token)
        lock.check()
        keep_lease(self.warehouse, self.lock_token)  # a publish may outlast a lease
        try:
            if self.run_id not in committed_runs(self.warehouse):
                fault_point("before_commit")
                logger.info("committing run %s", self.run_id)  # phase marks (benchmarks/scale)
                self._commit(shards, header_bytes_read, read_requests, counts or {})
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

    def _commit(
        self,
        shards: Sequence[str] | None,
        header_bytes: int,
        requests: int,
        counts: dict[str, int],
    ) -> None:
        if shards is not None:
            _remove_unreported_shards(self.warehouse, self.run_id, shards)
        staging = join(run_dir(self.warehouse, "dicom_metadata", self.run_id), STAGING_FOLDER)
        store_for(staging).remove_tree(staging)
        actions = {name: counts.get(name, 0) for name in ACTIONS}
        read = sum(actions[name] for name in READ_ACTIONS)
        commit_run(
            self.warehouse,
            self.run_id,
            expected_objects=read,
            extra_columns=self.extra_columns,
            summary={
                **self.summary,
                "objects_listed": counts.get(LISTED, 0),
                "objects_read": read,
                **actions,
                "list_requests": counts.get(LIST_REQUESTS, 0),
                "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                "failed": _failed_reads(self.warehouse, self.run_id) if read else 0,
                "header_bytes_read": header_bytes,
                "read_requests": requests,
            },
        )


def _failed_reads(warehouse: str, run_id: str) -> int:
    """Objects of the run whose read failed: its ledger rows with outcome ``failed``."""
    failed = 0
    for url in shard_urls(warehouse, EVENTS_TABLE, run_id):
        outcome = read_parquet(url, ["outcome"]).column(0)
        failed += pc.sum(pc.equal(outcome, FAILED).cast(pa.int64())).as_py() or 0
    return failed
