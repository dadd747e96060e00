"""Side-by-side throughput of header extraction: pydicom parse floor, to_json_dict, and ours.

Why this exists: DESIGN.md section 6 says value conversion, not parsing, is the cost of turning
DICOM headers into rows, and asks that our extraction be measured in one run, on the same files,
as ratios against two yardsticks:

(a) ``pydicom.dcmread(path, stop_before_pixels=True)`` alone -- the parse floor;
(b) the same plus ``Dataset.to_json_dict()`` -- what most peer tools do (binary values above
    1 KiB go to a bulk-data handler returning a dummy URI, so no huge base64 is built);
(c) ours -- ``extract_object`` per file (read, flatten, its element rows in Arrow) plus, per
    batch of files, the dicom_metadata Arrow table over the union of the batch's column paths
    and the batch's dicom_elements record batch (``element_batch``), as the pipeline's writers
    make them.

All phases run in one process on an OS cache warmed by reading every file once, after an
untimed warm-up on a few files (lazy imports); the phases then run round-robin ``--repeat``
times and each keeps its best time, per file too. Before each pass of (c) the walker's caches
of decoded values are emptied (``walk.forget_values``): they serve values that recur from one
object to the next, and a pass repeated over the same files would otherwise find every value
decoded, which no ingest does. Times are CPU seconds of the process
(``time.process_time``), which the load of other processes does not distort. Absolute
numbers depend on the machine; the ratios are the yardstick (target: ours at least 3x
to_json_dict on the shared corpus, overall and for every source folder, on the way to the
parse floor).

The per-file times give the same report per source folder (the first path component under
each PATH), per modality and per SOP class, so that a slow kind of object shows.

It also reads every file the way bucket objects are read (ranged requests, from a local
"bucket": each range served from the file and counted as one request) and reports bytes read
and requests per object, as ratios to the total object bytes and to the header bytes (the
bytes before Pixel Data, or the whole file when there is none), for each ``--first-blocks``.

Usage::

    python benchmarks/benchmark.py [PATH ...] [--limit N] [--repeat N] [--profile]
    python benchmarks/benchmark.py --folder dcm4che --profile   # one source folder
    python benchmarks/benchmark.py --reference                  # (c) through pydicom only
    python benchmarks/benchmark.py --large-headers 1000,2000,5000,10000
    python benchmarks/benchmark.py --ranged-only --first-blocks 4096,8192,16384,65536
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pydicom
import pydicom.data
from pydicom.dataelem import DataElement
from pydicom.filereader import _at_pixel_data, read_partial

from dicomwarehouse.dicom.extract import (
    RunInfo,
    extract_object,
    freeze_long_lived_objects,
    new_run,
)
from dicomwarehouse.dicom.flatten import ObjectElements, element_batch
from dicomwarehouse.dicom.ranged import OpenedObject, open_file_ranged
from dicomwarehouse.dicom.walk import forget_values
from dicomwarehouse.errors import IngestError
from dicomwarehouse.io.buckets import DEFAULT_FIRST_BLOCK, StorageOptions
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.tables.parquet import metadata_table
from dicomwarehouse.tables.schema import ColumnPath, metadata_schema

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
BULK_DATA_THRESHOLD = 1024
DUMMY_BULK_URI = "https://example.invalid/bulkdata"
WARM_UP_FILES = 8
#: CPU seconds of this process: every phase is single-threaded, and CPU time is what other
#: processes on a shared machine do not distort (wall time there varies by 2x and more).
CLOCK = time.process_time


@dataclass
class PhaseResult:
    """Best-of-N timing of one phase and what its last run counted."""

    name: str
    best_seconds: float
    files: int
    failures: int
    peak_rss_bytes: int
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def files_per_second(self) -> float:
        return self.files / self.best_seconds if self.best_seconds > 0 else float("inf")


def collect_files(paths: Iterable[str], limit: int | None) -> list[ObjectRef]:
    """Regular files under ``paths`` (directories walked recursively, sorted), as ObjectRefs."""
    refs: list[ObjectRef] = []
    seen: set[str] = set()
    for path in paths:
        if os.path.isdir(path):
            candidates: list[str] = []
            for root, dirs, files in os.walk(path):
                dirs.sort()
                candidates.extend(os.path.join(root, name) for name in sorted(files))
        else:
            candidates = [path]
        for candidate in candidates:
            absolute = os.path.abspath(candidate)
            if absolute in seen or not os.path.isfile(absolute):
                continue
            seen.add(absolute)
            refs.append(ObjectRef(absolute, os.path.getsize(absolute)))
            if limit is not None and len(refs) >= limit:
                return refs
    return refs


def default_paths() -> list[str]:
    """The shared corpus if present, else pydicom's bundled test files."""
    if SHARED_CORPUS.is_dir():
        return [str(SHARED_CORPUS)]
    return [os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm"))]


def warm_cache(refs: Sequence[ObjectRef]) -> None:
    """Read every file once so all phases see the same (warm) OS page cache."""
    for ref in refs:
        with open(ref.url, "rb") as handle:
            while handle.read(1 << 20):
                pass


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (ru_maxrss is KiB on Linux, B on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def phase_dcmread(refs: Sequence[ObjectRef]) -> dict[str, Any]:
    """(a) Parse floor: dcmread up to Pixel Data, nothing else."""
    failures = 0
    times: list[float] = []
    clock = CLOCK
    ok: list[bool] = []
    for ref in refs:
        started = clock()
        try:
            pydicom.dcmread(ref.url, stop_before_pixels=True)
            ok.append(True)
        except Exception:
            failures += 1
            ok.append(False)
        times.append(clock() - started)
    return {"failures": failures, "times": times, "file_ok": ok}


def _dummy_bulk_uri(element: DataElement) -> str:
    return DUMMY_BULK_URI


def phase_to_json_dict(refs: Sequence[ObjectRef]) -> dict[str, Any]:
    """(b) Peer baseline: dcmread + to_json_dict, large binary values replaced by a URI."""
    failures = 0
    times: list[float] = []
    clock = CLOCK
    ok: list[bool] = []
    for ref in refs:
        started = clock()
        try:
            dataset = pydicom.dcmread(ref.url, stop_before_pixels=True)
            dataset.to_json_dict(
                bulk_data_threshold=BULK_DATA_THRESHOLD,
                bulk_data_element_handler=_dummy_bulk_uri,
            )
            ok.append(True)
        except Exception:
            failures += 1
            ok.append(False)
        times.append(clock() - started)
    return {"failures": failures, "times": times, "file_ok": ok}


def phase_ours(
    refs: Sequence[ObjectRef], run: RunInfo, batch_size: int, extract_options: dict[str, Any]
) -> dict[str, Any]:
    """(c) Ours: extract_object per file, then one dicom_metadata Arrow table per batch.

    Each file's time is its extract_object plus its share of its batch's metadata table,
    in proportion to its element rows.
    """
    failures = 0
    element_rows = 0
    metadata_rows = 0
    header_bytes: list[int] = []
    error_bytes = 0
    times: list[float] = []
    file_elements: list[int] = []
    kinds: list[tuple[str, str]] = []
    clock = CLOCK
    forget_values()  # each pass meets the files' values as an ingest does: for the first time
    for start in range(0, len(refs), batch_size):
        rows: list[dict[str, Any]] = []
        element_parts: list[ObjectElements] = []
        paths: set[ColumnPath] = set()
        batch = refs[start : start + batch_size]
        for ref in batch:
            started = clock()
            extracted = extract_object(ref, run, **extract_options)
            times.append(clock() - started)
            metadata = extracted.metadata
            if metadata is not None:
                rows.append(metadata)
                paths.update(extracted.column_paths)
                header_bytes.append(metadata["header_bytes_read"])
                count = extracted.element_rows.num_rows if extracted.element_rows else 0
                if extracted.element_rows is not None:
                    element_parts.append(extracted.element_rows)
                element_rows += count
                file_elements.append(count)
                kinds.append((str(metadata.get("Modality") or "-"), sop_class_name(metadata)))
            else:
                failures += 1
                error_bytes += (extracted.error or {}).get("bytes_read") or 0
                file_elements.append(0)
                kinds.append(("(error row)", "(error row)"))
        if rows:
            started = clock()
            metadata_rows += metadata_table(rows, metadata_schema(paths)).num_rows
            element_batch(element_parts)
            spent = clock() - started
            # each row's share of the tables, by its size: a small object's row is not charged
            # for the wide nested columns an enhanced multi-frame row in the batch brings
            first = len(times) - len(batch)
            weights = file_elements[first:]
            total = sum(weights)
            for index, weight in enumerate(weights, first):
                times[index] += spent * (weight / total if total else 1 / len(batch))
    return {
        "failures": failures,
        "element_rows": element_rows,
        "metadata_rows": metadata_rows,
        "header_bytes": header_bytes,
        "error_bytes": error_bytes,
        "times": times,
        "file_elements": file_elements,
        "kinds": kinds,
        "file_ok": [kind != ("(error row)", "(error row)") for kind in kinds],
    }


def sop_class_name(metadata: dict[str, Any]) -> str:
    """The SOP class of a metadata row, by name where pydicom knows the UID."""
    uid = metadata.get("SOPClassUID") or metadata.get("MediaStorageSOPClassUID")
    if not isinstance(uid, str):
        return "-"
    name = pydicom.uid.UID(uid).name
    return name if name else uid


def time_phases(
    phases: Sequence[tuple[str, Callable[[], dict[str, Any]]]],
    warm_up: Sequence[tuple[str, Callable[[], dict[str, Any]]]],
    files: int,
    repeat: int,
) -> list[PhaseResult]:
    """Run the phases round-robin ``repeat`` times; keep each one's best wall time.

    ``warm_up`` (the same phases on a few files) runs once, untimed, before anything is timed.

    Round-robin (a, b, c, a, b, c, ...) rather than a-a-a, b-b-b so that load from other
    processes on a shared machine hits every phase alike. Counts come from the last run;
    peak RSS is sampled after each phase's first run (ru_maxrss only ever grows).
    """
    for _, body in warm_up:
        body()  # first-call costs (lazy imports: pyarrow imports pandas on first pa.array)
    # what an ingest worker does once before its first object; it spares every phase's full
    # collections the traversal of the modules and dictionaries loaded so far
    freeze_long_lived_objects()
    best = [float("inf")] * len(phases)
    stats: list[dict[str, Any]] = [{} for _ in phases]
    file_best: list[list[float] | None] = [None] * len(phases)
    rss = [0] * len(phases)
    for round_ in range(repeat):
        for index, (_, body) in enumerate(phases):
            gc.collect()
            started = CLOCK()
            stats[index] = body()
            best[index] = min(best[index], CLOCK() - started)
            times = stats[index].pop("times", None)
            if times is not None:
                previous = file_best[index]
                file_best[index] = (
                    times
                    if previous is None
                    else [min(a, b) for a, b in zip(previous, times, strict=True)]
                )
            if round_ == 0:
                rss[index] = peak_rss_bytes()
    for index, times in enumerate(file_best):
        stats[index]["file_seconds"] = times
    return [
        PhaseResult(name, best[i], files, stats[i].pop("failures"), rss[i], stats[i])
        for i, (name, _) in enumerate(phases)
    ]


def _mib(n: float) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


def print_report(refs: Sequence[ObjectRef], results: Sequence[PhaseResult], repeat: int) -> None:
    header = f"{'phase':<34} {'files/s':>10} {'best s':>9} {'failed':>7} {'peak RSS*':>13}"
    print(f"\n{len(refs)} files, best of {repeat}, pydicom {pydicom.__version__}")
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<34} {r.files_per_second:>10,.1f} {r.best_seconds:>9.3f} "
            f"{r.failures:>7} {_mib(r.peak_rss_bytes):>13}"
        )
    print("* process peak RSS after the phase's first run; cumulative, so phases run in order")
    floor, json_dict, ours = results
    s = ours.stats
    total_bytes = sum(ref.size or 0 for ref in refs)
    read_bytes = sum(s["header_bytes"]) + s["error_bytes"]
    median_header = statistics.median(s["header_bytes"]) if s["header_bytes"] else 0
    lines = [
        ("files", f"{len(refs):,}"),
        ("total file bytes", f"{total_bytes:,} ({_mib(total_bytes)})"),
        ("header bytes read (ours)", f"{read_bytes:,} ({_mib(read_bytes)})"),
        ("bytes read / object bytes", f"{read_bytes / total_bytes:.3f}" if total_bytes else "n/a"),
        ("median header bytes (ok rows)", f"{median_header:,.0f}"),
        ("metadata rows / error rows", f"{s['metadata_rows']:,} / {ours.failures:,}"),
        ("element rows", f"{s['element_rows']:,}"),
        ("element rows/s (ours)", f"{s['element_rows'] / ours.best_seconds:,.0f}"),
        ("ours / dcmread floor", f"{ours.files_per_second / floor.files_per_second:.2f}x"),
        ("ours / to_json_dict", f"{ours.files_per_second / json_dict.files_per_second:.2f}x"),
        (
            "to_json_dict / dcmread floor",
            f"{json_dict.files_per_second / floor.files_per_second:.2f}x",
        ),
    ]
    print()
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label:<{width}}  {value}")
    print(
        f"\nours vs to_json_dict: {ours.files_per_second / json_dict.files_per_second:.2f}x, "
        f"ours vs dcmread floor: {ours.files_per_second / floor.files_per_second:.2f}x"
    )


