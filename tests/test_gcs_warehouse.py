"""A warehouse under gs:// (the Dataflow case), on the GCS emulator: write, commit, lock, crash.

Sources and warehouse both live in emulated buckets. A gs:// warehouse has no DuckDB file
(DuckDB has no httpfs here), so its contents are checked by copying it down to a folder and
opening that, and compared with a warehouse ingested locally from the same bucket.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from beam_launch import submit_without_waiting
from bigquery_fakes import fake_publish_clients
from cli_runs import assert_one_line_error, run_main
from dicom_samples import base_dataset, dicom_bytes
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

from dicomwarehouse.bigquery.layout import read_warehouse
from dicomwarehouse.io.objectstore import GcsStore, store_for
from dicomwarehouse.io.urls import join
from dicomwarehouse.pipeline.run import IngestOptions, ingest
from dicomwarehouse.testpoints import FAULT_ENV
from dicomwarehouse.warehouse.commit import start_run
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import (
    DUCKDB_FILE,
    RUNS_FOLDER,
    STARTED_FOLDER,
    WarehouseError,
    committed_runs,
)
from dicomwarehouse.warehouse.lock import HANDOVER_LEASE, exclusive_writer

INCREMENTAL = IngestOptions(incremental=True, full_listing=True)
RUN_COLUMNS = {"ingest_run_id", "ingested_at", "header_bytes_read"}
TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")


def put_instance(bucket, name: str, version: str) -> None:
    ds = base_dataset(SeriesDescription=version)
    ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.2.{sum(map(ord, name)) * 1000 + len(name)}"
    bucket.blob(name).upload_from_string(dicom_bytes(ds))


@pytest.fixture
def buckets(gcs_server, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:  # noqa: F811
    """A source bucket with 6 instances and one non-DICOM object; an empty warehouse bucket."""
    client = gcs_client()
    suffix = f"{request.node.name.lower().replace('_', '-')[-40:]}-{time.time_ns() % 10**6}"
    source = client.create_bucket(f"src-{suffix}"[:63])
    warehouse = client.create_bucket(f"wh-{suffix}"[:63])
    for index in range(6):
        put_instance(source, f"series/i{index}.dcm", "v1")
    source.blob("series/notes.txt").upload_from_string(b"not a DICOM file")
    yield f"gs://{source.name}/series/", f"gs://{warehouse.name}/warehouse"


def copy_down(prefix: str, folder: Path) -> Path:
    """Copy a gs:// warehouse to a local folder (what a user would do to query it in DuckDB)."""
    store = store_for(prefix)
    for stored in store.list(prefix + "/"):
        target = folder / stored.url[len(prefix) + 1 :]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(store.read_bytes(stored.url))
    return folder


