"""The header walker gives exactly the rows of the pydicom path, or leaves the object to it."""

from __future__ import annotations

import gc
import struct
from pathlib import Path

import pytest
from dicom_samples import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    base_dataset,
    dicom_bytes,
    every_vr_dataset,
    nested_dataset,
)
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import MPEG2MPML, DeflatedExplicitVRLittleEndian

from dicomwarehouse.dicom import walk
from dicomwarehouse.dicom.budgets import ReadBudget
from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.dicom.ranged import open_file_ranged
from dicomwarehouse.dicom.read import RAW_DATA_SET_PROBLEM
from dicomwarehouse.dicom.walk import forget_values, walk_object
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef

RUN = new_run()
#: what the two paths may differ in: the bytes each read to get the same rows
_READ_COLUMNS = ("header_bytes_read",)


def _rows(extracted: Extracted) -> tuple:
    """Everything one object contributes: error row, or metadata row, paths and elements."""
    if extracted.error is not None:
        return ("error", extracted.error["stage"], extracted.error["error_type"])
    metadata = {k: v for k, v in extracted.metadata.items() if k not in _READ_COLUMNS}
    return (metadata, extracted.column_paths, extracted.elements.to_pydict())


def assert_same_rows(path: Path, **kwargs) -> bool:
    """Both paths give the same rows; True if the walker (not the fallback) gave them."""
    ref = ObjectRef(str(path), path.stat().st_size)
    fast = extract_object(ref, RUN, walker=True, **kwargs)
    reference = extract_object(ref, RUN, walker=False, **kwargs)
    assert _rows(fast) == _rows(reference), path
    with open(path, "rb") as handle:
        return walk_object(handle, defer_size=kwargs.get("defer_size", 256 * 1024),
                           defer_in_items=False) is not None  # fmt: skip


def _write(tmp_path: Path, data: bytes, name: str = "object.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian,
                                    ExplicitVRBigEndian])  # fmt: skip
def test_every_vr_in_every_uncompressed_syntax(tmp_path: Path, syntax: str) -> None:
    path = _write(tmp_path, dicom_bytes(every_vr_dataset(), syntax=syntax))
    assert assert_same_rows(path)


def test_nested_undefined_length_sequences(tmp_path: Path) -> None:
    path = _write(tmp_path, dicom_bytes(nested_dataset(12), syntax=ImplicitVRLittleEndian))
    assert assert_same_rows(path)


def _many_items(count: int) -> Dataset:
    ds = base_dataset()
    items = []
    for index in range(count):
        item = Dataset()
        item.InstanceNumber = str(index)
        item.ImagePositionPatient = [str(index), "0.5", "-1"]
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    return ds


def test_values_and_sequences_past_the_defer_size(tmp_path: Path) -> None:
    ds = _many_items(50)
    ds.add_new(0x00091001, "OB", b"\x01" * 5000)  # binary: skipped, never needed
    ds.ImageComments = "x" * 3000  # text: deferred, with an anomaly
    path = _write(tmp_path, dicom_bytes(ds))
    assert assert_same_rows(path, defer_size=1024)
    anomalies = extract_object(ObjectRef(str(path), None), RUN, defer_size=1024).metadata[
        "ingest_anomalies"
    ]
    assert any("deferred" in a["reason"] for a in anomalies)


def _recurring_values(**attributes: object) -> Dataset:
    """Values that recur at the top level, in items at two depths and in an item that cannot
    be a column: text, numbers, dates, names, multi-valued and unusable values."""
    values = {
        "Modality": "CT",
        "ImageType": ["ORIGINAL", "PRIMARY"],
        "StudyDate": "20240131",
        "SliceThickness": "1.25",
        "PixelSpacing": ["0.5", "0.5"],
        "InstanceNumber": "7",
        "Manufacturer": ["A", "B"],  # 2 values for a VM 1 attribute: an anomaly everywhere
        "ReferringPhysicianName": "Doe^Jane",
        "Rows": 512,
        **attributes,
    }
    inner = Dataset()
    for keyword, value in values.items():
        setattr(inner, keyword, value)
    outer = Dataset()
    for keyword, value in values.items():
        setattr(outer, keyword, value)
    outer.ReferencedImageSequence = Sequence([inner, inner])
    ds = base_dataset(**values)
    ds.ReferencedSeriesSequence = Sequence([outer])
    ds.add_new(0x00291010, "SQ", Sequence([outer]))  # private: its items are no column
    ds.add_new(0x00290010, "LO", "CREATOR")
    return ds


