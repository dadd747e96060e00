"""The publish plan, computed without credentials, and the google-cloud-bigquery objects and
SQL it turns into: load job configs, tables, the dataset, view DDL, and the dry-run command."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import duckdb
import pytest
import sqlglot
from bigquery_fakes import gcs_emulator, ingest_at, utc
from cli_runs import assert_one_line_error, run_main
from dicom_samples import base_dataset, dicom_bytes, every_vr_dataset
from google.cloud import bigquery
from sqlglot import exp

from dicomwarehouse.bigquery import plan as plan_module
from dicomwarehouse.bigquery.jobs import (
    dataset_resource,
    file_load_config,
    history_load_config,
    schema_fields,
    table_resource,
)
from dicomwarehouse.bigquery.plan import PlanError, PublishPlan, build_plan
from dicomwarehouse.bigquery.sql import current_view_sql, qualify
from dicomwarehouse.pipeline.run import IngestOptions
from dicomwarehouse.tables.bigquery_schema import count_columns
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import PROVENANCE_FIELDS
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.views import load_views, to_duckdb

PROJECT = "test-project"
STAGING = "gs://staging-bucket/dicomwarehouse"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs on two days: day 1 reads three files; day 2 re-reads one changed file and
    adds a rich one, then reads another file, changed, in a second run the same day whose full
    listing has that file alone (the others are deleted)."""
    root = tmp_path_factory.mktemp("plan")
    source = root / "in"
    source.mkdir()
    for index in range(3):
        ds = base_dataset(InstanceNumber=str(index), StationName="ONLY DAY 1")
        (source / f"{index}.dcm").write_bytes(dicom_bytes(ds))
    (source / "junk.txt").write_text("not DICOM")
    ingest_at(utc(2024, 3, 1), [str(source)], root / "w")
    (source / "0.dcm").write_bytes(dicom_bytes(base_dataset(SeriesDescription="changed")))
    (source / "rich.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    ingest_at(utc(2024, 3, 2, 9), [str(source / "0.dcm"), str(source / "rich.dcm")], root / "w")
    (source / "1.dcm").write_bytes(dicom_bytes(base_dataset(InstanceNumber="1")))
    # a full listing of 1.dcm alone: the ledger marks every other object deleted
    full = IngestOptions(full_listing=True)
    ingest_at(utc(2024, 3, 2, 15), [str(source / "1.dcm")], root / "w", options=full)
    return root / "w"


@pytest.fixture(scope="module")
def plan(warehouse: Path) -> PublishPlan:
    return build_plan(str(warehouse), PROJECT, "dicom", location="EU", staging=STAGING)


def test_runs_and_days(plan: PublishPlan) -> None:
    assert [run.day for run in plan.runs] == ["20240301", "20240302", "20240302"]
    assert plan.location == "EU" and plan.staging == STAGING


def test_one_load_per_run_and_table_each_day_replaced_whole(plan: PublishPlan) -> None:
    steps = [(s.table, s.partition, s.write_disposition) for s in plan.loads]
    for table in ("dicom_metadata", "dicom_elements", "ingest_errors", "ingest_object_events"):
        assert [(d, w) for t, d, w in steps if t == f"{table}_history"] == [
            ("20240301", "WRITE_TRUNCATE"),
            ("20240302", "WRITE_TRUNCATE"),
            ("20240302", "WRITE_APPEND"),
        ]
    first = plan.loads[0]
    assert first.destination == "dicom_metadata_history$20240301"
    assert first.source_uris == (f"{STAGING}/dicom_metadata/run-{first.run_id}/*.parquet",)
    assert [json.dumps(f) for f in first.schema] == [
        json.dumps(f) for f in plan.runs[0].tables["dicom_metadata"].schema
    ]


def test_uploads_mirror_the_shards(plan: PublishPlan, warehouse: Path) -> None:
    shards = sorted(warehouse.glob("*/run-*/*.parquet"))
    assert sorted(Path(u.source) for u in plan.uploads) == [p.resolve() for p in shards]
    for upload in plan.uploads:
        relative = Path(upload.source).relative_to(warehouse.resolve()).as_posix()
        assert upload.target == f"{STAGING}/{relative}"
        assert upload.size == Path(upload.source).stat().st_size


def test_history_tables_hold_the_union_of_runs(plan: PublishPlan) -> None:
    metadata = plan.table("dicom_metadata_history")
    names = [f["name"] for f in metadata.schema]
    assert {"SeriesDescription", "PatientName", "ReferencedSeriesSequence", "Tag_00091003"} <= set(
        names
    )
    # a table made from several runs has the order of one run's schema: keywords in tag
    # order, then OtherElements, the provenance columns and IDC's manifest columns (every run
    # has them)
    assert names.index("SeriesDescription") < names.index("ReferencedSeriesSequence")
    tail = ["OtherElements", *(f.name for f in PROVENANCE_FIELDS), *IDC_MANIFEST_COLUMNS]
    assert names[-len(tail) :] == tail
    rich = next(r for r in plan.runs if "Tag_00091003" in str(r.tables["dicom_metadata"].schema))
    assert [
        f
        for f in metadata.schema
        if f["name"] in {x["name"] for x in rich.tables["dicom_metadata"].schema}
    ] == list(rich.tables["dicom_metadata"].schema)
    assert metadata.partition_field == "ingested_at" and metadata.partitioned
    assert metadata.clustering == ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
    elements = plan.table("dicom_elements_history")
    assert elements.partitioned and elements.partition_field is None
    assert elements.clustering == ("tag", "source_url")
    assert plan.metadata_columns == count_columns(metadata.schema)


def test_views_in_dependency_order(plan: PublishPlan) -> None:
    names = [view.name for view in plan.views]
    assert names[:4] == ["current_objects", "dicom_metadata", "dicom_elements", "ingest_errors"]
    assert names[4:] == [view.name for view in load_views()]


def test_only_days(plan: PublishPlan) -> None:
    later = plan.only_days({t: {"20240302"} for t in {s.table for s in plan.loads}})
    assert {s.partition for s in later.loads} == {"20240302"}
    assert len(later.loads) == 8  # two runs, four tables
    run_ids = {s.run_id for s in later.loads}
    assert all(any(f"run-{r}/" in u.target for r in run_ids) for u in later.uploads)
    assert len(later.uploads) < len(plan.uploads)


# --- google-cloud-bigquery objects ------------------------------------------------------------


def test_load_job_configs(plan: PublishPlan) -> None:
    for step in plan.loads:
        spec = plan.table(step.table)
        config = history_load_config(step, spec)
        assert isinstance(config, bigquery.LoadJobConfig)
        assert config.source_format == bigquery.SourceFormat.PARQUET
        assert config.parquet_options.enable_list_inference is True
        assert config.write_disposition == step.write_disposition
        assert config.create_disposition == bigquery.CreateDisposition.CREATE_NEVER
        assert config.schema == schema_fields(step.schema)
        assert config.schema_update_options == [bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION]
        assert config.clustering_fields == list(spec.clustering)
        assert config.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
        assert config.time_partitioning.field == spec.partition_field
        api = config.to_api_repr()["load"]
        assert api["parquetOptions"] == {"enableListInference": True}
        assert api["sourceFormat"] == "PARQUET"
        assert api["writeDisposition"] in ("WRITE_TRUNCATE", "WRITE_APPEND")
        assert api["schema"]["fields"] == list(step.schema)
    dispositions = {
        history_load_config(s, plan.table(s.table)).write_disposition for s in plan.loads
    }
    assert dispositions == {"WRITE_TRUNCATE", "WRITE_APPEND"}


def test_small_tables_are_replaced_whole(plan: PublishPlan) -> None:
    for name in ("dicom_uid_names", "ingest_runs"):
        config = file_load_config(plan.table(name))
        assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
        assert config.destination_table_description == plan.table(name).description
        assert config.parquet_options.enable_list_inference is True


def test_table_and_dataset_resources(plan: PublishPlan) -> None:
    spec = plan.table("dicom_metadata_history")
    table = table_resource(plan, spec)
    assert table.reference.path == f"/projects/{PROJECT}/datasets/dicom/tables/{spec.name}"
    api = table.to_api_repr()
    assert api["timePartitioning"] == {"type": "DAY", "field": "ingested_at"}
    assert api["clustering"] == {"fields": list(spec.clustering)}
    assert api["description"] == spec.description
    by_name = {f.name: f for f in table.schema}
    assert by_name["PatientName"].description == "Patient's Name (0010,0010)"
    assert by_name["PatientName"].field_type == "RECORD"
    assert by_name["source_url"].mode == "REQUIRED"
    elements = table_resource(plan, plan.table("dicom_elements_history")).to_api_repr()
    assert elements["timePartitioning"] == {"type": "DAY"}
    dataset = dataset_resource(plan)
    assert dataset.location == "EU"
    assert dataset.to_api_repr()["datasetReference"] == {"projectId": PROJECT, "datasetId": "dicom"}


# --- SQL --------------------------------------------------------------------------------------


def _strip_qualification(tree: exp.Expression) -> exp.Expression:
    for table in tree.find_all(exp.Table):
        table.set("db", None)
        table.set("catalog", None)
        table.set("this", exp.to_identifier(table.name))  # `p.d.name` quoted the name
    return tree


def test_view_ddl_parses_as_bigquery_and_is_qualified(plan: PublishPlan) -> None:
    definitions = {view.name: view for view in load_views()}
    for view in plan.views:
        tree = sqlglot.parse_one(view.ddl, read="bigquery")
        assert isinstance(tree, exp.Create) and tree.kind == "VIEW"
        target = tree.this.this if isinstance(tree.this, exp.Schema) else tree.this
        assert (target.catalog, target.db, target.name) == (PROJECT, "dicom", view.name)
        query = tree.expression
        ctes = {cte.alias_or_name for cte in query.find_all(exp.CTE)}
        for table in query.find_all(exp.Table):
            if table.name not in ctes:
                assert (table.catalog, table.db) == (PROJECT, "dicom"), (view.name, table.sql())
        if view.name in definitions:
            definition = definitions[view.name]
            original = sqlglot.parse_one(definition.bigquery_sql, read="bigquery")
            assert _strip_qualification(query.copy()) == original, view.name
            columns = (
                [c.name for c in tree.this.expressions] if definition.column_descriptions else []
            )
            assert columns == list(definition.column_descriptions), view.name
            assert definition.description.split("\n")[0][:40] in view.ddl.replace("\\'", "'")


def test_qualify_touches_only_table_references() -> None:
    sql = (
        "-- dicom_metadata in a comment\n"
        "WITH instances AS (SELECT 1 AS dicom_uid_names FROM dicom_metadata)\n"
        "SELECT dicom_metadata.x, instances.dicom_uid_names FROM `dicom_metadata`, instances, "
        "other.dicom_metadata JOIN dicom_uid_names USING (uid)"
    )
    qualified = qualify(sql, "p-1", "d", {"dicom_metadata", "dicom_uid_names", "instances"})
    assert qualified.startswith("-- dicom_metadata in a comment\n")
    assert qualified.count("`p-1.d.dicom_metadata`") == 2
    assert "other.dicom_metadata" in qualified
    assert "JOIN `p-1.d.dicom_uid_names` USING" in qualified
    assert "AS dicom_uid_names FROM" in qualified and "instances.dicom_uid_names" in qualified
    assert "`p-1.d.instances`" not in qualified  # a CTE


def test_current_views_select_what_duckdb_selects(warehouse: Path) -> None:
    """The BigQuery current-state views, translated for DuckDB over the same history, give the
    rows DuckDB's own current tables give (the latest run per source_url)."""
    con = connect(warehouse)
    try:
        mine = duckdb.connect()
        for table in ("dicom_metadata", "dicom_elements", "ingest_errors", "ingest_object_events"):
            history = con.sql(f"SELECT * FROM {table}_raw").to_arrow_table()
            mine.register(f"{table}_history", history)
        deleted = con.execute(
            "SELECT count(*) FROM ingest_object_events_history WHERE outcome = 'deleted'"
        ).fetchone()
        assert deleted == (4,)  # 0.dcm, 2.dcm, rich.dcm and junk.txt
        views = current_view_sql(PROJECT, "dicom")
        mine.execute(
            "CREATE VIEW current_objects AS "
            + _strip_qualification(
                sqlglot.parse_one(views["current_objects"], read="bigquery")
            ).sql("duckdb")
        )
        for table in ("dicom_metadata", "dicom_elements", "ingest_errors"):
            query = _strip_qualification(sqlglot.parse_one(views[table], read="bigquery"))
            key = "source_url, ingest_run_id" + (", tag_path" if table == "dicom_elements" else "")
            got = mine.execute(f"SELECT {key} FROM ({query.sql('duckdb')}) ORDER BY ALL").fetchall()
            want = con.execute(f"SELECT {key} FROM {table} ORDER BY ALL").fetchall()
            assert got == want, table
            assert got or table == "ingest_errors", table  # junk.txt was deleted
    finally:
        con.close()


def test_views_translate_and_run_on_duckdb(warehouse: Path) -> None:
    con = connect(warehouse)
    try:
        for view in load_views():
            assert con.execute(f"SELECT count(*) FROM ({to_duckdb(view.bigquery_sql)})").fetchone()
    finally:
        con.close()


# --- errors and limits ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"project": "Bad_Project"}, "is not a Google Cloud project id"),
        ({"dataset": "no-hyphens"}, "letters, digits and underscores"),
        ({"staging": "/tmp/x"}, "must be a gs://bucket/prefix"),
        ({"location": "not a place"}, "is not a BigQuery location"),
    ],
)
def test_bad_names(warehouse: Path, arguments: dict, message: str) -> None:
    kwargs = {"project": PROJECT, "dataset": "dicom", **arguments}
    with pytest.raises(PlanError, match=message):
        build_plan(str(warehouse), kwargs.pop("project"), kwargs.pop("dataset"), **kwargs)


