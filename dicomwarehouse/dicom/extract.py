"""One object in, its warehouse rows out: the unit of work of every ingest worker.

``extract_object`` never raises for a bad object: whatever goes wrong becomes the object's
single ingest_errors row, which is what keeps the accounting invariant (every object in exactly
one of dicom_metadata and ingest_errors).
"""

from __future__ import annotations

import datetime as dt
import gc
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import pyarrow as pa

from dicomwarehouse.dicom.budgets import ReadBudget, current_meter, metering
from dicomwarehouse.dicom.flatten import (
    FlatObject,
    ObjectElements,
    element_batch,
    flatten_dataset,
)
from dicomwarehouse.dicom.pydicom_boundary import deferring_items
from dicomwarehouse.dicom.ranged import (
    OpenedObject,
    load_deferred_values,
    open_object,
)
from dicomwarehouse.dicom.read import (
    DEFAULT_DEFER_SIZE,
    budget_problem,
    collect_pydicom_problems,
    read_header,
    unique,
)
from dicomwarehouse.dicom.trailing import add_elements_after_pixel_data, flatten_after_pixel_data
from dicomwarehouse.dicom.walk import LOCAL_FIRST_READ, LOCAL_GROWTH, Walked, walk_object
from dicomwarehouse.errors import IngestError
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.tables.required_columns import url_manifest_values
from dicomwarehouse.tables.schema import ColumnPath

