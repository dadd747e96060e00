"""gs:// and s3:// buckets: listings with globs, and ranged reads of one object.

Reads go through the stores' HTTP APIs with the client libraries' own transports, retry and
backoff (google-auth's ``AuthorizedSession`` with google-cloud-storage's ``DEFAULT_RETRY``;
boto3 with botocore's standard retry mode), not through Beam FileSystems: the ingest needs
byte ranges, conditional reads (``ifGenerationMatch`` / ``If-Match``) so that an object replaced
between listing and reading is noticed, and a count of every request.

Access is anonymous for public buckets (IDC's are) when asked, or when the standard credential
chain (Application Default Credentials; boto3's chain) finds nothing; for gs:// that decision,
and the endpoint, are made in ``gcs``, for the warehouse's store too. URLs are parsed in
``urls``. Errors are mapped to a short type and a message built here, never the store's text,
so no credential or signed URL can reach a log or an ingest_errors row.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from dicomwarehouse.errors import IngestError
from dicomwarehouse.io.gcs import (
    authorized_session,
    gcs_endpoint,
    import_storage,
    process_client,
)
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.io.urls import BucketURL, StorageError, parse_bucket_url

__all__ = [
    "DEFAULT_FIRST_BLOCK",
    "DEFAULT_REQUESTS_IN_FLIGHT",
    "DEFAULT_SKIP_SIZE",
    "DEFAULT_WHOLE_OBJECT_BUDGET",
    "Fetched",
    "StorageOptions",
    "fetch_range",
    "glob_regex",
    "list_prefix",
    "missing_extra",
]

#: First ranged read of an object, chosen by measurement (``benchmarks/benchmark.py
#: --ranged-only --first-blocks ...`` over ../shared/corpus, 891 real files): 8 KiB reads
#: 0.177 of the object bytes with 2.0 requests per object; 4 KiB saves little (0.172) for
#: 2.9 requests; 16 KiB and 64 KiB mostly fetch pixel data of small images (0.296 and 0.401,
#: over the 20% budget). Headers larger than the block cost a few more requests.
DEFAULT_FIRST_BLOCK = 8 * 1024

#: In ranged reads, values longer than this are skipped at read time; text values among them
#: are then fetched on their own (up to the defer size), binary ones (private blobs, icons,
#: LUTs, whose bytes no table keeps) never are.
DEFAULT_SKIP_SIZE = 4 * 1024

#: A deflated object is read whole (its offsets are in the inflated stream); larger ones fail.
DEFAULT_WHOLE_OBJECT_BUDGET = 256 * 1024 * 1024

#: Objects opened ahead per extract worker: each is one request in flight.
DEFAULT_REQUESTS_IN_FLIGHT = 32


def missing_extra(module: str, extra: str) -> StorageError:
    """The error for an optional cloud SDK that is not installed, naming the extra."""
    return StorageError(
        f"{module} is not installed: pip install '.[{extra}]' in the dicomwarehouse checkout "
        "to read buckets"
    )


@dataclass(frozen=True)
class StorageOptions:
    """How to reach buckets and how to read their objects.

    Picklable: the same options travel to every Beam worker, where each process builds its
    own clients from them.
    """

    s3_endpoint_url: str | None = None
    gcs_endpoint_url: str | None = None
    #: never send credentials (public buckets); without it, anonymous only when none are found
    anonymous: bool = False
    first_block: int = DEFAULT_FIRST_BLOCK
    skip_size: int = DEFAULT_SKIP_SIZE
    whole_object_budget: int = DEFAULT_WHOLE_OBJECT_BUDGET
    requests_in_flight: int = DEFAULT_REQUESTS_IN_FLIGHT
    #: seconds per attempt (connect and read)
    timeout: float = 30.0
    #: attempts per request, the first included, before an object fails
    attempts: int = 5
    #: manifest format (None: detected from the content)
    manifest_format: str | None = None
    #: s5cmd's --endpoint-url for s5cmd manifests: storage.googleapis.com means gs://
    s5cmd_endpoint_url: str | None = None


_GLOB_TOKEN = re.compile(r"\*\*/?|\*|\?|\[[^\]/]*\]")


def glob_regex(pattern: str, *, star_crosses_slash: bool = False) -> re.Pattern[str]:
    """A regex for an object-name glob: ``*`` within one path segment, ``**`` across them.

    ``**/`` also matches nothing, as in shell globs. s5cmd's wildcards cross ``/`` (a series
    line ``prefix/*`` means every object under the prefix): ``star_crosses_slash`` does that.
    """
    parts: list[str] = []
    position = 0
    for match in _GLOB_TOKEN.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]))
        token = match.group()
        if token.startswith("**"):
            parts.append("(?:.*/)?" if token.endswith("/") else ".*")
        elif token == "*":
            parts.append(".*" if star_crosses_slash else "[^/]*")
        elif token == "?":
            parts.append("[^/]")
        else:
            body = token[1:-1]
            if body.startswith("!"):
                body = "^" + body[1:]
            parts.append(f"[{body}]")
        position = match.end()
    parts.append(re.escape(pattern[position:]))
    return re.compile("".join(parts), re.DOTALL)


