"""The curated SQL views of the warehouse (``sql/*.sql``), for BigQuery and DuckDB.

Each view is one GoogleSQL file, written once for BigQuery (the dialect IDC users already
write) and translated to DuckDB by :mod:`dicomwarehouse.warehouse.googlesql` (sqlglot,
corrected where
BigQuery's documented semantics differ), so that both engines answer the same questions from
the same text. A file starts with a comment block that documents the view: a description,
then a ``Columns:`` line and one ``-- column_name: description`` line per output column
(continuation lines indented). That block is the single source of the descriptions that the
engines attach to the views.

The views read ``dicom_metadata`` (one column per DICOM keyword) by bare name. Which keyword
columns they read is known from the SQL itself (:func:`referenced_keywords`), so the ingest can
guarantee those columns exist even when no file had the attribute, and a view never fails to
bind on a small or unusual data set.

Besides the views, ``instances`` reads ``dicom_uid_names`` (:data:`UID_NAMES_TABLE`), the UID
dictionary of the DICOM standard as pydicom ships it (:func:`uid_names_table`), so that SOP class
and transfer syntax names come from pydicom rather than from hand-typed UID lists in SQL.
"""

from __future__ import annotations

import functools
import graphlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlglot
from pydicom.datadict import keyword_for_tag
from pydicom.uid import UID_dictionary
from sqlglot import exp

from dicomwarehouse.tables.required_columns import sql_paths_and_outputs
from dicomwarehouse.tables.schema import ColumnPath
from dicomwarehouse.warehouse.googlesql import translate

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "UID_NAMES_TABLE",
    "ViewDefinition",
    "create_duckdb_views",
    "load_views",
    "referenced_column_paths",
    "referenced_keywords",
    "to_duckdb",
    "uid_names_table",
    "view_columns",
]

logger = logging.getLogger(__name__)

#: Name of the helper table of UID names that the views join to (see :func:`uid_names_table`).
UID_NAMES_TABLE = "dicom_uid_names"

_COLUMNS_MARKER = "Columns:"
_COLUMN_LINE = re.compile(r"^(?P<name>\w+):\s*(?P<text>.*)$")


@dataclass(frozen=True)
class ViewDefinition:
    """One view of ``sql/``: its name, documentation, GoogleSQL text and the views it reads.

    ``column_descriptions`` maps each output column, in output order, to its description; it
    is empty for a view whose columns are those of its source (``dicom_all``).
    ``dependencies`` names the other views the SQL reads, so they are created first.
    """

    name: str
    description: str
    column_descriptions: dict[str, str]
    bigquery_sql: str
    dependencies: tuple[str, ...]


def _sql_dir() -> Path:
    """Where the ``.sql`` files are: inside the installed package, else in the source checkout.

    The wheel maps the top-level ``sql/`` folder to ``dicomwarehouse/sql``; a source checkout
    (tests, editable installs) has it one level up, beside the package.
    """
    package = Path(__file__).parents[1]
    packaged = package / "sql"
    if packaged.is_dir():
        return packaged
    checkout = package.parent / "sql"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"no sql/ folder at {packaged} or {checkout}")


#: Name of the file, in the user's cache folder, of what sqlglot worked out on this version
#: of the code and SQL (see :func:`_remembered`); the fingerprint is appended
_MEMO_PREFIX = "sql-"


@functools.cache
def _memo_path() -> Path | None:
    """The memo file of this version of the package, its SQL and sqlglot (None: no cache
    folder, as for a user without a home folder).

    Its name is a fingerprint of everything a translation depends on: sqlglot's version and
    the bytes of every module of the package and every SQL file, so that any change to
    them starts a new file rather than serving a stale answer.
    """
    digest = hashlib.sha256(sqlglot.__version__.encode())
    package = Path(__file__).parents[1]
    for path in sorted([*package.rglob("*.py"), *_sql_dir().rglob("*.sql")]):
        digest.update(str(path.relative_to(path.parents[1])).encode())
        digest.update(path.read_bytes())
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no HOME, and no user entry to find one in
        return None
    return cache / "dicomwarehouse" / f"{_MEMO_PREFIX}{digest.hexdigest()[:24]}.json"