def folder_of(ref: ObjectRef, roots: Sequence[str]) -> str:
    """The first path component of a file under the benchmark path it was found in."""
    for root in roots:
        root = os.path.abspath(root)
        if os.path.isdir(root) and ref.url.startswith(root + os.sep):
            return os.path.relpath(ref.url, root).split(os.sep)[0]
    return "."


@dataclass
class GroupTimes:
    """One group of files' summed best times per phase (seconds) and element rows."""

    files: int
    elements: int
    dcmread: float
    json_dict: float
    ours: float
    #: to_json_dict / ours over the files both read, and how many they are
    both_ok: float
    both_files: int


def group_times(labels: Sequence[str], results: Sequence[PhaseResult]) -> dict[str, GroupTimes]:
    """Each label's files' summed best times, in order of file count (most first).

    Each phase's time for a group is the sum of its files' best times, so a group's ratio
    compares the same files. ``both_ok`` is the ratio to (b) over the files that both (b) and
    ours read: a file pydicom refuses (a raw data set without ``force``) costs (b) only its
    exception, and ours a whole header, which says nothing of either's speed.
    """
    floor, json_dict, ours = (r.stats["file_seconds"] for r in results)
    elements = results[2].stats["file_elements"]
    json_ok, ours_ok = results[1].stats["file_ok"], results[2].stats["file_ok"]
    groups: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(label, []).append(index)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    times: dict[str, GroupTimes] = {}
    for label, indexes in ordered:
        both = [i for i in indexes if json_ok[i] and ours_ok[i]]
        both_ok = sum(json_dict[i] for i in both) / sum(ours[i] for i in both) if both else 0.0
        times[label] = GroupTimes(
            files=len(indexes),
            elements=sum(elements[i] for i in indexes),
            dcmread=sum(floor[i] for i in indexes),
            json_dict=sum(json_dict[i] for i in indexes),
            ours=sum(ours[i] for i in indexes),
            both_ok=both_ok,
            both_files=len(both),
        )
    return times


