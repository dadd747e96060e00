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

from dicomwarehouse.objectstore import join, store_for

__all__ = ["metadata_table", "write_shard"]


def metadata_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """dicom_metadata rows (nested dicts) as an Arrow table of the run's schema."""
    return pa.Table.from_pylist(list(rows), schema=schema)


def write_shard(table: pa.Table, directory: str) -> str:
    """Write one shard under a fresh name (retried bundles never overwrite each other).

    ``directory`` is a local folder or a gs:// prefix; returns the shard's path or URL.
    """
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, compression="zstd", use_compliant_nested_type=True)
    path = join(directory, f"part-{uuid.uuid4().hex}.parquet")
    store_for(directory).write_bytes(path, buffer.getvalue().to_pybytes())
    return path
