"""Flatten a header straight from its bytes: one pass, no pydicom Dataset per item.

pydicom builds a Dataset (and an attribute-setting DataElement per value) for every sequence
item it opens; an enhanced multi-frame header has thousands of items, and building them costs
more than everything else the ingest does. This walker reads the encoded header once with
``struct`` over an in-memory buffer and hands each element to the same ``flatten.Flattener``
methods the pydicom path uses (rows, columns, anomalies) and to the same value decoding
(``values``), so both paths give identical rows by construction.

pydicom stays the reference. The walker handles the well-formed case, and the damage real
files commonly have that pydicom reads on from without a fuss: a data set encoded otherwise
than its transfer syntax says, an object (or a sequence's value) whose bytes end inside an
element, a sequence written as UN, an empty character set. Anything it does not handle
exactly as ``read.read_header`` + ``flatten.flatten_dataset`` would (no DICM prefix and no
raw data set, a private transfer syntax, a duplicate or unsorted tag, an item header cut
short, a stray delimiter, a character set pydicom warns about, a budget that would run out,
a pydicom warning of any kind) makes it give up, and the object goes through the pydicom
path instead. A private creator found in the dictionary only ignoring case is
read as that path reads it (the same VR and anomaly; its UN sequences as implicit VR little
endian). Giving up costs only the bytes already read: the same opened object is read again
from the start (a ranged object keeps what it fetched).

It stops at Pixel Data like the reference; ``trailing`` then reads what follows, for both
paths alike (``Walked`` says where the walk stopped and in which encoding).

Values pydicom converts before the flatten sees them (the file meta group's first element, its
group length and transfer syntax, the top-level Specific Character Set and Pixel
Representation, private creators used to look up a VR) are converted here with pydicom's own
converter, so they come out as they do there.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

from pydicom import config
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_has_tag, dictionary_VR
from pydicom.dataelem import RawDataElement, convert_raw_data_element
from pydicom.tag import BaseTag
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    PrivateTransferSyntaxes,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32
from pydicom.values import converters

from dicomwarehouse.dicom.budgets import ITEM_WEIGHT, BudgetMeter, ReadBudget
from dicomwarehouse.dicom.charsets import character_sets, unknown_character_sets
from dicomwarehouse.dicom.flatten import (
    TAG_INFOS,
    FlatObject,
    Flattener,
    TagInfo,
    tag_info,
    text_length,
)
from dicomwarehouse.dicom.private import private_entry
from dicomwarehouse.dicom.read import (
    HEADER_TRUNCATED_PROBLEM,
    RAW_DATA_SET_PROBLEM,
    collect_pydicom_problems,
)
from dicomwarehouse.dicom.values import (
    DecodedValue,
    decode_converted_value,
    decode_raw_value,
    decoded_value,
)
from dicomwarehouse.tables.vr import BINARY_VRS, CHARSET_VRS, resolve_ambiguous_vr

__all__ = ["Walked", "forget_values", "walk_object"]

_UNDEFINED = 0xFFFFFFFF
_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_CHARSET = 0x00080005
_PIXEL_REPRESENTATION = 0x00280103
_PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
#: VRs pydicom reads values of: a data set without a transfer syntax whose first element's
#: VR bytes name one of these is explicit VR to pydicom
_PYDICOM_VRS = frozenset(converters)
_LONG_VRS = {vr.encode("ascii"): str(vr) for vr in EXPLICIT_VR_LENGTH_32}
_SHORT_VRS = {vr.encode("ascii"): str(vr) for vr in EXPLICIT_VR_LENGTH_16}
_BINARY = decoded_value(None)
#: What the reference's file meta read converts besides its first element.
_META_CONVERTED = frozenset({0x00020000, 0x00020010})
#: First read of a local file: the whole header of most single-frame objects.
LOCAL_FIRST_READ = 16 * 1024
#: Each later read of a local file: this times what was read before.
LOCAL_GROWTH = 8
#: First read after a skipped value: usually a few elements and the Pixel Data tag.
_AFTER_SKIP_READ = 4096
#: A skipped value longer than this is not held as zeros: the pydicom path takes the object.
_MAX_SKIP = 32 * 1024 * 1024
#: A need for every byte of the object (a deflated data set is inflated whole).
_WHOLE_OBJECT = 1 << 62
#: Parse attempts per object (each after reading more): far more than doubling needs.
_MAX_ATTEMPTS = 40

_UNPACK = {
    True: (struct.Struct("<HHL").unpack_from, struct.Struct("<HH2sH").unpack_from,
           struct.Struct("<L").unpack_from),
    False: (struct.Struct(">HHL").unpack_from, struct.Struct(">HH2sH").unpack_from,
            struct.Struct(">L").unpack_from),
}  # fmt: skip


def _vr_switch_problem(found_implicit: bool) -> str:
    """pydicom's warning on a data set encoded otherwise than its transfer syntax says."""
    found, expected = ("implicit", "explicit") if found_implicit else ("explicit", "implicit")
    return f"Expected {expected} VR, but found {found} VR - using {found} VR for reading"


class GiveUp(Exception):
    """The walker met something it does not handle exactly as the pydicom path does."""


class _NeedBytes(Exception):
    """The parse needs bytes up to ``end``; ``skip_to``: the bytes before it are not needed."""

    def __init__(self, end: int, skip_to: int | None = None) -> None:
        super().__init__(end)
        self.end = end
        self.skip_to = skip_to


@dataclass
class Walked:
    """A header flattened by the walker, and the bytes it read from the object."""

    flat: FlatObject
    bytes_read: int
    #: elements and items, counted as the read budget counts them
    elements: int
    #: what the row records besides the flat object's anomalies
    problems: list[str]
    #: where the walk stopped (Pixel Data's offset when it stopped there), the top level's
    #: (implicit VR, little endian) as the transfer syntax says, Specific Character Set
    #: terms and Pixel Representation: what the step after Pixel Data (``trailing``) needs
    stopped_at: int | None = None
    encoding: tuple[bool, bool] | None = None
    encodings: tuple[str, ...] = ()
    pixel_representation: int | None = None
    #: the data set was deflated (its offsets are in the inflated stream)
    inflated: bool = False
    #: the object's first bytes as read (a local file's: ``trailing`` reads no byte twice)
    head: bytes = b""
    object_size: int | None = None


def _defaults_in_force() -> bool:
    """The walker mirrors pydicom's default reading settings only."""
    settings = config.settings
    return (
        config.replace_un_with_known_vr
        and settings.infer_sq_for_un_vr
        and config.assume_implicit_vr_switch
        and settings.reading_validation_mode == config.WARN
    )


_PUBLIC_VR: dict[int, str | None] = {}


def _public_vr(tag: int) -> str | None:
    """The data dictionary's VR of a public tag (repeaters included), None if unknown."""
    try:
        return _PUBLIC_VR[tag]
    except KeyError:
        pass
    try:
        vr: str | None = str(dictionary_VR(tag))
    except KeyError:
        vr = None
    _PUBLIC_VR[tag] = vr
    return vr


