"""Bucket URLs and object-name globs (``io.buckets``), without a server.

Listings and reads on real servers are in test_buckets.py; here are the rules that decide
which bucket and key a source names and which object names a glob matches.
"""

from __future__ import annotations

import pytest

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.buckets import glob_regex
from dicomwarehouse.io.urls import BucketURL, StorageError, is_bucket_url, parse_bucket_url


@pytest.mark.parametrize(
    ("url", "parsed"),
    [
        ("gs://bucket/a/b.dcm", BucketURL("gs", "bucket", "a/b.dcm")),
        ("s3://bucket/prefix/", BucketURL("s3", "bucket", "prefix/")),
        ("gs://bucket", BucketURL("gs", "bucket", "")),  # the whole bucket
        ("gs://bucket/", BucketURL("gs", "bucket", "")),
        ("GS://bucket/x", BucketURL("gs", "bucket", "x")),  # the scheme is case-insensitive
        ("s3://b/a//double/slash", BucketURL("s3", "b", "a//double/slash")),  # keys kept as is
        ("gs://b/with space+plus.dcm", BucketURL("gs", "b", "with space+plus.dcm")),
    ],
)
def test_bucket_urls_are_split_into_scheme_bucket_and_key(url: str, parsed: BucketURL) -> None:
    assert parse_bucket_url(url) == parsed
    assert is_bucket_url(url)


@pytest.mark.parametrize("url", ["https://host/x", "gs:///key", "s3://", "/local/path", "b/k"])
def test_other_urls_are_refused_in_one_line(url: str) -> None:
    with pytest.raises(StorageError, match="not a gs:// or s3:// URL with a bucket"):
        parse_bucket_url(url)
    assert issubclass(StorageError, UsageError)  # the command prints it as one line


def test_is_bucket_url_needs_a_bucket_scheme() -> None:
    assert not is_bucket_url("/data/gs://x")  # a local path that contains the text
    assert not is_bucket_url("file:///x")
    assert not is_bucket_url("relative/dir")


def test_bucket_url_round_trip_and_children() -> None:
    url = parse_bucket_url("s3://idc-open-data/series/")
    assert str(url) == "s3://idc-open-data/series/"
    assert url.child("series/1.dcm") == "s3://idc-open-data/series/1.dcm"


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("p/**/x.dcm", ["p/x.dcm", "p/a/x.dcm", "p/a/b/x.dcm"], ["q/x.dcm", "p/ax.dcm"]),
        ("p/**", ["p/a", "p/a/b"], ["q/a"]),
        ("p/*/x", ["p/a/x"], ["p/x", "p/a/b/x"]),
        ("p/?", ["p/a"], ["p/ab", "p//"]),  # ? is one character, never a slash
        ("p/[!0-9].dcm", ["p/a.dcm"], ["p/1.dcm"]),  # shell negation
        ("p/[ab]*", ["p/a1", "p/b"], ["p/c"]),
        ("p/a.b+(1).dcm", ["p/a.b+(1).dcm"], ["p/aXb+(1).dcm", "p/a.bb(1).dcm"]),  # literal
        ("p/*.dcm", ["p/line\nbreak.dcm"], ["p/x.dcmz"]),  # any byte of a name, whole names
    ],
)
def test_glob_regex(pattern: str, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(pattern)
    assert [name for name in matches if not regex.fullmatch(name)] == []
    assert [name for name in misses if regex.fullmatch(name)] == []


def test_s5cmd_stars_cross_folders() -> None:
    """An s5cmd line ``cp 's3://b/series/*' .`` copies every object under the prefix."""
    assert glob_regex("series/*", star_crosses_slash=True).fullmatch("series/a/b.dcm")
    assert not glob_regex("series/*").fullmatch("series/a/b.dcm")
