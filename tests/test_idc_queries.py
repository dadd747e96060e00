"""Console SQL written for IDC's dicom_all runs on our tables: golden rows on DuckDB.

The warehouse is made by the real ingest from generated files (a CT series, a segmentation
that references it, an MR image, a file that is not DICOM), and each query is GoogleSQL as a
user would paste it into the BigQuery console, translated with sqlglot
(``views.to_duckdb``). The expected rows are written out by hand.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cli_runs import run_main
from dicom_samples import base_dataset, dicom_bytes
from ingested import IngestedFolder
from pydicom import dcmread
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


# --- IDC-style queries over the derived views -------------------------------------------------
#
# Written as an IDC user writes them in the BigQuery console (the derived views under their
# public names, `bigquery-public-data.idc_current.<view>`), run by `dicomwarehouse sql
# --dialect bigquery` on a warehouse of highdicom and pydicom objects (the session's
# annotation_warehouse), and checked against what pydicom reads from the same files.

IDC = "bigquery-public-data.idc_current"


def bigquery_rows(warehouse: Path, sql: str) -> list[dict[str, Any]]:
    """The rows of GoogleSQL ``sql`` as the ``sql --dialect bigquery`` command returns them."""
    result = run_main(
        "sql", sql, "--dialect", "bigquery", "--warehouse", str(warehouse), "--format", "json"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def annotations(annotation_warehouse: IngestedFolder) -> dict[str, list[Dataset]]:
    """The objects of the annotation warehouse, read with pydicom, by kind."""
    kinds: dict[str, list[Dataset]] = defaultdict(list)
    for path in sorted(annotation_warehouse.root.glob("*.dcm")):
        ds = dcmread(path, stop_before_pixels=True)
        kinds[ds.Modality].append(ds)
    return kinds


def _items(group: Dataset, value_type: str) -> list[tuple[int, Dataset]]:
    return [
        (index, item)
        for index, item in enumerate(group.ContentSequence)
        if item.ValueType == value_type
    ]


def _tracking_id(group: Dataset) -> str:
    return next(
        item.TextValue
        for _, item in _items(group, "TEXT")
        if item.ConceptNameCodeSequence[0].CodeValue == "112039"
    )


def _groups(report: Dataset) -> list[Dataset]:
    return [
        item
        for container in report.ContentSequence
        for item in container.get("ContentSequence", [])
        if item.ValueType == "CONTAINER" and item.ConceptNameCodeSequence[0].CodeValue == "125007"
    ]


def test_idc_segments_by_structure(annotation_warehouse: IngestedFolder, annotations) -> None:
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          SegmentedPropertyType.CodeMeaning AS structure,
          COUNT(DISTINCT SeriesInstanceUID) AS seg_series,
          COUNT(*) AS segments
        FROM `{IDC}.segmentations`
        GROUP BY structure
        ORDER BY segments DESC, structure
        """,
    )
    expected = Counter(
        segment.SegmentedPropertyTypeCodeSequence[0].CodeMeaning
        for seg in annotations["SEG"]
        for segment in seg.SegmentSequence
    )
    assert [(row["structure"], row["segments"]) for row in got] == sorted(
        expected.items(), key=lambda pair: (-pair[1], pair[0])
    )
    assert {row["seg_series"] for row in got} == {1}