def test_values_met_before_give_the_same_rows(tmp_path: Path) -> None:
    """A value met before, in this object or another, at any depth, gives the rows it gave
    the first time at its own place (the walker keeps what each value gave)."""
    forget_values()
    first = _write(tmp_path, dicom_bytes(_recurring_values()), "first.dcm")
    second = _write(tmp_path, dicom_bytes(_recurring_values()), "second.dcm")
    other = _write(tmp_path, dicom_bytes(_recurring_values(Modality="MR")), "other.dcm")
    for path in (first, first, second, other):
        assert assert_same_rows(path)
    rows = extract_object(ObjectRef(str(second), None), RUN).elements.to_pydict()
    paths = [path for path in rows["tag_path"] if path.endswith("00080060")]
    # Modality at every place (top, the item, its 2 items, and the same in the private
    # sequence), each with its own tag_path
    assert len(paths) == len(set(paths)) == 7


def test_values_kept_are_nothing_the_collector_scans_again(tmp_path: Path) -> None:
    """What the walker keeps of the values it met lives as long as the worker, which runs a
    full collection every 200 objects: once the collector has seen them, it must stop tracking
    them (plain tuples of strings and numbers), or every collection scans them all again."""
    forget_values()
    ds = every_vr_dataset()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # a list column, kept as a tuple
    for name in ("first.dcm", "second.dcm"):
        extract_object(ObjectRef(str(_write(tmp_path, dicom_bytes(ds), name)), None), RUN)
    for _ in range(3):  # a tuple inside a tuple is untracked one collection after the inner
        gc.collect()
    kept = [walk._DECODED, walk._OUTCOMES]
    assert all(kept)
    still_tracked = [entry for store in kept for entry in store.values() if gc.is_tracked(entry)]
    assert still_tracked == []
    # and each row gets a list of its own back, as before
    first, second = (
        extract_object(ObjectRef(str(tmp_path / name), None), RUN).metadata
        for name in ("first.dcm", "second.dcm")
    )
    assert first["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
    first["ImageType"].append("changed")
    assert second["ImageType"] == ["ORIGINAL", "PRIMARY", "AXIAL"]


def test_a_character_set_repeated_in_items_warns_on_every_object(tmp_path: Path) -> None:
    """A Specific Character Set in every item (as in a DICOMDIR's records) is worked out once
    per process; pydicom's warning on a misspelt term still reaches every object's row."""
    ds = _many_items(5)
    for item in ds.ReferencedImageSequence:
        item.SpecificCharacterSet = "ISO-IR 100"  # pydicom corrects it, with a warning
        item.PatientName = "Gr\xfcn^Hans"
    paths = [_write(tmp_path, dicom_bytes(ds), f"object{n}.dcm") for n in range(2)]
    reasons = []
    for path in paths:
        assert assert_same_rows(path)
        anomalies = extract_object(ObjectRef(str(path), None), RUN).metadata["ingest_anomalies"]
        reasons.append([a["reason"] for a in anomalies])
    assert reasons[0] == reasons[1]
    assert any("ISO-IR 100" in reason for reason in reasons[1])


def test_a_deflated_data_set_is_walked_inflated(tmp_path: Path) -> None:
    ds = _many_items(40)
    ds.add_new(0x00091001, "OB", b"\x01" * 5000)  # binary past the defer size: never needed
    data = dicom_bytes(ds, syntax=DeflatedExplicitVRLittleEndian)
    path = _write(tmp_path, data)
    assert assert_same_rows(path, defer_size=4096)  # taken by the walker, the same rows
    with open(path, "rb") as handle:
        walked = walk_object(handle, defer_size=4096, defer_in_items=False, first_read=256)
    assert walked is not None and walked.bytes_read == len(data)  # the whole object
    # a sequence past the defer size: the reference would read it at an inflated offset
    assert not assert_same_rows(path, defer_size=256)
    ranged = []
    for walker in (True, False):
        options = StorageOptions(first_block=512)
        opened = open_file_ranged(ObjectRef(str(path), len(data)), options)
        ranged.append(_rows(extract_object(opened.ref, RUN, opened=opened, walker=walker)))
    assert ranged[0] == ranged[1]


@pytest.mark.parametrize("cut", [-40, 400])
def test_a_damaged_deflated_stream_falls_back(tmp_path: Path, cut: int) -> None:
    data = dicom_bytes(_many_items(40), syntax=DeflatedExplicitVRLittleEndian)
    assert not assert_same_rows(_write(tmp_path, data[:cut]))


@pytest.mark.parametrize(
    ("value", "walked"),
    [(b"NAMED TYPE", True), (b"ABCDEFGH", True), (b"ABCD", False), (b"ABCD\0\0\0\0XY", False)],
)
def test_text_where_the_dictionary_says_sequence(
    tmp_path: Path, value: bytes, walked: bool
) -> None:
    """Implicit VR text in a sequence tag: pydicom reads its bytes as an item header; the
    walker gives the same rows where that is one empty item, else leaves it to pydicom."""
    ds = base_dataset()
    item = Dataset()
    item.add_new(0x0040A170, "OB", value)  # Purpose of Reference Code Sequence
    item.add_new(0x0040A171, "UI", "1.2.3")
    ds.add_new(0x0040A730, "SQ", Sequence([item]))
    path = _write(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian))
    assert assert_same_rows(path) is walked