# --- clients, one set per process -----------------------------------------------------------


def _client(scheme: str, options: StorageOptions) -> Any:
    make = (lambda: _GcsClient(options)) if scheme == "gs" else (lambda: _S3Client(options))
    return process_client((scheme, options), make)


@dataclass
class Fetched:
    """One ranged read: the bytes and what the response said about the object."""

    data: bytes
    total_size: int | None
    generation: str | None = None
    etag: str | None = None
    md5: str | None = None
    crc32c: str | None = None


def _failure(error_type: str, message: str) -> IngestError:
    return IngestError("read", error_type, message)


_STATUS_ERRORS = {
    401: ("Unauthenticated", "credentials were refused"),
    403: ("AccessDenied", "access denied"),
    404: ("NotFound", "no such object or bucket"),
    412: ("ObjectChanged", "object replaced since it was listed (precondition failed)"),
}


def _status_failure(status: int) -> IngestError:
    error_type, text = _STATUS_ERRORS.get(status, (f"HTTP{status}", "request failed"))
    return _failure(error_type, f"{text} (HTTP {status})")


def _total_from_content_range(value: str | None) -> int | None:
    if value and "/" in value:
        total = value.rsplit("/", 1)[1].strip()
        if total.isdigit():
            return int(total)
    return None


class _GcsClient:
    """JSON API media downloads and listings over one authorized session per process."""

    def __init__(self, options: StorageOptions) -> None:
        import_storage()  # a one-line error when the gcp extra is missing
        from google.cloud.storage.retry import DEFAULT_RETRY

        endpoint = gcs_endpoint(options.gcs_endpoint_url)
        self.endpoint = endpoint.url
        self.session = authorized_session(
            endpoint, anonymous=options.anonymous, pool_size=max(10, options.requests_in_flight)
        )
        self.retry = DEFAULT_RETRY.with_timeout(options.timeout * options.attempts)
        self.timeout = options.timeout

    def _get(self, url: str, params: dict[str, str], headers: dict[str, str]) -> Any:
        from google.api_core import exceptions as api_exceptions

        def attempt() -> Any:
            response = self.session.get(url, params=params, headers=headers, timeout=self.timeout)
            if response.status_code >= 500 or response.status_code == 429:
                raise api_exceptions.from_http_status(response.status_code, "transient")
            return response

        return _with_retry(self.retry, attempt)

    def fetch(
        self, url: BucketURL, start: int, stop: int | None, generation: str | None
    ) -> Fetched:
        media = f"{self.endpoint}/download/storage/v1/b/{url.bucket}/o/{quote(url.key, safe='')}"
        params = {"alt": "media"}
        if generation:
            params["ifGenerationMatch"] = generation
        byte_range = f"bytes={start}-{'' if stop is None else stop - 1}"
        response = self._get(media, params, {"Range": byte_range})
        if response.status_code == 416:
            return Fetched(b"", _total_from_content_range(response.headers.get("Content-Range")))
        if response.status_code not in (200, 206):
            raise _status_failure(response.status_code)
        data = response.content
        total = _total_from_content_range(response.headers.get("Content-Range"))
        if response.status_code == 200:  # the whole object: the range was ignored
            total = len(data)
            data = data[start:stop]
        hashes = dict(
            part.split("=", 1)
            for part in response.headers.get("x-goog-hash", "").split(",")
            if "=" in part
        )
        return Fetched(
            data,
            total,
            generation=response.headers.get("x-goog-generation"),
            etag=response.headers.get("ETag"),
            md5=hashes.get("md5"),
            crc32c=hashes.get("crc32c"),
        )

    def list(self, url: BucketURL) -> Iterator[tuple[list[dict[str, Any]], int]]:
        """Pages of object resources under ``url.key`` (a prefix), with one request each."""
        api = f"{self.endpoint}/storage/v1/b/{url.bucket}/o"
        params = {
            "prefix": url.key,
            "fields": "items(name,size,generation,etag,md5Hash,crc32c),nextPageToken",
            "maxResults": "1000",
        }
        while True:
            response = self._get(api, params, {})
            if response.status_code != 200:
                raise _status_failure(response.status_code)
            body = response.json()
            yield body.get("items", []), 1
            token = body.get("nextPageToken")
            if not token:
                return
            params["pageToken"] = token

    def ref(self, url: BucketURL, item: dict[str, Any]) -> ObjectRef:
        return ObjectRef(
            url.child(item["name"]),
            int(item["size"]) if item.get("size") is not None else None,
            generation=str(item["generation"]) if item.get("generation") else None,
            etag=item.get("etag"),
            md5=item.get("md5Hash"),
            crc32c=item.get("crc32c"),
        )


