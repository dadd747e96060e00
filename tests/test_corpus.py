"""Corpus tests: ingest whole folders of real DICOM files and check the warehouse.

Each corpus is ingested once (a module-scoped fixture; pydicom's files by the session's
``pydicom_warehouse``, which other modules read too); the same checks then run over
pydicom's bundled test files (fast) and over ../shared/corpus (``slow``, skipped when absent):

1. accounting: every file of the folder is in exactly one of dicom_metadata and ingest_errors;
2. dicom_elements has one row per data element of each file, counted by an independent pydicom
   walk (file meta plus ``Dataset.iterall()`` of the header, plus Pixel Data and the elements
   after it in pydicom's full read);
3. the top-level keyword columns of dicom_metadata hold the file's values, as read by pydicom and
   converted here, independently of the ingest's own decoding;
4. the series, studies and patients views have one row per key of dicom_metadata;
5. ingesting the same files again (the folder, or a sample of a large one) into the same
   warehouse doubles no row, and their current rows are the new run's.

Nothing here reuses the package's decoding: the expected values come from pydicom's own
conversion (``dcmread`` with its defaults) and from conversions written out in this file.
"""

from __future__ import annotations

import datetime as dt
import math
import multiprocessing
import os
import re
import shutil
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from ingested import IngestedFolder
from pydicom import dcmread
from pydicom.datadict import (
    DicomDictionary,
    dictionary_keyword,
    dictionary_VM,
    dictionary_VR,
    get_private_entry,
    private_dictionaries,
)
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dicomwarehouse.pipeline.run import IngestSummary, ingest
from dicomwarehouse.warehouse.duckdb_file import connect

# pydicom warns (as well as logs) about what it meets in odd files, during the ingest too
pytestmark = pytest.mark.filterwarnings(r"ignore::UserWarning:pydicom(\..*)?")

# --- the corpora, ingested once per module ----------------------------------------------------

CORPORA = [
    pytest.param("pydicom_files_dir", id="pydicom"),
    pytest.param("shared_corpus", id="shared", marks=pytest.mark.slow),
    pytest.param("extra_corpus", id="extra", marks=pytest.mark.slow),
]

#: VRs whose values are bytes: never a keyword column.
BINARY_VRS = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})
STRING_VRS = frozenset(
    {"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT", "DS", "IS"}
)
INTEGER_VRS = frozenset({"US", "SS", "UL", "SL", "AT", "SV", "UV"})
#: Repeating groups whose first group (only) has keyword columns (curves 50xx, overlays 60xx).
REPEATER_COLUMN_GROUPS = frozenset({0x5000, 0x6000})
#: How many mismatching files / values a failure message lists.
REPORT_LIMIT = 15


@dataclass
class PydicomFile:
    """What pydicom, on its own, makes of one file."""

    path: str
    forced: bool = False  # read only with force=True (no preamble / DICM prefix)
    error: str | None = None  # dcmread (or the walk over what it read) raised
    element_count: int = 0  # file meta + Dataset.iterall() + Pixel Data and what follows
    #: top-level keyword -> (tag, dictionary VR, expected column value or _UNPARSEABLE)
    top_level: dict[str, tuple[int, str, Any]] = field(default_factory=dict)


@dataclass
class IngestedCorpus:
    """One corpus folder, the warehouse ingested from it, and pydicom's view of its files."""

    name: str
    root: Path
    files: list[str]  # absolute paths of every file under root
    warehouse: Path
    summary: IngestSummary
    pydicom: dict[str, PydicomFile]


def _all_files(root: Path) -> list[str]:
    """Absolute paths of every regular file under root (the corpora hold no dot files)."""
    found = []
    for directory, _dirs, names in os.walk(root):
        found.extend(os.path.abspath(os.path.join(directory, name)) for name in names)
    return sorted(found)


