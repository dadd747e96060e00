"""Everything a publish will do, computed from the warehouse alone (no credentials).

How the warehouse maps to BigQuery, and why:

- Every committed run is kept, as in the warehouse folder: ``<table>_history`` tables hold the
  rows of all runs of dicom_metadata, dicom_elements, ingest_errors and the ledger
  (ingest_object_events). The names ``dicom_metadata``, ``dicom_elements`` and ``ingest_errors``
  are views that keep, for each source_url, the rows of the latest run that read it unless a
  later run's full listing found it deleted: the rule DuckDB applies in
  ``warehouse.build_duckdb``, so both engines answer alike and re-ingesting never doubles a row.
- The history tables are partitioned by day: a run's rows go to the partition of its UTC start
  day (dicom_metadata and ingest_errors on their ``ingested_at`` column, the ledger on
  ``listed_at``, dicom_elements, which has no time column, by ingestion-time partition named by
  the same day). A load replaces a
  whole partition: the first run of a day is loaded with WRITE_TRUNCATE into ``table$YYYYMMDD``,
  that day's later runs with WRITE_APPEND right after it, in the same publish. Publishing again,
  after a crash or on purpose, reloads whole days, so no write can double a row.
- Which days to load: every day the first time; afterwards only the days of runs that the
  dataset's ``ingest_runs`` table (rewritten at the end of each publish) does not list. A stale or
  missing ``ingest_runs`` only makes a publish reload more days.
- One load job per run and table (normally one per table: an ingest makes one run), from the
  run's shards in Cloud Storage with one wildcard URI per run folder (all shards of a run share
  one schema, which BigQuery requires of a wildcard), declaring the run's own schema
  (``_bigquery_schema.json``) so that the file and the job schema always agree. The table is
  created (or widened) beforehand with the union of every run's schema, its descriptions,
  partitioning and clustering; ALLOW_FIELD_ADDITION is set as well, for tables widened by hand.
- Clustering cuts what queries scan: dicom_metadata on StudyInstanceUID, SeriesInstanceUID,
  SOPInstanceUID (lookups and joins by UID read only the blocks of those UIDs); dicom_elements on
  tag, then source_url (a query for one attribute reads only that tag's blocks);
  ingest_errors on stage and error_type; the ledger on outcome, then source_url (the
  current-state views read only its ``deleted`` events).
- The views of ``sql/`` are created after the tables, in dependency order, qualified with the
  dataset, with the descriptions of their comments; ``dicom_uid_names`` (which ``instances``
  joins) is loaded from pydicom's UID dictionary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from dicomwarehouse.bigquery.layout import PUBLISHED_TABLES, WarehouseRun, read_warehouse
from dicomwarehouse.bigquery.sql import (
    CURRENT_OBJECTS,
    CURRENT_VIEWS,
    current_view_sql,
    qualify,
    valid_dataset_name,
    view_ddl,
)
from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.objectstore import LocalStore, ObjectStore
from dicomwarehouse.tables.bigquery_schema import (
    INGEST_RUNS_SCHEMA,
    INGEST_RUNS_TABLE,
    Field,
    arrow_schema_to_bigquery,
    count_columns,
    sort_metadata_fields,
    union_schemas,
)
from dicomwarehouse.tables.descriptions import TABLE_DESCRIPTIONS
from dicomwarehouse.tables.limits import BIGQUERY_MAX_COLUMNS
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import BIGQUERY_MAX_RECORD_DEPTH
from dicomwarehouse.warehouse.internal_sql import load_internal
from dicomwarehouse.warehouse.layout import EVENTS_TABLE
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA
from dicomwarehouse.warehouse.views import UID_NAMES_TABLE, load_views, uid_names_table

__all__ = [
    "CLUSTERING",
    "INGEST_RUNS_SCHEMA",
    "INGEST_RUNS_TABLE",
    "LoadStep",
    "PlanError",
    "PublishPlan",
    "TableSpec",
    "Upload",
    "ViewStep",
    "build_plan",
    "check_names",
    "history_table",
]

#: Clustering columns of each history table (see the module docstring).
CLUSTERING: dict[str, tuple[str, ...]] = {
    "dicom_metadata": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
    "dicom_elements": ("tag", "source_url"),
    "ingest_errors": ("stage", "error_type"),
    EVENTS_TABLE: ("outcome", "source_url"),
}

#: The column a history table is day-partitioned on (None: by ingestion time).
_PARTITION_FIELD: dict[str, str | None] = {
    "dicom_metadata": "ingested_at",
    "dicom_elements": None,
    "ingest_errors": "ingested_at",
    EVENTS_TABLE: "listed_at",
}

_PROJECT = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,61}[a-z0-9]$")
_LOCATION = re.compile(r"^[A-Za-z0-9-]{2,64}$")


class PlanError(UsageError):
    """A publish that cannot be planned: bad names, a warehouse BigQuery cannot hold."""


def history_table(table: str) -> str:
    """The BigQuery table that holds every run of a warehouse table."""
    return f"{table}_history"


@dataclass(frozen=True)
class TableSpec:
    """A BigQuery table a publish creates or widens."""

    name: str
    description: str
    schema: tuple[Field, ...]
    partitioned: bool = False  # by DAY: on partition_field, else by ingestion time
    partition_field: str | None = None
    clustering: tuple[str, ...] = ()


@dataclass(frozen=True)
class LoadStep:
    """One load job: one run's shards of one table into one day partition."""

    table: str  # the destination table
    run_id: str
    partition: str  # YYYYMMDD
    write_disposition: str  # WRITE_TRUNCATE for a day's first run, then WRITE_APPEND
    source_uris: tuple[str, ...]
    files: int
    size: int
    schema: tuple[Field, ...]

    @property
    def destination(self) -> str:
        """The table with its partition decorator."""
        return f"{self.table}${self.partition}"


