"""The two kinds of failure: a user's request that cannot be met, and an object that yields no row.

``UsageError`` is what the command line reports as one line, without a traceback;
``IngestError`` is what one object's read, parse or flatten raises, which becomes that
object's ingest_errors row and never fails the run.
"""

from __future__ import annotations

__all__ = ["IngestError", "SourceError", "UsageError"]


class UsageError(Exception):
    """A problem with what the user asked for (a path, a flag, a warehouse), not a bug."""


class IngestError(Exception):
    """An object that yields no row: becomes one ingest_errors row, never a failed job."""

    def __init__(self, stage: str, error_type: str, message: str, bytes_read: int = 0) -> None:
        super().__init__(message)
        self.stage = stage
        self.error_type = error_type
        self.message = message
        self.bytes_read = bytes_read


class SourceError(UsageError):
    """A source that names nothing readable; reported as one line to the user."""
