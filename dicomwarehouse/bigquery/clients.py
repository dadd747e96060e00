"""The thin interface a publish talks to, over google.cloud.bigquery and google.cloud.storage.

``publish`` sees only :class:`BigQueryApi` and :class:`ObjectStore`: a handful of calls, each
taking or returning the real google-cloud-bigquery objects (Dataset, Table, LoadJobConfig). The
Google implementations here are a few lines each; tests pass in their own implementations (no
BigQuery emulator runs offline) or the Google ones over a fake HTTP session, and storage runs
against a local GCS emulator. The Google libraries are imported only when a client is made, so
the rest of the package (and ``--dry-run``) works without the ``gcp`` extra.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from dicomwarehouse.errors import UsageError

if TYPE_CHECKING:
    from google.cloud import bigquery, storage

__all__ = [
    "BigQueryApi",
    "GcpExtraMissing",
    "GcsStore",
    "GoogleBigQuery",
    "LoadResult",
    "LocalStore",
    "ObjectStore",
    "StoredObject",
    "import_bigquery",
    "import_storage",
    "split_gs_url",
]

_EXTRA_HINT = "pip install 'dicomwarehouse[gcp]'"


class GcpExtraMissing(UsageError):
    """A Google Cloud library that publishing needs is not installed."""


def import_bigquery() -> Any:
    """google.cloud.bigquery, or a one-line error naming the extra that installs it."""
    try:
        from google.cloud import bigquery
    except ImportError as exc:
        raise GcpExtraMissing(
            f"publishing to BigQuery needs google-cloud-bigquery: {_EXTRA_HINT}"
        ) from exc
    return bigquery


def import_storage() -> Any:
    """google.cloud.storage, or a one-line error naming the extra that installs it."""
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise GcpExtraMissing(f"gs:// needs google-cloud-storage: {_EXTRA_HINT}") from exc
    return storage


def split_gs_url(url: str) -> tuple[str, str]:
    """gs://bucket/some/path -> ("bucket", "some/path")."""
    if not url.startswith("gs://"):
        raise ValueError(f"not a gs:// URL: {url}")
    bucket, _, path = url[len("gs://") :].partition("/")
    return bucket, path


@dataclass(frozen=True)
class StoredObject:
    """One file of a warehouse or of the staging area."""

    url: str
    size: int
    md5: str | None = None  # hex digest, where the store knows it


class ObjectStore(Protocol):
    """Where warehouse files are listed and read, and local files are staged."""

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose URL starts with ``prefix`` (a folder ends with "/")."""
        ...

    def read_bytes(self, url: str) -> bytes: ...

    def read_text(self, url: str) -> str: ...

    def upload(self, path: Path, url: str) -> None: ...

    def delete(self, url: str) -> None: ...


def _file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalStore:
    """A warehouse folder on the local file system (listing and reading only)."""

    def list(self, prefix: str) -> list[StoredObject]:
        root = Path(prefix)
        if not root.is_dir():
            return []
        base = prefix.rstrip("/")
        return [
            StoredObject(f"{base}/{path.relative_to(root).as_posix()}", path.stat().st_size)
            for path in sorted(root.rglob("*"))
            if path.is_file()
        ]

    def read_bytes(self, url: str) -> bytes:
        return Path(url).read_bytes()

    def read_text(self, url: str) -> str:
        return Path(url).read_text(encoding="utf-8")

    def upload(self, path: Path, url: str) -> None:
        raise UsageError(f"cannot upload to {url}: staging must be a gs:// prefix")

    def delete(self, url: str) -> None:
        raise UsageError(f"refusing to delete local file {url}")

    @staticmethod
    def md5(path: str) -> str:
        """MD5 (hex) of a local file, to compare with a staged copy."""
        return _file_md5(Path(path))


class GcsStore:
    """Cloud Storage through google.cloud.storage (the client decides credentials/endpoint)."""

    def __init__(self, client: storage.Client) -> None:
        self.client = client

    @classmethod
    def from_environment(cls, project: str | None = None, *, anonymous: bool = False) -> GcsStore:
        """A client with Application Default Credentials (or STORAGE_EMULATOR_HOST).

        ``anonymous``: fall back to an anonymous client when there are no credentials, which
        can list and read public buckets (a ``--dry-run`` of a public gs:// warehouse).
        """
        storage = import_storage()
        from google.auth.credentials import AnonymousCredentials

        if os.environ.get("STORAGE_EMULATOR_HOST"):
            return cls(storage.Client(project=project, credentials=AnonymousCredentials()))
        try:
            return cls(storage.Client(project=project))
        except Exception as exc:  # google.auth's DefaultCredentialsError
            if not anonymous or type(exc).__name__ != "DefaultCredentialsError":
                raise
            return cls(storage.Client(project=project, credentials=AnonymousCredentials()))

    def list(self, prefix: str) -> list[StoredObject]:
        bucket, path = split_gs_url(prefix)
        objects = []
        for blob in self.client.list_blobs(bucket, prefix=path):
            md5 = base64.b64decode(blob.md5_hash).hex() if blob.md5_hash else None
            objects.append(StoredObject(f"gs://{bucket}/{blob.name}", blob.size or 0, md5))
        return objects

    def read_bytes(self, url: str) -> bytes:
        bucket, path = split_gs_url(url)
        return self.client.bucket(bucket).blob(path).download_as_bytes()

    def read_text(self, url: str) -> str:
        return self.read_bytes(url).decode("utf-8")

    def upload(self, path: Path, url: str) -> None:
        bucket, name = split_gs_url(url)
        blob = self.client.bucket(bucket).blob(name)
        blob.upload_from_filename(str(path), content_type="application/vnd.apache.parquet")

    def delete(self, url: str) -> None:
        bucket, name = split_gs_url(url)
        self.client.bucket(bucket).blob(name).delete()


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
