"""Ctrl-C during ``dicomwarehouse ingest``: one line on stderr, exit status 130, no process
left behind, and nothing that stops the next run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dicom_samples import base_dataset, dicom_bytes

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.testpoints import PAUSE_ENV
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import committed_runs


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize(
    ("beam_args", "to_group"),
    [
        # the default runner; SIGINT to the command alone, as `kill -INT` sends it
        ((), False),
        # worker processes; SIGINT to the whole process group, as a terminal's Ctrl-C sends it
        (("--", "--direct_num_workers=2", "--direct_running_mode=multi_processing"), True),
    ],
    ids=["default-runner", "multi-processing"],
)
def test_interrupted_ingest_prints_one_line_and_exits_130(
    tmp_path: Path, beam_args: tuple[str, ...], to_group: bool
) -> None:
    source, warehouse, ready = tmp_path / "in", tmp_path / "w", tmp_path / "ready"
    source.mkdir()
    for index in range(4):
        (source / f"{index}.dcm").write_bytes(dicom_bytes(base_dataset()))
    command = subprocess.Popen(
        [sys.executable, "-m", "dicomwarehouse", "ingest", str(source), "--warehouse",
         str(warehouse), *beam_args],
        env={**os.environ, PAUSE_ENV: f"extract:{ready}"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a shell's foreground job
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ready.exists():  # a worker holds the pipeline at its first object
            assert command.poll() is None, command.communicate()
            assert time.monotonic() < deadline, "the ingest never reached its extract step"
            time.sleep(0.05)
        if to_group:
            os.killpg(command.pid, signal.SIGINT)
        else:
            command.send_signal(signal.SIGINT)
        stdout, stderr = command.communicate(timeout=120)
    finally:
        if command.poll() is None:
            os.killpg(command.pid, signal.SIGKILL)
            command.wait()
    assert command.returncode == 130, stderr
    assert stderr.splitlines() == ["dicomwarehouse: interrupted"]
    assert stdout == ""
    time.sleep(0.2)  # the kernel reaps SIGKILLed workers
    assert not group_alive(command.pid), "a worker process outlived the command"
    assert committed_runs(warehouse) == []

    # the lock is free and the interrupted run's files do not get in the way
    summary = ingest([str(source)], warehouse)
    assert summary.instances == 4
    run_folders = {path.name for path in warehouse.glob("*/run-*")}
    assert run_folders == {f"run-{summary.run_id}"}
    con = connect(warehouse)
    assert con.sql("SELECT count(*) FROM dicom_metadata").fetchall() == [(4,)]
    con.close()
