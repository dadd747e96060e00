"""The pydicom internals the reader relies on (dicom/pydicom_boundary.py) still behave.

These fail when a pydicom upgrade changes what the boundary assumes: that deferred values stay
unread in the raw element store, that items defer long values only when asked, that nothing
is patched at import, and what the recovery rules (dicom/recovery.py) wrap: how the element
generator reads headers and where it hands undefined-length UN values.
"""

from __future__ import annotations

import inspect
import io
import os
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from damaged_samples import undefined_length_un_file
from dicom_samples import base_dataset, dicom_bytes
from pydicom import filereader
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomwarehouse.dicom.pydicom_boundary import (
    SUPPORTED_PYDICOM,
    check_pydicom,
    deferring_items,
    raw_elements,
)
from dicomwarehouse.dicom.ranged import open_file_ranged
from dicomwarehouse.dicom.read import read_header
from dicomwarehouse.dicom.recovery import NOT_A_VR, VALID_VRS, recovering
from dicomwarehouse.io.refs import ObjectRef

BLOB = 1024 * 1024  # a private blob far larger than any defer size


def _file_with_blob_in_an_item(tmp_path: Path) -> Path:
    """A file whose only large value is a private OB inside an undefined-length item."""
    ds = base_dataset()
    item = Dataset()
    item.add_new(0x00290010, "LO", "SOME VENDOR")
    item.add_new(0x00291010, "OB", b"\x01" * BLOB)
    ds.ReferencedSeriesSequence = Sequence([item])
    ds["ReferencedSeriesSequence"].is_undefined_length = True
    item.is_undefined_length_sequence_item = True
    path = tmp_path / "blob.dcm"
    path.write_bytes(dicom_bytes(ds))
    return path


def test_installed_pydicom_is_one_the_boundary_was_checked_with() -> None:
    check_pydicom()
    major, minor = (int(part) for part in pydicom.__version__.split(".")[:2])
    assert (major, minor) in SUPPORTED_PYDICOM


def test_nothing_is_patched_at_import() -> None:
    code = (
        "import pydicom.filereader as f\n"
        "names = ('read_dataset', 'read_sequence', 'data_element_generator')\n"
        "original = [getattr(f, name) for name in names]\n"
        "import dicomwarehouse.dicom.extract, dicomwarehouse.pipeline.transforms\n"
        "assert [getattr(f, name) for name in names] == original\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_large_value_inside_an_undefined_length_item_is_not_fetched(tmp_path: Path) -> None:
    path = _file_with_blob_in_an_item(tmp_path)
    opened = open_file_ranged(ObjectRef(str(path), path.stat().st_size))
    with opened, deferring_items(4096):
        header = read_header(opened.raw, defer_size=4096)
        item = header.dataset.ReferencedSeriesSequence[0]
        blob = raw_elements(item)[0x00291010]
        assert isinstance(blob, RawDataElement)
        assert blob.value is None and blob.length == BLOB  # deferred, not read
        assert opened.ranged.bytes_fetched < BLOB // 8


def test_items_read_values_whole_outside_deferring_items(tmp_path: Path) -> None:
    """The wrapper changes nothing for other callers: pydicom's own behaviour is kept."""
    path = _file_with_blob_in_an_item(tmp_path)
    with deferring_items(4096):
        pass  # installs the wrapper
    with path.open("rb") as handle:
        header = read_header(handle, defer_size=4096)
    blob = raw_elements(header.dataset.ReferencedSeriesSequence[0])[0x00291010]
    assert blob.value is not None and len(blob.value) == BLOB


def test_deferred_top_level_values_stay_deferred_in_the_raw_store(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.add_new(0x00291010, "OB", b"\x02" * BLOB)
    ds.add_new(0x00290010, "LO", "SOME VENDOR")
    path = tmp_path / "top.dcm"
    path.write_bytes(dicom_bytes(ds))
    with path.open("rb") as handle:
        header = read_header(handle, defer_size=4096)
        elements = raw_elements(header.dataset)
        assert elements[0x00291010].value is None
        assert header.bytes_read < BLOB // 8
        assert [int(tag) for tag in elements][-1] == 0x00291010  # tag order kept


# --- what dicom/recovery.py assumes of pydicom's reading --------------------------------------


def test_read_sequence_and_the_generator_take_the_arguments_the_wrappers_pass() -> None:
    sequence = inspect.signature(filereader.read_sequence).parameters
    assert list(sequence)[:6] == [
        "fp", "is_implicit_VR", "is_little_endian", "bytelength", "encoding", "offset",
    ]  # fmt: skip
    generator = inspect.signature(filereader.data_element_generator).parameters
    assert list(generator)[:3] == ["fp", "is_implicit_VR", "is_little_endian"]


class _ReadSizes(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.sizes: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.sizes.append(size)
        return super().read(size)


def test_the_generator_reads_each_header_in_one_read_of_8_then_4() -> None:
    """The VR-field check sees element headers as these reads."""
    header = struct.pack("<HH", 0x0009, 0x1001) + b"OB\0\0" + struct.pack("<L", 2) + b"\1\2"
    header += struct.pack("<HH", 0x0009, 0x1002) + b"LO" + struct.pack("<H", 2) + b"AB"
    fp = _ReadSizes(header)
    elements = list(filereader.data_element_generator(fp, False, True))
    assert len(elements) == 2
    assert fp.sizes[:4] == [8, 4, 2, 8]


def test_an_undefined_length_un_is_read_through_read_sequence() -> None:
    assert pydicom.config.settings.infer_sq_for_un_vr
    data = undefined_length_un_file(little=True)
    calls = []
    original = filereader.read_sequence

    def spy(*args, **kwargs):
        calls.append(args[3])
        return original(*args, **kwargs)

    filereader.read_sequence = spy
    try:
        pydicom.dcmread(io.BytesIO(data))
    finally:
        filereader.read_sequence = original
    assert 0xFFFFFFFF in calls


def test_a_pair_of_capitals_that_is_no_vr_is_read_with_a_2_byte_length() -> None:
    """``recovery.NOT_A_VR`` relies on it: such a VR field keeps its 2-byte length."""
    assert NOT_A_VR not in VALID_VRS
    data = struct.pack("<HH", 0x0009, 0x1001) + NOT_A_VR.encode() + struct.pack("<H", 2) + b"AB"
    data += struct.pack("<HH", 0x0009, 0x1002) + b"LO" + struct.pack("<H", 2) + b"CD"
    elements = list(filereader.data_element_generator(io.BytesIO(data), False, True))
    assert [(e.VR, e.value) for e in elements] == [(NOT_A_VR, b"AB"), ("LO", b"CD")]


def test_recovery_wrappers_step_aside_outside_the_readers_reads() -> None:
    data = undefined_length_un_file(little=False)
    with recovering():
        inside = pydicom.dcmread(io.BytesIO(data))
        assert 0x0020000D in raw_elements(inside)
    with pytest.raises(Exception):  # noqa: B017 - pydicom's own failure, whatever its type
        pydicom.dcmread(io.BytesIO(data))
