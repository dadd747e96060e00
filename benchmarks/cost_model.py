"""What ingesting and keeping a million DICOM instances costs on Google Cloud, from measurements.

Why this exists: whether to run the ingest on Dataflow, and how to budget an archive's
warehouse in BigQuery, depends on a few numbers per object that only a measurement gives
(CPU time to read and flatten a header, bytes and requests read from the bucket, bytes per row
of the tables). This script turns them into dollars per million instances with prices as
parameters, so the model can be re-run when prices or the code change. docs/cost.md is its
output.

The measured defaults and where they come from:

- CPU ms per object: ``benchmarks/scale.py measure`` (user + system CPU of the ingest command
  and its workers, divided by the objects; DirectRunner, one process);
- bytes and requests read per object: ``benchmarks/benchmark.py /work/shared/corpus
  --ranged-only`` at the default first block (8 KiB);
- bytes per row: ``--warehouse DIR`` measures a local warehouse (an ingest of the corpus): the
  BigQuery logical size of every row by BigQuery's data-size rules (STRING and BYTES 2 + length,
  INT64, FLOAT64, TIMESTAMP and DATE 8, BOOL 1, NUMERIC 16, NULL 0, ARRAY and STRUCT the sum of
  their contents) and the Parquet bytes on disk.

Usage::

    python benchmarks/cost_model.py                       # the model with the defaults
    python benchmarks/cost_model.py --warehouse DIR       # measure bytes per row first
    python benchmarks/cost_model.py --vcpu-hour 0.07 --machine e2-standard-2 --cpu-ms 20
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

MILLION = 1_000_000
GIB = 2**30
TIB = 2**40

#: machine type -> (vCPUs, memory GB) of a Dataflow worker
MACHINES = {
    "n1-standard-1": (1, 3.75),
    "n1-standard-2": (2, 7.5),
    "e2-standard-2": (2, 8.0),
    "n2-standard-2": (2, 8.0),
}

#: where the default prices come from, printed with them
PRICE_SOURCE = (
    "list prices, us-central1, on-demand, as published on cloud.google.com/dataflow/pricing, "
    "cloud.google.com/storage/pricing and cloud.google.com/bigquery/pricing (Dataflow batch "
    "worker rates as of 2024; BigQuery on-demand and storage rates in force since July 2023); "
    "recorded 2026-12-03 without a live check (no network here): verify before budgeting"
)

#: the key columns most queries filter or join on (dicom_metadata)
KEY_COLUMNS = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID", "PatientID", "Modality")


@dataclass(frozen=True)
class Measured:
    """Per-object numbers measured here (see the module docstring for the commands)."""

    cpu_ms_per_object: float = 8.6  # 100,000 synthetic objects, scale.py measure
    bytes_read_per_object: float = 14_263  # corpus, 8 KiB first block
    requests_per_object: float = 2.02
    shuffle_bytes_per_object: float = 400  # object references reshuffled once
    metadata_bytes_per_row: float = 12_287  # BigQuery logical bytes; corpus warehouse
    metadata_key_bytes_per_row: float = 180.9  # the KEY_COLUMNS
    metadata_parquet_bytes_per_row: float = 976
    elements_rows_per_object: float = 450.1
    elements_bytes_per_row: float = 285.6
    elements_parquet_bytes_per_row: float = 1.76


@dataclass(frozen=True)
class Prices:
    """Prices in USD (defaults: PRICE_SOURCE)."""

    vcpu_hour: float = 0.056  # Dataflow batch worker, per vCPU-hour
    memory_gb_hour: float = 0.003557  # per GB-hour
    disk_gb_hour: float = 0.000054  # standard persistent disk, per GB-hour
    shuffle_gb: float = 0.011  # Dataflow Shuffle, batch, per GB processed
    gcs_class_b_per_1000: float = 0.0004  # GET (ranged reads), Standard storage
    gcs_class_a_per_1000: float = 0.005  # LIST, per 1000 objects listed in pages of 1000
    bq_scan_tib: float = 6.25  # on-demand queries
    bq_active_logical_gib_month: float = 0.02
    bq_long_term_logical_gib_month: float = 0.01
    bq_active_physical_gib_month: float = 0.04  # the compressed-storage billing model


@dataclass(frozen=True)
class Worker:
    machine: str = "n1-standard-1"
    disk_gb: float = 25.0  # boot disk of a batch worker with Dataflow Shuffle
    #: share of a worker's vCPU time spent on objects (start-up, waits for bytes, the commit)
    utilization: float = 0.7


# --- bytes per row (BigQuery's data-size rules) ----------------------------------------------

_FIXED_BYTES = {"bool": 1, "decimal": 16}


def logical_bytes(array: pa.Array | pa.ChunkedArray) -> int:
    """BigQuery logical bytes of a column: what storage and on-demand scans are billed on."""
    if isinstance(array, pa.ChunkedArray):
        return sum(logical_bytes(chunk) for chunk in array.chunks)
    kind = array.type
    present = len(array) - array.null_count
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        lengths = pc.sum(pc.binary_length(array)).as_py() or 0
        return lengths + 2 * present
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return logical_bytes(array.flatten())
    if pa.types.is_struct(kind):
        return sum(logical_bytes(child) for child in array.flatten())
    if pa.types.is_boolean(kind):
        return present
    if pa.types.is_decimal(kind):
        return 16 * present
    if pa.types.is_dictionary(kind):
        return logical_bytes(array.cast(kind.value_type))
    return 8 * present  # INT64, FLOAT64, TIMESTAMP, DATE, TIME


def read_table(warehouse: Path, table: str) -> tuple[pa.Table, int]:
    """Every committed shard of one table (columns unified by name) and their bytes on disk."""
    import duckdb

    shards = sorted(warehouse.glob(f"{table}/run-*/*.parquet"))
    if not shards:
        raise SystemExit(f"no {table} shards under {warehouse}")
    names = ", ".join(f"'{path}'" for path in shards)
    con = duckdb.connect()
    result = con.sql(f"SELECT * FROM read_parquet([{names}], union_by_name=true)").arrow()
    if not isinstance(result, pa.Table):  # newer DuckDB returns a reader
        result = result.read_all()
    return result, sum(path.stat().st_size for path in shards)


def measure_warehouse(warehouse: Path, measured: Measured) -> Measured:
    metadata, metadata_disk = read_table(warehouse, "dicom_metadata")
    elements, elements_disk = read_table(warehouse, "dicom_elements")
    rows = metadata.num_rows
    keys = [name for name in KEY_COLUMNS if name in metadata.column_names]
    return replace(
        measured,
        metadata_bytes_per_row=round(sum(map(logical_bytes, metadata.columns)) / rows, 1),
        metadata_key_bytes_per_row=round(sum(logical_bytes(metadata[k]) for k in keys) / rows, 1),
        metadata_parquet_bytes_per_row=round(metadata_disk / rows, 1),
        elements_rows_per_object=round(elements.num_rows / rows, 1),
        elements_bytes_per_row=round(
            sum(map(logical_bytes, elements.columns)) / elements.num_rows, 1
        ),
        elements_parquet_bytes_per_row=round(elements_disk / elements.num_rows, 2),
    )


# --- the model -------------------------------------------------------------------------------


def dataflow_cost(measured: Measured, prices: Prices, worker: Worker) -> dict[str, float]:
    """USD to ingest one million objects on Dataflow batch workers (no start-up overhead)."""
    vcpus, memory_gb = MACHINES[worker.machine]
    vcpu_hours = measured.cpu_ms_per_object * MILLION / 3.6e6 / worker.utilization
    worker_hours = vcpu_hours / vcpus
    compute = worker_hours * (
        vcpus * prices.vcpu_hour + memory_gb * prices.memory_gb_hour
        + worker.disk_gb * prices.disk_gb_hour
    )  # fmt: skip
    shuffle = measured.shuffle_bytes_per_object * MILLION / 1e9 * prices.shuffle_gb
    reads = measured.requests_per_object * MILLION / 1000 * prices.gcs_class_b_per_1000
    lists = MILLION / 1000 / 1000 * prices.gcs_class_a_per_1000
    return {
        "vCPU hours": vcpu_hours,
        "worker hours": worker_hours,
        "workers (CPU, memory, disk)": compute,
        "Dataflow Shuffle": shuffle,
        "bucket reads (GET)": reads,
        "bucket listing (LIST)": lists,
        "total": compute + shuffle + reads + lists,
    }


def bigquery_cost(measured: Measured, prices: Prices) -> dict[str, float]:
    """USD per million instances: storage per month, and scans of the tables."""
    metadata_gib = measured.metadata_bytes_per_row * MILLION / GIB
    elements_gib = (
        measured.elements_bytes_per_row * measured.elements_rows_per_object * MILLION / GIB
    )
    return {
        "dicom_metadata GiB (logical)": metadata_gib,
        "dicom_elements GiB (logical)": elements_gib,
        "storage per month, active": (metadata_gib + elements_gib)
        * prices.bq_active_logical_gib_month,
        "storage per month, long-term": (metadata_gib + elements_gib)
        * prices.bq_long_term_logical_gib_month,
        # BigQuery compresses on its own; the Parquet bytes are a proxy for its physical bytes
        "storage per month, active, physical billing": (
            measured.metadata_parquet_bytes_per_row
            + measured.elements_parquet_bytes_per_row * measured.elements_rows_per_object
        )
        * MILLION
        / GIB
        * prices.bq_active_physical_gib_month,
        "scan of all dicom_metadata": metadata_gib * GIB / TIB * prices.bq_scan_tib,
        "scan of the 5 key columns": measured.metadata_key_bytes_per_row
        * MILLION
        / TIB
        * prices.bq_scan_tib,
        "scan of all dicom_elements": elements_gib * GIB / TIB * prices.bq_scan_tib,
    }


def _money(value: float) -> str:
    return f"${value:,.2f}" if value >= 0.1 else f"${value:,.4f}"


def report(measured: Measured, prices: Prices, worker: Worker) -> str:
    lines = ["### Measured per object", "", "| quantity | value |", "|---|---|"]
    lines += [f"| {f.name.replace('_', ' ')} | {getattr(measured, f.name):,} |"
              for f in fields(measured)]  # fmt: skip
    lines += ["", f"### Prices (USD; {PRICE_SOURCE})", "", "| price | value |", "|---|---|"]
    lines += [f"| {f.name.replace('_', ' ')} | {getattr(prices, f.name)} |" for f in fields(prices)]
    vcpus, memory_gb = MACHINES[worker.machine]
    lines += [
        "",
        f"### Dataflow, per million objects ({worker.machine}: {vcpus} vCPU, {memory_gb} GB, "
        f"{worker.disk_gb:g} GB disk, {worker.utilization:.0%} of vCPU time on objects)",
        "",
        "| item | value |",
        "|---|---|",
    ]
    for name, value in dataflow_cost(measured, prices, worker).items():
        shown = f"{value:,.2f}" if "hours" in name else _money(value)
        lines.append(f"| {name} | {shown} |")
    lines += ["", "### BigQuery, per million instances", "", "| item | value |", "|---|---|"]
    for name, value in bigquery_cost(measured, prices).items():
        shown = f"{value:,.2f}" if "GiB" in name else _money(value)
        lines.append(f"| {name} | {shown} |")
    return "\n".join(lines)


def _add_fields(parser: argparse.ArgumentParser, defaults: object) -> None:
    for f in fields(defaults):  # type: ignore[arg-type]
        flag = "--" + f.name.replace("_", "-")
        kind = str if f.name == "machine" else float
        parser.add_argument(flag, dest=f.name, type=kind, default=getattr(defaults, f.name))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, help="measure bytes per row of this warehouse")
    for defaults in (Measured(), Prices(), Worker()):
        _add_fields(parser, defaults)
    args = vars(parser.parse_args(argv))
    pick = lambda cls: cls(**{f.name: args[f.name] for f in fields(cls)})  # noqa: E731
    measured, prices, worker = pick(Measured), pick(Prices), pick(Worker)
    if worker.machine not in MACHINES:
        parser.error(f"--machine: one of {', '.join(MACHINES)}")
    if args["warehouse"]:
        measured = measure_warehouse(args["warehouse"], measured)
    print(report(measured, prices, worker))
    return 0


if __name__ == "__main__":
    sys.exit(main())