@pytest.fixture(scope="module", params=CORPORA)
def corpus(request: pytest.FixtureRequest, tmp_path_factory) -> IngestedCorpus:
    root: Path = request.getfixturevalue(request.param)
    files = _all_files(root)
    if request.param == "pydicom_files_dir":  # the session's ingest of these (conftest.py)
        shared: IngestedFolder = request.getfixturevalue("pydicom_warehouse")
        warehouse, summary = shared.warehouse, shared.summary
        pydicom = _read_all_with_pydicom(files)
    else:
        warehouse = tmp_path_factory.mktemp(f"corpus-{request.param}") / "warehouse"
        # pydicom's reading of a large corpus takes as long as its ingest: another process
        # does it meanwhile (spawned: this one has Beam's threads, which a fork would copy)
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            reading = pool.submit(_read_all_with_pydicom, files)
            summary = ingest([str(root)], warehouse)
            pydicom = reading.result()
    return IngestedCorpus(
        name=request.param,
        root=root,
        files=files,
        warehouse=warehouse,
        summary=summary,
        pydicom=pydicom,
    )


@pytest.fixture
def con(corpus: IngestedCorpus) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(corpus.warehouse)
    connection.execute("SET TimeZone = 'UTC'")
    try:
        yield connection
    finally:
        connection.close()


# --- the independent pydicom walk -------------------------------------------------------------


class _Unparseable:
    """Expected value of a value this file's conversion cannot parse (the column must be NULL)."""

    def __repr__(self) -> str:
        return "<unparseable>"

    def __reduce__(self) -> str:
        return "_UNPARSEABLE"  # unpickled as this module's one instance: compared with ``is``


_UNPARSEABLE = _Unparseable()


def _dcmread(path: str) -> tuple[Dataset, bool]:
    """dcmread as a user would: without force, and with force only when it is not DICOM."""
    try:
        return dcmread(path, stop_before_pixels=True), False
    except InvalidDicomError:
        return dcmread(path, stop_before_pixels=True, force=True), True


def _count_from_pixel_data_on(path: str, header: Dataset, forced: bool) -> int:
    """Elements from Pixel Data on (itself included), in pydicom's full read: dicom_elements
    has them too, except in deflated objects, which are not read past their header."""
    syntax = _file_meta(header).get("TransferSyntaxUID")
    if syntax is not None and syntax.is_transfer_syntax and syntax.is_deflated:
        return 0
    try:
        full = dcmread(path, force=forced)
    except (Exception, RecursionError):
        return 0
    after = [full[tag] for tag in full.keys() if tag not in header]  # noqa: SIM118 - tags only
    count = len(after)
    for element in after:
        if element.VR == "SQ":
            count += sum(sum(1 for _ in item.iterall()) for item in element.value)
    return count


def _file_meta(dataset: Dataset) -> Dataset:
    meta = getattr(dataset, "file_meta", None)
    return meta if meta is not None else Dataset()


