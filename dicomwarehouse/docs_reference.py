"""The reference page of the user docs (``docs/reference.md``), generated from the code.

Every table, view and column a user can query is described once: the views in the comment
blocks of ``sql/`` (``views.ViewDefinition``), the fixed tables in
``tables/descriptions.py``, the keyword columns in pydicom's data dictionary. This module
renders those sources as one Markdown page, so the docs cannot drift from what the engines
attach to the tables. ``python -m dicomwarehouse.docs_reference [FILE]`` writes the page;
``--check`` only reports a stale page, and a test runs it (as ``schemas --check`` does for
``schemas/``).

Column types are not typed by hand either: each view is created over an empty
``dicom_metadata`` in an in-memory DuckDB, and its Arrow schema gives both the DuckDB type and,
through ``bigquery_schema.arrow_schema_to_bigquery`` (the mapping the loads use), the BigQuery
type.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from dicomwarehouse.tables.bigquery_schema import (
    INGEST_RUNS_SCHEMA,
    INGEST_RUNS_TABLE,
    Field,
    arrow_schema_to_bigquery,
)
from dicomwarehouse.tables.descriptions import (
    TABLE_DESCRIPTIONS,
    attribute_description,
)
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import (
    ELEMENTS_SCHEMA,
    ERRORS_SCHEMA,
    ColumnPath,
    metadata_schema,
)
from dicomwarehouse.tables.vr import BIGQUERY_TYPE_BY_VR, BINARY_VRS
from dicomwarehouse.warehouse.internal_sql import duckdb_sql, load_internal
from dicomwarehouse.warehouse.layout import EVENTS_TABLE
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA
from dicomwarehouse.warehouse.views import (
    UID_NAMES_TABLE,
    create_duckdb_views,
    load_views,
    referenced_column_paths,
    referenced_keywords,
    uid_names_table,
)

__all__ = ["DEFAULT_PATH", "generate", "main"]

#: Where the page lives in a checkout.
DEFAULT_PATH = Path("docs/reference.md")

_REGENERATE = "python -m dicomwarehouse.docs_reference"


def _cell(text: str | None) -> str:
    """Text for one Markdown table cell (pipes escaped, lines joined)."""
    text = " ".join((text or "").split())
    return text.replace("|", "\\|").replace("<", "&lt;")


#: The API's legacy type names, as GoogleSQL spells them.
_GOOGLESQL_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}


def _bigquery_type(field: Field) -> str:
    """GoogleSQL spelling of a field: ARRAY<...> for REPEATED, STRUCT<...> for RECORD."""
    if field["type"] == "RECORD":
        inner = ", ".join(f"{child['name']} {_bigquery_type(child)}" for child in field["fields"])
        scalar = f"STRUCT<{inner}>" if len(inner) <= 60 else "STRUCT<...>"
    else:
        scalar = _GOOGLESQL_NAMES.get(field["type"], field["type"])
    return f"ARRAY<{scalar}>" if field["mode"] == "REPEATED" else scalar


def _duckdb_type(arrow_type: pa.DataType) -> str:
    """DuckDB's name of an Arrow type, as DESCRIBE shows it (STRUCT fields shortened)."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return _duckdb_type(arrow_type.value_type) + "[]"
    if pa.types.is_struct(arrow_type):
        inner = ", ".join(f"{f.name} {_duckdb_type(f.type)}" for f in arrow_type)
        return f"STRUCT({inner})" if len(inner) <= 60 else "STRUCT(...)"
    names = {
        pa.string(): "VARCHAR",
        pa.large_string(): "VARCHAR",
        pa.int64(): "BIGINT",
        pa.int32(): "INTEGER",
        pa.float64(): "DOUBLE",
        pa.bool_(): "BOOLEAN",
        pa.date32(): "DATE",
        pa.time64("us"): "TIME",
    }
    if arrow_type in names:
        return names[arrow_type]
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP WITH TIME ZONE" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_decimal(arrow_type):
        return f"DECIMAL({arrow_type.precision},{arrow_type.scale})"
    return str(arrow_type).upper()


def _nested_rows(
    arrow_field: pa.Field,
    bigquery: Field,
    prefix: str,
    descriptions: dict[str, str],
    with_duckdb: bool,
) -> Iterable[str]:
    """One table row for a column, then one per field inside it (``parent.child``)."""
    dotted = f"{prefix}{arrow_field.name}"
    description = descriptions.get(dotted) or bigquery.get("description")
    types = [f"`{_bigquery_type(bigquery)}`"]
    if with_duckdb:
        types.append(f"`{_duckdb_type(arrow_field.type)}`")
    yield f"| `{dotted}` | {' | '.join(types)} | {_cell(description)} |"
    arrow_type = arrow_field.type
    while pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_struct(arrow_type):
        for child, child_bigquery in zip(arrow_type, bigquery["fields"], strict=True):
            yield from _nested_rows(child, child_bigquery, f"{dotted}.", descriptions, with_duckdb)


