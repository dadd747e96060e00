"""Fuzz the header reader with mutated real files, for as long as asked; or run the acceptance.

    python benchmarks/fuzz.py --seconds 600 --seed 1 --corpus ../shared/corpus
    python benchmarks/fuzz.py --acceptance /tmp/acceptance --corpus ../shared/corpus

Fuzzing extracts each mutated file (``extract.extract_object``) and checks the properties of
``tests/dicom_mutations.fuzz_extract``; every input that breaks one is printed as a recipe
(``mutation:seed:source:donor``) to add to ``tests/test_fuzz.py``'s REGRESSIONS.

The acceptance writes ``--count`` mutated files with canary values (plus a FIFO, 64 MiB of
zeros after a DICM preamble, an empty file, a symbolic link loop and files with stray item
tags) into DIR/in, ingests them with the real command into DIR/warehouse, and checks that it
exits 0, that every file is in exactly one of dicom_metadata and ingest_errors, and that no
canary is in an error row, the run record or the output. For scale it then ingests as many
unmutated seed files (``--no-baseline`` skips this). Exit status 1 when a property broke.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from dicom_mutations import (  # noqa: E402 - the tests folder is not a package
    check_ingested,
    fuzz_extract,
    load_seed_files,
    write_batch,
)


def _peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _ingest(folder: Path, warehouse: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO),
           os.environ.get("PYTHONPATH")]))}  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "dicomwarehouse", "ingest", str(folder), "--warehouse",
         str(warehouse)],
        capture_output=True, text=True, check=False, env=env,
    )  # fmt: skip
    return result, time.monotonic() - started


def fuzz(args: argparse.Namespace, seeds: dict[str, bytes]) -> int:
    with tempfile.TemporaryDirectory() as folder:
        report = fuzz_extract(
            seeds, folder, seed=args.seed, seconds=args.seconds,
            max_seconds_per_object=args.max_seconds,
        )  # fmt: skip
    print(f"inputs fuzzed: {report.inputs} ({report.errors} became error rows)")
    print(f"slowest object: {report.slowest_seconds:.3f} s  ({report.slowest})")
    for mutation, seconds in sorted(report.slowest_by_mutation.items()):
        print(f"  slowest {mutation:40s} {seconds:.3f} s")
    print(f"peak RSS: {_peak_rss_mb(resource.RUSAGE_SELF):.0f} MB")
    for finding in report.findings:
        print(f"FINDING {finding.recipe}  {finding.problem}")
    return 1 if report.findings else 0


def acceptance(args: argparse.Namespace, seeds: dict[str, bytes]) -> int:
    root = Path(args.acceptance)
    folder, warehouse = root / "in", root / "warehouse"
    for path in (folder, warehouse):
        shutil.rmtree(path, ignore_errors=True)
    folder.mkdir(parents=True)
    made = write_batch(str(folder), seeds, count=args.count, seed=args.seed)
    print(f"acceptance: {len(made)} inputs in {folder}")
    result, elapsed = _ingest(folder, warehouse)
    output = result.stdout + result.stderr
    print(f"exit status {result.returncode} in {elapsed:.1f} s; child peak RSS "
          f"{_peak_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB")  # fmt: skip
    print(result.stdout.strip())
    problems = [] if result.returncode == 0 else [f"exit status {result.returncode}"]
    problems += check_ingested(str(warehouse), str(folder), made, output)
    if args.baseline:
        plain, plain_warehouse = root / "plain", root / "plain_warehouse"
        for path in (plain, plain_warehouse):
            shutil.rmtree(path, ignore_errors=True)
        plain.mkdir()
        names = sorted(seeds)
        for index in range(len(made)):
            name = names[index % len(names)]
            (plain / f"{index:05d}.dcm").write_bytes(seeds[name])
        baseline, plain_elapsed = _ingest(plain, plain_warehouse)
        print(f"baseline: {len(made)} unmutated seed files in {plain_elapsed:.1f} s "
              f"(exit {baseline.returncode}); mutated/baseline = "
              f"{elapsed / plain_elapsed:.2f}")  # fmt: skip
    for problem in problems:
        print(f"PROBLEM {problem}")
    print("acceptance " + ("FAILED" if problems else "passed"))
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--corpus", action="append", default=[], metavar="DIR",
        help="folder of seed files (repeatable; default: pydicom's bundled files)",
    )  # fmt: skip
    parser.add_argument("--max-bytes", type=int, default=1 << 20, help="seed files cut to this")
    parser.add_argument("--max-seconds", type=float, default=10.0, help="per object, at most")
    parser.add_argument("--acceptance", metavar="DIR", help="run the acceptance in DIR instead")
    parser.add_argument("--count", type=int, default=1000, help="mutated files (acceptance)")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = parser.parse_args(argv)
    if not args.corpus:
        from dicomwarehouse.sources.expand import sample_files_dir

        args.corpus = [sample_files_dir()]
    started = time.monotonic()
    seeds = load_seed_files(args.corpus, max_bytes=args.max_bytes)
    print(f"{len(seeds)} seed files (canaries planted) in {time.monotonic() - started:.1f} s")
    return acceptance(args, seeds) if args.acceptance else fuzz(args, seeds)


if __name__ == "__main__":
    sys.exit(main())
