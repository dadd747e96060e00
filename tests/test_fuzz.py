"""Fuzzing: mutated real files never escape ``extract_object``, stall, leak or fail a run.

The mutations are in ``dicom_mutations`` (also driven for as long as asked by
``benchmarks/fuzz.py``). Here they run for a fixed seed and budget: a small part over
pydicom's bundled files always, a longer one over the development corpus when it is present,
and an end-to-end ingest of a batch of mutated files through the real command.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from cli_runs import run_cli
from dicom_mutations import (
    MUTATIONS,
    canary_in,
    check_ingested,
    fuzz_extract,
    load_seed_files,
    mutate,
    parse_recipe,
    write_batch,
)

from dicomwarehouse.dicom.extract import extract_object, new_run
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.tables.schema import column_path_problem, metadata_schema

#: Inputs that broke a property before it was fixed, over pydicom's files, with what broke:
#: group FFFE tags became columns of VR "NONE" (the run's schema failed with KeyError), zeros
#: after a header and runs of empty items took time linear in their size (35 s for 1.6 MB).
REGRESSIONS = [
    "stray_delimiter:2822034816:dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000012:"
    "dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001C",
    "splice:881540636:dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00000A:reportsi.dcm",
    "deep_nesting:894624995:SC_rgb_dcmtk_+eb+cy+n2.dcm:SC_rgb_rle_16bit_2frame.dcm",
    "garbage_character_set:3236582174:dicomdirtests/DICOMDIR-nooffset:"
    "dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM00001A",
    "length_odd:281549108:rtstruct.dcm:reportsi.dcm",
    "flip_bytes:1754349858:reportsi_with_empty_number_tags.dcm:MR_small_bigendian.dcm",
    "length_huge:2729486387:rtplan.dcm:rtplan_truncated.dcm",
    "many_empty_items:1339395518:SC_rgb_jpeg_dcmtk.dcm:SC_rgb_dcmtk_+eb+cy+n2.dcm",
    "zero_tail:242886303:MR_truncated.dcm:"
    "dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000001",
]

#: A generous bound on one object (shared CI machines are slow); the measured worst is 0.3 s.
MAX_SECONDS_PER_OBJECT = 10.0


@pytest.fixture(scope="module")
def pydicom_seeds(pydicom_files_dir: Path) -> dict[str, bytes]:
    return load_seed_files([str(pydicom_files_dir)])


@pytest.mark.parametrize("text", REGRESSIONS, ids=lambda t: t.split(":")[0])
def test_regression_inputs(tmp_path: Path, pydicom_seeds: dict[str, bytes], text: str) -> None:
    recipe = parse_recipe(text)
    data = mutate(recipe, pydicom_seeds[recipe.source], pydicom_seeds[recipe.donor])
    path = tmp_path / "mutated.dcm"
    path.write_bytes(data)
    started = time.perf_counter()
    extracted = extract_object(ObjectRef(str(path), len(data)), new_run())
    assert time.perf_counter() - started < MAX_SECONDS_PER_OBJECT
    assert (extracted.metadata is None) != (extracted.error is None)
    assert all(column_path_problem(p) is None for p in extracted.column_paths)
    metadata_schema(extracted.column_paths)
    assert canary_in(extracted.error) is None


def _assert_clean(report) -> None:
    assert report.inputs > 0
    assert report.findings == [], "\n".join(f"{f.recipe}  {f.problem}" for f in report.findings)
    assert report.slowest_seconds < MAX_SECONDS_PER_OBJECT


def test_fuzz_pydicom_files(tmp_path: Path, pydicom_seeds: dict[str, bytes]) -> None:
    report = fuzz_extract(
        pydicom_seeds, str(tmp_path), seed=20261202, count=len(MUTATIONS) * 30,
        max_seconds_per_object=MAX_SECONDS_PER_OBJECT,
    )  # fmt: skip
    _assert_clean(report)
    assert 0 < report.errors < report.inputs  # mutations both break files and leave them usable
    assert set(report.slowest_by_mutation) == set(MUTATIONS)


@pytest.mark.slow
def test_fuzz_corpus(tmp_path: Path, shared_corpus: Path) -> None:
    seeds = load_seed_files([str(shared_corpus)], max_bytes=256 * 1024)
    report = fuzz_extract(
        seeds, str(tmp_path), seed=890, seconds=90,
        max_seconds_per_object=MAX_SECONDS_PER_OBJECT,
    )  # fmt: skip
    _assert_clean(report)


def test_ingest_of_mutated_files_accounts_for_each_once(
    tmp_path: Path, pydicom_seeds: dict[str, bytes]
) -> None:
    """The real command over mutated files with canaries, a FIFO, 64 MiB of zeros, an empty
    file, a symbolic link loop and stray delimiter tags: it commits, every file is in exactly
    one table, and no canary reaches an error row, the run record or the output."""
    folder = tmp_path / "in"
    folder.mkdir()
    made = write_batch(str(folder), pydicom_seeds, count=60, seed=7)
    warehouse = tmp_path / "warehouse"
    started = time.monotonic()
    result = run_cli("ingest", str(folder), "--warehouse", str(warehouse))
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert elapsed < 240
    problems = check_ingested(str(warehouse), str(folder), made, result.stdout + result.stderr)
    assert problems == []
    assert canary_in(result.stdout + result.stderr) is None
