"""Arrow schemas as BigQuery JSON schemas, and the counts BigQuery's limits are about.

A BigQuery schema here is its JSON (API) form, a list of field dicts (``name``, ``type``,
``mode``, ``description``, ``fields``), the form ``bq`` and the REST API take and that
``google.cloud.bigquery.SchemaField.from_api_repr`` reads. Keeping it plain data means the plan
and the per-run schema files need no Google library, and that the same dicts are written to
``schemas/``, to each run's ``_bigquery_schema.json`` and into load jobs.

The mapping is the one BigQuery applies when it loads our Parquet with list inference: a
``list<x>`` is a REPEATED x, a ``list<struct>`` a REPEATED RECORD, a struct a RECORD; a field
Arrow calls non-nullable is REQUIRED (Parquet stores it as REQUIRED, and BigQuery refuses to load
a REQUIRED Parquet column into a NULLABLE field of the job's schema).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
from pydicom.datadict import DicomDictionary, RepeatersDictionary

from dicomwarehouse.errors import UsageError
from dicomwarehouse.tables.descriptions import (
    COLUMN_DESCRIPTIONS,
    MANIFEST_COLUMN_DESCRIPTIONS,
    attribute_description,
)
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import PROVENANCE_FIELDS

__all__ = [
    "INGEST_RUNS_SCHEMA",
    "INGEST_RUNS_TABLE",
    "METADATA_TABLES",
    "RUN_SCHEMA_FILE",
    "Field",
    "SchemaConflictError",
    "arrow_schema_to_bigquery",
    "count_columns",
    "run_schema_json",
    "sort_metadata_fields",
    "union_schemas",
]

#: A BigQuery field in its JSON (API) form.
Field = dict[str, Any]

#: Written beside each run's shards of each table at commit: the run's BigQuery schema.
RUN_SCHEMA_FILE = "_bigquery_schema.json"

#: Tables whose columns are DICOM keywords (described from the data dictionary).
METADATA_TABLES = frozenset({"dicom_metadata"})


#: The dataset's record of the runs it holds (rewritten at the end of every publish).
INGEST_RUNS_TABLE = "ingest_runs"

INGEST_RUNS_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("started_at", pa.timestamp("us", tz="UTC")),
        pa.field("objects", pa.int64()),
        pa.field("instances", pa.int64()),
        pa.field("elements", pa.int64()),
        pa.field("errors", pa.int64()),
        pa.field("attributes_left_out", pa.int64()),
        pa.field("deep_sequences_left_out", pa.int64()),
        pa.field("summary_json", pa.string()),
        pa.field("published_at", pa.timestamp("us", tz="UTC")),
    ]
)


class SchemaConflictError(UsageError):
    """Two runs disagree on the type of a column, so no one table can hold both."""


def _scalar_type(arrow_type: pa.DataType) -> str:
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "STRING"
    if pa.types.is_integer(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "FLOAT"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_date(arrow_type):
        return "DATE"
    if pa.types.is_time(arrow_type):
        return "TIME"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP" if arrow_type.tz is not None else "DATETIME"
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return "BYTES"
    if pa.types.is_decimal(arrow_type):  # NUMERIC is DECIMAL(38, 9); wider is BIGNUMERIC
        fits = arrow_type.precision - arrow_type.scale <= 29 and arrow_type.scale <= 9
        return "NUMERIC" if fits else "BIGNUMERIC"
    raise ValueError(f"no BigQuery type for Arrow type {arrow_type}")


def _description(table: str, dotted: str, name: str, parent: str | None) -> str | None:
    fixed = COLUMN_DESCRIPTIONS.get(table, {}).get(dotted)
    if fixed is not None:
        return fixed
    if table in METADATA_TABLES:
        return attribute_description(name, parent)
    return None


def _field(
    arrow_field: pa.Field, table: str, prefix: str, parent: str | None, extra: Iterable[str]
) -> Field:
    arrow_type = arrow_field.type
    mode = "NULLABLE" if arrow_field.nullable else "REQUIRED"
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        mode = "REPEATED"
        arrow_type = arrow_type.value_type
        if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
            raise ValueError(f"{prefix}{arrow_field.name}: BigQuery has no arrays of arrays")
    dotted = f"{prefix}{arrow_field.name}"
    field: Field = {"name": arrow_field.name, "mode": mode}
    if pa.types.is_struct(arrow_type):
        field["type"] = "RECORD"
        field["fields"] = [
            _field(child, table, f"{dotted}.", arrow_field.name, ()) for child in arrow_type
        ]
    else:
        field["type"] = _scalar_type(arrow_type)
    if not prefix and table in METADATA_TABLES and arrow_field.name in MANIFEST_COLUMN_DESCRIPTIONS:
        description: str | None = MANIFEST_COLUMN_DESCRIPTIONS[arrow_field.name]
    elif not prefix and arrow_field.name in extra:
        description = f"Manifest column {arrow_field.name}."
    else:
        description = _description(table, dotted, arrow_field.name, parent)
    if description:
        field["description"] = description
    return {
        key: field[key] for key in ("name", "type", "mode", "description", "fields") if key in field
    }


def arrow_schema_to_bigquery(
    schema: pa.Schema, table: str, *, extra_columns: Iterable[str] = ()
) -> list[Field]:
    """The BigQuery schema of a table's Arrow schema, with descriptions.

    ``table`` picks the descriptions (``descriptions.COLUMN_DESCRIPTIONS``; keyword columns of
    dicom_metadata from the data dictionary); ``extra_columns`` names manifest columns.
    """
    extra = frozenset(extra_columns)
    return [_field(arrow_field, table, "", None, extra) for arrow_field in schema]


def run_schema_json(schema: pa.Schema, table: str) -> str:
    """The text of a run's ``_bigquery_schema.json`` (one field a line, for readable diffs)."""
    fields = arrow_schema_to_bigquery(schema, table)
    return "[\n" + ",\n".join(json.dumps(f, ensure_ascii=False) for f in fields) + "\n]\n"