def print_groups(
    title: str, labels: Sequence[str], results: Sequence[PhaseResult], min_files: int = 1
) -> None:
    """Per group of files: files/s and elements/s of ours, and ratios to (a) and (b)
    (``group_times``); ``both ok`` is the ratio to (b) over the files both read."""
    head = (
        f"{title:<42} {'files':>6} {'elements':>9} {'ours f/s':>9} {'ours el/s':>10} "
        f"{'json f/s':>9} {'dcmread f/s':>11} {'/json':>6} {'/dcmread':>8} {'/json both ok':>13}"
    )
    print()
    print(head)
    print("-" * len(head))
    for label, g in group_times(labels, results).items():
        if g.files < min_files:
            continue
        print(
            f"{label[:42]:<42} {g.files:>6} {g.elements:>9,} {g.files / g.ours:>9,.1f} "
            f"{g.elements / g.ours:>10,.0f} {g.files / g.json_dict:>9,.1f} "
            f"{g.files / g.dcmread:>11,.1f} {g.json_dict / g.ours:>5.2f}x "
            f"{g.dcmread / g.ours:>7.2f}x {g.both_ok:>7.2f}x ({g.both_files})"
        )


def emit_folder_times(path: str, labels: Sequence[str], results: Sequence[PhaseResult]) -> None:
    """Write each source folder's summed best times, and the whole run's best pass times,
    as JSON to ``path`` (what ``--processes`` gathers from each process)."""
    overall = {
        "files": results[0].files,
        "dcmread": results[0].best_seconds,
        "json_dict": results[1].best_seconds,
        "ours": results[2].best_seconds,
    }
    folders = {label: asdict(g) for label, g in group_times(labels, results).items()}
    Path(path).write_text(json.dumps({"all": overall, "folders": folders}))


