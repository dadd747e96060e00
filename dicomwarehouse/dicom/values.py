"""Decode element values straight from their encoded bytes, and type them for columns.

pydicom's own conversion builds a Python object per value (DSfloat, PersonName, MultiValue,
validation), which costs far more than parsing the header. The warehouse needs only two things
per value: the string as written in the file (dicom_elements.value_strings) and, for typed
columns, a date, time, timestamp or number. Decoding the bytes once here gives both.
"""

from __future__ import annotations

import datetime as dt
import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from dicomwarehouse.dicom.charsets import decode_text
from dicomwarehouse.tables.vr import (
    BIGQUERY_TYPE_BY_VR,
    BINARY_VRS,
    PN_COMPONENTS,
    PN_GROUPS,
    SINGLE_VALUE_TEXT_VRS,
    STRUCT_PACK_FORMAT,
)

__all__ = [
    "DecodedValue",
    "ValueProblem",
    "column_value",
    "decode_converted_value",
    "decode_raw_value",
    "decoded_value",
]


class ValueProblem(ValueError):
    """A value that does not fit its column; the reason never contains the value itself."""


#: The values of one element: its strings as written, its numbers (binary number VRs only)
#: and what is wrong with it, as a plain triple made by ``decoded_value``.
#: Why a plain tuple: the walker's caches keep tens of thousands of them for the whole run,
#: and the cycle collector stops tracking a plain tuple of strings and numbers once it has
#: seen it, never an instance of a class (a named tuple's included), so every collection would
#: scan them all again. Immutable: caches share one value between elements.
DecodedValue = tuple[tuple[str, ...] | None, tuple[int | float, ...] | None, str | None]


def decoded_value(
    strings: tuple[str, ...] | None,
    numbers: tuple[int | float, ...] | None = None,
    problem: str | None = None,
) -> DecodedValue:
    """A decoded value (see ``DecodedValue``)."""
    return (strings, numbers, problem)


_EMPTY = decoded_value(())
_BINARY = decoded_value(None)


def _split_text(text: str, vr: str) -> tuple[str, ...]:
    if vr in SINGLE_VALUE_TEXT_VRS or "\\" not in text:
        return (text.strip("\0 ") if vr in ("DS", "IS") else text.rstrip("\0 "),)
    parts = text.split("\\")
    if vr in ("DS", "IS"):
        return tuple([part.strip("\0 ") for part in parts])
    return tuple([part.rstrip("\0 ") for part in parts])


def _format_float32(number: float) -> str:
    """Shortest decimal that reads back as the same float32 (0.3, not 0.30000001192092896)."""
    return str(np.float32(number))


def decode_raw_value(
    vr: str, value: bytes | None, little_endian: bool, encodings: Sequence[str] | None
) -> DecodedValue:
    """Decode the encoded bytes of a non-sequence element of the given (resolved) VR."""
    if value is None or vr in BINARY_VRS:
        return _BINARY
    if not value:
        return _EMPTY
    pack = STRUCT_PACK_FORMAT.get(vr)
    if pack is not None:
        code, size = pack
        count, remainder = divmod(len(value), size)
        numbers = struct.unpack(
            f"{'<' if little_endian else '>'}{count}{code}", value[: count * size]
        )
        problem = f"length {len(value)} is not a multiple of {size}" if remainder else None
        if vr == "AT":
            pairs = [(numbers[i] << 16) | numbers[i + 1] for i in range(0, count - 1, 2)]
            return decoded_value(tuple([f"{tag:08X}" for tag in pairs]), tuple(pairs), problem)
        if vr == "FL":
            strings = tuple([_format_float32(n) for n in numbers])
            return decoded_value(strings, tuple(float(s) for s in strings), problem)
        if vr == "FD":
            return decoded_value(tuple([repr(n) for n in numbers]), numbers, problem)
        return decoded_value(tuple([str(n) for n in numbers]), numbers, problem)
    text = decode_text(value, vr, encodings)
    problem = None
    if "\ufffd" in text and b"\xef\xbf\xbd" not in value:
        problem = "bytes its character set cannot decode: replaced by U+FFFD"
    strings = _split_text(text, vr)
    # a value of padding only is empty, as pydicom and every toolkit read it
    return _EMPTY if len(strings) == 1 and not strings[0] else decoded_value(strings, None, problem)


