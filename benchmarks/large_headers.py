"""Large real-shaped headers: time and peak memory per object as the item count grows.

IDC-scale archives hold enhanced multi-frame objects whose header is mostly per-frame
functional groups (thousands of items) and slide microscopy objects with one item per tile.
This builds, from the corpus' own objects, files of N items of each shape:

- enhanced MR: the corpus' enhanced MR with the most frames, its per-frame items repeated
  (cycled) to N frames;
- slide microscopy: a corpus VL Whole Slide Microscopy image made TILED_SPARSE, with one
  per-frame item per tile (plane position in the slide and in the total pixel matrix, frame
  content with dimension index values), and its tiles as encapsulated Pixel Data of one small
  fragment each after an empty Basic Offset Table, as slide writers leave it (the step after
  Pixel Data has to find where the fragments end);
- segmentation: a binary Segmentation written by highdicom over a CT series of 16 x 16 slices
  (the tests' ``derived_objects.ct_series``), 10 segments on every slice, so one frame per
  segment and slice, each with the per-frame items highdicom writes (derivation image with
  its source image reference, frame content, plane position, segment identification).

For each it reports elements, what the object cost against the read budget (``budget units``:
elements plus ``ITEM_WEIGHT`` per item, and header bytes), the best of ``repeat`` times of
dcmread, to_json_dict and ours (walker, and pydicom's path as reference), time per element and
per budget unit, the peak memory ours allocates (tracemalloc, in a separate untimed run)
against the header size and per budget unit (what the defaults of ``budgets`` are derived from),
and the requests ours makes when the object is read from a bucket (a local one, counted).
Used through ``benchmark.py --large-headers 1000,2000,5000,10000 [--large-shapes mr,sm,seg]``.
"""

from __future__ import annotations

import copy
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import JPEGBaseline8Bit

from dicomwarehouse.dicom.budgets import ReadBudget, metering
from dicomwarehouse.dicom.extract import RunInfo, extract_object, new_run
from dicomwarehouse.dicom.ranged import open_file_ranged
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
#: Far above the defaults: each header is measured whole, whatever the defaults are.
LARGE_BUDGET = ReadBudget(max_elements=100_000_000, max_header_bytes=1 << 40)
#: Segments of the generated segmentation: its frames are slices x segments.
SEGMENTS = 10
SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"
#: Bytes of each generated slide tile (its encapsulated fragment).
TILE_BYTES = 4096


def _headers(roots: Sequence[str]) -> list[tuple[Path, Dataset]]:
    found = []
    for root in roots:
        for path in sorted(Path(root).rglob("*")):
            if not path.is_file():
                continue
            try:
                dataset = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            if dataset.get("SOPClassUID") in (ENHANCED_MR, SLIDE_MICROSCOPY):
                found.append((path, dataset))
    return found


def _frames(dataset: Dataset) -> int:
    return len(dataset.get("PerFrameFunctionalGroupsSequence") or [])


def enhanced_mr(template: Dataset, count: int) -> Dataset:
    """The template's per-frame items cycled to ``count`` frames (header only)."""
    dataset = copy.deepcopy(template)
    items = list(template.PerFrameFunctionalGroupsSequence)
    dataset.PerFrameFunctionalGroupsSequence = DicomSequence(
        [copy.deepcopy(items[index % len(items)]) for index in range(count)]
    )
    dataset.NumberOfFrames = count
    return dataset