def _read_with_pydicom(path: str) -> PydicomFile:
    result = PydicomFile(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset, result.forced = _dcmread(path)
            meta = _file_meta(dataset)
            result.element_count = sum(1 for _ in meta.iterall()) + sum(
                1 for _ in dataset.iterall()
            )
            result.element_count += _count_from_pixel_data_on(path, dataset, result.forced)
            for element in [*meta, *dataset]:
                expected = _expected_column(element)
                if expected is not None:
                    result.top_level[expected[0]] = expected[1:]
        except (Exception, RecursionError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"[:200]
    return result


def _read_all_with_pydicom(paths: list[str]) -> dict[str, PydicomFile]:
    return {path: _read_with_pydicom(path) for path in paths}


def _tag_paths(dataset: Dataset, prefix: str = "") -> Iterator[str]:
    """tag_path of every element, sequences included, as dicom_elements spells it."""
    for element in dataset:
        tag_path = f"{prefix}{element.tag:08X}"
        yield tag_path
        if element.VR == "SQ":
            for index, item in enumerate(element.value):
                yield from _tag_paths(item, f"{tag_path}[{index}].")


def _pydicom_tag_paths(path: str, forced: bool) -> Counter[str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = dcmread(path, force=forced)
        return Counter([*_tag_paths(_file_meta(dataset)), *_tag_paths(dataset)])


# --- expected column values, converted here from pydicom's values ----------------------------


def _column_keyword(tag: int) -> str | None:
    """Keyword of a public dictionary tag, incl. the first group of curves and overlays."""
    if tag >> 16 & 1:
        return None
    if tag in DicomDictionary or (tag >> 16) in REPEATER_COLUMN_GROUPS:
        try:
            return dictionary_keyword(tag) or None
        except KeyError:
            return None
    return None


def _parse_date(text: str) -> dt.date:
    # YYYYMMDD, and the ACR-NEMA YYYY.MM.DD that DICOM readers still accept
    match = re.fullmatch(r"(\d{4})\.?(\d{2})\.?(\d{2})", text)
    if match is None:
        raise ValueError(text)
    return dt.date(int(match[1]), int(match[2]), int(match[3]))


def _fraction(digits: str | None) -> int:
    return int((digits or "").ljust(6, "0")[:6] or 0)


def _parse_time(text: str) -> dt.time:
    # HH[MM[SS[.F{1,6}]]], and the ACR-NEMA HH:MM:SS
    match = re.fullmatch(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?", text)
    if match is None:
        raise ValueError(text)
    hour, minute, second = int(match[1]), int(match[2] or 0), int(match[3] or 0)
    return dt.time(hour, minute, second, _fraction(match[4]))


def _parse_datetime(text: str) -> dt.datetime:
    # YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]; without an offset the value is taken as UTC
    match = re.fullmatch(
        r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?(?:([+-])(\d{2})(\d{2}))?",
        text,
    )
    if match is None:
        raise ValueError(text)
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    offset = dt.timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    zone = dt.timezone(-offset if sign == "-" else offset)
    local = dt.datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        int(second or 0),
        _fraction(fraction),
        tzinfo=zone,
    )
    return local.astimezone(dt.timezone.utc)


def _person_name(name: Any) -> dict[str, dict[str, str | None] | None]:
    """The PN struct: the three component groups, each split into its five components."""
    groups = list(name.components) if isinstance(name, PersonName) else str(name).split("=")
    groups += [""] * (3 - len(groups))
    struct: dict[str, dict[str, str | None] | None] = {}
    for group_name, group in zip(("Alphabetic", "Ideographic", "Phonetic"), groups, strict=False):
        if not group:
            struct[group_name] = None
            continue
        parts = group.split("^") + [""] * 5
        struct[group_name] = {
            component: parts[index] or None
            for index, component in enumerate(
                ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
            )
        }
    return struct


def _convert(vr: str, value: Any) -> Any:
    """One pydicom value as the column holds it (type from the dictionary VR)."""
    if vr in STRING_VRS:
        text = str(value)
        return text.strip(" \0") if vr in ("DS", "IS") else text.rstrip(" \0")
    if vr == "PN":
        return _person_name(value)
    if isinstance(value, bytes | bytearray):
        raise ValueError("bytes")
    if vr == "DA":
        return _parse_date(str(value).strip())
    if vr == "TM":
        return _parse_time(str(value).strip())
    if vr == "DT":
        return _parse_datetime(str(value).strip())
    if vr in ("FL", "FD"):
        return float(value)
    if vr in INTEGER_VRS:
        return int(value)
    raise AssertionError(f"unexpected VR {vr}")


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    text = value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)
    return text.strip(" \0") == ""


def _expected_column(element: Any) -> tuple[str, int, str, Any] | None:
    """(keyword, tag, dictionary VR, expected value) of a top-level element with a column.

    None for private, sequence, binary and non-dictionary elements. Empty values are NULL
    (scalar columns) or [] (array columns); trailing spaces (and, for DS and IS, leading ones)
    are padding, not value.
    """
    tag = int(element.tag)
    keyword = _column_keyword(tag)
    if keyword is None:
        return None
    vr = dictionary_VR(tag)
    options = set(vr.split(" or "))
    if options & (BINARY_VRS | {"SQ"}) or element.VR in BINARY_VRS or element.VR == "SQ":
        return None
    vr = "US" if options == {"US", "SS"} else vr  # an INT64 column either way
    repeated = dictionary_VM(tag) != "1"
    raw = element.value
    if isinstance(raw, bytes | bytearray):
        return None  # pydicom kept bytes: nothing to convert independently
    values = list(raw) if isinstance(raw, MultiValue | list | tuple) else [raw]
    if len(values) == 1 and _is_empty(values[0]):
        values = []
    try:
        if not values:
            expected: Any = [] if repeated else None
        elif repeated:
            expected = [_convert(vr, value) for value in values]
        elif len(values) > 1:
            expected = _UNPARSEABLE  # several values for a VM 1 attribute
        else:
            expected = _convert(vr, values[0])
            if expected == "":
                expected = None
    except (ValueError, TypeError, OverflowError):
        expected = _UNPARSEABLE
    return keyword, tag, vr, expected


def _same(vr: str, expected: Any, actual: Any) -> bool:
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(_same(vr, e, a) for e, a in zip(expected, actual, strict=True))
        )
    if expected is _UNPARSEABLE:
        return actual is None
    if isinstance(expected, float) and isinstance(actual, float):
        if math.isnan(expected) or math.isnan(actual):
            return math.isnan(expected) and math.isnan(actual)
        if vr == "FL":  # FL is float32: the column holds the same float32, as a float64
            return bool(np.float32(expected) == np.float32(actual))
    return expected == actual and type(expected) is type(actual)


# --- queries ---------------------------------------------------------------------------------


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _urls(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [url for (url,) in con.execute(f"SELECT source_url FROM {table}").fetchall()]


def _metadata_files(corpus: IngestedCorpus, con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """pydicom's view of the files that are in dicom_metadata and that pydicom could read."""
    in_metadata = set(_urls(con, "dicom_metadata"))
    return {
        path: read
        for path, read in corpus.pydicom.items()
        if read.error is None and path in in_metadata
    }


def _anomaly_tag_paths(con: duckdb.DuckDBPyConnection) -> dict[str, set[str]]:
    rows = con.execute(
        "SELECT source_url, a.tag_path FROM dicom_metadata, "
        "UNNEST(ingest_anomalies) AS t(a) WHERE a.tag_path IS NOT NULL"
    ).fetchall()
    found: dict[str, set[str]] = defaultdict(set)
    for url, tag_path in rows:
        found[url].add(tag_path)
    return found


# --- 1. accounting ---------------------------------------------------------------------------


def test_every_file_is_in_exactly_one_table(
    corpus: IngestedCorpus, con: duckdb.DuckDBPyConnection
) -> None:
    metadata = _urls(con, "dicom_metadata")
    errors = _urls(con, "ingest_errors")
    duplicates = {
        table: sorted(url for url, n in Counter(urls).items() if n > 1)
        for table, urls in (("dicom_metadata", metadata), ("ingest_errors", errors))
    }
    assert duplicates == {"dicom_metadata": [], "ingest_errors": []}
    files = set(corpus.files)
    assert sorted(set(metadata) & set(errors)) == [], "files in both tables"
    assert sorted(files - set(metadata) - set(errors)) == [], "files in neither table"
    assert sorted((set(metadata) | set(errors)) - files) == [], "rows for unknown files"
    assert corpus.summary.objects == len(files)
    assert corpus.summary.instances + corpus.summary.errors == len(files)


# --- 2. element counts -----------------------------------------------------------------------


def test_element_counts_match_pydicom(
    corpus: IngestedCorpus, con: duckdb.DuckDBPyConnection
) -> None:
    counts = dict(
        con.execute("SELECT source_url, count(*) FROM dicom_elements GROUP BY ALL").fetchall()
    )
    in_metadata = set(_urls(con, "dicom_metadata"))
    compared = {
        path: read
        for path, read in corpus.pydicom.items()
        if read.error is None and (not read.forced or path in in_metadata)
    }
    assert compared, "pydicom read none of the files"
    wrong = {
        path: (read.element_count, counts.get(path, 0))
        for path, read in compared.items()
        if counts.get(path, 0) - _rows_pydicom_cannot_parse(con, path) != read.element_count
    }
    report = []
    for path, (expected, actual) in sorted(wrong.items())[:REPORT_LIMIT]:
        ours = Counter(
            tag_path
            for (tag_path,) in con.execute(
                "SELECT tag_path FROM dicom_elements WHERE source_url = ?", [path]
            ).fetchall()
        )
        theirs = _pydicom_tag_paths(path, corpus.pydicom[path].forced)
        missing = sorted((theirs - ours).elements())
        extra = sorted((ours - theirs).elements())
        report.append(
            f"{os.path.relpath(path, corpus.root)}: pydicom {expected}, dicom_elements {actual}; "
            f"missing {len(missing)} {missing[:8]}, extra {len(extra)} {extra[:8]}"
        )
    assert not wrong, (
        f"{len(wrong)} of {len(compared)} files have the wrong number of dicom_elements rows:\n"
        + "\n".join(report)
    )


def _rows_pydicom_cannot_parse(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """Rows inside private sequences whose creator matches pydicom's private dictionary only
    ignoring case: we parse them (tests/test_private_and_recovery.py), pydicom leaves bytes."""
    folded = {creator.strip().casefold(): creator for creator in private_dictionaries}
    sequences = con.execute(
        "SELECT tag_path, tag, private_creator FROM dicom_elements "
        "WHERE source_url = ? AND vr = 'SQ' AND private_creator IS NOT NULL",
        [path],
    ).fetchall()
    unparsed = []
    for tag_path, tag, creator in sequences:
        known = folded.get(creator.strip().casefold())
        if creator in private_dictionaries or known is None:
            continue
        try:
            if get_private_entry(int(tag, 16), known)[0] == "SQ":
                unparsed.append(tag_path + "[")
        except KeyError:
            continue
    outermost = [p for p in unparsed if not any(p != o and p.startswith(o) for o in unparsed)]
    return sum(
        con.execute(
            "SELECT count(*) FROM dicom_elements WHERE source_url = ? AND starts_with(tag_path, ?)",
            [path, prefix],
        ).fetchone()[0]
        for prefix in outermost
    )


# --- 3. top-level values ---------------------------------------------------------------------


def test_top_level_columns_hold_the_file_values(
    corpus: IngestedCorpus, con: duckdb.DuckDBPyConnection
) -> None:
    files = _metadata_files(corpus, con)
    assert files, "no file of dicom_metadata is readable by pydicom"
    columns = {name for name, *_ in con.execute("DESCRIBE dicom_metadata").fetchall()}
    keywords = sorted({kw for read in files.values() for kw in read.top_level} & columns)
    rows = con.execute(
        f"SELECT source_url, {', '.join(map(_quoted, keywords))} FROM dicom_metadata"
    ).fetchall()
    actual_by_url = {row[0]: dict(zip(keywords, row[1:], strict=True)) for row in rows}
    anomalies = _anomaly_tag_paths(con)

    mismatches: dict[tuple[str, str], list[str]] = defaultdict(list)
    compared = 0
    for path, read in sorted(files.items()):
        actual_row = actual_by_url[path]
        for keyword, (tag, vr, expected) in read.top_level.items():
            # a value that does not fit its column is reported as such, and skipped; an empty
            # value (NULL / []) always fits, so an anomaly on it does not excuse another value
            if f"{tag:08X}" in anomalies.get(path, ()) and expected not in (None, []):
                continue
            compared += 1
            if keyword not in actual_row:
                mismatches[keyword, vr].append(f"{os.path.relpath(path, corpus.root)}: no column")
                continue
            actual = actual_row[keyword]
            if not _same(vr, expected, actual):
                mismatches[keyword, vr].append(
                    f"{os.path.relpath(path, corpus.root)}: pydicom {expected!r}, column {actual!r}"
                )
    summary = "\n".join(
        f"{keyword} ({vr}): {len(found)}, e.g. {found[0]}"
        for (keyword, vr), found in sorted(mismatches.items(), key=lambda item: -len(item[1]))
    )
    assert compared > 0
    assert not mismatches, (
        f"{sum(map(len, mismatches.values()))} of {compared} top-level values differ "
        f"from pydicom's, in {len(mismatches)} columns:\n{summary}"
    )


# --- 4. one row per key in the rollup views --------------------------------------------------


@pytest.mark.parametrize(
    ("view", "key"),
    [
        ("series", ("SeriesInstanceUID",)),
        ("studies", ("StudyInstanceUID",)),
        ("patients", ("PatientID", "IssuerOfPatientID")),
    ],
)
def test_rollup_views_have_one_row_per_key(
    corpus: IngestedCorpus, con: duckdb.DuckDBPyConnection, view: str, key: tuple[str, ...]
) -> None:
    # sql/*.sql: objects without the key are not dropped; they share one row with a NULL key
    # (patients: the row of PatientID NULL with their IssuerOfPatientID), and object_count adds
    # up to dicom_metadata.
    columns = ", ".join(map(_quoted, key))
    keys = Counter(con.execute(f"SELECT {columns} FROM dicom_metadata").fetchall())
    view_keys = Counter(con.execute(f"SELECT {columns} FROM {view}").fetchall())
    assert [k for k, n in view_keys.items() if n > 1] == [], f"duplicate {view} keys"
    assert set(view_keys) == set(keys), (
        f"{view}: keys missing {sorted(set(keys) - set(view_keys), key=str)[:10]}, "
        f"extra {sorted(set(view_keys) - set(keys), key=str)[:10]}"
    )
    non_null = [k for k in keys if all(part is not None for part in k)]
    assert len(non_null) == len({k for k in view_keys if all(part is not None for part in k)}), (
        f"{view}: not one row per distinct non-null key"
    )
    object_counts = {
        tuple(row[:-1]): row[-1]
        for row in con.execute(f"SELECT {columns}, object_count FROM {view}").fetchall()
    }
    expected_counts = dict(keys)
    assert object_counts == expected_counts


# --- 5. re-ingest ----------------------------------------------------------------------------

#: A corpus of more files than this is re-ingested in part: its error files (up to a quarter of
#: the sample) and files spread evenly over the rest. A re-ingest of the whole shared corpus
#: costs as much as its first ingest, and the rule checked (the latest run of each object is
#: its current row) is per object.
REINGEST_SAMPLE = 64


def _reingest_sample(corpus: IngestedCorpus) -> tuple[list[str], list[str]]:
    """(sources to ingest again, the files they name)."""
    if len(corpus.files) <= 3 * REINGEST_SAMPLE:
        return [str(corpus.root)], corpus.files
    con = connect(corpus.warehouse)
    try:
        errors = sorted(set(_urls(con, "ingest_errors")))[: REINGEST_SAMPLE // 4]
    finally:
        con.close()
    rest = [path for path in corpus.files if path not in set(errors)]
    stride = -(-len(rest) // (REINGEST_SAMPLE - len(errors)))
    sample = sorted(errors + rest[::stride])
    return sample, sample


def test_reingest_doubles_no_row(corpus: IngestedCorpus, tmp_path: Path) -> None:
    # a copy of the module's warehouse, so that the other checks keep reading one run
    warehouse = tmp_path / "warehouse"
    shutil.copytree(corpus.warehouse, warehouse)
    tables = ("dicom_metadata", "dicom_elements", "ingest_errors")
    sources, files = _reingest_sample(corpus)

    def counts(query: str, *parameters: object) -> dict[str, int]:
        """``query`` (with ``{table}``) per table: a count."""
        connection = connect(warehouse)
        try:
            return {
                table: connection.execute(query.format(table=table), parameters).fetchall()[0][0]
                for table in tables
            }
        finally:
            connection.close()

    current = "SELECT count(*) FROM {table}"
    history = "SELECT count(*) FROM {table}_history"
    of_files = "SELECT count(*) FROM {table} WHERE list_contains(?, source_url)"
    before = counts(current)
    assert before == counts(history)
    again = counts(of_files, files)  # the rows of the files read again
    assert sum(again.values()) > 0
    summary = ingest(sources, warehouse)
    assert summary.objects == len(files)
    assert counts(current) == before
    assert counts(history) == {table: before[table] + again[table] for table in tables}
    # the current rows of the files read again are the new run's
    assert counts(current + " WHERE ingest_run_id = ?", summary.run_id) == again
