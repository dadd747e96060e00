"""The write lock at scale: short leases kept by heartbeats, conditional changes, forced
take-over, and clean-up that touches only what a failed run named.

What runs where: leases, heartbeats, a killed run and ``--force-unlock`` on the GCS emulator
(a real server: list, stat, write, delete). The emulator ignores ``ifGenerationMatch``, so the
races the generation conditions settle are played on an in-process store that honours them
(``GenerationStore``), interleaved at the exact moment between a read and a conditional write;
that the Cloud Storage client turns a 412 into ``PreconditionFailed`` is tested in
test_objectstore. A dead run is a subprocess killed at the ``before_commit`` fault point
(``testpoints``), never a race against a timer.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli_runs import run_main
from dicom_samples import base_dataset, dicom_bytes
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

from dicomwarehouse.io.objectstore import LocalStore, PreconditionFailed, StoredObject, store_for
from dicomwarehouse.io.urls import join
from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.testpoints import FAULT_ENV
from dicomwarehouse.warehouse import lock as lock_module
from dicomwarehouse.warehouse.commit import remove_uncommitted
from dicomwarehouse.warehouse.layout import (
    ALL_TABLES,
    EVENTS_TABLE,
    STARTED_FOLDER,
    WarehouseError,
    committed_runs,
)
from dicomwarehouse.warehouse.lock import (
    LOCK_LEASE,
    LeaseHeartbeat,
    WriterLock,
    exclusive_writer,
    keep_lease,
    stop_heartbeat,
)


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


def lock_record(url: str) -> dict:
    return json.loads(store_for(url).read_bytes(url))


def when(record: dict, field: str) -> dt.datetime:
    return dt.datetime.fromisoformat(record[field])


@pytest.fixture
def gs_warehouse(gcs_server, request: pytest.FixtureRequest) -> str:  # noqa: F811
    test = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[-40:]
    name = f"lk-{test}-{time.time_ns() % 10**6}"
    return f"gs://{gcs_client().create_bucket(name[:63]).name}/warehouse"


def write_sources(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        ds = base_dataset()
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.7.{index + 1}"
        (folder / f"i{index}.dcm").write_bytes(dicom_bytes(ds))
    return folder


# --- leases and heartbeats (GCS emulator) ---------------------------------------------------


def test_a_gs_lock_has_a_short_lease_that_its_heartbeat_renews(gs_warehouse: str) -> None:
    with exclusive_writer(gs_warehouse) as lock:
        first = lock_record(lock.url)
        lease = when(first, "expires_at") - when(first, "acquired_at")
        assert dt.timedelta(minutes=1) <= lease <= LOCK_LEASE <= dt.timedelta(minutes=15)
        generation = lock.generation
        renewed_until = lock.renew()
        second = lock_record(lock.url)
        assert when(second, "expires_at") == renewed_until > when(first, "expires_at")
        assert second["token"] == first["token"] and lock.generation != generation
        # the launcher's heartbeat is the one heartbeat of this lock in this process
        assert keep_lease(gs_warehouse, lock.token) is keep_lease(gs_warehouse, lock.token)
        stop_heartbeat(lock.url, lock.token)
        beat = keep_lease(gs_warehouse, lock.token, interval=dt.timedelta(milliseconds=20))
        assert beat is not None
        wait_until(lambda: beat.renewals >= 2, "two renewals by the heartbeat")
        assert when(lock_record(lock.url), "renewed_at") > when(second, "renewed_at")
    assert not beat.is_alive()  # released: its heartbeat stopped first
    assert store_for(gs_warehouse).stat(join(gs_warehouse, ".lock")) is None


@pytest.mark.parametrize("how", ["released elsewhere", "taken over"])
def test_a_heartbeat_ends_with_its_lock_and_never_recreates_it(gs_warehouse: str, how: str) -> None:
    """A worker's heartbeat outlives the step that released the lock in another process."""
    holder = WriterLock(gs_warehouse)
    holder.acquire()
    beat = LeaseHeartbeat(WriterLock(gs_warehouse, holder.token), dt.timedelta(milliseconds=20))
    beat.start()
    wait_until(lambda: beat.renewals >= 1, "a first renewal")
    store = store_for(gs_warehouse)
    if how == "released elsewhere":
        store.delete(holder.url)
    else:
        WriterLock(gs_warehouse).acquire(force=True)
    beat.join(timeout=30)
    assert not beat.is_alive()
    left = store.stat(holder.url)
    if how == "released elsewhere":
        assert left is None
    else:
        assert lock_record(holder.url)["token"] != holder.token


