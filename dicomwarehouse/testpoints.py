"""Named points of a run where a test can hold it still or make it fail.

What a run does when it is interrupted, crashes, or is queried half-way cannot be tested by
sleeping and hoping the other side got far enough, nor by killing a process at a random
moment: the timing differs on every machine. Instead the code calls one of two functions at
the few moments worth testing. Both do nothing unless an environment variable names the point
(outside tests it is never set, and each call costs one lookup). The variables reach Beam's
worker processes, which inherit the environment, so points inside a DoFn work on them too.

Hold: ``pause_point(name)`` with ``DICOMWAREHOUSE_PAUSE_AT=<point>:<ready file>``. The process
that reaches ``<point>`` first creates ``<ready file>`` (holding its pid) and waits for as long
as the file exists: a test waits for the file to appear, acts, and deletes it to let the run
go on, or interrupts the run while it waits. Points:

- ``extract``: a pipeline worker about to read its first object (``ExtractObjects``);
- ``build_duckdb``: a DuckDB build with every table and view created, before the file replaces
  the previous one.

Fail: ``fault_point(name)`` with ``DICOMWAREHOUSE_FAULT=<point>`` raises
:class:`InjectedFault` there (the process lives on: a launcher that sees its pipeline fail);
``<point>:kill`` sends the process SIGKILL (nothing of it runs any more: no ``finally``, no lock
release). A dead run must leave nothing a reader sees, and the next run must give the tables of
one clean run. Points:

- ``after_shard``: a shard writer has just written a Parquet shard (others may not have);
- ``before_commit``: every shard is written, the finishing step has not committed;
- ``after_commit``: the run record is written, the DuckDB views are not rebuilt yet.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

__all__ = [
    "FAULT_ENV",
    "FAULT_POINTS",
    "PAUSE_ENV",
    "PAUSE_POINTS",
    "InjectedFault",
    "fault_point",
    "pause_point",
]

PAUSE_ENV = "DICOMWAREHOUSE_PAUSE_AT"
PAUSE_POINTS = ("extract", "build_duckdb")
FAULT_ENV = "DICOMWAREHOUSE_FAULT"
FAULT_POINTS = ("after_shard", "before_commit", "after_commit")
_POLL_SECONDS = 0.05


class InjectedFault(RuntimeError):
    """The failure ``DICOMWAREHOUSE_FAULT`` asked for (never raised otherwise)."""


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


def fault_point(name: str) -> None:
    """Fail here if ``DICOMWAREHOUSE_FAULT`` names this point (see the module docstring)."""
    wanted = os.environ.get(FAULT_ENV)
    if not wanted:
        return
    point, _, action = wanted.partition(":")
    if point != name:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise InjectedFault(f"fault injected at {name} ({FAULT_ENV}={wanted})")
