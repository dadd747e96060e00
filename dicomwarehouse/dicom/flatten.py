"""Flatten one parsed header into a dicom_metadata row and its dicom_elements rows.

One walk over the data set, sequences included, produces both tables: the lossless element
rows (every element at every depth, private and unknown tags too) and the nested, typed
metadata row in the Healthcare API export's shape. Values are decoded from pydicom's raw
elements (see ``values``), so pydicom never converts a value except to open a sequence.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.hooks import raw_element_vr

from dicomwarehouse.dicom.charsets import character_sets, unknown_character_sets
from dicomwarehouse.dicom.private import private_entry
from dicomwarehouse.dicom.pydicom_boundary import raw_elements
from dicomwarehouse.dicom.recovery import VALID_VRS
from dicomwarehouse.dicom.values import (
    DecodedValue,
    column_value,
    decode_converted_value,
    decode_raw_value,
    decoded_value,
)
from dicomwarehouse.tables.schema import (
    ELEMENTS_SCHEMA,
    MAX_SEQUENCE_COLUMN_DEPTH,
    ColumnPath,
    column_path_problem,
)
from dicomwarehouse.tables.vr import (
    BINARY_VRS,
    STRUCT_PACK_FORMAT,
    dictionary_column,
    resolve_ambiguous_vr,
)

__all__ = [
    "TAG_INFOS",
    "ElementRows",
    "FlatObject",
    "Flattener",
    "ObjectElements",
    "TagInfo",
    "element_batch",
    "flatten_dataset",
    "flatten_more",
    "tag_info",
    "text_length",
]

_UNDEFINED_LENGTH = 0xFFFFFFFF
_SPECIFIC_CHARACTER_SET = 0x00080005


#: dicom_elements columns that ElementRows holds, in row-tuple order.
_ROW_FIELDS = (
    "tag_path",
    "path",
    "tag",
    "keyword",
    "vr",
    "vm",
    "depth",
    "private_creator",
    "value_strings",
    "value_length",
)


#: The row tuples as one Arrow struct; the schema's other columns are the constants
#: ``element_batch`` adds around them, in this order.
_ROW_TYPE = pa.struct([ELEMENTS_SCHEMA.field(name) for name in _ROW_FIELDS])
assert ELEMENTS_SCHEMA.names == ["source_url", "SOPInstanceUID", *_ROW_FIELDS, "ingest_run_id"]
_ROW_TYPE_EMPTY = pa.array([], _ROW_TYPE)


class ElementRows:
    """dicom_elements rows of one object: one tuple a row, transposed once for Arrow."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []

    def __len__(self) -> int:
        return len(self.rows)

    def column(self, name: str) -> list[Any]:
        """One column as a list, as Arrow gives it back (for tests and small checks; Arrow is
        the bulk path). The rows hold each value_strings as a tuple (see ``DecodedValue``)."""
        index = _ROW_FIELDS.index(name)
        if name == "value_strings":
            return [None if row[index] is None else list(row[index]) for row in self.rows]
        return [row[index] for row in self.rows]

    def __getattr__(self, name: str) -> list[Any]:
        if name in _ROW_FIELDS:
            return self.column(name)
        raise AttributeError(name)

    def to_arrow(self) -> pa.StructArray:
        """The rows as one Arrow struct array (its fields are the row columns).

        One conversion of the row tuples rather than one per column: for an object of a
        hundred elements, the fixed cost of each ``pa.array`` call is most of the cost.
        """
        return pa.array(self.rows, _ROW_TYPE)


@dataclass(frozen=True, slots=True)
class ObjectElements:
    """One object's dicom_elements rows, on their way to a batch of many objects' rows.

    The rows' own columns are already Arrow (``ElementRows.to_arrow``, called while the
    object is extracted, so that a value Arrow refuses is that object's error row and never a
    failed write). The three values all its rows share are added by ``element_batch`` over many
    objects at once: done per object, assembling a record batch cost more than converting the
    rows of a small header.
    """

    source_url: str
    sop_instance_uid: str | None
    ingest_run_id: str
    rows: pa.StructArray

    @property
    def num_rows(self) -> int:
        return len(self.rows)

    @property
    def nbytes(self) -> int:
        """The bytes of the rows once in a record batch, the three shared columns included
        (what a writer's byte bound must count: a URL repeated per row outweighs most rows)."""
        shared = len(self.source_url) + len(self.sop_instance_uid or "") + len(self.ingest_run_id)
        return self.rows.nbytes + self.num_rows * (shared + 12)


