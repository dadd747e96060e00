"""Columns of dicom_metadata that every run has, whether or not its files had the attribute.

A run's dicom_metadata has a column for each attribute its files had. SQL that names an
attribute absent from the data (``AnatomicRegionModifierSequence`` in a collection without
modifiers) would not bind, on DuckDB or in BigQuery, so the columns that SQL reads are made
*required*: the run's schema has them, NULL in every row that lacks the attribute. Two sources:

- the SQL that ships with the package: :func:`sql_column_paths` reads the keyword paths a
  statement names, nested ones included (``UNNEST(SegmentSequence) AS segment`` then
  ``segment.AnatomicRegionSequence[OFFSET(0)].CodeValue`` reads
  SegmentSequence > AnatomicRegionSequence > CodeValue);
- the user's list (``dicomwarehouse ingest --required-columns FILE``): one keyword path a line,
  ``SegmentSequence.AnatomicRegionSequence.CodeValue`` (:func:`read_required_columns`).

Required paths are prefix-closed (:func:`with_prefixes`): a nested column needs its sequence,
and the column limit (``limits.choose_columns``) never leaves out a required path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import sqlglot
from pydicom.datadict import tag_for_keyword
from sqlglot import exp

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.urls import idc_object_uuids
from dicomwarehouse.tables.schema import ColumnPath
from dicomwarehouse.tables.vr import dictionary_column

__all__ = [
    "COLLECTION_COLUMN",
    "CRDC_INSTANCE_COLUMN",
    "CRDC_SERIES_COLUMN",
    "CRDC_STUDY_COLUMN",
    "DICOM_ALL_COLUMNS",
    "IDC_MANIFEST_COLUMNS",
    "RequiredColumnsError",
    "parse_column_path",
    "read_required_columns",
    "sql_column_paths",
    "sql_paths_and_outputs",
    "url_manifest_values",
    "with_prefixes",
]

#: The manifest column IDC queries filter on; every run has it (NULL without a manifest
#: that gives it), so that ``WHERE collection_id = ...`` binds on any warehouse.
COLLECTION_COLUMN = "collection_id"

#: IDC's catalog identifiers of an object (the ``crdc_*_uuid`` columns of its dicom_all): a
#: manifest column of the same name gives them, else the object's URL when it follows IDC's
#: bucket layout (:func:`url_manifest_values`; never the study's, which no URL names).
CRDC_STUDY_COLUMN = "crdc_study_uuid"
CRDC_SERIES_COLUMN = "crdc_series_uuid"
CRDC_INSTANCE_COLUMN = "crdc_instance_uuid"

#: The manifest columns every run has, NULL where nothing gave a value, so that IDC's SQL
#: naming them binds on any warehouse (STRING columns of dicom_metadata, like any manifest's).
IDC_MANIFEST_COLUMNS = (
    COLLECTION_COLUMN,
    CRDC_STUDY_COLUMN,
    CRDC_SERIES_COLUMN,
    CRDC_INSTANCE_COLUMN,
)

#: Columns the dicom_all view adds under the names of IDC's provenance columns (see
#: sql/dicom_all.sql); a manifest column of one of these names is renamed, not shadowed.
DICOM_ALL_COLUMNS = ("gcs_url", "aws_url", "instance_size")

_INDEX = re.compile(r"\[[^\]]*\]")


class RequiredColumnsError(UsageError):
    """A required-columns entry that names no column of dicom_metadata (one-line message)."""


def url_manifest_values(url: str) -> dict[str, str]:
    """The IDC manifest columns an object's URL gives: its CRDC series and instance UUIDs when
    the URL follows IDC's bucket layout (``urls.idc_object_uuids``), else nothing.

    A manifest's own column of the same name wins over these (the ingest applies the manifest's
    values after them), so they only fill what no manifest said.
    """
    series, instance = idc_object_uuids(url)
    values = {CRDC_SERIES_COLUMN: series, CRDC_INSTANCE_COLUMN: instance}
    return {column: value for column, value in values.items() if value is not None}


def _column(keyword: str) -> tuple[int, str] | None:
    """(tag, VR) of a keyword that is a dicom_metadata column, else None."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return None
    column = dictionary_column(tag)
    return None if column is None else (tag, column[1])