def slide_microscopy(template: Dataset, count: int) -> Dataset:
    """A TILED_SPARSE slide with one per-frame item per tile (header only)."""
    dataset = copy.deepcopy(template)
    dataset.DimensionOrganizationType = "TILED_SPARSE"
    columns = int(dataset.get("TotalPixelMatrixColumns") or 1) // int(dataset.Columns or 1) or 1
    spacing = 0.00025
    items = []
    for index in range(count):
        row, column = divmod(index, columns)
        position = Dataset()
        position.XOffsetInSlideCoordinateSystem = round(column * int(dataset.Columns) * spacing, 6)
        position.YOffsetInSlideCoordinateSystem = round(row * int(dataset.Rows) * spacing, 6)
        position.ZOffsetInSlideCoordinateSystem = 0.0
        position.ColumnPositionInTotalImagePixelMatrix = 1 + column * int(dataset.Columns)
        position.RowPositionInTotalImagePixelMatrix = 1 + row * int(dataset.Rows)
        content = Dataset()
        content.DimensionIndexValues = [column + 1, row + 1]
        item = Dataset()
        item.PlanePositionSlideSequence = DicomSequence([position])
        item.FrameContentSequence = DicomSequence([content])
        items.append(item)
    dataset.PerFrameFunctionalGroupsSequence = DicomSequence(items)
    dataset.NumberOfFrames = count
    dataset.TotalPixelMatrixRows = (count // columns + 1) * int(dataset.Rows)
    # a stand-in tile per frame (start and end of image markers, 4 KiB, a small JPEG tile):
    # the bytes do not matter, the fragment count and layout do
    dataset.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    tile = b"\xff\xd8" + bytes(TILE_BYTES - 4) + b"\xff\xd9"
    dataset.PixelData = encapsulate([tile] * count, has_bot=False)
    dataset["PixelData"].VR = "OB"
    dataset["PixelData"].is_undefined_length = True
    return dataset


def segmentation(_template: Dataset | None, count: int) -> Dataset:
    """A highdicom binary Segmentation of about ``count`` frames (``SEGMENTS`` per slice)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import highdicom
    import numpy as np
    from derived_objects import ct_series
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    slices = max(1, -(-count // SEGMENTS))
    source = ct_series(generate_uid(), generate_uid(), [index * 1.25 for index in range(slices)])
    mask = np.zeros((slices, source[0].Rows, source[0].Columns, SEGMENTS), dtype=bool)
    mask[:, 2:6, 2:6, :] = True  # every segment on every slice: one frame each
    algorithm = highdicom.AlgorithmIdentificationSequence(
        name="benchmark", family=codes.DCM.ArtificialIntelligence, version="1"
    )
    segments = [
        highdicom.seg.SegmentDescription(
            segment_number=number,
            segment_label=f"segment {number}",
            segmented_property_category=codes.SCT.Tissue,
            segmented_property_type=codes.SCT.Organ,
            algorithm_type=highdicom.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
        )
        for number in range(1, SEGMENTS + 1)
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return highdicom.seg.Segmentation(
            source_images=source,
            pixel_array=mask,
            segmentation_type=highdicom.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=segments,
            series_instance_uid=generate_uid(),
            series_number=2,
            sop_instance_uid=generate_uid(),
            instance_number=1,
            manufacturer="benchmark",
            manufacturer_model_name="benchmark",
            software_versions="1",
            device_serial_number="1",
        )


def _write(dataset: Dataset, path: Path) -> None:
    """The object as a file: header only, unless its shape made encapsulated tiles."""
    element = dataset.get(0x7FE00010)
    if element is None or not element.is_undefined_length:
        for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
            if tag in dataset:
                del dataset[tag]
    dataset.save_as(path, enforce_file_format=True)


def _bucket_requests(ref: ObjectRef, run: RunInfo) -> int:
    """Requests ours makes for the object read as a bucket object (default first block)."""
    options = StorageOptions()
    return extract_object(
        ref, run, storage=options, opened=open_file_ranged(ref, options), budget=LARGE_BUDGET
    ).requests


def _best(body: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        started = time.process_time()
        body()
        best = min(best, time.process_time() - started)
    return best


def _peak(body: Callable[[], object]) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        body()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run_large_headers(
    roots: Sequence[str], counts: Sequence[int], repeat: int, shapes_wanted: Sequence[str]
) -> None:
    """Build and time headers of each of ``counts`` items for each shape ("mr", "sm")."""
    headers = _headers(roots)
    shapes: list[tuple[str, Dataset | None, Callable[[Dataset, int], Dataset]]] = []
    mr = [h for h in headers if h[1].SOPClassUID == ENHANCED_MR]
    sm = [h for h in headers if h[1].SOPClassUID == SLIDE_MICROSCOPY]
    if mr and "mr" in shapes_wanted:
        path, template = max(mr, key=lambda h: _frames(h[1]))
        print(f"enhanced MR template: {path} ({_frames(template)} frames)")
        shapes.append(("enhanced MR", template, enhanced_mr))
    if sm and "sm" in shapes_wanted:
        path, template = sm[0]
        print(f"slide microscopy template: {path}")
        shapes.append(("slide microscopy", template, slide_microscopy))
    if "seg" in shapes_wanted:
        shapes.append(("segmentation", None, segmentation))
    if not shapes:
        print("no enhanced MR or slide microscopy object under the paths")
        return
    run = new_run()
    head = (
        f"{'shape':<17} {'frames':>7} {'elements':>9} {'units':>9} {'header MiB':>10} "
        f"{'dcmread s':>9} {'json s':>8} {'ours s':>8} {'pydicom path s':>14} "
        f"{'us/element':>10} {'us/unit':>7} {'/json':>6} {'/dcmread':>8} {'peak MiB':>8} "
        f"{'peak/header':>11} {'peak B/unit':>11} {'requests':>8}"
    )
    print(
        f"\nbest of {repeat}, CPU seconds; ours with an element budget of "
        f"{LARGE_BUDGET.max_elements:,}; peak: tracemalloc peak of one extraction (ours)"
    )
    print(head)
    print("-" * len(head))
    with tempfile.TemporaryDirectory() as folder:
        for name, template, build in shapes:
            for count in counts:
                path = Path(folder) / f"{name.replace(' ', '_')}_{count}.dcm"
                _write(build(template, count), path)
                ref = ObjectRef(str(path), os.path.getsize(path))
                with metering(LARGE_BUDGET) as meter:
                    extracted = extract_object(ref, run)
                frames = int(extracted.metadata.get("NumberOfFrames") or 0)
                elements = extracted.element_rows.num_rows if extracted.element_rows else 0
                header = extracted.metadata["header_bytes_read"] if extracted.metadata else 0
                units = meter.elements

                def floor(path: Path = path) -> object:
                    return pydicom.dcmread(path, stop_before_pixels=True)

                def json_dict(path: Path = path) -> object:
                    dataset = pydicom.dcmread(path, stop_before_pixels=True)
                    return dataset.to_json_dict(1024, lambda element: "bulk")

                a = _best(floor, repeat)
                b = _best(json_dict, repeat)
                c = _best(lambda ref=ref: extract_object(ref, run, budget=LARGE_BUDGET), repeat)
                d = _best(
                    lambda ref=ref: extract_object(ref, run, budget=LARGE_BUDGET, walker=False),
                    repeat,
                )
                peak = _peak(lambda ref=ref: extract_object(ref, run, budget=LARGE_BUDGET))
                requests = _bucket_requests(ref, run)
                print(
                    f"{name:<17} {frames:>7,} {elements:>9,} {units:>9,} "
                    f"{header / 2**20:>10.2f} {a:>9.3f} {b:>8.3f} {c:>8.3f} {d:>14.3f} "
                    f"{c / max(elements, 1) * 1e6:>10.1f} {c / max(units, 1) * 1e6:>7.1f} "
                    f"{b / c:>5.2f}x {a / c:>7.2f}x {peak / 2**20:>8.1f} "
                    f"{peak / max(header, 1):>11.1f} {peak / max(units, 1):>11.0f} "
                    f"{requests:>8,}"
                )
