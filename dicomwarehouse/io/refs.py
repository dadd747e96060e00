"""What a store knows of one object to ingest, before anything of it is read.

Listings, manifests and folder walks all produce ``ObjectRef``s; readers, the ledger and the
provenance columns consume them. An entry that names nothing readable travels the same way as
a ``ListingFailure``, so it is accounted for like any object: as one ingest_errors row.
"""

from __future__ import annotations

import base64
import binascii
import string
from dataclasses import dataclass, field

from dicomwarehouse.errors import IngestError

__all__ = ["ListingFailure", "ObjectRef", "md5_hex"]

_HEX_DIGITS = frozenset(string.hexdigits)


def md5_hex(value: str | None) -> str | None:
    """An MD5 as 32 lower-case hex digits, however the store or manifest spelled it.

    GCS reports MD5 in base64 (listings' ``md5Hash``, downloads' ``x-goog-hash``), local files,
    S3 tools and most manifests in hex; ``source_md5`` is one column, so it holds one spelling.
    A value that is neither is kept as given (nothing a store says is dropped).
    """
    if not value:
        return None
    text = value.strip()
    if len(text) == 32 and _HEX_DIGITS.issuperset(text):
        return text.lower()
    try:
        digest = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return value
    return digest.hex() if len(digest) == 16 else value


@dataclass(frozen=True)
class ObjectRef:
    """One object to ingest: where it is, what the listing knew, extra manifest columns.

    ``generation`` identifies the object's version: the GCS generation, the S3 version id,
    or a local file's modification time in nanoseconds; ``etag``, ``md5`` and ``crc32c``
    are what the store reports, when it does.
    """

    url: str
    size: int | None = None
    extras: tuple[tuple[str, str], ...] = field(default=())
    generation: str | None = None
    etag: str | None = None
    md5: str | None = None
    crc32c: str | None = None

    def __post_init__(self) -> None:
        if self.md5 is not None:
            object.__setattr__(self, "md5", md5_hex(self.md5))

    def provenance(self) -> dict[str, str | int | None]:
        """The ``source_*`` provenance columns of this object."""
        return {
            "source_url": self.url,
            "source_size": self.size,
            "source_generation": self.generation,
            "source_etag": self.etag,
            "source_md5": self.md5,
            "source_crc32c": self.crc32c,
        }


@dataclass(frozen=True)
class ListingFailure(ObjectRef):
    """An entry that names no object it could list: becomes one ingest_errors row."""

    error_type: str = "ListFailed"
    message: str = ""

    def error(self) -> IngestError:
        return IngestError("list", self.error_type, self.message)
