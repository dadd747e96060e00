"""The Python API: ``dicomwarehouse.open`` over a folder, a gs:// prefix and BigQuery, and
``dicomwarehouse.ingest``.

No BigQuery emulator exists, so the BigQuery warehouse is tested against a stand-in for
google.cloud.bigquery.Client that answers each query by translating its GoogleSQL to DuckDB
(``warehouse.googlesql``) over a local warehouse: it checks what the API sends (GoogleSQL,
a default dataset, dry runs for column lists) and lets one "notebook" run on both engines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pydicom
import pytest
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

import dicomwarehouse
from dicomwarehouse.errors import UsageError
from dicomwarehouse.warehouse.views import load_views

FILES = ("CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "rtdose.dcm", "README.txt")


@pytest.fixture(scope="module")
def small_folder(pydicom_files_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("small")
    for name in FILES:
        source = pydicom_files_dir / name
        if source.is_file():
            shutil.copy(source, folder / name)
        else:  # a file that is not DICOM: one ingest_errors row
            (folder / name).write_text("not DICOM")
    return folder


@pytest.fixture(scope="module")
def small_warehouse(small_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    warehouse = tmp_path_factory.mktemp("small-wh") / "warehouse"
    summary = dicomwarehouse.ingest([small_folder], warehouse=warehouse)
    assert summary.instances == 4 and summary.errors == 1
    return warehouse


def _modalities(folder: Path) -> dict[str, int]:
    """Instances per modality, read with pydicom (what the warehouse must say)."""
    counts: dict[str, int] = {}
    for path in folder.iterdir():
        try:
            modality = pydicom.dcmread(path, stop_before_pixels=True).Modality
        except pydicom.errors.InvalidDicomError:
            continue
        counts[modality] = counts.get(modality, 0) + 1
    return counts


def test_import_is_light() -> None:
    """Neither the import nor reaching ``open`` loads an engine, pandas or Beam."""
    code = (
        "import sys, dicomwarehouse; dicomwarehouse.open; dicomwarehouse.ingest; "
        "print(sorted(m for m in ('apache_beam', 'duckdb', 'pandas', 'pyarrow', "
        "'google.cloud.bigquery') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]", result.stdout


def test_sql_in_both_dialects(small_warehouse: Path, small_folder: Path) -> None:
    query = "SELECT Modality, COUNT(*) AS n FROM dicom_all GROUP BY Modality ORDER BY Modality"
    with dicomwarehouse.open(small_warehouse) as warehouse:
        frame = warehouse.sql(query)
        googlesql = warehouse.sql(
            "SELECT Modality, COUNT(*) AS n FROM `bigquery-public-data.idc_current.dicom_all` "
            "GROUP BY Modality ORDER BY Modality",
            dialect="bigquery",
        )
        relation = warehouse.relation(query)
        assert dict(relation.fetchall()) == _modalities(small_folder)
    assert isinstance(frame, pd.DataFrame)
    assert dict(zip(frame["Modality"], frame["n"], strict=True)) == _modalities(small_folder)
    pd.testing.assert_frame_equal(frame, googlesql)
    with pytest.raises(Exception, match="closed"):
        warehouse.sql(query)


def test_tables_and_columns_carry_descriptions(small_warehouse: Path) -> None:
    views = {view.name: view for view in load_views()}
    with dicomwarehouse.open(small_warehouse) as warehouse:
        tables = warehouse.tables()
        series = warehouse.columns("series")
        metadata = warehouse.columns("dicom_metadata")
        with pytest.raises(UsageError, match="no table or view"):
            warehouse.columns("dicom_metadata_raw")
    assert list(tables.columns) == ["name", "kind", "description"]
    names = set(tables["name"])
    assert set(views) | {"dicom_metadata", "ingest_errors", "dicom_elements"} <= names
    assert not any(name.startswith("_") or name.endswith("_raw") for name in names)
    assert tables["description"].notna().all()
    assert set(tables["kind"]) <= {"table", "view"}
    by_name = tables.set_index("name")
    assert by_name.loc["series", "description"] == views["series"].description
    assert list(series["column"]) == list(views["series"].column_descriptions)
    assert list(series["description"]) == list(views["series"].column_descriptions.values())
    described = metadata.set_index("column")["description"]
    assert described["PatientName"] == "Patient's Name (0010,0010)"
    assert described["source_url"].startswith("URL of the object")


def test_gs_warehouse_is_read_from_its_committed_files(
    gcs_server,  # noqa: F811
    small_folder: Path,
    small_warehouse: Path,
) -> None:
    bucket = gcs_client().create_bucket("api-warehouse")
    prefix = f"gs://{bucket.name}/warehouse"
    dicomwarehouse.ingest([small_folder], warehouse=prefix)
    query = "SELECT source_url, SOPInstanceUID FROM dicom_metadata ORDER BY source_url"
    with dicomwarehouse.open(prefix) as remote, dicomwarehouse.open(small_warehouse) as local:
        copy = Path(remote._copy)
        assert remote.sql(query).equals(local.sql(query))
        assert remote.export("SELECT source_url FROM dicom_metadata", format="urls") == (
            local.export("SELECT source_url FROM dicom_metadata", format="urls")
        )
    assert not copy.exists()
    with pytest.raises(UsageError, match="no committed run"):
        dicomwarehouse.open(f"gs://{bucket.name}/nothing-here")


# --- BigQuery --------------------------------------------------------------------------------


class _Job:
    def __init__(self, relation: Any, dry_run: bool) -> None:
        from google.cloud import bigquery

        self.relation = relation
        self.schema = [bigquery.SchemaField(name, "STRING") for name in relation.columns]
        self.dry_run = dry_run

    def to_dataframe(self) -> pd.DataFrame:
        assert not self.dry_run
        return self.relation.df()

    def to_arrow(self) -> Any:
        assert not self.dry_run
        return self.relation.fetch_arrow_table()


class DuckDBBackedClient:
    """The calls of google.cloud.bigquery.Client the API makes, answered from a local
    warehouse: GoogleSQL through the dialect layer, the catalog from DuckDB's."""

    project = "test-project"

    def __init__(self, warehouse: Path) -> None:
        from dicomwarehouse.warehouse.duckdb_file import connect

        self.connection = connect(warehouse)
        self.local = dicomwarehouse.open(warehouse)
        self.configs: list[Any] = []
        self.closed = False

    def query(self, sql: str, job_config: Any = None) -> _Job:
        from google.cloud import bigquery

        from dicomwarehouse.warehouse.googlesql import translate

        assert isinstance(job_config, bigquery.QueryJobConfig)
        self.configs.append(job_config)
        return _Job(self.connection.sql(translate(sql)), bool(job_config.dry_run))

    def list_tables(self, dataset: str) -> list[SimpleNamespace]:
        assert dataset == "test-project.dicom"
        return [SimpleNamespace(table_id=name) for name in ("series", "dicom_metadata")]

    def get_table(self, table_id: str) -> Any:
        from google.cloud import bigquery

        name = table_id.rsplit(".", 1)[-1]
        columns = self.local.columns(name)
        table = bigquery.Table(
            table_id,
            schema=[
                bigquery.SchemaField(row.column, "STRING", description=row.description)
                for row in columns.itertuples()
            ],
        )
        table._properties["type"] = "VIEW"
        table.description = f"the {name} view"
        return table

    def close(self) -> None:
        self.closed = True
        self.connection.close()
        self.local.close()


