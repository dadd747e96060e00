"""Cohort export: the objects a query names, as an s5cmd file, a URL list or a table.

A cohort query returns rows naming objects by one of :data:`KEY_COLUMNS` (the first present
wins: ``source_url``, else ``SOPInstanceUID``, ``SeriesInstanceUID``, ``StudyInstanceUID``).
The export joins those keys back to the current ``dicom_metadata`` rows, so a query over the
``series`` view exports every object of each series it returns.

The SQL here is written once in the subset both engines read alike (``WITH``, ``IN``,
``STARTS_WITH``, ``SUBSTR``/``STRPOS``/``REVERSE``), so the same text runs on DuckDB and on
BigQuery; the engine is whatever runs it (``dicomwarehouse.api``).

Formats:

- ``urls``: one ``source_url`` a line (a ``--manifest`` of the ``urls`` format);
- ``s5cmd``: ``cp SRC .`` lines as IDC's portal writes them. A series whose objects are all
  the objects the warehouse knows under one bucket folder (nested folders included, as s5cmd's
  ``*`` crosses ``/``) is one ``cp s3://bucket/folder/* .`` line; every other object is a line
  of its own (``cp --raw`` when its key holds a wildcard character). Arguments are quoted in the
  shell's way where they need it (s5cmd splits its lines like a POSIX shell). ``gs://`` objects
  are written as ``s3://`` URLs for ``s5cmd --endpoint-url https://storage.googleapis.com``, as
  IDC does (a comment line at the top says so; ingest the file back with
  ``--s5cmd-endpoint-url https://storage.googleapis.com``). s5cmd copies only to or from a
  bucket, so local files are written as plain paths (a file of local files only is then a URL
  list); one file cannot mix local files with bucket objects, or S3 with GCS objects;
- ``csv`` / ``parquet``: a table of ``source_url``, the object's version columns
  (``source_size``, ``source_generation``, ``source_etag``, ``source_md5``,
  ``source_crc32c``) and the columns an ingest manifest gave the objects (``collection_id``, ...),
  which a ``--manifest`` reads back into the same columns.

An exported manifest ingests back into the same rows: it names the same objects, by the same
URLs, with the same manifest columns.
"""

from __future__ import annotations

import bisect
import csv
import io
import re
import shlex
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.urls import is_bucket_url
from dicomwarehouse.tables.schema import PROVENANCE_FIELDS, SOURCE_FIELDS

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "EXPORT_FORMATS",
    "KEY_COLUMNS",
    "ExportError",
    "ExportFormat",
    "check_format",
    "cohort_key",
    "cohort_sql",
    "folder_counts_sql",
    "manifest_columns",
    "render",
    "s5cmd_lines",
]

ExportFormat = Literal["urls", "s5cmd", "csv", "parquet"]
EXPORT_FORMATS: tuple[str, ...] = ("urls", "s5cmd", "csv", "parquet")

