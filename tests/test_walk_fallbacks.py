"""Objects the walker once left to the pydicom path, now walked to the same rows.

Each case builds the object the way real files have it (PS3.5 and pydicom's reading as the
reference) and checks both paths give the same rows, and that the walker did not give up.
"""

from __future__ import annotations

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
)
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from test_walk import RUN, _rows
from test_walk import assert_same_rows as assert_same_local_rows

from dicomwarehouse.dicom.extract import extract_object
from dicomwarehouse.dicom.ranged import open_file_ranged
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef

#: (0040,A730) Content Sequence: a public sequence, after every tag of ``base_dataset``
_CONTENT_SEQUENCE = (0x0040, 0xA730)
#: a private creator whose dictionary block has a sequence at element 18
_PRIVATE_CREATOR = "AGFA-AG_HPState"
_PRIVATE_SEQUENCE = (0x0071, 0x1018)


def assert_same_rows(path: Path, **kwargs: object) -> bool:
    """Both paths give the same rows, read locally and by ranges (as from a bucket, where
    the walker still leaves some of these objects to the pydicom path); True if the walker
    took the local read."""
    walked = assert_same_local_rows(path, **kwargs)
    ref = ObjectRef(str(path), path.stat().st_size)
    options = StorageOptions(first_block=4096)
    rows = [
        _rows(extract_object(ref, RUN, storage=options, opened=open_file_ranged(ref, options),
                             walker=walker, **kwargs))
        for walker in (True, False)
    ]  # fmt: skip
    assert rows[0] == rows[1], path
    return walked


def _write(tmp_path: Path, data: bytes, name: str = "object.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _item_bytes(item: Dataset, implicit: bool, little: bool) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR = implicit
    buffer.is_little_endian = little
    write_dataset(buffer, item)
    return buffer.getvalue()


def _items(implicit: bool, little: bool) -> bytes:
    """Two items of defined length, the second with a nested sequence and text."""
    first = Dataset()
    first.CodeValue = "121071"
    first.CodeMeaning = "Finding"
    inner = Dataset()
    inner.TextValue = "inner text"
    second = Dataset()
    second.ValueType = "CONTAINER"
    second.ContentSequence = [inner]
    order = "<" if little else ">"
    out = b""
    for item in (first, second):
        body = _item_bytes(item, implicit, little)
        out += struct.pack(f"{order}HHL", 0xFFFE, 0xE000, len(body)) + body
    return out


def _meta_end(data: bytes) -> int:
    """Where the file meta group ends: after its group length element, by its value."""
    return 144 + struct.unpack_from("<L", data, 140)[0]


def _explicit(tag: tuple[int, int], vr: bytes, value: bytes, little: bool) -> bytes:
    order = "<" if little else ">"
    if vr in (b"UN", b"SQ", b"OB"):
        return struct.pack(f"{order}HH2sHL", *tag, vr, 0, len(value)) + value
    return struct.pack(f"{order}HH2sH", *tag, vr, len(value)) + value


@pytest.mark.parametrize(
    ("syntax", "items_implicit"),
    [
        (ExplicitVRLittleEndian, True),  # PS3.5 6.2.2: a UN value is implicit VR LE
        (ExplicitVRLittleEndian, False),  # as some writers leave it
        (ExplicitVRBigEndian, False),
    ],
    ids=["little-implicit-items", "little-explicit-items", "big-explicit-items"],
)
def test_a_public_sequence_written_as_un_is_walked(
    tmp_path: Path, syntax: str, items_implicit: bool
) -> None:
    little = syntax != ExplicitVRBigEndian
    data = dicom_bytes(base_dataset(), syntax=syntax)
    data += _explicit(_CONTENT_SEQUENCE, b"UN", _items(items_implicit, little), little)
    assert assert_same_rows(_write(tmp_path, data))


def test_an_empty_public_sequence_written_as_un_is_walked(tmp_path: Path) -> None:
    data = dicom_bytes(base_dataset(), syntax=ExplicitVRLittleEndian)
    data += _explicit(_CONTENT_SEQUENCE, b"UN", b"", True)
    assert assert_same_rows(_write(tmp_path, data))


def _with_private_un_sequence(items: bytes) -> bytes:
    """An explicit VR object ending in a private sequence written as UN, with its creator."""
    data = dicom_bytes(base_dataset(), syntax=ExplicitVRLittleEndian)
    creator = _PRIVATE_CREATOR.encode() + b" " * (len(_PRIVATE_CREATOR) % 2)
    data += _explicit((0x0071, 0x0010), b"LO", creator, True)
    return data + _explicit(_PRIVATE_SEQUENCE, b"UN", items, True)


def test_a_private_sequence_written_as_un_is_walked(tmp_path: Path) -> None:
    data = _with_private_un_sequence(_items(True, True))
    assert assert_same_rows(_write(tmp_path, data))


def test_a_private_un_sequence_with_explicit_items_gives_the_same_rows(tmp_path: Path) -> None:
    """Read as implicit VR by both paths (PS3.5 6.2.2), whatever that makes of the items."""
    assert_same_rows(_write(tmp_path, _with_private_un_sequence(_items(False, True))))


def test_a_public_un_sequence_past_the_defer_size_is_walked(tmp_path: Path) -> None:
    data = dicom_bytes(base_dataset(), syntax=ExplicitVRLittleEndian)
    data += _explicit(_CONTENT_SEQUENCE, b"UN", _items(True, True), True)
    assert assert_same_rows(_write(tmp_path, data), defer_size=64)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian])  # fmt: skip
