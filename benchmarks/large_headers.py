"""Large real-shaped headers: time and peak memory per object as the item count grows.

IDC-scale archives hold enhanced multi-frame objects whose header is mostly per-frame
functional groups (thousands of items) and slide microscopy objects with one item per tile.
This builds, from the corpus' own objects, header-only files of N items of each shape:

- enhanced MR: the corpus' enhanced MR with the most frames, its per-frame items repeated
  (cycled) to N frames;
- slide microscopy: a corpus VL Whole Slide Microscopy image made TILED_SPARSE, with one
  per-frame item per tile (plane position in the slide and in the total pixel matrix, frame
  content with dimension index values).

For each it reports elements, header bytes, the best of ``repeat`` times of dcmread,
to_json_dict and ours (walker, and pydicom's path as reference), time per element, and the
peak memory ours allocates (tracemalloc, in a separate untimed run) against the header size.
Used through ``benchmark.py --large-headers 1000,2000,5000,10000 [--large-shapes mr,sm]``.
"""

from __future__ import annotations

import copy
import gc
import os
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from dicomwarehouse.dicom.budgets import ReadBudget
from dicomwarehouse.dicom.extract import extract_object, new_run
from dicomwarehouse.io.refs import ObjectRef

ENHANCED_MR = "1.2.840.10008.5.1.4.1.1.4.1"
#: The default element budget (200,000) stops headers this large; these are measured whole.
LARGE_BUDGET = ReadBudget(max_elements=10_000_000)
SLIDE_MICROSCOPY = "1.2.840.10008.5.1.4.1.1.77.1.6"


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
    return dataset


def _write(dataset: Dataset, path: Path) -> None:
    for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
        if tag in dataset:
            del dataset[tag]
    dataset.save_as(path, enforce_file_format=True)


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
    shapes: list[tuple[str, Dataset, Callable[[Dataset, int], Dataset]]] = []
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
    if not shapes:
        print("no enhanced MR or slide microscopy object under the paths")
        return
    run = new_run()
    head = (
        f"{'shape':<17} {'items':>6} {'elements':>9} {'header MiB':>10} {'dcmread s':>9} "
        f"{'json s':>8} {'ours s':>8} {'pydicom path s':>14} {'us/element':>10} "
        f"{'/json':>6} {'/dcmread':>8} {'peak MiB':>8} {'peak/header':>11}"
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
                extracted = extract_object(ref, run, budget=LARGE_BUDGET)
                elements = extracted.elements.num_rows if extracted.elements is not None else 0
                header = extracted.metadata["header_bytes_read"] if extracted.metadata else 0

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
                print(
                    f"{name:<17} {count:>6,} {elements:>9,} {header / 2**20:>10.2f} "
                    f"{a:>9.3f} {b:>8.3f} {c:>8.3f} {d:>14.3f} "
                    f"{c / max(elements, 1) * 1e6:>10.1f} {b / c:>5.2f}x {a / c:>7.2f}x "
                    f"{peak / 2**20:>8.1f} {peak / max(header, 1):>11.1f}"
                )
