"""IDC's crdc_study_uuid, crdc_series_uuid and crdc_instance_uuid in dicom_metadata.

Every run has them (NULL where nothing gives a value): a manifest column of that name gives
them, else an object URL in IDC's bucket layout (``<series uuid>/<instance uuid>.dcm``) gives
the series and instance ones. Checked on the URL parser, on ingests of IDC-style folders (local,
and on the GCS emulator with a CSV manifest), with IDC's SQL in BigQuery's dialect, and on a
warehouse whose older runs were committed without the columns.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from cli_runs import run_main
from dicom_samples import base_dataset, dicom_bytes
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)
from ingested import warehouse_rows

from dicomwarehouse.bigquery.plan import build_plan
from dicomwarehouse.io.urls import idc_object_uuids
from dicomwarehouse.pipeline.run import IngestOptions, ingest
from dicomwarehouse.sources.manifests import parse_manifest
from dicomwarehouse.tables.bigquery_schema import RUN_SCHEMA_FILE, run_schema_json
from dicomwarehouse.tables.required_columns import (
    CRDC_INSTANCE_COLUMN,
    CRDC_SERIES_COLUMN,
    CRDC_STUDY_COLUMN,
    IDC_MANIFEST_COLUMNS,
    url_manifest_values,
)
from dicomwarehouse.warehouse.layout import DUCKDB_FILE, committed_runs

CRDC_COLUMNS = (CRDC_STUDY_COLUMN, CRDC_SERIES_COLUMN, CRDC_INSTANCE_COLUMN)


def new_uuid() -> str:
    return str(uuid.uuid4())


# --- the URL parser -------------------------------------------------------------------------


def test_idc_layout_urls_give_series_and_instance() -> None:
    series, instance = new_uuid(), new_uuid()
    for url in (
        f"gs://idc-open-data/{series}/{instance}.dcm",
        f"s3://idc-open-data/{series}/{instance}.dcm",
        f"S3://idc-open-data-cr/{series}/{instance}.dcm",  # any case of the scheme
        f"gs://my-copy/idc/v21/{series}/{instance}.dcm",  # a copy under a prefix
        f"/data/download/{series}/{instance}.dcm",  # an s5cmd copy on disk
        f"gs://idc-open-data/{series.upper()}/{instance.upper()}.DCM",  # hex of either case
    ):
        assert idc_object_uuids(url) == (series, instance), url
    assert url_manifest_values(f"gs://b/{series}/{instance}.dcm") == {
        CRDC_SERIES_COLUMN: series,
        CRDC_INSTANCE_COLUMN: instance,
    }


def test_older_layout_gives_the_instance_only() -> None:
    instance = new_uuid()
    assert idc_object_uuids(f"gs://idc-open-idc/{instance}.dcm") == (None, instance)
    assert url_manifest_values(f"gs://idc-open-idc/{instance}.dcm") == {
        CRDC_INSTANCE_COLUMN: instance
    }
    # at the root of a local folder it is just a file named by a UUID
    assert idc_object_uuids(f"/data/{instance}.dcm") == (None, None)


def _rfc4122_breakers(text: str) -> list[str]:
    """``text`` (a version 4 UUID) made not RFC 4122 in one way each."""
    hexes = text.replace("-", "")
    return [
        hexes,  # no hyphens
        f"{{{text}}}",  # braces
        f"urn:uuid:{text}",
        text[:-1],  # one digit short
        text + "0",  # one too many
        text[:14] + "0" + text[15:],  # version 0
        text[:14] + "7" + text[15:],  # a version RFC 4122 does not define
        text[:19] + "c" + text[20:],  # variant 110x (Microsoft's)
        text[:19] + "7" + text[20:],  # variant 0xxx (NCS)
        text[:9] + "g" + text[10:],  # not hex
        text.replace("-", "_"),
    ]


def test_names_that_are_not_the_layout_give_nothing() -> None:
    series, instance = new_uuid(), new_uuid()
    urls = [
        "gs://idc-open-data/1.2.840.113654.2.55/1.2.840.113654.2.55.1.dcm",  # DICOM UIDs
        f"gs://b/notes/{instance}.dcm",  # the folder is no UUID (and not the bucket root)
        f"gs://b/{series}/{instance}.dicom",
        f"gs://b/{series}/{instance}",
        f"gs://b/{series}/{instance}.dcm.gz",
        f"gs://b/{series}/x{instance}.dcm",
        f"gs://b/{series}/{instance}.dcm/",
        f"gs://b/{series}/",
        f"gs://{series}/{instance}x.dcm",
        "ct.dcm",
        "",
    ]
    urls += [f"gs://b/{series}/{bad}.dcm" for bad in _rfc4122_breakers(instance)]
    urls += [f"gs://b/{bad}/{instance}.dcm" for bad in _rfc4122_breakers(series)]
    urls += [f"gs://b/{bad}.dcm" for bad in _rfc4122_breakers(instance)]
    for url in urls:
        assert idc_object_uuids(url) == (None, None), url
        assert url_manifest_values(url) == {}, url


def test_every_rfc4122_version_and_variant_is_taken() -> None:
    base = new_uuid()
    for version in "12345":
        for variant in "89abAB":
            text = base[:14] + version + base[15:19] + variant + base[20:]
            assert idc_object_uuids(f"gs://b/{text}/{text}.dcm") == (text.lower(), text.lower())


def test_manifest_columns_named_in_another_case_are_the_same_columns() -> None:
    series, instance = new_uuid(), new_uuid()
    manifest = (
        "GCS_URL,CRDC_Series_UUID,Crdc-Instance-UUID,Collection ID\n"
        f"gs://b/x.dcm,{series},{instance},c1\n"
    ).encode()
    (entry,) = parse_manifest(manifest, "m.csv", fetch=lambda url: b"")
    assert dict(entry.extras) == {
        CRDC_SERIES_COLUMN: series,
        CRDC_INSTANCE_COLUMN: instance,
        "collection_id": "c1",
    }


# --- ingests --------------------------------------------------------------------------------


def _idc_folder(root: Path, count: int, **attributes: Any) -> dict[str, tuple[str, str]]:
    """``count`` DICOM files laid out as in IDC's buckets: SOPInstanceUID -> (series, instance)."""
    series = new_uuid()
    layout = {}
    for _ in range(count):
        ds = base_dataset(**attributes)
        instance = new_uuid()
        (root / series).mkdir(parents=True, exist_ok=True)
        (root / series / f"{instance}.dcm").write_bytes(dicom_bytes(ds))
        layout[str(ds.SOPInstanceUID)] = (series, instance)
    return layout