def table_rows(root: Path, table: str) -> list[tuple]:
    con = connect(root)
    try:
        names = [c for c in con.sql(f"SELECT * FROM {table} LIMIT 0").columns]
        select = ", ".join(f'"{c}"' for c in names if c not in RUN_COLUMNS)
        return sorted(con.sql(f"SELECT {select} FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


def assert_same_tables(gs_warehouse: str, local: Path, scratch: Path) -> None:
    copy = copy_down(gs_warehouse, scratch)
    for table in TABLES:
        assert table_rows(copy, table) == table_rows(local, table), table
    run_folders = {p.name for p in copy.glob("*/run-*")}
    assert run_folders == {f"run-{run}" for run in committed_runs(gs_warehouse)}


def test_ingest_writes_and_commits_a_gs_warehouse(buckets: tuple[str, str], tmp_path: Path) -> None:
    source, warehouse = buckets
    summary = ingest([source], warehouse, options=INCREMENTAL)
    assert summary.warehouse == warehouse
    assert (summary.objects_read, summary.instances, summary.errors) == (7, 6, 1)
    store = store_for(warehouse)
    names = {stored.url[len(warehouse) + 1 :] for stored in store.list(warehouse + "/")}
    (run_id,) = committed_runs(warehouse)
    assert f"{RUNS_FOLDER}/{run_id}.json" in names
    for table in (*TABLES, "ingest_object_events"):
        assert any(n.startswith(f"{table}/run-{run_id}/part-") for n in names), table
        assert f"{table}/run-{run_id}/_bigquery_schema.json" in names
    assert f"dicom_metadata/run-{run_id}/_column_paths.json" in names
    assert DUCKDB_FILE not in names and ".lock" not in names  # no DuckDB; lock released
    record = json.loads(store.read_text(join(warehouse, RUNS_FOLDER, f"{run_id}.json")))
    assert (record["instances"], record["errors"], record["objects_read"]) == (6, 1, 7)

    local = tmp_path / "local"
    ingest([source], local, options=INCREMENTAL)
    assert_same_tables(warehouse, local, tmp_path / "copy")


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_incremental_runs_against_a_gs_ledger(buckets: tuple[str, str], tmp_path: Path) -> None:
    source, warehouse = buckets
    ingest([source], warehouse, options=INCREMENTAL)
    bucket = gcs_client().bucket(source[len("gs://") :].split("/")[0])
    put_instance(bucket, "series/i0.dcm", "v2")  # replaced
    put_instance(bucket, "series/i9.dcm", "v1")  # new
    bucket.blob("series/i5.dcm").delete()
    second = ingest([source], warehouse, options=INCREMENTAL)
    assert second.objects_read == 2
    assert second.actions["unchanged"] == 5 and second.actions["deleted"] == 1
    third = ingest([source], warehouse, options=INCREMENTAL)
    assert third.objects_read == 0

    local = tmp_path / "local"
    ingest([source], local, options=INCREMENTAL)
    assert_same_tables(warehouse, local, tmp_path / "copy")
    history = connect(tmp_path / "copy")
    try:
        statuses = dict(
            history.sql("SELECT status, count(*) FROM ingest_objects GROUP BY status").fetchall()
        )
    finally:
        history.close()
    assert statuses == {"ingested": 6, "failed": 1, "superseded": 1, "deleted": 1}


def test_leftovers_of_a_dead_run_are_invisible_then_removed(buckets: tuple[str, str]) -> None:
    source, warehouse = buckets
    ingest([source], warehouse, options=INCREMENTAL)
    store = store_for(warehouse)
    (run_id,) = committed_runs(warehouse)
    shard = next(
        s.url
        for s in store.list(join(warehouse, "dicom_metadata", f"run-{run_id}") + "/")
        if s.url.endswith(".parquet")
    )
    dead_run = "29990101T000000000000Z-0rphan00"
    start_run(warehouse, dead_run)  # what a run names before it writes anything
    orphan = join(warehouse, "dicom_metadata", f"run-{dead_run}", "part-x.parquet")
    store.write_bytes(orphan, store.read_bytes(shard))
    # an object no run named (an operator's note, a foreign tool's file): not ours to delete
    foreign = join(warehouse, "dicom_metadata", "run-not-started", "part-y.parquet")
    store.write_bytes(foreign, b"not a shard of any run")
    assert [run.run_id for run in read_warehouse(warehouse, store)] == [run_id]
    ingest([source], warehouse, options=INCREMENTAL)
    assert store.stat(orphan) is None
    assert store.stat(foreign) is not None
    assert store.list(join(warehouse, STARTED_FOLDER) + "/") == []


def test_a_held_lock_refuses_a_second_writer_and_an_expired_one_is_taken_over(
    buckets: tuple[str, str],
) -> None:
    source, warehouse = buckets
    with exclusive_writer(warehouse), pytest.raises(WarehouseError, match="another ingest"):
        ingest([source], warehouse)
    assert committed_runs(warehouse) == []
    store = store_for(warehouse)
    lock = join(warehouse, ".lock")
    assert store.stat(lock) is None  # released
    expired = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    store.write_bytes(
        lock,
        json.dumps({"token": "dead", "host": "gone", "expires_at": expired.isoformat()}).encode(),
    )
    ingest([source], warehouse)
    assert len(committed_runs(warehouse)) == 1
    assert store.stat(lock) is None


def test_a_run_that_lost_its_lock_does_not_commit(buckets: tuple[str, str]) -> None:
    _, warehouse = buckets
    store = store_for(warehouse)
    with exclusive_writer(warehouse) as lock:
        store.write_bytes(lock.url, b'{"token": "someone else", "expires_at": "2999-01-01"}')
        with pytest.raises(WarehouseError, match="lost the write lock"):
            lock.check()


def test_a_submitted_job_keeps_the_lock_until_it_commits(
    buckets: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, warehouse = buckets
    jobs = submit_without_waiting(monkeypatch)
    summary = ingest([source], warehouse)
    assert summary.submitted
    store = store_for(warehouse)
    lock = join(warehouse, ".lock")
    assert store.stat(lock) is not None  # handed to the job
    handed = json.loads(store.read_bytes(lock))  # with time for its workers to start renewing
    assert dt.datetime.fromisoformat(handed["expires_at"]) > dt.datetime.now(dt.timezone.utc) + (
        HANDOVER_LEASE - dt.timedelta(minutes=1)
    )
    with pytest.raises(WarehouseError, match="another ingest"):
        ingest([source], warehouse)  # the next scheduled launch waits for this job
    (job,) = jobs  # the refused launch submitted nothing
    job.start()
    job.join(timeout=120)
    assert committed_runs(warehouse) == [summary.run_id]
    assert store.stat(lock) is None  # released by the job


def test_failed_run_on_gs_then_rerun_gives_the_tables_of_one_clean_run(
    buckets: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that dies after writing its first shard to the bucket (``testpoints``)."""
    source, warehouse = buckets
    store = store_for(warehouse)
    monkeypatch.setenv(FAULT_ENV, "after_shard")
    with pytest.raises(Exception, match="fault injected at after_shard"):
        ingest([source], warehouse)
    monkeypatch.delenv(FAULT_ENV)
    assert committed_runs(warehouse) == []
    assert any(s.url.endswith(".parquet") for s in store.list(warehouse + "/"))  # left behind
    assert store.stat(join(warehouse, ".lock")) is None  # the launcher lived: it let go
    rerun = ingest([source], warehouse)
    assert (rerun.instances, rerun.errors) == (6, 1)
    local = tmp_path / "local"
    ingest([source], local)
    assert_same_tables(warehouse, local, tmp_path / "copy")


def test_publish_at_the_end_loads_the_gs_warehouse_in_place(
    buckets: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, warehouse = buckets
    fakes = fake_publish_clients(monkeypatch, GcsStore(gcs_client()))
    summary = ingest(
        [source], warehouse, beam_args=["--project=test-project", "--bigquery_dataset=dicom"]
    )
    (fake,) = fakes
    report = summary.publish_report
    assert len(report["loads"]) == 4 and report["uploaded"] == 0  # nothing staged
    (run_id,) = committed_runs(warehouse)
    assert {destination.split(".")[1] for destination, _ in fake.load_configs} == {"dicom"}
    uris = [uri for load in report["loads"] for uri in load["source_uris"]]
    assert uris and all(uri.startswith(f"{warehouse}/") and run_id in uri for uri in uris)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["sql", "SELECT 1", "--warehouse", "gs://some-bucket/w"], "DuckDB cannot read"),
        (["ingest", "x.dcm", "--warehouse", "s3://some-bucket/w"], "s3:// buckets are sources"),
        (
            ["ingest", "x.dcm", "--warehouse", "w", "--", "--runner=DataflowRunner"],
            "use a gs:// --warehouse",
        ),
    ],
)
def test_unusable_warehouses_fail_in_one_line(arguments: list[str], message: str) -> None:
    assert_one_line_error(run_main(*arguments), message)