@pytest.mark.parametrize("value", [b"", b"  "], ids=["empty", "spaces"])
@pytest.mark.filterwarnings("ignore:Unknown encoding")  # pydicom writing the sample
def test_an_empty_specific_character_set_is_walked(
    tmp_path: Path, syntax: str, value: bytes
) -> None:
    """No term is the default repertoire (PS3.3 C.12.1.1.2); high bytes are read alike."""
    ds = base_dataset()
    ds.add_new(0x00080005, "CS", value)
    ds.add_new(0x00100010, "PN", b"M\xfcller^J\xf6rg")
    item = Dataset()
    item.add_new(0x0040A160, "UT", b"caf\xe9")
    ds.add_new(0x0040A730, "SQ", [item])
    assert assert_same_rows(_write(tmp_path, dicom_bytes(ds, syntax=syntax)))


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    ExplicitVRBigEndian])  # fmt: skip
@pytest.mark.filterwarnings("ignore:Unknown encoding")  # a Specific Character Set cut short
def test_a_truncated_object_gives_the_same_rows(tmp_path: Path, syntax: str) -> None:
    """Cut anywhere in the data set: pydicom keeps the bytes of the value the object ends in
    (a sequence of defined length parsed from them), and stops quietly before a header
    with too few bytes; where it fails (an item header cut, or a sequence of undefined
    length) the walker leaves the object to it."""
    data = dicom_bytes(every_vr_dataset(), syntax=syntax)
    meta_end = _meta_end(data)
    cuts = range(meta_end, len(data), 5)
    walked = sum(assert_same_rows(_write(tmp_path, data[:cut], f"{cut}.dcm")) for cut in cuts)
    assert walked > len(cuts) * 3 // 4


def _undefined_lengths_dataset() -> Dataset:
    """Undefined-length items in a defined-length sequence, and the reverse."""
    ds = base_dataset()
    first, second = Dataset(), Dataset()
    first.CodeValue, second.CodeMeaning = "121071", "Finding"
    for item in (first, second):
        item.is_undefined_length_sequence_item = True
    ds.ContentSequence = [first, second]
    third = Dataset()
    third.TextValue = "defined item"
    ds.add_new(0x0040B020, "SQ", [third])  # Waveform Annotation Sequence
    ds[0x0040B020].is_undefined_length = True
    ds.add_new(0x00420010, "ST", "after both")
    return ds


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian])
@pytest.mark.filterwarnings("ignore:Unknown encoding")
def test_a_truncated_object_with_undefined_lengths_gives_the_same_rows(
    tmp_path: Path, syntax: str
) -> None:
    """An undefined-length sequence cut short fails pydicom's read: left to it."""
    data = dicom_bytes(_undefined_lengths_dataset(), syntax=syntax)
    cuts = range(_meta_end(data), len(data), 3)
    walked = sum(assert_same_rows(_write(tmp_path, data[:cut], f"{cut}.dcm")) for cut in cuts)
    assert walked > 0


def test_an_object_with_no_data_set_is_walked(tmp_path: Path) -> None:
    data = dicom_bytes(base_dataset(), syntax=ExplicitVRLittleEndian)
    assert assert_same_rows(_write(tmp_path, data[: _meta_end(data)]))


@pytest.mark.parametrize(("last", "walked"), [(True, True), (False, False)],
                         ids=["at-the-end", "mid-object"])  # fmt: skip
def test_an_item_longer_than_its_sequence(tmp_path: Path, last: bool, walked: bool) -> None:
    """pydicom parses a defined-length sequence from its value's bytes: an item claiming
    more ends with them. Where the sequence ends the object (a DICOMDIR writer's item
    lengths) the walker sees its bytes end there too; before other elements it leaves the
    object to the pydicom path."""
    ds = base_dataset()
    item = Dataset()
    item.CodeValue = "121071"
    ds.ContentSequence = [item]
    if not last:
        ds.DocumentTitle = "after the sequence"
    data = bytearray(dicom_bytes(ds, syntax=ExplicitVRLittleEndian))
    item_at = data.index(struct.pack("<HH", 0xFFFE, 0xE000))
    length = struct.unpack_from("<L", data, item_at + 4)[0]
    struct.pack_into("<L", data, item_at + 4, length + 40)
    assert assert_same_rows(_write(tmp_path, bytes(data))) is walked


