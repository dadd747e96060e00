"""The ingest job as an Apache Beam pipeline (DirectRunner by default, Dataflow by flags).

    objects -> ExtractObjects -> metadata rows ------------------> WriteParquetShards --\\
                              \\-> column paths -> union (side input) ---^               |
                              \\-> element batches --------------> WriteParquetShards ----+-> Finish
                              \\-> error rows -------------------> WriteParquetShards ----/      ^
                              \\-> bytes and requests read -> sums (side input) ---------------/

Every shard of dicom_metadata is written with the run's one schema: the union of the column
paths all objects reported, held to BigQuery's column limit (``limits.choose_columns``: the
rarest attributes are left to dicom_elements when the union would not fit), given to the
writers as a side input. Shards land in the run's folders. The last step, ``Finish``, sees
the list of every shard written, so it runs once all writers are done: it commits the run
(``finish.RunFinish``) inside the job, which is what lets a Dataflow job whose launcher does not
wait for it (a Flex Template) commit and publish on its own.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from dicomwarehouse.errors import UsageError
from dicomwarehouse.extract import RunInfo, extract_object
from dicomwarehouse.finish import read_objects
from dicomwarehouse.limits import ColumnChoice, choose_columns
from dicomwarehouse.objectstore import is_gs_url, join, write_json
from dicomwarehouse.parquet import metadata_table, write_shard
from dicomwarehouse.pausepoints import pause_point
from dicomwarehouse.ranged import Prefetcher
from dicomwarehouse.read import DEFAULT_DEFER_SIZE
from dicomwarehouse.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, ColumnPath, metadata_schema
from dicomwarehouse.sources import ObjectRef
from dicomwarehouse.storage import StorageOptions
from dicomwarehouse.warehouse import COLUMN_PATHS_FILE, LEFT_OUT_FILE

__all__ = [
    "ExtractObjects",
    "IngestTransform",
    "PipelineArgumentError",
    "check_runner",
    "run_pipeline",
]

logger = logging.getLogger(__name__)

_ELEMENTS = "elements"
_ERRORS = "errors"
_PATHS = "paths"
_STATS = "stats"
#: How flatten words the anomaly of a sequence too deep for a column (see flatten.sequence).
_TOO_DEEP = "sequence nested deeper than"


class PipelineArgumentError(UsageError):
    """Beam flags (after ``--``) that Beam refuses, such as an unknown runner."""


class _Progress:
    """A one-line progress display on an interactive terminal (per worker process)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.errors = 0
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def update(self, failed: bool) -> None:
        self.done += 1
        self.errors += failed
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or self.done == self.total):
            self._last = now
            sys.stderr.write(f"\r  read {self.done}/{self.total} objects, {self.errors} errors ")
            sys.stderr.flush()


def _in_global_window(output: Any) -> Any:
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


class ExtractObjects(beam.DoFn):
    """Read and flatten each object; main output metadata rows, tagged outputs the rest.

    Objects in buckets are opened ahead (``ranged.Prefetcher``: up to ``requests_in_flight``
    first-block requests in flight per DoFn instance) while this thread parses the ones whose
    bytes have arrived; outputs of the objects still in flight at the end of a bundle are
    emitted by ``finish_bundle``.
    """

    def __init__(
        self,
        run: RunInfo,
        defer_size: int,
        total: int,
        storage: StorageOptions | None = None,
    ) -> None:
        self.run = run
        self.defer_size = defer_size
        self.total = total
        self.storage = storage
        # live progress in the runner's monitoring (Dataflow's job page); the run record's
        # numbers come from the stats output instead, which the Finish step can see
        self.objects = beam.metrics.Metrics.counter("dicomwarehouse", "objects")
        self.failures = beam.metrics.Metrics.counter("dicomwarehouse", "errors")

    def setup(self) -> None:
        self.progress = _Progress(self.total)
        self.prefetcher = Prefetcher(self.storage)

    def teardown(self) -> None:
        self.prefetcher.close()

    def process(self, ref: ObjectRef) -> Iterator[Any]:
        pause_point("extract")  # tests hold a running ingest here (pausepoints)
        for due, opened in self.prefetcher.push(ref):
            yield from self._extract(due, opened)

    def finish_bundle(self) -> Iterator[Any]:
        for due, opened in self.prefetcher.drain():
            for output in self._extract(due, opened):
                yield _in_global_window(output)

    def _extract(self, ref: ObjectRef, opened: Any) -> Iterator[Any]:
        extracted = extract_object(
            ref, self.run, defer_size=self.defer_size, storage=self.storage, opened=opened
        )
        self.progress.update(extracted.error is not None)
        self.objects.inc()
        if extracted.error is not None:
            self.failures.inc()
            yield beam.pvalue.TaggedOutput(_STATS, (0, extracted.requests))
            yield beam.pvalue.TaggedOutput(_ERRORS, extracted.error)
            return
        header_bytes = extracted.metadata["header_bytes_read"] or 0
        yield beam.pvalue.TaggedOutput(_STATS, (header_bytes, extracted.requests))
        too_deep = sum(
            1
            for anomaly in extracted.metadata["ingest_anomalies"]
            if (anomaly["reason"] or "").startswith(_TOO_DEEP)
        )
        yield beam.pvalue.TaggedOutput(_PATHS, (extracted.column_paths, too_deep))
        yield beam.pvalue.TaggedOutput(_ELEMENTS, extracted.elements)
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


