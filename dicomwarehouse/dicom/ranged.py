"""Header-only reads of objects in buckets: a seekable file made of ranged requests.

``RangedObject`` is the raw layer under the parser's ``read.CountingReader``: the first read
fetches one block (``first_block`` bytes); pydicom's later reads that fall outside the bytes
fetched so far each fetch one more range starting where pydicom reads, at least as long as
everything fetched before (so a header of P bytes costs at most about 2 x P bytes and
log2(P / first block) requests); values pydicom seeks over (longer than the skip size) are
never fetched. Parsing stops before Pixel Data, so pixel bytes are never fetched either,
except those that share the last block with the end of the header; what follows Pixel Data
is fetched by ``trailing`` through ``RangedObject.prefetch``, without the pixels.

A deflated object is the exception: its offsets are in the inflated stream, so it is read
whole, within a size budget.

``Prefetcher`` keeps up to ``requests_in_flight`` objects being opened (their first block in
flight) on a thread pool while the extract worker parses the ones already fetched: reads are
I/O bound, parsing is CPU bound, and one worker then does both at once.
"""

from __future__ import annotations

import io
import logging
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset

from dicomwarehouse.dicom.pydicom_boundary import raw_elements
from dicomwarehouse.dicom.read import HeaderRead
from dicomwarehouse.errors import IngestError
from dicomwarehouse.io.buckets import Fetched, StorageOptions, fetch_range
from dicomwarehouse.io.refs import ListingFailure, ObjectRef
from dicomwarehouse.io.urls import is_bucket_url
from dicomwarehouse.tables.vr import BINARY_VRS

__all__ = [
    "FileRangeSource",
    "OpenedObject",
    "Prefetcher",
    "RangeSource",
    "RangedObject",
    "load_deferred_values",
    "open_file_ranged",
    "open_object",
]

logger = logging.getLogger(__name__)

#: ``source(start, stop, generation, etag)``: bytes [start, stop) of one object, one request.
RangeSource = Callable[[int, "int | None", "str | None", "str | None"], Fetched]

_DEFLATED_UID = b"1.2.840.10008.1.2.1.99"
#: The file meta group (where the transfer syntax is) of real files is well within this.
_FILE_META_WINDOW = 8192
_UNDEFINED_LENGTH = 0xFFFFFFFF
#: First request after a skipped value: what follows is usually a few elements.
_AFTER_SKIP_BLOCK = 4096
#: What the parser's buffered reader (``read.CountingReader``) asks for to refill its buffer.
_BUFFER_REFILL = 8192
#: Binary VRs whose bytes no table keeps; UN is left out (it may hold text of a known tag).
_SKIPPABLE_VRS = frozenset(BINARY_VRS) - {"UN"}