def test_missing_warehouse(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="no warehouse"):
        build_plan(str(tmp_path / "none"), PROJECT, "dicom")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="no committed runs"):
        build_plan(str(tmp_path / "empty"), PROJECT, "dicom")


def test_a_union_over_the_limit_is_refused(warehouse: Path, plan: PublishPlan, monkeypatch) -> None:
    """Runs that each fit but together do not (runs of another warehouse, or committed before
    the rule) are refused before anything is created."""
    run_fields = [count_columns(r.tables["dicom_metadata"].schema)[0] for r in plan.runs]
    assert max(run_fields) < plan.metadata_columns[0]  # the union is wider than any run
    monkeypatch.setattr(plan_module, "BIGQUERY_MAX_COLUMNS", max(run_fields))
    with pytest.raises(PlanError, match="BigQuery allows"):
        build_plan(str(warehouse), PROJECT, "dicom")


def test_local_warehouse_without_staging_is_planned_but_not_publishable(warehouse: Path) -> None:
    plan = build_plan(str(warehouse), PROJECT, "dicom")
    assert not plan.uploads
    assert plan.loads[0].source_uris[0].startswith(warehouse.resolve().as_posix())
    assert any("--staging" in note for note in plan.notes)
    with pytest.raises(PlanError, match="needs --staging"):
        plan.check_publishable()


