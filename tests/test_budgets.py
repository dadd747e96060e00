"""Per-object budgets: no object stalls a run, takes unbounded time or memory, or fails it."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import pytest
from dicom_mutations import CANARIES, canary_in, element_spans
from dicom_samples import (
    PER_FRAME_FUNCTIONAL_GROUPS,
    base_dataset,
    dicom_bytes,
    every_vr_dataset,
    repeated_items_bytes,
)
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dicomwarehouse.dicom.budgets import (
    DEFAULT_MAX_ELEMENTS,
    DEFAULT_MAX_HEADER_BYTES,
    ITEM_WEIGHT,
    ReadBudget,
    metering,
)
from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.io.refs import ObjectRef

RUN = new_run()
PREAMBLE = b"\x00" * 128 + b"DICM"


def extract_path(path: Path, **kwargs) -> Extracted:
    return extract_object(ObjectRef(str(path), path.stat().st_size), RUN, **kwargs)


def extract_bytes(tmp_path: Path, data: bytes, **kwargs) -> Extracted:
    path = tmp_path / "object.dcm"
    path.write_bytes(data)
    return extract_path(path, **kwargs)


def reasons(extracted: Extracted) -> list[str]:
    assert extracted.metadata is not None, extracted.error
    return [a["reason"] for a in extracted.metadata["ingest_anomalies"]]


def test_zeros_after_a_dicm_preamble_stop_at_once_whatever_the_size(tmp_path: Path) -> None:
    """pydicom reads zeros as (0000,0000) elements of length 0, one per 8 bytes, forever."""
    path = tmp_path / "zeros.dcm"
    with path.open("wb") as handle:
        handle.write(PREAMBLE)
        handle.truncate(64 * 1024 * 1024)  # sparse: 64 MiB of zeros
    started = time.perf_counter()
    extracted = extract_path(path)
    assert time.perf_counter() - started < 5
    assert extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == ("parse", "NoProgress")
    assert extracted.error["bytes_read"] < 1024 * 1024


def test_zeros_after_a_header_keep_the_header_with_an_anomaly(tmp_path: Path) -> None:
    data = dicom_bytes(every_vr_dataset()) + b"\x00" * (1 << 20)
    extracted = extract_bytes(tmp_path, data)
    assert any("NoProgress" in reason for reason in reasons(extracted))
    assert extracted.metadata["PatientID"] == "PAT-1"


def test_element_budget_cuts_a_header_short(tmp_path: Path) -> None:
    data = dicom_bytes(every_vr_dataset())
    whole = extract_bytes(tmp_path, data)
    assert not any("budget" in reason for reason in reasons(whole))
    budget = ReadBudget(max_elements=20)
    cut = extract_bytes(tmp_path, data, budget=budget)
    if cut.error is not None:
        assert cut.error["error_type"] == "ElementBudgetExceeded"
    else:
        assert any("ElementBudgetExceeded" in reason for reason in reasons(cut))
        assert cut.elements.num_rows < whole.elements.num_rows


def test_header_bytes_budget_refuses_a_huge_value_before_reading_it(tmp_path: Path) -> None:
    """A length of almost 4 GiB inside a sequence item (where values are read, not skipped)."""
    ds = base_dataset()
    item = base_dataset()
    item.TextValue = "x" * 64  # UT: a 4-byte length
    ds.ReferencedSeriesSequence = [item]
    data = bytearray(dicom_bytes(ds))
    spans = {span.tag: span for span in element_spans(bytes(data))}
    struct.pack_into("<I", data, spans[0x0040A160].length_offset, 0xFFFFFFF0)
    # undefined lengths: the item is parsed from the object, not from a value read whole
    for tag in (0x00081115, 0xFFFEE000):
        struct.pack_into("<I", data, spans[tag].length_offset, 0xFFFFFFFF)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        extracted = extract_bytes(
            tmp_path, bytes(data), budget=ReadBudget(max_header_bytes=1 << 20)
        )
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5
    assert peak < 64 << 20  # no buffer of the length asked for is ever allocated
    text = str(extracted.error) if extracted.error else " ".join(reasons(extracted))
    assert "HeaderBytesBudgetExceeded" in text


def test_a_sequence_of_empty_items_is_stopped(tmp_path: Path) -> None:
    item = struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    opening = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\x00\x00" + b"\xff" * 4
    data = dicom_bytes(base_dataset()) + opening + item * 100_000
    started = time.perf_counter()
    extracted = extract_bytes(tmp_path, data)
    assert time.perf_counter() - started < 5
    assert any("NoProgress" in reason for reason in reasons(extracted))


def test_meter_counts_elements_and_bytes_of_one_object(tmp_path: Path) -> None:
    data = dicom_bytes(every_vr_dataset())
    path = tmp_path / "object.dcm"
    path.write_bytes(data)
    with metering() as meter:
        extracted = extract_path(path)
    assert meter.elements >= extracted.elements.num_rows
    assert 0 < meter.bytes_read <= len(data) + 8192


def _files_within_budget(folder: Path) -> None:
    """Every DICOM file's parse stays well inside the default budgets (the measured margin).

    Files that are not DICOM are left out: a forced parse of an ICC profile asks for a 1.9 GB
    value, which is what the byte budget is for.
    """
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with metering() as meter:
            extracted = extract_path(path)
        if extracted.error is not None and extracted.error["error_type"] == "NotDicom":
            continue
        assert meter.exceeded is None, path
        assert meter.elements * 4 < DEFAULT_MAX_ELEMENTS, path
        assert meter.bytes_read * 8 < DEFAULT_MAX_HEADER_BYTES, path


def test_pydicom_files_are_well_inside_the_default_budgets(pydicom_files_dir: Path) -> None:
    _files_within_budget(pydicom_files_dir)


@pytest.mark.slow
def test_corpus_files_are_well_inside_the_default_budgets(shared_corpus: Path) -> None:
    _files_within_budget(shared_corpus)


#: The element budget these large headers used to exceed (set from the corpus alone).
CORPUS_SIZED_MAX_ELEMENTS = 200_000


def _one(**attributes: object) -> Sequence:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return Sequence([item])


def enhanced_mr_frame() -> Dataset:
    """The functional groups an enhanced MR frame carries (the standard's, no private ones)."""
    frame = Dataset()
    frame.FrameContentSequence = _one(
        FrameAcquisitionNumber=1,
        FrameReferenceDateTime="20240101120000.000000",
        FrameAcquisitionDateTime="20240101120000.000000",
        FrameAcquisitionDuration=1500.0,
        StackID="1",
        InStackPositionNumber=1,
        DimensionIndexValues=[1, 1],
    )
    frame.PlanePositionSequence = _one(ImagePositionPatient=["-120.5", "-110.25", "33.75"])
    frame.PlaneOrientationSequence = _one(ImageOrientationPatient=["1", "0", "0", "0", "1", "0"])
    frame.FrameVOILUTSequence = _one(WindowCenter="500", WindowWidth="1000")
    frame.PixelValueTransformationSequence = _one(
        RescaleIntercept="0", RescaleSlope="1.2", RescaleType="US"
    )
    frame.MRImageFrameTypeSequence = _one(
        FrameType=["ORIGINAL", "PRIMARY", "M", "NONE"],
        PixelPresentation="MONOCHROME",
        VolumetricProperties="VOLUME",
        VolumeBasedCalculationTechnique="NONE",
        ComplexImageComponent="MAGNITUDE",
        AcquisitionContrast="T1",
    )
    frame.MREchoSequence = _one(EffectiveEchoTime=2.3)
    return frame


def slide_tile() -> Dataset:
    """The per-frame item of a TILED_SPARSE slide: where the tile is, and its indices."""
    tile = Dataset()
    tile.FrameContentSequence = _one(DimensionIndexValues=[3, 7])
    tile.PlanePositionSlideSequence = _one(
        XOffsetInSlideCoordinateSystem=1.5,
        YOffsetInSlideCoordinateSystem=3.25,
        ZOffsetInSlideCoordinateSystem=0.0,
        ColumnPositionInTotalImagePixelMatrix=513,
        RowPositionInTotalImagePixelMatrix=1537,
    )
    return tile


ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"


def _multiframe(sop_class: str, frame: Dataset, count: int) -> bytes:
    ds = base_dataset(SOPClassUID=sop_class, NumberOfFrames=count)
    return repeated_items_bytes(ds, frame, count, PER_FRAME_FUNCTIONAL_GROUPS)


def _rows(tmp_path: Path, sop_class: str, frame: Dataset, count: int) -> int:
    extracted = extract_bytes(tmp_path, _multiframe(sop_class, frame, count))
    return extracted.elements.num_rows


@pytest.mark.parametrize(
    ("sop_class", "frame", "count"),
    [(ENHANCED_MR, enhanced_mr_frame, 4_000), (SLIDE_MICROSCOPY, slide_tile, 12_000)],
    ids=["enhanced MR of 4,000 frames", "slide of 12,000 tiles"],
)
def test_large_real_shaped_headers_are_read_whole_under_the_default_budgets(
    tmp_path: Path, sop_class: str, frame, count: int
) -> None:
    """IDC holds enhanced objects of thousands of frames and sparse slides of tens of
    thousands of tiles: each is a full dicom_metadata row, every frame in it, no anomaly."""
    one, two = (_rows(tmp_path, sop_class, frame(), n) for n in (1, 2))
    data = _multiframe(sop_class, frame(), count)
    with metering() as meter:
        extracted = extract_bytes(tmp_path, data)
    assert meter.elements > CORPUS_SIZED_MAX_ELEMENTS  # what the corpus-sized budget stopped
    assert meter.exceeded is None
    assert reasons(extracted) == []
    assert int(extracted.metadata["NumberOfFrames"]) == count
    assert len(extracted.metadata["PerFrameFunctionalGroupsSequence"]) == count
    assert extracted.elements.num_rows == one + (count - 1) * (two - one)


def _item_flood(items: int) -> bytes:
    """A sequence of ``items`` items of one element each: as dense in elements as headers go."""
    item = Dataset()
    item.CodeValue = "ABCD"
    return repeated_items_bytes(base_dataset(), item, items, 0x0040A730)


def _flood_is_stopped(tmp_path: Path, budget: ReadBudget | None) -> float:
    """CPU seconds per budgeted element of a flood of items half again over ``budget``."""
    limit = (budget or ReadBudget()).max_elements
    data = _item_flood(limit * 3 // 2 // (ITEM_WEIGHT + 1))
    started = time.process_time()
    extracted = extract_bytes(tmp_path, data, budget=budget)
    seconds = time.process_time() - started
    if extracted.error is not None:
        assert extracted.error["error_type"] == "ElementBudgetExceeded"
    else:
        assert any("ElementBudgetExceeded" in reason for reason in reasons(extracted))
        assert extracted.elements.num_rows < 100  # the flood is not kept, nor the rows before
    return seconds / limit


def test_a_flood_of_items_over_the_element_budget_is_stopped_in_time_linear_in_it(
    tmp_path: Path,
) -> None:
    """Every pass over an object over budget stops at the budget: the cost is proportional
    to the budget, not to the object (15 to 25 us per budgeted element measured, all passes).

    At the default budget that is one to two minutes of CPU for one flood, too long for the
    suite: linearity is what is checked, at a smaller budget."""
    assert _flood_is_stopped(tmp_path, ReadBudget(max_elements=60_000)) < 100e-6


def test_parser_text_never_reaches_an_error_message(tmp_path: Path) -> None:
    """pydicom's length errors quote the bytes they choke on: here a patient ID."""
    value = CANARIES["PatientID"].encode() + b"\x00\x00\x00"  # 14 bytes: not a multiple of 4
    group_length = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<H", len(value))
    data = PREAMBLE + group_length + value + dicom_bytes(base_dataset(), preamble=False)
    extracted = extract_bytes(tmp_path, data)
    assert extracted.error is not None
    assert canary_in(extracted.error) is None
    assert extracted.error["message"].startswith(extracted.error["error_type"])
