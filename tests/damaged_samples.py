"""Damaged files the recovery rules are about, made with pydicom and a byte splice.

Each is a valid file written by pydicom in which one element is replaced by the damage as
real writers produce it, with well-formed elements before and after it, so a test can count
how far a reader gets past the damage.
"""

from __future__ import annotations

import struct

from dicom_samples import dicom_bytes
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian

__all__ = ["PLACEHOLDER", "after_damage_tags", "invalid_vr_file", "undefined_length_un_file"]

PLACEHOLDER = "PLACEHOLDER"
_AFTER = {
    0x0020000D: "1.2.3.4",
    0x0020000E: "1.2.3.4.5",
    0x00200010: "STUDY1",
    0x00200011: "7",
    0x00280002: 1,
}


def after_damage_tags() -> list[str]:
    """Tags of the public elements written after the damaged one."""
    return [f"{tag:08X}" for tag in _AFTER]


def _dataset() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.PatientName = "Damaged^File"
    ds.PatientID = "DMG-1"
    ds.add_new(0x00110010, "LO", "ACME 1.0")
    ds.add_new(0x00111001, "LO", PLACEHOLDER)
    ds.StudyInstanceUID = _AFTER[0x0020000D]
    ds.SeriesInstanceUID = _AFTER[0x0020000E]
    ds.StudyID = _AFTER[0x00200010]
    ds.SeriesNumber = _AFTER[0x00200011]
    ds.SamplesPerPixel = _AFTER[0x00280002]
    return ds


def _placeholder_bytes(little: bool) -> bytes:
    order = "<" if little else ">"
    value = PLACEHOLDER.encode() + b" "
    return (
        struct.pack(f"{order}HH", 0x0011, 0x1001)
        + b"LO"
        + struct.pack(f"{order}H", len(value))
        + value
    )


def undefined_length_un_file(little: bool) -> bytes:
    """An explicit VR file with a private undefined-length UN whose content, as CP-246 says,
    is a sequence in implicit VR little endian (one item holding CodeValue "CODE")."""
    syntax = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    data = dicom_bytes(_dataset(), syntax=syntax)
    order = "<" if little else ">"
    header = struct.pack(f"{order}HH", 0x0011, 0x1001) + b"UN\0\0" + b"\xff\xff\xff\xff"
    item = struct.pack("<HHL", 0x0008, 0x0100, 4) + b"CODE"
    content = (
        struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF)
        + item
        + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        + struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    )
    placeholder = _placeholder_bytes(little)
    assert data.count(placeholder) == 1
    return data.replace(placeholder, header + content)


def invalid_vr_file(vr_bytes: bytes = b"  ") -> bytes:
    """An explicit VR little endian file whose private element has ``vr_bytes`` (not a VR)
    where its VR should be, followed by its 2-byte length and value as written."""
    data = dicom_bytes(_dataset())
    placeholder = _placeholder_bytes(True)
    assert data.count(placeholder) == 1
    return data.replace(placeholder, placeholder[:4] + vr_bytes + placeholder[6:])