def test_a_private_creator_matched_ignoring_case_is_walked(tmp_path: Path) -> None:
    """A creator the private dictionary has in another letter case: the same VR and
    anomaly as the pydicom path, and its UN sequence read as implicit VR little endian."""
    item = Dataset()
    item.ImageComments = "inside the private sequence"
    content = DicomBytesIO()  # implicit VR little endian, as a UN sequence holds it
    content.is_little_endian, content.is_implicit_VR = True, True
    write_dataset(content, item)
    body = content.getvalue()
    value = struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    ds = base_dataset()
    ds.add_new(0x20010010, "LO", "PHILIPS IMAGING DD 001")  # the dictionary: Philips Imaging
    ds.add_new(0x2001105F, "UN", value)  # Stack Sequence in the private dictionary
    path = _write(tmp_path, dicom_bytes(ds))
    assert assert_same_rows(path)
    extracted = extract_object(ObjectRef(str(path), None), RUN)
    reasons = [a["reason"] for a in extracted.metadata["ingest_anomalies"]]
    assert sum("ignoring case" in reason for reason in reasons) == 1
    rows = extracted.elements.to_pydict()
    assert rows["vr"][rows["tag"].index("2001105F")] == "SQ"
    assert ["inside the private sequence"] in rows["value_strings"]


def test_a_skipped_value_is_not_read(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.add_new(0x00090010, "LO", "ACME")
    ds.add_new(0x00091001, "OB", b"\x00" * 500_000)
    ds.ImageComments = "after the blob"
    path = _write(tmp_path, dicom_bytes(ds))
    with open(path, "rb") as handle:
        walked = walk_object(handle, defer_size=1024, defer_in_items=False)
    assert walked is not None
    assert walked.bytes_read < 50_000
    assert "after the blob" in str(walked.flat.elements.column("value_strings"))


def test_ranged_reads_give_the_same_rows(tmp_path: Path) -> None:
    ds = _many_items(300)  # a header well past the first block
    ds.add_new(0x00091001, "OB", b"\x00" * 100_000)
    path = _write(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian))
    ref = ObjectRef(str(path), path.stat().st_size)
    options = StorageOptions(first_block=4096)
    rows = []
    for walker in (True, False):
        opened = open_file_ranged(ref, options)
        rows.append(_rows(extract_object(ref, RUN, storage=options, opened=opened, walker=walker)))
    assert rows[0] == rows[1]


def test_ambiguous_vr_before_pixel_representation_falls_back(tmp_path: Path) -> None:
    """A "US or SS" value in an item before a signed Pixel Representation: the walker
    cannot know the VR while it passes, so the pydicom path gives the row."""
    ds = base_dataset(PixelRepresentation=1)
    item = Dataset()
    # Red Palette LUT Descriptor, US or SS: 65531 as US is -5 as SS
    item.add_new(0x00281101, "US", [65531, 0, 16])
    ds.ReferencedImageSequence = Sequence([item])
    path = _write(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian))
    assert not assert_same_rows(path)
    rows = extract_object(ObjectRef(str(path), None), RUN).elements.to_pydict()
    assert rows["value_strings"][rows["tag"].index("00281101")] == ["-5", "0", "16"]


@pytest.mark.parametrize(("cut", "walked"), [(200, False), (333, False), (-3, True)])
def test_truncated_files_give_the_same_rows(tmp_path: Path, cut: int, walked: bool) -> None:
    """Cut in the file meta group: left to the pydicom path; in the data set: walked (more
    in test_walk_fallbacks)."""
    data = dicom_bytes(every_vr_dataset())
    path = _write(tmp_path, data[:cut])
    assert assert_same_rows(path) is walked


def test_a_duplicate_tag_falls_back(tmp_path: Path) -> None:
    data = bytearray(dicom_bytes(base_dataset(PatientID="P1", PatientName="A^B")))
    # rename (0010,0020) Patient ID to (0010,0010): two Patient Name elements
    at = data.index(struct.pack("<HH", 0x0010, 0x0020) + b"LO")
    data[at : at + 4] = struct.pack("<HH", 0x0010, 0x0010)
    assert not assert_same_rows(_write(tmp_path, bytes(data)))


def test_element_budget_is_kept(tmp_path: Path) -> None:
    path = _write(tmp_path, dicom_bytes(_many_items(200)))
    budget = ReadBudget(max_elements=300)
    assert assert_same_rows(path, budget=budget) is True  # the walk alone has no budget
    ref = ObjectRef(str(path), path.stat().st_size)
    fast = extract_object(ref, RUN, budget=budget)
    reasons = [a["reason"] for a in fast.metadata["ingest_anomalies"]] if fast.metadata else []
    assert fast.error is not None or any("budget" in r for r in reasons)