#: VR of public tags in implicit VR, where it does not depend on Pixel Representation.
_IMPLICIT_VR: dict[int, str] = {}

_PRIVATE_VR: dict[tuple[int, str], str] = {}


def _private_vr(tag: int, creator: str) -> str:
    """The private dictionary's VR of ``tag`` in ``creator``'s block; "" where the creator
    is in the dictionary only ignoring case (the caller records that, as the pydicom path
    does)."""
    key = (tag, creator)
    vr = _PRIVATE_VR.get(key)
    if vr is None:
        entry = private_entry(tag, creator)
        vr = "UN" if entry is None else str(entry.vr)
        if entry is not None and not entry.exact:
            vr = ""  # found ignoring case: an anomaly the pydicom path records
        _PRIVATE_VR[key] = vr
    return vr


_CONVERTED: dict[tuple[int, str | None, bytes, bool, bool], Any] = {}


def _converted(tag: int, vr: str | None, value: bytes, implicit: bool, little: bool) -> Any:
    """pydicom's DataElement for a raw value, as its Dataset would convert it on access."""
    key = (tag, vr, value, implicit, little)
    element = _CONVERTED.get(key)
    if element is None:
        with collect_pydicom_problems() as problems:
            raw = RawDataElement(BaseTag(tag), vr, len(value), value or None, 0, implicit, little)
            element = convert_raw_data_element(raw)
        if problems:  # a conversion pydicom warns about: its row carries the warning
            raise GiveUp("conversion warning")
        if len(_CONVERTED) < 4096:
            _CONVERTED[key] = element
    return element


#: Specific Character Set values met so far: their terms and pydicom's warnings on them.
_CHARSETS: dict[tuple[str | None, bytes, bool, bool], tuple[tuple[str, ...], list[str]]] = {}


def _charset_terms(
    converted: Any, key: tuple[str | None, bytes, bool, bool]
) -> tuple[tuple[str, ...], list[str]]:
    """The terms of a Specific Character Set value and the warnings pydicom gives on them,
    worked out once per process and value (``key``: file VR, bytes, implicit, little).

    Every directory record of a DICOMDIR, and every item of some enhanced objects, repeats
    the same value: asking pydicom for its warnings each time was most of their cost.
    """
    found = _CHARSETS.get(key)
    if found is None:
        with collect_pydicom_problems() as problems:
            convert_encodings(converted)  # for the warnings pydicom gives
        found = (character_sets(converted), problems)
        if len(_CHARSETS) < 4096:
            _CHARSETS[key] = found
    return found


#: Decoded values of VRs the character set does not affect, by (VR, bytes, endianness).
_DECODED: dict[tuple[str, bytes, bool], DecodedValue] = {}
_MAX_SHARED_VALUE = 64
_MAX_SHARED_VALUES = 65536


def _decoded(
    vr: str, value: bytes, little: bool, encodings: tuple[str, ...] | None = None
) -> DecodedValue:
    """A short value decoded once per process: of a VR the character set does not affect, or
    of a text VR with the character set terms in force (``encodings``).

    The same values recur (per-frame items, CS terms, numbers, the file meta group's UIDs,
    names of manufacturers, stations, protocols and private creators).
    """
    key = (vr, value, little) if encodings is None else (vr, value, little, encodings)
    decoded = _DECODED.get(key)
    if decoded is None:
        decoded = decode_raw_value(vr, value, little, encodings)
        if len(_DECODED) >= _MAX_SHARED_VALUES:
            _DECODED.clear()
        _DECODED[key] = decoded
    return decoded


#: File meta values as the row gets them, by (tag, VR, bytes, first element of the group).
_META_VALUES: dict[tuple[int, str, bytes, bool], tuple[str, DecodedValue, int | None, Any]] = {}


def _meta_value(
    tag: int, vr: str, value: bytes, first: bool
) -> tuple[str, DecodedValue, int | None, Any]:
    """A file meta element's VR, decoded value, row length and converted value (the transfer
    syntax's is what the walk goes on with), as the reference's file meta read gives them."""
    if tag == 0x00020000 and vr == "UL" and len(value) == 4:
        # what pydicom's conversion gives, without it: one number, 4 bytes
        return vr, decode_raw_value(vr, value, True, None), len(value), None
    if first or tag in _META_CONVERTED:
        converted = _converted(tag, vr, value, False, True)
        vr = str(converted.VR)
        decoded = decode_converted_value(vr, converted.value)
        binary = isinstance(converted.value, bytes | bytearray)
        row_length = len(converted.value) if binary else text_length(decoded, vr)
        return vr, decoded, row_length, converted.value
    # no character set in the file meta group
    return vr, decode_raw_value(vr, value, True, None), len(value), None


#: What a public element of a short value adds (row, column name and value, top-level column
#: path), by (tag, VR, bytes, little endian, character set terms): learnt from ``add_value``
#: the first time, then added again without decoding, at any depth (the row's place, its
#: tag_path, path and depth, is the only part that differs). Only outcomes without anomalies,
#: whose column value nothing can change through another row: not a PN column's (a dict;
#: every other column's value is a str, number, date, time or None, or a list of them, kept
#: as a tuple).
_OUTCOMES: dict[tuple[Any, ...], tuple[tuple[Any, ...], str, Any, tuple[int], None]] = {}


#: The same for file meta elements, by (tag, VR, bytes, first element of the group), with the
#: converted value (the transfer syntax's is what the walk goes on with).
_META_OUTCOMES: dict[tuple[Any, ...], tuple[tuple[Any, ...], str, Any, tuple[int], Any]] = {}


def _remember_outcome(
    key: tuple[Any, ...],
    row: tuple[Any, ...],
    info: TagInfo,
    out: dict[str, Any],
    outcomes: dict[tuple[Any, ...], Any] = _OUTCOMES,
    converted: Any = None,
) -> None:
    """Keep what ``add_value`` just did for a public element (see ``_OUTCOMES``)."""
    name, column_vr, _ = info.column
    if column_vr == "SQ" or column_vr == "PN":
        return
    value = out[name]
    if type(value) is list:
        # kept as a tuple, so that once the collector has seen the outcome it stops tracking
        # it (a tuple of strings and numbers is not a container it must scan again); each
        # row gets a list of its own back
        value = tuple(value)
    if len(outcomes) >= _MAX_SHARED_VALUES:
        outcomes.clear()
    # the row as a top-level element's: a public element's row differs from place to place
    # only by its tag_path, path and depth (its private creator is None)
    row = (info.hex, info.segment, row[2], row[3], row[4], row[5], 0, None, row[8], row[9])
    outcomes[key] = (row, name, value, (info.tag,), converted)


