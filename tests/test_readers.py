"""Readers of a warehouse never see a writer: ``sql`` and ``connect`` work while an ingest
rebuilds the DuckDB file, and on a warehouse that cannot be written."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runs import run_cli
from dicom_samples import base_dataset, dicom_bytes

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.testpoints import PAUSE_ENV
from dicomwarehouse.warehouse.commit import remove_uncommitted
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import DUCKDB_FILE
from dicomwarehouse.warehouse.lock import exclusive_writer

COUNT_QUERY = (
    "SELECT (SELECT count(*) FROM dicom_metadata) AS instances, "
    "(SELECT count(*) FROM ingest_runs) AS runs"
)


def write_files(folder: Path, count: int, start: int = 0) -> None:
    folder.mkdir(exist_ok=True)
    for index in range(start, start + count):
        ds = base_dataset(SeriesDescription=f"series {index}")
        (folder / f"{index}.dcm").write_bytes(dicom_bytes(ds))


def wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 180) -> None:
    """Wait until ``path`` exists; fail at once if ``process`` ends first."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before pausing: "
                        f"{process.stderr.read() if process.stderr else ''}")  # fmt: skip
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the run did not reach its pause point in {timeout} s")
        time.sleep(0.05)


def sql_counts(warehouse: Path, *prefix: str) -> tuple[int, int]:
    """``dicomwarehouse sql`` as a separate process: (instances, committed runs)."""
    args = ("sql", COUNT_QUERY, "--warehouse", str(warehouse), "--format", "csv")
    if prefix:  # under a wrapper such as setpriv
        result = subprocess.run(
            [*prefix, sys.executable, "-m", "dicomwarehouse", *args],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    else:
        result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    instances, runs = result.stdout.splitlines()[1].split(",")
    return int(instances), int(runs)


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_sql_answers_while_an_ingest_is_rebuilding_the_warehouse(tmp_path: Path) -> None:
    source, warehouse = tmp_path / "in", tmp_path / "w"
    write_files(source, 3)
    ingest([str(source)], warehouse)
    held = connect(warehouse)  # a reader that stays open across the next ingest
    write_files(source, 2, start=3)
    ready = tmp_path / "ready"
    writer = subprocess.Popen(
        [sys.executable, "-m", "dicomwarehouse", "ingest", str(source), "--warehouse",
         str(warehouse)],
        env={**os.environ, PAUSE_ENV: f"build_duckdb:{ready}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_for(ready, writer)
        # the writer has committed its run and holds a read-write DuckDB connection open on
        # the file it is building; it also holds the warehouse's writer lock
        assert list(warehouse.glob(f".{DUCKDB_FILE}.*.tmp"))
        assert sql_counts(warehouse) == (5, 2)  # the committed run, in a memory-built view
        assert writer.poll() is None  # the query did not wait for the writer
        mid_build = connect(warehouse)
        assert mid_build.sql("SELECT count(*) FROM dicom_metadata").fetchall() == [(5,)]
        mid_build.close()
    finally:
        ready.unlink(missing_ok=True)
        _, stderr = writer.communicate(timeout=300)
    assert writer.returncode == 0, stderr
    assert not list(warehouse.glob(f".{DUCKDB_FILE}.*"))  # the build replaced the file
    assert sql_counts(warehouse) == (5, 2)
    # the reader opened before the ingest still reads the file it opened, whole
    assert held.sql("SELECT count(*) FROM dicom_metadata").fetchall() == [(3,)]
    # and a connection opened in the same process while it is open sees the new run
    # (DuckDB would hand out the database it holds open under that path)
    fresh = connect(warehouse)
    assert fresh.sql(COUNT_QUERY).fetchall() == [(5, 2)]
    fresh.close()
    held.close()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder``: (size, modification time)."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
    }


@pytest.fixture
def read_only_runner() -> Iterator[tuple[str, ...]]:
    """A command prefix under which permission bits bind: as root, drop CAP_DAC_OVERRIDE
    (root keeps reading its own files but may write only where the mode lets it)."""
    if os.geteuid() != 0:
        yield ()
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: read-only folders cannot be simulated")
    yield ("setpriv", "--bounding-set=-dac_override")


def make_read_only(folder: Path, writable: bool = False) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        write = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        path.chmod((mode | stat.S_IWUSR) if writable else (mode & ~write))


def test_read_only_warehouse_is_queried_without_writing(
    tmp_path: Path, read_only_runner: tuple[str, ...]
) -> None:
    source, warehouse = tmp_path / "in", tmp_path / "w"
    write_files(source, 2)
    ingest([str(source)], warehouse)
    make_read_only(warehouse)
    try:
        # the simulation holds: the runner cannot write in the warehouse
        probe = subprocess.run(
            [*read_only_runner, "touch", str(warehouse / "probe")], capture_output=True
        )
        assert probe.returncode != 0
        before = snapshot(warehouse)
        assert sql_counts(warehouse, *read_only_runner) == (2, 1)  # the file, read-only
        assert snapshot(warehouse) == before
        make_read_only(warehouse, writable=True)
        (warehouse / DUCKDB_FILE).unlink()  # as a warehouse copied without its file
        make_read_only(warehouse)
        before = snapshot(warehouse)
        assert sql_counts(warehouse, *read_only_runner) == (2, 1)  # built in memory
        assert snapshot(warehouse) == before
    finally:
        make_read_only(warehouse, writable=True)  # let pytest clean up


def test_the_next_writer_removes_builds_cut_short(tmp_path: Path) -> None:
    source, warehouse = tmp_path / "in", tmp_path / "w"
    write_files(source, 1)
    ingest([str(source)], warehouse)
    # what a build killed before its os.replace leaves: its file, write-ahead log and the
    # folder DuckDB spilled to
    leftovers = [warehouse / f".{DUCKDB_FILE}.dead.tmp", warehouse / f".{DUCKDB_FILE}.dead.tmp.wal"]
    for leftover in leftovers:
        leftover.write_bytes(b"half a database")
    spill = warehouse / f".{DUCKDB_FILE}.dead.tmp.spill"
    spill.mkdir()
    (spill / "duckdb_temp_storage-0.tmp").write_bytes(b"spilled rows")
    leftovers.append(spill)
    with exclusive_writer(warehouse):
        remove_uncommitted(warehouse)
    assert not any(leftover.exists() for leftover in leftovers)
    assert sql_counts(warehouse) == (1, 1)  # the warehouse's own file is untouched