def test_idc_volumes_of_segments(annotation_warehouse: IngestedFolder, annotations) -> None:
    """Quantitative measurements joined to the segments they were computed on."""
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          seg.SegmentLabel,
          qm.trackingIdentifier,
          SAFE_CAST(qm.Value AS FLOAT64) AS volume,
          qm.Units.CodeValue AS units
        FROM `{IDC}.quantitative_measurements` AS qm
        JOIN `{IDC}.segmentations` AS seg
          ON seg.SOPInstanceUID = qm.segmentationInstanceUID
          AND seg.SegmentNumber = qm.segmentationSegmentNumber
        WHERE qm.Quantity.CodeMeaning = 'Volume'
        ORDER BY seg.SegmentLabel
        """,
    )
    labels = {
        segment.SegmentNumber: segment.SegmentLabel
        for seg in annotations["SEG"]
        for segment in seg.SegmentSequence
    }
    expected = []
    for group in _groups(annotations["SR"][0]):
        images = _items(group, "IMAGE")
        if not images:
            continue
        number = images[0][1].ReferencedSOPSequence[0].ReferencedSegmentNumber
        for _, item in _items(group, "NUM"):
            if item.ConceptNameCodeSequence[0].CodeMeaning == "Volume":
                measured = item.MeasuredValueSequence[0]
                expected.append(
                    {
                        "SegmentLabel": labels[number],
                        "trackingIdentifier": _tracking_id(group),
                        "volume": pytest.approx(float(measured.NumericValue), abs=1e-9),
                        "units": measured.MeasurementUnitsCodeSequence[0].CodeValue,
                    }
                )
    assert len(expected) == 2
    assert got == sorted(expected, key=lambda row: row["SegmentLabel"])


def test_idc_group_items_with_offset(annotation_warehouse: IngestedFolder, annotations) -> None:
    """WITH OFFSET over a group's content counts from 0, as in BigQuery."""
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          mg.trackingIdentifier,
          item_number,
          item.ConceptNameCodeSequence[OFFSET(0)].CodeMeaning AS quantity
        FROM `{IDC}.measurement_groups` AS mg
        CROSS JOIN UNNEST(mg.contentSequence.ContentSequence) AS item WITH OFFSET AS item_number
        WHERE item.ValueType = 'NUM'
        ORDER BY trackingIdentifier, item_number
        """,
    )
    expected = sorted(
        (_tracking_id(group), index, item.ConceptNameCodeSequence[0].CodeMeaning)
        for group in _groups(annotations["SR"][0])
        for index, item in _items(group, "NUM")
    )
    assert [tuple(row.values()) for row in got] == expected


def test_idc_evaluations_per_lesion(annotation_warehouse: IngestedFolder, annotations) -> None:
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          trackingIdentifier,
          STRING_AGG(
            DISTINCT CONCAT(Quantity.CodeMeaning, '=', Value.CodeMeaning), '; '
            ORDER BY CONCAT(Quantity.CodeMeaning, '=', Value.CodeMeaning)
          ) AS evaluations,
          LOGICAL_OR(segmentationInstanceUID IS NULL) AS without_segment
        FROM `{IDC}.qualitative_measurements`
        GROUP BY trackingIdentifier
        ORDER BY trackingIdentifier
        """,
    )
    expected = []
    for group in _groups(annotations["SR"][0]):
        evaluations = sorted(
            f"{item.ConceptNameCodeSequence[0].CodeMeaning}={item.ConceptCodeSequence[0].CodeMeaning}"
            for _, item in _items(group, "CODE")
            if item.ConceptNameCodeSequence[0].CodeValue not in ("121071", "363698007")
        )
        expected.append(
            {
                "trackingIdentifier": _tracking_id(group),
                "evaluations": "; ".join(dict.fromkeys(evaluations)),
                "without_segment": not _items(group, "IMAGE"),
            }
        )
    assert got == sorted(expected, key=lambda row: row["trackingIdentifier"])
    assert any(row["without_segment"] for row in got)


