"""Object URLs, the one set of helpers: ``gs://`` and ``s3://`` parsing and ``/`` joining.

Sources (listings, manifests), the reader (ranged reads) and the warehouse (its object store)
all name objects by URL; they parse and build them here, so a URL that one of them accepts
means the same object to the others.

Two tests are kept apart on purpose: ``is_bucket_url`` accepts any case of the scheme (a
manifest written by hand may say ``GS://``) for sources, while a warehouse location is gs://
only when spelled so (``is_gs_url``): anything else is a local path, and ``warehouse_location``
refuses other schemes with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dicomwarehouse.errors import UsageError

__all__ = [
    "BUCKET_SCHEMES",
    "BucketURL",
    "Location",
    "StorageError",
    "gs_object",
    "is_bucket_url",
    "is_gs_url",
    "join",
    "parse_bucket_url",
]

BUCKET_SCHEMES = ("gs", "s3")

#: A warehouse or folder as callers name it: a local path, or a gs:// URL string.
Location = str | os.PathLike[str]


class StorageError(UsageError):
    """A bucket source or option that cannot be used; reported as one line to the user."""


@dataclass(frozen=True)
class BucketURL:
    """``scheme://bucket/key``; ``key`` may be empty (the whole bucket) or a prefix."""

    scheme: str
    bucket: str
    key: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key}"

    def child(self, key: str) -> str:
        """URL of another object in the same bucket."""
        return f"{self.scheme}://{self.bucket}/{key}"


def is_bucket_url(text: str) -> bool:
    """True for ``gs://`` and ``s3://`` URLs (any case of the scheme)."""
    return text.split("://", 1)[0].lower() in BUCKET_SCHEMES if "://" in text else False


def is_gs_url(location: Location) -> bool:
    """True for a location spelled ``gs://...``: a warehouse, staging or run file in GCS."""
    return str(location).startswith("gs://")


def parse_bucket_url(url: str) -> BucketURL:
    """Split a bucket URL; refuses other schemes and URLs without a bucket."""
    scheme, _, rest = url.partition("://")
    scheme = scheme.lower()
    bucket, _, key = rest.partition("/")
    if scheme not in BUCKET_SCHEMES or not bucket:
        raise StorageError(f"not a gs:// or s3:// URL with a bucket: {url!r}")
    return BucketURL(scheme, bucket, key)


def gs_object(url: str) -> BucketURL:
    """A ``gs://bucket/name`` the warehouse's store reads or writes.

    A ValueError, not a user error: the store is only ever handed URLs that ``is_gs_url``
    chose for it, so anything else is a bug.
    """
    if not is_gs_url(url):
        raise ValueError(f"not a gs:// URL: {url}")
    bucket, _, name = url[len("gs://") :].partition("/")
    return BucketURL("gs", bucket, name)


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for both stores (object names always use "/")."""
    return "/".join([root.rstrip("/"), *parts])