#: What ``_convert_value`` gave, by its arguments: every object repeats its Specific Character
#: Set and Pixel Representation.
_CONVERTED_VALUES: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _convert_value(
    tag: int,
    file_vr: str | None,
    vr: str,
    value: bytes,
    implicit: bool,
    little: bool,
    top: bool,
    encodings: Any,
) -> tuple[str, DecodedValue, int | None, Any, list[str], int | None]:
    """``_Walker.converted_value``'s work, the same for the same arguments: the VR, decoded
    value, row length, character set terms in force after the element, pydicom's warnings
    on them and the Pixel Representation."""
    converted = _converted(tag, file_vr, value, implicit, little)
    if tag == _CHARSET:
        if top:
            vr = str(converted.VR)
            decoded = decode_converted_value(vr, converted.value)
            row_length = text_length(decoded, vr)
        else:  # a CS value (every directory record's): the sets in force do not apply
            shared = vr not in CHARSET_VRS and len(value) <= _MAX_SHARED_VALUE
            decoded = (
                _decoded(vr, value, little)
                if shared
                else decode_raw_value(vr, value, little, encodings)
            )
            row_length = len(value)
        key = (file_vr, value, implicit, little)
        terms, problems = _charset_terms(converted.value, key)
        return vr, decoded, row_length, terms, problems, None
    vr = str(converted.VR)
    number = converted.value
    if number in (None, ""):
        pixel_representation = None
    elif isinstance(number, int) and vr == "US":
        pixel_representation = number
    else:
        raise GiveUp("pixel representation")
    decoded = decode_converted_value(vr, number)
    return vr, decoded, text_length(decoded, vr), encodings, [], pixel_representation


def forget_values() -> None:
    """Empty the process's caches of decoded values.

    They are kept across objects because the same values recur from one object to the next;
    a benchmark empties them before each timed pass over its files, so that a repeated pass
    does not find every value of the same files decoded by the last one (a real ingest sees
    each object once).
    """
    _DECODED.clear()
    _CONVERTED.clear()
    _META_VALUES.clear()
    _CHARSETS.clear()
    _OUTCOMES.clear()
    _META_OUTCOMES.clear()
    _CONVERTED_VALUES.clear()