class _Memo:
    """The memo's entries in this process: those read from the file, and those added since."""

    entries: dict[str, Any] | None = None
    added = False


def _remembered(key: str, compute: Callable[[], Any]) -> Any:
    """``compute()``, or the JSON value it gave for ``key`` in an earlier process.

    Why: every ingest ends in a DuckDB build that translates the same GoogleSQL files to
    DuckDB, and parses them for the views' dependencies and the columns they read: close to
    a CPU second of sqlglot, a sixth of what a small ingest costs, for the same answer every
    time. The answers are kept in one JSON file (:func:`_memo_path`) in the user's cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``dicomwarehouse``), written by
    :func:`_save_memo`. A memo that cannot be read or written costs only the time.
    """
    key = hashlib.sha256(key.encode()).hexdigest()
    if _Memo.entries is None:
        path = _memo_path()
        try:
            _Memo.entries = dict(json.loads(path.read_text(encoding="utf-8"))) if path else {}
        except (OSError, ValueError, TypeError):
            _Memo.entries = {}
    if key not in _Memo.entries:
        _Memo.entries[key] = compute()
        _Memo.added = True
    return _Memo.entries[key]


def _save_memo() -> None:
    """Write the memo's entries when this process added some; remove the memos of other
    versions of the code (each about 75 kB). Failures are logged, never raised."""
    path = _memo_path()
    if not _Memo.added or _Memo.entries is None or path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        partial.write_text(json.dumps(_Memo.entries), encoding="utf-8")
        os.replace(partial, path)
        for other in path.parent.glob(f"{_MEMO_PREFIX}*.json"):
            if other != path:
                other.unlink(missing_ok=True)
    except OSError as error:
        logger.debug("SQL memo not written to %s: %s", path, error)
        return
    _Memo.added = False


def _parse_header(name: str, sql: str) -> tuple[str, dict[str, str]]:
    """Read the description and column descriptions from the leading comment block.

    Raises ValueError for a file without a description or with a malformed column list, so
    that an undocumented view fails the tests rather than shipping without descriptions.
    """
    header: list[str] = []
    for line in sql.splitlines():
        if not line.startswith("--"):
            break
        header.append(line[2:].removeprefix(" ").rstrip())

    paragraphs: list[list[str]] = [[]]
    columns: dict[str, str] = {}
    last_column: str | None = None
    in_columns = False
    for line in header:
        if not in_columns:
            if line.startswith(_COLUMNS_MARKER):
                in_columns = True
            elif line:
                paragraphs[-1].append(line)
            elif paragraphs[-1]:
                paragraphs.append([])
            continue
        if not line:
            continue
        if line.startswith(" ") and last_column is not None:
            columns[last_column] = f"{columns[last_column]} {line.strip()}"
            continue
        match = _COLUMN_LINE.match(line)
        if match is None:
            raise ValueError(f"view {name}: malformed column line in header: {line!r}")
        last_column = match["name"]
        if last_column in columns:
            raise ValueError(f"view {name}: column {last_column} documented twice")
        columns[last_column] = match["text"]

    description = "\n\n".join(" ".join(p) for p in paragraphs if p)
    if not description:
        raise ValueError(f"view {name}: no description in the leading comment block")
    if not in_columns:
        raise ValueError(f"view {name}: no {_COLUMNS_MARKER!r} line in the leading comment block")
    return description, columns


def _table_names(tree: exp.Expression) -> set[str]:
    """Tables and views a statement reads, CTEs excluded."""
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return {table.name for table in tree.find_all(exp.Table) if table.name not in ctes}


def _topological_order(views: dict[str, ViewDefinition]) -> list[ViewDefinition]:
    """Views with every dependency before its dependents; ties in name order, for stability.

    Raises graphlib.CycleError when views depend on each other in a cycle.
    """
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name in sorted(views):
        sorter.add(name, *views[name].dependencies)
    sorter.prepare()
    ordered: list[ViewDefinition] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        ordered.extend(views[name] for name in ready)
        sorter.done(*ready)
    return ordered