def _column_table(
    schema: pa.Schema,
    table: str,
    descriptions: dict[str, str] | None = None,
    *,
    with_duckdb: bool = True,
    extra_columns: Sequence[str] = (),
) -> list[str]:
    """The Markdown table of a schema's columns: name, the engines' types, description."""
    fields = arrow_schema_to_bigquery(schema, table, extra_columns=extra_columns)
    if with_duckdb:
        lines = ["| column | BigQuery type | DuckDB type | description |", "|---|---|---|---|"]
    else:
        lines = ["| column | BigQuery type | description |", "|---|---|---|"]
    for arrow_field, bigquery in zip(schema, fields, strict=True):
        lines.extend(_nested_rows(arrow_field, bigquery, "", descriptions or {}, with_duckdb))
    return lines


def _metadata_schema(paths: Iterable[ColumnPath]) -> pa.Schema:
    """dicom_metadata with the given keyword columns and the columns every run has."""
    return metadata_schema(paths, dict.fromkeys(IDC_MANIFEST_COLUMNS, pa.string()))


def _view_schemas() -> dict[str, pa.Schema]:
    """Output schema of every view of ``sql/``, from DuckDB over an empty dicom_metadata."""
    con = duckdb.connect()
    try:
        empty = _metadata_schema(referenced_column_paths()).empty_table()
        con.register("_empty_metadata", empty)
        con.execute("CREATE TABLE dicom_metadata AS SELECT * FROM _empty_metadata")
        create_duckdb_views(con)
        return {
            view.name: con.sql(f'SELECT * FROM "{view.name}" LIMIT 0').arrow().schema
            for view in load_views()
        }
    finally:
        con.close()


def _ingest_objects_schema() -> pa.Schema:
    """Output schema of the ``ingest_objects`` view, from DuckDB over an empty ledger."""
    con = duckdb.connect()
    try:
        con.register("_empty_events", EVENTS_SCHEMA.empty_table())
        con.execute(f"CREATE TABLE {EVENTS_TABLE}_history AS SELECT * FROM _empty_events")
        return con.sql(f"SELECT * FROM ({duckdb_sql('ingest_objects')}) LIMIT 0").arrow().schema
    finally:
        con.close()


def _section(title: str, description: str, table_lines: Sequence[str]) -> list[str]:
    return [f"### `{title}`", "", description, "", *table_lines, ""]


def _views_part() -> list[str]:
    lines = [
        "## Views",
        "",
        "The curated views, one GoogleSQL file each in `sql/`; DuckDB runs them translated by "
        "sqlglot, BigQuery as written. Both engines show the descriptions below (DuckDB: "
        "`duckdb_views()`, `duckdb_columns()`; BigQuery: the console's schema tab).",
        "",
    ]
    schemas = _view_schemas()
    for view in sorted(load_views(), key=lambda v: v.name):
        if view.column_descriptions:
            table_lines = _column_table(schemas[view.name], view.name, view.column_descriptions)
        else:
            # the columns it adds to dicom_metadata's, described in the text above
            metadata_columns = set(_metadata_schema(referenced_column_paths()).names)
            added = pa.schema(
                [field for field in schemas[view.name] if field.name not in metadata_columns]
            )
            table_lines = [
                "Columns: those of [`dicom_metadata`](#dicom_metadata), then:",
                "",
                *_column_table(
                    added, view.name, dict.fromkeys(added.names, "See the description above.")
                ),
            ]
        lines.extend(_section(view.name, view.description, table_lines))
    return lines


def _keyword_part() -> list[str]:
    vr_rows = {}
    for vr, bigquery_type in BIGQUERY_TYPE_BY_VR.items():
        vr_rows.setdefault(bigquery_type, []).append(vr)
    lines = [
        "### Keyword columns of `dicom_metadata`",
        "",
        "One column per DICOM keyword the files had (file meta group 0002 included), named by "
        "its keyword and described by its name and tag in the data dictionary. A keyword whose "
        "dictionary VM is not 1 is an ARRAY even when a file holds one value; a sequence (SQ) "
        "is an ARRAY of STRUCT with the same rules inside its items. Types by VR:",
        "",
        "| VR | BigQuery type | notes |",
        "|---|---|---|",
    ]
    notes = {
        "STRING": "DS and IS are strings as written: cast them (`SAFE_CAST(TRIM(x) AS FLOAT64)`)",
        "TIMESTAMP": "DT values, in UTC",
        "STRUCT": "PN: `STRUCT<Alphabetic, Ideographic, Phonetic>` of `STRUCT<FamilyName, "
        "GivenName, MiddleName, NamePrefix, NameSuffix>`",
        "RECORD": "SQ: ARRAY of STRUCT, one STRUCT per item",
    }
    for bigquery_type, vrs in vr_rows.items():
        lines.append(
            f"| {', '.join(sorted(vrs))} | {bigquery_type} | {notes.get(bigquery_type, '')} |"
        )
    lines.extend(
        [
            f"| {', '.join(sorted(BINARY_VRS))} | none | binary values are no columns: they are "
            "rows of `dicom_elements` |",
            "",
            "Whatever the files hold, every warehouse has these keyword columns, because the "
            "views read them (NULL where no file had the attribute), plus the nested paths the "
            "views read inside them:",
            "",
            ", ".join(
                f"`{keyword}`"
                for keyword in sorted(referenced_keywords())
                if attribute_description(keyword)
            ),
            "",
        ]
    )
    return lines


