"""Turn what the user names (directories, files, globs, manifests) into a list of objects.

Every object a run is given must end up in exactly one of dicom_metadata and ingest_errors, so
the list is made once, up front, de-duplicated by URL, and handed to the pipeline whole.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from dicomwarehouse.errors import SourceError
from dicomwarehouse.io.refs import ObjectRef

if TYPE_CHECKING:
    from dicomwarehouse.sources.listing import Lister

__all__ = [
    "expand_sources",
    "sample_files_dir",
]


_GLOB_CHARS = frozenset("*?[")


def sample_files_dir() -> str:
    """pydicom's bundled test files: real DICOM of many vendors, installed with pydicom."""
    from pydicom.data import get_testdata_file

    return os.path.dirname(get_testdata_file("CT_small.dcm"))


def _listing_failure(url: str, error_type: str, message: str) -> ObjectRef:
    from dicomwarehouse.io.refs import ListingFailure

    return ListingFailure(url, error_type=error_type, message=message)


_SPECIAL_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a folder"),
)


def _local_ref(path: str) -> ObjectRef:
    """The object of one local path; what is not a regular file is an error row, unopened.

    Opening a FIFO blocks until a writer comes, a device can stream forever: such paths
    become ``ListingFailure`` rows (stage ``list``) naming what they are, as do symbolic
    links that lead nowhere or to themselves.
    """
    absolute = os.path.abspath(path)
    try:
        status = os.stat(absolute)
    except OSError as exc:
        if os.path.islink(absolute):
            looping = exc.errno == errno.ELOOP
            return _listing_failure(
                absolute,
                "SymlinkLoop" if looping else "BrokenSymlink",
                "symbolic link loops" if looping else "symbolic link to nothing",
            )
        return ObjectRef(absolute)  # reported by the read stage as an ingest_errors row
    if not stat.S_ISREG(status.st_mode):
        kind = next((name for test, name in _SPECIAL_FILE_KINDS if test(status.st_mode)), None)
        return _listing_failure(
            absolute, "NotARegularFile", f"{kind or 'not a regular file'}: never opened"
        )
    return ObjectRef(absolute, status.st_size, generation=str(status.st_mtime_ns))


def _walk_directory(directory: str) -> Iterator[ObjectRef]:
    """Every file below the folder, hidden ones too: a file skipped silently is a file lost
    (one that is not DICOM costs one ingest_errors row). A subfolder that cannot be listed
    is an error row naming it, not silence."""
    unreadable: list[OSError] = []
    for root, dirs, files in os.walk(directory, onerror=unreadable.append):
        dirs.sort()
        yield from _unreadable_folders(unreadable)
        for name in sorted(files):
            yield _local_ref(os.path.join(root, name))
    yield from _unreadable_folders(unreadable)


def _unreadable_folders(errors: list[OSError]) -> Iterator[ObjectRef]:
    while errors:
        error = errors.pop(0)
        folder = os.path.abspath(error.filename) if error.filename else "<folder>"
        reason = error.strerror or type(error).__name__
        yield _listing_failure(folder, "UnreadableFolder", f"folder not listed: {reason}")


def _expand_one(source: str, strict: bool) -> Iterator[ObjectRef]:
    """Objects of one source; a missing path is a usage error only when the user typed it.

    A manifest entry that names a missing file is still an object of the run: it becomes an
    ingest_errors row, so the manifest stays fully accounted for.
    """
    if source.startswith("file://"):
        source = source[len("file://") :]
    if "://" in source:
        raise SourceError(
            f"unsupported source {source!r}: local paths, gs:// and s3:// are supported"
        )
    if any(char in source for char in _GLOB_CHARS):
        matches = sorted(glob.glob(source, recursive=True))
        if not matches:
            raise SourceError(f"no file matches {source!r}")
        for match in matches:
            if os.path.isdir(match):
                yield from _walk_directory(match)
            else:
                yield _local_ref(match)
    elif os.path.isdir(source):
        yield from _walk_directory(source)
    elif os.path.exists(source) or not strict:
        yield _local_ref(source)
    else:
        raise SourceError(f"no such file or directory: {source!r}")


def expand_sources(
    sources: Iterable[str], manifests: Iterable[str] = (), *, lister: Lister | None = None
) -> list[ObjectRef]:
    """All objects named by the sources and manifests, in order, each URL once.

    gs:// and s3:// sources, and manifests of every format (see ``manifests``), go through
    ``lister`` (``listing.Lister``), which also counts the listing requests.
    """
    from dicomwarehouse.io.urls import is_bucket_url
    from dicomwarehouse.sources.listing import Lister

    lister = lister or Lister()
    seen: dict[str, ObjectRef] = {}
    named: list[tuple[str | ObjectRef, bool]] = [(source, True) for source in sources]
    for manifest in manifests:
        # local paths in a manifest are relative to the manifest, as users expect
        named.extend((entry, False) for entry in lister.expand_manifest(manifest))
    for source, strict in named:
        if isinstance(source, ObjectRef):
            refs: Iterable[ObjectRef] = (source,)
        elif is_bucket_url(source):
            refs = lister.expand_url(source)
        else:
            refs = _expand_one(source, strict)
        for ref in refs:
            seen.setdefault(ref.url, ref)
    return list(seen.values())
