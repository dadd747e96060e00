"""Expanding directories, globs and manifests into the run's object list."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomwarehouse.errors import SourceError
from dicomwarehouse.sources.expand import expand_sources


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name in ["a/1.dcm", "a/b/2.dcm", "c/3.dcm", ".hidden/4.dcm", "a/.5.dcm"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * len(name))
    return tmp_path


def test_directory_is_walked_recursively_hidden_files_included(tree: Path) -> None:
    refs = expand_sources([str(tree)])
    assert [Path(r.url).relative_to(tree).as_posix() for r in refs] == [
        ".hidden/4.dcm",
        "a/.5.dcm",
        "a/1.dcm",
        "a/b/2.dcm",
        "c/3.dcm",
    ]
    assert refs[2].size == len("a/1.dcm")
    assert all(Path(r.url).is_absolute() for r in refs)


def test_globs_and_overlaps_give_each_file_once(tree: Path) -> None:
    refs = expand_sources([str(tree / "**" / "*.dcm"), str(tree / "a")])
    relative = sorted(Path(r.url).relative_to(tree).as_posix() for r in refs)
    assert relative == ["a/.5.dcm", "a/1.dcm", "a/b/2.dcm", "c/3.dcm"]


def test_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        expand_sources([str(tmp_path / "nope")])
    with pytest.raises(SourceError, match="no file matches"):
        expand_sources([str(tmp_path / "*.nothing")])


def test_manifest_entries_are_relative_to_the_manifest_and_missing_ones_kept(tree: Path) -> None:
    manifest = tree / "list.txt"
    manifest.write_text("a/1.dcm\n# comment\nc/3.dcm\nmissing.dcm\n")
    refs = expand_sources([], [str(manifest)])
    assert [Path(r.url).name for r in refs] == ["1.dcm", "3.dcm", "missing.dcm"]
    assert refs[-1].size is None  # becomes an ingest_errors row, not a lost line


def test_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="manifest not found"):
        expand_sources([], [str(tmp_path / "none.txt")])


def test_other_url_schemes_are_refused_clearly() -> None:
    with pytest.raises(SourceError, match="unsupported source"):
        expand_sources(["https://example.org/x.dcm"])
