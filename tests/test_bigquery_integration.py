"""The real publish, against BigQuery itself: runs only with a project and credentials.

Set GOOGLE_CLOUD_PROJECT, Application Default Credentials (``gcloud auth application-default
login`` or GOOGLE_APPLICATION_CREDENTIALS) and DICOMWAREHOUSE_TEST_STAGING=gs://bucket/prefix
(a bucket the credentials may write, in the dataset's location; DICOMWAREHOUSE_TEST_LOCATION,
default US). The test creates a dataset of its own and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from dicom_samples import base_dataset, dicom_bytes, every_vr_dataset

pytestmark = pytest.mark.integration


@pytest.fixture
def cloud() -> tuple[str, str, str]:
    project = os.environ.get("GOOGLE_CLOUD_PROJECT")
    staging = os.environ.get("DICOMWAREHOUSE_TEST_STAGING")
    if not project or not staging:
        pytest.skip("needs GOOGLE_CLOUD_PROJECT and DICOMWAREHOUSE_TEST_STAGING")
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        pytest.skip("no Application Default Credentials")
    return project, staging, os.environ.get("DICOMWAREHOUSE_TEST_LOCATION", "US")


def test_publish_to_bigquery(cloud: tuple[str, str, str], tmp_path: Path) -> None:
    from dicomwarehouse.bigquery.clients import GoogleBigQuery
    from dicomwarehouse.bigquery.plan import build_plan
    from dicomwarehouse.bigquery.publish import publish
    from dicomwarehouse.io.objectstore import GcsStore
    from dicomwarehouse.pipeline.run import ingest

    project, staging, location = cloud
    source = tmp_path / "in"
    source.mkdir()
    (source / "rich.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    for index in range(2):
        (source / f"{index}.dcm").write_bytes(dicom_bytes(base_dataset(InstanceNumber=str(index))))
    ingest([str(source)], tmp_path / "w")
    # a second run the same day with fewer columns: its day is loaded TRUNCATE then APPEND,
    # the APPEND declaring a schema narrower than the table's
    ingest([str(source / "0.dcm")], tmp_path / "w")
    dataset = f"dicomwarehouse_test_{uuid.uuid4().hex[:12]}"
    prefix = f"{staging.rstrip('/')}/{dataset}"
    plan = build_plan(str(tmp_path / "w"), project, dataset, location=location, staging=prefix)
    api = GoogleBigQuery.from_environment(project, location)
    store = GcsStore.from_environment(project)
    try:
        report = publish(plan, api, store)
        assert len(report.loads) == 8  # two runs: their three tables and their ledgers
        assert [s.write_disposition for s, _ in report.loads][:2] == [
            "WRITE_TRUNCATE",
            "WRITE_APPEND",
        ]
        assert publish(plan, api, store).loads == []  # nothing new: nothing loaded
        client = api.client

        def query(sql: str) -> list[tuple]:
            return [tuple(row.values()) for row in client.query(sql, location=location).result()]

        name = f"`{project}.{dataset}"
        assert query(f"SELECT COUNT(*) FROM {name}.instances`") == [(3,)]
        assert query(
            f"SELECT COUNT(*) FROM {name}.dicom_all` WHERE 'ORIGINAL' IN UNNEST(ImageType)"
        ) == [(1,)]
        assert query(
            f"SELECT PatientName.Alphabetic.FamilyName FROM {name}.dicom_all`"
            " WHERE PatientName.Alphabetic.FamilyName IS NOT NULL"
        ) == [("Doe",)]
        assert query(f"SELECT COUNT(*) FROM {name}.dicom_metadata_history`") == [(4,)]
        assert query(f"SELECT COUNT(*) FROM {name}.dicom_metadata`") == [(3,)]
    finally:
        api.client.delete_dataset(f"{project}.{dataset}", delete_contents=True, not_found_ok=True)
        for stored in store.list(prefix + "/"):
            store.delete(stored.url)
