"""Scale benchmark: ingest 10^5..10^6 synthetic header-only objects and time each phase.

Why this exists: the shared corpus has 891 files, and what breaks at archive scale (memory that
grows with the run, a launcher that lists and plans on one machine, clean-up that lists every
object ever written) does not show below 10^5 objects. Copies of the corpus would repeat its
UIDs; these objects are made from its real headers with new UIDs instead, so every object is a
distinct instance in a patient / study / series tree of realistic proportions (per patient 1-3
studies, per study 3-10 series, per series 50-300 instances, one template per series).

Generation is fast because nothing is parsed per object: a few hundred templates are read once
(pixel data dropped), their Study, Series and SOP Instance UIDs and Patient ID set to
fixed-length placeholders, and each object is its template's bytes with the placeholders
replaced by same-length values (no element length changes).

The measurement drives the command line only (``dicomwarehouse ingest``, ``publish bigquery
--dry-run``), so it runs unchanged whatever the pipeline does inside. Phase boundaries come from
the ``-v`` log lines as they arrive (a phase whose line a version does not print is reported as
n/a, and folded into the next). Peak RSS is sampled (psutil, every 0.2 s) for the launcher
process and for its child processes (DirectRunner workers in multi_processing mode). The
DirectRunner runs the pipeline inside the launcher's process, so that peak includes the data
the pipeline holds; the launcher's own part, what stays on the submitting machine on Dataflow,
is its peak RSS at the moment it hands the pipeline to the runner (``launch`` below wraps the
command line's ``main`` and prints that high-water mark when ``Pipeline.run`` is called).

Usage::

    python benchmarks/scale.py generate DIR --count 100000
    python benchmarks/scale.py generate gs://bucket/prefix --count 10000   (STORAGE_EMULATOR_HOST)
    python benchmarks/scale.py measure DIR_OR_GS WAREHOUSE [--workers 1] [--json OUT]
    python benchmarks/scale.py rerun DIR_OR_GS WAREHOUSE [--workers 1]   (the re-run alone)
    python benchmarks/scale.py list-plan DIR WAREHOUSE    (time to the first object read, then stop)
    python benchmarks/scale.py launch ARGS...   (``dicomwarehouse ARGS``, marking the submit)
    python benchmarks/scale.py emulator --port 9023 --bucket bench-src   (for gs:// above)

``emulator`` serves gcp-storage-emulator in memory, as the tests use it, except that it does not
rewrite its metadata file on every write: that file (the JSON of every object so far) is read
only when the emulator starts, and rewriting it made staging quadratic (12 objects/s at 2,000
objects, slower with every object). What it serves, and how (one request at a time), is the
emulator's own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import pydicom

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "corpus"
if not SHARED_CORPUS.is_dir():
    SHARED_CORPUS = Path("/work/shared/corpus")

#: fixed-length placeholders: the generated values have exactly their length
_STUDY = b"2.25.1" + b"8" * 30
_SERIES = b"2.25.2" + b"8" * 30
_INSTANCE = b"2.25.3" + b"8" * 30
_PATIENT = b"SYNPAT" + b"8" * 10
#: templates larger than this (enhanced multi-frame headers of several MB) are left out, so a
#: million objects fit on a disk; the corpus' typical header is a few KiB
MAX_TEMPLATE_BYTES = 64 * 1024
#: proportions of the tree: per patient studies, per study series, per series instances
STUDIES = (1, 3)
SERIES = (3, 10)
INSTANCES = (50, 300)


# --- generation ---------------------------------------------------------------------------------


def load_templates(corpus: Path, limit: int, seed: int) -> list[bytes]:
    """Header-only bytes of up to ``limit`` corpus files, their identifiers set to placeholders."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    random.Random(seed).shuffle(files)
    templates: list[bytes] = []
    for path in files:
        if len(templates) >= limit:
            break
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(path, stop_before_pixels=True)
                if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
                    continue
                ds.StudyInstanceUID = _STUDY.decode()
                ds.SeriesInstanceUID = _SERIES.decode()
                ds.SOPInstanceUID = _INSTANCE.decode()
                ds.PatientID = _PATIENT.decode()
                if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
                    continue
                meta = getattr(ds, "file_meta", None)
                if meta is not None:
                    meta.MediaStorageSOPInstanceUID = _INSTANCE.decode()
                buffer = _write(ds)
        except Exception:  # a template is only a candidate: skip what pydicom cannot write
            continue
        if len(buffer) <= MAX_TEMPLATE_BYTES and all(
            buffer.count(marker) >= 1 for marker in (_STUDY, _SERIES, _INSTANCE)
        ):
            templates.append(buffer)
    if not templates:
        raise SystemExit(f"no usable template under {corpus}")
    return templates


