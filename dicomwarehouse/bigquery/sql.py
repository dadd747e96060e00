"""The SQL a publish runs in BigQuery: the views of ``sql/`` qualified with the dataset, and
the views that give the history tables their current state.

``sql/`` reads tables by bare name (the same text runs on DuckDB). In BigQuery a view must name
its tables with their dataset, so each bare table reference is replaced by
```project.dataset.name``` in the original text, at the positions sqlglot's parser reports:
comments, layout and every other token stay as written, so the view a user opens in the
console is the file of ``sql/`` with qualified names, not a regenerated statement.

The current-state views follow ``warehouse.build_duckdb``: for each source_url, the rows of the
latest ingest run that read it (in dicom_metadata or ingest_errors), unless a later run's full
listing found it deleted (the ledger), so a re-ingest never doubles a row. Views are created
with DDL (``CREATE OR REPLACE VIEW ... OPTIONS(description)``) so that the view, its
description and its column descriptions change in one statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import sqlglot
from sqlglot import exp

from dicomwarehouse.tables.descriptions import TABLE_DESCRIPTIONS
from dicomwarehouse.warehouse.layout import EVENTS_TABLE

__all__ = [
    "CURRENT_OBJECTS",
    "CURRENT_VIEWS",
    "current_view_sql",
    "qualified_name",
    "qualify",
    "string_literal",
    "view_ddl",
]

#: The view that picks, per source_url, the latest run (DuckDB's ``_current_objects``).
CURRENT_OBJECTS = "current_objects"

#: Tables whose current state is a view over ``<name>_history``.
CURRENT_VIEWS = ("dicom_metadata", "dicom_elements", "ingest_errors")

_DATASET_NAME = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


def qualified_name(project: str, dataset: str, name: str) -> str:
    """```project.dataset.name```, quoted as GoogleSQL needs for project ids with hyphens."""
    return f"`{project}.{dataset}.{name}`"


def string_literal(text: str) -> str:
    """A GoogleSQL string literal of ``text`` (single-quoted, escaped)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    escaped = escaped.replace("\n", "\\n").replace("\r", "\\r")
    return f"'{escaped}'"


def qualify(sql: str, project: str, dataset: str, names: Iterable[str]) -> str:
    """``sql`` with every bare reference to one of ``names`` qualified with the dataset.

    Only table references are touched (not columns, CTEs or aliases of the same spelling);
    a reference that already names a dataset is left alone.
    """
    names = set(names)
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
        spans.append((start, end, qualified_name(project, dataset, table.name)))
    for start, end, replacement in sorted(spans, reverse=True):
        sql = sql[:start] + replacement + sql[end:]
    return sql


def current_view_sql(project: str, dataset: str) -> dict[str, str]:
    """The GoogleSQL of ``current_objects`` and of the current-state views, by name.

    ``current_objects`` follows ``warehouse.build_duckdb``: per source_url the latest run that
    produced a row for it, unless a later run's full listing found it deleted.
    """
    metadata = qualified_name(project, dataset, "dicom_metadata_history")
    errors = qualified_name(project, dataset, "ingest_errors_history")
    events = qualified_name(project, dataset, f"{EVENTS_TABLE}_history")
    latest = qualified_name(project, dataset, CURRENT_OBJECTS)
    views = {
        CURRENT_OBJECTS: (
            "-- For each source_url, the latest ingest run that read it, unless a later run's\n"
            "-- full listing found it deleted.\n"
            "WITH produced AS (\n"
            "  SELECT source_url, MAX(ingest_run_id) AS ingest_run_id\n"
            "  FROM (\n"
            f"    SELECT source_url, ingest_run_id FROM {metadata}\n"
            "    UNION ALL\n"
            f"    SELECT source_url, ingest_run_id FROM {errors}\n"
            "  )\n"
            "  GROUP BY source_url\n"
            "),\n"
            "deleted AS (\n"
            "  SELECT source_url, MAX(ingest_run_id) AS deleted_run_id\n"
            f"  FROM {events}\n"
            "  WHERE outcome = 'deleted'\n"
            "  GROUP BY source_url\n"
            ")\n"
            "SELECT produced.source_url, produced.ingest_run_id\n"
            "FROM produced\n"
            "LEFT JOIN deleted ON deleted.source_url = produced.source_url\n"
            "WHERE deleted.deleted_run_id IS NULL\n"
            "  OR deleted.deleted_run_id < produced.ingest_run_id\n"
        )
    }
    for table in CURRENT_VIEWS:
        history = qualified_name(project, dataset, f"{table}_history")
        views[table] = (
            f"-- The rows of {table}_history from each current source_url's latest run.\n"
            "SELECT history.*\n"
            f"FROM {history} AS history\n"
            f"JOIN {latest} AS latest\n"
            "  ON history.source_url = latest.source_url\n"
            "  AND history.ingest_run_id = latest.ingest_run_id\n"
        )
    return views


def view_ddl(
    project: str,
    dataset: str,
    name: str,
    sql: str,
    description: str | None = None,
    column_descriptions: Mapping[str, str] | None = None,
) -> str:
    """``CREATE OR REPLACE VIEW`` with the view's description and column descriptions.

    The column list, when given, must name every output column in order (BigQuery checks);
    the tests check the same lists against DuckDB's output columns of each view.
    """
    description = description if description is not None else TABLE_DESCRIPTIONS.get(name)
    parts = [f"CREATE OR REPLACE VIEW {qualified_name(project, dataset, name)}"]
    if column_descriptions:
        columns = ",\n  ".join(
            f"`{column}` OPTIONS(description={string_literal(text)})"
            for column, text in column_descriptions.items()
        )
        parts.append(f"(\n  {columns}\n)")
    if description:
        parts.append(f"OPTIONS(description={string_literal(description)})")
    return " ".join(parts) + "\nAS\n" + sql.rstrip() + "\n"


def valid_dataset_name(name: str) -> bool:
    """BigQuery dataset and table names: letters, digits and underscores, up to 1,024."""
    return bool(_DATASET_NAME.match(name))
