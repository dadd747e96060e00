"""Required columns: SQL naming attributes absent from the data binds (issue 13, causes A, B).

The end-to-end tests run the real ingest on generated files (a segmentation whose segments
have no AnatomicRegionModifierSequence, and a CT image without any SegmentSequence), with a
required-columns file, then run GoogleSQL naming the absent attributes on the DuckDB warehouse.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from dicom_samples import base_dataset, dicom_bytes
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomwarehouse.cli import main
from dicomwarehouse.tables.bigquery_schema import arrow_schema_to_bigquery
from dicomwarehouse.tables.required_columns import (
    DICOM_ALL_COLUMNS,
    RequiredColumnsError,
    parse_column_path,
    read_required_columns,
    sql_column_paths,
    sql_paths_and_outputs,
    with_prefixes,
)
from dicomwarehouse.tables.schema import metadata_schema
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.googlesql import translate
from dicomwarehouse.warehouse.views import load_views, referenced_column_paths, to_duckdb

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"


def _keywords(paths) -> list[str]:
    return sorted(".".join(keyword_for_tag(tag) for tag in path) for path in paths)


# --- keyword paths --------------------------------------------------------------------------


def test_parse_column_path() -> None:
    assert parse_column_path("SegmentSequence.AnatomicRegionSequence.CodeValue") == (
        tag_for_keyword("SegmentSequence"),
        tag_for_keyword("AnatomicRegionSequence"),
        tag_for_keyword("CodeValue"),
    )
    assert parse_column_path(" SegmentSequence[].SegmentLabel ") == parse_column_path(
        "SegmentSequence.SegmentLabel"
    )


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("SegmentSequence.NoSuchKeyword", "NoSuchKeyword is not a DICOM keyword"),
        ("PatientName.FamilyName", "PatientName is not a sequence"),
        ("PixelData", "binary attribute"),
        ("SegmentSequence..CodeValue", "not a keyword path"),
    ],
)
def test_bad_column_paths(text: str, words: str) -> None:
    with pytest.raises(RequiredColumnsError, match=words):
        parse_column_path(text)


def test_required_columns_file(tmp_path: Path) -> None:
    listed = tmp_path / "columns.txt"
    listed.write_text("# what our SQL reads\n\nObjectiveLensPower\nSegmentSequence.SegmentLabel\n")
    assert _keywords(read_required_columns(listed)) == [
        "ObjectiveLensPower",
        "SegmentSequence.SegmentLabel",
    ]
    listed.write_text("ObjectiveLensPower\nSegmentSequence.Nope\n")
    with pytest.raises(RequiredColumnsError, match=r"line 2: .*Nope") as error:
        read_required_columns(listed)
    assert "\n" not in str(error.value)


def test_with_prefixes() -> None:
    assert with_prefixes([(1, 2, 3), (4,)]) == {(1,), (1, 2), (1, 2, 3), (4,)}


def test_sql_column_paths_follow_unnest_and_ctes() -> None:
    sql = """
    WITH segments AS (
      SELECT s.SOPInstanceUID, segment
      FROM dicom_all AS s CROSS JOIN UNNEST(s.SegmentSequence) AS segment
    )
    SELECT
      SOPInstanceUID,
      segment.SegmentLabel,
      segment.AnatomicRegionSequence[SAFE_OFFSET(0)].CodeMeaning AS region,
      (SELECT STRING_AGG(m.CodeMeaning) FROM UNNEST(segment.AnatomicRegionModifierSequence) AS m)
        AS modifiers
    FROM segments
    WHERE PatientName.Alphabetic.FamilyName = 'Doe'
    """
    assert _keywords(sql_column_paths(sql)) == [
        "PatientName",
        "SOPInstanceUID",
        "SegmentSequence",
        "SegmentSequence.AnatomicRegionModifierSequence",
        "SegmentSequence.AnatomicRegionModifierSequence.CodeMeaning",
        "SegmentSequence.AnatomicRegionSequence",
        "SegmentSequence.AnatomicRegionSequence.CodeMeaning",
        "SegmentSequence.SegmentLabel",
    ]


def test_sql_column_paths_of_a_range_variable_named_like_its_column() -> None:
    """IDC's measurement-group walk names each level's range variable contentSequence."""
    sql = (Path(__file__).parent / "golden_sql" / "measurement_group_numbers.sql").read_text()
    assert "ContentSequence.ContentSequence.ConceptNameCodeSequence.CodeMeaning" in _keywords(
        sql_column_paths(sql)
    )


def test_sql_column_paths_through_scalar_subqueries_and_other_views() -> None:
    """A view's output column that is a sequence item carries its path into the views that read
    it, and so does a scalar subquery that returns one."""
    groups_sql = """
    SELECT
      SOPInstanceUID,
      grp AS contentSequence,
      (
        SELECT item.ReferencedSOPSequence[SAFE_OFFSET(0)]
        FROM UNNEST(grp.ContentSequence) AS item
        WHERE item.ValueType = 'IMAGE'
        LIMIT 1
      ) AS reference
    FROM dicom_metadata CROSS JOIN UNNEST(ContentSequence) AS grp
    """
    paths, outputs = sql_paths_and_outputs(groups_sql)
    assert "ContentSequence.ContentSequence.ReferencedSOPSequence" in _keywords(paths)
    assert set(outputs) == {"sopinstanceuid", "contentsequence", "reference"}
    measurements_sql = """
    SELECT g.reference.ReferencedSOPInstanceUID, item.MeasuredValueSequence[OFFSET(0)].NumericValue
    FROM groups AS g CROSS JOIN UNNEST(g.contentSequence.ContentSequence) AS item
    """
    read = _keywords(sql_column_paths(measurements_sql, {"groups": outputs}))
    assert "ContentSequence.ContentSequence.ReferencedSOPSequence.ReferencedSOPInstanceUID" in read
    assert "ContentSequence.ContentSequence.MeasuredValueSequence.NumericValue" in read
    # without the other view's outputs, the same SQL reaches nothing under ContentSequence
    assert not any(
        path.startswith("ContentSequence") for path in _keywords(sql_column_paths(measurements_sql))
    )


def test_views_read_nested_paths_of_the_derived_views() -> None:
    read = _keywords(referenced_column_paths())
    assert {
        "SegmentSequence.AnatomicRegionSequence.AnatomicRegionModifierSequence.CodeValue",
        "ContentSequence.ContentSequence.ContentSequence.MeasuredValueSequence.NumericValue",
        "ContentSequence.ContentSequence.ContentSequence.ContentSequence.ConceptCodeSequence"
        ".CodeMeaning",
        "ContentSequence.ContentSequence.ContentSequence.ReferencedSOPSequence"
        ".ReferencedSegmentNumber",
        "ROIContourSequence.ContourSequence.NumberOfContourPoints",
        "AnnotationGroupSequence.AnnotationGroupAlgorithmIdentificationSequence.AlgorithmName",
        "SpecimenDescriptionSequence.SpecimenPreparationSequence"
        ".SpecimenPreparationStepContentItemSequence.ConceptCodeSequence.CodeMeaning",
    } <= set(read)


# --- the BigQuery schema of a run with nested required columns ------------------------------


def test_bigquery_schema_has_the_nested_required_columns() -> None:
    paths = with_prefixes([parse_column_path("SegmentSequence.AnatomicRegionModifierSequence")])
    fields = arrow_schema_to_bigquery(metadata_schema(paths), "dicom_metadata")
    segment = next(field for field in fields if field["name"] == "SegmentSequence")
    assert segment["mode"] == "REPEATED" and segment["type"] == "RECORD"
    modifier = next(f for f in segment["fields"] if f["name"] == "AnatomicRegionModifierSequence")
    assert modifier["mode"] == "REPEATED" and modifier["type"] == "RECORD"


# --- dicom_all's IDC provenance columns ------------------------------------------------------


def test_dicom_all_adds_idc_provenance_columns() -> None:
    con = duckdb.connect()
    con.register(
        "metadata",
        pa.table(
            {
                "source_url": ["gs://b/a.dcm", "s3://b/c.dcm", "/data/d.dcm"],
                "source_size": pa.array([10, 20, 30], pa.int64()),
            }
        ),
    )
    con.execute("CREATE TABLE dicom_metadata AS SELECT * FROM metadata")
    view = next(view for view in load_views() if view.name == "dicom_all")
    con.execute(f"CREATE VIEW dicom_all AS {to_duckdb(view.bigquery_sql)}")
    assert [row[0] for row in con.execute("DESCRIBE dicom_all").fetchall()] == [
        "source_url",
        "source_size",
        *DICOM_ALL_COLUMNS,
    ]
    assert sorted(con.execute("SELECT * FROM dicom_all").fetchall()) == [
        ("/data/d.dcm", 30, None, None, 30),
        ("gs://b/a.dcm", 10, "gs://b/a.dcm", None, 10),
        ("s3://b/c.dcm", 20, None, "s3://b/c.dcm", 20),
    ]


# --- end to end -------------------------------------------------------------------------------


def _segmentation() -> Dataset:
    segment = Dataset()
    segment.SegmentNumber = 1
    segment.SegmentLabel = "Liver"
    region = Dataset()
    region.CodeValue = "10200004"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Liver"
    segment.AnatomicRegionSequence = Sequence([region])
    return base_dataset(
        SOPClassUID=SEG_STORAGE, Modality="SEG", SegmentSequence=Sequence([segment])
    )


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("required")
    source = root / "in"
    source.mkdir()
    (source / "seg.dcm").write_bytes(dicom_bytes(_segmentation()))
    (source / "ct.dcm").write_bytes(dicom_bytes(base_dataset(Rows=2, Columns=2)))
    listed = root / "columns.txt"
    listed.write_text(
        "SegmentSequence.AnatomicRegionModifierSequence.CodeMeaning\n"
        "ObjectiveLensPower\n"
        "ReferencedSeriesSequence.ReferencedInstanceSequence.ReferencedSegmentNumber\n"
    )
    code = main(
        ["ingest", str(source), "--warehouse", str(root / "w"), "--required-columns", str(listed)]
    )
    assert code == 0
    return root / "w"


def test_absent_attributes_bind(warehouse: Path) -> None:
    con = connect(warehouse)
    try:
        rows = con.execute(
            translate(
                """
                SELECT
                  Modality,
                  ObjectiveLensPower,
                  segment.SegmentLabel,
                  segment.AnatomicRegionSequence[SAFE_OFFSET(0)].CodeMeaning AS region,
                  ARRAY_LENGTH(segment.AnatomicRegionModifierSequence) AS modifiers,
                  collection_id,
                  gcs_url,
                  instance_size > 0
                FROM `bigquery-public-data.idc_current.dicom_all`
                LEFT JOIN UNNEST(SegmentSequence) AS segment
                LEFT JOIN UNNEST(ReferencedSeriesSequence) AS series
                LEFT JOIN UNNEST(series.ReferencedInstanceSequence) AS instance
                WHERE instance.ReferencedSegmentNumber IS NULL
                """
            )
        ).fetchall()
    finally:
        con.close()
    assert sorted(rows, key=repr) == sorted(
        [
            ("CT", None, None, None, None, None, None, True),
            ("SEG", None, "Liver", "Liver", None, None, None, True),
        ],
        key=repr,
    )


def test_bad_required_columns_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "columns.txt"
    listed.write_text("NotAKeyword\n")
    code = main(
        ["ingest", str(tmp_path), "--warehouse", str(tmp_path / "w"), "--required-columns",
         str(listed)]
    )  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "NotAKeyword is not a DICOM keyword" in err
