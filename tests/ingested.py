"""What a session-scoped warehouse fixture (conftest.py) hands to the tests that read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomwarehouse.pipeline.run import IngestSummary
from dicomwarehouse.warehouse.duckdb_file import connect


@dataclass(frozen=True)
class IngestedFolder:
    """A folder of files and the warehouse one plain ingest of it made (read it, never write)."""

    root: Path
    warehouse: Path
    summary: IngestSummary


def warehouse_rows(warehouse: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of a query on a local warehouse, sorted: comparable whatever the plan's order."""
    con = connect(warehouse)
    try:
        return sorted(con.sql(sql).fetchall(), key=repr)
    finally:
        con.close()
