"""The elements after Pixel Data: a separate step after the header parse, whoever parsed it.

The header read stops at Pixel Data, so as not to fetch the pixels. A lossless table still
needs what some writers put after them: Data Set Trailing Padding (FFFC,FFFC) and private
groups (7FE1 and others). This step starts at the Pixel Data element the header parse stopped
at, skips its value without reading it (a defined length is one seek; encapsulated pixel data
is walked by its item headers only, jumping to the last frame through the Basic Offset Table
when it has one) and reads the elements that follow, as raw elements of the top-level data
set, so every later stage treats them like the header's own elements.

In a bucket nothing is requested when the object ends where a defined-length Pixel Data ends;
otherwise what follows is fetched in one ranged request (up to ``TRAILING_BLOCK`` bytes; longer
values after it are skipped like long values in the header). Encapsulated pixel data has no
length to jump by, so the object's last ``TRAILING_BLOCK`` bytes are fetched first: when the
object ends with the Sequence Delimitation Item (and the first fragment is an item), the pixels
end there and nothing follows them. Otherwise the fragment headers are walked, one request per
header outside that block. Every byte goes through the object's read budget.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom import filereader
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dicomwarehouse.dicom.budgets import BudgetExceeded, current_meter
from dicomwarehouse.dicom.flatten import flatten_more
from dicomwarehouse.dicom.pydicom_boundary import raw_elements
from dicomwarehouse.dicom.recovery import recovering
from dicomwarehouse.dicom.walk import Walked
from dicomwarehouse.tables.vr import EXPLICIT_LONG_LENGTH_VRS

__all__ = [
    "TRAILING_BLOCK",
    "Trailing",
    "add_elements_after_pixel_data",
    "flatten_after_pixel_data",
    "pixel_data_at",
    "read_after_pixel_data",
]

#: Pixel Data and its float variants: where a header parse stops.
PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
#: What one request after Pixel Data fetches: trailing padding and private groups are small
#: (longer values in them are skipped, not fetched).
TRAILING_BLOCK = 8192
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_LONG_LENGTH_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_LONG_LENGTH_VRS)


@dataclass
class Trailing:
    """What followed Pixel Data: its own element (value not read) and the elements after it."""

    pixel_data: RawDataElement | None = None
    elements: list[RawDataElement] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: offset where Pixel Data's value ends (None when it could not be found)
    end: int | None = None


def _tag(raw: bytes, little: bool) -> int:
    group, element = struct.unpack("<HH" if little else ">HH", raw[:4])
    return group << 16 | element


def pixel_data_at(fp: BinaryIO, offset: int, little: bool, head: bytes = b"") -> bool:
    """True if the element at ``offset`` is Pixel Data (float or double variants included).

    ``head``: the object's first bytes, if already read (local files only)."""
    if offset + 4 <= len(head):
        tag = head[offset : offset + 4]
    else:
        fp.seek(offset)
        tag = fp.read(4)
    return len(tag) == 4 and _tag(tag, little) in PIXEL_DATA_TAGS


def _ranged_layer(fp: BinaryIO) -> object | None:
    """The ranged object under ``fp``'s buffering layers, if ``fp`` reads from a bucket."""
    layer: object | None = fp
    while layer is not None and not hasattr(layer, "prefetch"):
        layer = getattr(layer, "raw", None) or getattr(layer, "_raw", None)
    return layer


def _object_size(fp: BinaryIO) -> int | None:
    """The object's size, if known without a request (a listed or opened object, a file)."""
    ranged = _ranged_layer(fp)
    if ranged is not None:
        return getattr(ranged, "object_size", None)
    try:
        position = fp.tell()
        size = fp.seek(0, 2)
        fp.seek(position)
    except (OSError, ValueError):
        return None
    return size


def _prefetch(fp: BinaryIO, start: int, stop: int) -> None:
    """One ranged request for [start, stop) when ``fp`` reads from a bucket (no-op locally)."""
    ranged = _ranged_layer(fp)
    if ranged is None or stop <= start:
        return
    meter = current_meter()
    if meter is not None:  # refused before it is made, like every read of the header
        meter.charge_bytes(stop - start, start)
    ranged.prefetch(start, stop)  # type: ignore[attr-defined]


class _Reader:
    """Small reads at given offsets of the object: from the bytes the header parse already
    holds where they cover the range, else from ``fp``.

    In a bucket each read outside them is one ranged request of just its bytes (not a block
    of pixels); a local file is read with ``os.pread``, so that hopping over fragments does
    not refill a read buffer at every fragment header.
    """

    def __init__(self, fp: BinaryIO, head: bytes = b"") -> None:
        self.fp = fp
        self.ranged = _ranged_layer(fp)
        # a bucket's reads go through ``fp``, which counts and charges them
        self.head = head if self.ranged is None else b""
        # a plain local file only: a counting reader (the pydicom path's) must see every read
        self.descriptor = fp.fileno() if type(fp) is io.BufferedReader else None

    def read(self, offset: int, count: int) -> bytes:
        if offset + count <= len(self.head):
            return self.head[offset : offset + count]
        if self.ranged is not None:
            _prefetch(self.fp, offset, offset + count)
        elif self.descriptor is not None:
            return os.pread(self.descriptor, count, offset)
        self.fp.seek(offset)
        return self.fp.read(count)


