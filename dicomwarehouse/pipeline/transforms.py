"""The ingest job as an Apache Beam pipeline (DirectRunner by default, Dataflow by flags).

    tasks, ledger shards -> PlanRun -> ledger rows (skipped, deleted) --------> events --\\
                              \\-> counts (side input) --------------------------------+ |
    (object, action) -> ExtractObjects -> metadata rows -> StageMetadataRows ->        | |
                 |                       WriteMetadataShards (paths side input) ---+-+-> Finish
                 \\-> column paths -> union ----------^                              |
                 \\-> element batches, error rows -> WriteParquetShards --------------/
                 \\-> ledger rows with their outcome -> events (WriteParquetShards)
                 \\-> bytes and requests read -> sums (side input of Finish)

Every shard of dicom_metadata is written with the run's one schema: the union of the column
paths all objects reported, held to BigQuery's column limit (``limits.choose_columns``: the
rarest attributes are left to dicom_elements when the union would not fit). That schema is
known only once every object is read, so metadata rows are first staged as they come (a file
of rows per shard under the run folder's ``_staging/``) and turned into Parquet shards of the
run's schema afterwards, one staged file at a time: a worker's memory holds one shard of rows,
never the run's (every writer's buffer is bounded in bytes too, and extraction workers collect
cyclic garbage as they go: ``benchmarks/memory.py`` measures the peak against the run's size).
The last step, ``Finish``, sees the list of every shard written, so it runs
once all writers are done: it commits the run (``finish.RunFinish``) inside the job, which is
what lets a Dataflow job whose launcher does not wait for it (a Flex Template) commit and
publish on its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import pickle
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from dicomwarehouse.dicom.budgets import ReadBudget
from dicomwarehouse.dicom.extract import (
    RunInfo,
    cyclic_gc_paused,
    extract_object,
    freeze_long_lived_objects,
)
from dicomwarehouse.dicom.flatten import ObjectElements, element_batch
from dicomwarehouse.dicom.ranged import Prefetcher
from dicomwarehouse.dicom.read import DEFAULT_DEFER_SIZE
from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.objectstore import store_for, write_json
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.io.urls import is_gs_url, join
from dicomwarehouse.pipeline.interactive import beam_outside_ipython
from dicomwarehouse.pipeline.planning import (
    PlanObjects,
    PlanRun,
    after_planning,
    in_global_window,
)
from dicomwarehouse.pipeline.progress import (
    ProgressCounter,
    ProgressDisplay,
    local_runner,
    on_terminal,
)
from dicomwarehouse.sources.expand import ListingTask
from dicomwarehouse.tables.limits import ColumnChoice, choose_columns
from dicomwarehouse.tables.parquet import metadata_table, write_shard
from dicomwarehouse.tables.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, ColumnPath, metadata_schema
from dicomwarehouse.testpoints import fault_point, pause_point
from dicomwarehouse.warehouse.layout import (
    COLUMN_PATHS_FILE,
    EVENTS_TABLE,
    LEFT_OUT_FILE,
    STAGING_FOLDER,
)
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA, FAILED, INGESTED, event_row
from dicomwarehouse.warehouse.lock import keep_lease

__all__ = [
    "ExtractObjects",
    "IngestTransform",
    "PipelineArgumentError",
    "StageMetadataRows",
    "WriteMetadataShards",
    "WriteParquetShards",
    "check_runner",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

_ELEMENTS = "elements"
_ERRORS = "errors"
_PATHS = "paths"
_STATS = "stats"
#: Ledger rows of the objects read, with their outcome (ingested or failed).
_EVENTS = "events"
#: Objects between two full garbage collections in a worker (see ``ExtractObjects``).
COLLECT_EVERY = 200
#: How flatten words the anomaly of a sequence too deep for a column (see flatten.sequence).
_TOO_DEEP = "sequence nested deeper than"


class PipelineArgumentError(UsageError):
    """Beam flags (after ``--``) that Beam refuses, such as an unknown runner."""


def release_memory() -> None:
    """Collect cyclic garbage, then hand the freed heap back to the system where C allows.

    Collecting frees the cycles parsing leaves behind (see ``ExtractObjects``); glibc's
    ``malloc_trim`` then returns the free pages of the heap, which it otherwise keeps, so the
    process's resident memory follows what it holds rather than what it once held.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class ExtractObjects(beam.DoFn):
    """Read and flatten each object; main output metadata rows, tagged outputs the rest.

    Objects in buckets are opened ahead (``ranged.Prefetcher``: up to ``requests_in_flight``
    first-block requests in flight per DoFn instance) while this thread parses the ones whose
    bytes have arrived; outputs of the objects still in flight at the end of a bundle are
    emitted by ``finish_bundle``.

    Every ``COLLECT_EVERY`` objects the worker runs a full garbage collection
    (``release_memory``). Parsing leaves
    reference cycles behind (datasets and their elements point at each other), and Python
    collects its oldest generation only when the long-lived objects grew by a quarter: on a
    long bundle (the DirectRunner's is the whole run) that garbage piled up at about 0.07 MiB
    an object, measured with ``benchmarks/memory.py``, and a census of live objects after a
    collection showed nothing else growing.
    """

    def __init__(
        self,
        run: RunInfo,
        defer_size: int,
        storage: StorageOptions | None = None,
        budget: ReadBudget | None = None,
        progress_folder: str | None = None,
    ) -> None:
        self.run = run
        self.defer_size = defer_size
        self.storage = storage
        self.budget = budget
        # the launcher's progress line sums what each instance counts there (``progress``)
        self.progress_folder = progress_folder
        # live progress in the runner's monitoring (Dataflow's job page); the run record's
        # numbers come from the stats output instead, which the Finish step can see
        self.objects = beam.metrics.Metrics.counter("dicomwarehouse", "objects")
        self.failures = beam.metrics.Metrics.counter("dicomwarehouse", "errors")

    def setup(self) -> None:
        freeze_long_lived_objects()
        self.progress = ProgressCounter(self.progress_folder)
        self.prefetcher = Prefetcher(self.storage)
        self.actions: dict[str, str] = {}  # of the objects in the prefetcher's window only
        self.extracted = 0

    def _event(self, ref: ObjectRef, outcome: str) -> Iterator[Any]:
        action = self.actions.pop(ref.url, None)
        if action is not None:
            row = event_row(ref, action, outcome, self.run.run_id, self.run.started_at)
            yield beam.pvalue.TaggedOutput(_EVENTS, row)

    def teardown(self) -> None:
        self.progress.flush()
        self.prefetcher.close()

    def process(self, element: ObjectRef | tuple[ObjectRef, str]) -> Iterator[Any]:
        """``element``: an object, or an object and why the run reads it (``PlanObjects``),
        whose ledger row then comes out with its outcome."""
        pause_point("extract")  # tests hold a running ingest here (testpoints)
        ref, action = element if isinstance(element, tuple) else (element, None)
        if action is not None:
            self.actions[ref.url] = action
        for due, opened in self.prefetcher.push(ref):
            yield from self._extract(due, opened)

    def finish_bundle(self) -> Iterator[Any]:
        for due, opened in self.prefetcher.drain():
            for output in self._extract(due, opened):
                yield in_global_window(output)
        self.progress.flush()

    def _extract(self, ref: ObjectRef, opened: Any) -> Iterator[Any]:
        extracted = extract_object(
            ref,
            self.run,
            defer_size=self.defer_size,
            storage=self.storage,
            opened=opened,
            budget=self.budget,
        )
        self.objects.inc()
        self.extracted += 1
        if self.extracted % COLLECT_EVERY == 0:
            release_memory()
        if extracted.error is not None:
            self.progress.add(failed=True, bytes_read=0)
            self.failures.inc()
            yield beam.pvalue.TaggedOutput(_STATS, (0, extracted.requests))
            yield beam.pvalue.TaggedOutput(_ERRORS, extracted.error)
            yield from self._event(ref, FAILED)
            return
        header_bytes = extracted.metadata["header_bytes_read"] or 0
        self.progress.add(failed=False, bytes_read=header_bytes)
        yield beam.pvalue.TaggedOutput(_STATS, (header_bytes, extracted.requests))
        too_deep = sum(
            1
            for anomaly in extracted.metadata["ingest_anomalies"]
            if (anomaly["reason"] or "").startswith(_TOO_DEEP)
        )
        yield beam.pvalue.TaggedOutput(_PATHS, (extracted.column_paths, too_deep))
        yield beam.pvalue.TaggedOutput(_ELEMENTS, extracted.element_rows)
        yield from self._event(ref, INGESTED)
        yield extracted.metadata


