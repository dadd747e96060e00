"""Where warehouse files live: a local folder or a gs:// prefix, behind one small interface.

The warehouse (``warehouse``), the pipeline's shard writers (``pipeline``, on every Beam worker)
and a publish (``bigquery``) all reach their files through :class:`ObjectStore`, so the same
protocol (write run folders, commit by writing the run record last, remove leftovers) works on
a laptop and on Dataflow. Nothing is ever renamed: object stores cannot rename atomically, and
every write of one object is atomic on both stores (a local file is written aside and moved into
place). ``store_for`` gives each process one store per kind, built on first use.

The source buckets a run reads are reached through ``buckets`` instead: that module does ranged,
version-checked reads, which a warehouse never needs. Both take their URLs from ``urls`` and
their GCS endpoint and credentials from ``gcs``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.gcs import process_client, storage_client
from dicomwarehouse.io.refs import md5_hex
from dicomwarehouse.io.urls import BucketURL, Location, gs_object, is_gs_url

if TYPE_CHECKING:
    from google.cloud import storage

__all__ = [
    "GcsStore",
    "LocalStore",
    "ObjectStore",
    "PreconditionFailed",
    "StoredObject",
    "read_json",
    "read_json_if_present",
    "store_for",
    "warehouse_location",
    "write_json",
]


class PreconditionFailed(Exception):
    """A conditional write lost: the object exists already, or changed since it was read."""


def warehouse_location(location: Location) -> str:
    """A warehouse's root as the stores name it: a gs:// prefix, or an absolute local path.

    Refuses other URL schemes with one line (``Path`` would silently turn ``s3://b`` into a
    relative folder named ``s3:``).
    """
    text = str(location)
    if is_gs_url(text):
        if not gs_object(text).bucket:
            raise UsageError(f"a gs:// warehouse needs a bucket: {text!r}")
        return text.rstrip("/")
    if "://" in text:
        raise UsageError(
            f"a warehouse is a local folder or a gs:// prefix, not {text!r} "
            "(s3:// buckets are sources only)"
        )
    return str(Path(text).resolve())


@dataclass(frozen=True)
class StoredObject:
    """One file of a warehouse or of the staging area."""

    url: str
    size: int
    md5: str | None = None  # hex digest, where the store knows it
    generation: int | None = None  # gs:// only: the object's version


class ObjectStore(Protocol):
    """Where warehouse files are listed, read and written, and local files are staged."""

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object whose URL starts with ``prefix`` (a folder ends with "/")."""
        ...

    def stat(self, url: str) -> StoredObject | None:
        """The object, or None when it does not exist."""
        ...

    def read_bytes(self, url: str) -> bytes: ...

    def read_text(self, url: str) -> str: ...

    def open_input(self, url: str) -> IO[bytes]:
        """A seekable binary reader (Parquet footers and columns are read by range)."""
        ...

    def write_bytes(self, url: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        """Write one object atomically.

        ``if_generation_match``: gs:// only, 0 meaning "only if absent"; raises
        PreconditionFailed when the condition does not hold.
        """
        ...

    def upload(self, path: Path, url: str) -> None: ...

    def delete(self, url: str, *, if_generation_match: int | None = None) -> None: ...

    def remove_tree(self, prefix: str) -> None:
        """Delete every object under a folder prefix (and, locally, the folder)."""
        ...


def file_md5(path: str | Path) -> str:
    """MD5 (hex) of a local file, to compare with a staged copy."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class LocalStore:
    """A warehouse on the local file system."""

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

    def stat(self, url: str) -> StoredObject | None:
        path = Path(url)
        return StoredObject(url, path.stat().st_size) if path.is_file() else None

    def read_bytes(self, url: str) -> bytes:
        return Path(url).read_bytes()

    def read_text(self, url: str) -> str:
        return Path(url).read_text(encoding="utf-8")

    def open_input(self, url: str) -> IO[bytes]:
        return open(url, "rb")

    def write_bytes(self, url: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        if if_generation_match is not None:
            raise ValueError("local files have no generations")
        path = Path(url)
        path.parent.mkdir(parents=True, exist_ok=True)
        aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        aside.write_bytes(data)
        os.replace(aside, path)  # readers see the whole file or none of it

    def upload(self, path: Path, url: str) -> None:
        raise UsageError(f"cannot upload to {url}: staging must be a gs:// prefix")

    def delete(self, url: str, *, if_generation_match: int | None = None) -> None:
        Path(url).unlink(missing_ok=True)

    def remove_tree(self, prefix: str) -> None:
        shutil.rmtree(prefix, ignore_errors=True)

    @staticmethod
    def md5(path: str) -> str:
        """MD5 (hex) of a local file, to compare with a staged copy."""
        return file_md5(path)


class GcsStore:
    """Cloud Storage through google.cloud.storage (endpoint and credentials from ``gcs``)."""

    def __init__(self, client: storage.Client) -> None:
        self.client = client

    @classmethod
    def from_environment(cls, project: str | None = None, *, anonymous: bool = False) -> GcsStore:
        """A client with Application Default Credentials (or STORAGE_EMULATOR_HOST).

        ``anonymous``: fall back to an anonymous client when there are no credentials, which
        can list and read public buckets (a ``--dry-run`` of a public gs:// warehouse).
        """
        return cls(storage_client(project, fallback_anonymous=anonymous))

    def _blob(self, url: str) -> Any:
        parsed = gs_object(url)
        return self.client.bucket(parsed.bucket).blob(parsed.key)

    @staticmethod
    def _stored(where: BucketURL, blob: Any) -> StoredObject:
        md5 = md5_hex(blob.md5_hash)
        generation = int(blob.generation) if blob.generation else None
        return StoredObject(where.child(blob.name), blob.size or 0, md5, generation)

    def list(self, prefix: str) -> list[StoredObject]:
        where = gs_object(prefix)
        blobs = self.client.list_blobs(where.bucket, prefix=where.key)
        return [self._stored(where, blob) for blob in blobs]

    def stat(self, url: str) -> StoredObject | None:
        parsed = gs_object(url)
        blob = self.client.bucket(parsed.bucket).get_blob(parsed.key)
        return None if blob is None else self._stored(parsed, blob)

    def read_bytes(self, url: str) -> bytes:
        return self._blob(url).download_as_bytes()

    def read_text(self, url: str) -> str:
        return self.read_bytes(url).decode("utf-8")

    def open_input(self, url: str) -> IO[bytes]:
        return self._blob(url).open("rb")

    def write_bytes(self, url: str, data: bytes, *, if_generation_match: int | None = None) -> None:
        from google.api_core.exceptions import PreconditionFailed as GooglePreconditionFailed

        try:
            self._blob(url).upload_from_string(
                data,
                content_type="application/octet-stream",
                if_generation_match=if_generation_match,
            )
        except GooglePreconditionFailed as exc:
            raise PreconditionFailed(url) from exc

    def upload(self, path: Path, url: str) -> None:
        self._blob(url).upload_from_filename(
            str(path), content_type="application/vnd.apache.parquet"
        )

    def delete(self, url: str, *, if_generation_match: int | None = None) -> None:
        from google.api_core.exceptions import NotFound
        from google.api_core.exceptions import PreconditionFailed as GooglePreconditionFailed

        try:
            self._blob(url).delete(if_generation_match=if_generation_match)
        except NotFound:
            pass
        except GooglePreconditionFailed as exc:
            raise PreconditionFailed(url) from exc

    def remove_tree(self, prefix: str) -> None:
        for stored in self.list(prefix.rstrip("/") + "/"):
            self.delete(stored.url)


def store_for(location: str) -> ObjectStore:
    """The store of a warehouse location: one GcsStore per process for gs://, else local."""
    if is_gs_url(location):
        return process_client(("warehouse store",), GcsStore.from_environment)
    return LocalStore()


def write_json(url: str, value: Any, *, indent: int | None = None) -> None:
    """Write a small JSON file (run records, column paths, schemas) to a local path or gs://."""
    text = json.dumps(value, indent=indent, default=str)
    store_for(url).write_bytes(url, text.encode("utf-8"))


def read_json(url: str) -> Any:
    """Read a small JSON file written by ``write_json``."""
    return json.loads(store_for(url).read_text(url))


def read_json_if_present(url: str) -> Any:
    """``read_json``, or None when there is no such file."""
    return read_json(url) if store_for(url).stat(url) is not None else None
