"""Read the header of one DICOM object: everything before Pixel Data, nothing after.

Real archives hold files without preamble, truncated files, wrong transfer syntaxes and
sequences nested deeper than pydicom's recursion allows. A read here either returns whatever
part of the header could be parsed (with the problems recorded) or raises ``IngestError`` for
an object with nothing usable, which the pipeline turns into an ``ingest_errors`` row.
"""

from __future__ import annotations

import io
import logging
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import BinaryIO

from pydicom import dcmread, filereader
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_preamble
from pydicom.uid import UID

from dicomwarehouse.dicom.budgets import (
    BudgetExceeded,
    BudgetMeter,
    ReadBudget,
    current_meter,
    metering,
)
from dicomwarehouse.dicom.pydicom_boundary import raw_elements, read_file_meta
from dicomwarehouse.dicom.recovery import LOGGER_NAME, recovering
from dicomwarehouse.errors import IngestError

__all__ = [
    "DEFAULT_DEFER_SIZE",
    "HEADER_TRUNCATED_PROBLEM",
    "RAW_DATA_SET_PROBLEM",
    "CountingReader",
    "HeaderRead",
    "budget_problem",
    "collect_pydicom_problems",
    "read_header",
    "unique",
]

logger = logging.getLogger(__name__)

#: Values longer than this are skipped (seeked over), never loaded: their tag, VR and length
#: still reach dicom_elements. Large values before Pixel Data are private blobs, icons and LUTs.
DEFAULT_DEFER_SIZE = 256 * 1024

_PIXEL_DATA_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})


@dataclass
class HeaderRead:
    """A parsed header, the reader it came from, and reasons to record on the row.

    The reader stays usable while the object is open: a sequence longer than the defer size
    is read from it on demand (``read_range``), so those bytes are counted too.
    """

    dataset: Dataset
    reader: CountingReader
    problems: list[str] = field(default_factory=list)
    #: where the parse stopped: the offset of Pixel Data when it stopped there
    stopped_at: int | None = None

    @property
    def bytes_read(self) -> int:
        return self.reader.bytes_read

    def read_range(self, offset: int, length: int) -> bytes:
        """Bytes of a value pydicom deferred (skipped) during the header read."""
        self.reader.seek(offset)
        return self.reader.read(length)


class _CountingRaw(io.RawIOBase):
    """The unbuffered layer under the parser's buffer: counts each byte fetched once."""

    def __init__(self, raw: BinaryIO, meter: BudgetMeter | None = None) -> None:
        super().__init__()
        self._raw = raw
        self._meter = meter
        self.ranges: list[list[int]] = []
        #: offset at which a read came back short: the end of the object
        self.end: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._raw.tell()
        if self._meter is not None:  # refused before it is made: a 4 GiB length costs nothing
            self._meter.charge_bytes(len(buffer), start)
        data = self._raw.read(len(buffer))
        count = len(data)
        if self._meter is not None:
            self._meter.record_bytes(count)
        buffer[:count] = data
        if count < len(buffer) and self._at_end(start + count):
            self.end = start + count
        if count:
            last = self.ranges[-1] if self.ranges else None
            if last is not None and last[0] <= start <= last[1]:
                last[1] = max(last[1], start + count)
            else:
                self.ranges.append([start, start + count])
        return count

    def _at_end(self, offset: int) -> bool:
        """A short read is the end of the object, unless the raw file knows its size (a
        ranged reader returns short reads at the end of each block it fetched)."""
        size = getattr(self._raw, "object_size", None)
        return size is None or offset >= size

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()


class CountingReader(io.BufferedReader):
    """A buffered reader (C speed for pydicom's many small reads) that counts bytes fetched.

    Counting happens per buffer fill, each byte once, so re-reads after pydicom rewinds and
    values it seeks over cost nothing: the count is what a ranged reader over object storage
    fetches with blocks of ``buffer_size``.
    """

    def __init__(self, raw: BinaryIO, buffer_size: int = 8192) -> None:
        self._counting = _CountingRaw(raw, current_meter())
        self._buffer_size = buffer_size
        super().__init__(self._counting, buffer_size)
        self._label = getattr(raw, "name", "<object>")

    def read(self, size: int | None = -1, /) -> bytes:
        """Refuse a read past the header bytes budget before its buffer is allocated.

        ``io.BufferedReader`` allocates all of ``size`` before the raw layer is asked for a
        byte: without this a length field of 4 GiB would take 4 GiB of address space (or fail
        with MemoryError on a smaller machine) before the raw layer refused it. Up to
        ``buffer_size`` of it may be buffered already, so only the rest is charged here.
        """
        meter = self._counting._meter
        if meter is not None and size is not None and size > self._buffer_size:
            meter.charge_bytes(size - self._buffer_size, self.tell())
        return super().read(size)

    @property
    def bytes_read(self) -> int:
        fetched = getattr(self._counting._raw, "bytes_fetched", None)
        if fetched is not None:  # a ranged reader: what it fetched, whole blocks included
            return fetched
        total = 0
        end = -1
        for start, stop in sorted(self._counting.ranges):
            if stop <= end:
                continue
            total += stop - max(start, end)
            end = stop
        return total

    @property
    def end(self) -> int | None:
        """Size of the object, once a read has reached its end."""
        return self._counting.end

    def meter_exceeded(self) -> BudgetExceeded | None:
        """The budget this object's reads and parse ran out of, if any."""
        meter = self._counting._meter
        return meter.exceeded if meter is not None else None

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._label