class _PathCounts:
    """Objects per column path, and sequences left out for depth, of part of a run."""

    def __init__(self) -> None:
        self.objects: dict[ColumnPath, int] = {}
        self.too_deep_objects = 0
        self.too_deep_sequences = 0


class _ChooseColumns(beam.CombineFn):
    """Count the objects per column path over the run, then choose the run's columns.

    The counts feed the column limit rule (``limits.choose_columns``); the result is the
    run's dicom_metadata schema (order-free) and what it leaves to dicom_elements.
    """

    def __init__(
        self,
        required_paths: Iterable[ColumnPath],
        existing_paths: Iterable[ColumnPath],
        extra_columns: Sequence[str],
    ) -> None:
        self.required_paths = sorted(set(required_paths))
        self.existing_paths = sorted(set(existing_paths))
        self.extra_columns = tuple(extra_columns)

    def create_accumulator(self) -> _PathCounts:
        return _PathCounts()

    def add_input(
        self, accumulator: _PathCounts, element: tuple[Iterable[ColumnPath], int]
    ) -> _PathCounts:
        paths, too_deep = element
        objects = accumulator.objects
        for path in paths:
            objects[path] = objects.get(path, 0) + 1
        accumulator.too_deep_objects += bool(too_deep)
        accumulator.too_deep_sequences += too_deep
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[_PathCounts]) -> _PathCounts:
        merged = _PathCounts()
        for accumulator in accumulators:
            for path, count in accumulator.objects.items():
                merged.objects[path] = merged.objects.get(path, 0) + count
            merged.too_deep_objects += accumulator.too_deep_objects
            merged.too_deep_sequences += accumulator.too_deep_sequences
        return merged

    def extract_output(self, accumulator: _PathCounts) -> dict[str, Any]:
        choice = choose_columns(
            accumulator.objects,
            required=self.required_paths,
            existing=self.existing_paths,
            extra_columns=self.extra_columns,
        )
        return {
            "paths": list(choice.paths),
            "left_out": choice,
            "too_deep": {
                "objects": accumulator.too_deep_objects,
                "sequences": accumulator.too_deep_sequences,
            },
        }