def test_idc_largest_measurement(annotation_warehouse: IngestedFolder, annotations) -> None:
    """ARRAY_AGG(STRUCT(...) ORDER BY ... LIMIT 1)[OFFSET(0)], the IDC notebooks' arg-max."""
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          trackingIdentifier,
          ARRAY_AGG(
            STRUCT(Quantity.CodeMeaning AS quantity, Value AS value)
            ORDER BY Value DESC LIMIT 1
          )[OFFSET(0)].quantity AS largest
        FROM `{IDC}.quantitative_measurements`
        GROUP BY trackingIdentifier
        ORDER BY trackingIdentifier
        """,
    )
    expected = {}
    for group in _groups(annotations["SR"][0]):
        values = [
            (float(item.MeasuredValueSequence[0].NumericValue), item)
            for _, item in _items(group, "NUM")
        ]
        largest = max(values, key=lambda pair: pair[0])[1]
        expected[_tracking_id(group)] = largest.ConceptNameCodeSequence[0].CodeMeaning
    assert {row["trackingIdentifier"]: row["largest"] for row in got} == expected


def test_idc_structures_on_ct(annotation_warehouse: IngestedFolder, annotations) -> None:
    """RT structure sets with a GTV, and the modality of the series they were drawn on."""
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          rt.SeriesInstanceUID,
          rt.total_rois,
          ARRAY_TO_STRING(rt.ROINames, ',') AS names,
          ANY_VALUE(da.Modality) AS referenced_modality
        FROM `{IDC}.rtstruct_index` AS rt
        JOIN `{IDC}.dicom_all` AS da
          ON da.SeriesInstanceUID = rt.referenced_SeriesInstanceUID
        WHERE 'GTV' IN UNNEST(rt.RTROIInterpretedTypes)
        GROUP BY 1, 2, 3
        """,
    )
    (structure_set,) = annotations["RTSTRUCT"]
    assert got == [
        {
            "SeriesInstanceUID": structure_set.SeriesInstanceUID,
            "total_rois": len(structure_set.StructureSetROISequence),
            "names": ",".join(sorted(roi.ROIName for roi in structure_set.StructureSetROISequence)),
            "referenced_modality": "CT",
        }
    ]


def test_idc_annotations_and_slides(annotation_warehouse: IngestedFolder, annotations) -> None:
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          ag.GraphicType,
          SUM(ag.NumberOfAnnotations) AS annotations,
          ANY_VALUE(sm.ObjectiveLensPower) AS objective
        FROM `{IDC}.ann_group_index` AS ag
        JOIN `{IDC}.ann_index` AS ann USING (SeriesInstanceUID)
        JOIN `{IDC}.sm_index` AS sm
          ON sm.SeriesInstanceUID = ann.referenced_SeriesInstanceUID
        WHERE 'hematoxylin' IN UNNEST(sm.staining_usingSubstance_CodeMeaning)
        GROUP BY ag.GraphicType
        ORDER BY ag.GraphicType
        """,
    )
    (bulk,) = annotations["ANN"]
    (slide,) = annotations["SM"]
    expected = Counter()
    for annotation_group in bulk.AnnotationGroupSequence:
        expected[annotation_group.GraphicType] += annotation_group.NumberOfAnnotations
    objective = round(float(slide.OpticalPathSequence[0].ObjectiveLensPower))
    assert got == [
        {"GraphicType": kind, "annotations": total, "objective": objective}
        for kind, total in sorted(expected.items())
    ]


def test_idc_regular_ct_volumes(annotation_warehouse: IngestedFolder, annotations) -> None:
    got = bigquery_rows(
        annotation_warehouse.warehouse,
        f"""
        SELECT
          ct.SeriesInstanceUID,
          ROUND(vg.slice_spacing_mm, 2) AS spacing,
          vg.regularly_spaced_3d_volume
        FROM `{IDC}.ct_index` AS ct
        JOIN `{IDC}.volume_geometry` AS vg USING (SeriesInstanceUID)
        WHERE ct.KVP >= 100
        ORDER BY ct.SeriesInstanceUID
        """,
    )
    positions: dict[str, list[float]] = defaultdict(list)
    missing: Counter[str] = Counter()
    for image in annotations["CT"]:
        if "ImagePositionPatient" in image:
            positions[image.SeriesInstanceUID].append(float(image.ImagePositionPatient[2]))
        else:
            missing[image.SeriesInstanceUID] += 1
    expected = []
    for series, z in sorted(positions.items()):
        steps = {round(step, 6) for step in np.diff(sorted(z))}
        distinct = sorted(set(z))
        expected.append(
            {
                "SeriesInstanceUID": series,
                "spacing": round((distinct[-1] - distinct[0]) / (len(distinct) - 1), 2),
                "regularly_spaced_3d_volume": len(steps) == 1 and not missing[series],
            }
        )
    assert got == expected
    assert [row["regularly_spaced_3d_volume"] for row in got].count(True) == 1
