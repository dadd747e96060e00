"""Manifests of local files (an IDC cohort downloaded with s5cmd, say) keep their columns.

A line naming a local file gives that file its columns (collection_id, crdc_*_uuid, md5, ...);
a line naming a local folder or glob gives its columns to every file it holds, as a bucket
prefix does; a line naming nothing is one ingest_errors row.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dicom_samples import base_dataset, dicom_bytes
from ingested import warehouse_rows

from dicomwarehouse.io.refs import ListingFailure, ObjectRef
from dicomwarehouse.pipeline.run import IngestOptions, ingest
from dicomwarehouse.sources.expand import expand_sources

HEADER = "url,collection_id,crdc_series_uuid,crdc_instance_uuid,md5,size"


def _write(path: Path, **attributes: Any) -> str:
    """A small DICOM file at ``path``; its SOPInstanceUID."""
    ds = base_dataset(**attributes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(dicom_bytes(ds))
    return str(ds.SOPInstanceUID)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def _by_url(refs: list[ObjectRef]) -> dict[str, ObjectRef]:
    return {ref.url: ref for ref in refs}


# --- listing ----------------------------------------------------------------------------------


def test_a_file_line_keeps_its_columns_and_the_file_system_metadata(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "1.dcm", tmp_path / "a" / "2.dcm"
    _write(first)
    _write(second)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        f"{HEADER}\n"
        f"{first},c1,s1,i1,{_md5(first)},{first.stat().st_size}\n"
        # relative to the manifest's folder; a size the file does not have: its md5 is not it
        f"a/2.dcm,c2,,,{'0' * 32},{second.stat().st_size + 1}\n"
        f"file://{tmp_path / 'a' / '1.dcm'},c3,,,,\n"  # the same file again: first line wins
    )
    refs = expand_sources([], [str(manifest)])
    assert [ref.url for ref in refs] == [str(first), str(second)]
    one, two = refs
    assert dict(one.extras) == {
        "collection_id": "c1",
        "crdc_series_uuid": "s1",
        "crdc_instance_uuid": "i1",
    }
    assert (one.size, one.generation, one.md5) == (
        first.stat().st_size,
        str(first.stat().st_mtime_ns),
        _md5(first),
    )
    assert dict(two.extras) == {"collection_id": "c2"}
    assert (two.size, two.generation, two.md5) == (
        second.stat().st_size,
        str(second.stat().st_mtime_ns),
        None,
    )


@pytest.mark.parametrize(
    ("header", "prefix"), [("url", "file://"), ("local_path", ""), ("File_Path", "file://")]
)
def test_a_path_or_file_url_column_is_the_url_column(
    tmp_path: Path, header: str, prefix: str
) -> None:
    path = tmp_path / "x.dcm"
    _write(path)
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"collection_id,{header}\nc9,{prefix}{path}\n")
    (ref,) = expand_sources([], [str(manifest)])
    assert (ref.url, dict(ref.extras), ref.size) == (
        str(path),
        {"collection_id": "c9"},
        path.stat().st_size,
    )


def test_folder_and_glob_lines_give_their_columns_to_every_file(tmp_path: Path) -> None:
    names = ["series/1.dcm", "series/sub/2.dcm", "series/.3.dcm", "other/4.dcm", "other/5.txt"]
    for name in names:
        _write(tmp_path / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "url,collection_id,md5\n"
        f"{tmp_path / 'series'},folder,{'0' * 32}\n"  # a folder's files are not this md5
        f"{tmp_path / 'other'}/*.dcm,glob,\n"
    )
    refs = _by_url(expand_sources([], [str(manifest)]))
    expected = {
        str(tmp_path / name): {"collection_id": "glob" if name.startswith("other") else "folder"}
        for name in names
        if not name.endswith(".txt")
    }
    assert {url: dict(ref.extras) for url, ref in refs.items()} == expected
    assert {ref.md5 for ref in refs.values()} == {None}
    assert all(ref.generation == str(os.stat(url).st_mtime_ns) for url, ref in refs.items())


def test_lines_naming_nothing_are_listing_failures(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "url,collection_id\n"
        f"{tmp_path / 'missing.dcm'},c1\n"
        f"{tmp_path / 'empty'},c2\n"
        f"{tmp_path / 'nothing'}/*.dcm,c3\n"
        "http://example.org/x.dcm,c4\n"
    )
    refs = expand_sources([], [str(manifest)])
    assert all(isinstance(ref, ListingFailure) for ref in refs)
    assert [(ref.url, ref.error_type) for ref in refs] == [  # type: ignore[attr-defined]
        (str(tmp_path / "missing.dcm"), "NotFound"),
        (str(tmp_path / "empty"), "NoObjects"),
        (str(tmp_path / "nothing" / "*.dcm"), "NoObjects"),
        ("http://example.org/x.dcm", "BadURL"),
    ]


# --- ingests ----------------------------------------------------------------------------------


@pytest.fixture
def cohort(tmp_path: Path) -> tuple[Path, dict[str, tuple[Any, ...]], Path]:
    """A downloaded cohort and its CSV manifest of absolute paths: (manifest, expected rows
    by SOPInstanceUID, the missing file's path)."""
    download = tmp_path / "download"
    study = str(uuid.uuid4())
    expected: dict[str, tuple[Any, ...]] = {}
    lines = ["url,collection_id,crdc_study_uuid,crdc_series_uuid,crdc_instance_uuid,md5"]
    for index in range(2):
        series, instance = str(uuid.uuid4()), str(uuid.uuid4())
        path = download / f"file{index}.dcm"  # not IDC's layout: the columns come from the lines
        sop = _write(path, InstanceNumber=str(index + 1))
        lines.append(f"{path},coll_{index},{study},{series},{instance},{_md5(path)}")
        expected[sop] = (f"coll_{index}", study, series, instance, _md5(path))
    folder_sops = [_write(download / "series" / f"{n}.dcm") for n in "ab"]
    lines.append(f"{download / 'series'},coll_folder,,,,")
    expected.update({sop: ("coll_folder", None, None, None, None) for sop in folder_sops})
    missing = download / "never-downloaded.dcm"
    lines.append(f"{missing},coll_missing,{study},,,")
    manifest = tmp_path / "cohort.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, expected, missing


def test_an_ingest_of_a_local_manifest_fills_its_columns(cohort, tmp_path: Path) -> None:
    manifest, expected, missing = cohort
    warehouse = tmp_path / "w"
    summary = ingest([], warehouse, manifests=[str(manifest)])
    assert (summary.instances, summary.errors) == (len(expected), 1)
    got = warehouse_rows(
        warehouse,
        "SELECT SOPInstanceUID, collection_id, crdc_study_uuid, crdc_series_uuid, "
        "crdc_instance_uuid, source_md5 FROM dicom_metadata",
    )
    assert got == sorted(((sop, *row) for sop, row in expected.items()), key=repr)
    errors = warehouse_rows(warehouse, "SELECT source_url, stage, error_type FROM ingest_errors")
    assert errors == [(str(missing), "list", "NotFound")]


def test_an_incremental_rerun_of_a_local_manifest(cohort, tmp_path: Path) -> None:
    manifest, expected, _ = cohort
    warehouse = tmp_path / "w"
    options = IngestOptions(incremental=True, full_listing=True)
    ingest([], warehouse, manifests=[str(manifest)], options=options)
    changed = Path(manifest.read_text().splitlines()[1].split(",")[0])
    stamp = time.time_ns() + 10**9
    os.utime(changed, ns=(stamp, stamp))
    again = ingest([], warehouse, manifests=[str(manifest)], options=options)
    # the other files are unchanged; the missing one has no version to compare, so it is
    # looked for again (as a bucket line that named nothing is)
    assert (again.actions["unchanged"], again.objects_read) == (len(expected) - 1, 2)
    assert warehouse_rows(
        warehouse,
        "SELECT collection_id, source_generation FROM dicom_metadata "
        f"WHERE source_url = '{changed}'",
    ) == [("coll_0", str(stamp))]
