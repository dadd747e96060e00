"""The warehouse's own SQL (``sql/internal/*.sql``): the current-state rule and the ledger.

Which run's rows of each source_url are current is the one rule both engines must apply
alike: a DuckDB file and a BigQuery dataset of the same warehouse have to show the same current
rows. So the rule, and the views built on it, are written once, in GoogleSQL like the curated
views of ``sql/``: DuckDB runs them through the same sqlglot translation
(``views.to_duckdb``), and a publish qualifies them with the dataset (``bigquery.sql``).

They live in ``sql/internal/``, not beside the curated views, because they are not views a
user asked for: ``views.load_views`` reads only ``sql/*.sql``, and these files read tables whose
names differ between the engines. Each file reads the tables by their BigQuery names
(``dicom_metadata_history``, ``current_objects``, ...); :data:`DUCKDB_TABLES` lists DuckDB's
names for them, the one difference between the texts the engines run. The files that serve
several tables (``current_rows``, ``history_rows``) read :data:`TABLE_HISTORY`, which the
caller names. Each file starts with the comment block of the curated views (description, then
``Columns:``), so the descriptions come from the same place as the SQL.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlglot
from sqlglot import exp

from dicomwarehouse.warehouse import views

__all__ = [
    "CURRENT_OBJECTS",
    "DUCKDB_TABLES",
    "TABLE_HISTORY",
    "InternalQuery",
    "duckdb_sql",
    "internal_dir",
    "load_internal",
    "rename_tables",
]

#: The folder of ``sql/`` that holds the internal files.
INTERNAL_FOLDER = "internal"

#: The current-state rule: per source_url, the run whose rows are current.
CURRENT_OBJECTS = "current_objects"

#: Stands, in a file that serves several tables, for the table's rows of every committed run.
TABLE_HISTORY = "table_history"

#: DuckDB's names for the tables the files read by their BigQuery names. DuckDB's ``*_history``
#: views add ``is_current``, which needs the current-state rule, so the rule reads the plain
#: views over every run's Parquet (``*_raw``); and DuckDB materializes the rule as the table
#: ``_current_objects`` (computed once per build, not once per query), kept out of the way of
#: user tables by its underscore. ``ingest_object_events_history`` has the same name in both.
DUCKDB_TABLES: dict[str, str] = {
    "dicom_metadata_history": "dicom_metadata_raw",
    "ingest_errors_history": "ingest_errors_raw",
    CURRENT_OBJECTS: f"_{CURRENT_OBJECTS}",
}


@dataclass(frozen=True)
class InternalQuery:
    """One file of ``sql/internal/``: its documentation, GoogleSQL text and the tables it reads.

    ``column_descriptions`` is empty for a file whose columns are those of the table it reads.
    ``tables`` names every table the text reads (CTEs excluded), placeholders included.
    """

    name: str
    description: str
    column_descriptions: dict[str, str]
    sql: str
    tables: frozenset[str]


def internal_dir() -> Path:
    """``sql/internal``, wherever ``sql/`` is (the installed package or the source checkout)."""
    return views._sql_dir() / INTERNAL_FOLDER


def _read_tables(tree: exp.Expression) -> frozenset[str]:
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return frozenset(table.name for table in tree.find_all(exp.Table) if table.name not in ctes)


@functools.cache
def load_internal(name: str) -> InternalQuery:
    """The internal file ``name`` (without ``.sql``), parsed once per process.

    Raises FileNotFoundError for a missing file and ValueError for a file without its header.
    """
    sql = (internal_dir() / f"{name}.sql").read_text(encoding="utf-8")
    description, columns = views._parse_header(name, sql)
    tables = _read_tables(sqlglot.parse_one(sql, read="bigquery"))
    return InternalQuery(name, description, columns, sql, tables)


def rename_tables(sql: str, names: Mapping[str, str]) -> str:
    """``sql`` with every bare table reference to a key of ``names`` replaced by its value.

    The replacement is made in the original text, at the positions sqlglot's parser reports,
    so comments and layout stay as written. Only table references are touched (not columns,
    CTEs or aliases of the same spelling); a reference that already names a dataset is left
    alone. A backquoted name is replaced with its quotes, so a value may bring its own.
    """
    tree = sqlglot.parse_one(sql, read="bigquery")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    spans: list[tuple[int, int, str]] = []
    for table in tree.find_all(exp.Table):
        if table.args.get("db") or table.name in ctes or table.name not in names:
            continue
        identifier = table.this
        meta = identifier.meta if isinstance(identifier, exp.Identifier) else {}
        if "start" not in meta:
            raise ValueError(f"no position for table {table.name} in the SQL text")
        start, end = meta["start"], meta["end"] + 1
        if start > 0 and sql[start - 1] == "`" and sql[end : end + 1] == "`":
            start, end = start - 1, end + 1
        spans.append((start, end, names[table.name]))
    for start, end, replacement in sorted(spans, reverse=True):
        sql = sql[:start] + replacement + sql[end:]
    return sql


def duckdb_sql(
    name: str, table: str | None = None, *, reading: Mapping[str, str] | None = None
) -> str:
    """The DuckDB text of the internal file ``name``, reading DuckDB's tables.

    ``table`` names the table (``dicom_metadata``, ...) of a file that reads
    :data:`TABLE_HISTORY`; in DuckDB its rows of every run are the view ``<table>_raw``.
    ``reading`` replaces some of :data:`DUCKDB_TABLES` (the DuckDB build computes the
    current-state rule from narrow tables of its own, not from the ``*_raw`` views).
    Kept across processes with the views' translations (``views._remembered``): every
    DuckDB build asks for the same few.
    """
    text = (internal_dir() / f"{name}.sql").read_text(encoding="utf-8")
    key = json.dumps(["internal", text, table, sorted((reading or {}).items())])
    return views._remembered(key, lambda: _translate_internal(name, table, reading))


def _translate_internal(name: str, table: str | None, reading: Mapping[str, str] | None) -> str:
    query = load_internal(name)
    names = {**DUCKDB_TABLES, **(reading or {})}
    if TABLE_HISTORY in query.tables:
        if table is None:
            raise ValueError(f"{name}.sql serves several tables: name one")
        names[TABLE_HISTORY] = f"{table}_raw"
    return views.to_duckdb(rename_tables(query.sql, names))