def run_in_processes(argv: Sequence[str], processes: int) -> int:
    """Run the whole measurement in ``processes`` fresh interpreters, one after the other;
    print each folder's ratios to to_json_dict and to dcmread across them.

    Why: the ratios of one process are consistent within it (best times of several passes),
    yet on a shared virtual machine they differed by up to a third from one process to the
    next for the same code and files, in ours' phase and not in the others (memory layout,
    the host's load on caches). A median over processes, with its range, is the figure to
    quote; a single process's is one draw.
    """
    draws: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="benchmark-") as folder:
        for index in range(processes):
            out = os.path.join(folder, f"{index}.json")
            # the last --processes given wins: each child runs the measurement once
            command = [
                sys.executable, __file__, *argv, "--processes", "1", "--emit-folder-times", out
            ]  # fmt: skip
            finished = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
            if finished.returncode != 0 or not os.path.exists(out):
                print(f"process {index + 1} of {processes} failed (exit {finished.returncode})")
                return 1
            draws.append(json.loads(Path(out).read_text()))
            print(f"process {index + 1} of {processes} done", flush=True)
    groups = {"(all, best passes)": [draw["all"] for draw in draws]}
    for label in draws[0]["folders"]:
        groups[label] = [draw["folders"][label] for draw in draws if label in draw["folders"]]
    head = (
        f"{'source folder':<42} {'files':>6} {'/json median':>12} {'lowest':>7} {'highest':>8} "
        f"{'/dcmread median':>15}"
    )
    print(f"\nratios of ours across {processes} processes (each a fresh interpreter)")
    print(head)
    print("-" * len(head))
    for label, times in groups.items():
        to_json = [t["json_dict"] / t["ours"] for t in times]
        to_dcmread = statistics.median(t["dcmread"] / t["ours"] for t in times)
        print(
            f"{label[:42]:<42} {times[0]['files']:>6} {statistics.median(to_json):>11.2f}x "
            f"{min(to_json):>6.2f}x {max(to_json):>7.2f}x {to_dcmread:>14.2f}x"
        )
    return 0