#: What a writer buffers before it writes a shard, in bytes: the bound of a worker's memory
#: per writer, whatever the run's size (rows are counted too, ``shard_rows``).
SHARD_BYTES = 32 * 2**20
#: The same bound for staged metadata rows, counted pickled: a row of the run's wide schema
#: takes several times its pickle once it is an Arrow table, when ``WriteMetadataShards`` turns
#: a staged file into a shard (the peak of a run, measured with ``benchmarks/memory.py``).
METADATA_SHARD_BYTES = 8 * 2**20


class _BundleBuffer(beam.DoFn):
    """Buffer a bundle's elements; flush every ``shard_rows`` rows or ``shard_bytes`` bytes.

    The byte bound matters on the DirectRunner, whose bundles are the whole run: without it a
    writer of element batches held up to ``shard_rows`` rows (hundreds of MiB) at a time.
    """

    def __init__(self, shard_rows: int, shard_bytes: int = SHARD_BYTES) -> None:
        self.shard_rows = shard_rows
        self.shard_bytes = shard_bytes

    def start_bundle(self) -> None:
        self.buffer: list[Any] = []
        self.buffered_rows = 0
        self.buffered_bytes = 0

    def process(self, element: Any) -> Iterator[str]:
        element, rows, size = self.measure(element)
        self.buffer.append(element)
        self.buffered_rows += rows
        self.buffered_bytes += size
        if self.buffered_rows >= self.shard_rows or self.buffered_bytes >= self.shard_bytes:
            yield self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        if self.buffer:
            yield in_global_window(self._flush())

    def _flush(self) -> str:
        buffer, self.buffer, self.buffered_rows, self.buffered_bytes = self.buffer, [], 0, 0
        return self.write(buffer)

    def measure(self, element: Any) -> tuple[Any, int, int]:
        """The element as buffered, its rows and its bytes (0: not measured)."""
        if isinstance(element, ObjectElements):
            return element, element.num_rows, element.nbytes
        return element, 1, 0

    def write(self, buffer: list[Any]) -> str:
        raise NotImplementedError


_ROW_SCHEMAS = {"errors": ERRORS_SCHEMA, "events": EVENTS_SCHEMA}