class _ProblemCollector(logging.Handler):
    """Collects pydicom's read warnings per thread, so they land on the row that caused them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._local = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        problems = getattr(self._local, "problems", None)
        if problems is not None:
            problems.append(record.getMessage()[:300])

    @contextmanager
    def collect(self) -> Iterator[list[str]]:
        problems: list[str] = []
        outer = getattr(self._local, "problems", None)
        self._local.problems = problems
        try:
            yield problems
        finally:
            # nested blocks: the outer one gets what the inner one collected, too
            self._local.problems = outer
            if outer is not None:
                outer.extend(problems)


_collector = _ProblemCollector()


def collect_pydicom_problems() -> AbstractContextManager[list[str]]:
    """Within the block, pydicom's warnings on this thread are appended to the yielded list."""
    return _collector.collect()


def unique(problems: list[str]) -> list[str]:
    """Problems in first-seen order, each once (pydicom repeats a warning per element)."""
    return list(dict.fromkeys(problems))


_pydicom_logger = logging.getLogger("pydicom")
_pydicom_logger.addHandler(_collector)
_recovery_logger = logging.getLogger(LOGGER_NAME)  # recoveries: anomalies of the row too
_recovery_logger.addHandler(_collector)
_recovery_logger.propagate = False
# Recorded on the object's row, under the data's own access control, and not passed on to the
# process log: a Dataflow worker's goes to Cloud Logging, which more people read than the data
# (`dicomwarehouse -v` passes them on, for debugging).
_pydicom_logger.propagate = False
# pydicom both logs and warns; the log record is collected above, the warning is noise.
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")


#: What a row read as a raw data set (no preamble, no file meta group) records.
RAW_DATA_SET_PROBLEM = "no preamble or file meta header: read as a raw data set"
#: What a row records when bytes too few for an element header follow its last element.
HEADER_TRUNCATED_PROBLEM = "object ends inside a data element: header truncated"


def _stop_at_pixel_data(tag: int, vr: str | None, length: int) -> bool:
    return tag in _PIXEL_DATA_TAGS


#: What the error row of an object that is neither a DICOM file nor a raw data set says.
NOT_A_DATA_SET = "no DICM prefix and the content does not parse as a DICOM data set"

#: Groups a raw data set's first element may have: file meta and identifying attributes (what
#: ``_looks_like_raw_dataset`` accepts), and the command set pydicom reads before either.
_RAW_DATA_SET_GROUPS = frozenset({0x0000, 0x0002, 0x0008})


def _may_start_a_raw_data_set(first_bytes: bytes) -> bool:
    """False if an object without the DICM prefix cannot be a raw data set, from its first
    two bytes: the group of its first element, little or big endian, is not one
    ``_looks_like_raw_dataset`` would accept.

    A forced parse of such bytes ends as NotDicom anyway, after reading elements out of noise
    (several times the cost of a whole small header, and a length field of a few GB where the
    noise says so); a text file, an image or an archive is refused here instead.
    """
    if len(first_bytes) < 2:
        return False
    little, big = struct.unpack("<H", first_bytes)[0], struct.unpack(">H", first_bytes)[0]
    return little in _RAW_DATA_SET_GROUPS or big in _RAW_DATA_SET_GROUPS


def _looks_like_raw_dataset(dataset: Dataset) -> bool:
    """True if a preamble-less parse found DICOM elements rather than noise.

    Any byte string parses as *some* elements when forced, so accept only a data set whose
    first element is a known file meta or identifying (group 0008) attribute.
    """
    tags = list(dataset.keys())
    meta_tags = list(dataset.file_meta.keys()) if dataset.file_meta is not None else []
    first = (meta_tags or tags or [None])[0]
    if first is None or first >> 16 not in (0x0002, 0x0008):
        return False
    return dictionary_has_tag(first) or first & 0xFFFF == 0  # group length: retired, valid