def test_gs_warehouse_is_loaded_in_place(warehouse: Path) -> None:
    with gcs_emulator("warehouse-bucket") as store:
        for path in sorted(warehouse.rglob("*")):
            if path.is_file() and path.suffix in (".parquet", ".json"):
                relative = path.relative_to(warehouse).as_posix()
                store.upload(path, f"gs://warehouse-bucket/w/{relative}")
        plan = build_plan("gs://warehouse-bucket/w", PROJECT, "dicom", store=store)
        local = build_plan(str(warehouse), PROJECT, "dicom")
    assert not plan.uploads and not plan.notes
    assert plan.loads[0].source_uris[0].startswith("gs://warehouse-bucket/w/dicom_metadata/run-")
    assert [s.schema for s in plan.loads] == [s.schema for s in local.loads]
    assert [r.record for r in plan.runs] == [r.record for r in local.runs]
    plan.check_publishable()


# --- the command ------------------------------------------------------------------------------


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The command (in this process) with no usable Google credentials: a dry run must not
    need any."""
    return run_main(*args, env={"GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent"})


def test_dry_run_prints_the_plan(warehouse: Path) -> None:
    result = run_cli(
        "publish", "bigquery", "--warehouse", str(warehouse), "--project", PROJECT,
        "--dataset", "dicom", "--staging", STAGING, "--dry-run",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "dataset: create test-project.dicom if missing" in out
    assert "table dicom_metadata_history:" in out and "clustered by StudyInstanceUID" in out
    assert f"from {STAGING}/dicom_elements/run-" in out
    assert "load dicom_metadata_history$20240302 WRITE_APPEND" in out
    assert "views, in order: current_objects, dicom_metadata" in out
    assert "(limit 10000)" in out and "(limit 15)" in out


def test_dry_run_as_json(warehouse: Path, plan: PublishPlan) -> None:
    result = run_cli(
        "publish", "bigquery", "--warehouse", str(warehouse), "--project", PROJECT,
        "--dataset", "dicom", "--location", "EU", "--staging", STAGING, "--dry-run",
        "--format", "json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data == json.loads(json.dumps(plan.to_dict()))
    assert data["dicom_metadata_columns"]["fields"] <= 10_000
    assert [t["name"] for t in data["tables"]] == [
        "dicom_metadata_history",
        "dicom_elements_history",
        "ingest_errors_history",
        "ingest_object_events_history",
        "dicom_uid_names",
        "ingest_runs",
    ]
    assert len(data["loads"]) == 12


def test_command_errors(warehouse: Path, tmp_path: Path) -> None:
    base = ["publish", "bigquery", "--project", PROJECT, "--dataset", "dicom"]
    assert_one_line_error(
        run_cli(*base, "--warehouse", str(tmp_path / "none"), "--dry-run"), "no warehouse"
    )
    assert_one_line_error(
        run_cli(*base, "--warehouse", str(warehouse), "--dry-run", "--frobnicate"),
        "unrecognized arguments",
    )
    assert_one_line_error(
        run_cli("publish", "bigquery", "--warehouse", str(warehouse), "--dry-run"), "required"
    )
    assert_one_line_error(
        run_cli(*base, "--warehouse", str(warehouse), "--staging", "s3://x", "--dry-run"),
        "must be a gs://",
    )
    assert_one_line_error(
        run_cli("publish", "bigquery", "--warehouse", str(warehouse), "--project", "P!",
                "--dataset", "d", "--dry-run"),
        "not a Google Cloud project id",
    )  # fmt: skip
    # not a dry run: refused before any credentials are looked for
    assert_one_line_error(run_cli(*base, "--warehouse", str(warehouse)), "needs --staging")


def test_schemas_command(tmp_path: Path) -> None:
    schemas = Path(__file__).resolve().parents[1] / "schemas"
    assert run_cli("schemas", str(schemas), "--check").returncode == 0
    assert run_cli("schemas", str(tmp_path)).returncode == 0
    (tmp_path / "dicom_elements.json").write_text("[]")
    assert_one_line_error(run_cli("schemas", str(tmp_path), "--check"), "dicom_elements.json")


def test_terraform_tables_are_created_as_publish_creates_them(plan: PublishPlan) -> None:
    """infra/ creates some history tables ahead of the first publish: their partitioning and
    clustering must be the plan's, or the publish refuses them (and loads would differ)."""
    hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is in the test extra")
    with (Path(__file__).resolve().parents[1] / "infra" / "main.tf").open() as handle:
        resources = hcl2.load(handle)["resource"]
    tables = [
        table
        for resource in resources
        for kind, blocks in resource.items()
        if kind.strip('"') == "google_bigquery_table"
        for table in blocks.values()
    ]
    assert tables
    for table in tables:
        spec = plan.table(table["table_id"].strip('"'))
        (partitioning,) = table.get("time_partitioning", [{}])
        assert partitioning.get("type", "").strip('"') == "DAY", spec.name
        field = partitioning.get("field")
        assert (field.strip('"') if field else None) == spec.partition_field, spec.name
        assert [c.strip('"') for c in table.get("clustering", [])] == list(spec.clustering)
        schema = table["schema"]
        assert f"schemas/{spec.name.removesuffix('_history')}.json" in schema, spec.name