class FileRangeSource:
    """Ranged reads of a local file, counted like requests: the benchmark's local "bucket"."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(
        self, start: int, stop: int | None, generation: str | None, etag: str | None
    ) -> Fetched:
        with open(self.path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            handle.seek(start)
            data = handle.read(-1 if stop is None else max(0, stop - start))
        return Fetched(data, size)


class RangedObject(io.RawIOBase):
    """A read-only, seekable raw file whose bytes come from ranged requests, fetched lazily.

    Bytes fetched are kept (a header is small), so pydicom's rewinds cost nothing. A failed
    request is recorded in ``failure`` (an ``IngestError`` for the object's ingest_errors row)
    and raised to the parser as ``OSError``; every later read fails the same way.
    """

    def __init__(
        self,
        ref: ObjectRef,
        source: RangeSource,
        *,
        first_block: int,
        whole_object_budget: int,
    ) -> None:
        super().__init__()
        self.ref = ref
        self._source = source
        self.first_block = max(1, first_block)
        self.whole_object_budget = whole_object_budget
        self._segments: list[tuple[int, bytes]] = []
        self._pos = 0
        #: object size: from the listing, else from the first response
        self.object_size: int | None = ref.size
        self.requests = 0
        self.bytes_fetched = 0
        self.failure: IngestError | None = None
        self.read_whole = False
        self._learned: dict[str, str | int] = {}

    # --- io.RawIOBase ---------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._pos + offset
        else:
            if self.object_size is None:
                raise OSError("object size unknown: cannot seek from the end")
            position = self.object_size + offset
        if position < 0:
            raise OSError("negative seek position")
        self._pos = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        """Up to ``len(buffer)`` bytes from one fetched block (short at a block's end)."""
        if self.failure is not None:
            raise OSError(self.failure.message)
        wanted = len(buffer)
        if wanted == 0 or (self.object_size is not None and self._pos >= self.object_size):
            return 0
        segment = self._segment_at(self._pos)
        if segment is None:
            try:
                size = self._request_size(self._pos)
                # a buffer refill asks for the reader's whole buffer: fetch what the policy
                # says and return a short read; a longer read is one value: fetch all of it
                if wanted > _BUFFER_REFILL:
                    size = max(size, wanted)
                self._fetch(self._pos, self._pos + size)
            except IngestError as error:
                self.failure = error
                raise OSError(error.message) from None
            segment = self._segment_at(self._pos)
            if segment is None:
                return 0  # end of the object
        start, data = segment
        offset = self._pos - start
        count = min(wanted, len(data) - offset)
        buffer[:count] = data[offset : offset + count]
        self._pos += count
        return count

    # --- fetching -------------------------------------------------------------------------

    def open(self) -> RangedObject:
        """Fetch the first block (or the whole object when it is deflated).

        Raises ``IngestError`` when the store refuses the object (missing, forbidden,
        replaced since listing): the object's ingest_errors row, with no parse attempted.
        """
        self._fetch(0, self.first_block)
        head = self._segments[0][1][:_FILE_META_WINDOW] if self._segments else b""
        if _DEFLATED_UID in head:
            self.fetch_whole()
        return self

    def fetch_whole(self) -> None:
        """Fetch everything not fetched yet after the first block, in one request."""
        self.read_whole = True
        have = len(self._segments[0][1]) if self._segments else 0
        size = self.object_size
        if size is not None and size > self.whole_object_budget:
            raise IngestError(
                "read",
                "ObjectTooLarge",
                f"deflated transfer syntax needs the whole object: {size} bytes is over the "
                f"budget of {self.whole_object_budget}",
                self.bytes_fetched,
            )
        if size is None or have < size:
            self._fetch(have, size if size is not None else self.whole_object_budget + 1)

    def prefetch(self, start: int, stop: int) -> None:
        """Fetch [start, stop) in one request (less what is held), for a read known ahead:
        the elements after Pixel Data (``trailing``). A failure is recorded like a read's."""
        if self.failure is not None:
            raise OSError(self.failure.message)
        held = self._segment_at(start)
        while held is not None:  # the end of the header's last block is often there already
            start = held[0] + len(held[1])
            held = self._segment_at(start)
        try:
            self._fetch(start, stop)
        except IngestError as error:
            self.failure = error
            raise OSError(error.message) from None

    def _request_size(self, position: int) -> int:
        """How much to fetch at ``position``: double a run of bytes being read on, start small
        after a skip. A run of R needed bytes then costs at most about 2 x R fetched bytes
        and log2(R) requests; the bytes right after a skipped value are usually a few
        elements and the Pixel Data tag.
        """
        for start, data in self._segments:
            if start + len(data) == position:
                return max(self.first_block, len(data))
        return min(self.first_block, _AFTER_SKIP_BLOCK)

    def _segment_at(self, position: int) -> tuple[int, bytes] | None:
        for start, data in self._segments:
            if start <= position < start + len(data):
                return start, data
        return None

    def _fetch(self, start: int, stop: int) -> None:
        """One request for [start, stop), clipped to the object and to bytes already held."""
        if self.object_size is not None:
            stop = min(stop, self.object_size)
        for other, _ in self._segments:
            if start < other < stop:
                stop = other
        if stop <= start:
            return
        generation = self._learned.get("generation", self.ref.generation)
        etag = self._learned.get("etag", self.ref.etag)
        try:
            fetched = self._source(start, stop, generation, etag)  # type: ignore[arg-type]
        except IngestError as error:
            error.bytes_read = self.bytes_fetched
            raise
        finally:
            self.requests += 1
        self._check_unchanged(fetched)
        data = fetched.data[: stop - start]
        if fetched.total_size is not None:
            self.object_size = fetched.total_size
        elif len(data) < stop - start:
            self.object_size = start + len(data)
        if data:
            self._add_segment(start, data)
            self.bytes_fetched += len(data)
        for name in ("generation", "etag", "md5", "crc32c"):
            value = getattr(fetched, name)
            if value and name not in self._learned:
                self._learned[name] = value
        if self.object_size is not None:
            self._learned.setdefault("size", self.object_size)

    def _add_segment(self, start: int, data: bytes) -> None:
        """Keep fetched bytes as sorted runs, merging a run with the one it continues."""
        for index, (other, held) in enumerate(self._segments):
            if other + len(held) == start:
                self._segments[index] = (other, held + data)
                break
        else:
            self._segments.append((start, data))
            self._segments.sort(key=lambda segment: segment[0])

    def _check_unchanged(self, fetched: Fetched) -> None:
        """The object read must be the one listed: same size, same generation when known."""
        listed_size = self.ref.size
        changed = (
            listed_size is not None
            and fetched.total_size is not None
            and fetched.total_size != listed_size
        )
        known = self._learned.get("generation", self.ref.generation)
        changed = changed or bool(known and fetched.generation and fetched.generation != known)
        if changed:
            raise IngestError(
                "read",
                "ObjectChanged",
                "object replaced since it was listed (size or generation differs)",
                self.bytes_fetched,
            )

    def completed_ref(self) -> ObjectRef:
        """The ref with what the responses told and the listing did not (no extra request)."""
        fields = {
            name: self._learned[name]
            for name in ("size", "generation", "etag", "md5", "crc32c")
            if getattr(self.ref, name) is None and name in self._learned
        }
        return replace(self.ref, **fields) if fields else self.ref  # type: ignore[arg-type]


@dataclass
class OpenedObject:
    """An object ready to parse: its (completed) ref and a seekable binary file."""

    ref: ObjectRef
    raw: BinaryIO
    ranged: RangedObject | None = None

    def __enter__(self) -> OpenedObject:
        return self

    def __exit__(self, *exc: object) -> None:
        self.raw.close()

    @property
    def requests(self) -> int:
        return self.ranged.requests if self.ranged is not None else 0

    def read_defer_size(self, defer_size: int, options: StorageOptions | None) -> int:
        """The parser's defer size: smaller for ranged reads, so large values are skipped."""
        if self.ranged is None or options is None:
            return defer_size
        return min(defer_size, options.skip_size)

    def failure(self) -> IngestError | None:
        """The failed request of this object, if any (it outranks what the parser made of it)."""
        return self.ranged.failure if self.ranged is not None else None


def _skippable(element: RawDataElement) -> bool:
    vr = element.VR
    if vr is None:  # implicit VR: the dictionary's VR for public tags; private may be text
        if element.tag >> 16 & 1:
            return False
        try:
            vr = dictionary_VR(element.tag)
        except KeyError:
            return False
    return all(part in _SKIPPABLE_VRS for part in str(vr).split(" or "))


def load_deferred_values(header: HeaderRead, limit: int) -> None:
    """Fetch the top-level text values a ranged read skipped, up to ``limit`` bytes each.

    A ranged read skips every value longer than the skip size, so that private blobs, icons
    and LUTs are never fetched; the text values among them are needed for their columns and
    are fetched here, each at most once (sequences are fetched by the flattener). Binary
    values stay unread: dicom_elements keeps their tag, VR and length, never their bytes.
    """
    deferred: list[tuple[int, dict[Any, Any], Any, RawDataElement]] = []
    datasets = [header.dataset]
    while datasets:
        elements = raw_elements(datasets.pop())
        for tag, element in elements.items():
            if isinstance(element, RawDataElement):
                if (
                    element.value is None
                    and element.length
                    and element.length != _UNDEFINED_LENGTH
                    and element.length <= limit
                    and element.VR != "SQ"
                    and not _skippable(element)
                ):
                    deferred.append((element.value_tell, elements, tag, element))
            elif element.VR == "SQ" and isinstance(element.value, list):
                datasets.extend(item for item in element.value if isinstance(item, Dataset))
    for offset, elements, tag, element in sorted(deferred, key=lambda item: item[0]):
        elements[tag] = element._replace(value=header.read_range(offset, element.length))


def _open_regular_file(path: str) -> BinaryIO:
    """Open a local file for reading, refusing what is not a regular file.

    The listing already turns special files into error rows; this holds for paths that
    changed since (a file replaced by a FIFO): opening without blocking, then checking what
    was opened, can never wait for a writer.
    """
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise IngestError("read", "NotARegularFile", "not a regular file: never read")
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def open_object(ref: ObjectRef, options: StorageOptions | None = None) -> OpenedObject:
    """Open one object for parsing; raises ``IngestError`` (stage ``read``) when it cannot be.

    Local paths are plain files; gs:// and s3:// objects are ``RangedObject`` s whose first
    block is fetched here.
    """
    if isinstance(ref, ListingFailure):
        raise ref.error()
    if not is_bucket_url(ref.url):
        try:
            return OpenedObject(ref, _open_regular_file(ref.url))
        except OSError as exc:
            raise IngestError(
                "read", type(exc).__name__, exc.strerror or type(exc).__name__
            ) from exc
    options = options or StorageOptions()
    url = ref.url

    def source(start: int, stop: int | None, generation: str | None, etag: str | None):
        return fetch_range(url, start, stop, options, generation=generation, etag=etag)

    ranged = RangedObject(
        ref,
        source,
        first_block=options.first_block,
        whole_object_budget=options.whole_object_budget,
    )
    ranged.open()
    return OpenedObject(ranged.completed_ref(), ranged, ranged)


def open_file_ranged(ref: ObjectRef, options: StorageOptions | None = None) -> OpenedObject:
    """A local file read as if it were in a bucket (``FileRangeSource``): for measurements."""
    options = options or StorageOptions()
    ranged = RangedObject(
        ref,
        FileRangeSource(ref.url),
        first_block=options.first_block,
        whole_object_budget=options.whole_object_budget,
    )
    ranged.open()
    return OpenedObject(ranged.completed_ref(), ranged, ranged)


class Prefetcher:
    """Open objects ahead of the parser, at most ``requests_in_flight`` at a time.

    ``push`` takes the next object and gives back, in input order, the objects whose opening
    is due (once the window is full); ``drain`` gives back the rest. Local files are opened by
    the caller: there is no latency to hide.
    """

    def __init__(self, options: StorageOptions | None) -> None:
        self.options = options or StorageOptions()
        self.window = max(1, self.options.requests_in_flight)
        self._pool: ThreadPoolExecutor | None = None
        self._pending: deque[tuple[ObjectRef, Future[OpenedObject] | None]] = deque()

    def _submit(self, ref: ObjectRef) -> Future[OpenedObject] | None:
        if not is_bucket_url(ref.url):
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.window, thread_name_prefix="dicomwarehouse-read")
        return self._pool.submit(open_object, ref, self.options)

    def _pop(self) -> tuple[ObjectRef, OpenedObject | IngestError | None]:
        ref, future = self._pending.popleft()
        if future is None:
            return ref, None
        try:
            return ref, future.result()
        except IngestError as error:
            return ref, error
        except Exception as exc:  # a bug or an unexpected library error: still one row
            logger.debug("open failed for %s", ref.url, exc_info=True)
            return ref, IngestError("read", type(exc).__name__, "object could not be opened")

    def push(self, ref: ObjectRef) -> Iterator[tuple[ObjectRef, OpenedObject | IngestError | None]]:
        self._pending.append((ref, self._submit(ref)))
        while len(self._pending) > self.window:
            yield self._pop()

    def drain(self) -> Iterator[tuple[ObjectRef, OpenedObject | IngestError | None]]:
        while self._pending:
            yield self._pop()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