def element_batch(objects: Sequence[ObjectElements]) -> pa.RecordBatch:
    """The dicom_elements rows of ``objects`` as one record batch, in their order."""
    if len(objects) == 1:
        rows = objects[0].rows
    else:
        rows = pa.concat_arrays([part.rows for part in objects]) if objects else _ROW_TYPE_EMPTY
    counts = np.fromiter((len(part.rows) for part in objects), np.int64, len(objects))
    arrays = [
        _repeated_strings([part.source_url for part in objects], counts),
        _repeated_strings([part.sop_instance_uid for part in objects], counts),
        *rows.flatten(),
        _repeated_strings([part.ingest_run_id for part in objects], counts),
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=ELEMENTS_SCHEMA)


def _repeated_strings(values: list[str | None], counts: np.ndarray) -> pa.Array:
    """A string array of each value repeated ``counts`` times: a ``take`` of the distinct
    values by a repeated index.

    Why: a ``repeat`` per object is a fixed cost per object (most of a small one's batch).
    Building the string buffers in Python (one byte string repeated per object, joined) took
    10 times as long as the ``take`` on small headers, and 14 times on enhanced multi-frame
    ones (``benchmarks/benchmark.py``'s objects, measured in one process).
    """
    indices = np.repeat(np.arange(len(values), dtype=np.int32), counts)
    return pa.array(values, pa.string()).take(pa.array(indices))


@dataclass
class FlatObject:
    """Everything one header contributes to the warehouse, before provenance is added."""

    metadata: dict[str, Any]
    column_paths: set[ColumnPath]
    elements: ElementRows
    anomalies: list[dict[str, str | None]]

    @property
    def sop_instance_uid(self) -> str | None:
        value = self.metadata.get("SOPInstanceUID") or self.metadata.get(
            "MediaStorageSOPInstanceUID"
        )
        return value if isinstance(value, str) else None


def text_length(decoded: DecodedValue, vr: str) -> int | None:
    """Encoded length of an element pydicom converted before we saw its raw bytes."""
    strings = decoded[0]
    if strings is None:
        return None
    if vr in STRUCT_PACK_FORMAT:
        return len(strings) * STRUCT_PACK_FORMAT[vr][1] * (2 if vr == "AT" else 1)
    length = len("\\".join(strings).encode("utf-8", "replace"))
    return length + (length & 1)


@dataclass(frozen=True, slots=True)
class TagInfo:
    """What a tag means, independent of any file: looked up once per process."""

    tag: int
    hex: str
    keyword: str | None
    column: tuple[str, str, bool] | None  # (name, dictionary VR, repeated) for public tags
    segment: str  # its name in ``path``: the keyword, or Tag_GGGGEEEE
    private: bool
    creator_slot: bool  # a private creator element (gggg,0010-00FF)
    creator_key: int | None  # the creator element of a private block element
    delimiter: bool  # an item or delimitation tag (group FFFE) read as an element


#: Every tag met so far, by tag: a hot loop looks here first and calls ``tag_info`` on a miss.
TAG_INFOS: dict[int, TagInfo] = {}


def tag_info(tag: int) -> TagInfo:
    info = TAG_INFOS.get(tag)
    if info is None:
        tag_hex = f"{tag:08X}"
        private = bool(tag >> 16 & 1)
        block = tag & 0xFFFF
        keyword = None if private else (keyword_for_tag(tag) or None)
        column = None if private else dictionary_column(tag)
        info = TagInfo(
            tag=tag,
            hex=tag_hex,
            keyword=keyword,
            column=column,
            segment=column[0] if column is not None else keyword or f"Tag_{tag_hex}",
            private=private,
            creator_slot=private and 0x0010 <= block <= 0x00FF,
            creator_key=(tag & 0xFFFF0000) | (block >> 8) if private and block >= 0x1000 else None,
            delimiter=tag >> 16 == 0xFFFE,
        )
        TAG_INFOS[tag] = info
    return info


