"""Private dictionary look-ups that forgive the creator's case (dicom/private.py) and the
recovery rules for damaged files (dicom/recovery.py), each checked against what pydicom reads.
"""

from __future__ import annotations

import io
import random
import struct
import warnings
from pathlib import Path

import pydicom
import pytest
from damaged_samples import after_damage_tags, invalid_vr_file, undefined_length_un_file
from dicom_samples import base_dataset, dicom_bytes
from pydicom.datadict import private_dictionaries
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ImplicitVRLittleEndian

from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.dicom.private import private_entry
from dicomwarehouse.io.refs import ObjectRef

RUN = new_run()


def _extract(tmp_path: Path, data: bytes) -> Extracted:
    path = tmp_path / "object.dcm"
    path.write_bytes(data)
    extracted = extract_object(ObjectRef(str(path), len(data)), RUN)
    assert extracted.metadata is not None, extracted.error
    return extracted


def _reasons(extracted: Extracted) -> list[str]:
    return [a["reason"] for a in extracted.metadata["ingest_anomalies"]]


def test_private_entry_matches_the_creator_ignoring_case_and_spaces() -> None:
    exact = private_entry(0x2001100B, "Philips Imaging DD 001")
    assert exact is not None and exact.exact and exact.vr == "CS"
    folded = private_entry(0x2001120B, " PHILIPS IMAGING DD 001 ")  # block 12, upper case
    assert folded is not None and not folded.exact
    assert (folded.vr, folded.creator) == ("CS", "Philips Imaging DD 001")
    assert private_entry(0x2001100B, "NO SUCH CREATOR") is None
    assert private_entry(0x00100010, "Philips Imaging DD 001") is None  # not private


_VALUES = {
    "LO": "TEXT",
    "SH": "TEXT",
    "CS": "CODE",
    "DS": "1.5",
    "IS": "7",
    "UI": "1.2.3",
    "DA": "20240101",
    "TM": "101010",
    "US": 7,
    "UL": 7,
    "SS": -7,
    "SL": -7,
    "FL": 1.5,
    "FD": 1.5,
}


def _upper_case_private_file(count: int) -> tuple[bytes, dict[str, str]]:
    """An implicit VR file with private elements of random known creators, each creator
    written in upper case; returns the bytes and each element's dictionary VR."""
    rng = random.Random(5)
    ds = base_dataset()
    expected: dict[str, str] = {}
    creators = [c for c in sorted(private_dictionaries) if c.upper() != c]
    blocks: dict[int, int] = {}  # next free private block of each group
    for creator in rng.sample(creators, count):
        entries = [
            (key, entry)
            for key, entry in private_dictionaries[creator].items()
            if key[4:6] == "xx" and "x" not in key[:4] + key[6:] and entry[0] in _VALUES
        ]
        if not entries:
            continue
        key, entry = rng.choice(entries)
        group = int(key[:4], 16)
        block = blocks.get(group, 0x10)
        blocks[group] = block + 1
        ds.add_new(group << 16 | block, "LO", creator.upper())
        tag = group << 16 | block << 8 | int(key[6:], 16)
        ds.add_new(tag, entry[0], _VALUES[entry[0]])
        expected[f"{tag:08X}"] = entry[0]
    return dicom_bytes(ds, syntax=ImplicitVRLittleEndian), expected


def test_no_known_private_element_stays_untyped_whatever_the_creator_case(tmp_path) -> None:
    data, expected = _upper_case_private_file(40)
    assert len(expected) >= 20
    rows = _extract(tmp_path, data).elements.to_pydict()
    found = dict(zip(rows["tag"], rows["vr"], strict=True))
    values = dict(zip(rows["tag"], rows["value_strings"], strict=True))
    for tag, vr in expected.items():
        assert found[tag] == vr
        assert values[tag]  # decoded, not NULL


