"""Console SQL written for IDC's dicom_all runs on our tables: golden rows on DuckDB.

The warehouse is made by the real ingest from generated files (a CT series, a segmentation
that references it, an MR image, a file that is not DICOM), and each query is GoogleSQL as a
user would paste it into the BigQuery console, translated with sqlglot
(``views.to_duckdb``). The expected rows are written out by hand.
"""

from __future__ import annotations

from typing import Any

import pytest
from dicom_samples import base_dataset, dicom_bytes
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.views import to_duckdb

ROOT = "1.2.826.0.1.3680043.8.498.77"
STUDY = f"{ROOT}.1"
CT_SERIES = f"{ROOT}.1.1"
SEG_SERIES = f"{ROOT}.1.2"
MR_STUDY = f"{ROOT}.2"
MR_SERIES = f"{ROOT}.2.1"
CT = [f"{ROOT}.1.1.{n}" for n in (1, 2, 3)]
SEG = f"{ROOT}.1.2.1"
MR = f"{ROOT}.2.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"


def _ct(index: int) -> Dataset:
    return base_dataset(
        SOPInstanceUID=CT[index],
        StudyInstanceUID=STUDY,
        SeriesInstanceUID=CT_SERIES,
        PatientID="IDC-1",
        PatientName="Doe^Jane",
        ImageType=["ORIGINAL", "PRIMARY", "AXIAL"],
        PixelSpacing=["0.703125", "0.703125"],
        SliceThickness="1.25",
        InstanceNumber=str(index + 1),
        Rows=512,
        Columns=512,
    )


def _seg() -> Dataset:
    instances = []
    for uid in CT[:2]:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_STORAGE
        item.ReferencedSOPInstanceUID = uid
        instances.append(item)
    series = Dataset()
    series.SeriesInstanceUID = CT_SERIES
    series.ReferencedInstanceSequence = Sequence(instances)
    return base_dataset(
        SOPClassUID=SEG_STORAGE,
        SOPInstanceUID=SEG,
        StudyInstanceUID=STUDY,
        SeriesInstanceUID=SEG_SERIES,
        PatientID="IDC-1",
        PatientName="Doe^Jane",
        Modality="SEG",
        ImageType=["DERIVED", "PRIMARY"],
        ReferencedSeriesSequence=Sequence([series]),
    )


def _mr() -> Dataset:
    return base_dataset(
        SOPClassUID=MR_STORAGE,
        SOPInstanceUID=MR,
        StudyInstanceUID=MR_STUDY,
        SeriesInstanceUID=MR_SERIES,
        PatientID="IDC-2",
        PatientName="Roe^John^Q",
        Modality="MR",
        ImageType=["ORIGINAL", "SECONDARY"],
        PixelSpacing=["0.9", "1.1"],
        SliceThickness="3",
    )


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("idc")
    source = root / "in"
    source.mkdir()
    for index in range(3):
        (source / f"ct{index}.dcm").write_bytes(dicom_bytes(_ct(index)))
    (source / "seg.dcm").write_bytes(dicom_bytes(_seg()))
    (source / "mr.dcm").write_bytes(dicom_bytes(_mr()))
    (source / "notes.txt").write_text("not DICOM")
    ingest([str(source)], root / "w")
    ingest([str(source / "mr.dcm")], root / "w")  # a re-ingest: still one row per object
    connection = connect(root / "w")
    yield connection
    connection.close()


def rows(con, bigquery_sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(to_duckdb(bigquery_sql)).fetchall(), key=repr)


def test_image_type_containment(con) -> None:
    assert rows(
        con, "SELECT SOPInstanceUID FROM dicom_all WHERE 'ORIGINAL' IN UNNEST(ImageType)"
    ) == sorted([(uid,) for uid in [*CT, MR]])
    assert rows(
        con,
        "SELECT SOPInstanceUID FROM dicom_all"
        " WHERE EXISTS (SELECT 1 FROM UNNEST(ImageType) AS t WHERE t = 'DERIVED')",
    ) == [(SEG,)]


def test_safe_offset(con) -> None:
    got = rows(
        con,
        """
        SELECT
          SOPInstanceUID,
          SAFE_CAST(PixelSpacing[SAFE_OFFSET(0)] AS FLOAT64) AS row_spacing,
          SAFE_CAST(PixelSpacing[SAFE_OFFSET(1)] AS FLOAT64) AS column_spacing,
          PixelSpacing[SAFE_OFFSET(2)] AS no_third_value
        FROM dicom_all
        WHERE Modality IN ('CT', 'MR')
        """,
    )
    assert got == sorted(
        [(uid, 0.703125, 0.703125, None) for uid in CT] + [(MR, 0.9, 1.1, None)], key=repr
    )


def test_unnest_of_sequences(con) -> None:
    got = rows(
        con,
        """
        SELECT
          seg.SOPInstanceUID,
          referenced_series.SeriesInstanceUID,
          referenced.ReferencedSOPInstanceUID
        FROM dicom_all AS seg
        CROSS JOIN UNNEST(seg.ReferencedSeriesSequence) AS referenced_series
        CROSS JOIN UNNEST(referenced_series.ReferencedInstanceSequence) AS referenced
        WHERE seg.SOPClassUID = '1.2.840.10008.5.1.4.1.1.66.4'
        """,
    )
    assert got == [(SEG, CT_SERIES, CT[0]), (SEG, CT_SERIES, CT[1])]
    assert rows(
        con,
        "SELECT SOPInstanceUID, ARRAY_LENGTH(ReferencedSeriesSequence) FROM dicom_all"
        " WHERE ARRAY_LENGTH(ReferencedSeriesSequence) > 0",
    ) == [(SEG, 1)]


def test_person_name_components(con) -> None:
    assert rows(
        con,
        "SELECT DISTINCT PatientID, PatientName.Alphabetic.GivenName FROM dicom_all"
        " WHERE PatientName.Alphabetic.FamilyName = 'Doe'",
    ) == [("IDC-1", "Jane")]
    assert rows(
        con,
        "SELECT PatientName.Alphabetic.MiddleName, PatientName.Ideographic.FamilyName"
        " FROM dicom_all WHERE PatientID = 'IDC-2'",
    ) == [("Q", None)]


def test_cohort_query_on_views(con) -> None:
    """Thin CT series whose study also has a segmentation: the IDC tutorial's kind of query."""
    got = rows(
        con,
        """
        SELECT ct.SeriesInstanceUID, ct.instance_count, ct.slice_thickness_max_mm
        FROM series AS ct
        JOIN studies USING (StudyInstanceUID)
        WHERE ct.Modality = 'CT'
          AND ct.slice_thickness_max_mm < 1.5
          AND 'SEG' IN UNNEST(studies.modalities)
        """,
    )
    assert got == [(CT_SERIES, 3, 1.25)]


def test_counts_after_a_re_ingest(con) -> None:
    assert rows(con, "SELECT Modality, COUNT(*) FROM dicom_all GROUP BY Modality") == [
        ("CT", 3),
        ("MR", 1),
        ("SEG", 1),
    ]
    assert rows(con, "SELECT COUNT(*) FROM ingest_errors") == [(1,)]
