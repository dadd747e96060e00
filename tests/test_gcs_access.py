"""One way to reach Cloud Storage: the reader of sources and the warehouse's store agree.

Both take the endpoint and the credentials from ``dicomwarehouse.io.gcs``; these tests run the
two clients against the same gcp-storage-emulator and check that they see the same objects,
whichever way the emulator is named, and that each per-process client follows the endpoint.
"""

from __future__ import annotations

import pytest
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

from dicomwarehouse.io.buckets import StorageOptions, fetch_range, list_prefix
from dicomwarehouse.io.gcs import gcs_endpoint, storage_client
from dicomwarehouse.io.objectstore import store_for
from dicomwarehouse.io.urls import parse_bucket_url

BUCKET = "dw-access"


@pytest.fixture(scope="module")
def bucket(gcs_server) -> str:  # noqa: F811
    created = gcs_client().create_bucket(BUCKET)
    created.blob("a/one.bin").upload_from_string(b"0123456789")
    return f"gs://{BUCKET}/"


@pytest.mark.parametrize("spelling", ["url", "host:port"])
def test_reader_and_store_read_the_same_objects(
    bucket: str, gcs_server, spelling: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:  # fmt: skip
    """STORAGE_EMULATOR_HOST is often written without a scheme: both clients accept it."""
    if spelling == "host:port":
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_server.endpoint.split("://", 1)[1])
    store = store_for(bucket)
    stored = store.list(bucket + "a/")
    assert [(s.url, s.size) for s in stored] == [(bucket + "a/one.bin", 10)]
    assert store.read_bytes(bucket + "a/one.bin") == b"0123456789"
    options = StorageOptions()
    listed = [
        ref for page, _ in list_prefix(parse_bucket_url(bucket + "a/"), options) for ref in page
    ]
    assert [(ref.url, ref.size, int(ref.generation)) for ref in listed] == [
        (s.url, s.size, s.generation) for s in stored
    ]
    fetched = fetch_range(bucket + "a/one.bin", 2, 5, options, generation=listed[0].generation)
    assert (fetched.data, fetched.total_size) == (b"234", 10)


def test_clients_follow_the_emulator_variable(bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client made for one endpoint is not reused for another (the cache key holds it)."""
    first = store_for(bucket)
    assert store_for(bucket) is first
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")  # nothing listens there
    assert store_for(bucket) is not first
    failed = None
    try:
        fetch_range(bucket + "a/one.bin", 0, 4, StorageOptions(timeout=0.5, attempts=1))
    except Exception as error:  # an IngestError: the reader went to the new endpoint
        failed = error
    assert failed is not None and getattr(failed, "error_type", None) == "ConnectionError"


def test_endpoint_and_credentials_are_decided_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The emulator gets no credentials; an endpoint given explicitly is not the emulator."""
    from google.auth.credentials import AnonymousCredentials

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "localhost:4443")
    assert gcs_endpoint().url == "http://localhost:4443"
    assert gcs_endpoint().emulated
    explicit = gcs_endpoint("https://storage.example.test/")
    assert (explicit.url, explicit.emulated) == ("https://storage.example.test", False)
    client = storage_client("p")
    assert isinstance(client._credentials, AnonymousCredentials)
    assert client._connection.API_BASE_URL == "http://localhost:4443"
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    assert gcs_endpoint().url == "https://storage.googleapis.com"
    assert not gcs_endpoint().emulated
