"""What a session-scoped warehouse fixture (conftest.py) hands to the tests that read it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dicomwarehouse.pipeline.run import IngestSummary


@dataclass(frozen=True)
class IngestedFolder:
    """A folder of files and the warehouse one plain ingest of it made (read it, never write)."""

    root: Path
    warehouse: Path
    summary: IngestSummary
