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
import re
from dataclasses import dataclass

from dicomwarehouse.errors import UsageError

__all__ = [
    "BUCKET_SCHEMES",
    "BucketURL",
    "Location",
    "StorageError",
    "gs_object",
    "idc_object_uuids",
    "is_bucket_url",
    "is_gs_url",
    "join",
    "parse_bucket_url",
]

BUCKET_SCHEMES = ("gs", "s3")

#: A UUID in RFC 4122's textual form: 8-4-4-4-12 hex digits, a version of RFC 4122 (1 to 5) and
#: its variant (10xx); hex digits of either case, as the RFC reads them.
_RFC4122_UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"
_UUID = re.compile(_RFC4122_UUID, re.IGNORECASE)
_UUID_OBJECT = re.compile(f"({_RFC4122_UUID})\\.dcm", re.IGNORECASE)

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


def idc_object_uuids(url: str) -> tuple[str | None, str | None]:
    """(series UUID, instance UUID) that an object's URL names in IDC's bucket layout.

    IDC names each object of its buckets by the UUIDs of its catalog (the ``crdc_*_uuid``
    columns of its tables), not by DICOM UIDs: ``gs://idc-open-data/<series>/<instance>.dcm``
    and the same key in ``s3://``; a copy made with s5cmd or gsutil keeps those two levels,
    under any prefix or local folder, so the last folder and the file name are read, anywhere.
    Objects of IDC's older buckets sat at the bucket root as ``gs://<bucket>/<instance>.dcm``:
    then the instance UUID alone. Both must be UUIDs in RFC 4122's textual form (a DICOM UID
    or any other name gives nothing); they come back in lower case, as IDC writes them.
    (None, None) for any other URL.
    """
    if is_bucket_url(url):
        parsed = parse_bucket_url(url)
        parts = parsed.key.split("/")
    else:
        parts = url.replace(os.sep, "/").split("/")
    instance = _UUID_OBJECT.fullmatch(parts[-1])
    if instance is None:
        return None, None
    if len(parts) >= 2 and _UUID.fullmatch(parts[-2]):
        return parts[-2].lower(), instance.group(1).lower()
    if len(parts) == 1 and is_bucket_url(url):  # the older layout: at the bucket root
        return None, instance.group(1).lower()
    return None, None
