"""Reaching Cloud Storage: endpoint, credentials and clients, decided in one place.

Two clients talk to GCS: the ranged reader of source buckets (``buckets``: an authorized
``requests`` session over the JSON API, for byte ranges, conditional reads and request counts)
and the warehouse's store (``objectstore``: google.cloud.storage, for uploads, generations and
deletes). Both get their endpoint and their credentials here, so that ``STORAGE_EMULATOR_HOST``,
an explicit endpoint, ``--anonymous`` and a machine without credentials mean the same thing
to both:

- the endpoint is the one asked for, else ``STORAGE_EMULATOR_HOST`` (with or without a
  scheme), else https://storage.googleapis.com;
- an endpoint taken from ``STORAGE_EMULATOR_HOST`` gets no credentials (the emulator takes
  none, and real ones must not leak to a test server), as google.cloud.storage does itself;
- otherwise Application Default Credentials, unless ``anonymous`` says never to send any;
- when there are none, the reader goes on anonymously (public buckets, IDC's among them),
  while the store fails unless its caller allows the same (a dry run of a public warehouse):
  a write without credentials would fail later with a less helpful error.

``process_client`` keeps each process's clients (Beam workers build them once, not per
object), keyed with the emulator variable, which picks the endpoint too.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dicomwarehouse.errors import UsageError

__all__ = [
    "GCS_ENDPOINT",
    "GCS_READ_SCOPE",
    "GcpExtraMissing",
    "GcsEndpoint",
    "authorized_session",
    "credentials",
    "gcs_endpoint",
    "import_storage",
    "process_client",
    "storage_client",
]

GCS_ENDPOINT = "https://storage.googleapis.com"
GCS_READ_SCOPE = "https://www.googleapis.com/auth/devstorage.read_only"
_EMULATOR_VARIABLE = "STORAGE_EMULATOR_HOST"
_EXTRA_HINT = "pip install '.[gcp]' in the dicomwarehouse checkout"

T = TypeVar("T")


class GcpExtraMissing(UsageError):
    """A Google Cloud library that gs:// or BigQuery needs is not installed."""


def import_storage() -> Any:
    """google.cloud.storage, or a one-line error naming the extra that installs it."""
    try:
        from google.cloud import storage
    except ImportError as exc:
        raise GcpExtraMissing(f"gs:// needs google-cloud-storage: {_EXTRA_HINT}") from exc
    return storage


@dataclass(frozen=True)
class GcsEndpoint:
    """Where GCS requests go, and whether that is the emulator named by the environment."""

    url: str  # scheme and host, no trailing "/"
    emulated: bool

    @property
    def is_default(self) -> bool:
        return self.url == GCS_ENDPOINT


def gcs_endpoint(endpoint_url: str | None = None) -> GcsEndpoint:
    """The endpoint asked for, else ``STORAGE_EMULATOR_HOST``, else the real service."""
    emulator = os.environ.get(_EMULATOR_VARIABLE)
    url = endpoint_url or emulator or GCS_ENDPOINT
    if "://" not in url:  # the variable is often host:port alone
        url = f"http://{url}"
    return GcsEndpoint(url.rstrip("/"), emulated=bool(emulator) and not endpoint_url)


def credentials(
    endpoint: GcsEndpoint,
    scopes: Sequence[str],
    *,
    anonymous: bool = False,
    fallback_anonymous: bool = True,
) -> Any:
    """The credentials for requests to ``endpoint`` (google.auth credentials, never None).

    ``anonymous``: send none. ``fallback_anonymous``: when Application Default Credentials
    find nothing, send none rather than raise google.auth's DefaultCredentialsError.
    """
    try:
        import google.auth
        from google.auth.credentials import AnonymousCredentials
    except ImportError as exc:
        raise GcpExtraMissing(f"gs:// needs google-auth: {_EXTRA_HINT}") from exc
    if anonymous or endpoint.emulated:
        return AnonymousCredentials()
    try:
        found, _ = google.auth.default(scopes=list(scopes))
    except google.auth.exceptions.DefaultCredentialsError:
        if not fallback_anonymous:
            raise
        return AnonymousCredentials()  # no credentials anywhere: public buckets only
    return found


def authorized_session(endpoint: GcsEndpoint, *, anonymous: bool, pool_size: int) -> Any:
    """A google-auth ``AuthorizedSession`` for reads, with ``pool_size`` connections per host.

    Reads fall back to anonymous access when there are no credentials: sources are often
    public buckets.
    """
    try:
        from google.auth.transport.requests import AuthorizedSession
        from requests.adapters import HTTPAdapter
    except ImportError as exc:
        raise GcpExtraMissing(f"gs:// needs google-auth and requests: {_EXTRA_HINT}") from exc
    session = AuthorizedSession(credentials(endpoint, [GCS_READ_SCOPE], anonymous=anonymous))
    adapter = HTTPAdapter(pool_maxsize=pool_size)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def storage_client(project: str | None = None, *, fallback_anonymous: bool = False) -> Any:
    """A google.cloud.storage Client for the warehouse's store.

    Without credentials it raises google.auth's DefaultCredentialsError, unless
    ``fallback_anonymous`` (listing and reading a public bucket needs none).
    """
    storage = import_storage()
    endpoint = gcs_endpoint()
    found = credentials(endpoint, storage.Client.SCOPE, fallback_anonymous=fallback_anonymous)
    options = None if endpoint.is_default else {"api_endpoint": endpoint.url}
    return storage.Client(project=project, credentials=found, client_options=options)


_clients: dict[tuple[Hashable, ...], Any] = {}
_clients_lock = threading.Lock()


def process_client(key: tuple[Hashable, ...], make: Callable[[], T]) -> T:
    """This process's client for ``key``, made by ``make`` on first use.

    The emulator variable is part of every key: it picks the endpoint too, so a client made
    for another emulator (tests start one per session, on a new port) is never reused.
    """
    full_key = (*key, os.environ.get(_EMULATOR_VARIABLE))
    client = _clients.get(full_key)
    if client is None:
        with _clients_lock:
            client = _clients.get(full_key)
            if client is None:
                client = make()
                _clients[full_key] = client
    return client