def _crdc_by_sop(warehouse: Path, table: str = "dicom_metadata") -> dict[str, tuple[Any, ...]]:
    rows = warehouse_rows(
        warehouse, f"SELECT SOPInstanceUID, {', '.join(CRDC_COLUMNS)} FROM {table}"
    )
    return {row[0]: row[1:] for row in rows}


def test_a_local_idc_folder_fills_the_columns(tmp_path: Path) -> None:
    source = tmp_path / "idc"
    layout = _idc_folder(source, 2, Modality="SM")
    other = base_dataset()
    (source / "elsewhere").mkdir()
    (source / "elsewhere" / "plain.dcm").write_bytes(dicom_bytes(other))
    summary = ingest([str(source)], tmp_path / "w")
    assert (summary.instances, summary.errors) == (3, 0)
    got = _crdc_by_sop(tmp_path / "w")
    expected = {sop: (None, *uuids) for sop, uuids in layout.items()}
    expected[str(other.SOPInstanceUID)] = (None, None, None)
    assert got == expected
    assert _crdc_by_sop(tmp_path / "w", "dicom_all") == expected
    # idc-index-data's sm_instance_index carries the instance's UUID
    slides = warehouse_rows(
        tmp_path / "w", "SELECT SOPInstanceUID, crdc_instance_uuid FROM sm_instance_index"
    )
    assert slides == sorted((sop, uuids[1]) for sop, uuids in layout.items())


def test_idc_query_on_crdc_instance_uuid_binds_in_bigquery_dialect(tmp_path: Path) -> None:
    source = tmp_path / "idc"
    layout = _idc_folder(source, 3)
    ingest([str(source)], tmp_path / "w")
    sop, (series, instance) = sorted(layout.items())[1]
    # as an IDC user writes it in the BigQuery console (the URL-building pattern of IDC's
    # manifests: series folder, instance object)
    sql = (
        "SELECT SOPInstanceUID, crdc_series_uuid, "
        "CONCAT('s3://idc-open-data/', crdc_series_uuid, '/', crdc_instance_uuid, '.dcm') "
        "AS aws_object FROM `bigquery-public-data.idc_current.dicom_all` "
        f"WHERE crdc_instance_uuid = '{instance}' AND crdc_study_uuid IS NULL"
    )
    result = run_main(
        "sql", sql, "--dialect", "bigquery", "--warehouse", str(tmp_path / "w"), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "SOPInstanceUID": sop,
            "crdc_series_uuid": series,
            "aws_object": f"s3://idc-open-data/{series}/{instance}.dcm",
        }
    ]


IDC_BUCKET = "dw-idc-layout"


