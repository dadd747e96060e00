"""Manifest formats: detection from the content, entries, and unreadable lines."""

from __future__ import annotations

import gzip
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dicomwarehouse.io.buckets import glob_regex
from dicomwarehouse.sources.manifests import ManifestError, detect_format, parse_manifest


def no_fetch(url: str) -> bytes:
    raise AssertionError(f"unexpected fetch of {url}")


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"gs://b/x.dcm\ns3://b/y.dcm\n", "urls"),
        (b"# IDC\ncp s3://idc-open-data/abc/* .\n", "s5cmd"),
        (b"url,collection_id\ngs://b/x.dcm,c1\n", "csv"),
        (b"url\tcollection_id\ngs://b/x.dcm\tc1\n", "tsv"),
        (b"bucket,name,size,generation\nb,x.dcm,3,7\n", "gcs-inventory"),
        (json.dumps({"fileFormat": "CSV", "files": []}).encode(), "s3-inventory"),
        (json.dumps({"report_shards_file_names": []}).encode(), "gcs-inventory"),
        (parquet_bytes([{"gcs_url": "gs://b/x.dcm", "license": "CC"}]), "parquet"),
        (parquet_bytes([{"bucket": "b", "key": "x.dcm"}]), "s3-inventory"),
        (parquet_bytes([{"bucket": "b", "name": "x.dcm"}]), "gcs-inventory"),
        (gzip.compress(b"bucket,name\nb,x\n"), "gcs-inventory"),
    ],
)
def test_format_is_detected_from_the_content(content: bytes, expected: str) -> None:
    assert detect_format(content) == expected


def test_s5cmd_lines_and_the_gcs_endpoint() -> None:
    text = (
        b"# from the IDC portal\n"
        b"cp s3://idc-open-data/a1/* ./downloads/\n"
        b'cp --show-progress "s3://idc-open-data/with space/x.dcm" .\n'
        b"rm s3://idc-open-data/a1/*\n"
    )
    entries = list(parse_manifest(text, "m.s5cmd", manifest_format="s5cmd", fetch=no_fetch))
    assert [(e.url, e.pattern, e.error) for e in entries] == [
        ("s3://idc-open-data/a1/*", "s5cmd", None),
        ("s3://idc-open-data/with space/x.dcm", None, None),
        ("m.s5cmd#line=4", None, "not an s5cmd 'cp SRC DST' line"),
    ]
    on_gcs = parse_manifest(
        text,
        "m.s5cmd",
        s5cmd_endpoint_url="https://storage.googleapis.com",
        fetch=no_fetch,
    )
    assert next(iter(on_gcs)).url == "gs://idc-open-data/a1/*"


def test_table_columns_metadata_and_extras() -> None:
    content = (
        b"SeriesInstanceUID,series_aws_url,size,crc32c,collection_id,Modality\n"
        b"1.2.3,s3://b/s1/*,,,c1,CT\n"
        b"1.2.4,s3://b/s2/x.dcm,42,AAAA==,c2,MR\n"
        b"1.2.5,,,,c3,CT\n"
    )
    entries = list(parse_manifest(content, "t.csv", fetch=no_fetch))
    assert entries[0].url == "s3://b/s1/*" and entries[0].pattern == "glob"
    assert dict(entries[1].fields) == {"size": "42", "crc32c": "AAAA=="}
    # DICOM keywords are kept apart from the DICOM columns
    assert dict(entries[1].extras) == {
        "manifest_SeriesInstanceUID": "1.2.4",
        "collection_id": "c2",
        "manifest_Modality": "MR",
    }
    assert (entries[2].url, entries[2].error) == ("t.csv#line=4", "no URL in this row")


def test_a_table_without_a_url_column_is_refused() -> None:
    with pytest.raises(ManifestError, match="no URL column"):
        list(parse_manifest(b"a,b\n1,2\n", "t.csv", fetch=no_fetch))


def test_s3_inventory_csv_keys_are_url_decoded() -> None:
    manifest = {
        "destinationBucket": "arn:aws:s3:::inv",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, ETag",
        "files": [{"key": "data/1.csv.gz"}],
    }
    data = gzip.compress(
        b'"src","dir/with%20space%2B.dcm","v2","true","false","10","abc"\n'
        b'"src","old.dcm","v1","false","false","10","abc"\n'
        b'"src","gone.dcm","v3","true","true","",""\n'
    )
    fetched = []

    def fetch(url: str) -> bytes:
        fetched.append(url)
        return data

    entries = list(parse_manifest(json.dumps(manifest).encode(), "m.json", fetch=fetch))
    assert fetched == ["s3://inv/data/1.csv.gz"]
    assert [(e.url, dict(e.fields)) for e in entries] == [
        ("s3://src/dir/with space+.dcm", {"size": "10", "etag": "abc", "generation": "v2"})
    ]


@pytest.mark.parametrize(
    ("pattern", "crosses", "matches", "misses"),
    [
        ("a/*.dcm", False, ["a/x.dcm"], ["a/b/x.dcm", "b/x.dcm"]),
        ("a/**/*.dcm", False, ["a/x.dcm", "a/b/c/x.dcm"], ["b/x.dcm"]),
        ("a/*", True, ["a/x", "a/b/c"], ["b/x"]),
        ("a/?.dcm", False, ["a/1.dcm"], ["a/12.dcm"]),
        ("a/[0-9].dcm", False, ["a/7.dcm"], ["a/x.dcm"]),
    ],
)
def test_globs(pattern: str, crosses: bool, matches: list[str], misses: list[str]) -> None:
    regex = glob_regex(pattern, star_crosses_slash=crosses)
    assert all(regex.fullmatch(name) for name in matches)
    assert not any(regex.fullmatch(name) for name in misses)
