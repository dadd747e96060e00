"""Errors in use: what the command line reports as one line, without a traceback."""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(Exception):
    """A problem with what the user asked for (a path, a flag, a warehouse), not a bug."""