@dataclass(frozen=True)
class Upload:
    """A local shard to copy to the staging prefix before the loads."""

    source: str
    target: str
    size: int


@dataclass(frozen=True)
class ViewStep:
    """A view to create or replace, with its DDL."""

    name: str
    ddl: str
    columns: int  # described columns (0: those of its source)


@dataclass(frozen=True)
class PublishPlan:
    """What ``publish bigquery`` will do; ``describe()`` is the ``--dry-run`` output."""

    warehouse: str
    project: str
    dataset: str
    location: str | None
    staging: str | None
    runs: tuple[WarehouseRun, ...]
    tables: tuple[TableSpec, ...]
    uploads: tuple[Upload, ...]
    loads: tuple[LoadStep, ...]
    views: tuple[ViewStep, ...]
    metadata_columns: tuple[int, int, int]  # (fields, leaves, deepest RECORD level)
    notes: tuple[str, ...] = field(default=())

    @property
    def dataset_id(self) -> str:
        return f"{self.project}.{self.dataset}"

    def table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{name}"

    def table(self, name: str) -> TableSpec:
        return next(spec for spec in self.tables if spec.name == name)

    @property
    def is_local(self) -> bool:
        return not self.warehouse.startswith("gs://")

    def problems(self) -> list[str]:
        """Why the plan can be shown but not carried out (empty when it can be)."""
        if self.is_local and self.staging is None:
            return ["a local warehouse needs --staging gs://bucket/prefix to load from"]
        return []

    def check_publishable(self) -> None:
        """Raise PlanError when the plan can be shown but not carried out."""
        for problem in self.problems():
            raise PlanError(problem)

    def only_days(self, days: Mapping[str, Iterable[str]]) -> PublishPlan:
        """The plan with only the loads of the given days per history table (and the uploads
        they read): what an incremental publish runs."""
        wanted = {table: set(d) for table, d in days.items()}
        loads = tuple(s for s in self.loads if s.partition in wanted.get(s.table, ()))
        folders = {uri.rsplit("/", 1)[0] + "/" for step in loads for uri in step.source_uris}
        uploads = tuple(u for u in self.uploads if u.target.rsplit("/", 1)[0] + "/" in folders)
        return replace(self, loads=loads, uploads=uploads)

    def ingest_runs_table(self, published_at: Any) -> pa.Table:
        """The rows of ``ingest_runs``: one per run of the warehouse."""
        rows = []
        for run in self.runs:
            rows.append(
                {
                    "run_id": run.run_id,
                    "started_at": run.started_at,
                    "objects": run.record.get("objects_read", run.record.get("objects")),
                    "instances": run.record.get("instances"),
                    "elements": run.record.get("elements"),
                    "errors": run.record.get("errors"),
                    "attributes_left_out": run.left_out.get("left_out_count", 0),
                    "deep_sequences_left_out": run.left_out.get("too_deep", {}).get("sequences", 0),
                    "summary_json": json.dumps(run.record, sort_keys=True, default=str),
                    "published_at": published_at,
                }
            )
        return pa.Table.from_pylist(rows, schema=INGEST_RUNS_SCHEMA)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-able data (``--dry-run --format json``)."""
        fields, leaves, depth = self.metadata_columns
        return {
            "warehouse": self.warehouse,
            "project": self.project,
            "dataset": self.dataset,
            "location": self.location,
            "staging": self.staging,
            "runs": [
                {"run_id": run.run_id, "day": run.day, **_left_out_counts(run)} for run in self.runs
            ],
            "dicom_metadata_columns": {
                "fields": fields,
                "leaf_columns": leaves,
                "deepest_record_level": depth,
                "max_columns": BIGQUERY_MAX_COLUMNS,
                "max_record_level": BIGQUERY_MAX_RECORD_DEPTH,
            },
            "tables": [
                {
                    "name": spec.name,
                    "fields": count_columns(spec.schema)[0],
                    "leaf_columns": count_columns(spec.schema)[1],
                    "top_level_columns": len(spec.schema),
                    "partitioning": _partitioning(spec),
                    "clustering": list(spec.clustering),
                }
                for spec in self.tables
            ],
            "uploads": [asdict(upload) for upload in self.uploads],
            "loads": [
                {
                    "destination": step.destination,
                    "run_id": step.run_id,
                    "write_disposition": step.write_disposition,
                    "source_uris": list(step.source_uris),
                    "files": step.files,
                    "bytes": step.size,
                    "schema_fields": count_columns(step.schema)[0],
                }
                for step in self.loads
            ],
            "views": [view.name for view in self.views],
            "notes": list(self.notes),
            "publishable": not self.problems(),
            "problems": self.problems(),
        }

    def describe(self) -> str:
        """The plan as text, one step a line."""
        fields, leaves, depth = self.metadata_columns
        location = self.location or "the dataset's (US when it is created)"
        lines = [
            f"publish {self.warehouse} to BigQuery dataset {self.dataset_id} (location {location})",
            f"dataset: create {self.dataset_id} if missing",
            f"runs: {len(self.runs)} ({', '.join(run.run_id for run in self.runs)})",
            f"dicom_metadata: {fields} columns in all (limit {BIGQUERY_MAX_COLUMNS}), "
            f"{leaves} leaf columns, deepest RECORD level {depth} "
            f"(limit {BIGQUERY_MAX_RECORD_DEPTH}); left to dicom_elements only: "
            f"{sum(_left_out_counts(r)['attributes_left_out'] for r in self.runs)} rare "
            f"attributes, {sum(_left_out_counts(r)['deep_sequences_left_out'] for r in self.runs)}"
            " sequences nested too deep",
        ]
        for spec in self.tables:
            total, spec_leaves, _ = count_columns(spec.schema)
            lines.append(
                f"table {spec.name}: {len(spec.schema)} top-level columns, {spec_leaves} leaf "
                f"columns, {total} in all; {_partitioning(spec)}"
                + (f"; clustered by {', '.join(spec.clustering)}" if spec.clustering else "")
            )
        if self.uploads:
            size = sum(upload.size for upload in self.uploads)
            lines.append(
                f"stage: {len(self.uploads)} Parquet files ({size / 1e6:.1f} MB) to "
                f"{self.staging} (files already there unchanged are skipped)"
            )
        for step in self.loads:
            lines.append(
                f"load {step.destination} {step.write_disposition} from "
                f"{', '.join(step.source_uris)} ({step.files} files, {step.size / 1e6:.1f} MB, "
                f"schema of {count_columns(step.schema)[0]} fields)"
            )
        lines.append(f"load {UID_NAMES_TABLE} WRITE_TRUNCATE from pydicom's UID dictionary")
        lines.append(f"load {INGEST_RUNS_TABLE} WRITE_TRUNCATE: {len(self.runs)} runs")
        lines.append("views, in order: " + ", ".join(view.name for view in self.views))
        lines.extend(f"note: {note}" for note in self.notes)
        return "\n".join(lines)


def _left_out_counts(run: WarehouseRun) -> dict[str, int]:
    return {
        "attributes_left_out": run.left_out.get("left_out_count", 0),
        "deep_sequences_left_out": run.left_out.get("too_deep", {}).get("sequences", 0),
    }


def _partitioning(spec: TableSpec) -> str:
    if not spec.partitioned:
        return "not partitioned"
    if spec.partition_field:
        return f"partitioned by DAY({spec.partition_field})"
    return "partitioned by ingestion DAY (the run's start day)"


def check_names(project: str, dataset: str, location: str | None, staging: str | None) -> None:
    """Raise PlanError (one line) for a name BigQuery or Cloud Storage would refuse."""
    if not _PROJECT.match(project):
        raise PlanError(f"--project {project!r} is not a Google Cloud project id")
    if not valid_dataset_name(dataset):
        raise PlanError(f"--dataset {dataset!r}: use letters, digits and underscores only")
    if location is not None and not _LOCATION.match(location):
        raise PlanError(f"--location {location!r} is not a BigQuery location")
    if staging is not None and not re.match(r"^gs://[a-z0-9][a-z0-9._-]{2,221}(/.*)?$", staging):
        raise PlanError(f"--staging {staging!r} must be a gs://bucket/prefix")


def _missing_manifest_fields(schema: list[Field]) -> list[Field]:
    """The manifest columns every run now has that no published run has: runs committed
    before one became such a column lack it, and the views that read it must still bind."""
    names = {field["name"].lower() for field in schema}
    missing = [name for name in IDC_MANIFEST_COLUMNS if name.lower() not in names]
    arrow = pa.schema([pa.field(name, pa.string()) for name in missing])
    return arrow_schema_to_bigquery(arrow, "dicom_metadata")


def _history_specs(runs: list[WarehouseRun]) -> list[TableSpec]:
    specs = []
    for table in PUBLISHED_TABLES:
        schemas = [run.tables[table].schema for run in runs if table in run.tables]
        if not schemas:  # no run wrote a ledger: the table still exists for the views
            schemas = [tuple(arrow_schema_to_bigquery(EVENTS_SCHEMA, table))]
        schema = union_schemas(schemas)
        if table == "dicom_metadata":
            schema = sort_metadata_fields(schema + _missing_manifest_fields(schema))
        names = {f["name"] for f in schema}
        specs.append(
            TableSpec(
                name=history_table(table),
                description=TABLE_DESCRIPTIONS[history_table(table)],
                schema=tuple(schema),
                partitioned=True,
                partition_field=_PARTITION_FIELD[table],
                clustering=tuple(c for c in CLUSTERING[table] if c in names),
            )
        )
    return specs


def _loads(runs: list[WarehouseRun], staging: str | None) -> tuple[list[LoadStep], list[Upload]]:
    loads: list[LoadStep] = []
    uploads: list[Upload] = []
    for table in PUBLISHED_TABLES:
        first_of_day: set[str] = set()
        for run in sorted(runs, key=lambda r: (r.day, r.run_id)):
            if table not in run.tables:
                continue
            run_table = run.tables[table]
            if run_table.folder.startswith("gs://"):
                folder = run_table.folder
            elif staging is not None:
                folder = f"{staging.rstrip('/')}/{table}/run-{run.run_id}/"
                for shard in run_table.shards:
                    name = shard.url.rsplit("/", 1)[-1]
                    uploads.append(Upload(shard.url, folder + name, shard.size))
            else:
                folder = run_table.folder
            disposition = "WRITE_APPEND" if run.day in first_of_day else "WRITE_TRUNCATE"
            first_of_day.add(run.day)
            loads.append(
                LoadStep(
                    table=history_table(table),
                    run_id=run.run_id,
                    partition=run.day,
                    write_disposition=disposition,
                    source_uris=(folder + "*.parquet",),
                    files=len(run_table.shards),
                    size=run_table.size,
                    schema=run_table.schema,
                )
            )
    return loads, uploads


def _views(project: str, dataset: str) -> list[ViewStep]:
    # current_objects is documented in its file; the current-state views are described as the
    # tables they stand for (TABLE_DESCRIPTIONS), their columns as those of the history tables.
    rule = load_internal(CURRENT_OBJECTS)
    documented = {CURRENT_OBJECTS: (rule.description, rule.column_descriptions)}
    steps = []
    for name, sql in current_view_sql(project, dataset).items():
        description, columns = documented.get(name, (None, {}))
        ddl = view_ddl(project, dataset, name, sql, description, columns)
        steps.append(ViewStep(name, ddl, len(columns)))
    definitions = load_views()
    names = {*CURRENT_VIEWS, CURRENT_OBJECTS, UID_NAMES_TABLE, *(v.name for v in definitions)}
    for view in definitions:
        sql = qualify(view.bigquery_sql, project, dataset, names)
        ddl = view_ddl(project, dataset, view.name, sql, view.description, view.column_descriptions)
        steps.append(ViewStep(view.name, ddl, len(view.column_descriptions)))
    return steps


def build_plan(
    warehouse: str,
    project: str,
    dataset: str,
    *,
    location: str | None = None,
    staging: str | None = None,
    store: ObjectStore | None = None,
) -> PublishPlan:
    """Plan the publish of ``warehouse`` (a folder or gs:// prefix) to ``project.dataset``.

    Reads only the warehouse (through ``store``; a local folder needs none). Raises PlanError
    (or WarehouseError) with a one-line reason when the publish cannot work as asked.
    """
    check_names(project, dataset, location, staging)
    if not warehouse.startswith("gs://"):
        root = Path(warehouse)
        if not root.is_dir():
            raise PlanError(f"no warehouse at {warehouse}; run ingest first")
        warehouse = root.resolve().as_posix()
        store = LocalStore()
    elif store is None:
        raise PlanError("reading a gs:// warehouse needs a Cloud Storage client")
    runs = read_warehouse(warehouse, store)
    notes = []
    if not warehouse.startswith("gs://") and staging is None:
        notes.append(
            "a local warehouse is loaded from Cloud Storage: publishing needs --staging "
            "gs://bucket/prefix (the source URIs above are local paths)"
        )
    tables = _history_specs(runs)
    metadata_columns = count_columns(tables[0].schema)
    fields, _leaves, depth = metadata_columns
    if fields > BIGQUERY_MAX_COLUMNS or depth > BIGQUERY_MAX_RECORD_DEPTH:
        raise PlanError(
            f"dicom_metadata of all runs together has {fields} columns and RECORDs nested "
            f"{depth} deep; BigQuery allows {BIGQUERY_MAX_COLUMNS} and "
            f"{BIGQUERY_MAX_RECORD_DEPTH} (runs committed before the column limit rule, or "
            "ingested into another warehouse folder)"
        )
    tables.append(
        TableSpec(
            UID_NAMES_TABLE,
            TABLE_DESCRIPTIONS[UID_NAMES_TABLE],
            tuple(arrow_schema_to_bigquery(uid_names_table().schema, UID_NAMES_TABLE)),
        )
    )
    tables.append(
        TableSpec(
            INGEST_RUNS_TABLE,
            TABLE_DESCRIPTIONS[INGEST_RUNS_TABLE],
            tuple(arrow_schema_to_bigquery(INGEST_RUNS_SCHEMA, INGEST_RUNS_TABLE)),
        )
    )
    loads, uploads = _loads(runs, staging)
    return PublishPlan(
        warehouse=warehouse,
        project=project,
        dataset=dataset,
        location=location,
        staging=staging.rstrip("/") if staging else None,
        runs=tuple(runs),
        tables=tuple(tables),
        uploads=tuple(uploads),
        loads=tuple(loads),
        views=tuple(_views(project, dataset)),
        metadata_columns=metadata_columns,
        notes=tuple(notes),
    )