@functools.cache
def _load_views() -> tuple[ViewDefinition, ...]:
    texts = {path.stem: path.read_text(encoding="utf-8") for path in _sql_dir().glob("*.sql")}
    views: dict[str, ViewDefinition] = {}
    for name, sql in texts.items():
        description, columns = _parse_header(name, sql)
        read = _remembered(
            f"tables:{sql}",
            lambda sql=sql: sorted(_table_names(sqlglot.parse_one(sql, read="bigquery"))),
        )
        dependencies = tuple(sorted((set(read) & texts.keys()) - {name}))
        views[name] = ViewDefinition(name, description, columns, sql, dependencies)
    return tuple(_topological_order(views))


def load_views() -> list[ViewDefinition]:
    """All views of ``sql/``, each after the views it reads (topological order).

    The files are parsed once per process; the list is a fresh copy on every call.
    """
    return list(_load_views())


def to_duckdb(
    bigquery_sql: str, *, table_map: Mapping[str, str] | None = None, remember: bool = False
) -> str:
    """Translate GoogleSQL (a view body or a user query) to DuckDB SQL.

    The translation and its corrections of sqlglot live in
    :mod:`dicomwarehouse.warehouse.googlesql`;
    this name stays for the callers that create views and run user queries. ``remember``
    (the warehouse's own SQL files, not user queries) keeps the translation across
    processes (:func:`_remembered`).
    """
    if not remember:
        return translate(bigquery_sql, table_map=table_map)
    key = json.dumps(["duckdb", bigquery_sql, sorted((table_map or {}).items())])
    return _remembered(key, lambda: translate(bigquery_sql, table_map=table_map))


def uid_names_table() -> pa.Table:
    """The DICOM UID dictionary as pydicom ships it, one row per UID, for ``dicom_uid_names``.

    Columns: uid, name (such as "CT Image Storage"), type (such as "SOP Class" or "Transfer
    Syntax"), keyword (such as "CTImageStorage") and retired (true for retired UIDs). Built
    from pydicom at warehouse build time, so the names follow the installed pydicom release
    and no UID list is typed by hand.
    """
    rows = sorted(UID_dictionary.items())
    return pa.table(
        {
            "uid": pa.array([uid for uid, _ in rows], pa.string()),
            "name": pa.array([entry[0] for _, entry in rows], pa.string()),
            "type": pa.array([entry[1] for _, entry in rows], pa.string()),
            "keyword": pa.array([entry[4] or None for _, entry in rows], pa.string()),
            "retired": pa.array([entry[3] == "Retired" for _, entry in rows], pa.bool_()),
        }
    )


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    """The (name, DuckDB type) of each column of view ``name``, in order, from the catalog.

    DuckDB keeps the columns it bound a view to when it was created; a ``DESCRIBE`` would
    bind the view's query again, which costs as much as creating it (over the wide
    dicom_metadata, a Parquet footer read and a few thousand columns resolved).
    """
    return con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = current_schema() AND table_name = ? "
        "ORDER BY column_index",
        [name],
    ).fetchall()


def _narrow_sums(con: duckdb.DuckDBPyConnection, name: str, duckdb_sql: str) -> None:
    """Make the view's HUGEINT columns BIGINT, as their INT64 counterparts in BigQuery.

    DuckDB's SUM of a BIGINT is a 128-bit HUGEINT where BigQuery's SUM of an INT64 is an INT64;
    left so, sizes and frame counts would reach pandas as floats and Parquet as decimals. Which
    SUMs are over integers only the engine knows, so the view is created, its column types
    read (:func:`view_columns`), and it is wrapped in a cast of its HUGEINT columns when it has
    any (a sum past 2**63 then fails loudly, as it would in BigQuery).
    """
    wide = [column for column, data_type in view_columns(con, name) if data_type == "HUGEINT"]
    if wide:
        casts = ", ".join(f'CAST("{column}" AS BIGINT) AS "{column}"' for column in wide)
        con.execute(
            f'CREATE OR REPLACE VIEW "{name}" AS SELECT * REPLACE ({casts}) FROM ({duckdb_sql})'
        )