def _with_icon(fragments: list[bytes]) -> Dataset:
    ds = base_dataset()
    icon = Dataset()
    icon.Rows, icon.Columns, icon.BitsAllocated, icon.PixelRepresentation = 2, 2, 8, 0
    icon.PixelData = encapsulate(fragments)
    icon["PixelData"].VR = "OB"
    icon["PixelData"].is_undefined_length = True
    icon.add_new(0x7FE10010, "LO", "ACME 1.0")  # an element after it, in the same item
    ds.IconImageSequence = [icon]
    return ds


@pytest.mark.parametrize("fragments", [[b"\x01\x02\x03\x04", b"\x05\x06"], []],
                         ids=["two-fragments", "no-fragment"])  # fmt: skip
def test_an_encapsulated_icon_in_an_item_is_walked(tmp_path: Path, fragments: list) -> None:
    """A JPEG file's icon: encapsulated Pixel Data (undefined length) in a sequence item."""
    data = dicom_bytes(_with_icon(fragments), syntax="1.2.840.10008.1.2.4.50")
    assert assert_same_rows(_write(tmp_path, data))


def test_an_undefined_length_value_that_is_not_encapsulated_is_left_to_pydicom(
    tmp_path: Path,
) -> None:
    data = dicom_bytes(_with_icon([b"\x01\x02\x03\x04"]), syntax="1.2.840.10008.1.2.4.50")
    fragment = struct.pack("<HHL", 0xFFFE, 0xE000, 4) + b"\x01\x02\x03\x04"
    assert data.count(fragment) == 1
    data = data.replace(fragment, struct.pack("<HHL", 0x0009, 0x0010, 4) + fragment[8:])
    assert not assert_same_rows(_write(tmp_path, data))


@pytest.mark.parametrize(("declared", "encoded"), [
    (ExplicitVRLittleEndian, ImplicitVRLittleEndian),
    (ImplicitVRLittleEndian, ExplicitVRLittleEndian),
    ("1.2.840.10008.1.2.4.50", ImplicitVRLittleEndian),
], ids=["implicit-under-explicit", "explicit-under-implicit", "implicit-under-jpeg"])  # fmt: skip
def test_a_data_set_encoded_otherwise_than_its_syntax_says_is_walked(
    tmp_path: Path, declared: str, encoded: str
) -> None:
    """pydicom reads the data set as its first element is encoded, with a warning; the step
    after Pixel Data goes by the transfer syntax, as pydicom records the data set's."""
    ds = every_vr_dataset()
    ds.BitsAllocated, ds.PixelRepresentation = 8, 0
    meta = dicom_bytes(every_vr_dataset(), syntax=declared)
    body = dicom_bytes(ds, syntax=encoded)
    # encapsulated Pixel Data in the data set's encoding, then trailing padding
    if encoded == ImplicitVRLittleEndian:
        pixels = struct.pack("<HHL", 0x7FE0, 0x0010, 0xFFFFFFFF)
    else:
        pixels = struct.pack("<HH2sHL", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF)
    pixels += encapsulate([b"\x01\x02\x03\x04"]) + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    padding = _explicit((0xFFFC, 0xFFFC), b"OB", b"\x00" * 6, True)
    if encoded == ImplicitVRLittleEndian:
        padding = struct.pack("<HHL", 0xFFFC, 0xFFFC, 6) + b"\x00" * 6
    data = meta[: _meta_end(meta)] + body[_meta_end(body) :] + pixels + padding
    assert assert_same_rows(_write(tmp_path, data))


def test_dicm_in_the_data_of_a_raw_data_set_is_walked_as_pydicom_reads_it(tmp_path: Path) -> None:
    """No preamble, but "DICM" at byte 128 inside a value: pydicom takes what precedes for a
    preamble, finds no file meta group and reads on from byte 132, guessing the encoding."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.add_new(0x00081030, "LO", b"")
    head = dicom_bytes(ds, syntax=ImplicitVRLittleEndian, preamble=False)
    after = struct.pack("<HHL", 0x0010, 0x0010, 6) + b"Doe^J "  # read as an element there
    ds.add_new(0x00081030, "LO", b"x" * (128 - len(head)) + b"DICM" + after)
    data = dicom_bytes(ds, syntax=ImplicitVRLittleEndian, preamble=False)
    assert data[128:132] == b"DICM"
    assert assert_same_rows(_write(tmp_path, data))


@pytest.mark.filterwarnings("ignore:Unknown encoding")
def test_an_unknown_character_set_is_left_to_the_pydicom_path(tmp_path: Path) -> None:
    """The flatten notes an unknown term as an anomaly of its own, before the data set's."""
    ds = base_dataset()
    ds.add_new(0x00080005, "CS", "ISO_IR 999")
    ds.add_new(0x00100010, "PN", b"M\xfcller")
    assert not assert_same_rows(_write(tmp_path, dicom_bytes(ds)))