class _S3Client:
    """boto3 S3 client (thread-safe) with botocore's standard retries, one per process."""

    def __init__(self, options: StorageOptions) -> None:
        try:
            import boto3
            from botocore import UNSIGNED
            from botocore.config import Config
        except ImportError as exc:
            raise missing_extra("boto3", "aws") from exc
        session = boto3.session.Session()
        anonymous = options.anonymous or session.get_credentials() is None
        config = Config(
            retries={"mode": "standard", "max_attempts": options.attempts},
            max_pool_connections=max(10, options.requests_in_flight),
            connect_timeout=options.timeout,
            read_timeout=options.timeout,
            signature_version=UNSIGNED if anonymous else None,
        )
        self.client = session.client(
            "s3",
            endpoint_url=options.s3_endpoint_url,
            region_name=session.region_name or "us-east-1",
            config=config,
        )

    def fetch(self, url: BucketURL, start: int, stop: int | None, etag: str | None) -> Fetched:
        kwargs: dict[str, Any] = {
            "Bucket": url.bucket,
            "Key": url.key,
            "Range": f"bytes={start}-{'' if stop is None else stop - 1}",
        }
        if etag:
            kwargs["IfMatch"] = etag if etag.startswith('"') else f'"{etag}"'
        try:
            response = _s3_call(lambda: self.client.get_object(**kwargs))
        except IngestError as error:
            if error.error_type == "HTTP416":
                return Fetched(b"", None)
            raise
        data = response["Body"].read()
        etag_value = (response.get("ETag") or "").strip('"') or None
        return Fetched(
            data,
            _total_from_content_range(response.get("ContentRange")) or None,
            generation=response.get("VersionId"),
            etag=etag_value,
        )

    def list(self, url: BucketURL) -> Iterator[tuple[list[dict[str, Any]], int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=url.bucket, Prefix=url.key))
        while True:
            page = _s3_call(lambda: next(pages, None))
            if page is None:
                return
            yield page.get("Contents", []), 1

    def ref(self, url: BucketURL, item: dict[str, Any]) -> ObjectRef:
        etag = (item.get("ETag") or "").strip('"') or None
        return ObjectRef(url.child(item["Key"]), int(item["Size"]), etag=etag)


