"""One writer at a time: the warehouse's write lock, local (flock) or on gs:// (a leased object).

A run stages and commits only while it holds the lock, so two ingests into one warehouse never
interleave their run folders or ledger rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dicomwarehouse.io.objectstore import (
    PreconditionFailed,
    read_json,
    store_for,
    warehouse_location,
)
from dicomwarehouse.io.urls import Location, is_gs_url, join
from dicomwarehouse.warehouse.layout import WarehouseError

__all__ = [
    "LOCK_LEASE",
    "WriterLock",
    "exclusive_writer",
]

logger = logging.getLogger(__name__)


_LOCK = ".lock"


#: How long a gs:// writer lock holds: a lock older than this was left by a run that died (a
#: local lock dies with its process). Longer than any ingest; a writer that outlives it finds
#: the lock taken over and refuses to commit.
LOCK_LEASE = dt.timedelta(hours=48)


class WriterLock:
    """The warehouse's write lock, held by ``exclusive_writer``.

    Locally an ``flock`` (released by the kernel when its process dies). On gs:// an object
    created only if absent (``ifGenerationMatch=0``) that names its holder and its lease's end;
    an expired lock is taken over with a precondition on its generation, so of two writers
    racing for it exactly one wins.
    """

    def __init__(self, root: str, token: str | None = None) -> None:
        """``token``: the token of a lock acquired elsewhere (the launcher), to check and
        release it where the run finishes (a Beam worker)."""
        self.root = root
        self.url = join(root, _LOCK)
        self.token = token or uuid.uuid4().hex
        self.generation: int | None = None
        self._handle: Any = None

    def acquire(self) -> None:
        if not is_gs_url(self.root):
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self._handle = open(self.url, "w")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._handle.close()
                raise WarehouseError(f"another ingest is writing to {self.root}") from None
            return
        store = store_for(self.url)
        now = dt.datetime.now(dt.timezone.utc)
        current = store.stat(self.url)
        expected = 0  # create only if absent
        if current is not None:
            holder = self._holder()
            if holder is not None and dt.datetime.fromisoformat(holder["expires_at"]) > now:
                raise WarehouseError(
                    f"another ingest is writing to {self.root}: {self.url} is held by "
                    f"{holder.get('host')} since {holder.get('acquired_at')} until "
                    f"{holder['expires_at']}; delete it if that run is dead"
                )
            logger.warning("taking over the expired or unreadable lock %s", self.url)
            expected = current.generation or 0
        record = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now.isoformat(),
            "expires_at": (now + LOCK_LEASE).isoformat(),
        }
        try:
            store.write_bytes(self.url, json.dumps(record).encode(), if_generation_match=expected)
        except PreconditionFailed:
            raise WarehouseError(f"another ingest is writing to {self.root}") from None
        self.check()

    def _holder(self) -> dict[str, Any] | None:
        """The lock's record, or None when it is unreadable (a torn or foreign object)."""
        try:
            holder = read_json(self.url)
            dt.datetime.fromisoformat(holder["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None
        return holder

    def check(self) -> None:
        """Raise unless this writer still holds the lock (call before committing)."""
        if not is_gs_url(self.root):
            return
        stored = store_for(self.url).stat(self.url)
        holder = self._holder() if stored is not None else None
        if holder is None or holder.get("token") != self.token:
            raise WarehouseError(
                f"lost the write lock {self.url} to another ingest; this run is not committed"
            )
        self.generation = stored.generation

    def hand_over(self) -> None:
        """Leave a gs:// lock to the job that will commit the run (it releases it)."""
        if self._handle is None:
            self.generation = None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
        elif self.generation is not None:
            try:
                store_for(self.url).delete(self.url, if_generation_match=self.generation)
            except PreconditionFailed:
                logger.warning("lock %s was taken over; left to its new holder", self.url)
            self.generation = None


@contextlib.contextmanager
def exclusive_writer(root: Location) -> Iterator[WriterLock]:
    """Hold the warehouse's write lock: one ingest at a time may stage and commit."""
    lock = WriterLock(warehouse_location(root))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()
