"""The stores warehouse files go through (``io.objectstore``): a local folder and gs://.

The commit protocol relies on a few properties of every store: a write is whole or absent,
a listing finds everything under a prefix, ``remove_tree`` leaves nothing, and on gs:// a
conditional write or delete loses (``PreconditionFailed``) when the object is not the one
expected. Each is checked here on ``LocalStore`` and on ``GcsStore`` over the emulator (and,
for the preconditions the emulator does not enforce, a server answering as Cloud Storage).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io import objectstore
from dicomwarehouse.io.objectstore import (
    GcsStore,
    LocalStore,
    PreconditionFailed,
    file_md5,
    read_json,
    read_json_if_present,
    store_for,
    warehouse_location,
    write_json,
)
from dicomwarehouse.io.urls import BucketURL, gs_object, join

# --- locations --------------------------------------------------------------------------------


def test_warehouse_locations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert warehouse_location("w") == str(tmp_path / "w")  # absolute: workers may chdir
    assert warehouse_location("gs://bucket/some/w/") == "gs://bucket/some/w"
    with pytest.raises(UsageError, match="s3:// buckets are sources only"):
        warehouse_location("s3://bucket/w")
    with pytest.raises(UsageError, match="needs a bucket"):
        warehouse_location("gs:///w")
    assert join("gs://b/w/", "t", "run-1") == "gs://b/w/t/run-1"
    assert gs_object("gs://b/w/x.json") == BucketURL("gs", "b", "w/x.json")
    with pytest.raises(ValueError):
        gs_object("/local/path")
    assert isinstance(store_for(str(tmp_path)), LocalStore)


# --- LocalStore -------------------------------------------------------------------------------


def test_local_write_is_whole_and_leaves_nothing_aside(tmp_path: Path) -> None:
    store = LocalStore()
    url = str(tmp_path / "w" / "t" / "run-1" / "part-1.parquet")
    store.write_bytes(url, b"first")  # folders made as needed
    store.write_bytes(url, b"second")
    assert store.read_bytes(url) == b"second"
    assert [s.url for s in store.list(str(tmp_path / "w") + "/")] == [url]  # no temp file
    assert store.stat(url).size == len(b"second")
    with pytest.raises(ValueError, match="no generations"):
        store.write_bytes(url, b"x", if_generation_match=0)


def test_a_local_write_that_fails_keeps_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write goes aside then is moved over: a crash before the move changes nothing."""
    store = LocalStore()
    url = str(tmp_path / "record.json")
    store.write_bytes(url, b'{"complete": true}')

    def crash(source: str, target: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(objectstore.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.write_bytes(url, b'{"compl')
    assert store.read_bytes(url) == b'{"complete": true}'


def test_local_list_stat_delete_and_remove_tree(tmp_path: Path) -> None:
    store = LocalStore()
    root = str(tmp_path / "w")
    for name in ("b/run-2/x.parquet", "a/run-1/y.parquet", "a/run-1/z.json", "top.json"):
        store.write_bytes(join(root, name), name.encode())
    assert [s.url for s in store.list(root + "/")] == [
        join(root, n) for n in ("a/run-1/y.parquet", "a/run-1/z.json", "b/run-2/x.parquet",
                                "top.json")
    ]  # fmt: skip
    assert store.list(join(root, "missing") + "/") == []
    assert store.stat(join(root, "missing.json")) is None
    store.delete(join(root, "top.json"))
    store.delete(join(root, "top.json"))  # deleting what is gone is no error
    store.remove_tree(join(root, "a"))
    assert not (tmp_path / "w" / "a").exists()
    store.remove_tree(join(root, "a"))  # nor removing a missing folder
    assert [s.url for s in store.list(root + "/")] == [join(root, "b/run-2/x.parquet")]
    with store.open_input(join(root, "b/run-2/x.parquet")) as handle:
        handle.seek(2)
        assert handle.read() == b"run-2/x.parquet"


def test_json_helpers(tmp_path: Path) -> None:
    url = str(tmp_path / "runs" / "r.json")
    assert read_json_if_present(url) is None
    write_json(url, {"run_id": "r", "n": 1})
    assert read_json(url) == read_json_if_present(url) == {"run_id": "r", "n": 1}
    assert file_md5(url) == LocalStore.md5(url) and len(file_md5(url)) == 32


# --- GcsStore, on the emulator ----------------------------------------------------------------


@pytest.fixture
def bucket(gcs_server, request: pytest.FixtureRequest) -> Iterator[str]:  # noqa: F811
    name = f"store-{request.node.name.lower().replace('_', '-')[-30:]}-{time.time_ns() % 10**6}"
    gcs_client().create_bucket(name[:63])
    yield f"gs://{name[:63]}/w"


def test_gcs_write_read_stat_list_and_remove_tree(bucket: str) -> None:
    store = store_for(bucket)
    assert isinstance(store, GcsStore) and store_for(bucket) is store  # one per process
    names = ("t/run-1/a.parquet", "t/run-1/b.parquet", "t/run-2/c.parquet", "r.json")
    for name in names:
        store.write_bytes(join(bucket, name), name.encode())
    stored = store.stat(join(bucket, "r.json"))
    assert stored is not None and stored.size == len(b"r.json")
    assert stored.md5 is not None and len(stored.md5) == 32 and stored.generation
    assert store.stat(join(bucket, "nothing")) is None
    assert store.read_text(join(bucket, "r.json")) == "r.json"
    assert sorted(s.url for s in store.list(join(bucket, "t") + "/")) == [
        join(bucket, n) for n in names[:3]
    ]
    with store.open_input(join(bucket, "t/run-2/c.parquet")) as handle:
        handle.seek(6)
        assert handle.read(3) == b"2/c"
    store.remove_tree(join(bucket, "t", "run-1"))
    assert [s.url for s in store.list(bucket + "/")] == [
        join(bucket, "r.json"), join(bucket, "t/run-2/c.parquet"),
    ]  # fmt: skip
    store.delete(join(bucket, "t/run-1/a.parquet"))  # gone already: no error


class _PreconditionFailing(BaseHTTPRequestHandler):
    """Answers every request as Cloud Storage answers a failed ifGenerationMatch (HTTP 412)."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b'{"error": {"code": 412, "message": "At least one of the pre-conditions failed."}}'
        self.send_response(412)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _refuse

    def log_message(self, *args: object) -> None:
        pass


def test_gcs_conditional_writes_and_deletes_that_lose_raise_precondition_failed() -> None:
    """The write lock's create-if-absent and delete-if-unchanged lose with PreconditionFailed.

    gcp-storage-emulator ignores ifGenerationMatch (it overwrites and deletes regardless), so
    a server on 127.0.0.1 answering 412, as Cloud Storage does, stands in for a lost race.
    """
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    server = ThreadingHTTPServer(("127.0.0.1", 0), _PreconditionFailing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{server.server_port}"),
        )
        store = GcsStore(client)
        with pytest.raises(PreconditionFailed):
            store.write_bytes("gs://b/w/.lock", b"mine", if_generation_match=0)
        with pytest.raises(PreconditionFailed):
            store.delete("gs://b/w/.lock", if_generation_match=7)
    finally:
        server.shutdown()
        server.server_close()


def test_json_helpers_on_gcs(bucket: str) -> None:
    url = join(bucket, "_runs", "r.json")
    assert read_json_if_present(url) is None
    write_json(url, {"run_id": "r"})
    assert read_json(url) == {"run_id": "r"}


def test_gcs_store_from_the_environment_uses_the_emulator(gcs_server) -> None:  # noqa: F811
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_server.endpoint
    store = GcsStore.from_environment()
    name = f"env-{time.time_ns() % 10**9}"
    gcs_client().create_bucket(name)
    store.write_bytes(f"gs://{name}/x", b"1")
    assert gcs_client().bucket(name).blob("x").download_as_bytes() == b"1"
