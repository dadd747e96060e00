"""Decoding raw element bytes and typing them for columns."""

from __future__ import annotations

import datetime as dt
import struct

import pytest

from dicomwarehouse.dicom.values import (
    column_value,
    decode_converted_value,
    decode_raw_value,
    decoded_value,
)


@pytest.mark.parametrize(
    ("vr", "raw", "strings"),
    [
        ("CS", b"ORIGINAL\\PRIMARY ", ["ORIGINAL", "PRIMARY"]),
        ("UI", b"1.2.3\x00", ["1.2.3"]),
        ("DS", b" 1.5\\-2 ", ["1.5", "-2"]),
        ("IS", b"12 ", ["12"]),
        ("LT", b"a\\b ", ["a\\b"]),
        ("UT", b"text\\with backslash", ["text\\with backslash"]),
        ("PN", b"Doe^John=Ideo", ["Doe^John=Ideo"]),
        ("LO", b"", []),
        ("LO", b"a\\\\b", ["a", "", "b"]),
    ],
)
def test_text_values_are_split_and_unpadded(vr: str, raw: bytes, strings: list[str]) -> None:
    assert decode_raw_value(vr, raw, True, None)[0] == tuple(strings)


@pytest.mark.parametrize("little", [True, False])
@pytest.mark.parametrize(
    ("vr", "code", "numbers"),
    [
        ("US", "H", (1, 65535)),
        ("SS", "h", (-1, 5)),
        ("UL", "I", (2**32 - 1,)),
        ("SL", "i", (-(2**31),)),
        ("SV", "q", (-(2**62),)),
        ("UV", "Q", (2**63 + 5,)),
        ("FD", "d", (0.1, -2.5)),
    ],
)
def test_binary_numbers_decode_in_both_byte_orders(
    vr: str, code: str, numbers: tuple, little: bool
) -> None:
    raw = struct.pack(f"{'<' if little else '>'}{len(numbers)}{code}", *numbers)
    strings, decoded_numbers, _ = decode_raw_value(vr, raw, little, None)
    assert decoded_numbers == numbers
    assert strings == tuple(repr(n) if vr == "FD" else str(n) for n in numbers)


def test_float32_gets_its_shortest_decimal() -> None:
    decoded = decode_raw_value("FL", struct.pack("<2f", 0.3, 1e-7), True, None)
    assert decoded == (("0.3", "1e-07"), (0.3, 1e-7), None)


def test_attribute_tags_are_eight_hex_digits() -> None:
    decoded = decode_raw_value("AT", struct.pack("<4H", 0x0020, 0x0032, 0x7FE0, 0x0010), True, None)
    assert decoded == (("00200032", "7FE00010"), (0x00200032, 0x7FE00010), None)


def test_odd_length_binary_value_is_reported_not_dropped() -> None:
    _, numbers, problem = decode_raw_value("US", b"\x01\x00\x02", True, None)
    assert numbers == (1,)
    assert "not a multiple" in (problem or "")


def test_binary_vrs_have_no_strings() -> None:
    assert decode_raw_value("OB", b"\x00\x01", True, None)[0] is None
    assert decode_raw_value("UN", b"\x00\x01", True, None)[0] is None


def test_character_set_decodes_text_vrs_only() -> None:
    latin1 = "Müller".encode("latin-1")
    assert decode_raw_value("PN", latin1, True, ["ISO_IR 100"])[0] == ("Müller",)
    utf8 = "Jérôme".encode()
    assert decode_raw_value("LO", utf8, True, ["ISO_IR 192"])[0] == ("Jérôme",)
    # Specific Character Set is for SH LO ST LT UC UT PN only: a CS value stays Latin-1
    assert decode_raw_value("CS", utf8, True, ["ISO_IR 192"])[0] == ("JÃ©rÃ´me",)


def test_converted_values_give_the_same_strings() -> None:
    assert decode_converted_value("UI", "1.2.840.10008.1.2.1")[0] == ("1.2.840.10008.1.2.1",)
    assert decode_converted_value("US", [1, 2])[:2] == (("1", "2"), (1, 2))
    assert decode_converted_value("OB", b"\x00\x01")[0] is None