class _Walker:
    """One parse attempt over the bytes read so far."""

    def __init__(
        self,
        data: bytes,
        at_end: bool,
        defer_size: int,
        defer_in_items: bool,
        budget: ReadBudget,
    ) -> None:
        self.data = data
        self.size = len(data)
        self.at_end = at_end
        self.defer_size = defer_size
        self.defer_in_items = defer_in_items
        self.max_elements = budget.max_elements
        self.max_empty_items = budget.max_empty_items
        self.count = 0
        self.empty_items = 0
        self.flattener = Flattener(None, None)
        self.pixel_representation: int | None = None
        self.stopped_at: int | None = None
        self.encodings: tuple[str, ...] = ()
        self.assumed_unsigned = False  # a "US or SS" resolved before Pixel Representation
        self.inflated = False  # the data set was deflated: ``data`` holds it inflated
        self.raw = False  # no preamble and file meta group: a raw data set
        self.header_truncated = False  # bytes left after the last element, too few for one
        #: (implicit VR, little endian) of the transfer syntax, where the data set is not
        self.syntax_encoding: tuple[bool, bool] | None = None
        #: pydicom's warnings the pydicom path records on the row too (unique, in order)
        self.problems: list[str] = []
        #: the top level's encoding and metadata row, once the file meta group is read
        self.top_level: tuple[bool, bool, dict[str, Any]] = (False, True, {})
        #: the state before the top-level element being read
        self.mark: tuple | None = None

    # --- bytes ----------------------------------------------------------------------------

    def need(self, end: int) -> None:
        if end > self.size:
            if self.at_end:
                raise GiveUp("object ends inside the header")
            raise _NeedBytes(end)

    def skip(self, end: int) -> None:
        """A value whose bytes are not needed, but whose end must be inside the object."""
        if end > self.size:
            if self.at_end:
                raise GiveUp("object ends inside a value")
            raise _NeedBytes(end + 8, skip_to=end)

    def explicit_vr(
        self, vr_bytes: bytes, position: int, short_length: int, unpack_long: Any
    ) -> tuple[str, int, int]:
        """VR, length and value offset of the explicit VR element at ``position``: VRs with
        a 32-bit length have it after two reserved bytes; an unknown VR gives up (pydicom
        would guess)."""
        vr = _SHORT_VRS.get(vr_bytes)
        if vr is not None:
            return vr, short_length, position + 8
        vr = _LONG_VRS.get(vr_bytes)
        if vr is None:
            raise GiveUp("VR bytes")
        self.need(position + 12)
        return vr, unpack_long(self.data, position + 8)[0], position + 12

    def charge(self, elements: int) -> None:
        self.count += elements
        if self.count >= self.max_elements:
            raise GiveUp("element budget")

    # --- where the bytes end --------------------------------------------------------------

    def bytes_end_here(self) -> bool:
        """True where the bytes in hand end as the reference's reader sees them end: at the
        end of a local object (every byte read), which is also where the copy of a
        defined-length sequence's value that pydicom parses ends, if the object ends inside
        that value. A ranged read defers values inside items, which this does not follow:
        there the walker keeps giving up."""
        return self.at_end and not self.defer_in_items

    def header_cut(self, position: int, top: bool, last_tag: int) -> int:
        """Where a data set ends whose bytes run out before the next element header: pydicom
        reads the few bytes left and stops quietly (a truncated file, or an item longer than
        the sequence that ends the object). At the top level it notes the bytes left after
        a complete element of defined length still raw there (``read``), recorded by
        ``finish`` as there: not an undefined-length sequence (read with the data set), nor
        Specific Character Set (converted as it is read)."""
        if top and last_tag >= 0 and position < self.size and not self.inflated:
            rows = self.flattener.rows.rows
            last = next(row for row in reversed(rows) if row[6] == 0)  # depth 0
            raw = last[4] != "SQ" or last[9] is not None  # an undefined length has none
            if raw and last_tag != _CHARSET:
                self.header_truncated = True
        return max(position, self.size)

    def value_cut(
        self,
        tag: int,
        info: Any,
        tag_path: str,
        path: str,
        column_prefix: tuple[int, ...] | None,
        depth: int,
        vr: str,
        value_at: int,
        value_end: int,
        deferred: bool,
        top: bool,
        implicit: bool,
        little: bool,
        encodings: Any,
        creator: str | None,
        creators: dict[int, str],
        out: dict[str, Any],
    ) -> int:
        """The row of a value the bytes end inside, as the pydicom path gives it: the bytes
        there are (an anomaly says it is truncated), or none if it is past the defer size
        (pydicom skips it). Returns where the reference's reader is then."""
        if tag == _CHARSET or (top and tag == _PIXEL_REPRESENTATION):
            raise GiveUp("converted value truncated")
        if top and not implicit:
            self.explicit_value_cut()
        flattener = self.flattener
        if deferred:
            decoded = flattener.deferred(tag_path, info.keyword, vr, value_end - value_at)
            position = value_end  # pydicom seeks past it
        else:
            value = self.data[value_at : self.size]
            flattener.anomaly(tag_path, info.keyword, "value truncated: file ends inside it")
            decoded = decode_raw_value(vr, value, little, encodings)
            position = self.size
        flattener.add_value(
            tag, info, tag_path, path, column_prefix, depth, vr, decoded, value_end - value_at,
            creator, creators, out,
        )  # fmt: skip
        return position

    def explicit_value_cut(self) -> None:
        """A top-level explicit VR value running past the object's end makes the reference
        read the header again with its recovery rules, and keep that read if it finds more
        elements (``read``). It finds the same unless the rules rewrite a header inside an
        undefined-length sequence (read with the data set; those of defined length are
        parsed later, from their bytes): with one of those, the walker gives up."""
        rows = self.flattener.rows.rows
        if any(row[6] == 0 and row[4] == "SQ" and row[9] is None for row in rows):
            raise GiveUp("explicit VR value past the end after an undefined-length sequence")

    def cut_sequence(
        self,
        value_at: int,
        implicit: bool,
        little: bool,
        info: Any,
        tag_path: str,
        path: str,
        creator: str | None,
        column_prefix: tuple[int, ...] | None,
        depth: int,
        encodings: Any,
        out: dict[str, Any],
        length: int,
        explicit_top: bool,
    ) -> int:
        """Walk a sequence of defined length the object ends inside. pydicom parses its
        value from a copy of the bytes there are: its items end where they end, whatever
        lengths they claim, so the walk of its items sees the bytes end there too. Returns
        where the sequence ends."""
        if explicit_top:
            self.explicit_value_cut()
        # every byte to the end is in hand (``bytes_end_here``): the end the walk sees is
        # the one its reader would see; it stays there for the rest of this data set
        self.sequence(
            value_at, self.size, implicit, little, info, tag_path, path, creator,
            column_prefix, depth, encodings, out, False, length,
        )  # fmt: skip
        return self.size

    # --- the object -----------------------------------------------------------------------

    def walk(self) -> FlatObject:
        self.need(132)
        metadata: dict[str, Any] = {"OtherElements": []}
        if self.data[128:132] == b"DICM":
            position, syntax = self.file_meta(132, metadata)
        else:
            position, syntax = 0, self.raw_data_set()
        if syntax == DeflatedExplicitVRLittleEndian:
            position = self.inflate(position)
            syntax = ExplicitVRLittleEndian
        # nothing after the file meta group: an empty data set to the reference too
        empty = position == self.size and self.bytes_end_here()
        if not empty:
            self.need(position + 8)
            if self.data[position : position + 2] == b"\0\0":
                raise GiveUp("command set elements")
        if syntax == ImplicitVRLittleEndian:
            implicit, little = True, True
        elif syntax == ExplicitVRLittleEndian:
            implicit, little = False, True
        elif syntax == ExplicitVRBigEndian:
            implicit, little = False, False
        elif syntax is None:
            implicit, little = self.guessed_encoding(position)
        elif syntax in PrivateTransferSyntaxes:
            raise GiveUp("transfer syntax")
        else:
            # any other transfer syntax, known or not (JPEG XL, a newer one), is explicit VR
            # little endian (PS3.5 A.4), as the reference reads it; an implicit VR data set
            # under one is met by the VR check below
            implicit, little = False, True
        # pydicom checks the first element's VR bytes and switches (with a warning) if the
        # transfer syntax says otherwise: an implicit VR data set under an explicit VR
        # syntax (or the reverse) is read as it is encoded
        if not empty:
            self.need(position + 6)
            vr_bytes = self.data[position + 4 : position + 6]
            looks_implicit = not all(0x40 < byte < 0x5B for byte in vr_bytes)
            if looks_implicit != implicit:
                group, element = struct.unpack_from("<HH" if little else ">HH", self.data, position)
                if group << 16 | element not in _PIXEL_DATA_TAGS:
                    if self.defer_in_items:
                        # read by ranges, the pydicom path loads Pixel Data read by the
                        # syntax's encoding as a deferred value: left to it
                        raise GiveUp("VR switch read by ranges")
                    # the data set's encoding is still the syntax's to the step after
                    # Pixel Data, as pydicom records it (``Dataset.original_encoding``)
                    self.syntax_encoding = (implicit, little)
                    implicit = looks_implicit
                    self.problems.append(_vr_switch_problem(implicit))
        self.charge(2 * ITEM_WEIGHT)  # the command set and the data set
        self.top_level = (implicit, little, metadata)
        self.stopped_at = self.dataset(
            position, None, implicit, little, True, "", "", (), 0, None, metadata, True
        )  # fmt: skip
        return self.finish()

    def inflate(self, position: int) -> int:
        """Replace the deflated data set after the file meta group by its inflated bytes.

        The reference inflates everything after the file meta group at once (raw deflate)
        and parses the copy as explicit VR little endian; so does this, from the whole
        object. Offsets after ``position`` are then offsets in the inflated stream, which the
        reference would use to read a sequence it deferred: where it would (a top-level
        sequence or text value past the defer size), the walker gives up, so that both paths
        keep giving the same rows.
        """
        if self.defer_in_items:
            # a ranged read: the reference fetches what it skipped at offsets in the object,
            # which in a deflated one are not where the inflated values are
            raise GiveUp("deflated data set read by ranges")
        if not self.at_end:
            raise _NeedBytes(_WHOLE_OBJECT)  # the whole object, within the header budget
        try:
            inflated = zlib.decompress(self.data[position:], -zlib.MAX_WBITS)
        except zlib.error:
            raise GiveUp("deflated data set") from None
        self.data = self.data[:position] + inflated
        self.size = len(self.data)
        self.inflated = True
        return position

    def raw_data_set(self) -> str:
        """The transfer syntax of an object without preamble and file meta group: a raw data
        set, read as the reference reads one (encoding guessed from its first element) where
        the reference takes it for DICOM (its first element an identifying one, group 0008,
        with a known tag or a group length). Returns the syntax the guess amounts to."""
        self.need(8)
        group, element = struct.unpack_from("<HH", self.data, 0)
        implicit, little = self.guessed_encoding(0)
        if not little:
            group, element = struct.unpack_from(">HH", self.data, 0)
        tag = group << 16 | element
        if group != 0x0008 or not (element == 0 or dictionary_has_tag(tag)):
            raise GiveUp("no DICM prefix")  # not DICOM to the reference: its error row
        self.raw = True
        if implicit:
            return ImplicitVRLittleEndian
        return ExplicitVRLittleEndian if little else ExplicitVRBigEndian

    def guessed_encoding(self, position: int) -> tuple[bool, bool]:
        """(implicit VR, little endian) of a data set with no transfer syntax, as pydicom
        guesses it: explicit VR if the first element's VR bytes name a VR pydicom converts,
        then big endian if its group read as little endian is 1024 or more (a big endian
        group 0x0004 to 0x00FF); else implicit VR little endian."""
        self.need(position + 6)
        group = struct.unpack_from("<H", self.data, position)[0]
        vr = self.data[position + 4 : position + 6].decode("latin-1")
        if vr in _PYDICOM_VRS:
            return False, group < 1024
        return True, True

    def finish(self) -> FlatObject:
        if self.assumed_unsigned and self.pixel_representation == 1:
            raise GiveUp("ambiguous VR resolved before Pixel Representation")
        if self.raw:  # recorded after the read, as the reference records it
            self.problems.append(RAW_DATA_SET_PROBLEM)
        if self.header_truncated:
            self.problems.append(HEADER_TRUNCATED_PROBLEM)
        return self.flattener.result(self.top_level[2])

    def resume(self, data: bytes, at_end: bool) -> FlatObject:
        """Go on from the top-level element that ran out of bytes, with more bytes.

        What that element had added (rows, anomalies, counts) is dropped first; everything
        before it stands, so a header read in growing blocks is parsed about once.
        """
        assert self.mark is not None
        position, state, rows, anomalies, count, empty_items, problems = self.mark
        self.data = data
        self.size = len(data)
        self.at_end = at_end
        del self.flattener.rows.rows[rows:]
        del self.flattener.anomalies[anomalies:]
        del self.problems[problems:]
        self.count = count
        self.empty_items = empty_items
        implicit, little, metadata = self.top_level
        self.stopped_at = self.dataset(
            position, None, implicit, little, True, "", "", (), 0, None, metadata, True, state
        )  # fmt: skip
        return self.finish()

    def file_meta(self, position: int, out: dict[str, Any]) -> tuple[int, str | None]:
        """Walk group 0002 (explicit VR little endian); return the end and transfer syntax."""
        data = self.data
        flattener = self.flattener
        rows = flattener.rows.rows
        anomalies = flattener.anomalies
        paths = flattener.paths
        _, explicit_header, unpack_long = _UNPACK[True]
        tag_infos = TAG_INFOS
        meta_values = _META_VALUES
        outcomes = _META_OUTCOMES
        self.charge(ITEM_WEIGHT)
        syntax = None
        creators: dict[int, str] = {}
        first = True
        last_tag = -1
        while True:
            if position == self.size and not first and self.bytes_end_here():
                return position, syntax  # the object ends with its file meta group
            self.need(position + 8)
            group, element, vr_bytes, length = explicit_header(data, position)
            if group != 2:
                # none at all after "DICM" (a data set that happens to hold those bytes
                # there): no transfer syntax, the encoding is guessed as pydicom guesses it
                return position, syntax
            tag = 0x00020000 | element
            vr, length, value_at = self.explicit_vr(vr_bytes, position, length, unpack_long)
            if length == _UNDEFINED or tag <= last_tag or vr == "UN" or vr == "SQ":
                raise GiveUp("file meta structure")
            last_tag = tag
            self.charge(1)
            end = value_at + length
            self.need(end)
            value = data[value_at:end]
            key = (tag, vr, value, first)
            known = outcomes.get(key)
            if known is not None:  # a value met before (see ``_META_OUTCOMES``)
                row, name, column_value, column_path, converted_syntax = known
                rows.append(row)
                out[name] = list(column_value) if type(column_value) is tuple else column_value
                paths.add(column_path)
                if tag == 0x00020010:
                    syntax = converted_syntax
                first = False
                position = end
                continue
            info = tag_infos.get(tag) or tag_info(tag)
            found = meta_values.get(key)
            if found is None:
                found = _meta_value(tag, vr, value, first)
                if length <= _MAX_SHARED_VALUE:
                    if len(meta_values) >= _MAX_SHARED_VALUES:
                        meta_values.clear()
                    meta_values[key] = found
            vr, decoded, row_length, converted_syntax = found
            if tag == 0x00020010:
                syntax = converted_syntax
            anomalies_before = len(anomalies)
            flattener.add_value(
                tag, info, info.hex, info.segment, (), 0, vr, decoded, row_length, None,
                creators, out,
            )  # fmt: skip
            if (
                length <= _MAX_SHARED_VALUE
                and info.column is not None
                and len(anomalies) == anomalies_before
            ):
                _remember_outcome(key, rows[-1], info, out, outcomes, converted_syntax)
            first = False
            position = end

    def dataset(
        self,
        position: int,
        end: int | None,
        implicit: bool,
        little: bool,
        top: bool,
        tag_prefix: str,
        path_prefix: str,
        column_prefix: tuple[int, ...] | None,
        depth: int,
        encodings: Any,
        out: dict[str, Any],
        deferrable: bool,
        resumed: tuple | None = None,
    ) -> int:
        """Walk the elements of one data set from ``position``; return where it ends.

        ``end`` is the end of a defined-length item; None for the top level (which ends at
        Pixel Data or the end of the object) and for an undefined-length item (which ends
        at its delimitation item, returned past). At the top level, the state before each
        element is kept in ``mark`` (``resume`` goes on from it); ``resumed`` is that state.
        """
        data = self.data
        size = self.size
        flattener = self.flattener
        implicit_header, explicit_header, unpack_long = _UNPACK[little]
        short_vrs = _SHORT_VRS
        tag_infos = TAG_INFOS
        decoded_values = _DECODED
        creators: dict[int, str] = {}
        creator_values: dict[int, tuple[str | None, bytes]] = {}
        text_before_charset = False
        last_tag = -1
        defer_size = self.defer_size
        # the top level of an object not read to its end keeps the state before an element
        # that may need more bytes (``resume`` goes on from it); nothing else can need them
        marking = top and not self.at_end
        rows = flattener.rows.rows
        anomalies = flattener.anomalies
        paths = flattener.paths
        outcomes = _OUTCOMES
        if top:
            encodings = ()  # no Specific Character Set: the default repertoire
            if resumed is not None:
                creators, creator_values, text_before_charset, last_tag, encodings = resumed
        while True:
            if end is not None and position >= end:
                if position > end:
                    raise GiveUp("item overrun")
                return position
            if position + 12 > size:
                if top and self.at_end and position == size:
                    return position
                if marking:
                    self.mark = (
                        position,
                        (creators, creator_values, text_before_charset, last_tag, encodings),
                        len(rows), len(anomalies), self.count, self.empty_items,
                        len(self.problems),
                    )  # fmt: skip
                if position + 8 > size and self.bytes_end_here():
                    return self.header_cut(position, top, last_tag)
                self.need(position + 8)
            if implicit:
                group, element, length = implicit_header(data, position)
                file_vr = None
                value_at = position + 8
            else:
                group, element, vr_bytes, length = explicit_header(data, position)
            tag = group << 16 | element
            if tag == _ITEM_END:
                if end is not None or top or data[position + 4 : position + 8] != b"\0\0\0\0":
                    raise GiveUp("item delimitation")
                return position + 8
            if top and tag in _PIXEL_DATA_TAGS:
                return position
            if not implicit:
                file_vr = short_vrs.get(vr_bytes)
                if file_vr is None:
                    file_vr, length, value_at = self.explicit_vr(
                        vr_bytes, position, length, unpack_long
                    )
                else:
                    value_at = position + 8
            if marking and (length == _UNDEFINED or value_at + length > size):
                self.mark = (
                    position,
                    (creators, creator_values, text_before_charset, last_tag, encodings),
                    len(rows), len(anomalies), self.count, self.empty_items, len(self.problems),
                )  # fmt: skip
            if tag <= last_tag or group == 0xFFFE:
                raise GiveUp("tag order")
            last_tag = tag
            self.count += 1
            if self.count >= self.max_elements:
                raise GiveUp("element budget")
            info = tag_infos.get(tag) or tag_info(tag)
            tag_path = tag_prefix + info.hex
            path = path_prefix + info.segment
            creator_key = info.creator_key
            creator = creators.get(creator_key) if creator_key is not None else None

            if length == _UNDEFINED:
                if implicit:
                    vr = _public_vr(tag)
                    if vr is None:
                        self.need(value_at + 4)
                        group, element = struct.unpack_from(
                            "<HH" if little else ">HH", data, value_at
                        )
                        if group << 16 | element != _ITEM:
                            raise GiveUp("undefined length value")
                        vr = "SQ"
                elif file_vr == "UN":
                    vr = "SQ"
                else:
                    vr = file_vr
                if vr != "SQ":
                    if implicit or deferrable or vr not in BINARY_VRS:
                        raise GiveUp("undefined length value")
                    position = self.encapsulated_value(
                        tag, info, tag_path, path, column_prefix, depth, vr, value_at, little,
                        creator, creators, out,
                    )  # fmt: skip
                    continue
                position = self.sequence(
                    value_at, None, implicit, little, info, tag_path, path, creator,
                    column_prefix, depth, encodings, out, deferrable and self.defer_in_items,
                    None,
                )  # fmt: skip
                continue

            value_end = value_at + length
            deferred = deferrable and length > defer_size and tag != _CHARSET
            if deferred and self.inflated and (file_vr is None or file_vr not in BINARY_VRS):
                raise GiveUp("value past the defer size in a deflated data set")
            if file_vr is None and tag in _IMPLICIT_VR:
                vr = _IMPLICIT_VR[tag]
            elif file_vr is None or file_vr == "UN":
                vr = self.resolve_vr(
                    tag, file_vr, info, creator_values, deferred or length < 0xFFFF, little,
                    implicit,
                )  # fmt: skip
                if not vr:
                    vr = self.creator_ignoring_case(tag, tag_path, creator)
            else:
                vr = file_vr
            if vr == "SQ":
                # a private UN sequence the pydicom path retypes holds implicit VR little
                # endian (PS3.5 6.2.2); a public one pydicom reads in the data set's encoding,
                # each item switching to implicit VR where its first VR bytes are no VR
                content_implicit, content_little = (
                    (True, True) if file_vr == "UN" and info.private else (implicit, little)
                )
                if value_end > size:
                    if not self.bytes_end_here():
                        self.need(value_end)
                    position = self.cut_sequence(
                        value_at, content_implicit, content_little, info, tag_path, path,
                        creator, column_prefix, depth, encodings, out, length,
                        top and not implicit,
                    )  # fmt: skip
                    continue
                self.sequence(
                    value_at, value_end, content_implicit, content_little, info, tag_path, path,
                    creator, column_prefix, depth, encodings, out, False, length,
                )  # fmt: skip
                position = value_end
                continue

            if value_end > size and self.bytes_end_here():
                position = self.value_cut(
                    tag, info, tag_path, path, column_prefix, depth, vr, value_at, value_end,
                    deferred, top, implicit, little, encodings, creator, creators, out,
                )  # fmt: skip
                continue
            row_length = length
            outcome_key = None
            if deferred:
                self.skip(value_end)
                decoded = flattener.deferred(tag_path, info.keyword, vr, length)
            elif vr in BINARY_VRS:
                self.skip(value_end)
                decoded = _BINARY
            else:
                if value_end > size:
                    self.need(value_end)
                value = data[value_at:value_end]
                if tag == _CHARSET or (top and tag == _PIXEL_REPRESENTATION):
                    if vr in CHARSET_VRS:
                        text_before_charset = True
                    vr, decoded, row_length, encodings = self.converted_value(
                        tag, file_vr, vr, value, implicit, little, top, encodings,
                        text_before_charset,
                    )  # fmt: skip
                elif length <= _MAX_SHARED_VALUE and info.column is not None:
                    # a public element: its row and column are the outcome of its tag, VR and
                    # bytes (and character set) wherever it is, and they recur from object to
                    # object and item to item (``_OUTCOMES``)
                    if vr in CHARSET_VRS:
                        text_before_charset = True
                    outcome_key = (tag, vr, value, little, encodings)
                    known = outcomes.get(outcome_key)
                    if known is not None:
                        row, name, column_value, column_path, _ = known
                        if top:
                            rows.append(row)
                        else:  # the same row at this place (see ``_remember_outcome``)
                            rows.append(
                                (tag_path, path, row[2], row[3], row[4], row[5], depth, None,
                                 row[8], row[9])
                            )  # fmt: skip
                        if column_prefix is not None:
                            out[name] = (
                                list(column_value) if type(column_value) is tuple else column_value
                            )
                            paths.add(column_path if top else (*column_prefix, tag))
                        position = value_end
                        continue
                    anomalies_before = len(anomalies)
                    decoded = (
                        decoded_values.get((vr, value, little, encodings))
                        or _decoded(vr, value, little, encodings)
                        if vr in CHARSET_VRS
                        else decoded_values.get((vr, value, little)) or _decoded(vr, value, little)
                    )
                elif vr in CHARSET_VRS:
                    text_before_charset = True
                    decoded = (
                        decoded_values.get((vr, value, little, encodings))
                        or _decoded(vr, value, little, encodings)
                        if length <= _MAX_SHARED_VALUE
                        else decode_raw_value(vr, value, little, encodings)
                    )
                elif length > _MAX_SHARED_VALUE:
                    decoded = decode_raw_value(vr, value, little, encodings)
                else:
                    decoded = decoded_values.get((vr, value, little)) or _decoded(vr, value, little)
                if info.creator_slot:
                    creator_values[tag] = (file_vr, value)
            flattener.add_value(
                tag, info, tag_path, path, column_prefix, depth, vr, decoded, row_length,
                creator, creators, out,
            )  # fmt: skip
            if (
                outcome_key is not None
                and column_prefix is not None  # the column was made: its anomalies are known
                and len(anomalies) == anomalies_before
            ):
                _remember_outcome(outcome_key, rows[-1], info, out)
            position = value_end

    def encapsulated_value(
        self,
        tag: int,
        info: Any,
        tag_path: str,
        path: str,
        column_prefix: tuple[int, ...] | None,
        depth: int,
        vr: str,
        value_at: int,
        little: bool,
        creator: str | None,
        creators: dict[int, str],
        out: dict[str, Any],
    ) -> int:
        """The row of a binary value of undefined length in an item (an icon's encapsulated
        Pixel Data, PS3.5 A.4): items of defined length up to a Sequence Delimitation Item.
        pydicom reads it so first, its length the bytes before the delimiter; anything else
        (an unknown tag, an item of undefined length, no delimiter) it scans byte by byte,
        which the walker leaves to it. Returns where the value ends, past the delimiter."""
        item_header = _UNPACK[little][0]
        position = value_at
        while True:
            self.need(position + 8)
            group, element, length = item_header(self.data, position)
            tag_here = group << 16 | element
            if tag_here == _SEQUENCE_END:
                break
            if tag_here != _ITEM or length == _UNDEFINED:
                raise GiveUp("undefined length value")
            position += 8 + length
            self.skip(position)  # a fragment's bytes are not needed
        self.flattener.add_value(
            tag, info, tag_path, path, column_prefix, depth, vr, _BINARY, position - value_at,
            creator, creators, out,
        )  # fmt: skip
        return position + 8

    def converted_value(
        self,
        tag: int,
        file_vr: str | None,
        vr: str,
        value: bytes,
        implicit: bool,
        little: bool,
        top: bool,
        encodings: Any,
        text_before_charset: bool,
    ) -> tuple[str, DecodedValue, int | None, Any]:
        """A Specific Character Set, or the top level's Pixel Representation: values the
        reference converts before the flatten sees them. Returns the VR, decoded value, row
        length and the character set terms in force after the element."""
        if tag == _CHARSET and text_before_charset:
            raise GiveUp("text before the character set")
        key = (tag, file_vr, vr, value, implicit, little, top, encodings)
        known = _CONVERTED_VALUES.get(key)
        if known is None:
            known = _convert_value(tag, file_vr, vr, value, implicit, little, top, encodings)
            if len(_CONVERTED_VALUES) >= 4096:
                _CONVERTED_VALUES.clear()
            _CONVERTED_VALUES[key] = known
        vr, decoded, row_length, encodings, problems, pixel_representation = known
        if tag == _CHARSET:
            if top:
                if unknown_character_sets(encodings):
                    # the flatten notes each before the data set's anomalies: left to it
                    raise GiveUp("unknown character set")
                self.encodings = encodings
            # a misspelt term pydicom corrects ("ISO-IR 100"): its warning is the row's
            # problem, as on the pydicom path
            self.problems.extend(problems)
        else:
            self.pixel_representation = pixel_representation
        return vr, decoded, row_length, encodings

    def resolve_vr(
        self,
        tag: int,
        file_vr: str | None,
        info: Any,
        creator_values: dict[int, tuple[str | None, bytes]],
        dictionary_allowed: bool,
        little: bool,
        implicit: bool,
    ) -> str:
        """The VR pydicom's ``raw_element_vr`` hook gives an implicit VR or UN element."""
        if info.private:
            vr = self.private_vr(tag, creator_values, little, implicit)
            if not vr:
                return vr  # the creator matched ignoring case: ``creator_ignoring_case``
        elif file_vr is None:
            vr = _public_vr(tag)
            if vr is None:
                if tag & 0xFFFF:
                    raise GiveUp("unknown public tag in implicit VR")  # pydicom warns
                vr = "UL"
            if " or " not in vr:
                _IMPLICIT_VR[tag] = vr
        elif dictionary_allowed:
            vr = _public_vr(tag) or "UN"
        else:
            vr = "UN"
        if " or " in vr:
            if self.pixel_representation is None and "SS" in vr.split(" or "):
                self.assumed_unsigned = True
            vr = resolve_ambiguous_vr(vr, self.pixel_representation)
        return vr

    def creator_ignoring_case(self, tag: int, tag_path: str, creator: str | None) -> str:
        """The VR of a private element whose creator the dictionary has only ignoring case,
        with the anomaly the pydicom path records (once per creator and object)."""
        entry = private_entry(tag, creator) if creator is not None else None
        if entry is None or entry.exact or " or " in str(entry.vr):
            raise GiveUp("private creator matched ignoring case")
        flattener = self.flattener
        if creator not in flattener.creators_matched:
            flattener.creators_matched.add(creator)
            flattener.anomaly(
                tag_path,
                None,
                f"private creator {creator[:64]!r} matched the private dictionary's "
                f"{entry.creator!r} ignoring case and spaces",
            )
        return str(entry.vr)

    def private_vr(
        self,
        tag: int,
        creator_values: dict[int, tuple[str | None, bytes]],
        little: bool,
        implicit: bool,
    ) -> str:
        element = tag & 0xFFFF
        if 0x0010 <= element <= 0x00FF:
            return "LO"  # a private creator
        if element == 0:
            return "UL"  # a private group's length, as the pydicom path types it
        if not element & 0xFF00:
            return "UN"
        if element < 0x1000:
            raise GiveUp("private element outside a creator block")
        creator_tag = (tag & 0xFFFF0000) | element >> 8
        found = creator_values.get(creator_tag)
        if found is None:
            return "UN"
        file_vr, value = found
        if not value:
            return "UN"
        creator = _converted(creator_tag, file_vr or "LO", value, implicit, little).value
        if not isinstance(creator, str):
            raise GiveUp("private creator value")
        if not creator:
            return "UN"
        return _private_vr(tag, creator)

    def sequence(
        self,
        position: int,
        end: int | None,
        implicit: bool,
        little: bool,
        info: Any,
        tag_path: str,
        path: str,
        creator: str | None,
        column_prefix: tuple[int, ...] | None,
        depth: int,
        encodings: Any,
        out: dict[str, Any],
        deferrable: bool,
        length: int | None,
    ) -> int:
        """Walk the items of one sequence from ``position``; return where it ends."""
        flattener = self.flattener
        data = self.data
        item_header = _UNPACK[little][0]
        row_index, item_prefix = flattener.open_sequence(
            info, tag_path, path, creator, column_prefix, depth, None, length
        )
        values: list[dict[str, Any]] = []
        rows = flattener.rows.rows
        index = 0
        while True:
            if end is not None and position >= end:
                if position > end:
                    raise GiveUp("sequence overrun")
                break
            self.need(position + 8)
            group, element, item_length = item_header(data, position)
            tag = group << 16 | element
            if tag == _SEQUENCE_END:
                if end is not None or item_length:
                    raise GiveUp("sequence delimitation")
                position += 8
                break
            if tag != _ITEM:
                if not self.short_stray_item(position, end, item_length):
                    raise GiveUp("not an item")
                self.count += ITEM_WEIGHT
                if self.count >= self.max_elements:
                    raise GiveUp("element budget")
                self.empty_items += 1
                if self.empty_items > self.max_empty_items:
                    raise GiveUp("empty items")
                values.append({"OtherElements": []})
                index += 1
                position = end
                break
            self.count += ITEM_WEIGHT
            if self.count >= self.max_elements:
                raise GiveUp("element budget")
            position += 8
            item_implicit = implicit
            if not implicit and item_length:
                # pydicom reads an item as implicit VR when its first VR bytes are no VR
                self.need(position + 6)
                item_implicit = not (
                    0x40 < data[position + 4] < 0x5B and 0x40 < data[position + 5] < 0x5B
                )
            item_out: dict[str, Any] = {"OtherElements": []}
            rows_before = len(rows)
            position = self.dataset(
                position,
                None if item_length == _UNDEFINED else position + item_length,
                item_implicit,
                little,
                False,
                f"{tag_path}[{index}].",
                f"{path}[{index}].",
                item_prefix,
                depth + 1,
                encodings,
                item_out,
                deferrable,
            )
            if len(rows) == rows_before:
                self.empty_items += 1
                if self.empty_items > self.max_empty_items:
                    raise GiveUp("empty items")
            else:
                self.empty_items = 0
            values.append(item_out)
            index += 1
        flattener.set_item_count(row_index, index)
        flattener.close_sequence(info, item_prefix, values, out)
        return position

    @staticmethod
    def short_stray_item(position: int, end: int | None, item_length: int) -> bool:
        """True where pydicom reads the bytes at ``position`` as one empty item.

        pydicom takes any 8 bytes where an item starts as an item header. When fewer than 8
        bytes of a defined-length sequence follow them (a short text value written where the
        dictionary says sequence, in implicit VR), its item has no room for an element: it
        is one empty item, and the sequence ends (a zero "length" with bytes left would
        make pydicom read a second header past them, which it fails on).
        """
        if end is None:
            return False
        left = end - (position + 8)
        return 0 <= left < 8 and (left == 0 or item_length != 0)