class Flattener:
    """One walk over one data set; holds what the walk accumulates."""

    def __init__(
        self, pixel_representation: int | None, read_range: Callable[[int, int], bytes] | None
    ) -> None:
        self.read_range = read_range
        self.rows = ElementRows()
        self.row_list = self.rows.rows  # appended to once per element
        self.paths: set[ColumnPath] = set()
        self.anomalies: list[dict[str, str | None]] = []
        self.pixel_representation = pixel_representation
        #: private creators found in the dictionary only ignoring case (one anomaly each)
        self.creators_matched: set[str] = set()

    def anomaly(self, tag_path: str, keyword: str | None, reason: str) -> None:
        self.anomalies.append({"tag_path": tag_path, "keyword": keyword, "reason": reason})

    def walk(
        self,
        dataset: Dataset | None,
        tag_prefix: str,
        path_prefix: str,
        column_prefix: ColumnPath | None,
        depth: int,
        encodings: Sequence[str] | None,
        out: dict[str, Any],
        elements: Any = None,
    ) -> None:
        """Add the rows of every element of ``dataset`` (recursively) and fill ``out``.

        ``elements``: instead of ``dataset``'s, raw elements of public non-sequence tags,
        which need no data set around them (``dataset`` None)."""
        creators: dict[int, str] = {}
        rows = self.rows.rows
        # the raw element store: Dataset.get_item() would load every value the header read
        # deferred, which is what deferring is meant to avoid.
        if elements is None:
            elements = raw_elements(dataset)
        for base_tag, element in list(elements.items()):
            # a plain int: BaseTag compares in Python, which dominates dict look-ups
            tag = int(base_tag)
            info = tag_info(tag)
            tag_path = tag_prefix + info.hex
            try:
                self.element(
                    dataset, element, tag, info, tag_path, path_prefix + info.segment,
                    column_prefix, depth, encodings, creators, out,
                )  # fmt: skip
            except (Exception, RecursionError) as exc:
                self.anomaly(tag_path, info.keyword, f"element not readable: {type(exc).__name__}")
                if not rows or rows[-1][0] != tag_path:
                    rows.append(
                        (tag_path, path_prefix + info.segment, info.hex, info.keyword,
                         None, None, depth, None, None, None)
                    )  # fmt: skip

    def _vr(
        self,
        element: RawDataElement | DataElement,
        dataset: Dataset,
        encodings: Sequence[str] | None,
        tag: int,
        tag_path: str,
        creator: str | None,
    ) -> str:
        vr = element.VR
        if isinstance(element, RawDataElement) and vr not in VALID_VRS:
            element = self._not_a_vr(element, tag_path)
            vr = None
        if isinstance(element, RawDataElement) and (vr is None or vr == "UN"):
            # implicit VR (or UN in explicit VR): the dictionaries decide, as pydicom does
            entry = private_entry(tag, creator) if creator is not None else None
            if entry is not None:
                vr = entry.vr
                if not entry.exact and creator not in self.creators_matched:
                    self.creators_matched.add(creator)
                    self.anomaly(
                        tag_path,
                        None,
                        f"private creator {creator[:64]!r} matched the private dictionary's "
                        f"{entry.creator!r} ignoring case and spaces",
                    )
                if vr == "SQ":
                    self._retype_as_sequence(dataset, tag, element)
            elif tag & 0xFFFF == 0:  # a group length, private groups' too (PS3.5 7.2)
                vr = "UL"
            else:
                found: dict[str, Any] = {}
                raw_element_vr(element, found, encoding=encodings, ds=dataset)
                vr = found["VR"]
        vr = str(vr)
        return resolve_ambiguous_vr(vr, self.pixel_representation) if " or " in vr else vr

    def _not_a_vr(self, element: RawDataElement, tag_path: str) -> RawDataElement:
        """An element whose VR field was not a VR (``recovery``): its VR is the dictionary's."""
        if element.VR is not None:
            self.anomaly(
                tag_path,
                None,
                "VR field is not a VR: read with its 2-byte length, VR from the dictionary",
            )
            return element._replace(VR=None)
        if not element.is_implicit_VR:
            self.anomaly(tag_path, None, "VR field is not a VR: read as implicit VR")
        return element

    @staticmethod
    def _retype_as_sequence(dataset: Dataset, tag: int, element: RawDataElement) -> None:
        """Make pydicom parse a private sequence it read untyped: SQ, and a UN value's
        content is implicit VR little endian whatever the transfer syntax (PS3.5 6.2.2)."""
        if element.VR == "UN":
            element = element._replace(VR="SQ", is_implicit_VR=True, is_little_endian=True)
        else:
            element = element._replace(VR="SQ")
        raw_elements(dataset)[tag] = element

    def element(
        self,
        dataset: Dataset,
        element: RawDataElement | DataElement,
        tag: int,
        info: TagInfo,
        tag_path: str,
        path: str,
        column_prefix: ColumnPath | None,
        depth: int,
        encodings: Sequence[str] | None,
        creators: dict[int, str],
        out: dict[str, Any],
    ) -> None:
        creator = creators.get(info.creator_key) if info.creator_key is not None else None
        vr = self._vr(element, dataset, encodings, tag, tag_path, creator)
        keyword = info.keyword
        is_raw = isinstance(element, RawDataElement)

        if vr == "SQ":
            element = raw_elements(dataset)[tag]  # retyped when a private dictionary said SQ
            if is_raw and element.value is None and element.length and self.read_range:
                # a sequence longer than the defer size: its items are header, read them
                value = self.read_range(element.value_tell, element.length)
                raw_elements(dataset)[tag] = element._replace(value=value)
            self.sequence(
                dataset, element, tag, info, tag_path, path, creator, column_prefix, depth,
                encodings, out,
            )  # fmt: skip
            return

        if is_raw:
            value = element.value
            length = element.length
            if length == _UNDEFINED_LENGTH:  # the value as read, up to its delimiter
                length = len(value) if isinstance(value, bytes) else None
            if value is None and not length:
                value = b""  # pydicom keeps zero-length values of implicit VR as None
            if value is None:
                decoded = self.deferred(tag_path, keyword, vr, length)
            else:
                if length is not None and len(value) < length:
                    self.anomaly(tag_path, keyword, "value truncated: file ends inside it")
                decoded = decode_raw_value(vr, value, element.is_little_endian, encodings)
        else:
            decoded = decode_converted_value(vr, element.value)
            converted = element.value
            # a binary value pydicom converted (file meta without group length): its bytes
            binary = isinstance(converted, bytes | bytearray)
            length = len(converted) if binary else text_length(decoded, vr)
        self.add_value(
            tag, info, tag_path, path, column_prefix, depth, vr, decoded, length, creator,
            creators, out,
        )  # fmt: skip

    def deferred(
        self, tag_path: str, keyword: str | None, vr: str, length: int | None
    ) -> DecodedValue:
        """The decoded value of an element the header read skipped (longer than the defer
        size): nothing, and an anomaly unless no table would have kept its bytes anyway."""
        if vr not in BINARY_VRS:
            self.anomaly(tag_path, keyword, f"value of {length} bytes not read (deferred)")
        return _DEFERRED

    def result(self, metadata: dict[str, Any]) -> FlatObject:
        """The object's flat rows once every data set is walked."""
        return FlatObject(metadata, _checked_paths(self), self.rows, self.anomalies)

    def add_value(
        self,
        tag: int,
        info: TagInfo,
        tag_path: str,
        path: str,
        column_prefix: ColumnPath | None,
        depth: int,
        vr: str,
        decoded: DecodedValue,
        length: int | None,
        creator: str | None,
        creators: dict[int, str],
        out: dict[str, Any],
    ) -> None:
        """The row, column and anomalies of one decoded non-sequence element.

        Shared by this walk over pydicom data sets and by the raw header walker
        (``walk``), so that both give the same rows by construction.
        """
        keyword = info.keyword
        strings, _, decoded_problem = decoded
        if decoded_problem:
            self.anomaly(tag_path, keyword, decoded_problem)
        if strings is None:
            self.row_list.append(
                (tag_path, path, info.hex, keyword, vr, None, depth, creator, None, length)
            )
        else:
            if strings and info.creator_slot:
                creator = strings[0]
                creators[tag] = creator
            self.row_list.append(
                (tag_path, path, info.hex, keyword, vr, len(strings), depth, creator, strings,
                 length)
            )  # fmt: skip

        if column_prefix is None:
            return
        column = info.column
        if column is None:
            if info.delimiter:
                self.anomaly(tag_path, keyword, _DELIMITER_AS_ELEMENT)
                return
            if strings is not None:
                out["OtherElements"].append(
                    {"Tag": f"Tag_{info.hex}", "PrivateCreator": creator, "Data": list(strings)}
                )
            return
        name, column_vr, repeated = column
        if column_vr == "SQ":
            self.anomaly(tag_path, keyword, f"{vr} value for a sequence attribute")
            return
        value, problem = column_value(column_vr, repeated, decoded)
        if problem and problem != decoded_problem:
            self.anomaly(tag_path, keyword, problem)
        out[name] = value
        self.paths.add((*column_prefix, tag))

    def sequence(
        self,
        dataset: Dataset,
        element: RawDataElement | DataElement,
        tag: int,
        info: TagInfo,
        tag_path: str,
        path: str,
        creator: str | None,
        column_prefix: ColumnPath | None,
        depth: int,
        encodings: Sequence[str] | None,
        out: dict[str, Any],
    ) -> None:
        length = element.length if isinstance(element, RawDataElement) else None
        items = dataset[tag].value
        _, item_prefix = self.open_sequence(
            info, tag_path, path, creator, column_prefix, depth, len(items),
            None if length == _UNDEFINED_LENGTH else length,
        )  # fmt: skip
        values: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            item_out: dict[str, Any] = {"OtherElements": []}
            item_elements = raw_elements(item)
            item_encodings = (
                _character_sets(item_elements)
                if _SPECIFIC_CHARACTER_SET in item_elements
                else encodings
            )
            self.walk(
                item,
                f"{tag_path}[{index}].",
                f"{path}[{index}].",
                item_prefix,
                depth + 1,
                item_encodings,
                item_out,
            )
            values.append(item_out)
        self.close_sequence(info, item_prefix, values, out)

    def open_sequence(
        self,
        info: TagInfo,
        tag_path: str,
        path: str,
        creator: str | None,
        column_prefix: ColumnPath | None,
        depth: int,
        item_count: int | None,
        length: int | None,
    ) -> tuple[int, ColumnPath | None]:
        """Add a sequence's row; return its row index and the column prefix of its items.

        The prefix is None when the items cannot be columns (they still get element rows).
        A walker that counts items as it reads them passes ``item_count=None`` and sets it
        with ``set_item_count`` once the sequence is read.
        """
        self.rows.rows.append(
            (tag_path, path, info.hex, info.keyword, "SQ", item_count, depth, creator, None,
             length)
        )  # fmt: skip
        row_index = len(self.rows.rows) - 1
        column = info.column
        item_prefix: ColumnPath | None = None
        if column_prefix is not None:
            if info.delimiter:
                self.anomaly(tag_path, info.keyword, _DELIMITER_AS_ELEMENT)
            elif column is not None and column[1] != "SQ":
                self.anomaly(tag_path, info.keyword, f"sequence value for a {column[1]} attribute")
            elif len(column_prefix) + 1 > MAX_SEQUENCE_COLUMN_DEPTH:
                self.anomaly(
                    tag_path,
                    info.keyword,
                    f"sequence nested deeper than {MAX_SEQUENCE_COLUMN_DEPTH} levels: "
                    "kept in dicom_elements only",
                )
            else:
                item_prefix = (*column_prefix, info.tag)
                self.paths.add(item_prefix)
        return row_index, item_prefix

    def set_item_count(self, row_index: int, item_count: int) -> None:
        """Fill in the item count (vm) of a sequence row opened without one."""
        row = self.rows.rows[row_index]
        self.rows.rows[row_index] = (*row[:5], item_count, *row[6:])

    def close_sequence(
        self,
        info: TagInfo,
        item_prefix: ColumnPath | None,
        values: list[dict[str, Any]],
        out: dict[str, Any],
    ) -> None:
        """Put the items' metadata dicts in the parent's, if the sequence is a column."""
        if item_prefix is not None:
            out[info.segment] = values