def _item_header(reader: _Reader, offset: int, little: bool) -> tuple[int, int] | None:
    head = reader.read(offset, 8)
    if len(head) < 8:
        return None
    length = struct.unpack("<L" if little else ">L", head[4:8])[0]
    return _tag(head, little), length


def _ends_with_its_delimiter(
    reader: _Reader, first_fragment: int, little: bool, size: int | None
) -> bool:
    """True if encapsulated pixel data plainly runs to the end of the object: its first
    fragment begins with an item header and the object's last 8 bytes are a Sequence
    Delimitation Item.

    Walking the fragments costs one read per fragment header (in a bucket, one request each:
    a thousand for a slide microscopy level of a thousand tiles, whose Basic Offset Table is
    usually empty), where an object that ends with the delimiter has nothing after the pixels
    to find. Its end is taken from there, in the bytes the step reads anyway (the object's
    last block); the fragments in between are not checked, so damage inside them is not
    reported. Anything else (elements after the pixels, no delimiter at the end, a first
    fragment that is no item) is walked fragment by fragment, by the offset table if any.
    """
    if size is None or size - 8 < first_fragment:
        return False
    if _item_header(reader, size - 8, little) != (_SEQUENCE_DELIMITER, 0):
        return False
    if size - 8 == first_fragment:
        return True  # no fragment after the offset table
    first = _item_header(reader, first_fragment, little)
    return first is not None and first[0] == _ITEM


def _encapsulated_end(
    reader: _Reader, first_item: int, little: bool, size: int | None, max_items: int
) -> tuple[int | None, str | None]:
    """Offset after the Sequence Delimitation Item of encapsulated pixel data.

    Pixel data that ends the object is taken as ending there (``_ends_with_its_delimiter``).
    Otherwise item headers only: the Basic Offset Table (first item) gives the last frame's
    first fragment, so a multi-frame object costs a few reads, not one per frame; a table that
    does not point at an item is ignored and every fragment is walked.
    """
    header = _item_header(reader, first_item, little)
    if header is None or header[0] != _ITEM:
        return None, "encapsulated pixel data without an item: elements after it not read"
    table_length = header[1]
    start = first_item + 8 + table_length  # the first fragment
    if _ends_with_its_delimiter(reader, start, little, size):
        return size, None
    if 4 <= table_length <= 4 * max_items and table_length % 4 == 0:
        last = reader.read(start - 4, 4)
        if len(last) == 4:
            jump = start + struct.unpack("<L" if little else ">L", last)[0]
            at_jump = _item_header(reader, jump, little) if size is None or jump < size else None
            if at_jump is not None and at_jump[0] == _ITEM:
                start = jump
    position = start
    for _ in range(max_items):
        header = _item_header(reader, position, little)
        if header is None:
            return None, "file ends inside encapsulated pixel data"
        tag, length = header
        if tag == _SEQUENCE_DELIMITER:
            return position + 8, None
        if tag != _ITEM or length == _UNDEFINED_LENGTH:
            return None, "encapsulated pixel data item not readable: elements after it not read"
        position += 8 + length
        if size is not None and position > size:
            return None, "file ends inside encapsulated pixel data"
    return None, "encapsulated pixel data has too many fragments: elements after it not read"


def read_after_pixel_data(
    fp: BinaryIO,
    offset: int,
    implicit: bool,
    little: bool,
    *,
    defer_size: int | None = None,
    max_items: int = 200_000,
    head: bytes = b"",
    size: int | None = None,
) -> Trailing:
    """Skip the Pixel Data element at ``offset`` and read the top-level elements after it.

    ``fp`` is the object (seekable); the caller checked with ``pixel_data_at`` that Pixel Data
    is at ``offset``. Values longer than ``defer_size`` are skipped (value ``None``), like
    long values of the header. Never raises for a damaged object: what could not be read is in
    ``problems``. ``head``: the object's first bytes, if the caller holds them (a local file
    read by the walker), and ``size`` the object's, if known: neither is read again.
    """
    result = Trailing()
    try:
        reader = _Reader(fp, head)
        _read_after_pixel_data(
            fp, reader, offset, implicit, little, defer_size, max_items, result, size
        )
    except BudgetExceeded as exceeded:
        result.problems.append(f"elements after pixel data stopped by a budget: {exceeded.message}")
    except (Exception, RecursionError) as exc:
        result.problems.append(f"elements after pixel data not read: {type(exc).__name__}")
    return result


