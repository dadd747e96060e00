"""Incremental ingestion: each object version once, deletions, retries, crashes, growth.

Crashes are made at named points of the run (``testpoints``), not by killing a process
at a random moment, so each test always tests the crash it names.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import pytest
from cli_runs import run_cli
from dicom_samples import base_dataset, dicom_bytes

from dicomwarehouse.pipeline.run import IngestOptions, ingest
from dicomwarehouse.testpoints import FAULT_ENV
from dicomwarehouse.warehouse.commit import start_run
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import STARTED_FOLDER, committed_runs

INCREMENTAL = IngestOptions(incremental=True, full_listing=True)

#: Columns that legitimately differ between two warehouses holding the same files.
RUN_COLUMNS = {"ingest_run_id", "ingested_at", "header_bytes_read", "source_generation"}


def write_instance(folder: Path, name: str, version: str, **attributes: object) -> None:
    """(Re)write a file and give it a new modification time, its generation."""
    path = folder / name
    ds = base_dataset(SeriesDescription=version, **attributes)
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.1.{abs(hash(name)) % 10**8}"
    path.write_bytes(dicom_bytes(ds))
    stamp = time.time_ns()
    os.utime(path, ns=(stamp, stamp))


def table_rows(root: Path, table: str) -> list[tuple]:
    """A table's rows without the columns that name the run, sorted, for comparisons."""
    con = connect(root)
    try:
        columns = [
            c for c in con.sql(f"SELECT * FROM {table} LIMIT 0").columns if c not in RUN_COLUMNS
        ]
        select = ", ".join(f'"{c}"' for c in columns)
        return sorted(con.sql(f"SELECT {select} FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


def scalar(root: Path, query: str):
    con = connect(root)
    try:
        return con.sql(query).fetchall()[0][0]
    finally:
        con.close()


def fill_bucket(folder: Path) -> Path:
    folder.mkdir()
    for index in range(6):
        write_instance(folder, f"i{index}.dcm", "v1")
    return folder


@pytest.fixture
def bucket(tmp_path: Path) -> Path:
    """A local "bucket" of 6 instances, with no run yet."""
    return fill_bucket(tmp_path / "bucket")


@pytest.fixture(scope="module")
def first_run_saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(where, saved copy) of the bucket and the warehouse after one incremental run of it.

    Most tests start from that state: it is ingested once per module and restored for each.
    """
    where = tmp_path_factory.mktemp("incremental")
    first = ingest([str(fill_bucket(where / "bucket"))], where / "w", options=INCREMENTAL)
    assert (first.objects_read, first.actions["new"]) == (6, 6)
    saved = where / "saved"
    for name in ("bucket", "w"):
        shutil.copytree(where / name, saved / name)
    return where, saved


@pytest.fixture
def first_run(first_run_saved: tuple[Path, Path]) -> tuple[Path, Path]:
    """(bucket, warehouse) after one incremental run, as the run left them.

    Restored at the paths the run saw (the ledger and the views hold absolute paths), with
    the files' modification times (a local file's generation), so it is that run's state.
    """
    where, saved = first_run_saved
    for name in ("bucket", "w"):
        shutil.rmtree(where / name, ignore_errors=True)
        shutil.copytree(saved / name, where / name)
    return where / "bucket", where / "w"


def test_second_run_reads_only_new_and_changed_objects(
    first_run: tuple[Path, Path], tmp_path: Path
) -> None:
    bucket, warehouse = first_run
    for index in range(6, 9):  # add 3
        write_instance(bucket, f"i{index}.dcm", "v1")
    for index in (0, 1):  # replace 2
        write_instance(bucket, f"i{index}.dcm", "v2")
    (bucket / "i5.dcm").unlink()  # delete 1

    second = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert second.objects_read == 5
    assert {k: v for k, v in second.actions.items() if v} == {
        "new": 3,
        "changed": 2,
        "unchanged": 3,
        "deleted": 1,
    }

    fresh = tmp_path / "fresh"
    ingest([str(bucket)], fresh)
    for table in ("dicom_metadata", "dicom_elements", "ingest_errors"):
        assert table_rows(warehouse, table) == table_rows(fresh, table), table
    assert scalar(warehouse, "SELECT count(*) FROM series") == scalar(
        fresh, "SELECT count(*) FROM series"
    )

    con = connect(warehouse)
    statuses = dict(con.sql("SELECT status, count(*) FROM ingest_objects GROUP BY 1").fetchall())
    assert statuses == {"ingested": 8, "superseded": 2, "deleted": 1}
    history = con.sql(
        "SELECT SeriesDescription, is_current, count(*) FROM dicom_metadata_history "
        "GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert history == [("v1", False, 3), ("v1", True, 6), ("v2", True, 2)]
    runs = con.sql(
        'SELECT objects_listed, objects_read, "new", changed, unchanged, deleted '
        "FROM ingest_runs ORDER BY run_id"
    ).fetchall()
    assert runs == [(6, 6, 6, 0, 0, 0), (8, 5, 3, 2, 3, 1)]


def test_a_rerun_of_an_unchanged_listing_reads_nothing(first_run: tuple[Path, Path]) -> None:
    bucket, warehouse = first_run
    before = table_rows(warehouse, "dicom_metadata")
    again = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert (again.objects_read, again.header_bytes_read) == (0, 0)
    assert table_rows(warehouse, "dicom_metadata") == before
    assert len(committed_runs(warehouse)) == 2


def test_an_unchanged_rerun_plans_in_the_pipeline_and_opens_no_object(
    first_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing is joined with the ledger per URL inside the pipeline: the launcher never
    reads the ledger whole, and no object is opened when nothing changed."""
    import dicomwarehouse.pipeline.planning as planning
    import dicomwarehouse.pipeline.transforms as transforms
    import dicomwarehouse.warehouse.ledger as ledger

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("called during an unchanged incremental run")

    bucket, warehouse = first_run
    record = warehouse.parent / "ledger-shards-read.txt"

    def read_shard(url: str, record: Path = record) -> list[dict[str, object]]:
        with record.open("a") as handle:  # the pipeline runs a pickled copy: a file, not a list
            handle.write(url + "\n")
        return ledger.read_ledger_shard(url)

    monkeypatch.setattr(ledger, "read_known_objects", refuse)
    monkeypatch.setattr(transforms, "extract_object", refuse)
    monkeypatch.setattr(planning, "read_ledger_shard", read_shard)
    again = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert (again.objects, again.objects_read, again.header_bytes_read) == (6, 0, 0)
    assert again.actions["unchanged"] == 6
    first_run_id = committed_runs(warehouse)[0]
    read = record.read_text().split()
    assert read and all(f"/run-{first_run_id}/" in url for url in read)


def test_failed_objects_are_retried_on_request(bucket: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "w"
    (bucket / "broken.dcm").write_bytes(b"not dicom")
    first = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert first.errors == 1
    skipped = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert skipped.objects_read == 0
    retried = ingest(
        [str(bucket)],
        warehouse,
        options=IngestOptions(incremental=True, full_listing=True, retry_errors=True),
    )
    assert (retried.objects_read, retried.errors, retried.actions["retried"]) == (1, 1, 1)
    assert scalar(warehouse, "SELECT count(*) FROM ingest_errors") == 1


def test_deleted_object_that_comes_back_is_current_again(
    first_run: tuple[Path, Path], tmp_path: Path
) -> None:
    bucket, warehouse = first_run
    (bucket / "i0.dcm").rename(tmp_path / "i0.dcm")
    ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert scalar(warehouse, "SELECT count(*) FROM dicom_metadata") == 5
    (tmp_path / "i0.dcm").rename(bucket / "i0.dcm")
    back = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert back.actions["new"] == 1
    assert scalar(warehouse, "SELECT count(*) FROM dicom_metadata") == 6


def test_schema_grows_across_runs(first_run: tuple[Path, Path]) -> None:
    bucket, warehouse = first_run
    write_instance(bucket, "new.dcm", "v1", ContrastBolusAgent="iodine", BodyPartExamined="LUNG")
    ingest([str(bucket)], warehouse, options=INCREMENTAL)
    con = connect(warehouse)
    rows = con.sql(
        "SELECT ContrastBolusAgent, count(*) FROM dicom_metadata GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert rows == [("iodine", 1), (None, 6)]


def assert_same_tables(warehouse: Path, clean: Path) -> None:
    for table in ("dicom_metadata", "dicom_elements", "ingest_errors"):
        assert table_rows(warehouse, table) == table_rows(clean, table), table
    for query in ("SELECT count(*) FROM ingest_objects", "SELECT count(*) FROM series"):
        assert scalar(warehouse, query) == scalar(clean, query), query
    run_folders = {p.name for p in warehouse.glob("*/run-*")}
    assert run_folders == {f"run-{run}" for run in committed_runs(warehouse)}  # leftovers gone


def uncommitted_folders(warehouse: Path) -> set[str]:
    """Run folders (with a shard in them) of runs that have no run record."""
    committed = {f"run-{run}" for run in committed_runs(warehouse)}
    return {p.parent.name for p in warehouse.glob("*/run-*/*.parquet")} - committed


def change_bucket(bucket: Path) -> None:
    """Add 3 objects, replace 2, delete 1: a second run reads 5 (3 new, 2 changed)."""
    for index in range(6, 9):
        write_instance(bucket, f"i{index}.dcm", "v1")
    for index in (0, 1):
        write_instance(bucket, f"i{index}.dcm", "v2")
    (bucket / "i5.dcm").unlink()


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_killed_first_run_then_rerun_gives_the_tables_of_one_clean_run(
    bucket: Path, tmp_path: Path
) -> None:
    """A real SIGKILL of the command (at a named point, so without a race).

    What the in-process faults below cannot show: no ``finally`` of the dead process runs,
    so its local lock is freed only by the kernel's release of the flock, and its half-done
    run folders (its ledger rows among them) stay for the next writer to remove.
    """
    warehouse = tmp_path / "w"
    command = ["ingest", str(bucket), "--warehouse", str(warehouse), "--incremental",
               "--full-listing"]  # fmt: skip
    killed = run_cli(*command, env={FAULT_ENV: "after_shard:kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert committed_runs(warehouse) == []
    assert uncommitted_folders(warehouse)  # it died with a shard written
    rerun = ingest([str(bucket)], warehouse, options=INCREMENTAL)  # takes the lock at once
    assert (rerun.objects_read, rerun.actions["new"]) == (6, 6)
    assert not uncommitted_folders(warehouse)  # the dead run's folders removed
    clean = tmp_path / "clean"
    ingest([str(bucket)], clean, options=INCREMENTAL)
    assert_same_tables(warehouse, clean)


@pytest.mark.parametrize(
    ("point", "committed", "reread"),
    [
        ("after_shard", 1, 5),  # dies while writing: only the first run is committed
        ("before_commit", 1, 5),  # every shard written, no run record
        ("after_commit", 2, 0),  # committed, DuckDB views not rebuilt: the rerun reads nothing
    ],
)
@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_failed_incremental_run_then_rerun_gives_the_tables_of_one_clean_run(
    first_run: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    point: str, committed: int, reread: int,
) -> None:  # fmt: skip
    bucket, warehouse = first_run
    clean = tmp_path / "clean"
    shutil.copytree(warehouse, clean)  # the same first run
    change_bucket(bucket)
    monkeypatch.setenv(FAULT_ENV, point)
    with pytest.raises(Exception, match=f"fault injected at {point}"):
        ingest([str(bucket)], warehouse, options=INCREMENTAL)
    monkeypatch.delenv(FAULT_ENV)
    assert len(committed_runs(warehouse)) == committed
    if committed == 1:
        assert uncommitted_folders(warehouse)  # the failed run left shards behind
    rerun = ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert rerun.objects_read == reread
    if reread:
        assert {k: v for k, v in rerun.actions.items() if v} == {
            "new": 3, "changed": 2, "unchanged": 3, "deleted": 1,
        }  # fmt: skip
    ingest([str(bucket)], clean, options=INCREMENTAL)
    assert_same_tables(warehouse, clean)


def test_interrupted_commit_is_rolled_back(first_run: tuple[Path, Path]) -> None:
    bucket, warehouse = first_run
    before = table_rows(warehouse, "dicom_metadata")
    # a run that wrote one table's shard and died before writing its run record: it named
    # its folders first (start_run), as every run does before it writes anything
    start_run(warehouse, "29990101T000000000000Z-0rphan00")
    orphan = warehouse / "dicom_metadata" / "run-29990101T000000000000Z-0rphan00"
    orphan.mkdir()
    source = next((warehouse / "dicom_metadata").glob("run-2*/*.parquet"))
    (orphan / "part-x.parquet").write_bytes(source.read_bytes())
    assert table_rows(warehouse, "dicom_metadata") == before  # readers ignore it
    write_instance(bucket, "i0.dcm", "v2")
    ingest([str(bucket)], warehouse, options=INCREMENTAL)
    assert not orphan.exists()  # the next writer removed it
    assert not (warehouse / STARTED_FOLDER).exists() or not any(
        (warehouse / STARTED_FOLDER).iterdir()
    )  # and the record of what it had to remove
    assert scalar(warehouse, "SELECT count(*) FROM dicom_metadata") == 6


def test_pipeline_options_are_recorded_without_secrets() -> None:
    from dicomwarehouse.pipeline.run import redact_arguments

    assert redact_arguments(
        ["--runner=DirectRunner", "--s3_secret_access_key=abc", "--s3_access_key_id", "xyz"]
    ) == ["--runner=DirectRunner", "--s3_secret_access_key=<redacted>", "--s3_access_key_id",
          "<redacted>"]  # fmt: skip
