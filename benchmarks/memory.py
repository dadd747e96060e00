"""Peak memory of ``dicomwarehouse ingest`` as the run grows: is it bounded by the object?

Why this exists: a run's memory must not grow with its number of objects (issue 15), or a
folder of a few hundred thousand files exhausts the machine. This makes N hard-link copies of
a corpus in a temporary folder (no bytes copied; every copy is a distinct object, a distinct
URL), runs ``dicomwarehouse ingest`` on them as a child process into a fresh warehouse, polls
the resident memory of its whole process tree (psutil, every ``--interval`` seconds) and
prints one table row per size: objects, peak RSS, wall time, and the ratio of each peak to
the smallest run's. With ``--incremental`` a second, incremental ingest of the same copies
(nothing changed) is measured too.

Usage::

    python benchmarks/memory.py [--corpus DIR] [--copies 1,4,12] [--incremental] [-- BEAM FLAGS]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

DEFAULT_CORPUS = os.environ.get("DICOMWAREHOUSE_SHARED_CORPUS", "/work/shared/corpus")


@dataclass(frozen=True)
class Measured:
    objects: int
    peak_rss: int  # bytes, the process tree's sum at its highest poll
    seconds: float
    summary: str  # the ingest's last line


def link_copies(corpus: Path, target: Path, copies: int) -> int:
    """``copies`` hard-link copies of every file below ``corpus`` under ``target/copy-<i>``."""
    files = [path for path in sorted(corpus.rglob("*")) if path.is_file()]
    for index in range(copies):
        for path in files:
            destination = target / f"copy-{index}" / path.relative_to(corpus)
            destination.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, destination)
    return len(files) * copies


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):  # a child that just ended
            total += member.memory_info().rss
    return total


def measure_ingest(arguments: Sequence[str], interval: float) -> tuple[int, float, str]:
    """Run one ingest; its peak tree RSS, wall seconds and last output line."""
    command = [sys.executable, "-m", "dicomwarehouse", "ingest", *arguments]
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    process = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(process))
        time.sleep(interval)
    output = child.stdout.read() if child.stdout else ""
    seconds = time.monotonic() - started
    if child.returncode != 0:
        raise SystemExit(f"ingest failed ({child.returncode}):\n{output[-3000:]}")
    lines = [line for line in output.splitlines() if line.strip()]
    return peak, seconds, lines[-1] if lines else ""


def _mib(value: int) -> str:
    return f"{value / 2**20:,.0f} MiB"


def print_table(title: str, rows: Sequence[Measured]) -> None:
    print(f"\n{title}\n")
    print("| objects | peak RSS | vs smallest | wall |")
    print("|---:|---:|---:|---:|")
    base = rows[0].peak_rss if rows else 1
    for row in rows:
        print(
            f"| {row.objects:,} | {_mib(row.peak_rss)} | {row.peak_rss / base:.2f}x "
            f"| {row.seconds:.0f} s |"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default=DEFAULT_CORPUS)
    parser.add_argument("--copies", default="1,4,12", help="comma-separated copy counts")
    parser.add_argument("--interval", type=float, default=0.1, help="RSS poll seconds")
    parser.add_argument(
        "--incremental", action="store_true", help="also time an unchanged incremental re-run"
    )
    parser.add_argument("--keep", action="store_true", help="print and keep the temp folder")
    arguments, beam_args = parser.parse_known_args(argv)
    beam_args = [a for a in beam_args if a != "--"]
    corpus = Path(arguments.corpus)
    if not corpus.is_dir():
        raise SystemExit(f"no corpus at {corpus}")
    first: list[Measured] = []
    again: list[Measured] = []
    for copies in (int(n) for n in arguments.copies.split(",")):
        folder = Path(tempfile.mkdtemp(prefix=f"dicomwarehouse-memory-{copies}-"))
        objects = link_copies(corpus, folder / "sources", copies)
        ingest = [str(folder / "sources"), "--warehouse", str(folder / "warehouse")]
        extra = ["--", *beam_args] if beam_args else []
        peak, seconds, summary = measure_ingest([*ingest, *extra], arguments.interval)
        first.append(Measured(objects, peak, seconds, summary))
        print(f"{objects} objects: {_mib(peak)}, {seconds:.0f} s: {summary}", flush=True)
        if arguments.incremental:
            peak, seconds, summary = measure_ingest(
                [*ingest, "--incremental", *extra], arguments.interval
            )
            again.append(Measured(objects, peak, seconds, summary))
            print(f"  re-run: {_mib(peak)}, {seconds:.0f} s: {summary}", flush=True)
        if arguments.keep:
            print(f"  kept {folder}")
        else:
            subprocess.run(["rm", "-rf", str(folder)], check=True)
    print_table("ingest into a new warehouse", first)
    if again:
        print_table("incremental re-run, nothing changed", again)
    return 0


if __name__ == "__main__":
    sys.exit(main())