def _salvage(reader: CountingReader, defer_size: int, reason: str) -> HeaderRead:
    """Element-by-element parse that keeps everything before the first unreadable element."""
    reader.seek(0)
    problems = [f"header read stopped early: {reason}"]
    dataset = Dataset()
    try:
        read_preamble(reader, True)
        file_meta = read_file_meta(reader)
    except Exception as exc:  # nothing before the data set is readable
        raise IngestError(
            "parse", type(exc).__name__, _safe_message(exc, reader), reader.bytes_read
        ) from exc
    dataset.file_meta = file_meta
    syntax = UID(file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2"))
    implicit = syntax.is_implicit_VR if syntax.is_transfer_syntax else True
    little = syntax.is_little_endian if syntax.is_transfer_syntax else True
    try:
        for element in filereader.data_element_generator(
            reader, implicit, little, stop_when=_stop_at_pixel_data, defer_size=defer_size
        ):
            dataset[element.tag] = element
    except (Exception, RecursionError) as exc:
        problems.append(f"element parse failed after {len(dataset)} elements: {type(exc).__name__}")
    dataset.set_original_encoding(implicit, little)
    if not dataset and not dataset.file_meta:
        raise IngestError("parse", "NoElements", "no data element could be read", reader.bytes_read)
    return HeaderRead(dataset, reader, problems, stopped_at=reader.tell())


def _ends_inside_an_element(dataset: Dataset, reader: CountingReader) -> bool:
    """True if the parse ran to the end of the object and bytes were left over.

    pydicom stops quietly when fewer than 8 bytes remain for the next element header, so a
    file cut inside a header would otherwise look complete.
    """
    end = reader.end
    if end is None or reader.tell() != end:
        return False  # stopped before Pixel Data, or never reached the end
    syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None) if dataset.file_meta else None
    if syntax is not None and syntax.is_transfer_syntax and syntax.is_deflated:
        return False  # offsets are in the inflated stream, not the object
    elements = raw_elements(dataset)
    last = next(reversed(elements.values()), None) if elements else None
    if not isinstance(last, RawDataElement) or last.length == 0xFFFFFFFF:
        return False
    return last.value_tell + last.length < end


def _safe_message(exc: BaseException, reader: CountingReader) -> str:
    """What went wrong, from structural facts only: the exception type and where it happened.

    Never ``str(exc)``: a parser's exception text may quote the bytes it choked on (pydicom's
    length errors embed the raw value), and those bytes can be a patient's name.
    """
    try:
        offset = reader.tell()
    except (OSError, ValueError):
        return type(exc).__name__
    return f"{type(exc).__name__} near byte {offset}"


def read_header(
    raw: BinaryIO, *, defer_size: int = DEFAULT_DEFER_SIZE, budget: ReadBudget | None = None
) -> HeaderRead:
    """Parse the header of the object open in ``raw``, stopping before Pixel Data.

    Files without a preamble or file meta group are read as raw data sets when they look like
    DICOM. Raises ``IngestError`` when nothing DICOM can be read. The parse is held to
    ``budget`` (see ``budgets``), or to the budget of the object being extracted on this
    thread: a header cut short by it keeps what came before, with the reason.
    """
    with metering(budget) as meter, recovering():
        return _read_header(raw, defer_size, meter)


def _object_size(reader: CountingReader) -> int | None:
    try:
        position = reader.tell()
        size = reader.seek(0, io.SEEK_END)
        reader.seek(position)
    except (OSError, ValueError):
        return None
    return size


def _runs_past_the_end(dataset: Dataset, reader: CountingReader) -> bool:
    """True if a top-level element of an explicit VR data set claims bytes past the end of
    the object: the sign of a VR field that is not a VR read as an implicit VR length."""
    implicit, _little = dataset.original_encoding
    if implicit is not False:
        return False
    elements = raw_elements(dataset)
    last = next(reversed(elements.values()), None) if elements else None  # it swallows the rest
    if not isinstance(last, RawDataElement) or last.length == 0xFFFFFFFF:
        return False
    size = _object_size(reader)
    return size is not None and last.value_tell + last.length > size


def _reread_with_recovery(
    dataset: Dataset,
    reader: CountingReader,
    defer_size: int,
    meter: BudgetMeter,
    problems: list[str],
) -> Dataset:
    """Read the header again with the recovery rules for VR fields that are not VRs; keep
    the read that found more elements."""
    position = reader.tell()
    meter.restart()  # the second pass gets a budget of its own
    reader.seek(0)
    try:
        with recovering(vr_fields=True):
            again = dcmread(reader, stop_before_pixels=True, defer_size=defer_size, force=True)
    except (Exception, RecursionError):
        again = None
    if again is None or len(raw_elements(again)) <= len(raw_elements(dataset)):
        reader.seek(position)
        return dataset
    problems.append("an element runs past the end of the object: read again with recovery rules")
    return again


