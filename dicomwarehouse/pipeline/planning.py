"""Listing and planning as the first steps of the ingest pipeline, on workers.

    listing tasks -> ListObjects -> (url, listed) --\\
                                                     CoGroupByKey -> PlanObjects -> to read
    ledger shards -> ReadLedger  -> (url, known)  --/                  \\-> ledger rows (skipped,
                                                                             deleted), counts

The launcher hands the pipeline only the run's listing tasks (a source, a manifest) and the
names of the ledger's shards: workers list, read the ledger, and join the two on the object's
URL, so neither the listing nor the ledger is ever held whole by one process. Each URL's
decision needs only its own group (``ledger.decide_action``). The ledger stays append-only:
the run's rows are written as shards of its own, uncommitted run folder, and count only once
the run record exists.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam

from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.pipeline.progress import report_total
from dicomwarehouse.sources.expand import ListingTask, expand_task
from dicomwarehouse.warehouse.ledger import (
    DELETED,
    READ_ACTIONS,
    SKIPPED,
    UNCHANGED,
    decide_action,
    event_row,
    known_objects,
    read_ledger_shard,
)

__all__ = [
    "COUNTS",
    "EVENTS",
    "LISTED",
    "LIST_REQUESTS",
    "ListObjects",
    "PlanObjects",
    "PlanRun",
    "after_planning",
    "report_plan",
]

logger = logging.getLogger(__name__)

#: Tagged outputs of the planning: ledger rows of objects not read, and (name, 1) counts.
EVENTS = "events"
COUNTS = "counts"
#: The count of listing requests (``listing.Lister.requests``) among the counts.
LIST_REQUESTS = "list_requests"
#: The count of objects listed (after de-duplication) among the counts.
LISTED = "objects_listed"


class ListObjects(beam.DoFn):
    """Expand one listing task into ``(url, (order, position, ref))`` pairs."""

    def __init__(self, storage: StorageOptions | None) -> None:
        self.storage = storage

    def process(self, task: ListingTask) -> Iterator[Any]:
        from dicomwarehouse.sources.listing import Lister

        lister = Lister(self.storage)
        for position, ref in enumerate(expand_task(task, lister)):
            yield ref.url, (task.order, position, ref)
        yield beam.pvalue.TaggedOutput(COUNTS, (LIST_REQUESTS, lister.requests))


class PlanObjects(beam.DoFn):
    """Decide, per URL, from what was listed and what the ledger knows of it.

    Main output: ``(ref, action)`` of each object to read; tagged outputs: the ledger rows of
    objects skipped (unchanged) or found deleted, and ``(name, 1)`` counts per action.
    """

    def __init__(
        self,
        run_id: str,
        listed_at: dt.datetime,
        *,
        incremental: bool,
        full_listing: bool,
        retry_errors: bool,
    ) -> None:
        self.run_id = run_id
        self.listed_at = listed_at
        self.incremental = incremental
        self.full_listing = full_listing
        self.retry_errors = retry_errors

    def process(self, element: tuple[str, dict[str, Iterable[Any]]]) -> Iterator[Any]:
        url, grouped = element
        previous = known_objects(grouped["known"]).get(url)
        listed = min(grouped["listed"], key=lambda entry: entry[:2], default=None)
        if listed is None:
            if self.full_listing and previous is not None and previous.outcome != DELETED:
                yield beam.pvalue.TaggedOutput(EVENTS, self._row(previous.ref, DELETED, DELETED))
                yield beam.pvalue.TaggedOutput(COUNTS, (DELETED, 1))
            return
        ref: ObjectRef = listed[2]
        yield beam.pvalue.TaggedOutput(COUNTS, (LISTED, 1))
        action = decide_action(
            ref, previous, incremental=self.incremental, retry_errors=self.retry_errors
        )
        if action is None:
            yield beam.pvalue.TaggedOutput(EVENTS, self._row(ref, UNCHANGED, SKIPPED))
            yield beam.pvalue.TaggedOutput(COUNTS, (UNCHANGED, 1))
            return
        yield beam.pvalue.TaggedOutput(COUNTS, (action, 1))
        yield ref, action

    def _row(self, ref: ObjectRef, action: str, outcome: str) -> dict[str, Any]:
        return event_row(ref, action, outcome, self.run_id, self.listed_at)


def report_plan(counts: dict[str, int], run_id: str, progress_folder: str | None) -> dict[str, int]:
    """Once every object is planned: say how many were listed and are to be read (a log line,
    the phase mark of ``benchmarks/scale.py``; the progress line's total), and pass the
    counts on."""
    to_read = sum(counts.get(action, 0) for action in READ_ACTIONS)
    logger.info("run %s: %d objects listed, %d to read", run_id, counts.get(LISTED, 0), to_read)
    report_total(progress_folder, to_read)
    return counts


def after_planning(element: Any, counts: dict[str, int]) -> Any:
    """Pass an object to read on. Its step takes the planning's counts as a side input, so it
    starts only once the plan is reported (``report_plan``): the progress line has its total
    from the first object read."""
    del counts
    return element


class PlanRun(beam.PTransform):
    """Listing tasks in; ``(ref, action)`` to read, ledger rows and counts out (a dict).

    ``progress_folder``: the launcher's progress folder (``progress.ProgressDisplay``), told
    how many objects the run reads once the planning has counted them (``report_plan``).
    """

    def __init__(
        self,
        ledger_shards: list[str],
        plan: PlanObjects,
        storage: StorageOptions | None = None,
        *,
        progress_folder: str | None = None,
    ) -> None:
        super().__init__()
        self.ledger_shards = ledger_shards
        self.plan = plan
        self.storage = storage
        self.progress_folder = progress_folder

    def expand(self, tasks: beam.PCollection) -> dict[str, beam.PCollection]:
        pipeline = tasks.pipeline
        listing = (
            tasks
            | "SpreadTasks" >> beam.Reshuffle()
            | "List" >> beam.ParDo(ListObjects(self.storage)).with_outputs(COUNTS, main="listed")
        )
        known = (
            pipeline
            | "LedgerShards" >> beam.Create(self.ledger_shards)
            | "SpreadShards" >> beam.Reshuffle()
            | "ReadLedger" >> beam.FlatMap(read_ledger_shard)
            | "KeyLedger" >> beam.Map(lambda row: (row["source_url"], row))
        )
        planned = (
            {"listed": listing.listed, "known": known}
            | "JoinLedger" >> beam.CoGroupByKey()
            | "Plan" >> beam.ParDo(self.plan).with_outputs(EVENTS, COUNTS, main="to_read")
        )
        counts = (
            (listing[COUNTS], planned[COUNTS])
            | "AllCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombinePerKey(sum)
            | "CountsDict" >> beam.combiners.ToDict()
            | "ReportPlan" >> beam.Map(report_plan, self.plan.run_id, self.progress_folder)
        )
        return {"to_read": planned.to_read, "events": planned[EVENTS], "counts": counts}
