"""Expanding directories, globs and manifests into the run's object list."""

from __future__ import annotations

import os
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


@pytest.fixture
def special_files(tmp_path: Path) -> Path:
    """A folder of things that are not regular files, beside one that is."""
    import socket

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "broken").symlink_to(tmp_path / "missing")
    (tmp_path / "regular.dcm").write_bytes(b"DICM")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "socket"))
    server.close()
    return tmp_path


def test_special_files_are_error_rows_never_opened(special_files: Path) -> None:
    from dicomwarehouse.dicom.extract import extract_object, new_run
    from dicomwarehouse.io.refs import ListingFailure

    refs = {Path(ref.url).name: ref for ref in expand_sources([str(special_files)])}
    assert sorted(refs) == ["broken", "fifo", "loop", "regular.dcm", "socket"]
    expected = {
        "fifo": "NotARegularFile",
        "socket": "NotARegularFile",
        "loop": "SymlinkLoop",
        "broken": "BrokenSymlink",
    }
    for name, error_type in expected.items():
        assert isinstance(refs[name], ListingFailure)
        # extracting the FIFO would block forever if it were opened
        error = extract_object(refs[name], new_run()).error
        assert error is not None
        assert (error["stage"], error["error_type"]) == ("list", error_type)
        assert error["source_url"] == str(special_files / name)
    assert "FIFO" in refs["fifo"].message and "socket" in refs["socket"].message
    assert not isinstance(refs["regular.dcm"], ListingFailure)


def test_a_fifo_named_directly_is_an_error_row(special_files: Path) -> None:
    from dicomwarehouse.io.refs import ListingFailure

    (ref,) = expand_sources([str(special_files / "fifo")])
    assert isinstance(ref, ListingFailure) and ref.error_type == "NotARegularFile"


def test_a_path_that_became_a_fifo_after_listing_is_not_opened(special_files: Path) -> None:
    from dicomwarehouse.dicom.extract import extract_object, new_run
    from dicomwarehouse.io.refs import ObjectRef

    error = extract_object(ObjectRef(str(special_files / "fifo")), new_run()).error
    assert error is not None
    assert (error["stage"], error["error_type"]) == ("read", "NotARegularFile")


def test_unreadable_subfolder_is_an_error_row(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Permissions cannot hide a folder from root, so the refusal is simulated at scandir."""
    from dicomwarehouse.io.refs import ListingFailure

    refused = str(tree / "a" / "b")
    real_scandir = os.scandir

    def scandir(path):
        if os.fspath(path) == refused:
            raise PermissionError(13, "Permission denied", refused)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    refs = expand_sources([str(tree)])
    failures = [ref for ref in refs if isinstance(ref, ListingFailure)]
    assert [(f.url, f.error_type) for f in failures] == [(refused, "UnreadableFolder")]
    assert "Permission denied" in failures[0].message
    assert str(tree / "a" / "1.dcm") in [ref.url for ref in refs]