def _write(ds: pydicom.Dataset) -> bytes:
    import io

    out = io.BytesIO()
    try:
        ds.save_as(out, enforce_file_format=True)
    except TypeError:  # pydicom < 3
        ds.save_as(out, write_like_original=False)
    return out.getvalue()


@dataclass
class Tree:
    patients: int = 0
    studies: int = 0
    series: int = 0
    instances: int = 0


def objects(
    templates: Sequence[bytes], count: int, seed: int, tree: Tree
) -> Iterator[tuple[str, bytes]]:
    """(relative path, bytes) of ``count`` objects in a patient/study/series tree."""
    rng = random.Random(seed)
    while tree.instances < count:
        tree.patients += 1
        patient = b"SYNPAT%010d" % tree.patients
        for _ in range(rng.randint(*STUDIES)):
            tree.studies += 1
            study = b"2.25.1%030d" % tree.studies
            for _ in range(rng.randint(*SERIES)):
                tree.series += 1
                series = b"2.25.2%030d" % tree.series
                template = templates[rng.randrange(len(templates))]
                base = (
                    template.replace(_PATIENT, patient)
                    .replace(_STUDY, study)
                    .replace(_SERIES, series)
                )
                folder = f"p{tree.patients:06d}/st{tree.studies:07d}/se{tree.series:08d}"
                for _ in range(rng.randint(*INSTANCES)):
                    if tree.instances >= count:
                        return
                    tree.instances += 1
                    data = base.replace(_INSTANCE, b"2.25.3%030d" % tree.instances)
                    yield f"{folder}/{tree.instances:08d}.dcm", data


def generate(target: str, count: int, templates: int, seed: int) -> dict:
    started = time.monotonic()
    chosen = load_templates(SHARED_CORPUS, templates, seed)
    tree = Tree()
    total_bytes = 0
    if target.startswith("gs://"):
        from dicomwarehouse.io.objectstore import store_for

        store = store_for(target)
        prefix = target.rstrip("/")

        def put(item: tuple[str, bytes]) -> int:
            store.write_bytes(f"{prefix}/{item[0]}", item[1])
            return len(item[1])

        with ThreadPoolExecutor(16) as pool:
            total_bytes = sum(pool.map(put, objects(chosen, count, seed, tree)))
    else:
        root = Path(target)
        made: set[str] = set()
        for relative, data in objects(chosen, count, seed, tree):
            folder = relative.rsplit("/", 1)[0]
            if folder not in made:
                (root / folder).mkdir(parents=True, exist_ok=True)
                made.add(folder)
            (root / relative).write_bytes(data)
            total_bytes += len(data)
    report = {
        "target": target,
        "templates": len(chosen),
        **asdict(tree),
        "bytes": total_bytes,
        "seconds": round(time.monotonic() - started, 1),
    }
    print(json.dumps(report))
    return report


# --- measurement --------------------------------------------------------------------------------

#: -v log lines that end a phase, in order (first match wins; absent ones give n/a). Listing
#: and planning are the pipeline's first steps, on its workers: one phase, ended by the line
#: the planning logs once every object is planned (``planning.report_plan``); it includes
#: the pipeline's start.
PHASE_MARKERS = (
    ("list+plan", re.compile(r"objects listed, \d+ to read")),
    ("extract+write", re.compile(r"committing run")),
    ("commit", re.compile(r"committed run")),
    ("duckdb build", re.compile(r"built warehouse\.duckdb|^ingested ")),
)


#: printed by ``launch`` when the launcher hands the pipeline to the runner, with its peak RSS
SUBMIT_MARK = "launcher hands the pipeline to the runner; launcher peak so far"
_SUBMIT_LINE = re.compile(re.escape(SUBMIT_MARK) + r" ([0-9.]+) MiB")
#: the summary line's count of objects read (``IngestSummary.describe``)
_OBJECTS_READ = re.compile(r": (\d+) objects read: ")


@dataclass
class Sampled:
    """Peak RSS of a process and of its descendants, sampled while it runs."""

    launcher_peak: int = 0
    workers_peak: int = 0  # the largest single descendant
    workers_sum_peak: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def watch(self, pid: int) -> None:
        try:
            process = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return
        while not self.stop.is_set():
            try:
                self.launcher_peak = max(self.launcher_peak, process.memory_info().rss)
                children = [c.memory_info().rss for c in process.children(recursive=True)]
            except psutil.Error:
                children = []
            if children:
                self.workers_peak = max(self.workers_peak, max(children))
                self.workers_sum_peak = max(self.workers_sum_peak, sum(children))
            self.stop.wait(0.2)


