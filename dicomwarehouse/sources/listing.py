"""Bucket URLs, globs and manifests into the run's objects, listing stores as needed.

The object list of a run is made once, up front (see ``sources``). Here a bucket URL or a
manifest entry becomes its objects: one object URL is taken as it is (no request: the read
finds out whether it exists), a prefix or a glob is listed (one request per 1,000 objects,
with size, generation, ETag and checksums, which then need no request per object), and
series lines of big manifests are listed in parallel. A manifest line naming a local file,
folder or glob (a cohort downloaded with s5cmd) is expanded the same way, from the file system
(``expand.local_entry_objects``): its columns reach its files as a bucket line's reach its
objects.

What cannot be listed from a manifest (an unreadable line, a series prefix that is empty or
forbidden, a local file that is missing) becomes a ``ListingFailure``: an object of the run
whose ingest_errors row (stage ``list``) says why, so every line of a manifest is accounted for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from dicomwarehouse.errors import IngestError, SourceError
from dicomwarehouse.io.buckets import StorageOptions, fetch_range, glob_regex, list_prefix
from dicomwarehouse.io.refs import ListingFailure, ObjectRef
from dicomwarehouse.io.urls import BucketURL, is_bucket_url, parse_bucket_url
from dicomwarehouse.sources.expand import local_entry_objects
from dicomwarehouse.sources.manifests import ManifestEntry, ManifestError, parse_manifest

__all__ = ["Lister"]

_GLOB_CHARS = "*?["


class Lister:
    """Lists bucket sources and reads manifests; counts the requests it makes."""

    def __init__(self, options: StorageOptions | None = None) -> None:
        self.options = options or StorageOptions()
        self.requests = 0
        self._lock = threading.Lock()

    def _count(self, requests: int) -> None:
        with self._lock:
            self.requests += requests

    # --- bucket URLs ----------------------------------------------------------------------

    def _list(self, prefix: BucketURL) -> Iterator[ObjectRef]:
        for refs, requests in list_prefix(prefix, self.options):
            self._count(requests)
            yield from refs

    def _match(self, url: BucketURL, star_crosses_slash: bool) -> list[ObjectRef]:
        """Objects of a URL: a glob, a prefix ending in ``/``, or an object (or folder) name."""
        key = url.key
        glob_at = min((key.find(c) for c in _GLOB_CHARS if c in key), default=-1)
        if glob_at >= 0:
            regex = glob_regex(key, star_crosses_slash=star_crosses_slash)
            prefix = BucketURL(url.scheme, url.bucket, key[:glob_at])
            return [
                ref for ref in self._list(prefix) if regex.fullmatch(parse_bucket_url(ref.url).key)
            ]
        if key == "" or key.endswith("/"):
            return list(self._list(url))
        folder = key + "/"
        return [
            ref
            for ref in self._list(url)
            if (name := parse_bucket_url(ref.url).key) == key or name.startswith(folder)
        ]

    def expand_url(self, url: str) -> list[ObjectRef]:
        """Objects of a bucket URL the user typed; nothing found is a usage error."""
        parsed = parse_bucket_url(url)
        try:
            refs = self._match(parsed, star_crosses_slash=False)
        except IngestError as error:
            raise SourceError(f"cannot list {url}: {error.message}") from None
        if not refs:
            raise SourceError(f"no object matches {url!r}")
        return refs

    def _expand_entry(self, entry: ManifestEntry) -> list[ObjectRef]:
        if entry.error is not None:
            return [ListingFailure(entry.url, error_type="UnreadableLine", message=entry.error)]
        if not is_bucket_url(entry.url):
            return _local_entry(entry)
        fields = dict(entry.fields)
        if entry.pattern is None:
            size = fields.get("size")
            return [
                ObjectRef(
                    entry.url,
                    int(size) if size and size.isdigit() else None,
                    entry.extras,
                    generation=fields.get("generation"),
                    etag=fields.get("etag"),
                    md5=fields.get("md5"),
                    crc32c=fields.get("crc32c"),
                )
            ]
        try:
            refs = self._match(
                parse_bucket_url(entry.url), star_crosses_slash=entry.pattern == "s5cmd"
            )
        except IngestError as error:
            return [ListingFailure(entry.url, error_type=error.error_type, message=error.message)]
        except SourceError as error:
            return [ListingFailure(entry.url, error_type="BadURL", message=str(error))]
        if not refs:
            return [ListingFailure(entry.url, error_type="NoObjects", message="no object matches")]
        return _with_extras(refs, entry.extras)

    # --- manifests ------------------------------------------------------------------------

    def read_bytes(self, location: str) -> bytes:
        """A whole manifest (or inventory file): a local path or a bucket object."""
        if is_bucket_url(location):
            try:
                fetched = fetch_range(location, 0, None, self.options)
            except IngestError as error:
                raise ManifestError(f"cannot read manifest {location}: {error.message}") from None
            self._count(1)
            return fetched.data
        path = Path(location)
        if not path.is_file():
            raise SourceError(f"manifest not found: {location}")
        return path.read_bytes()

    def _entries(self, location: str) -> Iterator[ManifestEntry]:
        return parse_manifest(
            self.read_bytes(location),
            location,
            manifest_format=self.options.manifest_format,
            s5cmd_endpoint_url=self.options.s5cmd_endpoint_url,
            fetch=self.read_bytes,
        )

    def extra_columns(self, location: str) -> list[str]:
        """The extra columns a manifest's entries give their objects (collection_id, ...).

        The launcher needs them before the pipeline lists (they are columns of the run's
        dicom_metadata); the entries are read one at a time and nothing is listed.
        """
        names: dict[str, None] = {}
        for entry in self._entries(location):
            names.update(dict.fromkeys(name for name, _ in entry.extras))
        return list(names)

    def expand_manifest(self, location: str) -> Iterator[ObjectRef]:
        """Objects of a manifest in order, each with its line's columns.

        Relative local paths are relative to a local manifest's folder (to the working
        directory for a manifest in a bucket). Series, glob and folder entries are listed on
        a thread pool (``requests_in_flight`` at once), in the manifest's order.
        """
        folder = None if is_bucket_url(location) else Path(location).parent
        entries = (_resolved(entry, folder) for entry in self._entries(location))
        workers = max(1, self.options.requests_in_flight)
        with ThreadPoolExecutor(workers, thread_name_prefix="dicomwarehouse-list") as pool:
            for expanded in pool.map(self._expand_entry, entries):
                yield from expanded


def _resolved(entry: ManifestEntry, folder: Path | None) -> ManifestEntry:
    """The entry with a relative local path made relative to the manifest's folder."""
    relative = "://" not in entry.url and not os.path.isabs(entry.url)
    if entry.error is not None or folder is None or not relative:
        return entry
    return replace(entry, url=str(folder / entry.url))