def create_duckdb_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Create (or replace) the ``dicom_uid_names`` table and every view, with descriptions.

    ``dicom_metadata`` must exist with at least the column paths of :func:`referenced_column_paths`
    and the provenance columns, since DuckDB binds a view when it is created. Descriptions
    become DuckDB comments (``duckdb_views()``, ``duckdb_columns()``). Returns the view names
    in creation order.

    Everything is made in one transaction: alone, each of the few hundred statements (a
    comment per column) would be a commit of its own, with its write to the database file's
    log.
    """
    con.begin()
    try:
        names = _create_views(con)
    except BaseException:
        con.rollback()
        raise
    con.commit()
    _save_memo()
    return names


def _create_views(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The body of :func:`create_duckdb_views`, inside its transaction."""
    uid_names = uid_names_table()
    con.register("_dicomwarehouse_uid_names", uid_names)
    try:
        con.execute(
            f"CREATE OR REPLACE TABLE {UID_NAMES_TABLE} AS SELECT * FROM _dicomwarehouse_uid_names"
        )
    finally:
        con.unregister("_dicomwarehouse_uid_names")
    con.execute(
        f"COMMENT ON TABLE {UID_NAMES_TABLE} IS "
        + _sql_string("DICOM UID dictionary (uid, name, type, keyword, retired) from pydicom.")
    )

    names: list[str] = []
    for view in load_views():
        duckdb_sql = to_duckdb(view.bigquery_sql, remember=True)
        con.execute(f'CREATE OR REPLACE VIEW "{view.name}" AS {duckdb_sql}')
        _narrow_sums(con, view.name, duckdb_sql)
        con.execute(f'COMMENT ON VIEW "{view.name}" IS {_sql_string(view.description)}')
        for column, text in view.column_descriptions.items():
            con.execute(f'COMMENT ON COLUMN "{view.name}"."{column}" IS {_sql_string(text)}')
        logger.debug("created DuckDB view %s", view.name)
        names.append(view.name)
    return names


@functools.cache
def referenced_column_paths() -> frozenset[ColumnPath]:
    """The column paths of dicom_metadata that the views read, nested ones included.

    Found by ``required_columns.sql_paths_and_outputs``: top-level columns
    (``PatientName.Alphabetic.FamilyName`` reads PatientName) and the paths inside sequences
    that the views name (``UNNEST(SegmentSequence) AS segment`` ... ``segment.SegmentLabel``
    reads SegmentSequence > SegmentLabel, not a top-level SegmentLabel). A view that reads
    another view sees the output columns of that view that are sequence items or attributes
    inside them (the views are scanned in dependency order), so
    ``UNNEST(contentSequence.ContentSequence)`` over ``measurement_groups`` reads the nested
    ContentSequence. The ingest makes each a column of every run, so that a view reading an
    attribute absent from the data still binds. The set is prefix-closed.
    """

    def scan() -> list[ColumnPath]:
        paths: set[ColumnPath] = set()
        outputs: dict[str, dict[str, ColumnPath]] = {}
        for view in load_views():
            read, outputs[view.name] = sql_paths_and_outputs(view.bigquery_sql, outputs)
            paths |= read
        return sorted(paths)

    key = "read_paths:" + "\n".join(view.bigquery_sql for view in load_views())
    return frozenset(tuple(path) for path in _remembered(key, scan))


@functools.cache
def referenced_keywords() -> frozenset[str]:
    """The DICOM keywords the views read as top-level columns of dicom_metadata (the first
    step of every :func:`referenced_column_paths` path).

    The ingest makes each of these a column of ``dicom_metadata`` even when no file had the
    attribute, so every view binds. A name the scanner cannot place (a field of a STRUCT a
    view builds, such as ``AnatomicRegion.CodeMeaning``) counts as top-level: that costs one
    NULL column, while a missing keyword would break a view.
    """
    return frozenset(keyword_for_tag(path[0]) for path in referenced_column_paths())
