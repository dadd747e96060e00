"""Carry out a publish plan through the thin client interface (see ``plan`` for the design).

Order, and why: the dataset first; then what the dataset already holds decides which days to
reload (``ingest_runs``); local shards are staged; the history tables are created or widened
before anything loads into them; the loads; the small tables; the views (which BigQuery checks
against the tables); ``ingest_runs`` last, so it never lists a run whose rows did not load.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.bigquery.clients import BigQueryApi, LoadResult
from dicomwarehouse.bigquery.jobs import (
    dataset_resource,
    file_load_config,
    history_load_config,
    schema_fields,
    table_resource,
)
from dicomwarehouse.bigquery.layout import PUBLISHED_TABLES
from dicomwarehouse.bigquery.plan import (
    INGEST_RUNS_TABLE,
    LoadStep,
    PlanError,
    PublishPlan,
    TableSpec,
    history_table,
)
from dicomwarehouse.io.objectstore import LocalStore, ObjectStore
from dicomwarehouse.tables.bigquery_schema import union_schemas
from dicomwarehouse.warehouse.views import UID_NAMES_TABLE, uid_names_table

__all__ = ["PublishError", "PublishReport", "days_to_load", "publish"]

logger = logging.getLogger(__name__)


class PublishError(PlanError):
    """The dataset cannot take the plan (another location, a table partitioned otherwise)."""


@dataclass
class PublishReport:
    """What a publish did."""

    dataset: str
    dataset_created: bool = False
    tables_created: list[str] = field(default_factory=list)
    tables_widened: list[str] = field(default_factory=list)
    uploaded: int = 0
    upload_skipped: int = 0
    loads: list[tuple[LoadStep, LoadResult]] = field(default_factory=list)
    days_skipped: int = 0
    views: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        """What a publish at the end of a run records for its launcher (``finish``)."""
        return {
            "dataset": self.dataset,
            "describe": self.describe(),
            "loads": [
                {
                    "destination": step.destination,
                    "run_id": step.run_id,
                    "write_disposition": step.write_disposition,
                    "source_uris": list(step.source_uris),
                    "output_rows": result.output_rows,
                }
                for step, result in self.loads
            ],
            "uploaded": self.uploaded,
            "days_skipped": self.days_skipped,
            "views": list(self.views),
        }

    def describe(self) -> str:
        """One line for the command's output."""
        rows = sum(result.output_rows for _, result in self.loads)
        return (
            f"published to {self.dataset}: {len(self.loads)} load jobs ({rows} rows), "
            f"{self.days_skipped} day partitions already published, "
            f"{self.uploaded} files staged ({self.upload_skipped} already there), "
            f"{len(self.views)} views"
        )


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_compliant_nested_type=True)
    return buffer.getvalue()


def days_to_load(
    plan: PublishPlan, published_runs: set[str], missing_tables: set[str]
) -> dict[str, set[str]]:
    """Day partitions to (re)load per history table.

    A table that does not exist yet gets every day; otherwise only the days of the runs that
    ``ingest_runs`` does not list (a day is always reloaded whole, all its runs).
    """
    all_days = {run.day for run in plan.runs}
    new_days = {run.day for run in plan.runs if run.run_id not in published_runs}
    return {
        history_table(table): all_days if history_table(table) in missing_tables else new_days
        for table in PUBLISHED_TABLES
    }


def _ensure_dataset(plan: PublishPlan, api: BigQueryApi, report: PublishReport) -> str | None:
    existing = api.get_dataset(plan.dataset_id)
    if existing is None:
        created = api.create_dataset(dataset_resource(plan))
        report.dataset_created = True
        return created.location or plan.location
    if plan.location and existing.location and existing.location.lower() != plan.location.lower():
        raise PublishError(
            f"dataset {plan.dataset_id} is in {existing.location}, "
            f"not in --location {plan.location}"
        )
    return existing.location