def parse_column_path(text: str) -> ColumnPath:
    """``SegmentSequence.AnatomicRegionSequence.CodeValue`` -> its tags, top level first.

    Item indices (``SegmentSequence[0]``, ``SegmentSequence[]``) are allowed and ignored. Raises
    RequiredColumnsError for an unknown keyword, a keyword that is not a column (binary VRs),
    or a keyword under an attribute that is not a sequence.
    """
    keywords = [part.strip() for part in _INDEX.sub("", text.strip()).split(".")]
    if not keywords or not all(keywords):
        raise RequiredColumnsError(f"{text!r} is not a keyword path such as A.B.C")
    path: list[int] = []
    parent_vr = "SQ"
    for keyword in keywords:
        if parent_vr != "SQ":
            raise RequiredColumnsError(
                f"{text!r}: {path and keywords[len(path) - 1]} is not a sequence, "
                f"so it has no {keyword}"
            )
        column = _column(keyword)
        if column is None:
            known = tag_for_keyword(keyword) is not None
            raise RequiredColumnsError(
                f"{text!r}: {keyword} is "
                + ("a binary attribute, not a column" if known else "not a DICOM keyword")
            )
        path.append(column[0])
        parent_vr = column[1]
    return tuple(path)


def read_required_columns(path: str | Path) -> set[ColumnPath]:
    """The keyword paths of a required-columns file: one a line, ``#`` comments and blank lines
    skipped. Raises RequiredColumnsError (naming the file and line) for a bad line."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise RequiredColumnsError(f"cannot read {path}: {error.strerror or error}") from None
    paths: set[ColumnPath] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            paths.add(parse_column_path(entry))
        except RequiredColumnsError as error:
            raise RequiredColumnsError(f"{path}, line {number}: {error}") from None
    return paths


def with_prefixes(paths: Iterable[ColumnPath]) -> set[ColumnPath]:
    """The paths and every sequence above them (a nested column needs its sequences)."""
    closed: set[ColumnPath] = set()
    for path in paths:
        closed.update(path[:end] for end in range(1, len(path) + 1))
    return closed


# --- paths that SQL reads -------------------------------------------------------------------


def _names(node: exp.Expression) -> list[str] | None:
    """``a.b[OFFSET(0)].c`` -> ["a", "b", "c"]; None for anything but a path expression."""
    if isinstance(node, exp.Column):
        if isinstance(node.this, exp.Star):
            return None
        return [part.name for part in node.parts]
    if isinstance(node, exp.Dot):
        head = _names(node.this)
        return None if head is None else [*head, node.expression.name]
    if isinstance(node, exp.Bracket):
        return _names(node.this)
    return None


def _column_vr(tag: int) -> str | None:
    column = dictionary_column(tag)
    return None if column is None else column[1]


Env = dict[str, ColumnPath]


def _resolve(names: list[str], env: Env) -> ColumnPath:
    """The keyword path a name chain reads (possibly empty).

    The chain starts at a name the scope binds (an UNNEST range variable, or an output column
    of a CTE or subquery that is a path), at a column after a table alias (``t.PatientName``),
    or at a keyword; it continues while each name is a keyword under a sequence.
    """
    path: list[int] = []
    rest = names
    if names and names[0].lower() in env:
        path, rest = list(env[names[0].lower()]), names[1:]
    elif len(names) > 1 and _column(names[0]) is None:
        if names[1].lower() in env:  # cte.column
            path, rest = list(env[names[1].lower()]), names[2:]
        else:
            rest = names[1:]
    parent_is_sequence = not path or _column_vr(path[-1]) == "SQ"
    for name in rest:
        column = _column(name)
        if column is None or not parent_is_sequence:
            break
        path.append(column[0])
        parent_is_sequence = column[1] == "SQ"
    return tuple(path)


class _PathScanner:
    """Reads the keyword paths of a statement with BigQuery's scoping of names, roughly:
    a FROM item sees the items before it, a query sees its CTEs and enclosing queries."""

    def __init__(self) -> None:
        self.paths: set[ColumnPath] = set()

    def _record(self, node: exp.Expression, env: Env) -> ColumnPath:
        names = _names(node)
        path = _resolve(names, env) if names else ()
        if path:
            self.paths.add(path)
        return path

    def _expressions(
        self, node: exp.Expression, env: Env, ctes: dict[str, Env] | None = None
    ) -> None:
        """Record the paths an expression reads; nested queries get their own scope."""
        for child in node.walk(prune=lambda n: n is not node and isinstance(n, exp.Query)):
            if child is not node and isinstance(child, exp.Query):
                self.query(child, env, ctes)
            elif isinstance(child, exp.Column | exp.Dot):
                self._record(child, env)

    def _scalar_subquery_path(
        self, node: exp.Expression, env: Env, ctes: dict[str, Env] | None
    ) -> ColumnPath:
        """The path a scalar subquery of one column returns (``(SELECT item.ConceptCodeSequence
        [SAFE_OFFSET(0)] FROM UNNEST(...) AS item ...) AS finding``), else ()."""
        if not isinstance(node, exp.Subquery) or not isinstance(node.this, exp.Select):
            return ()
        if len(node.this.expressions) != 1:
            return ()
        outputs = self.query(node.this, env, ctes)
        return next(iter(outputs.values())) if len(outputs) == 1 else ()

    def query(self, query: exp.Expression, env: Env, ctes: dict[str, Env] | None = None) -> Env:
        """Scan a query; return its output columns that are paths (name -> path).

        ``env`` binds the names of enclosing scopes, ``ctes`` the output paths of the CTEs
        visible here.
        """
        env = dict(env)
        ctes = dict(ctes or {})
        with_ = query.args.get("with_")
        if with_ is not None:
            for cte in with_.expressions:
                ctes[cte.alias_or_name.lower()] = self.query(cte.this, env, ctes)
        if isinstance(query, exp.Subquery):
            return self.query(query.this, env, ctes)
        if isinstance(query, exp.SetOperation):
            outputs = self.query(query.this, env, ctes)
            self.query(query.expression, env, ctes)
            return outputs
        if not isinstance(query, exp.Select):
            self._expressions(query, env)
            return {}
        from_ = query.args.get("from_")
        holders = ([from_] if from_ is not None else []) + list(query.args.get("joins") or [])
        for holder in holders:
            item = holder.this
            if isinstance(item, exp.Table) and item.name.lower() in ctes:
                env.update(ctes[item.name.lower()])
            elif isinstance(item, exp.Subquery | exp.Query):
                env.update(self.query(item, env, ctes))
            elif isinstance(item, exp.Unnest):
                alias = item.args.get("alias")
                columns = list(alias.columns) if alias is not None else []
                for expression in item.expressions:
                    path = self._record(expression, env)
                    self._expressions(expression, env, ctes)
                    if columns and path and _column_vr(path[-1]) == "SQ":
                        env[columns[0].name.lower()] = path
        for key, value in query.args.items():
            if key in ("with_", "from_"):
                continue
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, exp.Join):
                    if child.args.get("on") is not None:
                        self._expressions(child.args["on"], env, ctes)
                elif isinstance(child, exp.Expression):
                    self._expressions(child, env, ctes)
        outputs: Env = {}
        for projection in query.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                outputs.update(env)
                continue
            target = projection.this if isinstance(projection, exp.Alias) else projection
            names = _names(target)
            path = _resolve(names, env) if names else self._scalar_subquery_path(target, env, ctes)
            if path:  # an unnamed one keyed "" (a scalar subquery's single column)
                outputs[projection.alias_or_name.lower()] = path
        return outputs


def sql_column_paths(sql: str, tables: Mapping[str, Env] | None = None) -> set[ColumnPath]:
    """The keyword paths of dicom_metadata that GoogleSQL ``sql`` reads, nested ones too.

    ``PatientName.Alphabetic`` reads PatientName; ``UNNEST(SegmentSequence) AS segment`` then
    ``segment.AnatomicRegionSequence[OFFSET(0)].CodeValue`` reads SegmentSequence >
    AnatomicRegionSequence > CodeValue; an output column of a CTE that is a sequence item
    carries its path into the queries that read the CTE. A name that is not a keyword where it
    is read ends the path. ``tables`` gives the output paths of other views the statement
    reads by name (the outputs of :func:`sql_paths_and_outputs`), as if they were CTEs.
    The result is prefix-closed.
    """
    return sql_paths_and_outputs(sql, tables)[0]


def sql_paths_and_outputs(
    sql: str, tables: Mapping[str, Env] | None = None
) -> tuple[set[ColumnPath], Env]:
    """:func:`sql_column_paths` of ``sql``, and its output columns that are keyword paths.

    The outputs (lower-case name -> path) are what a view built from ``sql`` hands to the
    views that read it: ``measurement_groups.contentSequence`` is a ContentSequence item, so
    ``UNNEST(contentSequence.ContentSequence)`` in a view over it reads one level deeper.
    """
    scanner = _PathScanner()
    tables = {name.lower(): env for name, env in (tables or {}).items()}
    outputs: Env = {}
    for tree in sqlglot.parse(sql, read="bigquery"):
        if tree is not None:
            outputs = scanner.query(tree, {}, tables)
    return with_prefixes(scanner.paths), outputs
