"""Listing and planning as the first steps of the ingest pipeline, on workers.

    listing tasks -> ListObjects  -> (url, listed) --\\
                                                       GroupByKey -> PlanObjects -> to read
    ledger shards -> KeyedLedger  -> (url, known)  --/                \\-> ledger rows (skipped,
                                                                           deleted), counts

The launcher hands the pipeline only the run's listing tasks (a source, a manifest) and the
names of the ledger's shards: workers list, read the ledger, and join the two on the object's
URL, so neither the listing nor the ledger is ever held whole by one process. Each URL's
decision needs only its own group (``ledger.decide_action``). The ledger stays append-only:
the run's rows are written as shards of its own, uncommitted run folder, and count only once
the run record exists.

Beam's cost is per element, so planning keeps each object's hops few: the two sides are keyed
as they are made and grouped by one GroupByKey (a listed entry is a tuple, a ledger row a
dict), the counts are summed per bundle and the ledger rows of skipped objects travel in
batches (``EVENT_BATCH``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
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
    "EVENT_BATCH",
    "LISTED",
    "LIST_REQUESTS",
    "ListObjects",
    "PlanObjects",
    "PlanRun",
    "after_planning",
    "in_global_window",
    "report_plan",
]

logger = logging.getLogger(__name__)

#: Tagged outputs of the planning: lists of ledger rows of objects not read, and
#: (name, count) pairs, one per name and bundle.
EVENTS = "events"
COUNTS = "counts"
#: At most this many ledger rows per element of the EVENTS output (bounds a worker's memory).
EVENT_BATCH = 10_000
#: The count of listing requests (``listing.Lister.requests``) among the counts.
LIST_REQUESTS = "list_requests"
#: The count of objects listed (after de-duplication) among the counts.
LISTED = "objects_listed"


def in_global_window(output: Any) -> Any:
    """An output of finish_bundle: Beam wants it windowed (the pipeline is global-window)."""
    window = [beam.transforms.window.GlobalWindow()]
    if isinstance(output, beam.pvalue.TaggedOutput):
        value = beam.utils.windowed_value.WindowedValue(
            output.value, beam.utils.timestamp.MIN_TIMESTAMP, window
        )
        return beam.pvalue.TaggedOutput(output.tag, value)
    return beam.utils.windowed_value.WindowedValue(
        output, beam.utils.timestamp.MIN_TIMESTAMP, window
    )


class _CountPerBundle(beam.DoFn):
    """Count per bundle, emit ``(name, count)`` once per name from finish_bundle: one element
    per object and count would cost more than the planning itself."""

    def start_bundle(self) -> None:
        self.counts: Counter[str] = Counter()

    def finish_bundle(self) -> Iterator[Any]:
        for name, count in self.counts.items():
            yield in_global_window(beam.pvalue.TaggedOutput(COUNTS, (name, count)))


class ListObjects(_CountPerBundle):
    """Expand one listing task into ``(url, (order, position, ref))`` pairs."""

    def __init__(self, storage: StorageOptions | None) -> None:
        self.storage = storage

    def process(self, task: ListingTask) -> Iterator[Any]:
        from dicomwarehouse.sources.listing import Lister

        lister = Lister(self.storage)
        for position, ref in enumerate(expand_task(task, lister)):
            yield ref.url, (task.order, position, ref)
        self.counts[LIST_REQUESTS] += lister.requests


def keyed_ledger_rows(url: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The rows of one ledger shard keyed by their object's URL, in one step."""
    for row in read_ledger_shard(url):
        yield row["source_url"], row


class PlanObjects(_CountPerBundle):
    """Decide, per URL, from what was listed and what the ledger knows of it.

    Input: a URL and its grouped values, listed entries ``(order, position, ref)`` (tuples)
    and ledger rows (dicts). Main output: ``(ref, action)`` of each object to read; tagged
    outputs: lists of the ledger rows of objects skipped (unchanged) or found deleted, and
    ``(name, count)`` counts per action, per bundle.
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

    def start_bundle(self) -> None:
        super().start_bundle()
        self.events: list[dict[str, Any]] = []

    def process(self, element: tuple[str, Iterable[Any]]) -> Iterator[Any]:
        url, values = element
        entries: list[tuple[Any, ...]] = []
        rows: list[dict[str, Any]] = []
        for value in values:
            (rows if isinstance(value, dict) else entries).append(value)
        previous = known_objects(rows).get(url)
        listed = min(entries, key=lambda entry: entry[:2], default=None)
        if listed is None:
            if self.full_listing and previous is not None and previous.outcome != DELETED:
                yield from self._event(previous.ref, DELETED, DELETED)
            return
        ref: ObjectRef = listed[2]
        self.counts[LISTED] += 1
        action = decide_action(
            ref, previous, incremental=self.incremental, retry_errors=self.retry_errors
        )
        if action is None:
            yield from self._event(ref, UNCHANGED, SKIPPED)
            return
        self.counts[action] += 1
        yield ref, action

    def finish_bundle(self) -> Iterator[Any]:
        yield from super().finish_bundle()
        if self.events:
            yield in_global_window(beam.pvalue.TaggedOutput(EVENTS, self.events))
            self.events = []

    def _event(self, ref: ObjectRef, action: str, outcome: str) -> Iterator[Any]:
        """Count an object not read and batch its ledger row; a full batch goes out."""
        self.counts[action] += 1
        self.events.append(event_row(ref, action, outcome, self.run_id, self.listed_at))
        if len(self.events) >= EVENT_BATCH:
            yield beam.pvalue.TaggedOutput(EVENTS, self.events)
            self.events = []


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
    """Listing tasks in; ``(ref, action)`` to read, lists of ledger rows and counts out (a
    dict).

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
            | "ReadLedger" >> beam.FlatMap(keyed_ledger_rows)
        )
        planned = (
            (listing.listed, known)
            | "ListedAndKnown" >> beam.Flatten()
            | "JoinLedger" >> beam.GroupByKey()
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
