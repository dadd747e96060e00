"""Arrow tables to Parquet shards, in the layout BigQuery and DuckDB both read.

Lists are written in the compliant three-level form (``list<element>``) that BigQuery's
``enable_list_inference`` maps to REPEATED fields, compressed with ZSTD (BigQuery and DuckDB
both read it).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["metadata_table", "write_shard"]


def metadata_table(rows: Sequence[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """dicom_metadata rows (nested dicts) as an Arrow table of the run's schema."""
    return pa.Table.from_pylist(list(rows), schema=schema)


def write_shard(table: pa.Table, directory: str) -> str:
    """Write one shard under a fresh name (retried bundles never overwrite each other)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"part-{uuid.uuid4().hex}.parquet")
    pq.write_table(table, path, compression="zstd", use_compliant_nested_type=True)
    return path