class WriteParquetShards(beam.DoFn):
    """Buffer a bundle's rows and write them as Parquet shards of about ``shard_rows`` rows.

    ``kind`` says what the elements are: metadata row dicts (schema from the side input),
    error row dicts, or element record batches.
    """

    def __init__(self, directory: str, kind: str, shard_rows: int, extra_columns: Sequence[str]):
        self.directory = directory
        self.kind = kind
        self.shard_rows = shard_rows
        self.extra_columns = tuple(extra_columns)

    def start_bundle(self) -> None:
        self.buffer: list[Any] = []
        self.buffered_rows = 0
        self.schema: pa.Schema | None = None

    def process(self, element: Any, column_paths: Sequence[ColumnPath] = ()) -> Iterator[str]:
        if self.kind == "metadata" and self.schema is None:
            extra = dict.fromkeys(self.extra_columns, pa.string())
            self.schema = metadata_schema(map(tuple, column_paths), extra)
        self.buffer.append(element)
        self.buffered_rows += element.num_rows if isinstance(element, pa.RecordBatch) else 1
        if self.buffered_rows >= self.shard_rows:
            yield self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        if self.buffer:
            yield _in_global_window(self._flush())

    def _flush(self) -> str:
        if self.kind == "metadata":
            table = metadata_table(self.buffer, self.schema)
        elif self.kind == "errors":
            table = pa.Table.from_pylist(self.buffer, schema=ERRORS_SCHEMA)
        else:
            table = pa.Table.from_batches(self.buffer, schema=ELEMENTS_SCHEMA)
        self.buffer = []
        self.buffered_rows = 0
        return write_shard(table, self.directory)


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
    ``/warehouse/{table}/run-<run id>``. The outputs: the shard paths of each table, the
    column-paths file, and ``stats``: one (header bytes read, read requests) pair for the run.
    """

    def __init__(
        self,
        output: str,
        run: RunInfo,
        *,
        total: int,
        required_paths: Iterable[ColumnPath],
        existing_paths: Iterable[ColumnPath] = (),
        extra_columns: Sequence[str] = (),
        defer_size: int = DEFAULT_DEFER_SIZE,
        shard_rows: dict[str, int] | None = None,
        storage: StorageOptions | None = None,
    ) -> None:
        super().__init__()
        self.output = output
        self.run = run
        self.total = total
        self.required_paths = sorted(set(required_paths))
        self.existing_paths = sorted(set(existing_paths))
        self.extra_columns = tuple(extra_columns)
        self.defer_size = defer_size
        self.shard_rows = {"metadata": 2000, "elements": 500_000, "errors": 10_000}
        self.shard_rows.update(shard_rows or {})
        self.storage = storage

    def expand(self, refs: beam.PCollection) -> dict[str, beam.PCollection]:
        results = refs | "Extract" >> beam.ParDo(
            ExtractObjects(self.run, self.defer_size, self.total, self.storage)
        ).with_outputs(_ELEMENTS, _ERRORS, _PATHS, _STATS, main="metadata")
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
        metadata = results.metadata | "WriteMetadata" >> beam.ParDo(
            WriteParquetShards(
                directory["dicom_metadata"],
                "metadata",
                self.shard_rows["metadata"],
                self.extra_columns,
            ),
            column_paths=beam.pvalue.AsSingleton(column_paths),
        )
        elements = results[_ELEMENTS] | "WriteElements" >> beam.ParDo(
            WriteParquetShards(
                directory["dicom_elements"], "elements", self.shard_rows["elements"], ()
            )
        )
        errors = results[_ERRORS] | "WriteErrors" >> beam.ParDo(
            WriteParquetShards(directory["ingest_errors"], "errors", self.shard_rows["errors"], ())
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
        }


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


def run_pipeline(
    objects: str,
    total: int,
    output: str,
    run: RunInfo,
    finish: Callable[[Sequence[str], int, int], None],
    *,
    beam_args: Sequence[str] = (),
    required_paths: Iterable[ColumnPath] = (),
    existing_paths: Iterable[ColumnPath] = (),
    extra_columns: Sequence[str] = (),
    defer_size: int = DEFAULT_DEFER_SIZE,
    storage: StorageOptions | None = None,
) -> bool:
    """Run the ingest pipeline, ending with ``finish(shards, header_bytes, read_requests)``.

    ``objects`` is the file of the ``total`` objects to read (``finish.write_objects``): the
    pipeline's first step reads it, so the job graph does not grow with the run.

    Returns True once the pipeline ran to its end here; False when the runner only submitted
    it (a Dataflow template launch has no job to wait for), so the job finishes on its own.
    """
    try:
        options = PipelineOptions(list(beam_args))
        pipeline = beam.Pipeline(options=options)
    except (ValueError, TypeError) as exc:
        raise PipelineArgumentError(f"bad Beam pipeline flags: {exc}") from exc
    written = (
        pipeline
        | "ObjectsFile" >> beam.Create([objects])
        | "Objects" >> beam.FlatMap(read_objects)
        | "Spread" >> beam.Reshuffle()
        | "Ingest"
        >> IngestTransform(
            output,
            run,
            total=total,
            required_paths=required_paths,
            existing_paths=existing_paths,
            extra_columns=extra_columns,
            defer_size=defer_size,
            storage=storage,
        )
    )
    stats = written.pop("stats")
    _ = (
        tuple(written.values())
        | "AllWrites" >> beam.Flatten()
        | "ListWrites" >> beam.combiners.ToList()
        | "Finish"
        >> beam.Map(lambda shards, sums: finish(shards, *sums), sums=beam.pvalue.AsSingleton(stats))
    )
    result = pipeline.run()
    result.wait_until_finish()
    if sys.stderr.isatty():
        sys.stderr.write("\n")
    return getattr(result, "has_job", True)