@dataclass
class Run:
    command: list[str]
    seconds: float
    returncode: int
    launcher_peak_mib: float
    workers_peak_mib: float
    workers_sum_peak_mib: float
    phases: dict[str, float | None]
    last_line: str
    #: user + system CPU seconds of the command and its child processes (what a cloud bills)
    cpu_seconds: float = 0.0
    #: the machine's 1-minute load average at the end (wall times stretch when it exceeds
    #: the cores; CPU seconds do not)
    load_average: float = 0.0
    #: the launcher's peak RSS when it handed the pipeline to the runner (``launch``)
    launcher_at_submit_mib: float | None = None
    #: objects the run read, from its summary line (None: no summary line)
    objects_read: int | None = None


def run_command(
    command: list[str], env: dict[str, str] | None = None, stop_when: str | None = None
) -> Run:
    """Run one command, timing -v log lines as they arrive; ``stop_when``: a file whose
    appearance ends the run (a pause point reached), killing the process."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    sampled = Sampled()
    watcher = threading.Thread(target=sampled.watch, args=(process.pid,), daemon=True)
    watcher.start()
    marks: dict[str, float] = {}
    last = ""
    at_submit: float | None = None

    def read_lines() -> None:
        nonlocal last, at_submit
        assert process.stdout is not None
        for line in process.stdout:
            now = time.monotonic() - started
            last = line.strip() or last
            submit = _SUBMIT_LINE.search(line)
            if submit and at_submit is None:
                at_submit = float(submit.group(1))
            for name, pattern in PHASE_MARKERS:
                if name not in marks and pattern.search(line):
                    marks[name] = now

    reader = threading.Thread(target=read_lines, daemon=True)
    reader.start()
    if stop_when:
        while process.poll() is None and not Path(stop_when).exists():
            time.sleep(0.05)
        marks["to first read"] = time.monotonic() - started
        time.sleep(0.5)  # one more RSS sample at the pause
        os.killpg(process.pid, 9)
    process.wait()
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    reader.join(5)
    sampled.stop.set()
    watcher.join()
    phases: dict[str, float | None] = {}
    previous = 0.0
    for name, _ in PHASE_MARKERS:
        if name in marks:
            phases[name] = round(marks[name] - previous, 2)
            previous = marks[name]
        else:
            phases[name] = None
    if "to first read" in marks:
        phases["to first read"] = round(marks["to first read"], 2)
    return Run(
        command, round(seconds, 2), process.returncode,
        round(sampled.launcher_peak / 2**20, 1), round(sampled.workers_peak / 2**20, 1),
        round(sampled.workers_sum_peak / 2**20, 1), phases, last, round(cpu, 1),
        round(os.getloadavg()[0], 1), at_submit,
        int(read.group(1)) if (read := _OBJECTS_READ.search(last)) else None,
    )  # fmt: skip


def cli(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "launch", "-v", *args]


def launch(argv: Sequence[str]) -> int:
    """``dicomwarehouse ARGV``, printing the launcher's peak RSS when it hands the pipeline to
    the runner (the first ``Pipeline.run``: Beam calls it again on a copy of the pipeline)."""
    import apache_beam as beam

    from dicomwarehouse.cli import main as cli_main

    original = beam.Pipeline.run

    def marked(self: beam.Pipeline, *args: object, **kwargs: object) -> object:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        print(f"{SUBMIT_MARK} {peak_kib / 1024:.1f} MiB", flush=True)
        return original(self, *args, **kwargs)

    beam.Pipeline.run = marked  # type: ignore[method-assign]
    return cli_main(list(argv))


def beam_flags(workers: int) -> list[str]:
    if workers <= 1:
        return []
    return ["--", f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]


def count_objects(source: str) -> int:
    if source.startswith("gs://"):
        from dicomwarehouse.io.objectstore import store_for

        return len(store_for(source).list(source.rstrip("/") + "/"))
    return sum(len(files) for _, _, files in os.walk(source))


def measure(source: str, warehouse: str, workers: int, fresh: bool) -> dict:
    """A first ingest, an incremental re-run with nothing changed, and a publish plan."""
    if fresh and not warehouse.startswith("gs://"):
        shutil.rmtree(warehouse, ignore_errors=True)
    total = count_objects(source)
    results: dict[str, object] = {"objects": total, "workers": workers}
    first = run_command(cli("ingest", source, "--warehouse", warehouse, *beam_flags(workers)))
    results["first ingest"] = asdict(first)
    results["incremental re-run, nothing changed"] = asdict(rerun(source, warehouse, workers))
    plan = run_command(
        cli("publish", "bigquery", "--warehouse", warehouse, "--project", "bench-project",
            "--dataset", "dicom_bench",
            "--dry-run", *(["--staging", "gs://staging/x"] if not warehouse.startswith("gs://")
                           else []))
    )  # fmt: skip
    results["publish plan"] = asdict(plan)
    print_table(results)
    return results


def rerun(source: str, warehouse: str, workers: int) -> Run:
    """An incremental re-run with a complete listing (nothing changed: nothing is read)."""
    return run_command(
        cli("ingest", source, "--warehouse", warehouse, "--incremental", "--full-listing",
            *beam_flags(workers))
    )  # fmt: skip


def list_and_plan(source: str, warehouse: str) -> dict:
    """Time an ingest up to its first object read (pause point ``extract``), then stop it."""
    ready = Path(tempfile.mkdtemp()) / "ready"
    env = {**os.environ, "DICOMWAREHOUSE_PAUSE_AT": f"extract:{ready}"}
    run = run_command(cli("ingest", source, "--warehouse", warehouse), env=env,
                      stop_when=str(ready))  # fmt: skip
    result = {"objects": count_objects(source), "list and plan": asdict(run)}
    print(json.dumps(result, indent=1))
    return result


def _rate(objects: int, seconds: float | None) -> str:
    return f"{objects / seconds:,.0f}" if seconds else "n/a"


def print_table(results: dict) -> None:
    total = results["objects"]
    print(f"\n{total:,} objects, {results['workers']} worker(s)\n")
    print(
        "| step | phase | wall s | objects/s | launcher peak MiB | launcher at submit MiB "
        "| workers peak MiB | CPU s | CPU ms/object | load | objects read |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for step in ("first ingest", "incremental re-run, nothing changed", "publish plan"):
        run = results[step]
        cpu = run.get("cpu_seconds", 0.0)
        at_submit = run.get("launcher_at_submit_mib")
        print(
            f"| {step} | total | {run['seconds']} | {_rate(total, run['seconds'])} | "
            f"{run['launcher_peak_mib']} | {'n/a' if at_submit is None else at_submit} | "
            f"{run['workers_peak_mib']} | {cpu} | "
            f"{1000 * cpu / total:.2f} | {run.get('load_average', '')} | "
            f"{'' if run.get('objects_read') is None else run['objects_read']} |"
        )
        if step == "publish plan":
            continue
        for phase, seconds in run["phases"].items():
            shown = "n/a" if seconds is None else seconds
            print(f"| | {phase} | {shown} | {_rate(total, seconds)} | | | | | | | |")


def serve_emulator(host: str, port: int, bucket: str | None) -> None:
    """gcp-storage-emulator in memory, its metadata file left unwritten (see the docstring)."""
    from gcp_storage_emulator.server import create_server
    from gcp_storage_emulator.storage import Storage

    Storage._write_config_to_file = lambda self: None  # type: ignore[method-assign]
    server = create_server(host, port, in_memory=True, default_bucket=bucket)
    print(f"STORAGE_EMULATOR_HOST=http://{host}:{port}", flush=True)
    server.run()


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["launch"]:  # before argparse: the command line's own flags pass through
        return launch(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("generate", help="write synthetic header-only objects")
    make.add_argument("target", help="a folder, or a gs:// prefix (STORAGE_EMULATOR_HOST)")
    make.add_argument("--count", type=int, required=True)
    make.add_argument("--templates", type=int, default=300)
    make.add_argument("--seed", type=int, default=1)
    run = commands.add_parser("measure", help="ingest, re-run incrementally, plan a publish")
    run.add_argument("source")
    run.add_argument("warehouse")
    run.add_argument("--workers", type=int, default=1, help="DirectRunner workers")
    run.add_argument("--keep", action="store_true", help="do not empty a local warehouse first")
    run.add_argument("--json", type=Path, help="also write the results here")
    again = commands.add_parser("rerun", help="only the incremental re-run, on a warehouse")
    again.add_argument("source")
    again.add_argument("warehouse")
    again.add_argument("--workers", type=int, default=1, help="DirectRunner workers")
    again.add_argument("--json", type=Path)
    lp = commands.add_parser("list-plan", help="time to the first object read, then stop")
    lp.add_argument("source")
    lp.add_argument("warehouse")
    lp.add_argument("--json", type=Path)
    emulator = commands.add_parser("emulator", help="serve gcp-storage-emulator for gs://")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=9023)
    emulator.add_argument("--bucket", help="a bucket to create at the start")
    args = parser.parse_args(argv)
    if args.command == "emulator":
        serve_emulator(args.host, args.port, args.bucket)
        return 0
    if args.command == "generate":
        generate(args.target, args.count, args.templates, args.seed)
        return 0
    if args.command == "measure":
        result = measure(args.source, args.warehouse, args.workers, not args.keep)
    elif args.command == "rerun":
        result = {"objects": count_objects(args.source), "workers": args.workers}
        result["incremental re-run, nothing changed"] = asdict(
            rerun(args.source, args.warehouse, args.workers)
        )
        print(json.dumps(result, indent=1))
    else:
        result = list_and_plan(args.source, args.warehouse)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