def _tables_part() -> list[str]:
    # with no keyword column: OtherElements and the provenance columns
    fixed_columns = _metadata_schema(())
    lines = [
        "## Tables",
        "",
        "The current state: for each object (`source_url`), the rows of the latest ingest run "
        "that read it. The same names in the Parquet folders, DuckDB and BigQuery.",
        "",
    ]
    lines.extend(
        _section(
            "dicom_metadata",
            TABLE_DESCRIPTIONS["dicom_metadata"] + " `dicom_all` is the same rows with IDC's "
            "extra columns. Besides the keyword columns (next section), every row has:",
            _column_table(fixed_columns, "dicom_metadata", extra_columns=IDC_MANIFEST_COLUMNS),
        )
    )
    lines.extend(_keyword_part())
    lines.extend(
        _section(
            "dicom_elements",
            TABLE_DESCRIPTIONS["dicom_elements"],
            _column_table(ELEMENTS_SCHEMA, "dicom_elements"),
        )
    )
    lines.extend(
        _section(
            "ingest_errors",
            TABLE_DESCRIPTIONS["ingest_errors"],
            _column_table(ERRORS_SCHEMA, "ingest_errors"),
        )
    )
    lines.extend(
        _section(
            UID_NAMES_TABLE,
            TABLE_DESCRIPTIONS[UID_NAMES_TABLE],
            _column_table(uid_names_table().schema, UID_NAMES_TABLE),
        )
    )
    return lines


def _history_part() -> list[str]:
    lines = [
        "## History and ledger",
        "",
        "Every committed run stays queryable. The `*_history` tables hold every run's rows "
        "(in DuckDB with one more column, `is_current`: true for the rows of the current "
        "state).",
        "",
    ]
    for table in ("dicom_metadata", "dicom_elements", "ingest_errors"):
        name = f"{table}_history"
        lines.extend(
            [f"### `{name}`", "", TABLE_DESCRIPTIONS[name], "", f"Columns: those of `{table}`.", ""]
        )
    events = f"{EVENTS_TABLE}_history"
    lines.extend(
        _section(events, TABLE_DESCRIPTIONS[events], _column_table(EVENTS_SCHEMA, EVENTS_TABLE))
    )
    objects = load_internal("ingest_objects")
    lines.extend(
        _section(
            "ingest_objects",
            objects.description + " DuckDB only.",
            _column_table(_ingest_objects_schema(), "ingest_objects", objects.column_descriptions),
        )
    )
    lines.extend(
        _section(
            INGEST_RUNS_TABLE,
            TABLE_DESCRIPTIONS[INGEST_RUNS_TABLE] + " This is the BigQuery table; in DuckDB "
            "`ingest_runs` is one row per run record (`DIR/_runs/<run id>.json`), with the "
            "record's fields as columns.",
            _column_table(INGEST_RUNS_SCHEMA, INGEST_RUNS_TABLE, with_duckdb=False),
        )
    )
    return lines


def generate() -> str:
    """The text of ``docs/reference.md``."""
    lines = [
        "# Table and view reference",
        "",
        f"<!-- Generated by `{_REGENERATE}` from sql/ and dicomwarehouse/tables/; "
        "do not edit by hand. -->",
        "",
        "Every table and view a warehouse has, with every column's type in BigQuery and in "
        "DuckDB and its description, generated from the same sources the engines take their "
        "descriptions from (the comments of `sql/`, `dicomwarehouse/tables/descriptions.py` "
        "and pydicom's data dictionary). How values are typed, and why: "
        "[Tables and views](tables.md). Worked queries: [Query cookbook](cookbook.md).",
        "",
        "Keyword columns keep DICOM's CamelCase; derived columns are snake_case with their unit "
        "(`slice_thickness_min_mm`). `dicom_metadata.SliceThickness` is the string as written "
        "(DS); `series.slice_thickness_min_mm` is the number.",
        "",
        *_views_part(),
        *_tables_part(),
        *_history_part(),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the page (or with --check, say whether it is stale)."""
    parser = argparse.ArgumentParser(prog=_REGENERATE)
    parser.add_argument("path", nargs="?", default=DEFAULT_PATH, type=Path)
    parser.add_argument("--check", action="store_true", help="only report a stale page")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.is_file() else None
        if current != text:
            print(f"{args.path} is stale (regenerate: {_REGENERATE})", file=sys.stderr)
            return 1
        print(f"{args.path}: up to date")
        return 0
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(text, encoding="utf-8")
    print(f"wrote {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