_DEFERRED = decoded_value(None)
_DELIMITER_AS_ELEMENT = "item or delimitation tag where an element should be: dicom_elements only"


def _character_sets(elements: Any) -> tuple[str, ...]:
    """Specific Character Set of a data set as its defined terms (never pydicom's codecs)."""
    element = elements.get(_SPECIFIC_CHARACTER_SET)
    return character_sets(element.value if element is not None else None)


def _pixel_representation(dataset: Dataset) -> int | None:
    try:
        value = dataset.get("PixelRepresentation")
        return int(value) if value not in (None, "") else None
    except (Exception, RecursionError):
        return None


def flatten_dataset(
    dataset: Dataset, read_range: Callable[[int, int], bytes] | None = None
) -> FlatObject:
    """Walk file meta and data set once; return the metadata row, element rows and paths.

    ``read_range(offset, length)`` fetches a sequence the header read deferred; without it
    such a sequence is left to pydicom, which re-opens the file by name.
    """
    flattener = Flattener(_pixel_representation(dataset), read_range)
    metadata: dict[str, Any] = {"OtherElements": []}
    file_meta = getattr(dataset, "file_meta", None)
    if file_meta is not None:
        flattener.walk(file_meta, "", "", (), 0, None, metadata)
    try:
        encodings = _character_sets(raw_elements(dataset))
    except (Exception, RecursionError):
        encodings = None
        flattener.anomaly("00080005", "SpecificCharacterSet", "unusable character set")
    for term in unknown_character_sets(encodings or ()):
        reason = f"unknown character set {term[:64]!r}: read as ISO-IR 6 and Latin-1"
        flattener.anomaly("00080005", "SpecificCharacterSet", reason)
    flattener.walk(dataset, "", "", (), 0, encodings, metadata)
    return flattener.result(metadata)