def header_size(path: str) -> int:
    """Bytes before Pixel Data (the header), or the file size when there is none."""
    with open(path, "rb") as handle:
        try:
            read_partial(handle, stop_when=_at_pixel_data, force=True)
            return min(handle.tell(), os.fstat(handle.fileno()).st_size)
        except Exception:
            return os.fstat(handle.fileno()).st_size


def measure_ranged(
    refs: Sequence[ObjectRef], run: RunInfo, first_block: int, headers: Sequence[int]
) -> dict[str, Any]:
    """Read every file as a bucket object would be read (ranged, counted): bytes and requests.

    The "bucket" is local: ``ranged.FileRangeSource`` serves each range from the file and
    the reader counts it as one request, exactly as it counts requests to GCS or S3.
    """
    options = StorageOptions(first_block=first_block)
    fetched: list[int] = []
    requests: list[int] = []
    single_expected = single_ok = over_bound = whole = 0
    for ref, header in zip(refs, headers, strict=True):
        try:
            opened: OpenedObject | IngestError = open_file_ranged(ref, options)
        except IngestError as error:
            opened = error
        extracted = extract_object(ref, run, storage=options, opened=opened)
        row = extracted.metadata or extracted.error or {}
        count = row.get("header_bytes_read", row.get("bytes_read")) or 0
        fetched.append(count)
        requests.append(extracted.requests)
        read_whole = isinstance(opened, OpenedObject) and opened.ranged.read_whole
        whole += read_whole
        if not read_whole and count > max(first_block, 2 * header):
            over_bound += 1
        # the parser reads Pixel Data's tag (12 bytes) to know it must stop
        if min(ref.size or 0, header + 12) <= first_block and extracted.metadata is not None:
            single_expected += 1
            single_ok += extracted.requests == 1
    return {
        "first_block": first_block,
        "bytes": sum(fetched),
        "requests": sum(requests),
        "max_requests": max(requests, default=0),
        "single_expected": single_expected,
        "single_ok": single_ok,
        "over_bound": over_bound,
        "whole": whole,
    }