def _read_header(raw: BinaryIO, defer_size: int, meter: BudgetMeter) -> HeaderRead:
    reader = CountingReader(raw)
    with _collector.collect() as problems:
        try:
            dataset = dcmread(reader, stop_before_pixels=True, defer_size=defer_size)
        except InvalidDicomError:
            reader.seek(0)
            if not _may_start_a_raw_data_set(reader.peek(2)[:2]):
                raise IngestError("parse", "NotDicom", NOT_A_DATA_SET, reader.bytes_read) from None
            try:
                dataset = dcmread(
                    reader, stop_before_pixels=True, defer_size=defer_size, force=True
                )
            except (Exception, RecursionError) as exc:
                message = _safe_message(exc, reader)
                if meter.exceeded is not None:
                    message = f"no DICM prefix; {meter.exceeded.message}"
                raise IngestError("parse", "NotDicom", message, reader.bytes_read) from exc
            if not _looks_like_raw_dataset(dataset):
                raise IngestError("parse", "NotDicom", NOT_A_DATA_SET, reader.bytes_read) from None
            problems.append(RAW_DATA_SET_PROBLEM)
        except (Exception, RecursionError) as exc:
            reason = type(exc).__name__
            if meter.exceeded is not None:
                reason = type(meter.exceeded).__name__
                meter.restart()  # the salvage pass gets a budget of its own
            salvaged = _salvage(reader, defer_size, reason)
            salvaged.problems[:0] = problems
            salvaged.problems = unique(salvaged.problems)
            return _within_budget(salvaged, meter)
        _read_past_stray_delimiters(dataset, reader, defer_size, problems)
        if _runs_past_the_end(dataset, reader):
            dataset = _reread_with_recovery(dataset, reader, defer_size, meter, problems)
    if _ends_inside_an_element(dataset, reader):
        problems.append(HEADER_TRUNCATED_PROBLEM)
    header = HeaderRead(dataset, reader, unique(problems), stopped_at=reader.tell())
    return _within_budget(header, meter)


#: (FFFE,E00D) Item Delimitation Item, as little and as big endian bytes
_ITEM_DELIMITATION = {True: b"\xfe\xff\x0d\xe0", False: b"\xff\xfe\xe0\x0d"}


def _read_past_stray_delimiters(
    dataset: Dataset, reader: CountingReader, defer_size: int, problems: list[str]
) -> None:
    """Go on reading the top-level data set after a stray Item Delimitation tag.

    pydicom ends any data set at (FFFE,E00D), which only closes sequence items: at the top
    level a stray one would drop every element after it without a word. Each one met is an
    anomaly; the elements after it are read as the salvage reads them (bounded by the
    object's budget, and by a few delimiters).
    """
    implicit, little = dataset.original_encoding
    syntax = getattr(dataset.file_meta, "TransferSyntaxUID", None) if dataset.file_meta else None
    deflated = syntax is not None and syntax.is_transfer_syntax and syntax.is_deflated
    if implicit is None or little is None or deflated:
        # a deflated data set was parsed from an inflated copy, not from the reader; a UID
        # pydicom does not know as a transfer syntax (JPEG XL, say) is read as it was
        return
    for _ in range(16):
        position = reader.tell()
        if position < 8:
            return
        reader.seek(position - 8)
        stray = reader.read(4) == _ITEM_DELIMITATION[little]
        reader.seek(position)
        if not stray or not reader.peek(1):
            return
        problems.append(f"item delimitation tag at the top level (byte {position - 8}): skipped")
        try:
            for element in filereader.data_element_generator(
                reader, implicit, little, stop_when=_stop_at_pixel_data, defer_size=defer_size
            ):
                if element.tag not in raw_elements(dataset):
                    dataset[element.tag] = element
        except (Exception, RecursionError) as exc:
            problems.append(f"element parse failed after that tag: {type(exc).__name__}")
            return


def _within_budget(header: HeaderRead, meter: BudgetMeter) -> HeaderRead:
    """The header, noting a budget it ran out of; an error if nothing of a data set came first.

    Zeros or padding after a file meta group parse as group 0000 elements: a header that is
    only that (and the meta) is not a header, whatever the budget let through.
    """
    exceeded = meter.exceeded
    if exceeded is None:
        return header
    if not any(tag >> 16 not in (0x0000, 0xFFFE) for tag in raw_elements(header.dataset)):
        raise IngestError(
            "parse", type(exceeded).__name__, exceeded.message, header.bytes_read
        ) from None
    header.problems.append(budget_problem(exceeded))
    return header


def budget_problem(exceeded: BudgetExceeded) -> str:
    """The anomaly of a header cut short by a budget (its elements before are kept)."""
    return f"header read stopped by a budget ({type(exceeded).__name__}): {exceeded.message}"
