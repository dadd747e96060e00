"""One progress line for a whole run, whatever the runner: objects, errors, bytes, rate, ETA.

Beam runs the reading DoFn as several instances: in threads, and with
``--direct_running_mode=multi_processing`` in worker processes whose stderr the command
silences. A line drawn by each instance showed one instance's share, several lines overwrote
each other, and worker processes showed none. So the instances only count: each writes its
running totals to a small file of its own in a folder of the launching machine
(:class:`ProgressCounter`), and the launching process sums those files and draws the one line
(:class:`ProgressDisplay`).

The pipeline plans what it reads, so the launcher starts without a total: once the planning
step has counted the objects to read, it writes that count to the same folder
(:func:`report_total`) and the line gets its total and an ETA.

The folder exists only on the launching machine, so only runners whose workers run there
(the DirectRunner and Prism) get a display; Dataflow shows the same counts as the job's Beam
metrics (``ExtractObjects``). Nothing is drawn unless stderr is a terminal.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TextIO

__all__ = ["ProgressCounter", "ProgressDisplay", "local_runner", "on_terminal", "report_total"]

#: Seconds between two writes of a counter's file, and between two draws of the line.
INTERVAL = 0.25
#: In the progress folder: the number of objects the run reads, once the pipeline planned it.
TOTAL_FILE = "to_read.total"


def on_terminal(stream: TextIO) -> bool:
    """Draw the line only for a person watching: a carriage-return line garbles a log file."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def local_runner(runner: str | None) -> bool:
    """Runners whose workers share the launching machine's disk (the default is Direct)."""
    name = (runner or "DirectRunner").lower()
    return "direct" in name or "prism" in name


class ProgressCounter:
    """The running totals of one DoFn instance, written to its own file in ``folder``.

    A file per instance (not one file appended to by all) means no locking between processes:
    each file is replaced whole (written aside, then renamed), and the display reads whole files.
    """

    def __init__(self, folder: str | None) -> None:
        self.folder = folder
        self.objects = 0
        self.errors = 0
        self.bytes = 0
        self._path = Path(folder) / f"{os.getpid()}-{uuid.uuid4().hex}.progress" if folder else None
        self._written = 0.0

    def add(self, *, failed: bool, bytes_read: int) -> None:
        self.objects += 1
        self.errors += failed
        self.bytes += bytes_read
        if self._path is not None and time.monotonic() - self._written >= INTERVAL:
            self.flush()

    def flush(self) -> None:
        """Write the totals now (end of a bundle: the display's last count is then exact)."""
        if self._path is None:
            return
        self._written = time.monotonic()
        aside = self._path.with_suffix(".tmp")
        try:
            aside.write_text(f"{self.objects} {self.errors} {self.bytes}\n", encoding="ascii")
            os.replace(aside, self._path)
        except OSError:  # the run ended and its display removed the folder
            self._path = None


def report_total(folder: str | None, total: int) -> None:
    """Tell the display how many objects the run reads (the planning step knows it last)."""
    if folder is None:
        return
    path = Path(folder) / TOTAL_FILE
    aside = path.with_suffix(".tmp")
    try:
        aside.write_text(f"{total}\n", encoding="ascii")
        os.replace(aside, path)
    except OSError:  # the run ended and its display removed the folder
        pass


def _reported_total(folder: Path) -> int | None:
    try:
        return int((folder / TOTAL_FILE).read_text(encoding="ascii"))
    except (OSError, ValueError):  # not planned yet
        return None


def _totals(folder: Path) -> tuple[int, int, int]:
    objects = errors = size = 0
    for path in folder.glob("*.progress"):
        try:
            counts = [int(word) for word in path.read_text(encoding="ascii").split()]
        except (OSError, ValueError):  # replaced meanwhile: the next draw reads it
            continue
        if len(counts) == 3:
            objects, errors, size = objects + counts[0], errors + counts[1], size + counts[2]
    return objects, errors, size


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressDisplay:
    """The launching process's side: a thread that sums the counters and draws one line.

    Use as a context manager around the pipeline's run; ``folder`` (None when disabled) is
    what the DoFns get. ``enabled`` defaults to: a local runner and stderr on a terminal.
    """

    def __init__(self, total: int | None, *, enabled: bool, stream: TextIO | None = None) -> None:
        """``total``: the objects to read, or None until the pipeline's planning reports it
        (``report_total``)."""
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.folder: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._first: tuple[float, int] | None = None  # when objects were first counted
        self._all_read: float | None = None  # when the last object was counted
        self._width = 0

    def __enter__(self) -> ProgressDisplay:
        if self.enabled:
            self.folder = tempfile.mkdtemp(prefix="dicomwarehouse-progress-")
            self._started = time.monotonic()
            self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._thread is None or self.folder is None:
            return
        self._stop.set()
        self._thread.join()
        if exc_info[0] is None:
            self._draw()
        self.stream.write("\n")
        self.stream.flush()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            self._draw()

    def line(self, objects: int, errors: int, size: int, now: float) -> str:
        """The text of the line for these totals at time ``now`` (monotonic seconds)."""
        if self.total is not None:
            objects = min(objects, self.total)  # a retried bundle counts twice
        of = "" if self.total is None else f"/{self.total}"
        parts = [f"{objects}{of} objects read", f"{errors} errors", f"{size / 1e6:.1f} MB"]
        if objects and self._first is None:
            self._first = (now, objects)
        if objects == self.total and self._all_read is None:
            self._all_read = now
        until = self._all_read or now  # the rate of reading, not of the commit after it
        if self._first is not None and until > self._first[0] and objects > self._first[1]:
            rate = (objects - self._first[1]) / (until - self._first[0])
            parts.append(f"{rate:.0f} objects/s")
            if self.total is not None and objects < self.total:
                parts.append(f"ETA {_duration((self.total - objects) / rate)}")
        if not objects:
            parts.append("starting")
        elif self._all_read is not None:
            parts.append("writing the tables")
        parts.append(f"{_duration(now - self._started)} elapsed")
        return ", ".join(parts)

    def _draw(self) -> None:
        if self.folder is None:
            return
        if self.total is None:
            self.total = _reported_total(Path(self.folder))
        text = "  " + self.line(*_totals(Path(self.folder)), time.monotonic())
        padding = " " * max(0, self._width - len(text))  # clear what a longer line left
        self._width = len(text)
        try:
            self.stream.write(f"\r{text}{padding}")
            self.stream.flush()
        except (OSError, ValueError):  # the terminal went away
            self._stop.set()
