"""CPU of a whole ``dicomwarehouse ingest`` against a dcmread + to_json_dict loop, same files.

Why this exists: ``benchmark.py`` times header extraction alone, where ours is several times
cheaper than ``to_json_dict``; a user pays for the whole command: imports, listing and
planning, Beam's per-element work, the Parquet writes, the commit and the DuckDB build. This
runs ``dicomwarehouse ingest`` on the given files as a child process into a fresh warehouse
and takes its CPU seconds (user + system of the children, ``RUSAGE_CHILDREN``, so worker
processes count) and wall time, next to the CPU seconds of a dcmread + to_json_dict loop over
the same files in this process (``benchmark.phase_to_json_dict``), and their ratio. It also
ingests the first file alone: that run's CPU is the fixed cost of a command (imports, pipeline
start, commit, DuckDB build), and (all - one) / (files - 1) is the marginal CPU per object,
which is what grows with an archive.

The OS cache is warmed first; the three measurements run round-robin ``--repeat`` times and
each keeps its lowest CPU time (and the wall time of that run). CPU time is what the load of
other processes on a shared machine distorts least; the load average is printed beside it.

Usage::

    python benchmarks/end_to_end.py [PATH ...] [--repeat 3] [-- INGEST OPTIONS AND BEAM FLAGS]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from benchmark import collect_files, default_paths, phase_to_json_dict, warm_cache

import dicomwarehouse

#: The folder that holds the package this process imports: the child ingest imports the same
#: one (first on its PYTHONPATH, run from a folder of its own), not whatever package the
#: current folder holds (``python -m`` puts the current folder first on the path).
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(dicomwarehouse.__file__)))


@dataclass(frozen=True)
class Measured:
    """The best (lowest CPU) of the runs of one measurement."""

    cpu_seconds: float  # user + system
    user_seconds: float
    wall_seconds: float
    summary: str  # the ingest's last output line; empty for the to_json_dict loop


def _children_cpu() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime


def run_ingest(sources: Sequence[str], extra: Sequence[str]) -> Measured:
    """One ``dicomwarehouse ingest`` of ``sources`` into a fresh warehouse, in a child process."""
    folder = tempfile.mkdtemp(prefix="dicomwarehouse-e2e-")
    command = [
        sys.executable,
        "-m",
        "dicomwarehouse",
        "ingest",
        *sources,
        "--warehouse",
        os.path.join(folder, "warehouse"),
        *extra,
    ]
    user_before, system_before = _children_cpu()
    started = time.monotonic()
    try:
        paths = [PACKAGE_ROOT, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
        environment = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=folder, env=environment
        )
    finally:
        wall = time.monotonic() - started
        shutil.rmtree(folder, ignore_errors=True)
    user_after, system_after = _children_cpu()
    if done.returncode != 0:
        raise SystemExit(f"ingest failed ({done.returncode}):\n{done.stderr[-3000:]}")
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    user = user_after - user_before
    return Measured(user + system_after - system_before, user, wall, lines[-1] if lines else "")


def run_to_json_dict(paths: Sequence[str]) -> Measured:
    """The peer baseline over the same files, in this process (single-threaded)."""
    refs = collect_files(paths, None)
    started_cpu, started_wall = time.process_time(), time.monotonic()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        phase_to_json_dict(refs)
    cpu = time.process_time() - started_cpu
    return Measured(cpu, cpu, time.monotonic() - started_wall, "")


def _best(runs: Sequence[Measured]) -> Measured:
    return min(runs, key=lambda measured: measured.cpu_seconds)


def print_report(files: int, all_files: Measured, one: Measured, peer: Measured) -> None:
    marginal = (all_files.cpu_seconds - one.cpu_seconds) / max(files - 1, 1)
    peer_per_file = peer.cpu_seconds / files
    print()
    print("| measurement | CPU s | user s | wall s | CPU ms/file |")
    print("|---|---:|---:|---:|---:|")
    for name, measured, count in (
        (f"ingest, {files} files", all_files, files),
        ("ingest, 1 file (fixed cost)", one, 1),
        (f"dcmread + to_json_dict, {files} files", peer, files),
    ):
        print(
            f"| {name} | {measured.cpu_seconds:.2f} | {measured.user_seconds:.2f} "
            f"| {measured.wall_seconds:.2f} | {1000 * measured.cpu_seconds / count:.2f} |"
        )
    print()
    print(f"ingest summary: {all_files.summary}")
    print(
        f"to_json_dict CPU / ingest CPU: {peer.cpu_seconds / all_files.cpu_seconds:.2f}x "
        "(above 1: the whole ingest costs less than the peer loop)"
    )
    print(
        f"marginal ingest CPU per object: {1000 * marginal:.2f} ms "
        f"(to_json_dict: {1000 * peer_per_file:.2f} ms/file, "
        f"ratio {peer_per_file / marginal if marginal > 0 else float('inf'):.2f}x)"
    )
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each (lowest CPU kept)")
    arguments, extra = parser.parse_known_args(argv)
    extra = [argument for argument in extra if argument != "--"]
    if arguments.repeat < 1:
        parser.error("--repeat must be at least 1")
    paths = arguments.paths or default_paths()
    refs = collect_files(paths, None)
    if not refs:
        parser.error(f"no files under {' '.join(paths)}")
    print(f"paths: {' '.join(paths)} ({len(refs)} files); dicomwarehouse from {PACKAGE_ROOT}")
    print(f"load average: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    warm_cache(refs)
    run_to_json_dict([refs[0].url])  # pydicom's lazy imports, outside the timed loops
    runs: dict[str, list[Measured]] = {"all": [], "one": [], "peer": []}
    for attempt in range(arguments.repeat):
        runs["all"].append(run_ingest(paths, extra))
        runs["one"].append(run_ingest([refs[0].url], extra))
        runs["peer"].append(run_to_json_dict(paths))
        print(
            f"run {attempt + 1}: ingest {runs['all'][-1].cpu_seconds:.2f} CPU s, "
            f"1 file {runs['one'][-1].cpu_seconds:.2f}, "
            f"to_json_dict {runs['peer'][-1].cpu_seconds:.2f}",
            flush=True,
        )
    print_report(len(refs), _best(runs["all"]), _best(runs["one"]), _best(runs["peer"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
