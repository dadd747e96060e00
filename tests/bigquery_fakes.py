"""Stand-ins for BigQuery (none runs offline) and a local Cloud Storage emulator.

- :class:`FakeBigQuery` implements ``dicomwarehouse.bigquery.clients.BigQueryApi`` in memory. It
  receives the real google-cloud-bigquery objects a publish makes and keeps what BigQuery
  would: tables with their schema, and for each day partition which runs' rows it holds, read
  from the staged Parquet itself. It also checks what BigQuery checks for our loads (the table
  exists, the decorator's day matches the rows, every file of a wildcard has the job's schema).
- :class:`FakeBigQueryHttp` answers the BigQuery REST API for a real ``bigquery.Client`` (passed
  as its ``_http`` session), so the JSON the real client sends can be asserted.
- :func:`gcs_emulator` runs gcp-storage-emulator on 127.0.0.1 for the real storage client.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import io
import json
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import requests
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage

from dicomwarehouse.bigquery.clients import LoadResult
from dicomwarehouse.io.objectstore import GcsStore, ObjectStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gcs_emulator(bucket: str = "staging-bucket") -> Iterator[GcsStore]:
    """A GcsStore over a fresh in-memory gcp-storage-emulator with one bucket."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=bucket)
    server.start()
    try:
        client = storage.Client(
            project="test-project",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{port}"},
        )
        yield GcsStore(client)
    finally:
        server.stop()


class InjectedFailure(RuntimeError):
    pass


