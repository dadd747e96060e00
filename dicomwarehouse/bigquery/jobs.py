"""The plan as google-cloud-bigquery objects: the Dataset, Tables and LoadJobConfigs.

Kept apart from the plan so that the plan needs no Google library, and kept as plain functions
of the plan so that the tests check the very objects a publish hands to the client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dicomwarehouse.bigquery.clients import import_bigquery
from dicomwarehouse.bigquery.plan import LoadStep, PublishPlan, TableSpec
from dicomwarehouse.tables.bigquery_schema import Field

if TYPE_CHECKING:
    from google.cloud import bigquery

__all__ = [
    "LABELS",
    "dataset_resource",
    "file_load_config",
    "history_load_config",
    "schema_fields",
    "table_resource",
]

#: Labels on what a publish creates, to find it in billing and the console.
LABELS = {"created-by": "dicomwarehouse"}


def schema_fields(fields: tuple[Field, ...] | list[Field]) -> list[bigquery.SchemaField]:
    """JSON schema fields as SchemaField objects."""
    bq = import_bigquery()
    return [bq.SchemaField.from_api_repr(field) for field in fields]


def _parquet_options() -> bigquery.ParquetOptions:
    """Parquet lists load as REPEATED fields (not as RECORDs with a ``list.element``)."""
    from google.cloud.bigquery.format_options import ParquetOptions

    options = ParquetOptions()
    options.enable_list_inference = True
    return options


def dataset_resource(plan: PublishPlan) -> bigquery.Dataset:
    """The dataset to create when it is missing (in the plan's location)."""
    bq = import_bigquery()
    dataset = bq.Dataset(plan.dataset_id)
    if plan.location:
        dataset.location = plan.location
    dataset.description = (
        "DICOM metadata published by dicomwarehouse: *_history tables of every ingest run, "
        "current-state views and the curated views of sql/."
    )
    dataset.labels = dict(LABELS)
    return dataset


def _time_partitioning(spec: TableSpec) -> bigquery.TimePartitioning | None:
    if not spec.partitioned:
        return None
    bq = import_bigquery()
    return bq.TimePartitioning(type_=bq.TimePartitioningType.DAY, field=spec.partition_field)


def table_resource(plan: PublishPlan, spec: TableSpec) -> bigquery.Table:
    """A history table as created: schema with descriptions, partitioning and clustering."""
    bq = import_bigquery()
    table = bq.Table(plan.table_id(spec.name), schema=schema_fields(spec.schema))
    table.description = spec.description
    table.time_partitioning = _time_partitioning(spec)
    table.clustering_fields = list(spec.clustering) or None
    table.labels = dict(LABELS)
    return table


def history_load_config(step: LoadStep, spec: TableSpec) -> bigquery.LoadJobConfig:
    """The load job of one run's shards into one day partition of a history table."""
    bq = import_bigquery()
    config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        write_disposition=getattr(bq.WriteDisposition, step.write_disposition),
        create_disposition=bq.CreateDisposition.CREATE_NEVER,
        schema=schema_fields(step.schema),
        schema_update_options=[bq.SchemaUpdateOption.ALLOW_FIELD_ADDITION],
        time_partitioning=_time_partitioning(spec),
        clustering_fields=list(spec.clustering) or None,
    )
    config.parquet_options = _parquet_options()
    return config


def file_load_config(spec: TableSpec) -> bigquery.LoadJobConfig:
    """The load of a small table (UID names, ingest runs) from Parquet bytes: replaced whole."""
    bq = import_bigquery()
    config = bq.LoadJobConfig(
        source_format=bq.SourceFormat.PARQUET,
        write_disposition=bq.WriteDisposition.WRITE_TRUNCATE,
        create_disposition=bq.CreateDisposition.CREATE_IF_NEEDED,
        schema=schema_fields(spec.schema),
        destination_table_description=spec.description,
    )
    config.parquet_options = _parquet_options()
    return config
