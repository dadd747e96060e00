"""dicom_elements agrees with DCMTK's dcmdump (tests/dcmtk_compare.py), an independent reader.

Skipped where dcmdump is not installed (.ci/run installs Debian's dcmtk). The quick tests run
on pydicom's own files; the corpus-wide comparison is slow. docs/fidelity.md explains each
class of difference that remains.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dcmtk_compare import compare_file, compare_files, dcmdump_available, dcmdump_elements
from pydicom.data import get_charset_files, get_testdata_file

DIFFERENCES = ("value_differs", "not_converted_by_dcmtk", "vr_differs", "only_dcmtk", "only_ours")

pytestmark = pytest.mark.skipif(not dcmdump_available(), reason="dcmdump (dcmtk) not installed")


def _charset_files() -> list[str]:
    return [path for path in get_charset_files() if path.endswith(".dcm")]


def test_text_values_agree_on_pydicoms_charset_files() -> None:
    comparison = compare_files(_charset_files())
    assert comparison.files >= 15 and not comparison.unreadable
    # DCMTK converts single-byte and Unicode sets through iconv; every value it converted
    # agrees; those it could not convert (ISO 2022 code extensions) are counted apart
    assert sum(comparison.value_differs.values()) == 0, comparison.examples[:5]
    assert comparison.agree["PN"] >= 10


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm"])
def test_every_element_dcmtk_reads_is_a_row_with_its_value(name: str) -> None:
    comparison = compare_file(get_testdata_file(name))
    assert not comparison.unreadable
    differences = (
        comparison.value_differs,
        comparison.vr_differs,
        comparison.only_dcmtk,
        comparison.only_ours,
    )
    assert all(sum(counter.values()) == 0 for counter in differences), comparison.examples


def test_elements_after_pixel_data_are_compared_too() -> None:
    path = get_testdata_file("CT_small.dcm")
    dumped = dcmdump_elements(path)
    assert dumped is not None
    after = [key for key in dumped if "." not in key and key > "7FE00010"]
    assert after  # trailing padding, in DCMTK's reading as in ours
    comparison = compare_file(path)
    assert not comparison.only_dcmtk and not comparison.missed_after_pixel_data


@pytest.mark.slow
def test_corpus_agrees_with_dcmtk(shared_corpus: Path) -> None:
    paths = sorted(p for p in shared_corpus.rglob("*") if p.is_file())
    comparison = compare_files(paths)
    agreed = sum(comparison.agree.values())
    total = agreed + sum(sum(getattr(comparison, name).values()) for name in DIFFERENCES)
    assert total > 100_000
    assert agreed / total > 0.99, comparison.examples[:20]
    # what DCMTK reads after Pixel Data at the top level, we read too
    assert not comparison.missed_after_pixel_data