class FakeBigQuery:
    """In-memory BigQueryApi; ``partitions[table][day]`` lists (run_id, rows) loaded there."""

    def __init__(self, project: str, store: ObjectStore, *, fail_on_load: int | None = None):
        self.project = project
        self.store = store
        self.datasets: dict[str, bigquery.Dataset] = {}
        self.tables: dict[str, bigquery.Table] = {}
        self.partitions: dict[str, dict[str, list[tuple[str, int]]]] = {}
        self.small: dict[str, pa.Table] = {}
        self.views: dict[str, str] = {}
        self.load_configs: list[tuple[str, bigquery.LoadJobConfig]] = []
        self.updates: list[tuple[str, list[str]]] = []
        self.fail_on_load = fail_on_load
        self.loads = 0

    def get_dataset(self, dataset_id: str) -> bigquery.Dataset | None:
        return self.datasets.get(dataset_id)

    def create_dataset(self, dataset: bigquery.Dataset) -> bigquery.Dataset:
        key = f"{dataset.project}.{dataset.dataset_id}"
        if key in self.datasets:
            raise Conflict(key)
        if dataset.location is None:
            dataset.location = "US"
        self.datasets[key] = dataset
        return dataset

    def _dataset_of(self, table_id: str) -> None:
        assert table_id.rsplit(".", 1)[0] in self.datasets, f"no dataset for {table_id}"

    def get_table(self, table_id: str) -> bigquery.Table | None:
        table = self.tables.get(table_id)
        return bigquery.Table.from_api_repr(table.to_api_repr()) if table is not None else None

    def create_table(self, table: bigquery.Table) -> bigquery.Table:
        key = f"{table.project}.{table.dataset_id}.{table.table_id}"
        self._dataset_of(key)
        if key in self.tables:
            raise Conflict(key)
        self.tables[key] = table
        self.partitions[key] = {}
        return table

    def update_table(self, table: bigquery.Table, fields) -> bigquery.Table:
        key = f"{table.project}.{table.dataset_id}.{table.table_id}"
        old = {f.name for f in self.tables[key].schema}
        new = [f.name for f in table.schema]
        assert new[: len(old)] == [f.name for f in self.tables[key].schema], "columns reordered"
        self.tables[key] = table
        self.updates.append((key, list(fields)))
        return table

    def _files(self, uri: str) -> list[Any]:
        folder = uri.rsplit("/", 1)[0] + "/"
        return [o for o in self.store.list(folder) if fnmatch.fnmatch(o.url, uri)]

    def load_from_uris(self, uris, destination, config, location) -> LoadResult:
        self.loads += 1
        if self.fail_on_load == self.loads:
            raise InjectedFailure(f"load {self.loads} fails")
        table_id, _, partition = destination.partition("$")
        assert table_id in self.tables, f"CREATE_NEVER: no table {table_id}"
        assert re.fullmatch(r"\d{8}", partition), destination
        table = self.tables[table_id]
        assert config.source_format == bigquery.SourceFormat.PARQUET
        assert config.parquet_options.enable_list_inference is True
        job_names = [field.name for field in config.schema]
        table_names = {field.name for field in table.schema}
        if not set(job_names) <= table_names:
            assert bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION in (
                config.schema_update_options or []
            )
            extra = [f for f in config.schema if f.name not in table_names]
            table.schema = [*table.schema, *extra]
        runs: dict[str, int] = {}
        for uri in uris:
            files = self._files(uri)
            assert files, f"no files match {uri}"
            for stored in files:
                data = pq.read_table(io.BytesIO(self.store.read_bytes(stored.url)))
                assert data.column_names == job_names, "a file differs from the job's schema"
                for run_id in set(data.column("ingest_run_id").to_pylist()):
                    runs[run_id] = runs.get(run_id, 0) + data.num_rows
                if table.time_partitioning and table.time_partitioning.field:
                    column = data.column(table.time_partitioning.field).to_pylist()
                    days = {f"{t:%Y%m%d}" for t in column}
                    assert days <= {partition}, f"rows of {days} in partition {partition}"
        loaded = sorted(runs.items())
        parts = self.partitions[table_id]
        if config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE:
            parts[partition] = loaded
        else:
            assert config.write_disposition == bigquery.WriteDisposition.WRITE_APPEND
            parts.setdefault(partition, []).extend(loaded)
        self.load_configs.append((destination, config))
        return LoadResult(f"job_{self.loads}", sum(n for _, n in loaded))

    def load_from_bytes(self, data, destination, config, location) -> LoadResult:
        assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
        table = pq.read_table(io.BytesIO(data))
        assert table.column_names == [field.name for field in config.schema]
        self._dataset_of(destination)
        if destination not in self.tables:  # CREATE_IF_NEEDED
            assert config.create_disposition == bigquery.CreateDisposition.CREATE_IF_NEEDED
            self.tables[destination] = bigquery.Table(destination, schema=config.schema)
        self.small[destination] = table
        self.load_configs.append((destination, config))
        return LoadResult("job_bytes", table.num_rows)

    def run_ddl(self, sql: str, location) -> None:
        match = re.match(r"CREATE OR REPLACE VIEW `([^`]+)`", sql)
        assert match, sql[:80]
        self.views[match[1]] = sql

    def list_rows(self, table_id: str) -> Iterator[dict[str, Any]]:
        yield from self.small[table_id].to_pylist()

    def history_runs(self, table: str, dataset: str = "dicom") -> dict[str, list[str]]:
        """Day -> run ids in that partition of ``<table>_history`` (repeated if doubled)."""
        key = f"{self.project}.{dataset}.{table}_history"
        return {day: [run for run, _ in loaded] for day, loaded in self.partitions[key].items()}


def _response(status: int, body: Any, url: str) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.url = url
    response.encoding = "utf-8"
    response.request = requests.Request("GET", url).prepare()
    return response