def _stage(plan: PublishPlan, store: ObjectStore, report: PublishReport) -> None:
    """Copy the plan's local shards to the staging prefix; make each run folder there hold
    exactly the warehouse's shards (the loads read it with a wildcard)."""
    by_folder: dict[str, dict[str, object]] = {}
    for upload in plan.uploads:
        folder, name = upload.target.rsplit("/", 1)
        by_folder.setdefault(folder + "/", {})[name] = upload
    for folder, uploads in by_folder.items():
        staged = {obj.url.rsplit("/", 1)[-1]: obj for obj in store.list(folder)}
        for name, obj in staged.items():
            if name.endswith(".parquet") and name not in uploads:
                store.delete(obj.url)
        for name, upload in uploads.items():
            there = staged.get(name)
            if (
                there is not None
                and there.size == upload.size
                and (there.md5 is None or there.md5 == LocalStore.md5(upload.source))
            ):
                report.upload_skipped += 1
                continue
            store.upload(Path(upload.source), upload.target)
            report.uploaded += 1


def _ensure_table(plan: PublishPlan, spec: TableSpec, api: BigQueryApi, report: PublishReport):
    existing = api.get_table(plan.table_id(spec.name))
    if existing is None:
        api.create_table(table_resource(plan, spec))
        report.tables_created.append(spec.name)
        return
    wanted = table_resource(plan, spec)
    partitioning = existing.time_partitioning
    if (partitioning is None) != (wanted.time_partitioning is None) or (
        partitioning is not None and partitioning.field != wanted.time_partitioning.field
    ):
        raise PublishError(
            f"table {plan.table_id(spec.name)} exists with other partitioning; drop it or "
            "publish to another dataset"
        )
    current = [f.to_api_repr() for f in existing.schema]
    merged = union_schemas([current, list(spec.schema)])
    changed = []
    if merged != current:
        existing.schema = schema_fields(merged)
        changed.append("schema")
    if not existing.description:  # one set elsewhere (Terraform, by hand) is kept
        existing.description = spec.description
        changed.append("description")
    if list(existing.clustering_fields or []) != list(spec.clustering):
        existing.clustering_fields = list(spec.clustering) or None
        changed.append("clustering_fields")
    if changed:
        api.update_table(existing, changed)
        report.tables_widened.append(spec.name)


def publish(
    plan: PublishPlan,
    api: BigQueryApi,
    store: ObjectStore | None = None,
    *,
    full: bool = False,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc),
) -> PublishReport:
    """Publish: create what is missing, load the days that need it, create the views.

    ``store`` stages a local warehouse's shards (the plan's --staging); ``full`` reloads every
    day even when ``ingest_runs`` lists its runs.
    """
    plan.check_publishable()
    report = PublishReport(plan.dataset_id)
    location = _ensure_dataset(plan, api, report)

    history_names = {history_table(t) for t in PUBLISHED_TABLES}
    history = [spec for spec in plan.tables if spec.name in history_names]
    missing = {spec.name for spec in history if api.get_table(plan.table_id(spec.name)) is None}
    published: set[str] = set()
    if not full and api.get_table(plan.table_id(INGEST_RUNS_TABLE)) is not None:
        published = {row["run_id"] for row in api.list_rows(plan.table_id(INGEST_RUNS_TABLE))}
    if full:
        missing = {spec.name for spec in history}
    days = days_to_load(plan, published, missing)
    todo = plan.only_days(days)
    report.days_skipped = len({(s.table, s.partition) for s in plan.loads}) - len(
        {(s.table, s.partition) for s in todo.loads}
    )

    if todo.uploads:
        if store is None:
            raise PlanError("staging local files needs a Cloud Storage client")
        _stage(todo, store, report)
    for spec in history:
        _ensure_table(plan, spec, api, report)
    for step in todo.loads:
        logger.info("load %s from %s", step.destination, step.source_uris)
        config = history_load_config(step, plan.table(step.table))
        result = api.load_from_uris(
            step.source_uris, plan.table_id(step.destination), config, location
        )
        report.loads.append((step, result))

    uid_spec = plan.table(UID_NAMES_TABLE)
    api.load_from_bytes(
        _parquet_bytes(uid_names_table()),
        plan.table_id(UID_NAMES_TABLE),
        file_load_config(uid_spec),
        location,
    )
    for view in plan.views:
        api.run_ddl(view.ddl, location)
        report.views.append(view.name)
    runs_spec = plan.table(INGEST_RUNS_TABLE)
    api.load_from_bytes(
        _parquet_bytes(plan.ingest_runs_table(now())),
        plan.table_id(INGEST_RUNS_TABLE),
        file_load_config(runs_spec),
        location,
    )
    return report
