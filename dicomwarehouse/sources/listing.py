"""Bucket URLs, globs and manifests into the run's objects, listing stores as needed.

The object list of a run is made once, up front (see ``sources``). Here a bucket URL or a
manifest entry becomes its objects: one object URL is taken as it is (no request: the read
finds out whether it exists), a prefix or a glob is listed (one request per 1,000 objects,
with size, generation, ETag and checksums, which then need no request per object), and
series lines of big manifests are listed in parallel.

What cannot be listed from a manifest (an unreadable line, a series prefix that is empty or
forbidden) becomes a ``ListingFailure``: an object of the run whose ingest_errors row (stage
``list``) says why, so every line of a manifest is accounted for.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dicomwarehouse.errors import IngestError, SourceError
from dicomwarehouse.io.buckets import StorageOptions, fetch_range, glob_regex, list_prefix
from dicomwarehouse.io.refs import ListingFailure, ObjectRef
from dicomwarehouse.io.urls import BucketURL, is_bucket_url, parse_bucket_url
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

    def _expand_entry(self, entry: ManifestEntry) -> list[ObjectRef | str]:
        if entry.error is not None:
            return [ListingFailure(entry.url, error_type="UnreadableLine", message=entry.error)]
        if not is_bucket_url(entry.url):
            return [entry.url]  # a local path: sources expands it
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
        if entry.extras:
            refs = [
                ObjectRef(
                    ref.url,
                    ref.size,
                    entry.extras,
                    generation=ref.generation,
                    etag=ref.etag,
                    md5=ref.md5,
                    crc32c=ref.crc32c,
                )
                for ref in refs
            ]
        return list(refs)

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

    def expand_manifest(self, location: str) -> Iterator[ObjectRef | str]:
        """Objects of a manifest in order: refs, and local paths (relative to the manifest).

        Series and glob entries are listed on a thread pool (``requests_in_flight`` at once),
        in the manifest's order.
        """
        entries = self._entries(location)
        folder = None if is_bucket_url(location) else Path(location).parent
        workers = max(1, self.options.requests_in_flight)
        with ThreadPoolExecutor(workers, thread_name_prefix="dicomwarehouse-list") as pool:
            for expanded in pool.map(self._expand_entry, entries):
                for item in expanded:
                    relative = isinstance(item, str) and "://" not in item
                    if relative and folder is not None and not os.path.isabs(item):
                        item = str(folder / item)
                    yield item
