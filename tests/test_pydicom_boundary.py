"""The pydicom internals the reader relies on (dicom/pydicom_boundary.py) still behave.

These fail when a pydicom upgrade changes what the boundary assumes: that deferred values stay
unread in the raw element store, that items defer long values only when asked, and that nothing
is patched at import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pydicom
from dicom_samples import base_dataset, dicom_bytes
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
        "import pydicom.filereader as f; original = f.read_dataset\n"
        "import dicomwarehouse.dicom.extract, dicomwarehouse.pipeline.transforms\n"
        "assert f.read_dataset is original, f.read_dataset\n"
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