def _reasons(path: Path) -> list[str]:
    extracted = extract_object(ObjectRef(str(path), path.stat().st_size), RUN)
    return [anomaly["reason"] for anomaly in extracted.metadata["ingest_anomalies"]]


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian])  # fmt: skip
def test_a_raw_data_set_is_walked(tmp_path: Path, syntax: str) -> None:
    ds = every_vr_dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.PixelRepresentation = 2, 2, 8, 0
    ds.add_new(0x7FE00010, "OB", b"\x01\x02\x03\x04")
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 6)  # after Pixel Data: the trailing step reads it
    path = _write(tmp_path, dicom_bytes(ds, syntax=syntax, preamble=False))
    assert path.read_bytes()[128:132] != b"DICM"
    assert assert_same_rows(path)
    assert _reasons(path).count(RAW_DATA_SET_PROBLEM) == 1


def test_a_raw_data_set_the_reference_refuses_is_left_to_it(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientID = "P"  # group 0010 first: not taken for DICOM without a prefix
    ds.PatientName = "Doe^Jane"
    ds.add_new(0x00200010, "SH", "x" * 200)  # past the first 132 bytes
    path = _write(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian, preamble=False))
    assert not assert_same_rows(path)
    extracted = extract_object(ObjectRef(str(path), None), RUN)
    assert extracted.error is not None and extracted.error["error_type"] == "NotDicom"


def _with_syntax(data: bytes, old: str, new: str) -> bytes:
    """The file with its transfer syntax UID replaced by one of the same encoded length."""
    assert len(old) == len(new)
    assert data.count(old.encode()) == 1
    return data.replace(old.encode(), new.encode())


@pytest.mark.parametrize(
    "syntax",
    ["1.2.840.10008.1.2.4.111", "1.2.840.10008.1.2.4.112", "1.2.840.10008.1.2.4.999"],
    ids=["jpeg-xl", "jpeg-xl-jpeg-recompression", "unknown"],
)
def test_an_unknown_encapsulated_syntax_is_walked_as_explicit_vr_little_endian(
    tmp_path: Path, syntax: str
) -> None:
    ds = every_vr_dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.NumberOfFrames = 2, 2, 8, 2
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([b"\x01\x02\x03\x04", b"\x05\x06\x07\x08"])
    ds["PixelData"].VR = "OB"
    ds.add_new(0xFFFCFFFC, "OB", b"\x00" * 6)
    path = _write(tmp_path, _with_syntax(dicom_bytes(ds, syntax=MPEG2MPML), MPEG2MPML, syntax))
    assert assert_same_rows(path)
    rows = extract_object(ObjectRef(str(path), None), RUN).elements.to_pydict()
    assert "FFFCFFFC" in rows["tag_path"]  # read after the encapsulated Pixel Data
    assert syntax in [v[0] for v in rows["value_strings"] if v]


def test_an_unknown_syntax_over_implicit_vr_is_walked_as_implicit_vr(tmp_path: Path) -> None:
    """Explicit VR by the syntax, implicit VR by its first element: pydicom switches, with a
    warning, and so does the walker."""
    data = dicom_bytes(every_vr_dataset(), syntax=ImplicitVRLittleEndian)
    path = _write(tmp_path, _with_syntax(data, ImplicitVRLittleEndian, "1.2.840.99999.9.9"))
    assert assert_same_rows(path)
    assert any(reason.startswith("Expected explicit VR") for reason in _reasons(path))


def test_file_meta_without_a_transfer_syntax(tmp_path: Path) -> None:
    for implicit in (True, False):
        ds = every_vr_dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.preamble = b"\0" * 128
        buffer = DicomBytesIO()
        dcmwrite(buffer, ds, implicit_vr=implicit, little_endian=True)
        path = _write(tmp_path, buffer.getvalue(), f"no-syntax-{implicit}.dcm")
        assert assert_same_rows(path)


def test_pydicom_files_give_the_same_rows(pydicom_files_dir: Path) -> None:
    walked = 0
    files = sorted(p for p in pydicom_files_dir.rglob("*") if p.is_file())
    for path in files:
        walked += assert_same_rows(path)
    assert walked > len(files) // 2  # the walker, not only its fallback, was compared


@pytest.mark.slow
def test_corpus_gives_the_same_rows(shared_corpus: Path) -> None:
    walked = 0
    files = sorted(p for p in shared_corpus.rglob("*") if p.is_file())
    for path in files:
        walked += assert_same_rows(path)
    assert walked > len(files) * 9 // 10
