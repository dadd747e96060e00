"""What a user is told: CSV output, the run summary, the publish dry run, the progress line
and Beam's logs."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import re
import shutil
from pathlib import Path

import pydicom
import pytest
from cli_runs import run_main
from ingested import IngestedFolder

import dicomwarehouse
from dicomwarehouse.pipeline import progress
from dicomwarehouse.pipeline.progress import ProgressCounter, ProgressDisplay, report_total


def _read(path: Path) -> pydicom.Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except pydicom.errors.InvalidDicomError:
        return None


# --- sql --format csv -------------------------------------------------------------------------


def test_csv_writes_lists_and_structs_as_json_and_dates_iso(
    pydicom_warehouse: IngestedFolder,
) -> None:
    result = run_main(
        "sql",
        "SELECT source_url, ImageType, PatientName, StudyDate, ingested_at FROM dicom_metadata "
        "WHERE ImageType IS NOT NULL AND StudyDate IS NOT NULL AND PatientName IS NOT NULL "
        "ORDER BY source_url LIMIT 5",
        "--warehouse",
        str(pydicom_warehouse.warehouse),
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert rows
    for row in rows:
        dataset = pydicom.dcmread(row["source_url"], stop_before_pixels=True)
        image_type = dataset.ImageType
        expected = (
            list(image_type)
            if isinstance(image_type, pydicom.multival.MultiValue)
            else [image_type]
        )
        assert json.loads(row["ImageType"]) == [str(value) for value in expected]
        study_date = pydicom.valuerep.DA(dataset.StudyDate)  # old 'YYYY.MM.DD' ones too
        assert dt.date.fromisoformat(row["StudyDate"]) == study_date
        name = json.loads(row["PatientName"])
        assert name["Alphabetic"]["FamilyName"] == dataset.PatientName.family_name
        assert dt.datetime.fromisoformat(row["ingested_at"]).tzinfo is not None


# --- the run summary --------------------------------------------------------------------------


def test_summary_tells_objects_instances_and_distinct_uids(
    pydicom_files_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "files"
    folder.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm", "rtdose.dcm"):
        shutil.copy(pydicom_files_dir / name, folder / name)
    shutil.copy(pydicom_files_dir / "CT_small.dcm", folder / "copy of CT_small.dcm")
    (folder / "notes.txt").write_text("not DICOM")
    datasets = [_read(path) for path in sorted(folder.iterdir())]
    instances = [ds for ds in datasets if ds is not None]
    uids = {ds.SOPInstanceUID for ds in instances}
    assert len(uids) < len(instances)  # the copy shares its UID

    result = run_main("ingest", str(folder), "--warehouse", str(tmp_path / "wh"))
    assert result.returncode == 0, result.stderr
    assert (
        f"{len(datasets)} objects read: {len(instances)} DICOM instances "
        f"({len(uids)} distinct SOP Instance UIDs), {len(datasets) - len(instances)} errors"
    ) in result.stdout
    count = run_main(
        "sql", "SELECT COUNT(*) AS n FROM instances", "--warehouse", str(tmp_path / "wh"),
        "--format", "csv",
    )  # fmt: skip
    assert count.stdout.splitlines()[1] == str(len(uids))  # what the instances view says


# --- publish --dry-run ------------------------------------------------------------------------


def test_dry_run_says_a_local_warehouse_needs_staging(pydicom_warehouse: IngestedFolder) -> None:
    base = [
        "publish", "bigquery", "--warehouse", str(pydicom_warehouse.warehouse),
        "--project", "test-project", "--dataset", "dicom", "--dry-run",
    ]  # fmt: skip
    env = {"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent"}
    refused = run_main(*base, env=env)
    assert refused.returncode == 1
    assert "views, in order:" in refused.stdout  # the plan is still shown
    assert refused.stderr.strip().splitlines() == [
        "dicomwarehouse: error: the publish would stop: a local warehouse needs --staging "
        "gs://bucket/prefix to load from"
    ]
    as_json = run_main(*base, "--format", "json", env=env)
    assert as_json.returncode == 1
    assert json.loads(as_json.stdout)["publishable"] is False
    staged = run_main(*base, "--staging", "gs://bucket/staging", "--format", "json", env=env)
    assert staged.returncode == 0, staged.stderr
    assert json.loads(staged.stdout)["publishable"] is True


# --- progress ---------------------------------------------------------------------------------


def _states(text: str) -> list[tuple[int, int]]:
    """(objects, errors) of each drawing of the progress line."""
    return [
        (int(done), int(errors))
        for done, errors in re.findall(r"(\d+)(?:/\d+)? objects read, (\d+) errors", text)
    ]


def test_display_sums_the_counters_of_every_worker() -> None:
    stream = io.StringIO()
    with ProgressDisplay(10, enabled=True, stream=stream) as display:
        workers = [ProgressCounter(display.folder) for _ in range(3)]
        for index in range(10):
            workers[index % 3].add(failed=index == 4, bytes_read=1000)
        for worker in workers:
            worker.flush()
    assert _states(stream.getvalue())[-1] == (10, 1)
    assert stream.getvalue().endswith("\n")
    assert "0.0 MB" in stream.getvalue().rsplit("\r", 1)[-1]
    assert not Path(display.folder).exists()
    quiet = io.StringIO()
    with ProgressDisplay(10, enabled=False, stream=quiet) as display:
        ProgressCounter(display.folder).add(failed=False, bytes_read=1)  # counts, writes nothing
    assert display.folder is None and quiet.getvalue() == ""


def test_display_takes_the_total_the_planning_reports() -> None:
    """A run starts without a total (the pipeline plans what it reads); once the planning
    reports its count, the line shows it, and an ETA."""
    stream = io.StringIO()
    with ProgressDisplay(None, enabled=True, stream=stream) as display:
        assert display.total is None
        report_total(display.folder, 4)
        counter = ProgressCounter(display.folder)
        for _ in range(4):
            counter.add(failed=False, bytes_read=10)
        counter.flush()
    assert display.total == 4
    assert "4/4 objects read" in stream.getvalue().rsplit("\r", 1)[-1]


def test_display_rate_and_eta() -> None:
    display = ProgressDisplay(100, enabled=False)
    display._started = 0.0
    display.line(10, 0, 0, now=1.0)
    text = display.line(30, 0, 5_000_000, now=3.0)  # 20 objects in 2 s
    assert "10 objects/s" in text and "ETA 0:07" in text and "5.0 MB" in text
    done = display.line(100, 2, 0, now=10.0)
    assert "ETA" not in done and "writing the tables" in done


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_one_line_for_a_run_with_worker_processes(
    pydicom_files_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multi_processing workers count in processes of their own: the line still sums them,
    so its counts only grow, and it ends at every object read."""
    folder = tmp_path / "files"
    folder.mkdir()
    names = sorted(path.name for path in pydicom_files_dir.glob("*.dcm"))[:24]
    for name in names:
        shutil.copy(pydicom_files_dir / name, folder / name)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr(progress, "INTERVAL", 0.05)
    summary = dicomwarehouse.ingest(
        [folder],
        warehouse=tmp_path / "wh",
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    states = _states(terminal.getvalue())
    assert states[-1] == (len(names), summary.errors)
    # the planning reported how many objects the run reads before the first was read
    counted = [d for d in terminal.getvalue().split("\r") if re.search(r"[1-9]\d* objects read", d)]
    assert counted and all(f"/{len(names)} objects read" in drawing for drawing in counted)
    done = [objects for objects, _ in states]
    assert done == sorted(done)


# --- Beam's logs ------------------------------------------------------------------------------


def test_beam_logs_only_when_verbose(
    pydicom_files_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = pydicom_files_dir / "CT_small.dcm"
    with caplog.at_level(logging.DEBUG):
        dicomwarehouse.ingest(source, warehouse=tmp_path / "quiet")
    assert not [r for r in caplog.records if "apache_beam" in r.pathname and r.levelno < 40]
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        dicomwarehouse.ingest(source, warehouse=tmp_path / "verbose", verbose=True)
    assert [r for r in caplog.records if "apache_beam" in r.pathname]
