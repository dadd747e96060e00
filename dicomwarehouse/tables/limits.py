"""BigQuery's schema limits, enforced when a run's dicom_metadata schema is chosen.

BigQuery refuses a table with more than 15 levels of nested RECORDs or more than 10,000
columns. The depth limit is met in ``flatten`` (sequences nested deeper than
``schema.MAX_SEQUENCE_COLUMN_DEPTH`` stay out of dicom_metadata). The column limit is met
here, when the union of a run's column paths is turned into its schema:

Rule. Count the columns of the schema the run would have, together with every column the
warehouse's earlier runs already gave dicom_metadata (BigQuery holds all runs in one table, so
the union across runs must fit, not only each run). While that count exceeds the limit, leave
out the rarest new attribute: the column path seen in the fewest of the run's objects; among
equally rare paths the one last in tag order (tags compared from the top level down) goes
first. Columns the views read, and columns earlier runs already have, are never left out.
A sequence is left out only after everything inside it (a nested path is never more common
than its sequence, and sorts after it), so the schema stays a tree.

What is left out stays in dicom_elements, which is lossless, and is counted in the run's
summary. The rule depends only on the run's objects and the warehouse's earlier runs, never on
the order in which workers met the objects, so it is deterministic.

How columns are counted. BigQuery's errors speak of both "leaf fields" and "columns"; the
documentation of the limit counts "columns and nested columns". To stay inside either reading,
the limit is applied to *every* field at every depth, RECORDs included (a PN column is 19
fields: the PN record, its three component groups, and their 15 strings). The leaf count (the
non-RECORD fields) is always smaller and is reported beside it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from dicomwarehouse.tables.schema import ColumnPath, metadata_schema

__all__ = [
    "BIGQUERY_MAX_COLUMNS",
    "ColumnChoice",
    "choose_columns",
    "field_counts",
    "record_depth",
]

#: BigQuery's limit on the columns of a table (nested columns included).
BIGQUERY_MAX_COLUMNS = 10_000


def field_counts(arrow_type: pa.DataType) -> tuple[int, int]:
    """(fields, leaves) nested inside a type, the field of the type itself not counted.

    Lists are transparent (a REPEATED field is one field); every struct child is a field,
    a RECORD when it is itself a struct (or a list of structs), a leaf otherwise.
    """
    while pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        arrow_type = arrow_type.value_type
    if not pa.types.is_struct(arrow_type):
        return 0, 0
    fields = leaves = 0
    for child in arrow_type:
        child_fields, child_leaves = field_counts(child.type)
        fields += 1 + child_fields
        leaves += child_leaves if _is_record(child.type) else 1
    return fields, leaves


def _is_record(arrow_type: pa.DataType) -> bool:
    while pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        arrow_type = arrow_type.value_type
    return pa.types.is_struct(arrow_type)


def schema_field_counts(schema: pa.Schema) -> tuple[int, int]:
    """(fields, leaves) of a whole schema, as BigQuery counts its columns."""
    return field_counts(pa.struct(list(schema)))


def record_depth(arrow_type: pa.DataType) -> int:
    """Deepest RECORD nesting inside a type: a struct (or list of structs) is one level."""
    while pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        arrow_type = arrow_type.value_type
    if not pa.types.is_struct(arrow_type):
        return 0
    return 1 + max((record_depth(child.type) for child in arrow_type), default=0)


@functools.cache
def _base_fields(extra_columns: tuple[str, ...]) -> int:
    """Fields of a dicom_metadata schema without any keyword column (provenance and all)."""
    schema = metadata_schema((), dict.fromkeys(extra_columns, pa.string()))
    return schema_field_counts(schema)[0]


@functools.cache
def _own_fields(tag: int) -> int:
    """Fields one column path adds by itself, its nested paths not included.

    Depends only on the path's last tag: a sequence adds its RECORD and the OtherElements
    of its items (5 fields), a PN 19, any other attribute 1.
    """
    return _base_fields_with((tag,)) - _base_fields(())


def _base_fields_with(path: ColumnPath) -> int:
    return schema_field_counts(metadata_schema([path]))[0]


@dataclass(frozen=True)
class ColumnChoice:
    """The columns a run's dicom_metadata gets, and what the column limit left out.

    ``paths`` are the kept column paths (sorted); ``left_out`` maps each left-out path to the
    number of the run's objects that had it. ``fields`` counts every field of the warehouse's
    union after this run (RECORDs included), the number held to ``limit``.
    """

    paths: tuple[ColumnPath, ...]
    left_out: dict[ColumnPath, int] = field(default_factory=dict)
    fields: int = 0
    limit: int = BIGQUERY_MAX_COLUMNS

    def to_json(self) -> dict:
        """What ``_columns_left_out.json`` holds beside the run's shards."""
        return {
            "rule": "rarest new column paths first (fewest objects; ties: last in tag order)",
            "limit": self.limit,
            "warehouse_fields": self.fields,
            "left_out_count": len(self.left_out),
            "left_out": [
                {"path": list(path), "objects": count}
                for path, count in sorted(self.left_out.items())
            ],
        }


def choose_columns(
    counts: Mapping[ColumnPath, int],
    *,
    required: Iterable[ColumnPath] = (),
    existing: Iterable[ColumnPath] = (),
    extra_columns: Iterable[str] = (),
    limit: int = BIGQUERY_MAX_COLUMNS,
) -> ColumnChoice:
    """Apply the column limit rule (see the module docstring) to a run's path counts.

    ``counts`` maps every column path the run met to the number of objects that had it;
    ``required`` are paths the views need (always kept, even when no object had them);
    ``existing`` are the paths earlier runs of the warehouse committed.
    """
    required = set(required)
    existing = set(existing)
    run_paths = set(counts) | required
    union = run_paths | existing
    total = _base_fields(tuple(extra_columns)) + sum(_own_fields(p[-1]) for p in union)
    left_out: dict[ColumnPath, int] = {}
    if total > limit:
        candidates = sorted(run_paths - required - existing, reverse=True)
        candidates.sort(key=lambda path: counts.get(path, 0))  # stable: ties stay last-first
        for path in candidates:
            if total <= limit:
                break
            left_out[path] = counts.get(path, 0)
            total -= _own_fields(path[-1])
    kept = tuple(sorted(run_paths - left_out.keys()))
    return ColumnChoice(kept, left_out, total, limit)
