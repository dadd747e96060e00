"""Header-only reads (``dicom.ranged``): the requests and bytes a given access pattern costs.

``RangedObject`` runs here over ``FileRangeSource`` (a local file read by ranges) wrapped to
record every request, so each rule of the read policy is checked as the exact list of byte
ranges asked for, without a bucket: the first block, doubling along a run of bytes, a small
block after a skip, nothing for bytes already held, one request for a long read, clipping to
the object and to held bytes, failures, and deflated objects read whole within a budget.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from dicom_samples import DeflatedExplicitVRLittleEndian, base_dataset, dicom_bytes

from dicomwarehouse.dicom.extract import extract_object, new_run
from dicomwarehouse.dicom.ranged import FileRangeSource, RangedObject, open_file_ranged
from dicomwarehouse.errors import IngestError
from dicomwarehouse.io.buckets import Fetched, StorageOptions
from dicomwarehouse.io.refs import ObjectRef

SIZE = 100_000
BLOCK = 1000


class RecordingSource:
    """``FileRangeSource`` that records each request's [start, stop) and can fail on demand."""

    def __init__(self, path: Path, fail_from: int | None = None) -> None:
        self.source = FileRangeSource(str(path))
        self.requests: list[tuple[int, int | None]] = []
        self.fail_from = fail_from  # the request index from which every request fails

    def __call__(
        self, start: int, stop: int | None, generation: str | None, etag: str | None
    ) -> Fetched:
        self.requests.append((start, stop))
        if self.fail_from is not None and len(self.requests) > self.fail_from:
            raise IngestError("read", "NotFound", "no such object or bucket (HTTP 404)")
        return self.source(start, stop, generation, etag)


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    """SIZE bytes whose value at each offset is known (and holds no deflate UID)."""
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(index % 251 for index in range(SIZE)))
    return path


def expected(start: int, count: int) -> bytes:
    return bytes(index % 251 for index in range(start, start + count))


def ranged(path: Path, source: RecordingSource, *, size: int | None = SIZE, **kwargs: int):
    options = {"first_block": BLOCK, "whole_object_budget": 10 * SIZE, **kwargs}
    return RangedObject(ObjectRef(str(path), size), source, **options).open()


def read_at(raw: RangedObject, position: int, count: int) -> bytes:
    """What a parser does: seek, then read until it has ``count`` bytes (short reads allowed)."""
    raw.seek(position)
    data = b""
    while len(data) < count:
        chunk = raw.read(count - len(data))
        if not chunk:
            break
        data += chunk
    return data


def test_open_fetches_the_first_block_only(blob: Path) -> None:
    source = RecordingSource(blob)
    raw = ranged(blob, source)
    assert source.requests == [(0, BLOCK)]
    assert (raw.requests, raw.bytes_fetched, raw.read_whole) == (1, BLOCK, False)


def test_reading_on_doubles_each_request(blob: Path) -> None:
    """A run of R bytes read in order costs about log2(R / block) requests and under 2 x R."""
    source = RecordingSource(blob)
    raw = ranged(blob, source)
    assert read_at(raw, 0, 5000) == expected(0, 5000)
    assert source.requests == [(0, 1000), (1000, 2000), (2000, 4000), (4000, 8000)]
    assert raw.bytes_fetched == 8000 < 2 * 5000


def test_bytes_already_held_cost_no_request(blob: Path) -> None:
    source = RecordingSource(blob)
    raw = ranged(blob, source)
    read_at(raw, 0, 1500)
    held = list(source.requests)
    assert read_at(raw, 10, 100) == expected(10, 100)  # a rewind, as pydicom does
    assert read_at(raw, 1200, 700) == expected(1200, 700)
    assert source.requests == held


def test_after_a_skip_the_first_request_is_small(blob: Path) -> None:
    source = RecordingSource(blob)
    raw = ranged(blob, source, first_block=8192)
    assert read_at(raw, 50_000, 100) == expected(50_000, 100)
    # a skipped value is followed by a few elements: 4 KiB, not a whole first block
    assert source.requests == [(0, 8192), (50_000, 54_096)]


def test_a_long_read_is_one_request(blob: Path) -> None:
    """A read longer than the parser's buffer refill is one value: fetched whole, at once."""
    source = RecordingSource(blob)
    raw = ranged(blob, source)
    raw.seek(30_000)
    buffer = bytearray(20_000)
    assert raw.readinto(buffer) == 20_000
    assert bytes(buffer) == expected(30_000, 20_000)
    assert source.requests[1:] == [(30_000, 50_000)]


