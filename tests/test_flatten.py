"""Flatten rules: every VR, VM 1 and n, nested sequences, PN, private blocks, bad values."""

from __future__ import annotations

import io
from collections import Counter

import pyarrow as pa
import pytest
from dicom_samples import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    base_dataset,
    dicom_bytes,
    every_vr_dataset,
    nested_dataset,
)
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence

from dicomwarehouse.dicom.flatten import FlatObject, flatten_dataset
from dicomwarehouse.dicom.read import read_header
from dicomwarehouse.tables.parquet import metadata_table
from dicomwarehouse.tables.schema import MAX_SEQUENCE_COLUMN_DEPTH, metadata_schema

SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
]


def flatten_bytes(data: bytes) -> FlatObject:
    return flatten_dataset(read_header(io.BytesIO(data)).dataset)


def pydicom_tags(data: bytes) -> Counter[str]:
    """Independent count: file meta plus Dataset.iterall() after a header-only read."""
    ds = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    tags = [f"{e.tag:08X}" for e in ds.file_meta] + [f"{e.tag:08X}" for e in ds.iterall()]
    return Counter(tags)


@pytest.fixture(scope="module", params=SYNTAXES, ids=lambda s: s.name)
def every_vr(request: pytest.FixtureRequest) -> tuple[bytes, FlatObject]:
    data = dicom_bytes(every_vr_dataset(), syntax=request.param)
    return data, flatten_bytes(data)


def test_one_element_row_per_element_at_every_depth(every_vr: tuple[bytes, FlatObject]) -> None:
    data, flat = every_vr
    assert Counter(flat.elements.tag) == pydicom_tags(data)


