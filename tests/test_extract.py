"""Reading one object: bad input becomes a reported problem or an error row, never a crash."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pytest
from dicom_samples import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    base_dataset,
    deeply_nested_bytes,
    dicom_bytes,
    every_vr_dataset,
)
from pydicom import dcmread

from dicomwarehouse.dicom.budgets import metering
from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.dicom.read import NOT_A_DATA_SET
from dicomwarehouse.io.refs import ObjectRef

RUN = new_run()


def extract_bytes(tmp_path: Path, data: bytes, name: str = "object.dcm", **kwargs) -> Extracted:
    path = tmp_path / name
    path.write_bytes(data)
    return extract_object(ObjectRef(str(path), len(data)), RUN, **kwargs)


def reasons(extracted: Extracted) -> list[str]:
    assert extracted.metadata is not None, extracted.error
    return [a["reason"] for a in extracted.metadata["ingest_anomalies"]]


@pytest.mark.parametrize(
    "data",
    [b"", b"not a dicom file at all\n" * 20, b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4],
    ids=["empty", "text", "binary"],
)
def test_not_dicom_is_one_error_row(tmp_path: Path, data: bytes) -> None:
    extracted = extract_bytes(tmp_path, data)
    assert extracted.metadata is None
    assert extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == ("parse", "NotDicom")
    assert extracted.error["source_url"].endswith("object.dcm")
    assert extracted.error["ingest_run_id"] == RUN.run_id


@pytest.mark.parametrize(
    "data",
    [
        b"not a dicom file at all\n" * 20,
        b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        # a forced parse would read a first element of 2 GB here (group 0010, implicit VR)
        b"\x10\x00\x10\x00\xff\xff\xff\x7f" + bytes(64),
    ],
    ids=["text", "binary", "long-length"],
)
def test_not_dicom_is_refused_from_its_first_bytes(tmp_path: Path, data: bytes) -> None:
    """Bytes whose first group no raw data set starts with are never parsed as elements."""
    with metering() as meter:
        extracted = extract_bytes(tmp_path, data)
    assert extracted.error is not None
    assert extracted.error["error_type"] == "NotDicom"
    assert extracted.error["message"] == NOT_A_DATA_SET
    assert meter.elements == 0  # no forced parse of the noise
    assert extracted.error["bytes_read"] <= len(data)


def test_missing_file_is_a_read_error(tmp_path: Path) -> None:
    extracted = extract_object(ObjectRef(str(tmp_path / "gone.dcm")), RUN)
    assert extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == (
        "read",
        "FileNotFoundError",
    )


def test_raw_data_set_without_preamble_is_read(tmp_path: Path) -> None:
    ds = every_vr_dataset()
    extracted = extract_bytes(tmp_path, dicom_bytes(ds, preamble=False))
    assert extracted.metadata is not None
    assert extracted.metadata["SOPInstanceUID"] == ds.SOPInstanceUID
    assert "no preamble or file meta header: read as a raw data set" in reasons(extracted)


@pytest.mark.parametrize(
    "syntax",
    [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian],
    ids=lambda s: s.name,
)
def test_transfer_syntaxes(tmp_path: Path, syntax: str) -> None:
    ds = every_vr_dataset()
    extracted = extract_bytes(tmp_path, dicom_bytes(ds, syntax=syntax))
    assert extracted.metadata is not None
    assert extracted.metadata["PatientName"]["Alphabetic"]["FamilyName"] == "Doe"
    assert extracted.metadata["TransferSyntaxUID"] == syntax
    assert reasons(extracted) == []


def test_truncated_file_keeps_what_was_read(tmp_path: Path) -> None:
    data = dicom_bytes(every_vr_dataset())
    whole = extract_bytes(tmp_path, data, "whole.dcm")
    cut = extract_bytes(tmp_path, data[: len(data) * 2 // 3], "cut.dcm")
    assert cut.metadata is not None
    assert 0 < cut.elements.num_rows < whole.elements.num_rows
    assert any("truncated" in reason for reason in reasons(cut))
    assert cut.metadata["SOPInstanceUID"] == whole.metadata["SOPInstanceUID"]


def test_nesting_beyond_the_parser_keeps_the_elements_before_it(tmp_path: Path) -> None:
    extracted = extract_bytes(tmp_path, deeply_nested_bytes(3000))
    assert extracted.metadata is not None
    assert extracted.metadata["PatientID"] == "PAT-1"
    assert any("RecursionError" in reason for reason in reasons(extracted))


def test_unknown_character_set_is_reported(tmp_path: Path) -> None:
    ds = base_dataset(SpecificCharacterSet="ISO_IR 999")
    ds.PatientName = "Müller".encode("latin-1")
    extracted = extract_bytes(tmp_path, dicom_bytes(ds))
    assert extracted.metadata["PatientName"]["Alphabetic"]["FamilyName"] == "Müller"
    assert any("ISO_IR 999" in reason for reason in reasons(extracted))


def test_wrong_character_set_is_reported(tmp_path: Path) -> None:
    ds = base_dataset(SpecificCharacterSet="ISO_IR 192")  # says UTF-8 ...
    ds.PatientName = "Müller".encode("latin-1")  # ... but holds latin-1
    extracted = extract_bytes(tmp_path, dicom_bytes(ds))
    assert extracted.metadata is not None
    assert any("decode" in reason.lower() for reason in reasons(extracted))


def test_large_values_are_skipped_not_read(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "OB", b"\x00" * 500_000)
    data = dicom_bytes(ds)
    extracted = extract_bytes(tmp_path, data, defer_size=1024)
    assert extracted.metadata is not None
    # one 8 KiB block at the start, one at the element after the blob; the blob is skipped
    assert extracted.metadata["header_bytes_read"] < 20_000
    rows = extracted.elements.to_pydict()
    blob = rows["tag"].index("00091001")
    assert (rows["vr"][blob], rows["value_length"][blob]) == ("OB", 500_000)


def test_element_rows_match_an_independent_pydicom_walk(tmp_path: Path) -> None:
    data = dicom_bytes(every_vr_dataset())
    extracted = extract_bytes(tmp_path, data)
    ds = dcmread(tmp_path / "object.dcm", stop_before_pixels=True)
    expected = Counter(f"{e.tag:08X}" for e in [*ds.file_meta, *ds.iterall()])
    assert Counter(extracted.elements.column("tag").to_pylist()) == expected
    assert set(extracted.elements.column("source_url").to_pylist()) == {
        str(tmp_path / "object.dcm")
    }


def test_signed_pixel_values_follow_pixel_representation(tmp_path: Path) -> None:
    ds = base_dataset(PixelRepresentation=1)
    ds.add_new(0x00280120, "SS", -2000)  # Pixel Padding Value: "US or SS" in the dictionary
    data = dicom_bytes(ds, syntax=ImplicitVRLittleEndian)
    extracted = extract_bytes(tmp_path, data)
    assert extracted.metadata["PixelPaddingValue"] == -2000
    rows = extracted.elements.to_pydict()
    index = rows["tag"].index("00280120")
    assert (rows["vr"][index], rows["value_strings"][index]) == ("SS", ["-2000"])


def test_padding_only_values_are_empty(tmp_path: Path) -> None:
    ds = base_dataset(ImageType="      ", PerformingPhysicianName="      ")
    extracted = extract_bytes(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian))
    assert extracted.metadata["ImageType"] == []
    assert extracted.metadata["PerformingPhysicianName"] == []
    assert reasons(extracted) == []


def test_raw_data_set_starting_with_a_group_length(tmp_path: Path) -> None:
    import struct

    body = dicom_bytes(base_dataset(), syntax=ImplicitVRLittleEndian, preamble=False)
    group_length = struct.pack("<HHII", 0x0008, 0x0000, 4, 0)
    extracted = extract_bytes(tmp_path, group_length + body)
    assert extracted.metadata is not None, extracted.error
    assert extracted.metadata["PatientID"] == "PAT-1"


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_pydicom_warnings_stay_on_the_row_and_out_of_the_process_log(tmp_path: Path) -> None:
    """A Dataflow worker's process log goes to Cloud Logging, read by more people than the data.

    Watched from the root logger, where a worker's log handler sits (pytest's caplog also
    attaches to loggers that do not propagate, so it would see them anyway).
    """
    dataset = base_dataset()
    dataset.SpecificCharacterSet = "ISO_IR 999"
    data = dicom_bytes(dataset)
    root = logging.getLogger()
    seen = _Records()
    root.addHandler(seen)
    try:
        extracted = extract_bytes(tmp_path, data)
    finally:
        root.removeHandler(seen)
    assert any("ISO_IR 999" in reason for reason in reasons(extracted))
    assert not [record for record in seen.records if record.name.startswith("pydicom")]


def test_a_transfer_syntax_pydicom_does_not_know_still_gives_rows(tmp_path: Path) -> None:
    """A transfer syntax newer than pydicom's dictionary (JPEG XL, 1.2.840.10008.1.2.4.110, in
    the shared corpus) is explicit VR little endian in its data set; not knowing its UID must
    not turn the object into an error row. Here a UID of the same length as the one written
    (so no length field changes) that pydicom does not know stands in for it."""
    path = tmp_path / "newer-syntax.dcm"
    data = dicom_bytes(base_dataset())
    path.write_bytes(data.replace(b"1.2.840.10008.1.2.1\x00", b"1.2.840.10008.1.2.9\x00", 1))
    extracted = extract_object(ObjectRef(str(path), path.stat().st_size), new_run())
    assert extracted.error is None
    assert extracted.metadata["Modality"] == "CT"


def test_element_batch_of_many_objects_is_their_own_batches_in_order(tmp_path: Path) -> None:
    """The writer's batch over many objects (shared columns repeated per object) holds exactly
    the rows each object's own batch holds: URLs of several lengths, non-ASCII, no UID."""
    from dataclasses import replace

    import pyarrow as pa

    from dicomwarehouse.dicom.flatten import element_batch

    data = dicom_bytes(every_vr_dataset())
    parts = [
        extract_bytes(tmp_path, data, name).element_rows
        for name in ("a.dcm", "naïve name with spaces.dcm", "b" * 40 + ".dcm")
    ]
    assert all(part is not None and part.num_rows > 0 for part in parts)
    parts[1] = replace(parts[1], sop_instance_uid=None)  # an object without a UID
    batch = element_batch(parts)
    batch.validate(full=True)
    expected = pa.Table.from_batches([element_batch([part]) for part in parts])
    assert pa.Table.from_batches([batch]).equals(expected)
    assert batch.column("SOPInstanceUID").null_count == parts[1].num_rows
    assert batch.column("source_url").to_pylist()[parts[0].num_rows] == parts[1].source_url
