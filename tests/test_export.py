"""Cohort export: s5cmd lines, URL lists and tables that ingest back into the same rows.

The round trips ingest a folder (or a moto S3 bucket), export a cohort, ingest the exported
manifest into a new warehouse with ``--manifest`` and compare every dicom_metadata row but
the run's own columns. s5cmd itself checks the exported file where it is installed
(``s5cmd --dry-run run``, against the moto server); its quoting rules are also checked
through a POSIX shell-like split, which is how s5cmd reads a line.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pydicom
import pytest
from cli_runs import assert_one_line_error, run_main
from emulators import gcs_client, gcs_server, s3_client, s3_server  # noqa: F401 (fixture)

import dicomwarehouse
from dicomwarehouse.warehouse.export import ExportError, check_format, cohort_key, s5cmd_lines

RUN_COLUMNS = ("ingest_run_id", "ingested_at")
MR_FILES = (
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
)
OTHER_FILES = ("CT_small.dcm", "rtdose.dcm", "rtdose_1frame.dcm")


def _metadata_rows(
    warehouse: Path, left_out: tuple[str, ...] = ()
) -> tuple[list[str], list[tuple]]:
    """Every current dicom_metadata row but the run's columns, sorted, and the columns."""
    excluded = ", ".join([*RUN_COLUMNS, *left_out])
    with dicomwarehouse.open(warehouse) as opened:
        relation = opened.relation(f"SELECT * EXCLUDE ({excluded}) FROM dicom_metadata")
        columns = list(relation.columns)
        rows = sorted(relation.fetchall(), key=lambda row: row[columns.index("source_url")])
    return columns, rows


def _uid(path: Path, keyword: str) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True)[keyword].value)


