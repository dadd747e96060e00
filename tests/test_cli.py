"""The command line as a user runs it: one-line errors, summaries, query output formats.

Every command runs ``cli.main`` in this process (``run_main``); the last tests run the
installed console script in a subprocess, to show that a real process prints one line too.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from cli_runs import assert_one_line_error, run_cli, run_main
from dicom_samples import base_dataset, dicom_bytes


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    source = root / "in"
    source.mkdir()
    for index, modality in enumerate(["CT", "CT", "MR"]):
        ds = base_dataset(Modality=modality, SeriesDescription=f"series {index}")
        (source / f"{index}.dcm").write_bytes(dicom_bytes(ds))
    (source / "notes.txt").write_text("not an image")
    # a Beam flag after "--": test_beam_flags_pass_through finds it in the run record
    result = run_main(
        "ingest", str(source), "--warehouse", str(root / "w"), "--", "--direct_num_workers=1"
    )
    assert result.returncode == 0, result.stderr
    assert "ingested 4 objects" in result.stdout
    assert "3 DICOM instances" in result.stdout
    assert "1 errors" in result.stdout
    return root / "w"


def test_sql_csv(warehouse: Path) -> None:
    result = run_main(
        "sql",
        "SELECT Modality, count(*) AS n FROM dicom_metadata GROUP BY 1 ORDER BY 1",
        "--warehouse",
        str(warehouse),
        "--format",
        "csv",
    )
    assert result.returncode == 0, result.stderr
    assert list(csv.reader(io.StringIO(result.stdout))) == [
        ["Modality", "n"],
        ["CT", "2"],
        ["MR", "1"],
    ]


def test_sql_json_in_bigquery_dialect(warehouse: Path) -> None:
    result = run_main(
        "sql",
        "SELECT SeriesDescription FROM dicom_all WHERE Modality IN UNNEST(['MR'])",
        "--warehouse",
        str(warehouse),
        "--format",
        "json",
        "--dialect",
        "bigquery",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"SeriesDescription": "series 2"}]


def test_sql_table_shows_the_series_view(warehouse: Path) -> None:
    result = run_main("sql", "SELECT * FROM series", "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    assert "SeriesInstanceUID" in result.stdout
    assert "3 rows" in result.stdout


def test_missing_warehouse(tmp_path: Path) -> None:
    assert_one_line_error(
        run_main("sql", "SELECT 1", "--warehouse", str(tmp_path / "none")), "no warehouse"
    )


def test_bad_query(warehouse: Path) -> None:
    assert_one_line_error(
        run_main("sql", "SELECT nope FROM dicom_metadata", "--warehouse", str(warehouse)), "nope"
    )


def test_bad_flag() -> None:
    result = run_main("ingest", ".", "--warehouse", "w", "--frobnicate")
    assert result.returncode == 2
    assert_one_line_error(result, "unrecognized arguments")


def test_missing_source(tmp_path: Path) -> None:
    result = run_main("ingest", str(tmp_path / "nothing"), "--warehouse", str(tmp_path / "w"))
    assert_one_line_error(result, "no such file or directory")


def test_empty_source(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_main("ingest", str(tmp_path / "empty"), "--warehouse", str(tmp_path / "w"))
    assert_one_line_error(result, "name no files")


def test_beam_flags_pass_through(warehouse: Path) -> None:
    result = run_main(
        "sql", "SELECT pipeline_options FROM ingest_runs", "--warehouse", str(warehouse),
        "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [{"pipeline_options": ["--direct_num_workers=1"]}]
    assert_one_line_error(
        run_main("sql", "SELECT 1", "--warehouse", str(warehouse), "--", "--runner=X"),
        "only for ingest",
    )


def test_process_state_is_restored_after_an_in_process_run(tmp_path: Path) -> None:
    """run_main undoes main's logging (and any signal handler) set-up: later tests must not
    log into a closed buffer or handle signals as the command does."""
    import logging
    import signal

    def state() -> tuple[object, ...]:
        root = logging.getLogger()
        return (root.handlers[:], root.level, logging.getLogger("pydicom").propagate,
                signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))  # fmt: skip

    before = state()
    assert run_main("sql", "SELECT 1", "--warehouse", str(tmp_path / "none")).returncode != 0
    assert state() == before


# --- the console script in a real process -----------------------------------------------------


def test_console_script_fails_in_one_line_after_starting_beam(tmp_path: Path) -> None:
    """The error comes from Beam, after the package, Beam and the loggers are set up: a real
    interpreter's import-time warnings and log records would show here, not in-process."""
    (tmp_path / "a.dcm").write_bytes(dicom_bytes(base_dataset()))
    result = run_cli(
        "ingest",
        str(tmp_path / "a.dcm"),
        "--warehouse",
        str(tmp_path / "w"),
        "--",
        "--runner=NoSuchRunner",
    )
    assert result.returncode == 1
    assert_one_line_error(result, "NoSuchRunner")
    assert result.stdout == ""


def test_console_script_usage_error_is_one_line() -> None:
    result = run_cli("ingest", ".", "--warehouse", "w", "--frobnicate")
    assert result.returncode == 2
    assert_one_line_error(result, "unrecognized arguments: --frobnicate")