def print_ranged(refs: Sequence[ObjectRef], headers: Sequence[int], results: list[dict]) -> None:
    total = sum(ref.size or 0 for ref in refs)
    header_total = sum(headers)
    print(
        f"\nranged reads from a local 'bucket' of {len(refs)} objects, {_mib(total)}; "
        f"headers (bytes before Pixel Data) {_mib(header_total)} = {header_total / total:.3f}"
        " of the object bytes"
    )
    head = (
        f"{'first block':>11} {'bytes read':>12} {'/objects':>9} {'/headers':>9} "
        f"{'req/object':>10} {'max req':>7} {'1-request fits':>15} {'> bound':>7} {'whole':>5}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r['first_block']:>11,} {r['bytes']:>12,} {r['bytes'] / total:>9.3f} "
            f"{r['bytes'] / header_total:>9.3f} {r['requests'] / len(refs):>10.2f} "
            f"{r['max_requests']:>7} {r['single_ok']:>7}/{r['single_expected']:<7} "
            f"{r['over_bound']:>7} {r['whole']:>5}"
        )
    print(
        "1-request fits: objects whose header fits in the first block read with one request; "
        "> bound: objects that read more than max(first block, 2 x header); whole: deflated "
        "objects read whole"
    )


def profile_ours(
    refs: Sequence[ObjectRef],
    run: RunInfo,
    batch_size: int,
    extract_options: dict[str, Any],
    top: int = 25,
) -> None:
    """cProfile one pass of phase (c); print the top functions by cumulative time."""
    profiler = cProfile.Profile()
    profiler.enable()
    phase_ours(refs, run, batch_size, extract_options)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(top)
    print(f"\ncProfile of phase (c), top {top} by cumulative time:")
    print(out.getvalue())
    out.seek(0)
    out.truncate()
    stats.sort_stats("tottime").print_stats(r"dicomwarehouse[/\\]", top)
    print(f"cProfile of phase (c), dicomwarehouse functions, top {top} by own time:")
    print(out.getvalue())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", metavar="PATH", help="files or directories")
    parser.add_argument("--limit", type=int, default=None, help="use at most N files")
    parser.add_argument("--repeat", type=int, default=3, help="runs per phase (best kept)")
    parser.add_argument("--batch-size", type=int, default=256, help="files per metadata table")
    parser.add_argument("--profile", action="store_true", help="cProfile phase (c)")
    parser.add_argument("--folder", default=None, help="time only the files of this source folder")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="(c) through pydicom's data sets only (extract_object(walker=False))",
    )
    parser.add_argument(
        "--large-headers",
        default=None,
        metavar="N,...",
        help="instead: time synthetic enhanced MR, slide microscopy and segmentation headers "
        "of N frames",
    )
    parser.add_argument(
        "--large-shapes",
        default="mr,sm",
        help="which large headers (comma-separated): mr, sm, seg (highdicom, slow to build)",
    )
    parser.add_argument(
        "--first-blocks",
        default=str(DEFAULT_FIRST_BLOCK),
        metavar="BYTES,...",
        help="first-block sizes to measure ranged reads with (comma-separated)",
    )
    parser.add_argument(
        "--ranged-only", action="store_true", help="measure ranged reads only, no timings"
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        metavar="N",
        help="run the measurement in N fresh processes and print each folder's median ratios "
        "and their range (one process's ratios are one draw)",
    )
    parser.add_argument(
        "--emit-folder-times",
        default=None,
        metavar="FILE",
        help="also write each source folder's summed best times as JSON to FILE",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.batch_size < 1:
        parser.error("--repeat and --batch-size must be at least 1")
    if args.processes < 1:
        parser.error("--processes must be at least 1")
    if args.processes > 1:
        if args.large_headers or args.ranged_only or args.profile or args.emit_folder_times:
            parser.error(
                "--processes times the folders only: no --large-headers, "
                "--ranged-only, --profile or --emit-folder-times with it"
            )
        return run_in_processes(sys.argv[1:] if argv is None else argv, args.processes)

    if args.large_headers:
        from large_headers import run_large_headers

        counts = [int(n) for n in args.large_headers.split(",")]
        shapes = args.large_shapes.split(",")
        run_large_headers(args.paths or default_paths(), counts, args.repeat, shapes)
        return 0
    paths = args.paths or default_paths()
    refs = collect_files(paths, args.limit)
    if args.folder:
        refs = [ref for ref in refs if folder_of(ref, paths) == args.folder]
    if not refs:
        parser.error(f"no files under {' '.join(paths)}")
    print(f"paths: {' '.join(paths)}")
    warm_cache(refs)
    run = new_run()

    try:
        first_blocks = [int(size) for size in args.first_blocks.split(",")]
    except ValueError:
        parser.error("--first-blocks takes sizes in bytes, comma-separated")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns per odd file; same for every phase
        headers = [header_size(ref.url) for ref in refs]
        ranged = [measure_ranged(refs, run, size, headers) for size in first_blocks]
        print_ranged(refs, headers, ranged)
        if args.ranged_only:
            return 0
        options = {"walker": False} if args.reference else {}
        phases: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("(a) dcmread stop_before_pixels", lambda: phase_dcmread(refs)),
            ("(b) dcmread + to_json_dict", lambda: phase_to_json_dict(refs)),
            (
                "(c) ours: extract_object + Arrow",
                lambda: phase_ours(refs, run, args.batch_size, options),
            ),
        ]
        few = refs[:WARM_UP_FILES]
        warm_up: list[tuple[str, Callable[[], dict[str, Any]]]] = [
            ("a", lambda: phase_dcmread(few)),
            ("b", lambda: phase_to_json_dict(few)),
            ("c", lambda: phase_ours(few, run, args.batch_size, options)),
        ]
        results = time_phases(phases, warm_up, len(refs), args.repeat)
        print_report(refs, results, args.repeat)
        kinds = results[2].stats["kinds"]
        folders = [folder_of(ref, paths) for ref in refs]
        print_groups("source folder", folders, results)
        if args.emit_folder_times:
            emit_folder_times(args.emit_folder_times, folders, results)
        print_groups("modality", [modality for modality, _ in kinds], results)
        print_groups("SOP class (3 files or more)", [sop for _, sop in kinds], results, 3)
        if args.profile:
            profile_ours(refs, run, args.batch_size, options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