class FakeBigQueryHttp:
    """The BigQuery REST API a publish uses, answered in memory; ``requests`` keeps every call
    as (method, path, query, json body)."""

    is_mtls = False  # read by google.cloud._http to pick the endpoint

    def __init__(self, project: str) -> None:
        self.project = project
        self.datasets: dict[str, dict] = {}
        self.tables: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}
        self.rows: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str, dict, Any]] = []

    def client(self) -> bigquery.Client:
        return bigquery.Client(project=self.project, credentials=AnonymousCredentials(), _http=self)

    def _job(self, resource: dict, rows: int = 0) -> dict:
        job_id = resource.get("jobReference", {}).get("jobId") or f"job{len(self.jobs)}"
        resource.setdefault("jobReference", {"projectId": self.project, "jobId": job_id})
        resource["status"] = {"state": "DONE"}
        kind = "load" if "load" in resource.get("configuration", {}) else "query"
        resource["statistics"] = {
            "creationTime": "1",
            "startTime": "1",
            "endTime": "2",
            kind: {"outputRows": str(rows)} if kind == "load" else {},
        }
        self.jobs[resource["jobReference"]["jobId"]] = resource
        return resource

    def request(self, method, url, data=None, headers=None, timeout=None, **kwargs):
        parsed = urlparse(url)
        path = parsed.path
        query = parse_qs(parsed.query)
        body: Any = None
        if data and "uploadType" not in query:
            body = json.loads(data)
        self.requests.append((method, path, query, body))
        base = f"/bigquery/v2/projects/{self.project}"
        if path.startswith("/upload/"):
            return self._upload(data, headers, url)
        tail = path[len(base) :]
        if tail.startswith("/datasets/") and "/tables" not in tail:
            name = tail.split("/")[2]
            if method == "GET":
                found = self.datasets.get(name)
                return _response(200 if found else 404, found or {"error": {}}, url)
        if tail == "/datasets" and method == "POST":
            body.setdefault("location", "US")
            self.datasets[body["datasetReference"]["datasetId"]] = body
            return _response(200, body, url)
        table = re.fullmatch(r"/datasets/([^/]+)/tables(?:/([^/]+))?(/data)?", tail)
        if table:
            key = f"{table[1]}.{table[2]}"
            if table[3]:
                return _response(200, {"rows": self.rows.get(key, []), "totalRows": "0"}, url)
            if method == "GET":
                found = self.tables.get(key)
                return _response(200 if found else 404, found or {"error": {}}, url)
            if method == "POST":
                key = f"{table[1]}.{body['tableReference']['tableId']}"
                self.tables[key] = body
                return _response(200, body, url)
            if method in ("PATCH", "PUT"):
                self.tables[key].update(body)
                return _response(200, self.tables[key], url)
        if tail == "/jobs" and method == "POST":
            return _response(200, self._job(body, rows=1), url)
        job = re.fullmatch(r"/jobs/([^/]+)", tail)
        if job and method == "GET":
            return _response(200, self.jobs[job[1]], url)
        results = re.fullmatch(r"/queries/([^/]+)", tail)
        if results:
            return _response(
                200,
                {
                    "jobReference": self.jobs[results[1]]["jobReference"],
                    "jobComplete": True,
                    "totalRows": "0",
                    "schema": {"fields": []},
                },
                url,
            )
        raise AssertionError(f"unexpected request {method} {url}")

    def _upload(self, data: bytes, headers: dict, url: str) -> requests.Response:
        content_type = headers["content-type"]
        if isinstance(content_type, bytes):
            content_type = content_type.decode()
        boundary = re.search(r'boundary="?([^";]+)', content_type)[1].encode()
        parts = [p for p in data.split(b"--" + boundary) if p.strip(b"-\r\n")]
        metadata = json.loads(parts[0].split(b"\r\n\r\n", 1)[1])
        payload = parts[1].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n", 1)[0]
        rows = pq.read_metadata(io.BytesIO(payload)).num_rows
        self.requests[-1] = (*self.requests[-1][:3], metadata)
        return _response(200, self._job(metadata, rows=rows), url)


def utc(year: int, month: int, day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=dt.timezone.utc)


def ingest_at(started_at: dt.datetime, sources: list[str], warehouse, **kwargs: Any):
    """Run the real ingest as if it had started at ``started_at`` (its run id and rows say so)."""
    import uuid

    import pytest

    from dicomwarehouse.dicom.extract import RunInfo
    from dicomwarehouse.pipeline import run as ingest_module

    run = RunInfo(f"{started_at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}", started_at)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "new_run", lambda: run)
        return ingest_module.ingest(sources, warehouse, **kwargs)


def fake_publish_clients(monkeypatch: Any, store: ObjectStore) -> list[FakeBigQuery]:
    """Make a publish at the end of an ingest talk to a FakeBigQuery (one per publish)."""
    from dicomwarehouse.pipeline import publish_options as options

    fakes: list[FakeBigQuery] = []

    def clients(project: str, location: str | None) -> tuple[FakeBigQuery, ObjectStore]:
        fakes.append(FakeBigQuery(project, store))
        return fakes[-1], store

    monkeypatch.setattr(options, "client_factory", clients)
    return fakes