def test_bigquery_warehouse_runs_the_same_notebook(small_warehouse: Path, tmp_path: Path) -> None:
    pytest.importorskip("google.cloud.bigquery")
    client = DuckDBBackedClient(small_warehouse)
    query = (
        "SELECT SeriesInstanceUID, ARRAY_LENGTH(ARRAY_AGG(SOPInstanceUID)) AS n FROM dicom_all "
        "GROUP BY SeriesInstanceUID ORDER BY SeriesInstanceUID"
    )
    cohort = "SELECT SeriesInstanceUID FROM series WHERE Modality = 'MR'"
    with dicomwarehouse.open(small_warehouse) as local:
        expected = local.sql(query, dialect="bigquery")
        expected_export = local.export(cohort, format="csv", dialect="bigquery")
    with dicomwarehouse.open(bigquery="dicom", client=client) as warehouse:
        assert warehouse.dialect == "bigquery"
        pd.testing.assert_frame_equal(warehouse.sql(query), expected)
        assert warehouse.export(cohort, format="csv") == expected_export
        assert warehouse.export(cohort, format="csv", dialect="bigquery") == expected_export
        tables = warehouse.tables()
        columns = warehouse.columns("series")
        with pytest.raises(UsageError, match="GoogleSQL"):
            warehouse.sql("SELECT 1", dialect="duckdb")
        with pytest.raises(UsageError, match="DuckDB warehouses"):
            warehouse.relation("SELECT 1")
    assert client.closed
    assert {str(config.default_dataset) for config in client.configs} == {"test-project.dicom"}
    assert any(config.dry_run for config in client.configs)  # column lists cost no scan
    assert list(tables["name"]) == ["dicom_metadata", "series"]
    assert set(tables["kind"]) == {"view"}
    assert "SeriesInstanceUID" in set(columns["column"])
    assert columns["description"].notna().all()


def test_open_needs_one_warehouse() -> None:
    with pytest.raises(UsageError, match="warehouse folder"):
        dicomwarehouse.open()
    with pytest.raises(UsageError, match="no warehouse"):
        dicomwarehouse.open("/nonexistent/warehouse")


# --- ingest ----------------------------------------------------------------------------------


def test_ingest_takes_the_command_line_options(small_folder: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "one.txt"
    manifest.write_text(f"{small_folder / 'CT_small.dcm'}\n")
    summary = dicomwarehouse.ingest([], warehouse=tmp_path / "wh", manifests=manifest)
    assert (summary.objects, summary.instances, summary.errors) == (1, 1, 0)
    again = dicomwarehouse.ingest(
        str(small_folder / "CT_small.dcm"), warehouse=tmp_path / "wh", incremental=True
    )
    assert again.instances == 0 and again.actions.get("unchanged") == 1
    with pytest.raises(UsageError, match="unknown ingest option 'incremantal'"):
        dicomwarehouse.ingest([str(small_folder)], warehouse=tmp_path / "wh", incremantal=True)
