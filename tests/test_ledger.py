"""The object ledger's decisions (``warehouse.ledger``), without a pipeline or a warehouse.

``plan_run`` compares a listing with what the ledger knows; ``known_objects`` derives that
knowledge from ledger rows. Every case of the incremental rules is one small listing here:
new, changed (by generation, ETag, MD5 or size), unchanged, reingested, deleted, failed and
retried. The end-to-end runs are in test_incremental.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib

import pytest

from dicomwarehouse.io.refs import ObjectRef, md5_hex
from dicomwarehouse.warehouse.ledger import (
    PENDING,
    KnownObject,
    known_objects,
    plan_run,
    same_version,
)

LISTED_AT = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def ref(name: str, **fields: object) -> ObjectRef:
    return ObjectRef(f"gs://b/{name}", fields.pop("size", 10), **fields)  # type: ignore[arg-type]


def known(*entries: tuple[ObjectRef, str]) -> dict[str, KnownObject]:
    return {item.url: KnownObject(item, outcome) for item, outcome in entries}


def actions(listing: list[ObjectRef], ledger: dict[str, KnownObject], **flags: bool):
    """url name -> action of the objects to read, and the names skipped and deleted."""
    options = {"incremental": True, "full_listing": False, "retry_errors": False, **flags}
    plan = plan_run(listing, ledger, **options)
    short = {url.rsplit("/", 1)[1]: action for url, action in plan.actions.items()}
    assert [r.url for r in plan.to_read] == list(plan.actions)  # listing order, once each
    return (
        short,
        [r.url.rsplit("/", 1)[1] for r in plan.skipped],
        [r.url.rsplit("/", 1)[1] for r in plan.deleted],
    )


_DIGEST = hashlib.md5(b"an object", usedforsecurity=False).digest()
_MD5_HEX, _MD5_B64 = _DIGEST.hex(), base64.b64encode(_DIGEST).decode()


@pytest.mark.parametrize(
    ("spelled", "stored"),
    [
        (_MD5_B64, _MD5_HEX),
        (_MD5_HEX.upper(), _MD5_HEX),
        (f" {_MD5_HEX} ", _MD5_HEX),
        ("not-a-digest", "not-a-digest"),  # kept as given: nothing a store says is dropped
        (base64.b64encode(b"short").decode(), base64.b64encode(b"short").decode()),
        ("", None),
    ],
)
def test_md5_is_held_as_hex_whatever_the_spelling(spelled: str, stored: str | None) -> None:
    assert md5_hex(spelled) == stored
    assert ObjectRef("gs://b/o", md5=spelled).provenance()["source_md5"] == stored


@pytest.mark.parametrize(
    ("listed", "held", "same"),
    [
        (ref("a", generation="2"), ref("a", generation="2"), True),
        (ref("a", generation="2"), ref("a", generation="1"), False),
        (ref("a", generation="2", size=11), ref("a", generation="2"), False),  # size too
        (ref("a", size=None, generation="2"), ref("a", generation="2"), True),  # unknown size
        (ref("a", etag="x"), ref("a", etag="x"), True),
        (ref("a", etag="x"), ref("a", etag="y"), False),
        # the strongest identity both sides have decides: the generation outranks the ETag
        (ref("a", generation="1", etag="x"), ref("a", generation="1", etag="y"), True),
        (ref("a", md5="m"), ref("a", md5="m"), True),
        (ref("a", md5="m"), ref("a", md5="n"), False),
        # GCS spells MD5 in base64, manifests and local stores in hex: one digest either way
        (ref("a", md5=_MD5_B64), ref("a", md5=_MD5_HEX.upper()), True),
        (ref("a", generation="1"), ref("a", etag="x"), False),  # nothing in common: re-read
        (ref("a"), ref("a"), False),
    ],
)
def test_same_version(listed: ObjectRef, held: ObjectRef, same: bool) -> None:
    assert same_version(listed, held) is same


def test_new_changed_and_unchanged() -> None:
    ledger = known(
        (ref("same", generation="1"), "ingested"),
        (ref("changed", generation="1"), "ingested"),
    )
    listing = [ref("new", generation="1"), ref("same", generation="1"),
               ref("changed", generation="2")]  # fmt: skip
    assert actions(listing, ledger) == ({"new": "new", "changed": "changed"}, ["same"], [])
    # not incremental: the unchanged object is read again, as a re-ingest
    assert actions(listing, ledger, incremental=False) == (
        {"new": "new", "same": "reingested", "changed": "changed"}, [], [],
    )  # fmt: skip


def test_deleted_objects_need_a_full_listing() -> None:
    ledger = known(
        (ref("kept", generation="1"), "ingested"),
        (ref("gone-b", generation="1"), "failed"),
        (ref("gone-a", generation="1"), "ingested"),
        (ref("gone-before", generation="1"), "deleted"),  # already deleted: not again
    )
    listing = [ref("kept", generation="1")]
    assert actions(listing, ledger) == ({}, ["kept"], [])
    assert actions(listing, ledger, full_listing=True) == ({}, ["kept"], ["gone-a", "gone-b"])


def test_a_deleted_object_that_comes_back_is_new() -> None:
    ledger = known((ref("back", generation="1"), "deleted"))
    assert actions([ref("back", generation="1")], ledger) == ({"back": "new"}, [], [])


def test_failed_objects_are_retried_only_on_request() -> None:
    ledger = known(
        (ref("failed", generation="1"), "failed"),
        (ref("failed-changed", generation="1"), "failed"),
    )
    listing = [ref("failed", generation="1"), ref("failed-changed", generation="2")]
    assert actions(listing, ledger) == ({"failed-changed": "changed"}, ["failed"], [])
    assert actions(listing, ledger, retry_errors=True) == (
        {"failed": "retried", "failed-changed": "changed"}, [], [],
    )  # fmt: skip


def test_counts_and_events_of_a_plan() -> None:
    ledger = known(
        (ref("same", generation="1"), "ingested"),
        (ref("changed", generation="1"), "ingested"),
        (ref("gone", generation="1"), "ingested"),
    )
    listing = [ref("new", generation="1"), ref("same", generation="1"),
               ref("changed", generation="2")]  # fmt: skip
    plan = plan_run(listing, ledger, incremental=True, full_listing=True, retry_errors=False)
    assert plan.counts() == {
        "new": 1, "changed": 1, "unchanged": 1, "retried": 0, "reingested": 0, "deleted": 1,
    }  # fmt: skip
    rows = plan.events("run-2", LISTED_AT).to_pylist()
    assert [(r["source_url"][len("gs://b/") :], r["action"], r["outcome"]) for r in rows] == [
        ("new", "new", PENDING),  # read by the pipeline: its finishing step fills the outcome
        ("changed", "changed", PENDING),
        ("same", "unchanged", "skipped"),
        ("gone", "deleted", "deleted"),
    ]
    assert {(r["ingest_run_id"], r["listed_at"]) for r in rows} == {("run-2", LISTED_AT)}
    assert rows[0]["source_generation"] == "1" and rows[0]["source_size"] == 10
    outcomes = {ref("new").url: "ingested", ref("changed").url: "failed"}
    done = plan.events("run-2", LISTED_AT, outcomes).to_pylist()
    assert [r["outcome"] for r in done] == ["ingested", "failed", "skipped", "deleted"]


def row(name: str, run: str, outcome: str, generation: str = "1") -> dict[str, object]:
    return {**ref(name, generation=generation).provenance(), "ingest_run_id": run,
            "outcome": outcome}  # fmt: skip


def test_known_objects_keep_the_last_read_or_deletion_of_each_url() -> None:
    rows = [
        row("a", "run-2", "ingested", generation="2"),
        row("a", "run-1", "ingested"),
        row("a", "run-3", "skipped", generation="2"),  # a skip changes nothing
        row("b", "run-1", "failed"),
        row("c", "run-1", "ingested"),
        row("c", "run-2", "deleted"),
    ]
    for order in (rows, rows[::-1]):  # any order
        state = known_objects(order)
        assert {url[len("gs://b/") :]: k.outcome for url, k in state.items()} == {
            "a": "ingested", "b": "failed", "c": "deleted",
        }  # fmt: skip
        assert state[ref("a").url].ref == ref("a", generation="2")


def test_a_plan_from_the_ledger_of_the_previous_run() -> None:
    """Round trip: one run's events, with outcomes, are the next run's knowledge."""
    first = plan_run(
        [ref("a", generation="1"), ref("b", generation="1")], {},
        incremental=True, full_listing=True, retry_errors=False,
    )  # fmt: skip
    outcomes = {ref("a").url: "ingested", ref("b").url: "failed"}
    ledger = known_objects(first.events("run-1", LISTED_AT, outcomes).to_pylist())
    second = actions([ref("a", generation="1"), ref("b", generation="1")], ledger,
                     retry_errors=True)  # fmt: skip
    assert second == ({"b": "retried"}, ["a"], [])