def _with_extras(refs: list[ObjectRef], extras: tuple[tuple[str, str], ...]) -> list[ObjectRef]:
    """The objects a folder, prefix or glob entry names, each with the entry's columns."""
    if not extras:
        return refs
    return [ref if isinstance(ref, ListingFailure) else replace(ref, extras=extras) for ref in refs]


def _local_entry(entry: ManifestEntry) -> list[ObjectRef]:
    """The objects of a manifest line naming a local file, folder or glob, with its columns.

    A file's size and generation (modification time, which the ledger compares) come from
    the file system, which is at hand and describes this copy; of the manifest's metadata
    only md5 and crc32c, which describe the bytes rather than a store's version of them, are
    kept, unless the manifest's size says the file is not the object it describes. A folder
    or glob gives each of its files the line's extra columns, as a bucket prefix does.
    """
    refs = local_entry_objects(entry.url)
    ref = refs[0]
    named_file = entry.pattern is None and len(refs) == 1 and not isinstance(ref, ListingFailure)
    if not named_file or os.path.isdir(entry.url.removeprefix("file://")):
        return _with_extras(refs, entry.extras)
    fields = dict(entry.fields)
    size = fields.get("size")
    if size and size.isdigit() and int(size) != ref.size:
        return [replace(ref, extras=entry.extras)]
    return [replace(ref, extras=entry.extras, md5=fields.get("md5"), crc32c=fields.get("crc32c"))]
