"""Turn what the user names (directories, files, globs, manifests) into objects.

Every object a run is given must end up in exactly one of dicom_metadata and ingest_errors.
A run's listing is a set of :class:`ListingTask` (one per source the user typed, one per
manifest): the launcher only makes the tasks and checks, cheaply, that local sources exist;
the pipeline's workers expand each task (``expand_task``) and de-duplicate by URL, so the
launcher's memory does not grow with the number of objects. ``expand_sources`` does the same
in one process, for tools and tests.
"""

from __future__ import annotations

import errno
import glob
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dicomwarehouse.errors import SourceError
from dicomwarehouse.io.refs import ObjectRef

if TYPE_CHECKING:
    from dicomwarehouse.sources.listing import Lister

__all__ = [
    "ListingTask",
    "check_sources",
    "expand_sources",
    "expand_task",
    "listing_tasks",
    "local_entry_objects",
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
    except ValueError:  # an embedded NUL: a path no file system takes
        return _listing_failure(absolute, "BadPath", "not a file system path")
    except OSError as exc:
        if os.path.islink(absolute):
            looping = exc.errno == errno.ELOOP
            return _listing_failure(
                absolute,
                "SymlinkLoop" if looping else "BrokenSymlink",
                "symbolic link loops" if looping else "symbolic link to nothing",
            )
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return _listing_failure(absolute, "NotFound", "no such file")
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


def _is_glob(source: str) -> bool:
    return any(char in source for char in _GLOB_CHARS)


def _glob_matches(pattern: str) -> list[str]:
    return sorted(glob.glob(pattern, recursive=True))


def _local_objects(paths: Iterable[str]) -> Iterator[ObjectRef]:
    """Objects of local paths: the files of a folder, or the path itself."""
    for path in paths:
        if os.path.isdir(path):
            yield from _walk_directory(path)
        else:
            yield _local_ref(path)


def _expand_one(source: str) -> Iterator[ObjectRef]:
    """Objects of one source the user typed; what names nothing is a usage error."""
    source = source.removeprefix("file://")
    if "://" in source:
        raise SourceError(
            f"unsupported source {source!r}: local paths, gs:// and s3:// are supported"
        )
    if _is_glob(source):
        paths = _glob_matches(source)
        if not paths:
            raise SourceError(f"no file matches {source!r}")
    elif os.path.exists(source):
        paths = [source]
    else:
        raise SourceError(f"no such file or directory: {source!r}")
    yield from _local_objects(paths)


def local_entry_objects(source: str) -> list[ObjectRef]:
    """Objects of a local path a manifest line names (a path, a ``file://`` URL, a folder or a
    glob; relative paths already resolved by the caller).

    Never a usage error: the manifest's other lines still count. A missing file, or a folder
    or glob with no file, is one ``ListingFailure`` row, as a bucket URL naming nothing is.
    """
    path = source.removeprefix("file://")
    if "://" in path:
        message = "unsupported scheme: local paths, gs:// and s3:// are supported"
        return [_listing_failure(source, "BadURL", message)]
    if not _is_glob(path) and not os.path.isdir(path):
        return [_local_ref(path)]
    refs = list(_local_objects(_glob_matches(path) if _is_glob(path) else [path]))
    if not refs:
        return [_listing_failure(os.path.abspath(path), "NoObjects", "no file matches")]
    return refs


@dataclass(frozen=True)
class ListingTask:
    """One element of a run's listing: a source the user typed, or a manifest.

    ``order`` ranks the tasks as the user named them (sources, then manifests): when two
    tasks name the same URL, the object of the first one is kept, as in ``expand_sources``.
    """

    order: int
    location: str
    manifest: bool = False


def listing_tasks(sources: Iterable[str], manifests: Iterable[str] = ()) -> list[ListingTask]:
    """The run's listing tasks, in the order the user named them."""
    named = [(source, False) for source in sources] + [(m, True) for m in manifests]
    return [
        ListingTask(order, location, manifest) for order, (location, manifest) in enumerate(named)
    ]


def check_sources(sources: Iterable[str], manifests: Iterable[str] = ()) -> None:
    """Usage errors the launcher can see without listing: a bad scheme, a missing path, a glob
    that matches nothing, local sources that name no file at all, a missing local manifest
    (one line, before any job). Only the first file of each local source is looked for.

    Bucket sources are checked by the workers that list them.
    """
    from dicomwarehouse.io.urls import is_bucket_url

    sources, manifests = list(sources), list(manifests)
    named_any = bool(manifests)
    for source in sources:
        if is_bucket_url(source) or next(iter(_expand_one(source)), None) is not None:
            named_any = True
    if not named_any:
        raise SourceError("the sources name no files")
    for manifest in manifests:
        if not is_bucket_url(manifest) and not os.path.isfile(manifest):
            raise SourceError(f"manifest not found: {manifest}")


def expand_task(task: ListingTask, lister: Lister) -> Iterator[ObjectRef]:
    """The objects of one listing task, in order (a URL may repeat; callers de-duplicate)."""
    from dicomwarehouse.io.urls import is_bucket_url

    if task.manifest:
        yield from lister.expand_manifest(task.location)
    elif is_bucket_url(task.location):
        yield from lister.expand_url(task.location)
    else:
        yield from _expand_one(task.location)


def expand_sources(
    sources: Iterable[str], manifests: Iterable[str] = (), *, lister: Lister | None = None
) -> list[ObjectRef]:
    """All objects named by the sources and manifests, in order, each URL once.

    gs:// and s3:// sources, and manifests of every format (see ``manifests``), go through
    ``lister`` (``listing.Lister``), which also counts the listing requests.
    """
    from dicomwarehouse.sources.listing import Lister

    lister = lister or Lister()
    seen: dict[str, ObjectRef] = {}
    for task in listing_tasks(sources, manifests):
        for ref in expand_task(task, lister):
            seen.setdefault(ref.url, ref)
    return list(seen.values())