class WriteParquetShards(_BundleBuffer):
    """Write a bundle's error rows, ledger rows (one by one or in lists) or element batches as
    Parquet shards of about ``shard_rows`` rows (their schemas are fixed)."""

    def __init__(self, directory: str, kind: str, shard_rows: int) -> None:
        super().__init__(shard_rows)
        self.directory = directory
        self.kind = kind

    def measure(self, element: Any) -> tuple[Any, int, int]:
        if isinstance(element, list):  # a batch of rows (``planning.EVENTS``)
            return element, len(element), 0
        return super().measure(element)

    def write(self, buffer: list[Any]) -> str:
        if self.kind in _ROW_SCHEMAS:
            rows = [row for item in buffer for row in (item if isinstance(item, list) else [item])]
            table = pa.Table.from_pylist(rows, schema=_ROW_SCHEMAS[self.kind])
        else:
            table = pa.Table.from_batches(_element_batches(buffer), schema=ELEMENTS_SCHEMA)
        written = write_shard(table, self.directory)
        fault_point("after_shard")
        return written


#: Rows per record batch made of many objects' element rows: large enough that the per-batch
#: cost is nothing per object, small enough that the copy it makes is a few MiB.
ELEMENT_BATCH_ROWS = 50_000


def _element_batches(objects: list[ObjectElements]) -> Iterator[pa.RecordBatch]:
    """Objects' element rows as record batches of about ``ELEMENT_BATCH_ROWS`` rows.

    Takes the objects off the front of the list as it goes, so that what is held at once is
    the batches made so far and the objects not yet in one, never both copies of the buffer.
    """
    while objects:
        count = rows = 0
        for part in objects:
            count += 1
            rows += part.num_rows
            if rows >= ELEMENT_BATCH_ROWS:
                break
        chunk = objects[:count]
        del objects[:count]
        yield element_batch(chunk)


class StageMetadataRows(_BundleBuffer):
    """Write a bundle's metadata rows, as they come, to staged files of ``shard_rows`` rows.

    Each row is pickled when it arrives (nested dicts of Python values, a few times larger in
    memory than pickled), so the buffer holds compact bytes, bounded by ``shard_bytes`` too;
    the shard made of them later is exactly the one the rows would have made directly. Staged
    files live under the run folder's ``_staging/``: never a shard (not Parquet), removed at
    commit, and with the run folder when the run never commits.
    """

    def __init__(
        self, directory: str, shard_rows: int, shard_bytes: int = METADATA_SHARD_BYTES
    ) -> None:
        super().__init__(shard_rows, shard_bytes)
        self.directory = directory

    def measure(self, element: Any) -> tuple[Any, int, int]:
        pickled = pickle.dumps(element, protocol=pickle.HIGHEST_PROTOCOL)
        return pickled, 1, len(pickled)

    def write(self, buffer: list[Any]) -> str:
        url = join(self.directory, STAGING_FOLDER, f"rows-{uuid.uuid4().hex}.pickle")
        store_for(url).write_bytes(url, pickle.dumps(buffer, protocol=pickle.HIGHEST_PROTOCOL))
        return url


def read_staged_rows(url: str) -> list[dict[str, Any]]:
    """The metadata rows of one staged file (``StageMetadataRows``), in order."""
    return [pickle.loads(row) for row in pickle.loads(store_for(url).read_bytes(url))]


class WriteMetadataShards(beam.DoFn):
    """Turn each staged file of metadata rows into a Parquet shard of the run's one schema."""

    def __init__(self, directory: str, extra_columns: Sequence[str]) -> None:
        self.directory = directory
        self.extra_columns = tuple(extra_columns)

    def start_bundle(self) -> None:
        self.schema: pa.Schema | None = None

    def process(self, staged: str, column_paths: Sequence[ColumnPath] = ()) -> Iterator[str]:
        if self.schema is None:
            extra = dict.fromkeys(self.extra_columns, pa.string())
            self.schema = metadata_schema(map(tuple, column_paths), extra)
        # unpickled rows are trees of dicts and lists, kept until the table is made: with the
        # collector running, each collection traversed every row read so far, four fifths of
        # the unpickling's time (2,000 rows of generated headers: 0.82 to 1.09 ms a row
        # against 0.19 to 0.20 paused)
        with cyclic_gc_paused():
            table = metadata_table(read_staged_rows(staged), self.schema)
        yield write_shard(table, self.directory)
        release_memory()  # the freed rows' heap back to the system, before the next file


