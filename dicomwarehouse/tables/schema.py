"""Arrow schemas of the warehouse tables.

dicom_metadata has no fixed schema: its columns are the attributes a run met. Each flattened
object reports its *column paths* (tuples of tags from the top level down to a column); the
union of those paths over a run, plus the columns the views need, decides the schema, so every
shard of a run shares one schema. A path's type depends on its tags alone (the data
dictionary), never on a file, so the union is a plain set union and two runs always agree on
the type of a column they share.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
from pydicom.datadict import tag_for_keyword

from dicomwarehouse.tables.vr import (
    BIGQUERY_TYPE_BY_VR,
    PN_COMPONENTS,
    PN_GROUPS,
    dictionary_column,
)

__all__ = [
    "ANOMALIES_TYPE",
    "BIGQUERY_MAX_RECORD_DEPTH",
    "ELEMENTS_SCHEMA",
    "ERRORS_SCHEMA",
    "MAX_SEQUENCE_COLUMN_DEPTH",
    "OTHER_ELEMENTS_TYPE",
    "PERSON_NAME_TYPE",
    "PROVENANCE_FIELDS",
    "SOURCE_FIELDS",
    "ColumnPath",
    "column_name",
    "column_path_problem",
    "keyword_paths",
    "metadata_schema",
]

#: A column of dicom_metadata: tags from the top level to the column (sequence tags first).
ColumnPath = tuple[int, ...]

#: BigQuery allows 15 levels of nested RECORDs.
BIGQUERY_MAX_RECORD_DEPTH = 15

#: A sequence at nesting level k is RECORD level k; inside its items a PN adds two levels
#: (PN, component group) and OtherElements one, so sequences deeper than 13 levels are kept
#: only in dicom_elements.
MAX_SEQUENCE_COLUMN_DEPTH = BIGQUERY_MAX_RECORD_DEPTH - 2

_PN_GROUP_TYPE = pa.struct([pa.field(name, pa.string()) for name in PN_COMPONENTS])
PERSON_NAME_TYPE = pa.struct([pa.field(name, _PN_GROUP_TYPE) for name in PN_GROUPS])

#: Private and unknown non-sequence elements of one level, as the Healthcare API export keeps
#: them, plus the private creator the export lacks (without it a private tag means nothing).
OTHER_ELEMENTS_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("Tag", pa.string()),
            pa.field("PrivateCreator", pa.string()),
            pa.field("Data", pa.list_(pa.string())),
        ]
    )
)

#: Values that did not fit their column (or were not read): where, which, and why.
ANOMALIES_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("tag_path", pa.string()),
            pa.field("keyword", pa.string()),
            pa.field("reason", pa.string()),
        ]
    )
)

_ARROW_TYPE_BY_BIGQUERY_TYPE: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "FLOAT64": pa.float64(),
    "INT64": pa.int64(),
    "STRUCT": PERSON_NAME_TYPE,
}

#: Where an object came from and which version of it was read (NULL where the store is silent).
SOURCE_FIELDS: tuple[pa.Field, ...] = (
    pa.field("source_url", pa.string(), nullable=False),
    pa.field("source_size", pa.int64()),
    pa.field("source_generation", pa.string()),
    pa.field("source_etag", pa.string()),
    pa.field("source_md5", pa.string()),
    pa.field("source_crc32c", pa.string()),
)

#: Columns every dicom_metadata row carries about where it came from and which run made it.
PROVENANCE_FIELDS: tuple[pa.Field, ...] = (
    *SOURCE_FIELDS,
    pa.field("header_bytes_read", pa.int64()),
    pa.field("ingest_run_id", pa.string(), nullable=False),
    pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("ingest_anomalies", ANOMALIES_TYPE),
)

ELEMENTS_SCHEMA = pa.schema(
    [
        pa.field("source_url", pa.string(), nullable=False),
        pa.field("SOPInstanceUID", pa.string()),
        pa.field("tag_path", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),
        pa.field("keyword", pa.string()),
        pa.field("vr", pa.string()),
        pa.field("vm", pa.int64()),
        pa.field("depth", pa.int64(), nullable=False),
        pa.field("private_creator", pa.string()),
        pa.field("value_strings", pa.list_(pa.string())),
        pa.field("value_length", pa.int64()),
        pa.field("ingest_run_id", pa.string(), nullable=False),
    ]
)

ERRORS_SCHEMA = pa.schema(
    [
        *SOURCE_FIELDS,
        pa.field("stage", pa.string(), nullable=False),
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("message", pa.string()),
        pa.field("bytes_read", pa.int64()),
        pa.field("ingest_run_id", pa.string(), nullable=False),
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)


def column_name(tag: int) -> str:
    """Column name of a tag: its keyword, or ``Tag_GGGGEEEE`` for private/unknown sequences."""
    column = None if tag >> 16 & 1 else dictionary_column(tag)
    return column[0] if column is not None else f"Tag_{tag:08X}"


def _is_sequence_column(tag: int) -> bool:
    column = None if tag >> 16 & 1 else dictionary_column(tag)
    return column is None or column[1] == "SQ"


def _leaf_type(tag: int) -> pa.DataType:
    """Arrow type of a leaf column; STRING for a VR with no type of its own.

    The flattener never reports such a path (``column_path_problem``); the fallback keeps the
    run-level steps (column choice, schema, writers) total whatever a path holds, so one odd
    object can never fail a run. ``commit_run`` counts such columns in the run record.
    """
    column = dictionary_column(tag)
    if column is None:
        return pa.string()
    _name, vr, repeated = column
    arrow_type = _ARROW_TYPE_BY_BIGQUERY_TYPE.get(BIGQUERY_TYPE_BY_VR.get(vr, ""), pa.string())
    return pa.list_(arrow_type) if repeated else arrow_type


@functools.lru_cache(maxsize=65536)
def column_path_problem(path: ColumnPath) -> str | None:
    """Why a column path cannot be a typed column of dicom_metadata; None when it can.

    Checked for every path an object reports, where it is flattened, so that a stray item or
    delimitation tag (group FFFE), or a VR without a warehouse type, stays in dicom_elements
    instead of reaching the run's schema.
    """
    if not path:
        return "empty column path"
    if any(tag >> 16 == 0xFFFE for tag in path):
        return "item or delimitation tag used as an attribute"
    if len(path) > MAX_SEQUENCE_COLUMN_DEPTH + 1:
        return "column nested deeper than the record limit"
    if not all(_is_sequence_column(tag) for tag in path[:-1]):
        return "attribute that is not a sequence holds columns"
    last = path[-1]
    if _is_sequence_column(last):
        return None
    column = dictionary_column(last)
    if column is None or BIGQUERY_TYPE_BY_VR.get(column[1]) in (None, "RECORD"):
        return "attribute VR has no column type"
    return None


def _level_fields(tree: Mapping[int, dict]) -> list[pa.Field]:
    fields = []
    for tag in sorted(tree):
        if _is_sequence_column(tag):
            item_type = pa.struct(
                [*_level_fields(tree[tag]), pa.field("OtherElements", OTHER_ELEMENTS_TYPE)]
            )
            fields.append(pa.field(column_name(tag), pa.list_(item_type)))
        else:
            fields.append(pa.field(column_name(tag), _leaf_type(tag)))
    return fields


def keyword_paths(keywords: Iterable[str]) -> set[ColumnPath]:
    """Top-level column paths of the given keywords (those the views always need)."""
    paths: set[ColumnPath] = set()
    for keyword in keywords:
        tag = tag_for_keyword(keyword)
        if tag is not None and dictionary_column(tag) is not None:
            paths.add((tag,))
    return paths


def metadata_schema(
    paths: Iterable[ColumnPath], extra_columns: Mapping[str, pa.DataType] | None = None
) -> pa.Schema:
    """The dicom_metadata schema for a set of column paths, in DICOM tag order.

    Keyword columns come first (file meta group 0002 leads), then OtherElements, then the
    provenance columns and any extra manifest columns.
    """
    tree: dict[int, Any] = {}
    for path in paths:
        node = tree
        for tag in path:
            node = node.setdefault(tag, {})
    fields = _level_fields(tree)
    fields.append(pa.field("OtherElements", OTHER_ELEMENTS_TYPE))
    fields.extend(PROVENANCE_FIELDS)
    for name, arrow_type in (extra_columns or {}).items():
        fields.append(pa.field(name, arrow_type))
    return pa.schema(fields)
