"""Text decoding (dicom/charsets.py) against PS3.5 Annexes H, I, J, K and pydicom's decoder.

Encoded examples are built with Python's own codecs (iso2022_jp, euc_kr, gb2312, ...), so the
expectation never comes from the code under test.
"""

from __future__ import annotations

import random
import warnings

import pydicom
import pytest
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.data import get_charset_files, get_testdata_files
from pydicom.dataelem import RawDataElement

from dicomwarehouse.dicom.charsets import character_sets, decode_text, unknown_character_sets
from dicomwarehouse.dicom.pydicom_boundary import raw_elements
from dicomwarehouse.tables.vr import CHARSET_VRS

ESC = b"\x1b"


def jis(text: str) -> bytes:
    """JIS X 0208 behind its escapes, as PS3.5 H.3 writes it (ESC $ B ... ESC ( B)."""
    return text.encode("iso2022_jp")


def test_annex_h_japanese_ir87() -> None:
    raw = b"Yamada^Tarou=" + jis("山田") + b"^" + jis("太郎") + b"=" + jis("やまだ") + b"^"
    raw += jis("たろう")
    text = decode_text(raw, "PN", ["", "ISO 2022 IR 87"])
    assert text == "Yamada^Tarou=山田^太郎=やまだ^たろう"


def test_annex_h_japanese_ir13_with_ir87() -> None:
    katakana = "ﾔﾏﾀﾞ".encode("shift_jis")  # JIS X 0201 katakana: G1 of ISO 2022 IR 13
    raw = katakana + b"^" + "ﾀﾛｳ".encode("shift_jis") + b"=" + jis("山田") + b"^" + jis("太郎")
    text = decode_text(raw, "PN", ["ISO 2022 IR 13", "ISO 2022 IR 87"])
    assert text == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎"


def test_jis_x_0212_ir159() -> None:
    raw = b"A" + "丂".encode("iso2022_jp_2") + b"B"
    assert raw.count(ESC) == 2  # ESC $ ( D ... ESC ( B
    assert decode_text(raw, "LO", ["", "ISO 2022 IR 159"]) == "A丂B"


def test_annex_i_korean_ir149() -> None:
    designation = ESC + b"$)C"
    raw = b"Hong^Gildong=" + designation + "洪^吉洞".encode("euc_kr") + b"="
    raw += designation + "홍^길동".encode("euc_kr")
    assert decode_text(raw, "PN", ["", "ISO 2022 IR 149"]) == "Hong^Gildong=洪^吉洞=홍^길동"


def test_annex_j_unicode_and_gb18030() -> None:
    name = "Wang^XiaoDong=王^小東="
    assert decode_text(name.encode("utf-8"), "PN", ["ISO_IR 192"]) == name
    assert decode_text(name.encode("gb18030"), "PN", ["GB18030"]) == name


def test_annex_k_gb2312_ir58_keeps_no_escape_where_pydicom_does() -> None:
    """PS3.5 K.2: ISO 2022 IR 58 is designated to G1 by ESC $ ) A. pydicom 3.0 hands the
    escape to a GB 2312 codec, which keeps it in the text; the standard's reading drops it."""
    raw = b"Zhang^XiaoDong=" + ESC + b"$)A" + "张^小东".encode("gb2312") + b"="
    encodings = ["", "ISO 2022 IR 58"]
    assert decode_text(raw, "PN", encodings) == "Zhang^XiaoDong=张^小东="
    theirs = decode_bytes(raw, convert_encodings(encodings), {"^", "="})
    assert "\x1b" in theirs  # pydicom is wrong here; if it is fixed, this test says so


def test_a_7_bit_value_is_not_returned_undecoded() -> None:
    raw = jis("山田")
    assert raw.isascii()
    assert decode_text(raw, "LO", ["", "ISO 2022 IR 87"]) == "山田"


def test_single_byte_sets_and_misspellings() -> None:
    assert decode_text("Müller".encode("latin-1"), "PN", ["ISO_IR 100"]) == "Müller"
    assert decode_text("Müller".encode("latin-1"), "PN", ["ISO IR 100"]) == "Müller"
    assert decode_text("Иванов".encode("iso8859_5"), "PN", ["ISO_IR 144"]) == "Иванов"
    assert decode_text("Ελλάδα".encode("iso8859_7"), "LO", ["ISO_IR 126"]) == "Ελλάδα"
    # default repertoire VRs ignore Specific Character Set
    assert decode_text("é".encode(), "CS", ["ISO_IR 192"]) == "Ã©"


def test_value_1_returns_after_each_delimiter() -> None:
    """PS3.5 6.1.2.5.3: a G1 set invoked in one component does not carry over when value 1
    has a set of its own."""
    raw = ESC + b"-F" + "Ω".encode("iso8859_7") + b"^" + "é".encode("latin-1")
    assert decode_text(raw, "PN", ["ISO 2022 IR 100", "ISO 2022 IR 126"]) == "Ω^é"


def test_no_escape_survives_any_input() -> None:
    rng = random.Random(11)
    pieces = [ESC + b"$B", ESC + b"(B", ESC + b"$)C", ESC + b"(", ESC, ESC + b"$(", b"^", b"\\"]
    pieces += [bytes([b]) for b in (0x21, 0x41, 0x5E, 0x7E, 0xA1, 0xC8, 0xFE, 0x0D)]
    for _ in range(2000):
        raw = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 12)))
        for encodings in (["", "ISO 2022 IR 87"], ["ISO 2022 IR 149"], ["ISO_IR 192"], []):
            assert "\x1b" not in decode_text(raw, "PN", encodings)


def _charset_values():
    """Every text value of pydicom's charset and test files that is not plain ASCII text."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_charset_files() + get_testdata_files():
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            yield from _walk(ds, ())


def _walk(ds, inherited):
    elements = raw_elements(ds)
    charset = elements.get(0x00080005)
    encodings = character_sets(charset.value) if charset is not None else inherited
    for tag in list(elements):
        element = elements[tag]
        if isinstance(element, RawDataElement) and isinstance(element.value, bytes):
            vr = element.VR or ds[tag].VR
            if vr in CHARSET_VRS and (not element.value.isascii() or ESC in element.value):
                yield vr, element.value, encodings
        elif ds[tag].VR == "SQ":
            for item in ds[tag].value:
                yield from _walk(item, encodings)


def test_agrees_with_pydicom_on_its_charset_files() -> None:
    values = list(_charset_values())
    assert len(values) >= 20
    for vr, raw, encodings in values:
        delimiters = {"^", "="} if vr == "PN" else {"\r", "\n", "\t", "\f"}
        expected = decode_bytes(raw, convert_encodings(list(encodings) or [""]), delimiters)
        assert decode_text(raw, vr, encodings) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"ISO_IR 100", ("ISO_IR 100",)),
        (b"\\ISO 2022 IR 87 ", ("", "ISO 2022 IR 87")),
        (b"", ()),
        ("ISO_IR 192", ("ISO_IR 192",)),
        (["ISO 2022 IR 13", "ISO 2022 IR 87"], ("ISO 2022 IR 13", "ISO 2022 IR 87")),
    ],
)
def test_character_sets_from_any_form_of_the_value(value, expected) -> None:
    assert character_sets(value) == expected


def test_unknown_character_sets_are_named() -> None:
    assert unknown_character_sets(["ISO_IR 999", "ISO 2022 IR 87", "ISO_IR100"]) == ["ISO_IR 999"]
