"""The object ledger: which version of which object each run saw, read, skipped or lost.

Every run appends one ``ingest_object_events`` row per object it was given (and, with a full
listing, per object that disappeared). Nothing is ever updated in place, so a run that dies
before its commit leaves no trace and a re-run starts from the same ledger. From the events:

- ``plan_run`` decides what an incremental run reads: new objects, changed ones (generation,
  ETag or MD5 differ), and previously failed ones on request; unchanged ones cost no byte;
- the ``ingest_objects`` view shows one row per object version with the runs that first and
  last saw it and its status (ingested, failed, superseded, deleted).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from dicomwarehouse.io.objectstore import warehouse_location
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.io.urls import Location
from dicomwarehouse.tables.parquet import read_parquet
from dicomwarehouse.tables.schema import SOURCE_FIELDS
from dicomwarehouse.warehouse.layout import EVENTS_TABLE, committed_runs, shard_urls

__all__ = [
    "ACTIONS",
    "EVENTS_SCHEMA",
    "KNOWN_COLUMNS",
    "PENDING",
    "READ_ACTIONS",
    "KnownObject",
    "RunPlan",
    "decide_action",
    "event_row",
    "known_objects",
    "ledger_shard_urls",
    "plan_run",
    "read_known_objects",
    "read_ledger_shard",
]

#: The physical ledger table (one Parquet folder per run, like the other tables).

EVENTS_SCHEMA = pa.schema(
    [
        *SOURCE_FIELDS,
        pa.field("action", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
        pa.field("ingest_run_id", pa.string(), nullable=False),
        pa.field("listed_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)

# action: why the run looked at the object; outcome: what came of it.
NEW, CHANGED, UNCHANGED, RETRIED, REINGESTED, DELETED = (
    "new",
    "changed",
    "unchanged",
    "retried",
    "reingested",
    "deleted",
)
INGESTED, FAILED, SKIPPED = "ingested", "failed", "skipped"
#: Every action, in the run record's order; those that make a run read the object.
ACTIONS = (NEW, CHANGED, UNCHANGED, RETRIED, REINGESTED, DELETED)
READ_ACTIONS = (NEW, CHANGED, RETRIED, REINGESTED)
#: The outcome of an object to read in a run's plan, until the run's finishing step knows it.
PENDING = "pending"


@dataclass(frozen=True)
class KnownObject:
    """The ledger's current knowledge of one URL: the version last read, and how it went."""

    ref: ObjectRef
    outcome: str  # ingested | failed | deleted


def same_version(listed: ObjectRef, known: ObjectRef) -> bool:
    """True if the listing shows the version the warehouse already holds.

    The strongest identity both sides have decides: generation (GCS generation, S3 version id,
    local modification time), then ETag, then MD5. With none in common the object counts as
    changed: re-reading costs bytes, missing a change costs correctness.
    """
    for name in ("generation", "etag", "md5"):
        mine, theirs = getattr(listed, name), getattr(known, name)
        if mine is not None and theirs is not None:
            return mine == theirs and (listed.size is None or known.size in (None, listed.size))
    return False