class _WriteColumnPaths(beam.DoFn):
    """Write the run's column paths and what the limits left out beside its shards."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def process(self, chosen: dict[str, Any]) -> Iterator[str]:
        path = join(self.directory, COLUMN_PATHS_FILE)
        write_json(path, [list(p) for p in chosen["paths"]])
        choice: ColumnChoice = chosen["left_out"]
        write_json(
            join(self.directory, LEFT_OUT_FILE),
            {**choice.to_json(), "too_deep": chosen["too_deep"]},
            indent=1,
        )
        yield path


class IngestTransform(beam.PTransform):
    """ObjectRefs in; Parquet shards of the three tables out.

    ``output`` names each table's folder with a ``{table}`` placeholder, e.g.
    ``/warehouse/{table}/run-<run id>``. Its input: objects, or (object, action) pairs
    (``planning.PlanObjects``). The outputs: the shard paths of each table, the column-paths
    file, ``stats``: one (header bytes read, read requests) pair for the run, and ``events``:
    the ledger rows of the objects given with an action, with their outcome.
    """

    def __init__(
        self,
        output: str,
        run: RunInfo,
        *,
        required_paths: Iterable[ColumnPath],
        existing_paths: Iterable[ColumnPath] = (),
        extra_columns: Sequence[str] = (),
        defer_size: int = DEFAULT_DEFER_SIZE,
        shard_rows: dict[str, int] | None = None,
        storage: StorageOptions | None = None,
        budget: ReadBudget | None = None,
        progress_folder: str | None = None,
    ) -> None:
        super().__init__()
        self.output = output
        self.run = run
        self.progress_folder = progress_folder
        self.required_paths = sorted(set(required_paths))
        self.existing_paths = sorted(set(existing_paths))
        self.extra_columns = tuple(extra_columns)
        self.defer_size = defer_size
        self.shard_rows = {"metadata": 2000, "elements": 500_000, "errors": 10_000}
        self.shard_rows.update(shard_rows or {})
        self.storage = storage
        self.budget = budget

    def expand(self, refs: beam.PCollection) -> dict[str, beam.PCollection]:
        results = refs | "Extract" >> beam.ParDo(
            ExtractObjects(
                self.run, self.defer_size, self.storage, self.budget, self.progress_folder
            )
        ).with_outputs(_ELEMENTS, _ERRORS, _PATHS, _STATS, _EVENTS, main="metadata")
        chosen = results[_PATHS] | "ChooseColumns" >> beam.CombineGlobally(
            _ChooseColumns(self.required_paths, self.existing_paths, self.extra_columns)
        )
        column_paths = chosen | "ColumnPaths" >> beam.Map(lambda c: c["paths"])
        directory = {
            table: self.output.format(table=table)
            for table in ("dicom_metadata", "dicom_elements", "ingest_errors")
        }
        paths_written = chosen | "WritePaths" >> beam.ParDo(
            _WriteColumnPaths(directory["dicom_metadata"])
        )
        staged = results.metadata | "StageMetadata" >> beam.ParDo(
            StageMetadataRows(directory["dicom_metadata"], self.shard_rows["metadata"])
        )
        metadata = staged | "WriteMetadata" >> beam.ParDo(
            WriteMetadataShards(directory["dicom_metadata"], self.extra_columns),
            column_paths=beam.pvalue.AsSingleton(column_paths),
        )
        elements = results[_ELEMENTS] | "WriteElements" >> beam.ParDo(
            WriteParquetShards(directory["dicom_elements"], "elements", self.shard_rows["elements"])
        )
        errors = results[_ERRORS] | "WriteErrors" >> beam.ParDo(
            WriteParquetShards(directory["ingest_errors"], "errors", self.shard_rows["errors"])
        )
        stats = results[_STATS] | "SumStats" >> beam.CombineGlobally(
            beam.combiners.TupleCombineFn(sum, sum)
        )
        return {
            "dicom_metadata": metadata,
            "dicom_elements": elements,
            "ingest_errors": errors,
            "column_paths": paths_written,
            "stats": stats,
            "events": results[_EVENTS],
        }


class _KeepWriterLock(beam.DoFn):
    """Passes elements on; renews the run's gs:// write lock from each worker process it runs in.

    A job whose launcher did not wait (a Flex Template) so keeps its lock while it is alive,
    and loses it minutes after it dies (``lock.keep_lease``: one heartbeat per process).
    """

    def __init__(self, warehouse: str, token: str) -> None:
        self.warehouse = warehouse
        self.token = token

    def setup(self) -> None:
        keep_lease(self.warehouse, self.token)

    def process(self, element: Any) -> Iterator[Any]:
        yield element


def check_runner(beam_args: Sequence[str], warehouse: str) -> None:
    """Refuse a Dataflow run into a local folder: its workers could not write there."""
    try:
        runner = PipelineOptions(list(beam_args)).view_as(StandardOptions).runner or ""
    except (ValueError, TypeError) as exc:
        raise PipelineArgumentError(f"bad Beam pipeline flags: {exc}") from exc
    if "dataflow" in str(runner).lower() and not is_gs_url(warehouse):
        raise PipelineArgumentError(
            f"--runner={runner} writes the warehouse from its workers: use a gs:// --warehouse, "
            f"not the local folder {warehouse}"
        )


def _finish_run(
    shards: list[str],
    finish: Callable[..., None],
    sums: tuple[int, int],
    counts: dict[str, int],
) -> None:
    """The last step: the worker's freed memory back first (the commit and the DuckDB build
    are the run's last peaks), then ``finish``."""
    release_memory()
    finish(shards, *sums, counts)