def _read(raw: BinaryIO, offset: int, count: int, descriptor: int | None = None) -> bytes:
    """``count`` bytes at ``offset`` (fewer at the end): a ranged reader returns short reads.

    ``descriptor``: a plain local file's, read with ``os.pread`` (one system call a read, no
    seek, no copy through the read buffer)."""
    if descriptor is None:
        raw.seek(offset)
    parts = []
    got = 0
    while got < count:
        if descriptor is None:
            chunk = raw.read(count - got)
        else:
            chunk = os.pread(descriptor, count - got, offset + got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _descriptor(raw: BinaryIO) -> int | None:
    """The file descriptor of a plain local file (not of a ranged or in-memory object)."""
    if type(raw) is not io.BufferedReader:
        return None
    try:
        return raw.fileno()
    except (OSError, ValueError):
        return None


def object_size(raw: BinaryIO) -> int | None:
    """Size of the opened object, when it is known without a request."""
    size = getattr(raw, "object_size", None)
    if size is not None:
        return size
    try:
        return os.fstat(raw.fileno()).st_size
    except (OSError, AttributeError, ValueError):
        return None


def walk_object(
    raw: BinaryIO,
    *,
    defer_size: int,
    defer_in_items: bool,
    first_read: int = LOCAL_FIRST_READ,
    meter: BudgetMeter | None = None,
    growth: int = 1,
) -> Walked | None:
    """Flatten the header of the object open in ``raw``, or None to leave it to pydicom.

    Reads from the start of ``raw`` in growing blocks: each read is ``growth`` times what
    was read before (1: doubling, so a header of H bytes costs at most about 2 x H read, as
    the ranged reader promises; a local file reads more at once, since a sequence that runs
    past the bytes read is parsed again from its start, and reading is cheaper than parsing).
    Values longer than ``defer_size`` that the reference would not read are skipped, never
    read. ``defer_in_items``: the reference defers inside undefined-length sequences too
    (ranged reads).

    The walk stays inside the budgets of ``meter`` (elements, items, header bytes, runs of
    empty items) by giving up before any would run out, so the pydicom path meets an over-budget
    object with the meter untouched and records it as it always has; a header walked is
    charged to the meter afterwards.
    """
    if not _defaults_in_force() or (meter is not None and meter.exceeded is not None):
        return None
    budget = meter.budget if meter is not None else ReadBudget()
    size = object_size(raw)
    descriptor = _descriptor(raw)
    data = b""
    fetched = 0
    at_end = False

    def read_more(count: int) -> None:
        nonlocal data, fetched, at_end
        if size is not None:
            count = min(count, size - len(data))
        if fetched + count > budget.max_header_bytes:
            raise GiveUp("header bytes budget")
        chunk = _read(raw, len(data), count, descriptor)
        fetched += len(chunk)
        data += chunk
        if len(chunk) < count or (size is not None and len(data) >= size):
            at_end = True

    try:
        read_more(max(first_read, 256))
        walker: _Walker | None = None
        problems: list[str] = []  # pydicom's warnings over every attempt
        for _ in range(_MAX_ATTEMPTS):
            with collect_pydicom_problems() as attempt_problems:
                try:
                    if walker is None or walker.mark is None:
                        walker = _Walker(data, at_end, defer_size, defer_in_items, budget)
                        flat = walker.walk()
                    else:  # the top level was reached: go on from where the bytes ran out
                        flat = walker.resume(data, at_end)
                    need = None
                except _NeedBytes as needed:
                    need = needed
            problems.extend(attempt_problems)
            if need is not None:
                if need.skip_to is not None and need.skip_to > len(data):
                    gap = need.skip_to - len(data)
                    if gap > _MAX_SKIP or (size is not None and need.skip_to > size):
                        return None
                    data += bytes(gap)  # never read: no table keeps these bytes
                    read_more(max(need.end - len(data), _AFTER_SKIP_READ))
                else:
                    read_more(max(need.end - len(data), growth * fetched))
                continue
            expected = set(walker.problems)
            if any(problem not in expected for problem in problems):
                return None
            if meter is not None:
                meter.elements += walker.count
                meter.record_bytes(fetched)
            return Walked(
                flat,
                fetched,
                walker.count,
                list(dict.fromkeys(walker.problems)),
                stopped_at=walker.stopped_at,
                encoding=walker.syntax_encoding or walker.top_level[:2],
                encodings=walker.encodings,
                pixel_representation=walker.pixel_representation,
                inflated=walker.inflated,
                head=walker.data if not defer_in_items else b"",
                object_size=size,
            )
    except (GiveUp, Exception, RecursionError):
        return None
    return None
