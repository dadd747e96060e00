"""Small DICOM files made in the tests, for rules no bundled file exercises on its own."""

from __future__ import annotations

import io

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def base_dataset(**attributes: object) -> Dataset:
    """A minimal CT instance with fresh UIDs; keyword arguments set or override attributes."""
    ds = Dataset()
    ds.SOPClassUID = CT_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = "PAT-1"
    ds.Modality = "CT"
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def every_vr_dataset() -> Dataset:
    """One attribute of every VR, with VM 1 and VM n, a nested sequence, PN and privates."""
    ds = base_dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]  # CS, VM 2-n
    ds.StationAETitle = "STATION1"  # AE
    ds.PatientAge = "042Y"  # AS
    ds.StudyDate = "20240131"  # DA
    ds.StudyTime = "134501.250"  # TM
    ds.AcquisitionDateTime = "20240131134501.5+0100"  # DT
    ds.SliceThickness = "1.25"  # DS, VM 1
    ds.PixelSpacing = ["0.5", "0.75"]  # DS, VM 2
    ds.InstanceNumber = "7"  # IS
    ds.InstitutionName = "Hôpital Général"  # LO with a latin-1 character
    ds.ImageComments = "line one\\still one value"  # LT keeps its backslash
    ds.PatientName = "Doe^Jane^Q^Dr^III"  # PN
    ds.OtherPatientNames = ["Roe^Richard", "Poe^Edgar"]  # PN, VM 1-n
    ds.AccessionNumber = "A123"  # SH
    ds.DerivationDescription = "short text"  # ST
    ds.RetrieveURL = "https://example.org/wado?x=1"  # UR
    ds.Rows = 512  # US
    ds.Columns = 512
    ds.SmallestImagePixelValue = 0  # US or SS
    ds.TagAngleSecondAxis = -5  # SS
    ds.SelectorULValue = [1, 2, 3]  # UL, VM 1-n
    ds.SelectorSLValue = [-70000]  # SL
    ds.SelectorFLValue = [0.3]  # FL
    ds.RescaleSlope = "1"
    ds.DiffusionBValue = 1000.5  # FD
    ds.DimensionIndexPointer = 0x00200032  # AT, VM 1
    ds.SelectorATValue = [0x00200032, 0x00200037]  # AT, VM 1-n
    ds.SelectorSVValue = [-(2**40)]  # SV
    ds.SelectorUVValue = [2**40]  # UV
    ds.add_new(0x00700082, "DA", "")  # PresentationCreationDate, empty
    ds.add_new(0x00081140, "SQ", Sequence())  # ReferencedImageSequence, empty
    inner = Dataset()
    inner.ReferencedSOPClassUID = CT_IMAGE_STORAGE
    inner.ReferencedSOPInstanceUID = "1.2.3.4"
    item = Dataset()
    item.SeriesInstanceUID = "1.2.3"
    item.ReferencedInstanceSequence = Sequence([inner])
    ds.ReferencedSeriesSequence = Sequence([item, Dataset()])
    ds.add_new(0x00090010, "LO", "ACME 1.0")  # private creator
    ds.add_new(0x00091001, "DS", ["1.5", "2.5"])  # private value in the ACME block
    ds.add_new(0x00091002, "OB", b"\x00\x01\x02\x03")  # private binary
    private_item = Dataset()
    private_item.add_new(0x00090010, "LO", "ACME 1.0")
    private_item.add_new(0x00091010, "SH", "inside")
    private_item.PatientID = "nested-id"
    ds.add_new(0x00091003, "SQ", Sequence([private_item]))  # private sequence
    return ds


def dicom_bytes(
    ds: Dataset,
    *,
    syntax: str = ExplicitVRLittleEndian,
    preamble: bool = True,
) -> bytes:
    """Encode a data set as a DICOM file (or, without preamble, as a raw data set)."""
    buffer = io.BytesIO()
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = syntax
        dcmwrite(buffer, ds, enforce_file_format=True)
    else:
        implicit = syntax == ImplicitVRLittleEndian
        little = syntax != ExplicitVRBigEndian
        dcmwrite(buffer, ds, implicit_vr=implicit, little_endian=little)
    return buffer.getvalue()


def nested_dataset(depth: int) -> Dataset:
    """A data set whose sequence items nest ``depth`` levels deep (undefined lengths)."""
    innermost = Dataset()
    innermost.CodeValue = "deepest"
    node = innermost
    for _ in range(depth):
        parent = Dataset()
        parent.ContentSequence = Sequence([node])
        node = parent
    ds = base_dataset()
    ds.ContentSequence = node.ContentSequence
    return ds


def deeply_nested_bytes(depth: int) -> bytes:
    """A file whose Content Sequence nests ``depth`` levels deep, encoded by hand.

    pydicom cannot write (or read) such depths without running out of recursion, which is
    exactly the case to test; undefined lengths make the reader recurse on every level.
    """
    import struct

    def tag(group: int, element: int) -> bytes:
        return struct.pack("<HH", group, element)

    undefined = b"\xff\xff\xff\xff"
    opening = tag(0x0040, 0xA730) + b"SQ\x00\x00" + undefined + tag(0xFFFE, 0xE000) + undefined
    closing = tag(0xFFFE, 0xE00D) + b"\x00" * 4 + tag(0xFFFE, 0xE0DD) + b"\x00" * 4
    code_value = tag(0x0008, 0x0100) + b"SH" + struct.pack("<H", 8) + b"deepest "
    nested = opening * depth + code_value + closing * depth
    return dicom_bytes(base_dataset()) + nested


#: (5200,9230) Per-frame Functional Groups Sequence
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230


def repeated_items_bytes(ds: Dataset, item: Dataset, count: int, tag: int) -> bytes:
    """``ds`` as a file, then a sequence ``tag`` of ``count`` copies of ``item``, by hand.

    Header-only objects of IDC's sizes (thousands of per-frame items) are built this way in
    milliseconds: the item is encoded once (explicit VR little endian, a defined length) and
    its bytes repeated; the sequence has an undefined length, so every item is parsed. ``tag``
    must sort after every element of ``ds``.
    """
    import struct

    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset

    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = False
    write_dataset(buffer, item)
    body = buffer.getvalue()
    encoded = struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body
    opening = struct.pack("<HH", tag >> 16, tag & 0xFFFF) + b"SQ\x00\x00" + b"\xff" * 4
    closing = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return dicom_bytes(ds) + opening + encoded * count + closing


__all__ = [
    "PER_FRAME_FUNCTIONAL_GROUPS",
    "DeflatedExplicitVRLittleEndian",
    "ExplicitVRBigEndian",
    "ExplicitVRLittleEndian",
    "ImplicitVRLittleEndian",
    "base_dataset",
    "deeply_nested_bytes",
    "dicom_bytes",
    "every_vr_dataset",
    "nested_dataset",
    "repeated_items_bytes",
]