def decode_converted_value(vr: str, value: Any) -> DecodedValue:
    """Strings and numbers of an element pydicom has already converted (e.g. file meta).

    pydicom keeps the original text of DS/IS/PN values, so ``str`` gives back what the file
    holds.
    """
    if value is None or value == "" or isinstance(value, bytes | bytearray):
        return _BINARY if isinstance(value, bytes | bytearray) and value else _EMPTY
    values = list(value) if isinstance(value, list | tuple) or hasattr(value, "_list") else [value]
    if vr == "AT":
        tags = tuple(int(v) for v in values)
        return decoded_value(tuple([f"{t:08X}" for t in tags]), tags)
    if vr in STRUCT_PACK_FORMAT:
        if vr == "FL":
            strings = tuple([_format_float32(float(v)) for v in values])
            return decoded_value(strings, tuple(float(s) for s in strings))
        numbers = tuple(values)
        return decoded_value(tuple([repr(v) if vr == "FD" else str(v) for v in numbers]), numbers)
    return decoded_value(tuple([str(v) for v in values]))


_DA = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DA_LEGACY = re.compile(r"^(\d{4})\.(\d{2})\.(\d{2})$")  # ACR-NEMA 2.0 dates
_TM = re.compile(r"^(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?$")
_DT = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?$"
)


def _parse_date(text: str) -> dt.date:
    match = _DA.match(text) or _DA_LEGACY.match(text)
    if not match:
        raise ValueProblem("not a DICOM date (YYYYMMDD)")
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as exc:
        raise ValueProblem("date out of range") from exc


def _fraction_us(fraction: str | None) -> int:
    return int(fraction.ljust(6, "0")) if fraction else 0


def _parse_time(text: str) -> dt.time:
    match = _TM.match(text)
    if not match:
        raise ValueProblem("not a DICOM time (HHMMSS.FFFFFF)")
    hour, minute, second = int(match[1]), int(match[2] or 0), int(match[3] or 0)
    second = min(second, 59)  # leap second 60 is valid DICOM, not a valid time of day
    try:
        return dt.time(hour, minute, second, _fraction_us(match[4]))
    except ValueError as exc:
        raise ValueProblem("time out of range") from exc


def _parse_datetime(text: str) -> dt.datetime:
    match = _DT.match(text)
    if not match:
        raise ValueProblem("not a DICOM date time (YYYYMMDDHHMMSS.FFFFFF&ZZXX)")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    offset = dt.timedelta(0)
    if sign:
        offset = dt.timedelta(hours=int(off_h), minutes=int(off_m))
        offset = -offset if sign == "-" else offset
    try:
        local = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            int(hour or 0),
            int(minute or 0),
            min(int(second or 0), 59),
            _fraction_us(fraction),
            tzinfo=dt.timezone(offset),
        )
    except ValueError as exc:
        raise ValueProblem("date time out of range") from exc
    return local.astimezone(dt.timezone.utc)