@pytest.fixture(scope="module")
def cohort_folder(pydicom_files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One MR series alone in its folder, other series together, names that need quoting."""
    root = tmp_path_factory.mktemp("cohort")
    (root / "mr").mkdir()
    (root / "mixed dir").mkdir()
    for name in MR_FILES:
        shutil.copy(pydicom_files_dir / name, root / "mr" / name)
    for name in OTHER_FILES:
        shutil.copy(pydicom_files_dir / name, root / "mixed dir" / name)
    shutil.copy(pydicom_files_dir / "CT_small.dcm", root / "mixed dir" / "it's 1.dcm")
    return root


@pytest.fixture(scope="module")
def cohort_warehouse(cohort_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = tmp_path_factory.mktemp("cohort-wh") / "warehouse"
    dicomwarehouse.ingest([cohort_folder], warehouse=warehouse)
    return warehouse


# --- choosing the key and the objects ---------------------------------------------------------


def test_cohort_key_prefers_the_most_precise_column() -> None:
    assert cohort_key(["StudyInstanceUID", "sopinstanceuid"]) == "sopinstanceuid"
    assert cohort_key(["x", "SeriesInstanceUID", "source_url"]) == "source_url"
    with pytest.raises(ExportError, match="none of source_url"):
        cohort_key(["Modality", "n"])
    with pytest.raises(ExportError, match="unknown export format 'zip'"):
        check_format("zip")


def test_series_query_exports_every_object_of_the_series(
    cohort_warehouse: Path, cohort_folder: Path
) -> None:
    series = _uid(cohort_folder / "mr" / MR_FILES[0], "SeriesInstanceUID")
    expected = sorted(
        str(path)
        for path in cohort_folder.rglob("*")
        if path.is_file() and _uid(path, "SeriesInstanceUID") == series
    )
    with dicomwarehouse.open(cohort_warehouse) as warehouse:
        text = warehouse.export(
            f"SELECT SeriesInstanceUID FROM series WHERE SeriesInstanceUID = '{series}'",
            format="urls",
        )
        by_study = warehouse.export(
            "SELECT StudyInstanceUID FROM studies WHERE StudyInstanceUID = "
            f"'{_uid(cohort_folder / 'mr' / MR_FILES[0], 'StudyInstanceUID')}'",
            format="urls",
        )
    assert text.splitlines() == expected
    assert set(expected) <= set(by_study.splitlines())


# --- s5cmd lines ------------------------------------------------------------------------------


def test_s5cmd_wildcard_only_for_a_series_that_is_a_whole_folder() -> None:
    rows = [
        ("s3://b/a/1.dcm", "S1"),
        ("s3://b/a/2.dcm", "S1"),
        ("s3://b/m/3.dcm", "S2"),
        ("s3://b/m/4.dcm", "S3"),
        ("s3://b/split/x/5.dcm", "S4"),
        ("s3://b/split/y/6.dcm", "S4"),
    ]
    # a/ holds S1 alone; m/ holds two series; b/nested/ holds one more object below n/
    counts = {"s3://b/a": 2, "s3://b/m": 2, "s3://b/split/x": 1, "s3://b/split/y": 1}
    lines = s5cmd_lines(rows, counts)
    assert lines[0] == "cp 's3://b/a/*' ."
    assert "cp s3://b/m/3.dcm ." in lines and "cp s3://b/m/4.dcm ." in lines
    assert "cp s3://b/split/x/5.dcm ." in lines and len(lines) == 5
    # an object the warehouse knows in a folder below makes the wildcard wrong
    assert s5cmd_lines(rows[:2], {**counts, "s3://b/a/sub": 1})[0] == "cp s3://b/a/1.dcm ."
    # a series of which the cohort has only part is not a whole folder either
    assert s5cmd_lines(rows[:1], counts) == ["cp s3://b/a/1.dcm ."]


def test_s5cmd_quoting_and_raw_keys_read_back_by_a_shell_split() -> None:
    urls = ["s3://b/it's here/1.dcm", "s3://b/star*/2.dcm", "s3://b/x y/[3].dcm"]
    lines = s5cmd_lines([(url, None) for url in urls], {})
    read_back = []
    for line in lines:
        words = shlex.split(line)
        assert words[0] == "cp" and words[-1] == "."
        if any(char in words[-2] for char in "*?["):
            assert words[1] == "--raw"  # s5cmd then takes the key literally
        read_back.append(words[-2])
    assert read_back == urls


def test_s5cmd_gcs_objects_for_the_gcs_endpoint() -> None:
    lines = s5cmd_lines([("gs://b/a/1.dcm", "S"), ("gs://b/a/2.dcm", "S")], {"gs://b/a": 2})
    assert lines[0].startswith("# s5cmd --endpoint-url https://storage.googleapis.com")
    assert lines[1:] == ["cp 's3://b/a/*' ."]


def test_s5cmd_refuses_mixed_stores() -> None:
    with pytest.raises(ExportError, match="local files and bucket objects"):
        s5cmd_lines([("/data/1.dcm", None), ("s3://b/2.dcm", None)], {})
    with pytest.raises(ExportError, match="gs:// and s3://"):
        s5cmd_lines([("gs://b/1.dcm", None), ("s3://b/2.dcm", None)], {})


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("export_format", ["urls", "s5cmd", "csv", "parquet"])
def test_exported_manifest_reingests_into_the_same_rows(
    cohort_warehouse: Path, tmp_path: Path, export_format: str
) -> None:
    manifest = tmp_path / f"cohort.{export_format}"
    result = run_main(
        "export",
        "SELECT source_url FROM dicom_metadata",
        "--warehouse",
        str(cohort_warehouse),
        "--format",
        export_format,
        "--output",
        str(manifest),
    )
    assert result.returncode == 0, result.stderr
    again = tmp_path / "again"
    result = run_main("ingest", "--manifest", str(manifest), "--warehouse", str(again))
    assert result.returncode == 0, result.stderr
    before, after = _metadata_rows(cohort_warehouse), _metadata_rows(again)
    assert after[0] == before[0]
    assert len(after[1]) == len(before[1]) > 0
    assert after[1] == before[1]


def test_export_to_standard_output_and_errors(cohort_warehouse: Path) -> None:
    result = run_main(
        "export",
        "SELECT SOPInstanceUID FROM instances",
        "--warehouse",
        str(cohort_warehouse),
        "--format",
        "csv",
        "--dialect",
        "bigquery",
    )
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split(",")[0] == "source_url"
    assert len(rows) == len(MR_FILES) + len(OTHER_FILES) + 1
    assert_one_line_error(
        run_main("export", "SELECT 1 AS n", "--warehouse", str(cohort_warehouse)), "none of"
    )
    assert_one_line_error(
        run_main(
            "export",
            "SELECT source_url FROM dicom_metadata",
            "--warehouse",
            str(cohort_warehouse),
            "--format",
            "parquet",
        ),
        "needs --output",
    )


# --- S3: s5cmd reads the file, and it ingests back --------------------------------------------


def _s5cmd() -> str | None:
    found = Path(sys.executable).with_name("s5cmd")
    return str(found) if found.is_file() else shutil.which("s5cmd")


def test_s5cmd_file_of_a_bucket_runs_in_s5cmd_and_reingests(
    s3_server,  # noqa: F811
    cohort_folder: Path,
    tmp_path: Path,
) -> None:
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket="cohort")
    keys = []
    for path in sorted(p for p in cohort_folder.rglob("*") if p.is_file()):
        key = str(path.relative_to(cohort_folder))
        client.put_object(Bucket="cohort", Key=key, Body=path.read_bytes())
        keys.append(key)
    odd = "mixed dir/odd [2]*.dcm"  # s5cmd reads it only with --raw
    client.put_object(
        Bucket="cohort", Key=odd, Body=(cohort_folder / "mixed dir" / "CT_small.dcm").read_bytes()
    )
    keys.append(odd)
    endpoint = ["--s3-endpoint-url", s3_server.endpoint]
    warehouse = tmp_path / "wh"
    result = run_main("ingest", "s3://cohort/", "--warehouse", str(warehouse), *endpoint)
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "cohort.s5cmd"
    with dicomwarehouse.open(warehouse) as opened:
        opened.export("SELECT source_url FROM dicom_metadata", format="s5cmd", output=manifest)
    lines = manifest.read_text().splitlines()
    # mr/ holds one series and nothing else: one wildcard line; the mixed folder: one per object
    assert "cp 's3://cohort/mr/*' ." in lines
    mixed = [key for key in keys if key.startswith("mixed dir/")]
    assert len(lines) == 1 + len(mixed)

    s5cmd = _s5cmd()
    if s5cmd is not None:
        run = subprocess.run(
            [s5cmd, "--endpoint-url", s3_server.endpoint, "--dry-run", "run", str(manifest)],
            capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        # s5cmd prints "cp SOURCE DESTINATION" for each object it would copy
        copied = sorted(line for line in run.stdout.splitlines() if line.startswith("cp "))
        expected = sorted(f"cp s3://cohort/{key} {key.rsplit('/', 1)[-1]}" for key in keys)
        assert copied == expected, run.stdout

    again = tmp_path / "again"
    result = run_main("ingest", "--manifest", str(manifest), "--warehouse", str(again), *endpoint)
    assert result.returncode == 0, result.stderr
    # gcp-storage-emulator sends no x-goog-generation nor x-goog-hash with a media download
    # (Cloud Storage does), so objects of per-object lines, read without a listing, lack their
    # version columns here: compare the rest
    versions = ("source_generation", "source_etag", "source_md5", "source_crc32c")
    assert _metadata_rows(again, versions) == _metadata_rows(warehouse, versions)


def test_folder_counts_count_known_objects_of_bucket_folders() -> None:
    """Objects read and objects that failed count; local files have no wildcard line."""
    from dicomwarehouse.warehouse.export import folder_counts_sql

    connection = duckdb.connect()
    connection.execute(
        "CREATE TABLE dicom_metadata AS SELECT * FROM (VALUES ('s3://b/a/1'), ('s3://b/a/2'), "
        "('s3://b/c/d/3'), ('/local/4')) AS t(source_url)"
    )
    connection.execute("CREATE TABLE ingest_errors AS SELECT 's3://b/a/5' AS source_url")
    counts = dict(connection.execute(folder_counts_sql()).fetchall())
    assert counts == {"s3://b/a": 3, "s3://b/c/d": 1}


def test_readme_export_command_runs(
    cohort_warehouse: Path, cohort_folder: Path, tmp_path: Path
) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    (line,) = [
        line
        for line in readme.read_text(encoding="utf-8").splitlines()
        if line.startswith(".venv/bin/dicomwarehouse export ")
    ]
    args = shlex.split(line)[1:]
    args[args.index("--warehouse") + 1] = str(cohort_warehouse)
    args[args.index("--output") + 1] = str(tmp_path / "out.s5cmd")
    result = run_main(*args)
    assert result.returncode == 0, result.stderr
    ct = sorted(
        str(path)
        for path in cohort_folder.rglob("*")
        if path.is_file() and _uid(path, "Modality") == "CT"
    )
    assert ct and (tmp_path / "out.s5cmd").read_text().splitlines() == ct  # local: plain paths


def test_s5cmd_file_of_a_gcs_bucket_reingests_through_the_gcs_endpoint(
    gcs_server,  # noqa: F811
    cohort_folder: Path,
    tmp_path: Path,
) -> None:
    """gs:// objects are s3:// URLs for s5cmd's GCS endpoint, as IDC writes them; the file
    ingests back with --s5cmd-endpoint-url naming that endpoint."""
    bucket = gcs_client().create_bucket("cohort-gcs")
    for path in sorted(p for p in cohort_folder.rglob("*") if p.is_file()):
        bucket.blob(str(path.relative_to(cohort_folder))).upload_from_filename(str(path))
    warehouse = tmp_path / "wh"
    result = run_main("ingest", "gs://cohort-gcs/", "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    manifest = tmp_path / "cohort.s5cmd"
    with dicomwarehouse.open(warehouse) as opened:
        opened.export("SELECT source_url FROM dicom_metadata", format="s5cmd", output=manifest)
    lines = manifest.read_text().splitlines()
    assert lines[0].startswith("# s5cmd --endpoint-url https://storage.googleapis.com")
    assert "cp 's3://cohort-gcs/mr/*' ." in lines
    again = tmp_path / "again"
    result = run_main(
        "ingest", "--manifest", str(manifest), "--warehouse", str(again),
        "--s5cmd-endpoint-url", "https://storage.googleapis.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # gcp-storage-emulator sends no x-goog-generation nor x-goog-hash with a media download
    # (Cloud Storage does), so objects of per-object lines, read without a listing, lack their
    # version columns here: compare the rest
    versions = ("source_generation", "source_etag", "source_md5", "source_crc32c")
    assert _metadata_rows(again, versions) == _metadata_rows(warehouse, versions)
