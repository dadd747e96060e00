"""Publishing without a BigQuery endpoint: what a publish asks BigQuery to do, checked against
an in-memory stand-in (``FakeBigQuery``) and, through the real google-cloud-bigquery client,
against a stand-in of the REST API; staging goes to a local Cloud Storage emulator.

The property that matters most: publishing again, after new runs, after a crash, or in full,
never puts a run's rows into a partition twice.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from bigquery_fakes import (
    FakeBigQuery,
    FakeBigQueryHttp,
    InjectedFailure,
    fake_publish_clients,
    gcs_emulator,
    ingest_at,
    utc,
)
from cli_runs import run_main
from dicom_samples import base_dataset, dicom_bytes, every_vr_dataset
from google.cloud import bigquery

from dicomwarehouse.bigquery.clients import GoogleBigQuery
from dicomwarehouse.bigquery.layout import PUBLISHED_TABLES as TABLES
from dicomwarehouse.bigquery.plan import PlanError, build_plan
from dicomwarehouse.bigquery.publish import PublishError, publish
from dicomwarehouse.io.objectstore import GcsStore
from dicomwarehouse.pipeline.run import ingest

PROJECT = "test-project"
STAGING = "gs://staging-bucket/stage"


def _plan(warehouse: Path, **kwargs):
    return build_plan(str(warehouse), PROJECT, "dicom", staging=STAGING, **kwargs)


def _runs_by_day(warehouse: Path, table: str) -> dict[str, list[str]]:
    """Day -> the runs that have rows in ``table`` that day."""
    days: dict[str, list[str]] = {}
    for run in _plan(warehouse).runs:
        shards = run.tables[table].shards
        if sum(pq.read_metadata(shard.url).num_rows for shard in shards):
            days.setdefault(run.day, []).append(run.run_id)
    return days


def assert_each_run_once(fake: FakeBigQuery, warehouse: Path) -> None:
    """Every history partition holds exactly the warehouse's runs of its day, each once."""
    for table in TABLES:
        expected = _runs_by_day(warehouse, table)
        assert {d: r for d, r in fake.history_runs(table).items() if r} == expected, table


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("publish") / "in"
    folder.mkdir()
    for index in range(3):
        (folder / f"{index}.dcm").write_bytes(dicom_bytes(base_dataset(InstanceNumber=str(index))))
    (folder / "junk.txt").write_text("not DICOM")
    return folder


@pytest.fixture(scope="module")
def two_days(source: Path) -> Path:
    """A warehouse with one run on 2024-05-01 and one on 2024-05-02."""
    warehouse = source.parent / "two_days"
    ingest_at(utc(2024, 5, 1), [str(source)], warehouse)
    ingest_at(utc(2024, 5, 2, 8), [str(source / "0.dcm"), str(source / "junk.txt")], warehouse)
    return warehouse


@pytest.fixture
def warehouse(two_days: Path, tmp_path: Path) -> Path:
    """A fresh copy per test (some tests add runs)."""
    copy = tmp_path / "w"
    shutil.copytree(two_days, copy)
    return copy


@pytest.fixture
def store() -> GcsStore:
    with gcs_emulator("staging-bucket") as emulated:
        yield emulated


def test_first_publish(warehouse: Path, store: GcsStore) -> None:
    fake = FakeBigQuery(PROJECT, store)
    report = publish(_plan(warehouse, location="EU"), fake, store)
    assert fake.datasets[f"{PROJECT}.dicom"].location == "EU"
    assert report.dataset_created
    assert sorted(report.tables_created) == sorted(f"{t}_history" for t in TABLES)
    assert len(report.loads) == 8 and report.days_skipped == 0  # 2 runs, 4 tables
    assert_each_run_once(fake, warehouse)
    staged = {o.url for o in store.list(STAGING + "/")}
    assert staged == {u.target for u in _plan(warehouse).uploads}
    assert report.uploaded == len(staged)
    table = fake.tables[f"{PROJECT}.dicom.dicom_metadata_history"]
    assert table.time_partitioning.field == "ingested_at"
    assert table.clustering_fields == ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]
    assert list(fake.views) == [f"{PROJECT}.dicom.{v.name}" for v in _plan(warehouse).views]
    runs = fake.small[f"{PROJECT}.dicom.ingest_runs"].to_pylist()
    assert [r["run_id"] for r in runs] == [r.run_id for r in _plan(warehouse).runs]
    assert runs[0]["instances"] == 3 and runs[0]["errors"] == 1
    uid_names = fake.small[f"{PROJECT}.dicom.dicom_uid_names"]
    assert uid_names.num_rows > 400
    assert "published to test-project.dicom: 8 load jobs" in report.describe()