@pytest.mark.parametrize(
    ("vr", "text", "expected"),
    [
        ("DA", "20240131", dt.date(2024, 1, 31)),
        ("DA", "2024.01.31", dt.date(2024, 1, 31)),
        ("TM", "1345", dt.time(13, 45)),
        ("TM", "134501.25", dt.time(13, 45, 1, 250000)),
        ("TM", "13:45:01", dt.time(13, 45, 1)),
        ("DT", "2024", dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)),
        (
            "DT",
            "20240131134501.5-0500",
            dt.datetime(2024, 1, 31, 18, 45, 1, 500000, tzinfo=dt.timezone.utc),
        ),
    ],
)
def test_dates_and_times_are_typed(vr: str, text: str, expected: object) -> None:
    value, problem = column_value(vr, False, decoded_value((text,)))
    assert (value, problem) == (expected, None)


@pytest.mark.parametrize(
    ("vr", "text"),
    [("DA", "20021301"), ("DA", "yesterday"), ("TM", "250000"), ("DT", "2024-01-01")],
)
def test_invalid_dates_and_times_are_null_with_a_reason(vr: str, text: str) -> None:
    value, problem = column_value(vr, False, decoded_value((text,)))
    assert value is None
    assert problem
    assert text not in problem  # reasons never repeat values (they may be patient data)


def test_decimal_string_that_is_not_a_number_keeps_its_text() -> None:
    value, problem = column_value("DS", False, decoded_value(("abc",)))
    assert value == "abc"
    assert problem == "not a number"


def test_vm1_attribute_with_two_values() -> None:
    text, text_problem = column_value("LO", False, decoded_value(("a", "b")))
    assert text == "a\\b"
    assert text_problem == "2 values for a VM 1 attribute"
    number, number_problem = column_value("US", False, decoded_value(("1", "2"), (1, 2)))
    assert number is None
    assert number_problem == "2 values for a VM 1 attribute"


def test_unsigned_64_bit_beyond_int64_is_reported() -> None:
    value, problem = column_value("UV", True, decoded_value((str(2**64 - 1),), (2**64 - 1,)))
    assert value is None
    assert problem == "integer outside INT64"


@pytest.mark.parametrize(
    ("file_vr", "column_vr", "raw"),
    [
        ("US", "US", struct.pack("<4096H", *range(4096))),  # a LUT Data of 4,096 entries
        ("SS", "SS", struct.pack("<3h", -32768, 0, 32767)),
        ("UL", "SV", struct.pack("<2L", 0, 2**32 - 1)),
        ("FD", "FD", struct.pack("<3d", -1.5, 0.0, 1e300)),
        ("FL", "FL", struct.pack("<2f", 0.3, -2.5)),
        ("FD", "US", struct.pack("<2d", 1.0, 2.0)),  # a file VR that is not the column's
        ("US", "FD", struct.pack("<2H", 1, 2)),
    ],
)
def test_binary_numbers_typed_for_their_column(file_vr: str, column_vr: str, raw: bytes) -> None:
    """Numbers already of the column's type are kept as they are, others converted: either
    way each is the column's type and equal to the number written."""
    decoded = decode_raw_value(file_vr, raw, True, None)
    values, problem = column_value(column_vr, True, decoded)
    assert problem is None
    column_type = float if column_vr in ("FL", "FD") else int
    numbers = decoded[1]
    assert [type(value) for value in values] == [column_type] * len(numbers)
    assert values == [column_type(number) for number in numbers]
    first = raw[: len(raw) // len(numbers)]  # the first number alone
    single, _ = column_value(column_vr, False, decode_raw_value(file_vr, first, True, None))
    assert single == values[0]
    assert type(single) is column_type


def test_unsigned_64_bit_beyond_int64_among_others_is_reported() -> None:
    numbers = (1, 2**64 - 1)
    strings = tuple(str(n) for n in numbers)
    value, problem = column_value("UV", True, decoded_value(strings, numbers))
    assert value is None
    assert problem == "integer outside INT64"


def test_person_name_groups_and_components() -> None:
    value, problem = column_value(
        "PN", False, decoded_value(("Yamada^Tarou=山田^太郎=やまだ^たろう",))
    )
    assert problem is None
    assert value["Alphabetic"]["FamilyName"] == "Yamada"
    assert value["Ideographic"]["GivenName"] == "太郎"
    assert value["Phonetic"]["FamilyName"] == "やまだ"
    assert value["Alphabetic"]["MiddleName"] is None


def test_arrays_never_hold_null() -> None:
    value, problem = column_value("DA", True, decoded_value(("20240101", "bad")))
    assert value is None
    assert problem
    empty, no_problem = column_value("CS", True, decoded_value(()))
    assert (empty, no_problem) == ([], None)
