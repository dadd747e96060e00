"""One writer at a time: the warehouse's write lock, local (flock) or on gs:// (a leased object).

A run stages and commits only while it holds the lock, so two ingests into one warehouse never
interleave their run folders or ledger rows.

A local lock is an ``flock``: the kernel releases it when its process dies. A gs:// lock is an
object naming its holder and the end of its lease. The lease is short (``LOCK_LEASE``) and
renewed while the run is alive by a heartbeat thread (``LeaseHeartbeat``): in the launching
process, and in every pipeline worker process (the job keeps its own lock once a Flex Template
launcher has handed it over). A run that dies stops renewing, so its lock lapses within
minutes and the next scheduled run takes it over; an operator who knows the holder is dead need
not wait (``force``: ``--force-unlock``). Every change to the object is conditional on the
generation read just before (create only if absent, renew or delete only if unchanged), so of
two writers racing, exactly one wins, on Cloud Storage. (gcp-storage-emulator ignores
generation conditions; the tests check the conditions against a server that answers 412.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dicomwarehouse.io.objectstore import (
    PreconditionFailed,
    StoredObject,
    read_json,
    store_for,
    warehouse_location,
)
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.warehouse.layout import WarehouseError

__all__ = [
    "HANDOVER_LEASE",
    "LOCK_LEASE",
    "LeaseHeartbeat",
    "WriterLock",
    "exclusive_writer",
    "keep_lease",
]

logger = logging.getLogger(__name__)


_LOCK = ".lock"


#: How long a gs:// lock holds without renewal: a run that died loses it after this. The
#: heartbeat renews it every ``LOCK_LEASE / 5``, so a few lost renewals (a slow request, a
#: busy worker) do not lose it.
LOCK_LEASE = dt.timedelta(minutes=10)
#: The lease a launcher leaves a submitted job (a Flex Template launch): time for the runner to
#: start its workers, whose heartbeats then renew the lock with ``LOCK_LEASE``.
HANDOVER_LEASE = dt.timedelta(minutes=30)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class WriterLock:
    """The warehouse's write lock, held by ``exclusive_writer``.

    Locally an ``flock`` (released by the kernel when its process dies). On gs:// an object
    created only if absent (``ifGenerationMatch=0``) that names its holder and its lease's end;
    an expired lock (or, with ``force``, a live one) is taken over with a precondition on its
    generation, so of two writers racing for it exactly one wins.
    """

    def __init__(
        self, root: str, token: str | None = None, *, lease: dt.timedelta = LOCK_LEASE
    ) -> None:
        """``token``: the token of a lock acquired elsewhere (the launcher), to check, renew
        and release it where the run goes on (a Beam worker)."""
        self.root = root
        self.url = join(root, _LOCK)
        self.token = token or uuid.uuid4().hex
        self.lease = lease
        self.generation: int | None = None
        self._handle: Any = None

    def acquire(self, *, force: bool = False) -> dict[str, Any] | None:
        """Take the lock; returns the record of a gs:// lock taken over (None: it was free).

        ``force``: take over a gs:// lock even when its lease runs (its holder is known to be
        dead). A local lock is held by a live process on this machine, so it is never forced.
        """
        if not is_gs_url(self.root):
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self._handle = open(self.url, "w")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._handle.close()
                hint = " (a local lock ends with its process: --force-unlock is for gs://)"
                raise WarehouseError(
                    f"another ingest is writing to {self.root}" + (hint if force else "")
                ) from None
            return None
        store = store_for(self.url)
        now = _now()
        current = store.stat(self.url)
        expected = 0  # create only if absent
        taken_over: dict[str, Any] | None = None
        if current is not None:
            holder = self._holder()
            if holder is not None and _expires(holder) > now and not force:
                raise WarehouseError(
                    f"another ingest is writing to {self.root}: {self.url} is held by "
                    f"{describe_holder(holder)}; if that run is dead, wait for its lease to "
                    "end or take the lock over with --force-unlock"
                )
            taken_over = holder if holder is not None else {"unreadable": True}
            expected = current.generation or 0
        record = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now.isoformat(),
            "renewed_at": now.isoformat(),
            "expires_at": (now + self.lease).isoformat(),
        }
        try:
            store.write_bytes(self.url, json.dumps(record).encode(), if_generation_match=expected)
        except PreconditionFailed:
            raise WarehouseError(f"another ingest is writing to {self.root}") from None
        self.check()
        if taken_over is not None:
            logger.warning(
                "took over the write lock %s%s: it was held by %s",
                self.url,
                " (forced)" if force else " (its lease had ended)",
                describe_holder(taken_over),
            )
        return taken_over

    def _holder(self) -> dict[str, Any] | None:
        """The lock's record, or None when it is unreadable (a torn or foreign object)."""
        try:
            holder = read_json(self.url)
            _expires(holder)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        return holder

    def _mine(self) -> tuple[StoredObject, dict[str, Any]]:
        """The stored lock and its record; raises unless this writer holds it."""
        stored = store_for(self.url).stat(self.url)
        holder = self._holder() if stored is not None else None
        if stored is None or holder is None or holder.get("token") != self.token:
            raise WarehouseError(
                f"lost the write lock {self.url} to another ingest; this run is not committed"
            )
        return stored, holder

    def check(self) -> None:
        """Raise unless this writer still holds the lock (call before committing)."""
        if not is_gs_url(self.root):
            return
        stored, _ = self._mine()
        self.generation = stored.generation

    def renew(self, lease: dt.timedelta | None = None) -> dt.datetime | None:
        """Push a held gs:// lock's lease end to now + ``lease``; returns the new end.

        Conditional on the generation just read: a writer that took the lock over in between
        wins, and this one learns it lost the lock (WarehouseError).
        """
        if not is_gs_url(self.root):
            return None
        stored, holder = self._mine()
        now = _now()
        expires = now + (lease or self.lease)
        record = {**holder, "renewed_at": now.isoformat(), "expires_at": expires.isoformat()}
        try:
            store_for(self.url).write_bytes(
                self.url, json.dumps(record).encode(), if_generation_match=stored.generation
            )
        except PreconditionFailed:
            raise WarehouseError(
                f"lost the write lock {self.url} to another ingest while renewing it"
            ) from None
        self.check()
        return expires

    def hand_over(self) -> None:
        """Leave a gs:// lock to the job that will commit the run (it renews and releases it).

        Its lease is stretched to ``HANDOVER_LEASE`` first: the job's workers may take minutes
        to start renewing it.
        """
        if self._handle is None:
            stop_heartbeat(self.url, self.token)
            if self.generation is not None:
                self.renew(HANDOVER_LEASE)
            self.generation = None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
            return
        if self.generation is None:
            return
        stop_heartbeat(self.url, self.token)  # no renewal may recreate it once deleted
        self.generation = None
        for _ in range(3):  # a renewal by another process of this run may change it meanwhile
            stored = store_for(self.url).stat(self.url)
            if stored is None:
                return  # released already (by the run's last step)
            holder = self._holder()
            if holder is None or holder.get("token") != self.token:
                logger.warning("lock %s was taken over; left to its new holder", self.url)
                return
            try:
                store_for(self.url).delete(self.url, if_generation_match=stored.generation)
                return
            except PreconditionFailed:
                continue
        logger.warning("could not release the lock %s; its lease will end", self.url)


