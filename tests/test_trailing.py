"""Elements after Pixel Data reach dicom_elements (dicom/trailing.py), in files and buckets.

Expectations come from pydicom's full read of the same bytes (it reads past the pixels).
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pydicom
import pytest
from dicom_samples import base_dataset, dicom_bytes
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)

from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.dicom.ranged import FileRangeSource, OpenedObject, RangedObject
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef

RUN = new_run()
PIXELS = b"\x07" * (64 * 64 * 2)


def _with_pixels(encapsulated: bool = False, trailing: bool = True, frames: int = 1):
    ds = base_dataset(Rows=64, Columns=64, BitsAllocated=16, BitsStored=16, HighBit=15)
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    if encapsulated:
        ds.NumberOfFrames = frames
        # several fragments per frame, so the walk has items to step over
        ds.PixelData = encapsulate([b"\xff\xd8" + b"\x01" * 3000] * frames, fragments_per_frame=3)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.PixelData = PIXELS
        ds["PixelData"].VR = "OW"
    if trailing:
        ds.add_new(0x7FE10010, "LO", "TRAILING VENDOR")
        ds.add_new(0x7FE11001, "LO", "after the pixels")
        ds.add_new(0x7FE11002, "US", 42)
        ds.add_new(0xFFFCFFFC, "OB", b"\0" * 100)
    return ds


def _extract(tmp_path: Path, data: bytes) -> Extracted:
    path = tmp_path / "object.dcm"
    path.write_bytes(data)
    return extract_object(ObjectRef(str(path), len(data)), RUN)


def _top_level_after_pixels(data: bytes) -> dict[str, list[str] | None]:
    """pydicom's full read: top-level elements after Pixel Data with their text values."""
    ds = pydicom.dcmread(io.BytesIO(data))
    found = {}
    for element in ds:
        if element.tag > 0x7FE00010:
            text = element.value if isinstance(element.value, str | int) else None
            found[f"{int(element.tag):08X}"] = None if text is None else [str(text)]
    return found


def _rows(extracted: Extracted) -> dict[str, tuple[str, list[str] | None, int | None]]:
    assert extracted.metadata is not None, extracted.error
    rows = extracted.elements.to_pydict()
    return {
        tag: (vr, values, length)
        for tag, vr, values, length, depth in zip(
            rows["tag"],
            rows["vr"],
            rows["value_strings"],
            rows["value_length"],
            rows["depth"],
            strict=True,
        )
        if depth == 0
    }


@pytest.mark.parametrize(
    "syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian]
)
def test_elements_after_pixel_data_match_pydicoms_full_read(tmp_path: Path, syntax: str) -> None:
    data = dicom_bytes(_with_pixels(), syntax=syntax)
    expected = _top_level_after_pixels(data)
    assert set(expected) == {"7FE10010", "7FE11001", "7FE11002", "FFFCFFFC"}
    rows = _rows(_extract(tmp_path, data))
    for tag, values in expected.items():
        assert tag in rows
        if values is not None:
            assert rows[tag][1] == values
    assert rows["7FE00010"][2] == len(PIXELS)  # Pixel Data: tag, VR, length, never its value
    assert rows["7FE00010"][1] is None


@pytest.mark.parametrize("frames", [1, 4])
def test_encapsulated_pixel_data_is_walked_by_its_items(tmp_path: Path, frames: int) -> None:
    ds = _with_pixels(encapsulated=True, frames=frames)
    data = dicom_bytes(ds, syntax=JPEGBaseline8Bit)
    expected = _top_level_after_pixels(data)
    rows = _rows(_extract(tmp_path, data))
    assert set(expected) <= set(rows)
    # the encapsulated value: items and their headers, up to the sequence delimiter
    assert rows["7FE00010"][2] == len(ds.PixelData)
    assert rows["7FE11001"][1] == ["after the pixels"]


def test_no_elements_after_pixel_data_adds_only_the_pixel_data_row(tmp_path: Path) -> None:
    data = dicom_bytes(_with_pixels(trailing=False))
    header_only = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    rows = _rows(_extract(tmp_path, data))
    expected = {f"{int(t):08X}" for t in [*header_only.file_meta.keys(), *header_only.keys()]}
    assert set(rows) == expected | {"7FE00010"}


class _RecordingSource(FileRangeSource):
    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.ranges: list[tuple[int, int | None]] = []

    def __call__(self, start, stop, generation, etag):
        self.ranges.append((start, stop))
        return super().__call__(start, stop, generation, etag)


def _extract_ranged(tmp_path: Path, data: bytes) -> tuple[Extracted, _RecordingSource]:
    path = tmp_path / "object.dcm"
    path.write_bytes(data)
    ref = ObjectRef(str(path), len(data))
    source = _RecordingSource(str(path))
    options = StorageOptions(first_block=1024)
    ranged = RangedObject(ref, source, first_block=1024, whole_object_budget=1 << 20).open()
    opened = OpenedObject(ranged.completed_ref(), ranged, ranged)
    return extract_object(ref, RUN, opened=opened, storage=options), source


def _pixel_data_end(data: bytes) -> int:
    """End of the (defined-length, explicit VR little endian) Pixel Data value."""
    start = data.index(struct.pack("<HH", 0x7FE0, 0x0010) + b"OW")
    return start + 12 + struct.unpack("<L", data[start + 8 : start + 12])[0]