#: The columns by which a cohort query names objects, the most precise first.
KEY_COLUMNS = ("source_url", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")

#: Columns of every exported table: the object and the version that was read.
VERSION_COLUMNS = tuple(field.name for field in SOURCE_FIELDS)

GCS_ENDPOINT = "https://storage.googleapis.com"

# The object's folder: everything before the last '/' (the same in DuckDB and BigQuery).
_FOLDER = "SUBSTR(source_url, 1, LENGTH(source_url) - STRPOS(REVERSE(source_url), '/'))"
_WILDCARD = re.compile(r"[*?\[]")


class ExportError(UsageError):
    """A cohort that cannot be exported as asked; one line for the user."""


def check_format(export_format: str) -> None:
    """Refuse an unknown format before any query runs."""
    if export_format not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {export_format!r}: one of {EXPORT_FORMATS}")


def cohort_key(columns: Sequence[str]) -> str:
    """The column (as the query spells it) naming the cohort's objects."""
    by_lower = {column.lower(): column for column in columns}
    for key in KEY_COLUMNS:
        if key.lower() in by_lower:
            return by_lower[key.lower()]
    raise ExportError(
        "the query returns none of " + ", ".join(KEY_COLUMNS) + " (name the objects to export)"
    )


def manifest_columns(metadata_columns: Iterable[str]) -> list[str]:
    """The columns of dicom_metadata that ingest manifests gave (``collection_id``, ...).

    A manifest never names a column like a DICOM keyword, a provenance column or a private
    tag (``sources.manifests`` prefixes those with ``manifest_``), so every other column is one.
    """
    from pydicom.datadict import keyword_dict, repeater_has_keyword

    own = {field.name for field in PROVENANCE_FIELDS} | {"OtherElements"}
    return [
        column
        for column in metadata_columns
        if column not in own
        and column not in keyword_dict
        and not repeater_has_keyword(column)
        and not column.startswith("Tag_")
    ]


def cohort_sql(query: str, key: str, extra_columns: Sequence[str]) -> str:
    """The current dicom_metadata rows of the objects ``query`` names, one per object.

    ``query`` is in the dialect of the engine that runs the result (it is only wrapped).
    """
    body = query.strip().rstrip(";").strip()
    columns = [
        *VERSION_COLUMNS,
        *extra_columns,
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
    ]
    canonical = next(name for name in KEY_COLUMNS if name.lower() == key.lower())
    selected = ", ".join(f"m.{column}" for column in dict.fromkeys(columns))
    return (
        f"WITH cohort AS (\n{body}\n)\n"
        f"SELECT {selected}\nFROM dicom_metadata AS m\n"
        f"WHERE m.{canonical} IN (SELECT cohort.{key} FROM cohort)\n"
        "ORDER BY m.source_url"
    )


def folder_counts_sql() -> str:
    """How many objects the warehouse knows (read or failed) in each bucket folder."""
    known = (
        "SELECT source_url FROM dicom_metadata UNION DISTINCT SELECT source_url FROM ingest_errors"
    )
    return (
        f"SELECT {_FOLDER} AS folder, COUNT(*) AS objects FROM ({known}) AS known\n"
        "WHERE STARTS_WITH(source_url, 's3://') OR STARTS_WITH(source_url, 'gs://')\n"
        "GROUP BY folder"
    )


def _folder(url: str) -> str:
    return url.rsplit("/", 1)[0]


def _known_under(folder: str, folders: list[str], counts: list[int]) -> int:
    """Objects known in ``folder`` and the folders below it (``folders`` sorted).

    The folders below it sort between ``folder + "/"`` and ``folder + "0"`` ('0' follows '/').
    """
    index = bisect.bisect_left(folders, folder)
    exact = counts[index] if index < len(folders) and folders[index] == folder else 0
    start = bisect.bisect_left(folders, folder + "/")
    stop = bisect.bisect_left(folders, folder + "0")
    return exact + sum(counts[start:stop])


def _s5cmd_url(url: str) -> str:
    return "s3://" + url[len("gs://") :] if url.startswith("gs://") else url


def s5cmd_lines(rows: Sequence[tuple[str, str | None]], folder_counts: dict[str, int]) -> list[str]:
    """s5cmd lines for ``(source_url, SeriesInstanceUID)`` rows.

    ``folder_counts`` gives, per bucket folder, how many objects the warehouse knows there
    (``folder_counts_sql``): a series is one wildcard line when its objects are all of them.
    """
    schemes = {url.split("://", 1)[0] for url, _ in rows if is_bucket_url(url)}
    local = [url for url, _ in rows if not is_bucket_url(url)]
    if local and schemes:
        raise ExportError(
            "the cohort mixes local files and bucket objects, which one s5cmd file cannot "
            "copy (s5cmd copies to or from a bucket): export --format urls"
        )
    if len(schemes) > 1:
        raise ExportError(
            "the cohort mixes gs:// and s3:// objects, which need different s5cmd endpoints: "
            "export each with a query of its own"
        )
    if local:
        return list(local)
    folders = sorted(folder_counts)
    counts = [folder_counts[folder] for folder in folders]
    by_series: dict[str | None, list[str]] = defaultdict(list)
    for url, series in rows:
        by_series[series].append(url)
    lines: list[str] = []
    if "gs" in schemes:
        lines.append(f"# s5cmd --endpoint-url {GCS_ENDPOINT} run THIS_FILE (gs:// objects)")
    for series, urls in by_series.items():
        series_folders = {_folder(url) for url in urls}
        if series is not None and len(series_folders) == 1:
            (folder,) = series_folders
            if _known_under(folder, folders, counts) == len(urls):
                lines.append(f"cp {shlex.quote(_s5cmd_url(folder) + '/*')} .")
                continue
        for url in urls:
            raw = "--raw " if _WILDCARD.search(url) else ""
            lines.append(f"cp {raw}{shlex.quote(_s5cmd_url(url))} .")
    return lines


def render(
    table: pa.Table,
    export_format: str,
    folder_counts: dict[str, int],
    extra_columns: Sequence[str],
) -> bytes:
    """The exported file's content, from the rows of :func:`cohort_sql`."""
    check_format(export_format)
    urls = table.column("source_url").to_pylist()
    if export_format == "urls":
        return "".join(f"{url}\n" for url in urls).encode("utf-8")
    if export_format == "s5cmd":
        series = table.column("SeriesInstanceUID").to_pylist()
        lines = s5cmd_lines(list(zip(urls, series, strict=True)), folder_counts)
        return "".join(f"{line}\n" for line in lines).encode("utf-8")
    manifest = table.select([*VERSION_COLUMNS, *extra_columns])
    if export_format == "parquet":
        import pyarrow.parquet as pq

        sink = io.BytesIO()
        pq.write_table(manifest, sink)
        return sink.getvalue()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(manifest.column_names)
    for row in manifest.to_pylist():
        writer.writerow(["" if value is None else value for value in row.values()])
    return text.getvalue().encode("utf-8")