__all__ = [
    "Extracted",
    "RunInfo",
    "cyclic_gc_paused",
    "extract_object",
    "freeze_long_lived_objects",
    "new_run",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunInfo:
    """Identity of one ingest run; ids sort by start time so the latest run is the max."""

    run_id: str
    started_at: dt.datetime


def new_run() -> RunInfo:
    """A fresh run id: UTC start time to the microsecond plus a random suffix."""
    now = dt.datetime.now(dt.timezone.utc)
    return RunInfo(f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}", now)


@dataclass
class Extracted:
    """Rows of one object: a metadata row with its element batch, or one error row."""

    url: str
    metadata: dict[str, Any] | None = None
    column_paths: frozenset[ColumnPath] = frozenset()
    #: the dicom_elements rows, to be batched with other objects' (``element_batch``)
    element_rows: ObjectElements | None = None
    error: dict[str, Any] | None = None
    #: ranged requests made for the object (0 for local files)
    requests: int = 0

    @cached_property
    def elements(self) -> pa.RecordBatch | None:
        """The object's dicom_elements rows as a batch of their own (writers batch many)."""
        return None if self.element_rows is None else element_batch([self.element_rows])


def _error_row(ref: ObjectRef, run: RunInfo, error: IngestError) -> dict[str, Any]:
    return {
        **ref.provenance(),
        "stage": error.stage,
        "error_type": error.error_type,
        "message": error.message,
        "bytes_read": error.bytes_read,
        "ingest_run_id": run.run_id,
        "ingested_at": run.started_at,
    }


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cycle collector while a block makes many containers and no cycles.

    A header flattened makes hundreds of thousands of small containers that reference
    counting frees; letting the collector scan them every 700 allocations cost about a tenth
    of the time. Rows read back in bulk (staged metadata rows) are kept until the block ends,
    so each collection would traverse every row read so far. Cycles, if any, are collected
    once the block is done.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def freeze_long_lived_objects() -> None:
    """Put every object alive now out of the cycle collector's reach, once per worker.

    Headers make many short-lived containers, so the collector runs its full collection now
    and then, and each one traverses every module, dictionary and pipeline object of the
    process again: on headers of about a hundred elements, about 0.05 ms an object (a tenth
    of its extraction), measured with ``gc.callbacks``. Whatever is alive before the first
    object (imports, the data dictionary, the runner) lives as long as the worker, so
    freezing it loses nothing; objects made later are collected as before.
    """
    gc.collect()
    gc.freeze()


def extract_object(
    ref: ObjectRef,
    run: RunInfo,
    *,
    defer_size: int = DEFAULT_DEFER_SIZE,
    storage: StorageOptions | None = None,
    opened: OpenedObject | IngestError | None = None,
    budget: ReadBudget | None = None,
    walker: bool = True,
) -> Extracted:
    """Read, parse and flatten one object; every failure becomes its ingest_errors row.

    ``opened`` is the object already opened (or the error opening it gave) by a
    ``ranged.Prefetcher``; without it the object is opened here. ``budget`` bounds what the
    object may cost (``budgets``): read and flatten share it, since sequences are parsed
    when the flatten opens them. ``walker``: flatten straight from the bytes (``walk``) where
    it can, else (and always with False) through pydicom's data sets, which give the same rows.
    """
    with cyclic_gc_paused(), metering(budget):
        try:
            return _extract(ref, run, defer_size, storage, opened, walker)
        except (Exception, RecursionError) as exc:
            # a defect, or a path no file system takes (an embedded NUL): still this object's
            # row, never a failed job; the exception's text is not logged (it may hold values)
            logger.warning("unexpected %s while extracting %s", type(exc).__name__, ref.url)
            error = IngestError("read", type(exc).__name__, "unexpected failure while extracting")
            return Extracted(ref.url, error=_error_row(ref, run, error))


def _extract(
    ref: ObjectRef,
    run: RunInfo,
    defer_size: int,
    storage: StorageOptions | None,
    opened: OpenedObject | IngestError | None,
    walker: bool,
) -> Extracted:
    requests = 0
    try:
        if isinstance(opened, IngestError):
            raise opened
        if opened is None:
            opened = open_object(ref, storage)
        ref = opened.ref
        with opened:
            walked = _walk(opened, defer_size) if walker else None
            if walked is not None:
                flat = walked.flat
                problems = walked.problems
                read_defer = opened.read_defer_size(defer_size, storage)
                problems += flatten_after_pixel_data(walked, opened.raw, read_defer)
                row_bytes = opened.ranged.bytes_fetched if opened.ranged else walked.bytes_read
            else:
                opened.raw.seek(0)
                flat, problems, row_bytes = _read_and_flatten(opened, defer_size, storage)
            failure = opened.failure()
            if failure is not None:  # the parser swallowed a failed request
                raise failure
    except IngestError as error:
        logger.debug("ingest error %s/%s for %s", error.stage, error.error_type, ref.url)
        if isinstance(opened, OpenedObject):
            requests = opened.requests
        elif error.stage == "read" and ref.url.partition("://")[0] in ("gs", "s3"):
            requests = 1
        return Extracted(ref.url, error=_error_row(ref, run, error), requests=requests)

    anomalies = [{"tag_path": None, "keyword": None, "reason": p} for p in problems]
    anomalies.extend(flat.anomalies)
    row = flat.metadata
    row.update(ref.provenance())
    row.update(
        header_bytes_read=row_bytes,
        ingest_run_id=run.run_id,
        ingested_at=run.started_at,
        ingest_anomalies=anomalies,
    )
    # IDC's catalog UUIDs from an IDC-style URL; a manifest's own values win over them
    row.update(url_manifest_values(ref.url))
    row.update(ref.extras)
    try:
        rows = flat.elements.to_arrow()
    except (Exception, RecursionError) as exc:  # one object's rows, never the job
        error = IngestError("flatten", type(exc).__name__, "element rows not built", row_bytes)
        return Extracted(ref.url, error=_error_row(ref, run, error), requests=opened.requests)
    elements = ObjectElements(ref.url, flat.sop_instance_uid, run.run_id, rows)
    return Extracted(ref.url, row, frozenset(flat.column_paths), elements, requests=opened.requests)


def _walk(opened: OpenedObject, defer_size: int) -> Walked | None:
    """The header flattened by the walker, or None where the pydicom path must take it."""
    ranged = opened.ranged
    return walk_object(
        opened.raw,
        defer_size=defer_size,
        defer_in_items=ranged is not None,
        first_read=ranged.first_block if ranged is not None else LOCAL_FIRST_READ,
        growth=1 if ranged is not None else LOCAL_GROWTH,
        meter=current_meter(),
    )


def _read_and_flatten(
    opened: OpenedObject, defer_size: int, storage: StorageOptions | None
) -> tuple[FlatObject, list[str], int]:
    """The reference path: pydicom reads the header, ``flatten`` walks its data sets.

    Returns the flat rows, the problems to record on the row and the header bytes read.
    """
    header = None
    try:
        read_defer = opened.read_defer_size(defer_size, storage)
        with deferring_items(read_defer if opened.ranged is not None else None):
            header = read_header(opened.raw, defer_size=read_defer)
            if header.reader.meter_exceeded() is None:
                header.problems.extend(
                    add_elements_after_pixel_data(
                        header.dataset, header.reader, header.stopped_at, read_defer
                    )
                )
        if opened.ranged is not None:
            load_deferred_values(header, defer_size)
        with collect_pydicom_problems() as flatten_problems:
            flat = flatten_dataset(header.dataset, header.read_range)
        exceeded = header.reader.meter_exceeded()
        if exceeded is not None:  # met while the flatten opened sequences
            flatten_problems.append(budget_problem(exceeded))
    except (Exception, RecursionError) as exc:
        failure = opened.failure()
        if failure is not None:  # a failed request, whatever the parser made of it
            raise failure from exc
        if isinstance(exc, IngestError):
            raise
        bytes_read = header.bytes_read if header is not None else 0
        exceeded = header.reader.meter_exceeded() if header is not None else None
        error_type = type(exceeded or exc).__name__
        raise IngestError("flatten", error_type, "flatten failed", bytes_read) from exc
    return flat, unique(header.problems + flatten_problems), header.bytes_read