def flatten_more(
    flat: FlatObject,
    dataset: Dataset | None,
    encodings: Sequence[str] | None,
    pixel_representation: int | None,
    elements: Any = None,
) -> None:
    """Add the top-level elements of ``dataset`` (or ``elements``, see ``Flattener.walk``) to
    a flat object already made (the elements after Pixel Data, read after a header flattened
    by the walker)."""
    flattener = Flattener(pixel_representation, None)
    out: dict[str, Any] = {"OtherElements": []}
    flattener.walk(dataset, "", "", (), 0, encodings, out, elements)
    more = flattener.result(out)
    flat.elements.rows.extend(more.elements.rows)
    flat.anomalies.extend(more.anomalies)
    flat.column_paths |= more.column_paths
    flat.metadata.setdefault("OtherElements", []).extend(out.pop("OtherElements"))
    for name, value in out.items():
        flat.metadata.setdefault(name, value)


def _checked_paths(flattener: Flattener) -> set[ColumnPath]:
    """The walk's column paths less any that cannot be a column (each recorded as an anomaly).

    The walk already keeps such tags out; this check is what guarantees that nothing one
    object holds can reach the run's schema, whatever a later change to the walk does.
    """
    paths = flattener.paths
    unchecked = paths - _GOOD_PATHS  # one set operation: objects repeat the same paths
    if not unchecked:
        return paths
    for path in unchecked:
        if _path_problem(path) is None:
            if len(_GOOD_PATHS) >= _MAX_PATH_PROBLEMS:
                _GOOD_PATHS.clear()
            _GOOD_PATHS.add(path)
    for path in [p for p in unchecked if _path_problem(p) is not None]:
        paths.discard(path)
        tag_path = ".".join(f"{tag:08X}" for tag in path)
        flattener.anomaly(tag_path, None, f"not a column: {_path_problem(path)}")
    return paths


_PATH_PROBLEMS: dict[ColumnPath, str | None] = {}
#: Paths found fit to be columns.
_GOOD_PATHS: set[ColumnPath] = set()
_MAX_PATH_PROBLEMS = 65536


def _path_problem(path: ColumnPath) -> str | None:
    """``column_path_problem``, once per path and process: objects repeat the same paths."""
    try:
        return _PATH_PROBLEMS[path]
    except KeyError:
        pass
    problem = column_path_problem(path)
    if len(_PATH_PROBLEMS) >= _MAX_PATH_PROBLEMS:
        _PATH_PROBLEMS.clear()
    _PATH_PROBLEMS[path] = problem
    return problem