def _expires(holder: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(holder["expires_at"])


def describe_holder(holder: dict[str, Any]) -> str:
    """A lock record in words, for messages: who, since when, renewed when, until when."""
    if holder.get("unreadable"):
        return "an unreadable lock object"
    return (
        f"{holder.get('host', '?')} (pid {holder.get('pid', '?')}) since "
        f"{holder.get('acquired_at', '?')}, last renewed {holder.get('renewed_at', '?')}, "
        f"lease until {holder.get('expires_at', '?')}"
    )


class LeaseHeartbeat(threading.Thread):
    """Renews a gs:// lock every ``interval`` while its run is alive in this process.

    Stops when told (``stop_heartbeat``: the lock is released or handed over) or when the lock
    is no longer this run's (released by the run's last step elsewhere, or taken over): a
    heartbeat never recreates a lock. A failed request is retried at the next beat; the lease
    leaves room for several.
    """

    def __init__(self, lock: WriterLock, interval: dt.timedelta) -> None:
        super().__init__(name=f"lease heartbeat {lock.url}", daemon=True)
        self.lock = lock
        self.interval = interval.total_seconds()
        self.stopped = threading.Event()
        self.renewals = 0

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            try:
                self.lock.renew()
                self.renewals += 1
            except WarehouseError as lost:
                logger.info("lease heartbeat ends: %s", lost)
                return
            except Exception as error:  # a transient request failure: try at the next beat
                logger.warning("could not renew the lock %s: %s", self.lock.url, error)


_HEARTBEATS: dict[tuple[str, str], LeaseHeartbeat] = {}
_HEARTBEATS_GUARD = threading.Lock()


def keep_lease(
    root: str, token: str, *, lease: dt.timedelta = LOCK_LEASE, interval: dt.timedelta | None = None
) -> LeaseHeartbeat | None:
    """Renew the gs:// lock ``token`` holds from this process until it is released or lost.

    One heartbeat per lock and process, however many callers (the launcher, each DoFn instance
    of a worker). Nothing for a local warehouse: its flock needs no renewal.
    """
    if not is_gs_url(root):
        return None
    lock = WriterLock(root, token, lease=lease)
    key = (lock.url, token)
    with _HEARTBEATS_GUARD:
        beat = _HEARTBEATS.get(key)
        if beat is None or not beat.is_alive():
            beat = LeaseHeartbeat(lock, interval or lease / 5)
            _HEARTBEATS[key] = beat
            beat.start()
    return beat


def stop_heartbeat(url: str, token: str) -> None:
    """Stop this process's heartbeat of a lock (before it is released or handed over)."""
    with _HEARTBEATS_GUARD:
        beat = _HEARTBEATS.pop((url, token), None)
    if beat is not None:
        beat.stopped.set()
        if beat is not threading.current_thread():
            beat.join()


@contextlib.contextmanager
def exclusive_writer(root: Location, *, force: bool = False) -> Iterator[WriterLock]:
    """Hold the warehouse's write lock: one ingest at a time may stage and commit.

    On gs:// a heartbeat renews the lease for as long as the block runs. ``force``: take over a
    gs:// lock whose lease has not ended (``WriterLock.acquire``).
    """
    lock = WriterLock(warehouse_location(root))
    lock.acquire(force=force)
    keep_lease(lock.root, lock.token, lease=lock.lease)
    try:
        yield lock
    finally:
        lock.release()
