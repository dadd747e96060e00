"""Named points where a run can be held still, so tests can act on it at a known moment.

Interrupting an ingest, or querying a warehouse while a writer is half-way through rebuilding
it, cannot be tested by sleeping and hoping the other side got far enough: the timing differs
on every machine. Instead the code calls :func:`pause_point` at the few moments worth
testing, which does nothing unless the environment variable ``DICOMWAREHOUSE_PAUSE_AT`` names
that point::

    DICOMWAREHOUSE_PAUSE_AT=<point>:<ready file>

The process that reaches ``<point>`` first creates ``<ready file>`` (holding its pid) and then
waits for as long as the file exists: a test waits for the file to appear, acts, and deletes it
to let the run go on, or interrupts the run while it waits. The variable is inherited by Beam's
worker processes, so a point inside a DoFn holds them too. Points in use:

- ``extract``: a pipeline worker about to read its first object (``pipeline.ExtractObjects``);
- ``build_duckdb``: a DuckDB build with every table and view created, before the file replaces
  the previous one (``warehouse.build_duckdb``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["PAUSE_ENV", "pause_point"]

PAUSE_ENV = "DICOMWAREHOUSE_PAUSE_AT"
_POLL_SECONDS = 0.05


def pause_point(name: str) -> None:
    """Hold here while the ready file exists, if ``DICOMWAREHOUSE_PAUSE_AT`` names ``name``.

    Only the first process or thread to reach the point pauses (it creates the ready file
    exclusively); the others, and any later arrival once the file is deleted, pass through.
    """
    point, _, ready_file = os.environ.get(PAUSE_ENV, "").partition(":")
    if point != name or not ready_file:
        return
    ready = Path(ready_file)
    try:
        with open(ready.with_name(ready.name + ".claimed"), "x"):
            pass
    except FileExistsError:
        return  # another worker holds this point, or held it already
    ready.write_text(str(os.getpid()))
    while ready.exists():
        time.sleep(_POLL_SECONDS)