@pytest.fixture(scope="module")
def idc_bucket(gcs_server) -> dict[str, tuple[str, str]]:  # noqa: F811
    """Objects named as in IDC's buckets on the GCS emulator: SOPInstanceUID -> object URL."""
    bucket = gcs_client().create_bucket(IDC_BUCKET)
    series = new_uuid()
    objects = {}
    for index in range(3):
        ds = base_dataset(InstanceNumber=str(index + 1))
        name = f"{series}/{new_uuid()}.dcm"
        bucket.blob(name).upload_from_string(dicom_bytes(ds))
        objects[str(ds.SOPInstanceUID)] = (series, name)
    return objects


def test_bucket_listing_fills_the_columns(idc_bucket, tmp_path: Path) -> None:
    ingest([f"gs://{IDC_BUCKET}/"], tmp_path / "w")
    expected = {
        sop: (None, series, name.split("/")[1].removesuffix(".dcm"))
        for sop, (series, name) in idc_bucket.items()
    }
    assert _crdc_by_sop(tmp_path / "w") == expected


def test_csv_manifest_columns_win_over_the_url(idc_bucket, tmp_path: Path) -> None:
    (first, (series, name0)), (second, (_, name1)), (third, (_, name2)) = sorted(idc_bucket.items())
    study, other_series, other_instance = new_uuid(), new_uuid(), new_uuid()
    manifest = tmp_path / "idc.csv"
    manifest.write_text(
        "gcs_url,crdc_study_uuid,crdc_series_uuid,crdc_instance_uuid,collection_id\n"
        f"gs://{IDC_BUCKET}/{name0},{study},{other_series},{other_instance},c1\n"
        f"gs://{IDC_BUCKET}/{name1},{study},,,c1\n"  # empty cells: the URL's values
        f"gs://{IDC_BUCKET}/{name2},,,,\n"
    )
    summary = ingest([], tmp_path / "w", manifests=[str(manifest)])
    assert (summary.instances, summary.errors) == (3, 0)
    stem = {n: n.split("/")[1].removesuffix(".dcm") for n in (name1, name2)}
    assert _crdc_by_sop(tmp_path / "w") == {
        first: (study, other_series, other_instance),
        second: (study, series, stem[name1]),
        third: (None, series, stem[name2]),
    }
    assert warehouse_rows(tmp_path / "w", "SELECT collection_id FROM dicom_metadata") == [
        ("c1",),
        ("c1",),
        (None,),
    ]


# --- warehouses committed before the columns ------------------------------------------------


def _drop_crdc_columns(warehouse: Path) -> None:
    """Make the committed runs look as runs committed before the columns existed did."""
    for folder in (warehouse / "dicom_metadata").glob("run-*"):
        for shard in folder.glob("*.parquet"):
            table = pq.read_table(shard)
            kept = [c for c in table.column_names if c not in CRDC_COLUMNS]
            pq.write_table(table.select(kept), shard)
            schema = table.select(kept).schema
        (folder / RUN_SCHEMA_FILE).write_text(run_schema_json(schema, "dicom_metadata"))
    (warehouse / DUCKDB_FILE).unlink()


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_an_old_warehouse_binds_and_a_new_run_fills_its_own_rows(tmp_path: Path) -> None:
    source = tmp_path / "idc"
    old = _idc_folder(source, 2, Modality="SM")
    warehouse = tmp_path / "w"
    ingest([str(source)], warehouse)
    _drop_crdc_columns(warehouse)
    assert not set(CRDC_COLUMNS) & set(pq.read_schema(next(warehouse.rglob("*.parquet"))).names)

    # the views bind over the old runs alone (DuckDB rebuilt on connect; the BigQuery plan)
    nulls = {sop: (None, None, None) for sop in old}
    assert _crdc_by_sop(warehouse, "dicom_all") == nulls
    slides = warehouse_rows(warehouse, "SELECT crdc_instance_uuid FROM sm_instance_index")
    assert slides == [(None,), (None,)]
    plan = build_plan(str(warehouse), "dicomwarehouse-test", "dicom")
    names = [f["name"] for f in plan.table("dicom_metadata_history").schema]
    assert names[-len(IDC_MANIFEST_COLUMNS) :] == list(IDC_MANIFEST_COLUMNS)

    # an incremental run skips the unchanged old objects and reads a new one
    new = _idc_folder(source, 1, Modality="SM")
    summary = ingest([str(source)], warehouse, options=IngestOptions(incremental=True))
    assert (summary.actions["unchanged"], summary.actions["new"]) == (2, 1)
    assert len(committed_runs(warehouse)) == 2
    expected = {**nulls, **{sop: (None, *uuids) for sop, uuids in new.items()}}
    assert _crdc_by_sop(warehouse) == expected
    assert _crdc_by_sop(warehouse, "dicom_all") == expected

    # a full run reads the old objects again and fills what their URLs give
    ingest([str(source)], warehouse)
    assert _crdc_by_sop(warehouse) == {sop: (None, *uuids) for sop, uuids in {**old, **new}.items()}