def test_requests_stop_at_held_bytes_and_at_the_end(blob: Path) -> None:
    source = RecordingSource(blob)
    raw = ranged(blob, source)
    read_at(raw, 1500, 10)  # holds [0, 1000) and [1500, 2500)
    read_at(raw, 1000, 600)  # the gap only
    read_at(raw, 99_500, 1000)  # past the end: clipped to the object
    assert source.requests == [(0, 1000), (1500, 2500), (1000, 1500), (99_500, 100_000)]
    assert raw.read(10) == b""  # at the end: no request
    assert len(source.requests) == 4
    assert raw.bytes_fetched == 1000 + 1000 + 500 + 500


def test_size_comes_from_the_response_when_the_listing_has_none(blob: Path) -> None:
    raw = ranged(blob, RecordingSource(blob), size=None)
    assert raw.object_size == SIZE
    assert raw.completed_ref().size == SIZE
    assert raw.seek(-10, io.SEEK_END) == SIZE - 10


def test_seeks_that_cannot_be_served_fail() -> None:
    raw = RangedObject(
        ObjectRef("gs://b/x"), RecordingSource(Path("/dev/null")), first_block=10,
        whole_object_budget=10,
    )  # fmt: skip
    with pytest.raises(OSError, match="cannot seek from the end"):
        raw.seek(-1, io.SEEK_END)  # never opened: size unknown
    with pytest.raises(OSError, match="negative"):
        raw.seek(-1)


def test_an_object_replaced_since_listing_fails_on_open(blob: Path) -> None:
    with pytest.raises(IngestError) as failure:
        ranged(blob, RecordingSource(blob), size=SIZE - 1)
    assert (failure.value.stage, failure.value.error_type) == ("read", "ObjectChanged")


def test_a_failed_request_fails_every_later_read(blob: Path) -> None:
    source = RecordingSource(blob, fail_from=1)
    raw = ranged(blob, source)
    with pytest.raises(OSError, match="HTTP 404"):
        read_at(raw, 5000, 10)
    assert raw.failure is not None
    assert (raw.failure.error_type, raw.failure.bytes_read) == ("NotFound", BLOCK)
    with pytest.raises(OSError):
        read_at(raw, 0, 10)  # even bytes already held: the object is failed
    assert raw.requests == 2 == len(source.requests)  # the failed request counts


def test_a_deflated_object_is_read_whole_within_its_budget(tmp_path: Path) -> None:
    path = tmp_path / "deflated.dcm"
    text = "".join(hashlib.sha256(str(i).encode()).hexdigest() for i in range(150))
    data = dicom_bytes(base_dataset(ImageComments=text), syntax=DeflatedExplicitVRLittleEndian)
    path.write_bytes(data)
    assert len(data) > 5000  # hex digests hardly deflate
    source = RecordingSource(path)
    raw = ranged(path, source, size=len(data), first_block=512)  # holds the meta group
    assert raw.read_whole
    assert source.requests == [(0, 512), (512, len(data))]
    assert raw.bytes_fetched == len(data)
    with pytest.raises(IngestError) as failure:
        ranged(path, RecordingSource(path), size=len(data), whole_object_budget=len(data) - 1)
    assert failure.value.error_type == "ObjectTooLarge"


def test_a_real_header_costs_one_request_and_skips_blobs_and_pixels(tmp_path: Path) -> None:
    """The whole stack (pydicom's parser over RangedObject): a small header in front of a
    large private blob and large pixel data costs the first block and one small request
    after the skipped blob; neither the blob nor the pixels are fetched."""
    ds = base_dataset(PatientName="Doe^Jane", Rows=256, Columns=256, BitsAllocated=16)
    ds.add_new(0x00290010, "LO", "ACME 1.0")
    ds.add_new(0x00291001, "OB", b"\x01" * 200_000)  # a private blob in the header
    ds.add_new(0x00291002, "LO", "after the blob")
    ds.PixelData = b"\x00" * (256 * 256 * 2)
    ds["PixelData"].VR = "OW"
    path = tmp_path / "big.dcm"
    path.write_bytes(dicom_bytes(ds))
    size = path.stat().st_size
    options = StorageOptions()
    ref = ObjectRef(str(path), size)
    opened = open_file_ranged(ref, options)
    extracted = extract_object(ref, new_run(), storage=options, opened=opened)
    assert extracted.metadata is not None, extracted.error
    assert extracted.metadata["PatientName"]["Alphabetic"]["FamilyName"] == "Doe"
    assert extracted.requests == 2
    fetched = opened.ranged.bytes_fetched
    assert fetched <= options.first_block + 4096
    assert size > 300_000 and fetched < size / 25