@dataclass
class RunPlan:
    """What a run reads, and the ledger events of what it does not read."""

    to_read: list[ObjectRef] = field(default_factory=list)
    actions: dict[str, str] = field(default_factory=dict)  # url -> action, for objects read
    skipped: list[ObjectRef] = field(default_factory=list)
    deleted: list[ObjectRef] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Objects per action, for the run record and the summary line."""
        result = dict.fromkeys(ACTIONS, 0)
        for action in self.actions.values():
            result[action] += 1
        result[UNCHANGED] += len(self.skipped)
        result[DELETED] += len(self.deleted)
        return result

    def events(
        self, run_id: str, listed_at: dt.datetime, outcomes: Mapping[str, str] | None = None
    ) -> pa.Table:
        """The run's ledger rows; ``outcomes`` maps each URL read to ingested or failed.

        Without ``outcomes`` the objects to read are ``pending`` (a plan, see ``finish``).
        """
        rows: list[dict[str, Any]] = []

        def add(ref: ObjectRef, action: str, outcome: str) -> None:
            rows.append(event_row(ref, action, outcome, run_id, listed_at))

        for ref in self.to_read:
            add(ref, self.actions[ref.url], outcomes[ref.url] if outcomes else PENDING)
        for ref in self.skipped:
            add(ref, UNCHANGED, SKIPPED)
        for ref in self.deleted:
            add(ref, DELETED, DELETED)
        return pa.Table.from_pylist(rows, schema=EVENTS_SCHEMA)


def event_row(
    ref: ObjectRef, action: str, outcome: str, run_id: str, listed_at: dt.datetime
) -> dict[str, Any]:
    """One ledger row (``EVENTS_SCHEMA``): what a run did with one object version."""
    return {
        **ref.provenance(),
        "action": action,
        "outcome": outcome,
        "ingest_run_id": run_id,
        "listed_at": listed_at,
    }


def decide_action(
    ref: ObjectRef, previous: KnownObject | None, *, incremental: bool, retry_errors: bool
) -> str | None:
    """Why a run reads a listed object (new, changed, ...); None: it skips it (unchanged).

    The decision needs only what the ledger knows of this one URL, which is what lets the
    pipeline make it per key after joining the listing with the ledger.
    """
    if previous is None or previous.outcome == DELETED:
        return NEW
    if not same_version(ref, previous.ref):
        return CHANGED
    if previous.outcome == FAILED and retry_errors:
        return RETRIED
    return None if incremental else REINGESTED


def plan_run(
    listing: Sequence[ObjectRef],
    known: Mapping[str, KnownObject],
    *,
    incremental: bool,
    full_listing: bool,
    retry_errors: bool,
) -> RunPlan:
    """Compare a listing with the ledger: what to read, what to skip, what was deleted."""
    plan = RunPlan()
    for ref in listing:
        action = decide_action(
            ref, known.get(ref.url), incremental=incremental, retry_errors=retry_errors
        )
        if action is None:
            plan.skipped.append(ref)
            continue
        plan.to_read.append(ref)
        plan.actions[ref.url] = action
    if full_listing:
        listed = {ref.url for ref in listing}
        plan.deleted = [
            entry.ref
            for url, entry in sorted(known.items())
            if url not in listed and entry.outcome != DELETED
        ]
    return plan


def _ref_from_row(row: Mapping[str, Any]) -> ObjectRef:
    return ObjectRef(
        row["source_url"],
        row["source_size"],
        generation=row["source_generation"],
        etag=row["source_etag"],
        md5=row["source_md5"],
        crc32c=row["source_crc32c"],
    )


def known_objects(events: Iterable[Mapping[str, Any]]) -> dict[str, KnownObject]:
    """Current knowledge per URL from ledger rows (any order): the last read or deletion."""
    latest: dict[str, Mapping[str, Any]] = {}
    for row in events:
        if row["outcome"] == SKIPPED:
            continue  # a skip saw the known version again; it changes nothing
        current = latest.get(row["source_url"])
        if current is None or row["ingest_run_id"] > current["ingest_run_id"]:
            latest[row["source_url"]] = row
    return {url: KnownObject(_ref_from_row(row), row["outcome"]) for url, row in latest.items()}


def ledger_shard_urls(root: Location) -> list[str]:
    """The ledger's Parquet shards, of the committed runs only (names: nothing is read)."""
    location = warehouse_location(root)
    return [
        url
        for run_id in committed_runs(location)
        for url in shard_urls(location, EVENTS_TABLE, run_id)
    ]


#: The ledger columns that ``known_objects`` reads: what a run plans with.
KNOWN_COLUMNS = (*(f.name for f in SOURCE_FIELDS), "outcome", "ingest_run_id")


def read_ledger_shard(url: str) -> list[dict[str, Any]]:
    """The rows of one ledger shard that can change what is known (skips change nothing),
    with only the columns planning needs (``KNOWN_COLUMNS``): the pipeline moves one per
    object and run."""
    table = read_parquet(url, columns=list(KNOWN_COLUMNS))
    return [row for row in table.to_pylist() if row["outcome"] != SKIPPED]


def read_known_objects(root: Location) -> dict[str, KnownObject]:
    """The ledger's current knowledge per URL, from the committed runs' events.

    Read through the store (local or gs://) into memory: one row per object per run that
    read or deleted it, so a few hundred bytes per object. Runs do not call this: their
    pipeline joins the listing with the ledger shards per URL (``pipeline.planning``).
    """
    tables = [read_parquet(url) for url in ledger_shard_urls(root)]
    if not tables:
        return {}
    events = pa.concat_tables(tables, promote_options="default")  # noqa: F841 - read by DuckDB
    con = duckdb.connect()
    try:
        relation = con.sql(
            "SELECT * FROM events WHERE outcome <> 'skipped' "
            "QUALIFY row_number() OVER (PARTITION BY source_url ORDER BY ingest_run_id DESC) = 1"
        )
        columns = relation.columns
        rows = [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()
    return known_objects(rows)