_S3_CODES = {
    "NoSuchKey": 404,
    "NoSuchBucket": 404,
    "404": 404,
    "NotFound": 404,
    "AccessDenied": 403,
    "403": 403,
    "AllAccessDisabled": 403,
    "InvalidAccessKeyId": 401,
    "SignatureDoesNotMatch": 401,
    "PreconditionFailed": 412,
    "412": 412,
    "InvalidRange": 416,
}


def _s3_call(call: Any) -> Any:
    """Run one boto3 call (botocore retries inside); map what fails to an IngestError."""
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        ConnectionError,
        ReadTimeoutError,
    )

    try:
        return call()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = _S3_CODES.get(code) or exc.response.get("ResponseMetadata", {}).get(
            "HTTPStatusCode", 0
        )
        if status in _STATUS_ERRORS or status == 416:
            raise _status_failure(status) from None
        raise _failure(code or f"HTTP{status}", f"request failed (HTTP {status})") from None
    except ReadTimeoutError:
        raise _failure("Timeout", "no answer in time after retries") from None
    except ConnectionError:
        raise _failure("ConnectionError", "could not connect after retries") from None
    except BotoCoreError as exc:
        raise _failure(type(exc).__name__, "request failed") from None


def _with_retry(retry: Any, attempt: Any) -> Any:
    """Run ``attempt`` under a google.api_core Retry; map what still fails to an IngestError."""
    import requests
    from google.api_core import exceptions as api_exceptions

    try:
        return retry(attempt)()
    except api_exceptions.RetryError as exc:
        cause = exc.cause
        if isinstance(cause, requests.Timeout):
            raise _failure("Timeout", "no answer in time after retries") from None
        if isinstance(cause, api_exceptions.GoogleAPICallError) and cause.code:
            raise _failure(f"HTTP{cause.code}", "server error after retries") from None
        raise _failure("ConnectionError", "could not connect after retries") from None
    except requests.Timeout:
        raise _failure("Timeout", "no answer in time") from None
    except requests.ConnectionError:
        raise _failure("ConnectionError", "could not connect") from None
    except api_exceptions.GoogleAPICallError as exc:
        raise _failure(f"HTTP{exc.code}", "server error") from None


def fetch_range(
    url: str,
    start: int,
    stop: int | None,
    options: StorageOptions,
    *,
    generation: str | None = None,
    etag: str | None = None,
) -> Fetched:
    """Bytes ``[start, stop)`` of an object (``stop`` None: to the end), in one request.

    The read is conditional on ``generation`` (GCS) or ``etag`` (S3) when given, so a replaced
    object fails (``ObjectChanged``) instead of yielding bytes of another version. Raises
    ``IngestError`` (stage ``read``) for what the store refuses.
    """
    parsed = parse_bucket_url(url)
    client = _client(parsed.scheme, options)
    return client.fetch(parsed, start, stop, generation if parsed.scheme == "gs" else etag)


def list_prefix(url: BucketURL, options: StorageOptions) -> Iterator[tuple[list[ObjectRef], int]]:
    """Pages of objects whose names start with ``url.key``, and the requests each took.

    Folder placeholders (names ending with ``/``) are left out: they are not objects of a run.
    """
    client = _client(url.scheme, options)
    for items, requests in client.list(url):
        refs = [client.ref(url, item) for item in items]
        yield [ref for ref in refs if not ref.url.endswith("/")], requests