def test_publishing_again_loads_nothing_new(warehouse: Path, store: GcsStore) -> None:
    fake = FakeBigQuery(PROJECT, store)
    publish(_plan(warehouse), fake, store)
    again = publish(_plan(warehouse), fake, store)
    assert again.loads == [] and again.days_skipped == 8 and again.uploaded == 0
    assert_each_run_once(fake, warehouse)
    full = publish(_plan(warehouse), fake, store, full=True)
    assert len(full.loads) == 8 and full.upload_skipped == full.uploaded + full.upload_skipped
    assert_each_run_once(fake, warehouse)


def test_a_new_run_reloads_its_day_only(warehouse: Path, source: Path, store: GcsStore) -> None:
    fake = FakeBigQuery(PROJECT, store)
    publish(_plan(warehouse), fake, store)
    rich = source.parent / "rich"
    rich.mkdir(exist_ok=True)
    (rich / "rich.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    ingest_at(utc(2024, 5, 2, 20), [str(rich), str(source / "1.dcm")], warehouse)
    report = publish(_plan(warehouse), fake, store)
    assert {(s.partition, s.write_disposition) for s, _ in report.loads} == {
        ("20240502", "WRITE_TRUNCATE"),
        ("20240502", "WRITE_APPEND"),
    }
    assert report.days_skipped == 4
    assert_each_run_once(fake, warehouse)
    # the new run's columns widened the table, appended after the columns it had
    assert "dicom_metadata_history" in report.tables_widened
    assert (f"{PROJECT}.dicom.dicom_metadata_history", ["schema"]) in fake.updates
    names = [f.name for f in fake.tables[f"{PROJECT}.dicom.dicom_metadata_history"].schema]
    assert {"Tag_00091003", "ReferencedSeriesSequence"} <= set(names)


def test_a_crash_midway_then_publishing_again_doubles_nothing(
    warehouse: Path, store: GcsStore
) -> None:
    fake = FakeBigQuery(PROJECT, store, fail_on_load=5)
    with pytest.raises(InjectedFailure):
        publish(_plan(warehouse), fake, store)
    assert f"{PROJECT}.dicom.ingest_runs" not in fake.small  # written last, so not written
    fake.fail_on_load = None
    report = publish(_plan(warehouse), fake, store)
    assert len(report.loads) == 8  # ingest_runs lists nothing: every day again
    assert_each_run_once(fake, warehouse)


def test_staging_holds_exactly_the_warehouse_shards(warehouse: Path, store: GcsStore) -> None:
    plan = _plan(warehouse)
    stray = plan.uploads[0].target.rsplit("/", 1)[0] + "/part-stray.parquet"
    store.upload(Path(plan.uploads[0].source), stray)
    fake = FakeBigQuery(PROJECT, store)
    publish(plan, fake, store)
    assert stray not in {o.url for o in store.list(STAGING + "/")}
    assert_each_run_once(fake, warehouse)  # the stray copy was not loaded as well


def test_a_dataset_elsewhere_is_refused(warehouse: Path, store: GcsStore) -> None:
    fake = FakeBigQuery(PROJECT, store)
    publish(_plan(warehouse, location="EU"), fake, store)
    with pytest.raises(PublishError, match="is in EU, not in --location US"):
        publish(_plan(warehouse, location="US"), fake, store)


def test_a_table_partitioned_otherwise_is_refused(warehouse: Path, store: GcsStore) -> None:
    fake = FakeBigQuery(PROJECT, store)
    fake.create_dataset(bigquery.Dataset(f"{PROJECT}.dicom"))
    fake.create_table(bigquery.Table(f"{PROJECT}.dicom.dicom_metadata_history"))
    with pytest.raises(PublishError, match="other partitioning"):
        publish(_plan(warehouse), fake, store)


def test_descriptions_set_elsewhere_are_kept(warehouse: Path, store: GcsStore) -> None:
    """A table Terraform created (with its own description) is widened, not re-described."""
    fake = FakeBigQuery(PROJECT, store)
    plan = _plan(warehouse)
    fake.create_dataset(bigquery.Dataset(f"{PROJECT}.dicom"))
    from dicomwarehouse.bigquery.jobs import table_resource

    table = table_resource(plan, plan.table("ingest_errors_history"))
    table.description = "Set by Terraform."
    fake.create_table(table)
    publish(plan, fake, store)
    assert fake.tables[f"{PROJECT}.dicom.ingest_errors_history"].description == "Set by Terraform."
    assert_each_run_once(fake, warehouse)


def test_publish_needs_staging_for_a_local_warehouse(warehouse: Path, store: GcsStore) -> None:
    plan = build_plan(str(warehouse), PROJECT, "dicom")
    with pytest.raises(PlanError, match="needs --staging"):
        publish(plan, FakeBigQuery(PROJECT, store), store)


# --- the real client over a stand-in of the REST API ------------------------------------------


def test_the_real_client_sends_what_the_plan_says(warehouse: Path, store: GcsStore) -> None:
    http = FakeBigQueryHttp(PROJECT)
    api = GoogleBigQuery(http.client())
    plan = _plan(warehouse, location="EU")
    report = publish(plan, api, store)
    assert len(report.loads) == 8
    calls = http.requests
    base = f"/bigquery/v2/projects/{PROJECT}"
    (dataset,) = [b for m, p, _, b in calls if m == "POST" and p == f"{base}/datasets"]
    assert dataset["location"] == "EU"
    assert dataset["datasetReference"] == {"projectId": PROJECT, "datasetId": "dicom"}
    tables = {
        b["tableReference"]["tableId"]: b
        for m, p, _, b in calls
        if m == "POST" and p == f"{base}/datasets/dicom/tables"
    }
    assert tables["dicom_metadata_history"]["timePartitioning"] == {
        "type": "DAY",
        "field": "ingested_at",
    }
    assert tables["dicom_elements_history"]["clustering"] == {"fields": ["tag", "source_url"]}
    jobs = [b for m, p, _, b in calls if m == "POST" and p.endswith("/jobs") and b]
    loads = [j["configuration"]["load"] for j in jobs if "load" in j["configuration"]]
    history = [load for load in loads if "sourceUris" in load]
    assert len(history) == 8
    for load, step in zip(history, plan.loads, strict=True):
        assert load["destinationTable"] == {
            "projectId": PROJECT,
            "datasetId": "dicom",
            "tableId": step.destination,
        }
        assert load["sourceUris"] == list(step.source_uris)
        assert load["sourceFormat"] == "PARQUET"
        assert load["parquetOptions"] == {"enableListInference": True}
        assert load["writeDisposition"] == step.write_disposition
        assert load["createDisposition"] == "CREATE_NEVER"
        assert load["schemaUpdateOptions"] == ["ALLOW_FIELD_ADDITION"]
        assert load["schema"]["fields"] == list(step.schema)
    assert all(j["jobReference"]["location"] == "EU" for j in jobs)
    ddl = [j["configuration"]["query"] for j in jobs if "query" in j["configuration"]]
    assert [q["useLegacySql"] for q in ddl] == [False] * len(plan.views)
    assert [q["query"] for q in ddl] == [view.ddl for view in plan.views]
    uploads = [b for m, p, q, b in calls if p.startswith("/upload/")]
    assert [u["configuration"]["load"]["destinationTable"]["tableId"] for u in uploads] == [
        "dicom_uid_names",
        "ingest_runs",
    ]
    assert all(u["configuration"]["load"]["writeDisposition"] == "WRITE_TRUNCATE" for u in uploads)


# --- publish at the end of an ingest ----------------------------------------------------------


def test_ingest_publishes_when_the_beam_flags_ask(
    source: Path, tmp_path: Path, store: GcsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    fakes = fake_publish_clients(monkeypatch, store)
    summary = ingest(
        [str(source)],
        tmp_path / "w",
        beam_args=[
            "--project=test-project",
            "--bigquery_dataset=dicom",
            "--bigquery_location=EU",
            f"--bigquery_staging={STAGING}",
        ],
    )
    (fake,) = fakes
    assert fake.datasets[f"{PROJECT}.dicom"].location == "EU"
    assert len(summary.publish_report["loads"]) == 4
    assert_each_run_once(fake, tmp_path / "w")
    assert "; published to test-project.dicom: 4 load jobs" in summary.describe()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bigquery_dataset=dicom"], "needs a project"),
        (["--bigquery_dataset=test-project.bad-name"], "letters, digits and underscores"),
        (["--bigquery_staging=gs://b/x"], "needs --bigquery_dataset"),
        (["--bigquery_dataset=test-project.d"], "needs --bigquery_staging"),
    ],
)
def test_bad_publish_flags_fail_before_the_run(
    source: Path, tmp_path: Path, flags: list[str], message: str
) -> None:
    with pytest.raises(PlanError, match=message):
        ingest([str(source)], tmp_path / "w", beam_args=flags)
    assert not (tmp_path / "w").exists()  # nothing ran


def test_bad_publish_flags_on_the_command_line(source: Path, tmp_path: Path) -> None:
    result = run_main(
        "ingest", str(source), "--warehouse", str(tmp_path / "w"), "--", "--bigquery_dataset=dicom"
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "dicomwarehouse: error: --bigquery_dataset needs a project: PROJECT.DATASET or --project"
    ]
