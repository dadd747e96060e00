"""The SQL a publish runs in BigQuery: the views of ``sql/`` qualified with the dataset, and
the views that give the history tables their current state.

``sql/`` reads tables by bare name (the same text runs on DuckDB). In BigQuery a view must name
its tables with their dataset, so each bare table reference is replaced by
```project.dataset.name``` in the original text, at the positions sqlglot's parser reports:
comments, layout and every other token stay as written, so the view a user opens in the
console is the file of ``sql/`` with qualified names, not a regenerated statement.

The current-state views are the files of ``sql/internal/`` that DuckDB runs too
(``warehouse.internal_sql``): for each source_url, the rows of the latest ingest run that read
it (in dicom_metadata or ingest_errors), unless a later run's full listing found it deleted (the
ledger), so a re-ingest never doubles a row. They are qualified the same way. Views are created
with DDL (``CREATE OR REPLACE VIEW ... OPTIONS(description)``) so that the view, its
description and its column descriptions change in one statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from dicomwarehouse.tables.descriptions import TABLE_DESCRIPTIONS
from dicomwarehouse.warehouse.internal_sql import (
    CURRENT_OBJECTS,
    TABLE_HISTORY,
    load_internal,
    rename_tables,
)

__all__ = [
    "CURRENT_OBJECTS",
    "CURRENT_VIEWS",
    "current_view_sql",
    "qualified_name",
    "qualify",
    "string_literal",
    "view_ddl",
]

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
    return rename_tables(sql, {name: qualified_name(project, dataset, name) for name in names})


def current_view_sql(project: str, dataset: str) -> dict[str, str]:
    """The GoogleSQL of ``current_objects`` and of the current-state views, by name.

    The text of ``sql/internal/current_objects.sql`` and ``current_rows.sql`` (the latter once
    per table of :data:`CURRENT_VIEWS`) with their tables qualified: the same source DuckDB
    runs, so both engines pick the same current rows.
    """
    rule = load_internal(CURRENT_OBJECTS)
    views = {CURRENT_OBJECTS: qualify(rule.sql, project, dataset, rule.tables)}
    rows = load_internal("current_rows")
    for table in CURRENT_VIEWS:
        names = {name: qualified_name(project, dataset, name) for name in rows.tables}
        names[TABLE_HISTORY] = qualified_name(project, dataset, f"{table}_history")
        views[table] = rename_tables(rows.sql, names)
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