def test_typed_top_level_columns(every_vr: tuple[bytes, FlatObject]) -> None:
    _, flat = every_vr
    row = flat.metadata
    assert row["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert row["SliceThickness"] == "1.25"
    assert row["PixelSpacing"] == ["0.5", "0.75"]
    assert row["InstanceNumber"] == "7"
    assert row["InstitutionName"] == "Hôpital Général"
    assert row["ImageComments"] == "line one\\still one value"
    assert row["Rows"] == 512
    assert row["TagAngleSecondAxis"] == -5
    assert row["SelectorULValue"] == [1, 2, 3]
    assert row["SelectorSLValue"] == [-70000]
    assert row["SelectorFLValue"] == [0.3]
    assert row["DiffusionBValue"] == 1000.5
    assert row["DimensionIndexPointer"] == 0x00200032
    assert row["SelectorATValue"] == [0x00200032, 0x00200037]
    assert row["SelectorSVValue"] == [-(2**40)]
    assert row["SelectorUVValue"] == [2**40]
    assert row["PresentationCreationDate"] is None
    assert str(row["StudyDate"]) == "2024-01-31"
    assert str(row["StudyTime"]) == "13:45:01.250000"
    assert row["AcquisitionDateTime"].isoformat() == "2024-01-31T12:45:01.500000+00:00"
    assert row["PatientName"]["Alphabetic"] == {
        "FamilyName": "Doe",
        "GivenName": "Jane",
        "MiddleName": "Q",
        "NamePrefix": "Dr",
        "NameSuffix": "III",
    }
    assert [n["Alphabetic"]["FamilyName"] for n in row["OtherPatientNames"]] == ["Roe", "Poe"]
    assert row["TransferSyntaxUID"]  # file meta group 0002 is part of the row
    assert flat.anomalies == []


def test_sequences_are_lists_of_item_structs(every_vr: tuple[bytes, FlatObject]) -> None:
    _, flat = every_vr
    row = flat.metadata
    assert row["ReferencedImageSequence"] == []
    first, second = row["ReferencedSeriesSequence"]
    assert first["SeriesInstanceUID"] == "1.2.3"
    assert first["ReferencedInstanceSequence"][0]["ReferencedSOPInstanceUID"] == "1.2.3.4"
    assert second == {"OtherElements": []}


def test_private_elements_keep_their_creator(every_vr: tuple[bytes, FlatObject]) -> None:
    data, flat = every_vr
    other = {e["Tag"]: e for e in flat.metadata["OtherElements"]}
    implicit = dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID.is_implicit_VR
    vr = dict(zip(flat.elements.tag_path, flat.elements.vr, strict=True))
    assert "Tag_00091002" not in other  # binary: in dicom_elements only
    if implicit:
        # an unknown private tag in implicit VR has no VR: UN, binary, dicom_elements only;
        # a defined-length private sequence stays UN too, as pydicom reads it
        assert "Tag_00091001" not in other
        assert (vr["00091001"], vr["00091003"]) == ("UN", "UN")
        assert "Tag_00091003" not in flat.metadata
        return
    assert other["Tag_00091001"] == {
        "Tag": "Tag_00091001",
        "PrivateCreator": "ACME 1.0",
        "Data": ["1.5", "2.5"],
    }
    private_sequence = flat.metadata["Tag_00091003"]
    assert private_sequence[0]["PatientID"] == "nested-id"
    nested_other = {e["Tag"]: e["Data"] for e in private_sequence[0]["OtherElements"]}
    assert nested_other["Tag_00091010"] == ["inside"]
    rows = flat.elements
    creators = {t: c for t, c in zip(rows.tag_path, rows.private_creator, strict=True) if c}
    assert creators["00091001"] == "ACME 1.0"
    assert creators["00091003[0].00091010"] == "ACME 1.0"


def test_element_rows_name_their_place(every_vr: tuple[bytes, FlatObject]) -> None:
    data, flat = every_vr
    implicit = dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID.is_implicit_VR
    rows = flat.elements
    by_tag_path = {tp: i for i, tp in enumerate(rows.tag_path)}
    nested = by_tag_path["00081115[0].0008114A[0].00081155"]
    assert rows.path[nested] == (
        "ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID"
    )
    assert rows.depth[nested] == 2
    assert rows.value_strings[nested] == ["1.2.3.4"]
    sequence = by_tag_path["00081115"]
    assert (rows.vr[sequence], rows.vm[sequence], rows.value_strings[sequence]) == ("SQ", 2, None)
    binary = by_tag_path["00091002"]
    assert (rows.vr[binary], rows.value_length[binary], rows.value_strings[binary]) == (
        "UN" if implicit else "OB",
        4,
        None,
    )
    if not implicit:
        assert rows.path[by_tag_path["00091003[0].00091010"]] == "Tag_00091003[0].Tag_00091010"
    at = by_tag_path["00209165"]
    assert rows.value_strings[at] == ["00200032"]


def test_metadata_row_converts_to_arrow_with_the_schema_of_its_paths(
    every_vr: tuple[bytes, FlatObject],
) -> None:
    _, flat = every_vr
    schema = metadata_schema(flat.column_paths)
    row = dict(flat.metadata, source_url="x", ingest_run_id="r", ingested_at=None)
    table = metadata_table([row], schema)
    assert table.schema.field("PatientName").type.num_fields == 3
    assert table.schema.field("ImageType").type == pa.list_(pa.string())
    assert table.schema.field("StudyDate").type == pa.date32()
    assert (
        table.column("ReferencedSeriesSequence").to_pylist()[0][0]["SeriesInstanceUID"] == "1.2.3"
    )
    names = table.schema.names
    assert names.index("TransferSyntaxUID") < names.index("SOPClassUID") < names.index("PatientID")


def test_invalid_values_are_kept_and_reported() -> None:
    ds = base_dataset(StudyDate="20021301", PatientSex="M\\F")
    ds.add_new(0x00200013, "LO", "abc")  # Instance Number (IS) written with a wrong VR
    flat = flatten_bytes(dicom_bytes(ds))
    reasons = {a["keyword"]: a["reason"] for a in flat.anomalies}
    assert reasons == {
        "StudyDate": "date out of range",
        "InstanceNumber": "not an integer",
        "PatientSex": "2 values for a VM 1 attribute",
    }
    assert flat.metadata["StudyDate"] is None
    assert flat.metadata["InstanceNumber"] == "abc"
    assert flat.metadata["PatientSex"] == "M\\F"
    raw = dict(zip(flat.elements.tag_path, flat.elements.value_strings, strict=True))
    assert raw["00080020"] == ["20021301"]


def test_sequences_deeper_than_bigquery_allows_stay_in_elements() -> None:
    depth = MAX_SEQUENCE_COLUMN_DEPTH + 5
    data = dicom_bytes(nested_dataset(depth))
    flat = flatten_bytes(data)
    assert Counter(flat.elements.tag) == pydicom_tags(data)
    assert max(flat.elements.depth) == depth
    assert max(len(p) for p in flat.column_paths) == MAX_SEQUENCE_COLUMN_DEPTH
    assert any("deeper than" in a["reason"] for a in flat.anomalies)
    schema = metadata_schema(flat.column_paths)
    table = metadata_table([dict(flat.metadata, source_url="x", ingest_run_id="r")], schema)
    assert table.num_rows == 1


def test_value_length_of_converted_and_undefined_length_binary_values() -> None:
    """(0002,0001) of a meta group without group length is converted by pydicom before we see
    it, and an undefined-length value (icon pixel data) has no length field: both get the
    length of their bytes."""
    with open(get_testdata_file("no_meta_group_length.dcm"), "rb") as handle:
        data = handle.read()
    meta = dcmread(io.BytesIO(data)).file_meta
    assert 0x00020000 not in meta and 0x00020001 in meta
    flat = flatten_bytes(data)
    index = flat.elements.tag.index("00020001")
    assert flat.elements.value_length[index] == len(meta.FileMetaInformationVersion)

    icon = Dataset()
    icon.PixelData = encapsulate([b"\xff\xd8icon"])
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    ds = base_dataset()
    ds.IconImageSequence = Sequence([icon])
    flat = flatten_bytes(dicom_bytes(ds, syntax="1.2.840.10008.1.2.4.50"))
    index = flat.elements.tag_path.index("00880200[0].7FE00010")
    assert flat.elements.value_length[index] == len(icon.PixelData)