def test_a_dead_run_keeps_its_lock_minutes_not_days_and_force_unlock_takes_it_over(
    gs_warehouse: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    source = write_sources(tmp_path / "src", 3)
    env = {**os.environ, FAULT_ENV: "before_commit:kill"}
    dead = subprocess.run(
        [sys.executable, "-m", "dicomwarehouse", "ingest", str(source), "--warehouse",
         gs_warehouse],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert dead.returncode == -9, dead.stderr
    store = store_for(gs_warehouse)
    lock_url = join(gs_warehouse, ".lock")
    held = lock_record(lock_url)
    now = dt.datetime.now(dt.timezone.utc)
    assert now < when(held, "expires_at") <= now + LOCK_LEASE  # lapses within the lease
    started = [s.url for s in store.list(join(gs_warehouse, STARTED_FOLDER) + "/")]
    (dead_run,) = [url.rsplit("/", 1)[-1].removesuffix(".json") for url in started]
    dead_shards = store.list(join(gs_warehouse, "dicom_metadata", f"run-{dead_run}") + "/")
    assert dead_shards  # it wrote its shards, then died before committing

    with pytest.raises(WarehouseError, match="--force-unlock"):
        ingest([str(source)], gs_warehouse)
    forced = run_main("ingest", str(source), "--warehouse", gs_warehouse, "--force-unlock")
    assert forced.returncode == 0, forced.stderr
    printed = forced.stderr + capfd.readouterr().err  # the log handler's stream is the real one
    assert "took over the write lock" in printed
    assert f"(pid {held['pid']})" in printed and held["acquired_at"] in printed
    (run_id,) = committed_runs(gs_warehouse)
    assert run_id != dead_run
    for table in ALL_TABLES:
        assert store.list(join(gs_warehouse, table, f"run-{dead_run}") + "/") == []
    assert store.stat(lock_url) is None


def test_force_unlock_does_not_break_a_local_lock(tmp_path: Path) -> None:
    """A local lock is an flock: its holder is a live process on this machine."""
    with exclusive_writer(tmp_path), pytest.raises(WarehouseError, match="for gs://"):
        WriterLock(str(tmp_path)).acquire(force=True)


# --- generation conditions (a store that honours them) --------------------------------------


class GenerationStore:
    """gs:// objects in memory with Cloud Storage's generation preconditions.

    ``before_write``: called once, just before the next conditional write is checked: the
    moment another writer's change can slip in between a read and a write.
    """

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, int]] = {}
        self.next_generation = 1
        self.before_write: Callable[[], None] | None = None

    def stat(self, url: str) -> StoredObject | None:
        if url not in self.objects:
            return None
        data, generation = self.objects[url]
        return StoredObject(url, len(data), generation=generation)

    def read_bytes(self, url: str) -> bytes:
        return self.objects[url][0]

    def read_text(self, url: str) -> str:
        return self.read_bytes(url).decode()

    def _check(self, url: str, if_generation_match: int | None) -> None:
        if if_generation_match is not None and self.before_write is not None:
            interfere, self.before_write = self.before_write, None
            interfere()
        current = self.objects.get(url, (b"", 0))[1]
        if if_generation_match is not None and current != if_generation_match:
            raise PreconditionFailed(url)

    def write_bytes(self, url: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        self._check(url, if_generation_match)
        self.objects[url] = (data, self.next_generation)
        self.next_generation += 1

    def delete(self, url: str, *, if_generation_match: int | None = None) -> None:
        self._check(url, if_generation_match)
        self.objects.pop(url, None)


@pytest.fixture
def generations(monkeypatch: pytest.MonkeyPatch) -> Iterator[GenerationStore]:
    from dicomwarehouse.io import objectstore

    store = GenerationStore()
    monkeypatch.setattr(lock_module, "store_for", lambda url: store)
    monkeypatch.setattr(objectstore, "store_for", lambda url: store)
    yield store


ROOT = "gs://fake/warehouse"


def expire(store: GenerationStore, url: str) -> None:
    record = json.loads(store.read_bytes(url))
    record["expires_at"] = "2000-01-01T00:00:00+00:00"
    store.write_bytes(url, json.dumps(record).encode())


def test_of_two_writers_taking_over_an_expired_lock_exactly_one_wins(
    generations: GenerationStore,
) -> None:
    dead = WriterLock(ROOT)
    dead.acquire()
    expire(generations, dead.url)
    first, second = WriterLock(ROOT), WriterLock(ROOT)
    generations.before_write = first.acquire  # first takes it over after second read it
    with pytest.raises(WarehouseError, match="another ingest"):
        second.acquire()
    assert json.loads(generations.read_bytes(dead.url))["token"] == first.token


def test_a_renewal_or_release_after_a_take_over_loses(generations: GenerationStore) -> None:
    holder = WriterLock(ROOT)
    holder.acquire()
    taker = WriterLock(ROOT)
    generations.before_write = lambda: taker.acquire(force=True)  # between read and write
    with pytest.raises(WarehouseError, match="lost the write lock"):
        holder.renew()
    assert json.loads(generations.read_bytes(holder.url))["token"] == taker.token
    holder.release()  # the lock is someone else's: left alone
    assert json.loads(generations.read_bytes(holder.url))["token"] == taker.token
    taker.release()
    assert generations.stat(holder.url) is None


# --- clean-up scope (local folders) ---------------------------------------------------------


def test_clean_up_lists_and_deletes_only_what_the_failed_run_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = write_sources(tmp_path / "src", 3)
    warehouse = tmp_path / "warehouse"
    ingest([str(source)], warehouse)
    (committed,) = committed_runs(warehouse)
    monkeypatch.setenv(FAULT_ENV, "after_shard")
    with pytest.raises(Exception, match="fault injected at after_shard"):
        ingest([str(source)], warehouse)
    monkeypatch.delenv(FAULT_ENV)
    (failed,) = [p.stem for p in (warehouse / STARTED_FOLDER).glob("*.json")]
    assert any(warehouse.glob(f"*/run-{failed}/*.parquet"))  # it left a shard behind
    named = json.loads((warehouse / STARTED_FOLDER / f"{failed}.json").read_text())["outputs"]
    assert f"{EVENTS_TABLE}/run-{failed}" in named  # the ledger rows its planning writes too
    foreign = warehouse / "dicom_elements" / "run-unnamed" / "note.txt"
    foreign.parent.mkdir()
    foreign.write_text("no run named this folder")
    committed_files = sorted(warehouse.glob(f"*/run-{committed}/*"))

    listed: list[str] = []
    real_list = LocalStore.list

    def recording_list(self: LocalStore, prefix: str) -> list[StoredObject]:
        listed.append(prefix)
        return real_list(self, prefix)

    monkeypatch.setattr(LocalStore, "list", recording_list)
    with exclusive_writer(warehouse):
        assert remove_uncommitted(warehouse) == [failed]
    table_roots = {str(warehouse / table) + "/" for table in ALL_TABLES}
    assert not table_roots & set(listed)  # never walked a table's history
    assert all(
        f"run-{failed}" in prefix or prefix.rstrip("/").endswith(("_started", "_plans"))
        for prefix in listed
    ), listed
    assert not list(warehouse.glob(f"*/run-{failed}"))
    assert foreign.exists()
    assert sorted(warehouse.glob(f"*/run-{committed}/*")) == committed_files
    assert not list((warehouse / STARTED_FOLDER).glob("*"))