def _read_after_pixel_data(
    fp: BinaryIO,
    reader: _Reader,
    offset: int,
    implicit: bool,
    little: bool,
    defer_size: int | None,
    max_items: int,
    result: Trailing,
    size: int | None,
) -> None:
    if size is None:
        size = _object_size(fp)
    head = reader.read(offset, 8)
    if len(head) < 8:
        result.problems.append("file ends inside the pixel data element header")
        return
    tag = _tag(head, little)
    vr: str | None = None
    if implicit:
        length = struct.unpack("<L" if little else ">L", head[4:8])[0]
        value_offset = offset + 8
    elif head[4:6] in _LONG_LENGTH_VRS:
        vr = head[4:6].decode("ascii")
        extra = reader.read(offset + 8, 4)
        if len(extra) < 4:
            result.problems.append("file ends inside the pixel data element header")
            return
        length = struct.unpack("<L" if little else ">L", extra)[0]
        value_offset = offset + 12
    else:  # a 2-byte length: not a valid pixel data header, but its length is still usable
        vr = head[4:6].decode("latin-1")
        length = struct.unpack("<H" if little else ">H", head[6:8])[0]
        value_offset = offset + 8
    if length == _UNDEFINED_LENGTH:
        vr = vr or "OB"  # encapsulated: OB whatever the dictionary's "OB or OW" would say
        if size is not None:
            _prefetch(fp, max(value_offset, size - TRAILING_BLOCK), size)
        end, problem = _encapsulated_end(reader, value_offset, little, size, max_items)
        if problem is not None:
            result.problems.append(problem)
    else:
        end = value_offset + length
        if size is not None and end > size:
            result.problems.append("value truncated: file ends inside pixel data")
            end = None
    result.end = end
    # Pixel Data itself: tag, VR and length, never its value
    value_length = length if end is None or length != _UNDEFINED_LENGTH else end - value_offset - 8
    result.pixel_data = RawDataElement(
        BaseTag(tag), vr, value_length, None, value_offset, implicit, little
    )
    if end is None or (size is not None and end >= size):
        return
    _prefetch(fp, end, min(end + TRAILING_BLOCK, size) if size is not None else end)
    fp.seek(end)
    seen: set[int] = set()
    try:
        with recovering():  # a big endian file's undefined-length UN there too (CP-246)
            for element in filereader.data_element_generator(
                fp, implicit, little, defer_size=defer_size
            ):
                if element.tag in seen or element.tag == tag:
                    # zeros or padding parse as one empty element after another: stop there
                    result.problems.append(
                        f"element {int(element.tag):08X} repeated after pixel data: "
                        "the rest of the object not read"
                    )
                    break
                seen.add(element.tag)
                if element.tag < tag:
                    result.problems.append(
                        f"element {int(element.tag):08X} after pixel data, out of tag order"
                    )
                result.elements.append(element)
    except BudgetExceeded:
        raise
    except (Exception, RecursionError) as exc:
        result.problems.append(
            f"element parse after pixel data failed after {len(result.elements)} elements: "
            f"{type(exc).__name__}"
        )


def add_elements_after_pixel_data(
    dataset: Dataset, fp: BinaryIO, stopped_at: int | None, defer_size: int | None = None
) -> list[str]:
    """Add Pixel Data (tag, VR, length) and the elements after it to ``dataset``'s elements.

    ``stopped_at`` is where the header parse stopped; nothing is read unless Pixel Data is
    there. A deflated data set is left as it is: its offsets are in the inflated stream.
    Returns the problems met, for the object's anomalies.
    """
    implicit, little = dataset.original_encoding
    if stopped_at is None or implicit is None or little is None:
        return []
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and UID(syntax).is_transfer_syntax and UID(syntax).is_deflated:
        return []
    try:
        if not pixel_data_at(fp, stopped_at, little):
            return []
    except (OSError, ValueError):
        return []
    trailing = read_after_pixel_data(fp, stopped_at, implicit, little, defer_size=defer_size)
    store = raw_elements(dataset)
    found = [trailing.pixel_data] if trailing.pixel_data is not None else []
    for element in found + trailing.elements:
        store.setdefault(element.tag, element)
    return trailing.problems


def flatten_after_pixel_data(walked: Walked, fp: BinaryIO, defer_size: int | None) -> list[str]:
    """The step for a header the walker flattened: the rows of Pixel Data and of what follows
    it are added to ``walked.flat``. Returns the problems met, for the object's anomalies."""
    if walked.stopped_at is None or walked.encoding is None or walked.inflated:
        return []  # a deflated data set's offsets are in the inflated stream, as on that path
    implicit, little = walked.encoding
    try:
        if not pixel_data_at(fp, walked.stopped_at, little, walked.head):
            return []
    except (OSError, ValueError):
        return []
    trailing = read_after_pixel_data(
        fp, walked.stopped_at, implicit, little, defer_size=defer_size, head=walked.head,
        size=walked.object_size,
    )  # fmt: skip
    found = [trailing.pixel_data] if trailing.pixel_data is not None else []
    elements: dict[int, RawDataElement] = {}
    for element in found + trailing.elements:
        elements.setdefault(element.tag, element)
    if trailing.elements or any(element.VR == "SQ" for element in found):
        # what follows may need its data set (sequences, private creators)
        dataset = Dataset()
        raw_elements(dataset).update(elements)
        dataset.set_original_encoding(implicit, little)
        flatten_more(walked.flat, dataset, walked.encodings, walked.pixel_representation)
    else:  # Pixel Data alone, the common case: a public tag needs no data set
        flatten_more(walked.flat, None, walked.encodings, walked.pixel_representation, elements)
    return trailing.problems
