"""The thin interface a publish talks to over google.cloud.bigquery.

``publish`` sees only :class:`BigQueryApi` and an ``objectstore.ObjectStore``: a handful of
calls, each taking or returning the real google-cloud-bigquery objects (Dataset, Table,
LoadJobConfig). The Google implementation here is a few lines per call; tests pass in their own
implementation (no BigQuery emulator runs offline) or the Google one over a fake HTTP session.
google.cloud.bigquery is imported only when a client is made, so the rest of the package (and
``--dry-run``) works without the ``gcp`` extra.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dicomwarehouse.io.gcs import GcpExtraMissing

if TYPE_CHECKING:
    from google.cloud import bigquery

__all__ = ["BigQueryApi", "GoogleBigQuery", "LoadResult", "import_bigquery"]

_EXTRA_HINT = "pip install '.[gcp]' in the dicomwarehouse checkout"


def import_bigquery() -> Any:
    """google.cloud.bigquery, or a one-line error naming the extra that installs it."""
    try:
        from google.cloud import bigquery
    except ImportError as exc:
        raise GcpExtraMissing(
            f"publishing to BigQuery needs google-cloud-bigquery: {_EXTRA_HINT}"
        ) from exc
    return bigquery


@dataclass(frozen=True)
class LoadResult:
    """What a finished load job reports."""

    job_id: str
    output_rows: int


class BigQueryApi(Protocol):
    """The BigQuery calls a publish makes; arguments are google-cloud-bigquery objects."""

    project: str

    def get_dataset(self, dataset_id: str) -> bigquery.Dataset | None: ...

    def create_dataset(self, dataset: bigquery.Dataset) -> bigquery.Dataset: ...

    def get_table(self, table_id: str) -> bigquery.Table | None: ...

    def create_table(self, table: bigquery.Table) -> bigquery.Table: ...

    def update_table(self, table: bigquery.Table, fields: Sequence[str]) -> bigquery.Table: ...

    def load_from_uris(
        self,
        uris: Sequence[str],
        destination: str,
        config: bigquery.LoadJobConfig,
        location: str | None,
    ) -> LoadResult: ...

    def load_from_bytes(
        self,
        data: bytes,
        destination: str,
        config: bigquery.LoadJobConfig,
        location: str | None,
    ) -> LoadResult: ...

    def run_ddl(self, sql: str, location: str | None) -> None: ...

    def list_rows(self, table_id: str) -> Iterator[dict[str, Any]]: ...


class GoogleBigQuery:
    """:class:`BigQueryApi` over a google.cloud.bigquery.Client; waits for every job."""

    def __init__(self, client: bigquery.Client) -> None:
        self.client = client
        self.project = client.project

    @classmethod
    def from_environment(cls, project: str, location: str | None = None) -> GoogleBigQuery:
        """A client with Application Default Credentials, billing to ``project``."""
        bigquery = import_bigquery()
        return cls(bigquery.Client(project=project, location=location))

    def get_dataset(self, dataset_id: str) -> bigquery.Dataset | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.client.get_dataset(dataset_id)
        except NotFound:
            return None

    def create_dataset(self, dataset: bigquery.Dataset) -> bigquery.Dataset:
        return self.client.create_dataset(dataset, exists_ok=True)

    def get_table(self, table_id: str) -> bigquery.Table | None:
        from google.api_core.exceptions import NotFound

        try:
            return self.client.get_table(table_id)
        except NotFound:
            return None

    def create_table(self, table: bigquery.Table) -> bigquery.Table:
        return self.client.create_table(table)

    def update_table(self, table: bigquery.Table, fields: Sequence[str]) -> bigquery.Table:
        return self.client.update_table(table, list(fields))

    def load_from_uris(self, uris, destination, config, location) -> LoadResult:
        job = self.client.load_table_from_uri(
            list(uris), destination, job_config=config, location=location,
            job_id_prefix="dicomwarehouse_",
        )  # fmt: skip
        job.result()
        return LoadResult(job.job_id, job.output_rows or 0)

    def load_from_bytes(self, data, destination, config, location) -> LoadResult:
        job = self.client.load_table_from_file(
            io.BytesIO(data), destination, job_config=config, location=location,
            job_id_prefix="dicomwarehouse_", size=len(data),
        )  # fmt: skip
        job.result()
        return LoadResult(job.job_id, job.output_rows or 0)

    def run_ddl(self, sql: str, location: str | None) -> None:
        bigquery = import_bigquery()
        config = bigquery.QueryJobConfig(use_legacy_sql=False)
        self.client.query(
            sql, job_config=config, location=location, job_id_prefix="dicomwarehouse_"
        ).result()

    def list_rows(self, table_id: str) -> Iterator[dict[str, Any]]:
        for row in self.client.list_rows(table_id):
            yield dict(row.items())
