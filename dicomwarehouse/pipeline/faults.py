"""Named points where a run can be made to fail on purpose, for crash-recovery tests.

A run that dies (a killed process, a lost Dataflow worker, a failed commit) must leave
nothing a reader sees, and the next run must give the tables of one clean run. Testing that by
killing a process at a random moment is slow and racy; instead the pipeline calls
``fault_point(name)`` where a crash matters, and ``DICOMWAREHOUSE_FAULT=<name>`` makes that
point fail:

- ``after_shard``: a shard writer has just written a Parquet shard (others may not have);
- ``before_commit``: every shard is written, the finishing step has not committed;
- ``after_commit``: the run record is written, the DuckDB views are not rebuilt yet.

``<name>`` raises :class:`InjectedFault` (the process lives on: a launcher that sees its
pipeline fail); ``<name>:kill`` sends the process SIGKILL (nothing of it runs any more: no
``finally``, no lock release). The variable is read at each point, so it reaches Beam worker
processes as they inherit the environment. Unset (always, outside tests) it costs one lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["FAULT_ENV", "FAULT_POINTS", "InjectedFault", "fault_point"]

FAULT_ENV = "DICOMWAREHOUSE_FAULT"
FAULT_POINTS = ("after_shard", "before_commit", "after_commit")


class InjectedFault(RuntimeError):
    """The failure ``DICOMWAREHOUSE_FAULT`` asked for (never raised otherwise)."""


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
