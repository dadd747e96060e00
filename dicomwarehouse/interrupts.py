"""Ctrl-C during ``dicomwarehouse ingest``: one line on stderr and exit status 130, whatever
the Beam runner.

Left to itself, an interrupted ingest prints pages: under the default DirectRunner the
KeyboardInterrupt surfaces inside a DoFn, where Beam logs it with its traceback and re-raises it
as a RuntimeError; with ``--direct_running_mode=multi_processing`` each SDK worker process
(started by Beam through ``sh -c``, in the terminal's process group, sharing its stderr) prints
its own traceback, Beam's threads print theirs when the workers die, and the workers chatter on
stderr from the moment they start.

So :func:`one_line_interrupt`, around the command:

- points file descriptor 2 at /dev/null while it runs (unless ``-v``), after giving this
  process's own Python-level stderr (``sys.stderr`` and the logging handlers on it) a copy of
  the real one: what worker processes and C libraries write to the inherited descriptor goes
  nowhere, what the command itself reports still shows;
- on the first SIGINT, silences logging and thread and unraisable exception hooks (everything
  printed from then on would be the interrupt's echo) and raises KeyboardInterrupt, so the
  command unwinds through its ``finally`` blocks and context managers (the writer lock is
  released, a DuckDB build aside is deleted; what a run wrote before its commit is removed by
  the next writer, see ``warehouse.remove_uncommitted``);
- once the exception, whatever Beam turned it into, leaves the command: prints the one line,
  kills the process's remaining descendants (Beam's workers, which a SIGINT sent to this process
  alone does not reach) and ends the process with ``os._exit(130)``, since Beam's own threads
  could otherwise hold the interpreter's shutdown. A second SIGINT ends it at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

__all__ = ["INTERRUPTED_EXIT", "one_line_interrupt"]

#: The shell's status for a command ended by SIGINT (128 + 2).
INTERRUPTED_EXIT = 130
_MESSAGE = "dicomwarehouse: interrupted"


def _child_map() -> dict[int, list[int]]:
    """Parent pid -> child pids of every process visible (Linux /proc, else ``ps``)."""
    pairs: list[tuple[int, int]] = []
    proc = Path("/proc")
    if proc.is_dir():
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # ended meanwhile
                continue
            # "pid (command) state ppid ...": the command may hold spaces and parentheses
            pairs.append((int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])))
    else:
        listing = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="], capture_output=True, text=True, check=False
        ).stdout
        rows = (line.split() for line in listing.splitlines())
        pairs = [(int(pid), int(ppid)) for pid, ppid in rows]
    children: dict[int, list[int]] = {}
    for pid, ppid in pairs:
        children.setdefault(ppid, []).append(pid)
    return children


def _kill_descendants() -> None:
    """SIGKILL every descendant of this process: Beam's workers and the shells that run them.

    SIGKILL, because a worker that got SIGINT too would print a traceback on the way out, and
    nothing a worker holds needs an orderly end: its shards are uncommitted until the commit.
    """
    with contextlib.suppress(OSError, ValueError):
        children = _child_map()
        pending = list(children.get(os.getpid(), []))
        while pending:
            pid = pending.pop()
            pending.extend(children.get(pid, []))
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


class _Interrupt:
    """The state of one command: interrupted yet, and where the one line goes."""

    def __init__(self, terminal: TextIO) -> None:
        self.terminal = terminal
        self.interrupted = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.interrupted:
            self.exit()
        self.interrupted = True
        logging.disable(logging.CRITICAL)
        threading.excepthook = lambda args: None
        sys.unraisablehook = lambda unraisable: None
        raise KeyboardInterrupt

    def exit(self) -> NoReturn:
        with contextlib.suppress(OSError, ValueError):
            start = "\n" if self.terminal.isatty() else ""  # after a progress line or ^C
            self.terminal.write(f"{start}{_MESSAGE}\n")
            self.terminal.flush()
        _kill_descendants()
        os._exit(INTERRUPTED_EXIT)


@contextlib.contextmanager
def _descriptor_2_silenced() -> Iterator[TextIO]:
    """Point fd 2 at /dev/null; yield the real stderr, also given to ``sys.stderr`` and to the
    root logger's handlers that wrote to it, so this process's own messages still show."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = open(  # noqa: SIM115 - closed below, after fd 2 is restored
        saved, "w", encoding=sys.stderr.encoding, errors="backslashreplace", buffering=1
    )
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    previous = sys.stderr
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if isinstance(handler, logging.StreamHandler) and handler.stream is previous
    ]
    sys.stderr = terminal
    for handler in handlers:
        handler.setStream(terminal)
    try:
        yield terminal
    finally:
        terminal.flush()
        os.dup2(saved, 2)
        sys.stderr = previous
        for handler in handlers:
            handler.setStream(previous)
        terminal.close()


@contextlib.contextmanager
def one_line_interrupt(*, quiet_descriptor: bool = True) -> Iterator[None]:
    """Run the body so that SIGINT ends the process with one line on stderr and status 130.

    ``quiet_descriptor``: silence fd 2 (worker processes, C libraries) while the body runs;
    off for ``-v``, where everything is shown. Outside the main thread (where Python delivers
    signals) the body runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    with contextlib.ExitStack() as stack:
        terminal = stack.enter_context(_descriptor_2_silenced()) if quiet_descriptor else sys.stderr
        interrupt = _Interrupt(terminal)
        previous = signal.signal(signal.SIGINT, interrupt.handle)
        stack.callback(signal.signal, signal.SIGINT, previous)
        try:
            yield
        except BaseException:
            if interrupt.interrupted:
                interrupt.exit()
            raise