def count_columns(fields: Sequence[Field]) -> tuple[int, int, int]:
    """(fields, leaves, deepest RECORD level) of a BigQuery schema.

    Every field at every depth counts as a field; leaves are the non-RECORD ones; a top-level
    RECORD is level 1, a RECORD inside it level 2, and so on (BigQuery allows 15).
    """
    total = leaves = depth = 0
    for field in fields:
        total += 1
        if field["type"] in ("RECORD", "STRUCT"):
            child_total, child_leaves, child_depth = count_columns(field.get("fields", ()))
            total += child_total
            leaves += child_leaves
            depth = max(depth, 1 + child_depth)
        else:
            leaves += 1
    return total, leaves, depth


def _merge(base: list[Field], other: Sequence[Field], where: str) -> None:
    by_name = {field["name"].lower(): field for field in base}
    for field in other:
        mine = by_name.get(field["name"].lower())
        if mine is None:
            base.append(json.loads(json.dumps(field)))
            by_name[field["name"].lower()] = base[-1]
            continue
        name = f"{where}{field['name']}"
        if mine["type"] != field["type"] or (mine["mode"] == "REPEATED") != (
            field["mode"] == "REPEATED"
        ):
            raise SchemaConflictError(
                f"column {name} is {mine['mode']} {mine['type']} in one run and "
                f"{field['mode']} {field['type']} in another"
            )
        if "description" not in mine and "description" in field:
            mine["description"] = field["description"]
        if mine["type"] == "RECORD":
            _merge(mine["fields"], field["fields"], f"{name}.")


def _relax(fields: list[Field], schemas: Sequence[Sequence[Field]]) -> None:
    """A REQUIRED column that some run lacks becomes NULLABLE (that run has no value)."""
    for field in fields:
        if field["mode"] == "REQUIRED" and not all(
            any(f["name"].lower() == field["name"].lower() for f in schema) for schema in schemas
        ):
            field["mode"] = "NULLABLE"


def union_schemas(schemas: Sequence[Sequence[Field]]) -> list[Field]:
    """One schema holding every run's columns: the first run's order, new columns appended.

    BigQuery appends added columns at the end of a table, so appending keeps the union a
    superset of any table created from an earlier union. Names compare case-insensitively,
    as BigQuery's do; a column typed differently in two runs raises SchemaConflictError.
    """
    union: list[Field] = []
    for schema in schemas:
        _merge(union, schema, "")
    _relax(union, schemas)
    return union


@functools.cache
def _tags_by_keyword() -> dict[str, int]:
    tags = {
        keyword: int(mask.replace("x", "0"), 16)
        for mask, (*_, keyword) in RepeatersDictionary.items()
        if keyword
    }
    tags.update({keyword: tag for tag, (*_, keyword) in DicomDictionary.items() if keyword})
    return tags


_PROVENANCE_ORDER = {field.name: index for index, field in enumerate(PROVENANCE_FIELDS)}


def _metadata_order(field: Field) -> tuple[int, int, str]:
    name = field["name"]
    if name == "OtherElements":
        return (1, 0, "")
    if name in _PROVENANCE_ORDER:
        return (2, _PROVENANCE_ORDER[name], "")
    if name.startswith("Tag_") and len(name) == 12:
        return (0, int(name[4:], 16), "")
    if name in IDC_MANIFEST_COLUMNS:  # in every run, in the order runs write them
        return (3, IDC_MANIFEST_COLUMNS.index(name), "")
    tag = _tags_by_keyword().get(name)
    return (0, tag, "") if tag is not None else (4, 0, name)


def sort_metadata_fields(fields: Sequence[Field]) -> list[Field]:
    """dicom_metadata fields in the order a run's schema has them: keywords in tag order (at
    the top and inside sequence items), then OtherElements, provenance, the manifest columns
    every run has (``required_columns.IDC_MANIFEST_COLUMNS``) and other columns by name.

    For a table created from the union of several runs, whose columns would otherwise follow
    the order the runs met them in (a later run's keywords after the provenance columns).
    """
    ordered = []
    for field in sorted(fields, key=_metadata_order):
        children = field.get("fields")
        if children and any(child["name"] == "OtherElements" for child in children):
            field = {**field, "fields": sort_metadata_fields(children)}
        ordered.append(field)
    return ordered
