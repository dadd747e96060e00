"""Arrow tables to Parquet shards, in the layout BigQuery and DuckDB both read.

Lists are written in the compliant three-level form (``list<element>``) that BigQuery's
``enable_list_inference`` maps to REPEATED fields, compressed with ZSTD (BigQuery and DuckDB
both read it). A shard is written whole to memory and then stored as one object, the same way
in a local folder and under gs:// (``objectstore``), so no reader ever sees half a shard.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.io.objectstore import store_for
from dicomwarehouse.io.urls import join

__all__ = ["metadata_table", "read_parquet", "write_parquet", "write_shard"]


_CONVERSION_ERRORS = (pa.ArrowException, TypeError, ValueError, OverflowError)


def metadata_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """dicom_metadata rows (nested dicts) as an Arrow table of the run's schema.

    A shard holds thousands of objects: if one row's value does not convert to its column
    (a defect upstream, or a column an earlier run typed differently), that value alone is
    left NULL and named in the row's anomalies, rather than failing the shard and the run.
    """
    rows = rows if isinstance(rows, list) else list(rows)  # read twice if one does not fit
    try:
        return _rows_as_table(rows, schema)
    except _CONVERSION_ERRORS:
        return _rows_as_table([_fitted_row(row, schema) for row in rows], schema)


def _rows_as_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """The rows converted in one pass, as one struct array of the schema's fields.

    Why not ``Table.from_pylist``: it gathers each column in Python and converts it with a call
    of its own, and a run's schema has hundreds of columns, most of them NULL in a given batch;
    that fixed cost per column was half the table's time on batches of small headers. Keys
    the schema lacks are ignored, at the top and inside structs, as there.
    """
    struct = pa.array(rows, pa.struct(list(schema)))
    return pa.Table.from_struct_array(struct).replace_schema_metadata(schema.metadata)


def _fitted_row(row: dict[str, Any], schema: pa.Schema) -> dict[str, Any]:
    """The row with each top-level value that does not fit its field set to NULL."""
    fitted = dict(row)
    dropped = []
    for field in schema:
        if field.name not in row or field.name == "ingest_anomalies":
            continue
        try:
            pa.array([row[field.name]], field.type)
        except _CONVERSION_ERRORS:
            fitted[field.name] = None
            dropped.append(field.name)
    anomalies = list(row.get("ingest_anomalies") or [])
    anomalies.extend(
        {"tag_path": None, "keyword": name, "reason": "value does not fit the run's column: "
         "left NULL (dicom_elements keeps it)"}
        for name in dropped
    )  # fmt: skip
    fitted["ingest_anomalies"] = anomalies
    try:
        pa.array([anomalies], schema.field("ingest_anomalies").type)
    except (KeyError, *_CONVERSION_ERRORS):
        fitted["ingest_anomalies"] = None
    return fitted


def write_parquet(url: str, table: pa.Table) -> None:
    """Write a table as one Parquet object at a local path or gs:// URL, all at once."""
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd", use_compliant_nested_type=True)
    store_for(url).write_bytes(url, buffer.getvalue().to_pybytes())


def read_parquet(url: str, columns: Sequence[str] | None = None) -> pa.Table:
    """Read a Parquet object (only ``columns``, when given) from a local path or gs:// URL."""
    with store_for(url).open_input(url) as handle:
        return pq.read_table(handle, columns=columns)


def write_shard(table: pa.Table, directory: str) -> str:
    """Write one shard under a fresh name (retried bundles never overwrite each other).

    ``directory`` is a local folder or a gs:// prefix; returns the shard's path or URL.
    """
    path = join(directory, f"part-{uuid.uuid4().hex}.parquet")
    write_parquet(path, table)
    return path