def test_in_a_bucket_nothing_is_fetched_when_nothing_follows_pixel_data(tmp_path: Path) -> None:
    data = dicom_bytes(_with_pixels(trailing=False))
    extracted, source = _extract_ranged(tmp_path, data)
    assert extracted.metadata is not None
    pixel_start = _pixel_data_end(data) - len(PIXELS)
    assert all(start < pixel_start for start, _ in source.ranges)


def test_in_a_bucket_what_follows_pixel_data_is_one_request(tmp_path: Path) -> None:
    data = dicom_bytes(_with_pixels())
    extracted, source = _extract_ranged(tmp_path, data)
    end = _pixel_data_end(data)
    after = [(start, stop) for start, stop in source.ranges if start >= end - len(PIXELS)]
    assert after == [(end, len(data))]  # no pixel byte, one request for the rest
    assert _rows(extracted)["7FE11001"][1] == ["after the pixels"]


def _fragments_bytes(frames: int, offset_table: bool, trailing: bool = False) -> tuple[bytes, int]:
    """An encapsulated object of 3 fragments a frame; and where its Pixel Data value starts."""
    ds = _with_pixels(encapsulated=True, trailing=trailing, frames=frames)
    ds.PixelData = encapsulate(
        [b"\xff\xd8" + b"\x01" * 3000] * frames, fragments_per_frame=3, has_bot=offset_table
    )
    ds["PixelData"].is_undefined_length = True
    data = dicom_bytes(ds, syntax=JPEGBaseline8Bit)
    return data, data.rindex(struct.pack("<HH", 0x7FE0, 0x0010) + b"OB") + 12


@pytest.mark.parametrize("offset_table", [False, True], ids=["no-offset-table", "offset-table"])
def test_in_a_bucket_many_fragments_cost_no_request_each(
    tmp_path: Path, offset_table: bool
) -> None:
    """Pixel data that ends the object with its delimiter: found from the object's last block
    and its first fragment's header, not by a request per fragment header (600 here)."""
    data, value_start = _fragments_bytes(200, offset_table)
    extracted, source = _extract_ranged(tmp_path, data)
    in_pixels = [(start, stop) for start, stop in source.ranges if start >= value_start]
    assert len(in_pixels) <= 2, in_pixels
    assert _rows(extracted)["7FE00010"][2] == len(data) - value_start - 8
    assert extracted.metadata["ingest_anomalies"] == []


def test_a_damaged_first_fragment_is_walked_and_reported(tmp_path: Path) -> None:
    data, value_start = _fragments_bytes(20, offset_table=False)
    first_fragment = value_start + 8  # after the empty offset table
    assert data[first_fragment : first_fragment + 4] == struct.pack("<HH", 0xFFFE, 0xE000)
    broken = data[:first_fragment] + b"\0\0\0\0" + data[first_fragment + 4 :]
    extracted = _extract(tmp_path, broken)
    reasons = [a["reason"] for a in extracted.metadata["ingest_anomalies"]]
    assert any("encapsulated pixel data item not readable" in r for r in reasons), reasons


def test_fragments_followed_by_elements_are_walked_one_by_one(tmp_path: Path) -> None:
    """With elements after the pixels the object does not end with the delimiter: the walk
    over the fragments finds where they start, and a damaged fragment on the way is reported."""
    data, value_start = _fragments_bytes(20, offset_table=False, trailing=True)
    assert _rows(_extract(tmp_path, data))["7FE11001"][1] == ["after the pixels"]
    item = struct.pack("<HH", 0xFFFE, 0xE000)
    tenth = [i for i in range(value_start, len(data)) if data.startswith(item, i)][10]
    broken = data[:tenth] + b"\0\0\0\0" + data[tenth + 4 :]
    extracted = _extract(tmp_path, broken)
    reasons = [a["reason"] for a in extracted.metadata["ingest_anomalies"]]
    assert any("encapsulated pixel data item not readable" in r for r in reasons), reasons
    assert "7FE11001" not in _rows(extracted)


def test_truncated_pixel_data_is_an_anomaly_not_an_error(tmp_path: Path) -> None:
    data = dicom_bytes(_with_pixels())
    cut = data[: _pixel_data_end(data) - 100]
    extracted = _extract(tmp_path, cut)
    assert extracted.metadata is not None
    reasons = [a["reason"] for a in extracted.metadata["ingest_anomalies"]]
    assert any("pixel data" in reason for reason in reasons)


def test_zeros_after_pixel_data_are_read_as_pydicom_reads_them(tmp_path: Path) -> None:
    """Zero bytes after the pixels parse as (0000,0000) elements: pydicom's full read keeps
    one, so do we (out of tag order, an anomaly), and the run of them stops the read."""
    data = dicom_bytes(_with_pixels(trailing=False)) + b"\0" * 4096
    tags = pydicom.dcmread(io.BytesIO(data)).keys()  # tags only: nothing converted
    expected = {f"{int(tag):08X}" for tag in tags if tag < 0x00020000}
    assert expected == {"00000000"}
    extracted = _extract(tmp_path, data)
    rows = _rows(extracted)
    assert expected <= set(rows)
    reasons = [a["reason"] for a in extracted.metadata["ingest_anomalies"]]
    assert any("out of tag order" in reason for reason in reasons)
    assert not any("budget" in reason for reason in reasons)