def test_private_sequence_of_an_upper_case_creator_is_parsed(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.add_new(0x20010010, "LO", "PHILIPS IMAGING DD 001")
    ds.add_new(0x2001100B, "CS", "CORONAL")
    item = Dataset()
    item.add_new(0x20010010, "LO", "PHILIPS IMAGING DD 001")
    item.add_new(0x2001100B, "CS", "AXIAL")
    ds.add_new(0x2001105F, "SQ", Sequence([item]))  # Stack Sequence in pydicom's dictionary
    extracted = _extract(tmp_path, dicom_bytes(ds, syntax=ImplicitVRLittleEndian))
    rows = extracted.elements.to_pydict()
    by_path = dict(zip(rows["tag_path"], rows["value_strings"], strict=True))
    assert by_path["2001100B"] == ["CORONAL"]
    assert by_path["2001105F[0].2001100B"] == ["AXIAL"]
    matched = [r for r in _reasons(extracted) if "ignoring case" in r]
    assert len(matched) == 1  # one anomaly per creator and object, not one per element


def _pydicom_top_level(data: bytes) -> set[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tags = pydicom.dcmread(io.BytesIO(data)).keys()  # tags only: nothing converted
            return {f"{int(tag):08X}" for tag in tags}
        except Exception:
            return set()


def test_cp246_undefined_length_un_in_a_big_endian_file(tmp_path: Path) -> None:
    data = undefined_length_un_file(little=False)
    assert not set(after_damage_tags()) <= _pydicom_top_level(data)  # pydicom stops there
    extracted = _extract(tmp_path, data)
    rows = extracted.elements.to_pydict()
    by_path = dict(zip(rows["tag_path"], rows["value_strings"], strict=True))
    assert by_path["00111001[0].00080100"] == ["CODE"]
    assert set(after_damage_tags()) <= set(by_path)
    assert any("CP-246" in reason for reason in _reasons(extracted))


def test_cp246_in_a_little_endian_file_reads_as_pydicom_does(tmp_path: Path) -> None:
    data = undefined_length_un_file(little=True)
    rows = _extract(tmp_path, data).elements.to_pydict()
    top = {tag for tag, depth in zip(rows["tag"], rows["depth"], strict=True) if depth == 0}
    assert _pydicom_top_level(data) <= top
    assert "00111001[0].00080100" in rows["tag_path"]


@pytest.mark.parametrize("vr_bytes", [b"  ", b"\0\0", b"ZZ"])
def test_a_vr_field_that_is_not_a_vr_is_read_past(tmp_path: Path, vr_bytes: bytes) -> None:
    data = invalid_vr_file(vr_bytes)
    extracted = _extract(tmp_path, data)
    rows = extracted.elements.to_pydict()
    assert set(after_damage_tags()) <= set(rows["tag"])
    assert any("not a VR" in reason for reason in _reasons(extracted))
    index = rows["tag"].index("0020000D")
    assert rows["value_strings"][index] == ["1.2.3.4"]


def test_two_spaces_read_with_the_implicit_length_lose_the_rest_in_pydicom() -> None:
    """Why the rule exists: pydicom's reading of a blank VR swallows what follows."""
    assert not set(after_damage_tags()) & _pydicom_top_level(invalid_vr_file(b"  "))


def test_a_private_group_length_is_ul_in_an_implicit_vr_file(tmp_path: Path) -> None:
    ds = base_dataset()
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    data = dicom_bytes(ds, syntax=ImplicitVRLittleEndian)
    creator = struct.pack("<HHL", 0x0009, 0x0010, 8) + b"ACME 1.0"
    assert data.count(creator) == 1  # pydicom writes no group length: splice one in
    group_length = struct.pack("<HHLL", 0x0009, 0x0000, 4, 20)
    extracted = _extract(tmp_path, data.replace(creator, group_length + creator))
    rows = extracted.elements.to_pydict()
    index = rows["tag"].index("00090000")
    assert (rows["vr"][index], rows["value_strings"][index]) == ("UL", ["20"])