def run_pipeline(
    tasks: Sequence[ListingTask],
    ledger_shards: Sequence[str],
    plan: PlanObjects,
    output: str,
    run: RunInfo,
    finish: Callable[..., None],
    *,
    beam_args: Sequence[str] = (),
    required_paths: Iterable[ColumnPath] = (),
    existing_paths: Iterable[ColumnPath] = (),
    extra_columns: Sequence[str] = (),
    defer_size: int = DEFAULT_DEFER_SIZE,
    storage: StorageOptions | None = None,
    budget: ReadBudget | None = None,
    lock: tuple[str, str] | None = None,
) -> bool:
    """List, plan, read and write a run, ending with ``finish(shards, header_bytes,
    read_requests, counts)`` (``counts``: objects per action, listed, list requests).

    ``tasks`` are the run's listing tasks and ``ledger_shards`` the ledger's shards: the
    pipeline lists and joins them with the ledger itself (``planning.PlanRun``), so the job
    graph and the launcher stay small however many objects a run has.

    Returns True once the pipeline ran to its end here; False when the runner only submitted
    it (a Dataflow template launch has no job to wait for), so the job finishes on its own.
    ``lock``: (warehouse, token) of the run's write lock, which the workers keep renewed.
    """
    try:
        options = PipelineOptions(list(beam_args))
        pipeline = beam.Pipeline(options=options)
    except (ValueError, TypeError) as exc:
        raise PipelineArgumentError(f"bad Beam pipeline flags: {exc}") from exc
    display = ProgressDisplay(
        None,  # the objects to read are known only once the pipeline has planned
        enabled=on_terminal(sys.stderr) and local_runner(options.view_as(StandardOptions).runner),
    )
    # one line for the run, drawn here from what every DoFn instance counts; in a notebook,
    # Beam builds and runs the pipeline as in a script (pipeline.interactive)
    with display, beam_outside_ipython():
        tasks_in = pipeline | "ListingTasks" >> beam.Create(list(tasks))
        if lock is not None:  # renewed from the workers from the first step (listing) on
            tasks_in = tasks_in | "KeepWriterLockListing" >> beam.ParDo(_KeepWriterLock(*lock))
        planned = tasks_in | "Plan" >> PlanRun(
            list(ledger_shards), plan, storage, progress_folder=display.folder
        )
        refs = (
            planned["to_read"]
            | "Spread" >> beam.Reshuffle()
            | "AfterPlanning"
            >> beam.Map(after_planning, beam.pvalue.AsSingleton(planned["counts"]))
        )
        if lock is not None:  # and from each worker that reads
            refs = refs | "KeepWriterLock" >> beam.ParDo(_KeepWriterLock(*lock))
        written = refs | "Ingest" >> IngestTransform(
            output,
            run,
            required_paths=required_paths,
            existing_paths=existing_paths,
            extra_columns=extra_columns,
            defer_size=defer_size,
            storage=storage,
            budget=budget,
            progress_folder=display.folder,
        )
        stats = written.pop("stats")
        events = (
            (written.pop("events"), planned["events"])
            | "AllEvents" >> beam.Flatten()
            | "WriteEvents"
            >> beam.ParDo(WriteParquetShards(output.format(table=EVENTS_TABLE), "events", 100_000))
        )
        _ = (
            (*written.values(), events)
            | "AllWrites" >> beam.Flatten()
            | "ListWrites" >> beam.combiners.ToList()
            | "Finish"
            >> beam.Map(
                _finish_run,
                finish,
                sums=beam.pvalue.AsSingleton(stats),
                counts=beam.pvalue.AsSingleton(planned["counts"]),
            )
        )
        result = pipeline.run()
        result.wait_until_finish()
    return getattr(result, "has_job", True)
