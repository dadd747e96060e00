"""Recovery rules for damaged files, where the standard or common practice says how to read on.

- CP-246: the value of an undefined-length UN element is a sequence in implicit VR little
  endian, whatever the transfer syntax (PS3.5 6.2.2). pydicom reads it in the data set's own
  encoding, which in a big endian file stops the parse at the first item. ``read_sequence``
  is wrapped to read such a sequence little endian when its first item says so.
- A VR field that is not a VR. pydicom reads the element as implicit VR (a 4-byte length
  made of the VR bytes and the 2-byte length), which for two spaces or NULs is a length of
  gigabytes that swallows the rest of the file. DCMTK reads the 2-byte length of the explicit
  form instead. Neither is right always; on the recovery pass (``recovering``), each reading
  is checked against what follows it (the object's end, or an element header in order) and
  the one that lands on an element is taken. The VR then comes from the data dictionaries.

Both apply only within ``recovering`` (the reader's own reads), on the reading thread.

Both are pydicom wrappers installed through ``pydicom_boundary.wrap_filereader`` on first
use. Each recovery is logged on ``LOGGER_NAME``, whose records land on the object's row as
anomalies (``read`` collects them like pydicom's own warnings).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO

from pydicom.valuerep import VR

from dicomwarehouse.dicom.pydicom_boundary import wrap_filereader
from dicomwarehouse.tables.vr import EXPLICIT_LONG_LENGTH_VRS

__all__ = [
    "LOGGER_NAME",
    "NOT_A_VR",
    "VALID_VRS",
    "install_recovery",
    "recovering",
]

LOGGER_NAME = "dicomwarehouse.recovery"
logger = logging.getLogger(LOGGER_NAME)

#: Every two-letter VR (the ambiguous "US or SS" forms are not VR fields).
VALID_VRS = frozenset(vr.value for vr in VR if len(vr.value) == 2)
_VR_BYTES = frozenset(vr.encode("ascii") for vr in VALID_VRS)
#: What a VR field that is not a VR is replaced by when its 2-byte length is taken: pydicom
#: reads any pair of capitals with a 2-byte length, and the flattener types it from the
#: dictionaries (this is no VR, so it is never taken for one).
NOT_A_VR = "ZZ"
_LITTLE_ENDIAN_ITEM = b"\xfe\xff\x00\xe0"
_LONG_LENGTH_VRS = frozenset(vr.encode("ascii") for vr in EXPLICIT_LONG_LENGTH_VRS)

_local = threading.local()


def _little_endian_sequences(read_sequence: Any) -> Any:
    def read_sequence_per_cp246(
        fp: BinaryIO,
        is_implicit_VR: bool,
        is_little_endian: bool,
        bytelength: int,
        encoding: Any,
        offset: int = 0,
    ) -> Any:
        """pydicom's ``read_sequence``; an undefined-length sequence of a big endian data set
        whose first item tag is little endian is read as implicit VR little endian."""
        if getattr(_local, "rules", False) and not is_little_endian and bytelength == 0xFFFFFFFF:
            position = fp.tell()
            first = fp.read(4)
            fp.seek(position)
            if first == _LITTLE_ENDIAN_ITEM:
                logger.warning(
                    "undefined-length sequence at byte %d in implicit VR little endian inside "
                    "a big endian data set (CP-246): read as such",
                    position,
                )
                return read_sequence(fp, True, True, bytelength, encoding, offset)
        return read_sequence(fp, is_implicit_VR, is_little_endian, bytelength, encoding, offset)

    return read_sequence_per_cp246


class _VRCheckingReader:
    """The object as one pydicom explicit VR element generator reads it, with each element
    header whose VR field is not a VR replaced by the reading that lands on an element.

    Only reads where the next element header is due are looked at (tracked from each header's
    length), so a value of 8 bytes is never taken for a header.
    """

    def __init__(self, fp: BinaryIO, little: bool) -> None:
        self._fp = fp
        self._order = "<" if little else ">"
        self.seek = fp.seek
        self.tell = fp.tell
        self._header_at: int | None = fp.tell()  # None: unknown (after an undefined length)
        self._long_length_at: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fp, name)

    def read(self, size: int = -1) -> bytes:
        position = self._fp.tell()
        data = self._fp.read(size)
        if size == 8 and len(data) == 8 and self._header_at in (None, position):
            data = self._header(data, position)
        elif size == 4 and len(data) == 4 and position == self._long_length_at:
            length = struct.unpack(f"{self._order}L", data)[0]
            self._long_length_at = None
            self._header_at = None if length == 0xFFFFFFFF else position + 4 + length
        return data

    def _header(self, data: bytes, position: int) -> bytes:
        group = struct.unpack(f"{self._order}H", data[:2])[0]
        if group == 0xFFFE:  # item and delimiter tags have no VR
            self._header_at = position + 8
            return data
        if data[4:6] not in _VR_BYTES:
            data = self._recovered(data, group)
        vr = data[4:6]
        if vr in _LONG_LENGTH_VRS:
            self._header_at = -1
            self._long_length_at = position + 8
        elif b"AA" <= vr <= b"ZZ":  # pydicom reads any other pair of capitals this way
            self._header_at = position + 8 + struct.unpack(f"{self._order}H", data[6:8])[0]
        else:  # read as implicit VR
            length = struct.unpack(f"{self._order}L", data[4:8])[0]
            self._header_at = None if length == 0xFFFFFFFF else position + 8 + length
        return data

    def _lands_on_element(self, offset: int, group: int, size: int) -> bool:
        if offset == size:
            return True
        if offset + 6 > size:
            return False
        here = self._fp.tell()
        self._fp.seek(offset)
        head = self._fp.read(6)
        self._fp.seek(here)
        if len(head) < 6:
            return False
        next_group = struct.unpack(f"{self._order}H", head[:2])[0]
        if next_group == 0xFFFE:
            return True
        return next_group >= group and head[4:6] in _VR_BYTES

    def _recovered(self, data: bytes, group: int) -> bytes:
        here = self._fp.tell()
        size = self._fp.seek(0, 2)
        self._fp.seek(here)
        four = struct.unpack(f"{self._order}L", data[4:8])[0]
        two = struct.unpack(f"{self._order}H", data[6:8])[0]
        as_implicit = data[4:6] < b"AA" or data[4:6] > b"ZZ"  # what pydicom would do
        if (
            as_implicit
            and not self._lands_on_element(here + four, group, size)
            and self._lands_on_element(here + two, group, size)
        ):
            return data[:4] + NOT_A_VR.encode("ascii") + data[6:]
        return data


def _recovering_generator(generate: Any) -> Any:
    def element_generator(
        fp: BinaryIO, is_implicit_VR: bool, is_little_endian: bool, *args: Any, **kwargs: Any
    ) -> Iterator[Any]:
        """pydicom's element generator; on the recovery pass, explicit VR headers checked."""
        if getattr(_local, "vr_fields", False) and not is_implicit_VR:
            # one checker per generator: nested sequences have headers of their own
            raw = fp._fp if isinstance(fp, _VRCheckingReader) else fp
            fp = _VRCheckingReader(raw, is_little_endian)  # type: ignore[assignment]
        return generate(fp, is_implicit_VR, is_little_endian, *args, **kwargs)

    return element_generator


def install_recovery() -> None:
    """Wrap pydicom's sequence reader and element generator (once per process)."""
    wrap_filereader("recovery-cp246", "read_sequence", _little_endian_sequences)
    wrap_filereader("recovery-vr", "data_element_generator", _recovering_generator)


@contextmanager
def recovering(vr_fields: bool = False) -> Iterator[None]:
    """Within the block, on this thread, pydicom reads by the rules above: CP-246 always,
    VR fields that are not VRs when ``vr_fields`` (the second pass over a damaged header).
    Outside it the wrappers step aside: other users of pydicom read as before."""
    install_recovery()
    previous = (getattr(_local, "rules", False), getattr(_local, "vr_fields", False))
    _local.rules = True
    _local.vr_fields = vr_fields or previous[1]
    try:
        yield
    finally:
        _local.rules, _local.vr_fields = previous
