"""Manifest formats: what a manifest names, as entries to list or read.

Formats are detected from the content (``--manifest-format`` overrides):

- ``urls``: one URL or path a line (``#`` comments and blank lines skipped);
- ``s5cmd``: ``cp SRC DST`` lines as the IDC portal writes them; a wildcard source is a series
  (every object under its prefix: s5cmd's ``*`` crosses ``/``). IDC publishes one file for
  both clouds: run against ``--endpoint-url https://storage.googleapis.com`` its ``s3://``
  URLs name GCS buckets, which ``StorageOptions.s5cmd_endpoint_url`` says here too;
- ``csv`` / ``tsv`` / ``parquet``: a table with a URL column; columns naming object metadata
  (size, generation, etag, md5, crc32c) fill the provenance columns, all other columns become
  extra STRING columns of dicom_metadata (collection_id, license, ...);
- ``s3-inventory``: an S3 Inventory ``manifest.json`` and its CSV (gzip) or Parquet files;
- ``gcs-inventory``: a Storage Insights inventory report shard (CSV or Parquet), or the
  report's ``manifest.json`` naming its shards.

A line or row that cannot be read becomes an entry with an ``error`` (one ingest_errors row,
stage ``list``), never a failed run.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
import re
import shlex
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from pydicom.datadict import keyword_dict

from dicomwarehouse.errors import UsageError
from dicomwarehouse.tables.required_columns import DICOM_ALL_COLUMNS, IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import PROVENANCE_FIELDS

__all__ = [
    "MANIFEST_FORMATS",
    "ManifestEntry",
    "ManifestError",
    "detect_format",
    "parse_manifest",
]

MANIFEST_FORMATS = ("urls", "s5cmd", "csv", "tsv", "parquet", "s3-inventory", "gcs-inventory")

#: Object metadata columns of tables and inventories, by lower-case name: ObjectRef field.
_METADATA_COLUMNS = {
    "size": "size",
    "source_size": "size",
    "object_size": "size",
    "generation": "generation",
    "source_generation": "generation",
    "versionid": "generation",
    "version_id": "generation",
    "etag": "etag",
    "e_tag": "etag",
    "source_etag": "etag",
    "md5": "md5",
    "md5hash": "md5",
    "md5_hash": "md5",
    "source_md5": "md5",
    "crc32c": "crc32c",
    "source_crc32c": "crc32c",
    "instance_size": "size",  # IDC's name for the object's size (dicom_all, idc-index)
}
_URL_COLUMN_NAMES = ("url", "source_url", "uri", "gcs_url", "aws_url", "s3_url", "path")
_FIXED_COLUMNS = (
    frozenset(field.name for field in PROVENANCE_FIELDS)
    | {"OtherElements"}
    | set(DICOM_ALL_COLUMNS)  # names the dicom_all view adds
)
#: The columns every run has, by lower-case name: a manifest's ``CRDC_Series_UUID`` fills
#: crdc_series_uuid rather than adding a column that differs from it only in case (which
#: BigQuery and DuckDB, whose names ignore case, could not hold beside it).
_IDC_COLUMNS = {name.lower(): name for name in IDC_MANIFEST_COLUMNS}
_GCS_HOSTS = ("storage.googleapis.com", "storage.cloud.google.com")


class ManifestError(UsageError):
    """A manifest that cannot be read at all (as opposed to one bad line in it)."""


@dataclass(frozen=True)
class ManifestEntry:
    """One thing a manifest names.

    ``pattern`` is None for one object, ``"glob"`` for a URL with wildcards, ``"s5cmd"`` for
    an s5cmd source (wildcards cross ``/``). ``error`` marks an unreadable line: ``url`` then
    says where it is (``manifest#line=N``).
    """

    url: str
    pattern: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    extras: tuple[tuple[str, str], ...] = ()
    error: str | None = None


Fetch = Callable[[str], bytes]


def _decompress(data: bytes) -> bytes:
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def _first_line(text: str) -> str:
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            return stripped
    return ""


def detect_format(data: bytes) -> str:
    """The manifest format of ``data`` (gzip-compressed content is looked into)."""
    data = _decompress(data)
    if data[:4] == b"PAR1":
        import pyarrow.parquet as pq

        names = {name.lower() for name in pq.read_schema(io.BytesIO(data)).names}
        if {"bucket", "key"} <= names:
            return "s3-inventory"
        if {"bucket", "name"} <= names:
            return "gcs-inventory"
        return "parquet"
    text = data[:65536].decode("utf-8", errors="replace")
    if text.lstrip().startswith("{"):
        if '"fileFormat"' in text or '"files"' in text:
            return "s3-inventory"
        if "report_shards_file_names" in text:
            return "gcs-inventory"
    first = _first_line(text)
    words = first.split()
    if words and (words[0] == "cp" or (words[0] == "s5cmd" and "cp" in words)):
        return "s5cmd"
    separator = "\t" if "\t" in first else "," if "," in first else None
    if separator is not None:
        header = [cell.strip().strip('"').lower() for cell in first.split(separator)]
        if {"bucket", "name"} <= set(header):
            return "gcs-inventory"
        return "tsv" if separator == "\t" else "csv"
    return "urls"


def _column_name(name: str) -> str:
    """A manifest column as a dicom_metadata column: snake case, never a DICOM keyword, a
    provenance column or a column the dicom_all view adds (those get a ``manifest_`` prefix)."""
    cleaned = re.sub(r"[^0-9A-Za-z_]+", "_", name.strip()).strip("_") or "column"
    if cleaned.lower() in _IDC_COLUMNS:
        return _IDC_COLUMNS[cleaned.lower()]
    if cleaned[0].isdigit():
        cleaned = f"c_{cleaned}"
    if cleaned in keyword_dict or cleaned in _FIXED_COLUMNS or cleaned.startswith("Tag_"):
        cleaned = f"manifest_{cleaned}"
    return cleaned


def _is_url_like(value: Any) -> bool:
    return isinstance(value, str) and "://" in value


def _url_column(names: list[str], first_row: dict[str, Any] | None) -> str | None:
    lowered = {name.lower(): name for name in names}
    for candidate in _URL_COLUMN_NAMES:
        if candidate in lowered:
            return lowered[candidate]
    for name in names:
        if name.lower().endswith("url") or name.lower().endswith("uri"):
            return name
    if first_row is not None:
        for name in names:
            if _is_url_like(first_row.get(name)):
                return name
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        if value != value:  # NaN: pandas' missing value
            return None
        if value.is_integer():
            return str(int(value))
    text = str(value).strip()
    return text or None


def _table_entries(
    rows: Iterable[dict[str, Any]], names: list[str], location: str, *, header_lines: int
) -> Iterator[ManifestEntry]:
    rows = iter(rows)
    first = next(rows, None)
    url_column = _url_column(names, first)
    if url_column is None:
        raise ManifestError(f"manifest {location}: no URL column (name one 'url')")
    extra_names = {
        name: _column_name(name)
        for name in names
        if name != url_column and name.lower() not in _METADATA_COLUMNS
    }
    if first is None:
        return
    for number, row in enumerate([first, *rows] if first else rows, start=1 + header_lines):
        url = _text(row.get(url_column))
        if url is None:
            yield ManifestEntry(f"{location}#line={number}", error="no URL in this row")
            continue
        fields = tuple(
            (_METADATA_COLUMNS[name.lower()], text)
            for name in names
            if name.lower() in _METADATA_COLUMNS and (text := _text(row.get(name))) is not None
        )
        extras = tuple(
            (column, text)
            for name, column in extra_names.items()
            if (text := _text(row.get(name))) is not None
        )
        pattern = "glob" if any(char in url for char in "*?[") else None
        yield ManifestEntry(url, pattern, fields, extras)


def _csv_entries(text: str, location: str, delimiter: str) -> Iterator[ManifestEntry]:
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    names = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = names
    yield from _table_entries(reader, names, location, header_lines=1)


def _parquet_rows(data: bytes) -> tuple[list[dict[str, Any]], list[str]]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    return table.to_pylist(), table.column_names


def _s5cmd_entries(text: str, location: str, endpoint: str | None) -> Iterator[ManifestEntry]:
    to_gcs = bool(endpoint) and urlsplit(endpoint).hostname in _GCS_HOSTS  # type: ignore[arg-type]
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            words = shlex.split(stripped)
            command = words.index("cp")
            flags = list(
                itertools.takewhile(lambda word: word.startswith("-"), words[command + 1 :])
            )
            source = words[command + 1 + len(flags)]
        except (ValueError, IndexError):
            yield ManifestEntry(f"{location}#line={number}", error="not an s5cmd 'cp SRC DST' line")
            continue
        if to_gcs and source.startswith("s3://"):
            source = "gs://" + source[len("s3://") :]
        # --raw: s5cmd takes the key literally, wildcard characters included
        wildcard = "--raw" not in flags and any(char in source for char in "*?[")
        pattern = "s5cmd" if wildcard else None
        yield ManifestEntry(source, pattern)


def _url_entries(data: bytes, location: str) -> Iterator[ManifestEntry]:
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            yield ManifestEntry(f"{location}#line={number}", error="line is not UTF-8 text")
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("cp "):  # an s5cmd line in a list of URLs
            yield from (
                _at_line(entry, location, number) for entry in _s5cmd_entries(line, location, None)
            )
            continue
        pattern = "glob" if any(char in line for char in "*?[") else None
        yield ManifestEntry(line, pattern)


def _at_line(entry: ManifestEntry, location: str, number: int) -> ManifestEntry:
    """An entry parsed from a single line, with the manifest's line number in its error URL."""
    if entry.error is None:
        return entry
    return ManifestEntry(f"{location}#line={number}", error=entry.error)


def _sibling(location: str, name: str) -> str:
    """``name`` in the folder (or bucket prefix) of ``location``."""
    folder = location.rsplit("/", 1)[0] if "/" in location else "."
    return f"{folder}/{name.rsplit('/', 1)[-1]}"


def _s3_inventory_rows(
    rows: Iterable[dict[str, Any]], csv_encoded: bool
) -> Iterator[ManifestEntry]:
    for row in rows:
        lowered = {str(name).lower(): value for name, value in row.items()}
        if str(lowered.get("isdeletemarker", lowered.get("is_delete_marker", ""))).lower() in (
            "true",
            "1",
        ):
            continue
        if str(lowered.get("islatest", lowered.get("is_latest", "true"))).lower() in (
            "false",
            "0",
        ):
            continue
        key = _text(lowered.get("key"))
        bucket = _text(lowered.get("bucket"))
        if not key or not bucket:
            continue
        if csv_encoded:
            key = unquote(key.replace("+", " "))
        fields = []
        for name, field in (("size", "size"), ("etag", "etag"), ("e_tag", "etag")):
            if (text := _text(lowered.get(name))) is not None:
                fields.append((field, text.strip('"')))
        version = _text(lowered.get("versionid", lowered.get("version_id")))
        if version and version != "null":
            fields.append(("generation", version))
        yield ManifestEntry(f"s3://{bucket}/{key}", None, tuple(dict(fields).items()))


def _s3_inventory(data: bytes, location: str, fetch: Fetch) -> Iterator[ManifestEntry]:
    data = _decompress(data)
    if data[:4] == b"PAR1":  # a data file given on its own
        rows, _ = _parquet_rows(data)
        yield from _s3_inventory_rows(rows, csv_encoded=False)
        return
    try:
        manifest = json.loads(data)
        file_format = str(manifest["fileFormat"]).lower()
        destination = str(manifest["destinationBucket"]).rsplit(":", 1)[-1]
        files = [item["key"] for item in manifest["files"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ManifestError(f"manifest {location}: not an S3 Inventory manifest.json") from exc
    if file_format not in ("csv", "parquet"):
        raise ManifestError(f"manifest {location}: S3 Inventory format {file_format} not read")
    schema = [name.strip() for name in str(manifest.get("fileSchema", "")).split(",")]
    for key in files:
        content = _decompress(fetch(f"s3://{destination}/{key}"))
        if file_format == "parquet":
            rows, _ = _parquet_rows(content)
            yield from _s3_inventory_rows(rows, csv_encoded=False)
        else:
            reader = csv.reader(io.StringIO(content.decode("utf-8")))
            yield from _s3_inventory_rows(
                (dict(zip(schema, row, strict=False)) for row in reader), csv_encoded=True
            )


def _gcs_inventory_rows(rows: Iterable[dict[str, Any]]) -> Iterator[ManifestEntry]:
    for row in rows:
        bucket, name = _text(row.get("bucket")), _text(row.get("name"))
        if not bucket or not name:
            continue
        fields = tuple(
            (_METADATA_COLUMNS[column.lower()], text)
            for column, value in row.items()
            if column.lower() in _METADATA_COLUMNS and (text := _text(value)) is not None
        )
        yield ManifestEntry(f"gs://{bucket}/{name}", None, fields)


def _gcs_inventory(data: bytes, location: str, fetch: Fetch) -> Iterator[ManifestEntry]:
    data = _decompress(data)
    if data.lstrip()[:1] == b"{":
        try:
            shards = json.loads(data)["report_shards_file_names"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ManifestError(f"manifest {location}: not an inventory report manifest") from exc
        for shard in shards:
            yield from _gcs_inventory(fetch(_sibling(location, shard)), location, fetch)
        return
    if data[:4] == b"PAR1":
        rows, _ = _parquet_rows(data)
        yield from _gcs_inventory_rows(rows)
        return
    text = data.decode("utf-8")
    delimiter = "\t" if "\t" in _first_line(text) else ","
    yield from _gcs_inventory_rows(csv.DictReader(io.StringIO(text), delimiter=delimiter))


def parse_manifest(
    data: bytes,
    location: str,
    *,
    manifest_format: str | None = None,
    s5cmd_endpoint_url: str | None = None,
    fetch: Fetch,
) -> Iterator[ManifestEntry]:
    """The entries of one manifest, in order; ``fetch(url)`` reads files it refers to."""
    kind = manifest_format or detect_format(data)
    if kind not in MANIFEST_FORMATS:
        raise ManifestError(
            f"unknown manifest format {kind!r}: one of {', '.join(MANIFEST_FORMATS)}"
        )
    if kind == "s3-inventory":
        yield from _s3_inventory(data, location, fetch)
    elif kind == "gcs-inventory":
        yield from _gcs_inventory(data, location, fetch)
    elif kind == "parquet":
        rows, names = _parquet_rows(_decompress(data))
        yield from _table_entries(rows, names, location, header_lines=0)
    elif kind in ("csv", "tsv"):
        text = _decompress(data).decode("utf-8-sig", errors="replace")
        yield from _csv_entries(text, location, "\t" if kind == "tsv" else ",")
    elif kind == "s5cmd":
        text = _decompress(data).decode("utf-8", errors="replace")
        yield from _s5cmd_entries(text, location, s5cmd_endpoint_url)
    else:
        yield from _url_entries(_decompress(data), location)
