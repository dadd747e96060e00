"""Text values to str: PS3.5 6.1 and Annexes H, I, J, ISO 2022 code extensions included.

One function, ``decode_text(raw, vr, encodings)``, used for every text value whoever parsed
the header. Why not pydicom's ``decode_bytes``: it hands multi-byte sets to Python's
``iso2022_*`` codecs with their escape sequences left in, which leaves ISO 2022 IR 58
(GB 2312) with its escape sequence in the text; and a shortcut that returns the value when it
is 7-bit returns JIS X 0208 (ISO 2022 IR 87), which is 7-bit behind its escapes, undecoded.

The decoder here keeps the two ISO 2022 registers DICOM uses: G0 (bytes 0x21-0x7E: ASCII,
JIS X 0201 Romaji, JIS X 0208, JIS X 0212) and G1 (bytes 0xA1-0xFE: an ISO 8859 upper half,
JIS X 0201 Katakana, KS X 1001, GB 2312). Escape sequences switch them; value 1 of Specific
Character Set is the state at the start of each value and, as PS3.5 6.1.2.5.3 says, after
each delimiter: control characters (CR, LF, TAB, FF), and ``^`` and ``=`` in person names
(``\\`` between values is handled the same way). A delimiter byte inside a two-byte G0 set is
half of a character, not a delimiter: only control characters reset there.

Lenient where the standard leaves a reader alone with a broken writer: an escape sequence it
does not know is dropped (never kept as text), bytes a set cannot decode become U+FFFD, high
bytes with no G1 set are read as Latin-1, and a G1 set designated inside a value stays in use
after a delimiter when value 1 has no G1 set (writers that do not repeat ESC $ ) C after ^).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from dicomwarehouse.tables.vr import CHARSET_VRS

__all__ = ["character_sets", "decode_text", "python_codec", "unknown_character_sets"]

_ESC = 0x1B

#: Stand-alone character sets (PS3.3 Table C.12-5): no code extensions, the codec reads it all.
_STAND_ALONE = {"ISO_IR 192": "utf_8", "GB18030": "gb18030", "GBK": "gbk"}

#: Single-byte character sets without extensions: the codec reads the whole value.
_SINGLE_BYTE = {
    "ISO_IR 6": "ascii",
    "ISO_IR 100": "latin_1",
    "ISO_IR 101": "iso8859_2",
    "ISO_IR 109": "iso8859_3",
    "ISO_IR 110": "iso8859_4",
    "ISO_IR 126": "iso8859_7",
    "ISO_IR 127": "iso8859_6",
    "ISO_IR 138": "iso8859_8",
    "ISO_IR 144": "iso8859_5",
    "ISO_IR 148": "iso8859_9",
    "ISO_IR 166": "tis_620",
    "ISO_IR 203": "iso8859_15",
}

# Register contents. G0: ascii, roman (JIS X 0201 Romaji, read as ASCII as pydicom and DCMTK
# do), jis0208, jis0212. G1: a Python codec for an upper half, "katakana", "ksx1001", "gb2312".
_G0_ASCII = "ascii"

#: Escape sequence (bytes after ESC) -> (register, set)
_ESCAPES: dict[bytes, tuple[int, str]] = {
    b"(B": (0, _G0_ASCII),  # ISO-IR 6
    b"(J": (0, "roman"),  # ISO-IR 14
    b"$B": (0, "jis0208"),  # ISO-IR 87
    b"$@": (0, "jis0208"),  # JIS C 6226-1978, read as JIS X 0208
    b"$(D": (0, "jis0212"),  # ISO-IR 159
    b")I": (1, "katakana"),  # ISO-IR 13
    b"-A": (1, "latin_1"),  # ISO-IR 100
    b"-B": (1, "iso8859_2"),
    b"-C": (1, "iso8859_3"),
    b"-D": (1, "iso8859_4"),
    b"-F": (1, "iso8859_7"),
    b"-G": (1, "iso8859_6"),
    b"-H": (1, "iso8859_8"),
    b"-L": (1, "iso8859_5"),
    b"-M": (1, "iso8859_9"),
    b"-T": (1, "tis_620"),
    b"-b": (1, "iso8859_15"),  # ISO-IR 203
    b"$)C": (1, "ksx1001"),  # ISO-IR 149
    b"$)A": (1, "gb2312"),  # ISO-IR 58
}

#: ISO 2022 defined terms -> the escape sequence each stands for
_CODE_EXTENSIONS: dict[str, bytes] = {
    "ISO 2022 IR 6": b"(B",
    "ISO 2022 IR 13": b")I",
    "ISO 2022 IR 87": b"$B",
    "ISO 2022 IR 159": b"$(D",
    "ISO 2022 IR 100": b"-A",
    "ISO 2022 IR 101": b"-B",
    "ISO 2022 IR 109": b"-C",
    "ISO 2022 IR 110": b"-D",
    "ISO 2022 IR 126": b"-F",
    "ISO 2022 IR 127": b"-G",
    "ISO 2022 IR 138": b"-H",
    "ISO 2022 IR 144": b"-L",
    "ISO 2022 IR 148": b"-M",
    "ISO 2022 IR 166": b"-T",
    "ISO 2022 IR 203": b"-b",
    "ISO 2022 IR 149": b"$)C",
    "ISO 2022 IR 58": b"$)A",
    # CP 1234's spellings, as pydicom reads them
    "ISO 2022 GBK": b"$)A",
    "ISO 2022 58": b"$)A",
}

_MULTI_BYTE_G0 = frozenset({"jis0208", "jis0212"})
_PN_DELIMITERS = frozenset(b"^=\\")
_TEXT_DELIMITERS = frozenset(b"\\")
_SINGLE_VALUE_VRS = frozenset({"ST", "LT", "UT"})

_SPELLING = re.compile(r"^(ISO)[ _-]?(2022)?[ _-]?(IR)[ _-]?(\d+)$")


def _normalized(term: str) -> str:
    """A defined term with common misspellings mended (ISO_IR100, ISO IR 100, iso_ir 100)."""
    term = term.strip().upper()
    match = _SPELLING.match(term)
    if match is None:
        return "ISO_IR 192" if term in ("UTF-8", "UTF8") else term
    if match[2]:
        return f"ISO 2022 IR {match[4]}"
    return f"ISO_IR {match[4]}"


@dataclass(frozen=True)
class _Initial:
    """The state value 1 of Specific Character Set gives, and how values are read."""

    whole: str | None  # a codec that reads whole values (no code extensions in use)
    g0: str
    g1: str | None


@lru_cache(maxsize=256)
def _initial(encodings: tuple[str, ...]) -> _Initial:
    terms = [_normalized(term) for term in encodings] or [""]
    first = terms[0]
    if first in _STAND_ALONE:
        return _Initial(_STAND_ALONE[first], _G0_ASCII, _STAND_ALONE[first])
    if first in ("ISO_IR 13", "ISO 2022 IR 13"):
        return _Initial(None, "roman", "katakana")
    if first in _SINGLE_BYTE and len(terms) == 1:
        codec = _SINGLE_BYTE[first]
        return _Initial(codec, _G0_ASCII, codec if codec != "ascii" else None)
    if first in _SINGLE_BYTE:  # value 1 of an extended set spelled without 2022
        codec = _SINGLE_BYTE[first]
        return _Initial(None, _G0_ASCII, codec if codec != "ascii" else None)
    escape = _CODE_EXTENSIONS.get(first)
    if escape is not None:
        register, code = _ESCAPES[escape]
        if register == 1:
            return _Initial(None, _G0_ASCII, code)
        # a two-byte G0 set as value 1 is not allowed (PS3.3 C.12.1.1.2): start in ASCII
        return _Initial(None, _G0_ASCII if code in _MULTI_BYTE_G0 else code, None)
    # empty value 1 (ISO-IR 6) or a term no toolkit knows: ASCII, Latin-1 for high bytes
    return _Initial(None if len(terms) > 1 else "latin_1", _G0_ASCII, None)


def python_codec(encodings: Sequence[str] | None) -> str | None:
    """The Python codec that reads whole values of this Specific Character Set, if one does."""
    return _initial(tuple(encodings or ())).whole


def _decode_run(data: bytes, code: str | None, high: bool) -> str:
    """One run of bytes that one register decodes."""
    if not high:
        if code in _MULTI_BYTE_G0:
            # SPACE and controls stay single bytes in a 94-character set; the rest are pairs
            return "".join(
                _decode_pairs(part, code) if part[:1] > b"\x20" else part.decode("ascii")
                for part in _SPACES.split(data)
                if part
            )
        return data.decode("ascii", "replace")
    if code is None:
        return data.decode("latin_1")
    if code == "katakana":
        return data.decode("shift_jis", "replace")
    if code == "ksx1001":
        return data.decode("euc_kr", "replace")
    return data.decode(code, "replace")


_SPACES = re.compile(rb"([\x00-\x20]+)")


def _decode_pairs(data: bytes, code: str) -> str:
    """Two-byte G0 characters (JIS X 0208 or 0212), read through EUC-JP."""
    pairs = bytes(byte | 0x80 for byte in data)
    if code == "jis0212":  # EUC-JP writes JIS X 0212 as SS3 + two bytes
        pairs = b"".join(b"\x8f" + pairs[i : i + 2] for i in range(0, len(pairs), 2))
    return pairs.decode("euc_jp", "replace")


def _escape_at(value: bytes, index: int) -> tuple[bytes, int]:
    """The escape sequence starting at ``value[index]`` (ESC) and the index after it:
    intermediate bytes 0x20-0x2F, then one final byte 0x30-0x7E (ISO 2022)."""
    end = index + 1
    while end < len(value) and 0x20 <= value[end] <= 0x2F:
        end += 1
    if end < len(value) and 0x30 <= value[end] <= 0x7E:
        end += 1
    return value[index + 1 : end], end


def _decode_extended(value: bytes, initial: _Initial, delimiters: frozenset[int]) -> str:
    """Walk the value byte by byte, switching registers at escapes and resetting at
    delimiters; runs of bytes one register decodes are decoded together."""
    out: list[str] = []
    g0, g1 = initial.g0, initial.g1
    g1_default = initial.g1
    run_start = 0
    run_high = False
    index = 0
    length = len(value)

    def flush(stop: int) -> None:
        if stop > run_start:
            out.append(_decode_run(value[run_start:stop], g1 if run_high else g0, run_high))

    while index < length:
        byte = value[index]
        if byte == _ESC:
            flush(index)
            sequence, index = _escape_at(value, index)
            designation = _ESCAPES.get(sequence)
            if designation is not None:
                if designation[0] == 0:
                    g0 = designation[1]
                else:
                    g1 = designation[1]
            run_start = index
            continue
        high = byte >= 0x80
        control = byte < 0x20
        if high != run_high or (control and g0 in _MULTI_BYTE_G0):
            flush(index)
            run_start, run_high = index, high
        if control or (byte in delimiters and g0 not in _MULTI_BYTE_G0):
            # back to value 1's sets after a delimiter (PS3.5 6.1.2.5.3)
            flush(index)
            out.append(chr(byte))
            run_start = index + 1
            run_high = False
            g0 = initial.g0
            g1 = g1_default if g1_default is not None else g1
        index += 1
    flush(length)
    return "".join(out)


def decode_text(raw: bytes, vr: str, encodings: Sequence[str] | None) -> str:
    """The text of a value of a string VR, decoded per its Specific Character Set.

    ``encodings`` are the values of Specific Character Set (0008,0005) in force; they apply to
    SH, LO, ST, LT, UC, UT and PN, the default repertoire to every other string VR. The
    result never holds an escape sequence.
    """
    if _ESC not in raw:
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            pass
    initial = _initial(tuple(encodings or ()) if vr in CHARSET_VRS else ())
    if initial.whole is not None and _ESC not in raw:
        return raw.decode(initial.whole, "replace")
    if vr == "PN":
        delimiters = _PN_DELIMITERS
    elif vr in _SINGLE_VALUE_VRS:
        delimiters = frozenset()
    else:
        delimiters = _TEXT_DELIMITERS
    # code extensions, or a stray escape in a set without them: its codec reads high bytes
    return _decode_extended(raw, initial, delimiters)


def character_sets(value: object) -> tuple[str, ...]:
    """The defined terms of a Specific Character Set value as read (raw bytes, a string, or
    pydicom's converted value), each stripped of padding; ``()`` when there is none."""
    if value is None:
        return ()
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin_1")
    is_text = isinstance(value, str)
    terms = value.split("\\") if is_text else [str(term) for term in value]  # type: ignore[attr-defined]
    terms = [term.strip(" \0") for term in terms]
    return tuple(terms) if any(terms) else ()


def unknown_character_sets(encodings: Sequence[str]) -> list[str]:
    """The defined terms of ``encodings`` this module does not know (read as ISO-IR 6)."""
    known = {"", *_STAND_ALONE, *_SINGLE_BYTE, *_CODE_EXTENSIONS, "ISO_IR 13"}
    return [term for term in encodings if _normalized(term) not in known]