def _parse_float(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise ValueProblem("not a number") from exc


_INT64_RANGE = range(-(2**63), 2**63)


def _check_int64(number: int) -> int:
    if number not in _INT64_RANGE:
        raise ValueProblem("integer outside INT64")
    return number


def _parse_int(text: str) -> int:
    try:
        return _check_int64(int(text))
    except ValueError as exc:
        raise ValueProblem("not an integer") from exc


def _parse_person_name(text: str) -> dict[str, dict[str, str | None] | None]:
    groups = text.split("=")
    name: dict[str, dict[str, str | None] | None] = {}
    for index, group_name in enumerate(PN_GROUPS):
        group = groups[index] if index < len(groups) else ""
        if not group:
            name[group_name] = None
            continue
        parts = group.split("^")
        name[group_name] = {
            component: (parts[i] or None) if i < len(parts) else None
            for i, component in enumerate(PN_COMPONENTS)
        }
    return name


def _check_decimal_string(text: str) -> str:
    _parse_float(text)
    return text


def _check_integer_string(text: str) -> str:
    _parse_int(text)
    return text


_STRING_CHECKS = {"DS": _check_decimal_string, "IS": _check_integer_string}
_PARSERS = {"DA": _parse_date, "TM": _parse_time, "DT": _parse_datetime, "PN": _parse_person_name}
_NUMBER_VRS = {"FL": float, "FD": float}
#: Text columns whose values are kept as written (DS and IS are checked to be numbers).
_PLAIN_TEXT_VRS = frozenset(
    vr for vr, kind in BIGQUERY_TYPE_BY_VR.items() if kind == "STRING" and vr not in ("DS", "IS")
)


def _convert_one(column_vr: str, text: str, number: int | float | None) -> Any:
    if column_vr in STRUCT_PACK_FORMAT:
        if number is not None:
            return float(number) if column_vr in _NUMBER_VRS else _check_int64(int(number))
        if column_vr in _NUMBER_VRS:
            return _parse_float(text)
        return int(text, 16) if column_vr == "AT" else _parse_int(text)
    parser = _PARSERS.get(column_vr)
    if parser is not None:
        return parser(text)
    check = _STRING_CHECKS.get(column_vr)
    return check(text) if check else text


#: Columns of VRs whose binary values ``decode_raw_value`` gives as numbers too.
_BINARY_NUMBER_COLUMNS = frozenset(STRUCT_PACK_FORMAT) - {"AT"}


def _already_typed(column_vr: str, numbers: tuple[int | float, ...]) -> bool:
    """Whether binary numbers are their column's values as they are: floats for a float
    column, integers within INT64 for an integer one (one struct format gives one type).

    Why: a LUT Data or other long binary value has thousands of numbers, and converting and
    checking them one by one cost as much as decoding them.
    """
    if not numbers:
        return False
    if column_vr in _NUMBER_VRS:
        return type(numbers[0]) is float
    return (
        type(numbers[0]) is int
        and min(numbers) >= _INT64_RANGE.start
        and max(numbers) < _INT64_RANGE.stop
    )


def column_value(column_vr: str, repeated: bool, decoded: DecodedValue) -> tuple[Any, str | None]:
    """The column value of an element and the reason it does not fit, if it does not.

    ``column_vr`` is the data dictionary's VR (which decides the column type), not the file's.
    A DS or IS that is not a number keeps its string (the column is STRING) but is reported;
    any other value that does not fit leaves the column NULL. BigQuery arrays cannot hold NULL,
    so one bad value empties the whole array rather than shifting positions.
    """
    strings, numbers, problem = decoded
    if strings is None:
        return None, "binary value for a non-binary attribute"
    if not strings:
        return ([] if repeated else None), problem
    if column_vr in _PLAIN_TEXT_VRS and (repeated or len(strings) == 1):
        # a text column keeps the strings as written: nothing to convert or check
        if repeated:
            return list(strings), problem
        return (strings[0] or None), problem
    if not repeated and len(strings) > 1:
        reason = f"{len(strings)} values for a VM 1 attribute"
        if BIGQUERY_TYPE_BY_VR[column_vr] == "STRING":
            return "\\".join(strings), reason
        return None, reason
    check = _STRING_CHECKS.get(column_vr)
    if check is not None:
        # DS and IS keep their strings as written, each checked to be a number: the most
        # common columns, so without the general loop's per-value dispatch
        for text in strings:
            if text:
                try:
                    check(text)
                except ValueProblem as exc:
                    problem = str(exc)
        if repeated:
            return list(strings), problem
        return (strings[0] or None), problem
    if numbers is not None and column_vr in _BINARY_NUMBER_COLUMNS:
        # numbers decoded from binary VRs: no text to parse
        if _already_typed(column_vr, numbers):
            return (list(numbers) if repeated else numbers[0]), problem
        try:
            if column_vr in _NUMBER_VRS:
                typed = [float(number) for number in numbers]
            else:
                typed = [_check_int64(int(number)) for number in numbers]
        except ValueProblem as exc:
            return None, str(exc)
        except (ValueError, OverflowError):
            return None, f"value does not fit {column_vr}"
        return (typed if repeated else typed[0]), problem
    converted = []
    for index, text in enumerate(strings):
        if not text:
            converted.append(None if column_vr in _PARSERS else "")
            continue
        try:
            converted.append(
                _convert_one(column_vr, text, numbers[index] if numbers is not None else None)
            )
        except ValueProblem as exc:
            if column_vr in _STRING_CHECKS:
                converted.append(text)
                problem = str(exc)
                continue
            return None, str(exc)
        except (ValueError, OverflowError):
            return None, f"value does not fit {column_vr}"
    if not repeated:
        return (converted[0] if converted[0] != "" else None), problem
    if any(value is None for value in converted):
        return None, "empty value inside an array"
    return converted, problem
