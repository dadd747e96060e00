"""Ingest from gs:// and s3:// on real servers on 127.0.0.1 (gcp-storage-emulator, moto).

pydicom's bundled files are uploaded to both stores once; ingests from each store and manifest
format must give the warehouse a local ingest of the same files gives (keyword columns,
OtherElements and dicom_elements rows, provenance aside). Reads are checked per object (one
request when the header fits in the first block; bytes at most max(first block, 2 x the offset
of Pixel Data) unless deflated), and failures per object: missing (404), forbidden (403),
replaced after listing, timeouts, unreadable manifest lines.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_runs import run_main
from emulators import (
    gcs_client,
    gcs_server,  # noqa: F401 (fixture)
    s3_client,
    s3_server,  # noqa: F401 (fixture)
    start_moto,
    stop_server,
)
from ingested import IngestedFolder
from pydicom import dcmread
from pydicom.filereader import _at_pixel_data, read_partial

from dicomwarehouse.dicom.extract import extract_object, new_run
from dicomwarehouse.dicom.ranged import open_object
from dicomwarehouse.dicom.trailing import TRAILING_BLOCK
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.pipeline.run import IngestSummary, ingest
from dicomwarehouse.sources.expand import expand_sources
from dicomwarehouse.sources.listing import Lister
from dicomwarehouse.warehouse.duckdb_file import connect

pytestmark = pytest.mark.filterwarnings(r"ignore::UserWarning:pydicom(\..*)?")

BUCKET = "dw-samples"
PREFIX = "pydicom/"
MANIFESTS = "dw-manifests"

PROVENANCE = {
    "source_url",
    "source_size",
    "source_generation",
    "source_etag",
    "source_md5",
    "source_crc32c",
    "header_bytes_read",
    "ingest_run_id",
    "ingested_at",
    "ingest_anomalies",
}


def sample_files(root: Path) -> dict[str, Path]:
    return {
        path.relative_to(root).as_posix(): path
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def samples(pydicom_files_dir: Path) -> dict[str, Path]:
    return sample_files(pydicom_files_dir)


@pytest.fixture(scope="module")
def gcs_bucket(gcs_server, samples: dict[str, Path]) -> str:  # noqa: F811
    client = gcs_client()
    bucket = client.create_bucket(BUCKET)
    for name, path in samples.items():
        bucket.blob(PREFIX + name).upload_from_filename(str(path))
    client.create_bucket(MANIFESTS)
    return f"gs://{BUCKET}/{PREFIX}"


@pytest.fixture(scope="module")
def s3_bucket(s3_server, samples: dict[str, Path]) -> str:  # noqa: F811
    client = s3_client(s3_server.endpoint)
    client.create_bucket(Bucket=BUCKET)
    for name, path in samples.items():
        client.put_object(Bucket=BUCKET, Key=PREFIX + name, Body=path.read_bytes())
    client.create_bucket(Bucket=MANIFESTS)
    return f"s3://{BUCKET}/{PREFIX}"


@pytest.fixture(scope="module")
def s3_options(s3_server) -> StorageOptions:  # noqa: F811
    return StorageOptions(s3_endpoint_url=s3_server.endpoint)


@pytest.fixture(scope="module")
def local_warehouse(pydicom_warehouse: IngestedFolder) -> Path:
    """The session's local ingest of the same files (conftest), to compare with."""
    return pydicom_warehouse.warehouse


def content(root: Path, prefix: str) -> dict[str, Any]:
    """What must not depend on where the files were read from, by relative name."""
    con = connect(root)
    try:
        relation = con.sql("SELECT * FROM dicom_metadata")
        columns = [c for c in relation.columns if c not in PROVENANCE]
        metadata = {}
        for row in relation.fetchall():
            record = dict(zip(relation.columns, row, strict=True))
            name = record["source_url"][len(prefix) :]
            metadata[name] = {c: record[c] for c in columns}
        elements: dict[str, list[tuple]] = {}
        query = "SELECT * EXCLUDE (ingest_run_id) FROM dicom_elements"
        relation = con.sql(query)
        url_index = relation.columns.index("source_url")
        for row in relation.fetchall():
            name = row[url_index][len(prefix) :]
            rest = tuple(value for i, value in enumerate(row) if i != url_index)
            elements.setdefault(name, []).append(repr(rest))
        errors = {
            row[0][len(prefix) :]: (row[1], row[2])
            for row in con.execute(
                "SELECT source_url, stage, error_type FROM ingest_errors"
            ).fetchall()
        }
    finally:
        con.close()
    return {
        "columns": sorted(columns),
        "metadata": metadata,
        "elements": {name: sorted(rows) for name, rows in elements.items()},
        "errors": errors,
    }


def assert_same_content(local: Path, local_dir: Path, other: Path, prefix: str) -> None:
    expected = content(local, str(local_dir) + "/")
    got = content(other, prefix)
    assert got["columns"] == expected["columns"]
    assert got["errors"] == expected["errors"]
    assert got["metadata"].keys() == expected["metadata"].keys()
    differing = [n for n in expected["metadata"] if got["metadata"][n] != expected["metadata"][n]]
    assert not differing, differing[:10]
    differing = [
        n for n in expected["elements"] if got["elements"].get(n) != expected["elements"][n]
    ]
    assert not differing, differing[:10]


def accounted(root: Path) -> tuple[list[str], list[str]]:
    con = connect(root)
    try:
        rows = [r[0] for r in con.execute("SELECT source_url FROM dicom_metadata").fetchall()]
        errors = [r[0] for r in con.execute("SELECT source_url FROM ingest_errors").fetchall()]
    finally:
        con.close()
    return rows, errors


# --- end to end, compared with a local ingest ------------------------------------------------


def test_gcs_prefix_gives_the_local_warehouse(
    gcs_bucket: str, local_warehouse: Path, pydicom_files_dir: Path, tmp_path: Path,
    samples: dict[str, Path],
) -> None:  # fmt: skip
    summary = ingest([gcs_bucket], tmp_path / "w")
    assert summary.objects == len(samples)
    assert_same_content(local_warehouse, pydicom_files_dir, tmp_path / "w", gcs_bucket)
    # every object read with at least one request, and most with exactly one
    assert len(samples) <= summary.read_requests <= 1.5 * len(samples)
    assert summary.list_requests == 1
    con = connect(tmp_path / "w")
    missing = con.sql(
        "SELECT count(*) FROM dicom_metadata WHERE source_generation IS NULL "
        "OR source_md5 IS NULL OR source_crc32c IS NULL OR source_size IS NULL"
    ).fetchall()
    md5s = dict(con.sql("SELECT source_url, source_md5 FROM dicom_metadata").fetchall())
    con.close()
    assert missing == [(0,)]  # from the listing, with no request per object
    # GCS lists MD5 in base64; the column holds the hex digest of the object's bytes
    expected = {
        f"{gcs_bucket}{name}": hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
        for name, path in samples.items()
    }
    assert md5s and set(md5s) <= set(expected)
    assert md5s == {url: expected[url] for url in md5s}


def test_s5cmd_manifest_in_a_bucket_gives_the_local_warehouse(
    s3_bucket: str, s3_options: StorageOptions, s3_server, local_warehouse: Path,  # noqa: F811
    pydicom_files_dir: Path, tmp_path: Path, samples: dict[str, Path],
) -> None:  # fmt: skip
    folders = sorted({name.split("/")[0] for name in samples if "/" in name})
    lines = ["# IDC portal manifest", f"cp s3://{BUCKET}/{PREFIX}* ./downloads/"]
    lines += [f"cp 's3://{BUCKET}/{PREFIX}{folder}/*' ./downloads/" for folder in folders]
    s3_client(s3_server.endpoint).put_object(
        Bucket=MANIFESTS, Key="idc.s5cmd", Body="\n".join(lines).encode()
    )
    summary = ingest(
        [], tmp_path / "w", manifests=[f"s3://{MANIFESTS}/idc.s5cmd"], storage=s3_options
    )
    assert summary.objects == len(samples)  # the series lines account for every object
    assert_same_content(local_warehouse, pydicom_files_dir, tmp_path / "w", s3_bucket)
    rows, errors = accounted(tmp_path / "w")
    assert sorted(rows + errors) == sorted(s3_bucket + name for name in samples)


def test_the_same_s5cmd_manifest_read_from_gcs(gcs_bucket: str, tmp_path: Path, samples) -> None:
    manifest = tmp_path / "idc.s5cmd"
    manifest.write_text(f"cp s3://{BUCKET}/{PREFIX}* .\n")
    options = StorageOptions(s5cmd_endpoint_url="https://storage.googleapis.com")
    refs = expand_sources([], [str(manifest)], lister=Lister(options))
    assert [ref.url for ref in refs] == [gcs_bucket + name for name in samples]
    assert all(ref.generation and ref.crc32c for ref in refs)


def test_globs(gcs_bucket: str, samples: dict[str, Path]) -> None:
    top = expand_sources([f"{gcs_bucket}*.dcm"])
    assert [ref.url for ref in top] == [
        gcs_bucket + n for n in samples if n.endswith(".dcm") and "/" not in n
    ]
    everywhere = expand_sources([f"{gcs_bucket}**/*.dcm"])
    assert [ref.url for ref in everywhere] == [
        gcs_bucket + n for n in samples if n.endswith(".dcm")
    ]
    one = expand_sources([gcs_bucket + "CT_small.dcm"])
    assert [(r.url, r.size) for r in one] == [
        (gcs_bucket + "CT_small.dcm", samples["CT_small.dcm"].stat().st_size)
    ]


CT_FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "MR_small_bigendian.dcm"]


def table_rows(prefix: str) -> list[dict[str, Any]]:
    return [
        {
            "collection_id": "col-a" if index % 2 else "col-b",
            "gcs_url": prefix + name,
            "license": "CC BY 4.0",
            "Modality": "kept apart from the DICOM column",
        }
        for index, name in enumerate(CT_FILES)
    ]


def test_csv_manifest_columns_become_provenance_columns(gcs_bucket: str, tmp_path: Path) -> None:
    rows = table_rows(gcs_bucket)
    manifest = tmp_path / "cohort.csv"
    lines = [f'{r["collection_id"]},{r["gcs_url"]},"{r["license"]}",{r["Modality"]}' for r in rows]
    manifest.write_text("collection_id,gcs_url,license,Modality\n" + "\n".join(lines) + "\n")
    summary = ingest([], tmp_path / "w", manifests=[str(manifest)])
    assert (summary.instances, summary.errors) == (len(rows), 0)
    con = connect(tmp_path / "w")
    got = con.sql(
        "SELECT source_url, collection_id, license, manifest_Modality, Modality "
        "FROM dicom_metadata ORDER BY source_url"
    ).fetchall()
    con.close()
    expected = sorted((r["gcs_url"], r["collection_id"], r["license"], r["Modality"]) for r in rows)
    assert [row[:4] for row in got] == expected
    assert sorted(row[4] for row in got) == ["CT", "MR", "MR", "NM", "RTPLAN"]


def test_tsv_and_parquet_manifests_name_the_same_objects(gcs_bucket: str, tmp_path: Path) -> None:
    rows = table_rows(gcs_bucket)
    tsv = tmp_path / "cohort.tsv"
    tsv.write_text(
        "collection_id\tgcs_url\tlicense\tModality\n"
        + "".join("\t".join(r.values()) + "\n" for r in rows)
    )
    parquet = tmp_path / "cohort.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    from_tsv = expand_sources([], [str(tsv)])
    from_parquet = expand_sources([], [str(parquet)])
    assert from_tsv == from_parquet
    assert [ref.url for ref in from_tsv] == [r["gcs_url"] for r in rows]
    assert dict(from_tsv[0].extras) == {
        "collection_id": "col-b",
        "license": "CC BY 4.0",
        "manifest_Modality": "kept apart from the DICOM column",
    }


def test_s3_inventory_reports(
    s3_bucket: str,
    s3_options: StorageOptions,
    s3_server,  # noqa: F811
) -> None:
    client = s3_client(s3_server.endpoint)
    listed = expand_sources([s3_bucket], lister=Lister(s3_options))
    keys = [ref.url[len(f"s3://{BUCKET}/") :] for ref in listed]
    # CSV data files are gzipped, without header, keys URL-encoded
    import gzip
    from urllib.parse import quote

    lines = [
        f'"{BUCKET}","{quote(key)}","{ref.size}","{ref.etag}"'
        for key, ref in zip(keys, listed, strict=True)
    ]
    half = len(lines) // 2
    files = []
    for index, chunk in enumerate([lines[:half], lines[half:]]):
        key = f"inventory/{BUCKET}/cfg/data/part-{index}.csv.gz"
        client.put_object(Bucket=MANIFESTS, Key=key, Body=gzip.compress("\n".join(chunk).encode()))
        files.append({"key": key, "size": 1, "MD5checksum": "x"})
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{MANIFESTS}",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size, ETag",
        "files": files,
    }
    client.put_object(
        Bucket=MANIFESTS, Key="inventory/csv/manifest.json", Body=json.dumps(manifest).encode()
    )
    refs = expand_sources(
        [], [f"s3://{MANIFESTS}/inventory/csv/manifest.json"], lister=Lister(s3_options)
    )
    assert refs == listed
    # the Parquet flavour, with a version id and a delete marker to leave out
    table = pa.Table.from_pylist(
        [
            {"bucket": BUCKET, "key": key, "version_id": None, "is_latest": True,
             "is_delete_marker": False, "size": ref.size, "e_tag": ref.etag}
            for key, ref in zip(keys, listed, strict=True)
        ]
        + [{"bucket": BUCKET, "key": "gone.dcm", "version_id": "v1", "is_latest": True,
            "is_delete_marker": True, "size": None, "e_tag": None}]
    )  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    client.put_object(Bucket=MANIFESTS, Key="inventory/data/p.parquet", Body=buffer.getvalue())
    manifest.update(fileFormat="Parquet", files=[{"key": "inventory/data/p.parquet"}])
    client.put_object(
        Bucket=MANIFESTS, Key="inventory/pq/manifest.json", Body=json.dumps(manifest).encode()
    )
    refs = expand_sources(
        [], [f"s3://{MANIFESTS}/inventory/pq/manifest.json"], lister=Lister(s3_options)
    )
    assert refs == listed


def test_gcs_inventory_reports(gcs_bucket: str) -> None:
    bucket = gcs_client().bucket(MANIFESTS)
    listed = expand_sources([gcs_bucket])
    header = "bucket,name,size,generation,md5Hash,crc32c,etag,storageClass\n"
    rows = [
        f"{BUCKET},{r.url[len(f'gs://{BUCKET}/'):]},{r.size},{r.generation},{r.md5},{r.crc32c},{r.etag},STANDARD\n"
        for r in listed
    ]  # fmt: skip
    half = len(rows) // 2
    bucket.blob("reports/cfg_20250101_0.csv").upload_from_string(header + "".join(rows[:half]))
    bucket.blob("reports/cfg_20250101_1.csv").upload_from_string(header + "".join(rows[half:]))
    bucket.blob("reports/cfg_20250101_manifest.json").upload_from_string(
        json.dumps(
            {
                "records_processed": len(rows),
                "report_shards_file_names": ["cfg_20250101_0.csv", "cfg_20250101_1.csv"],
            }
        )
    )
    assert expand_sources([], [f"gs://{MANIFESTS}/reports/cfg_20250101_manifest.json"]) == listed
    table = pa.Table.from_pylist(
        [
            {"bucket": BUCKET, "name": r.url[len(f"gs://{BUCKET}/") :], "size": r.size,
             "generation": r.generation, "md5Hash": r.md5, "crc32c": r.crc32c, "etag": r.etag}
            for r in listed
        ]
    )  # fmt: skip
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    bucket.blob("reports/cfg_20250101_0.parquet").upload_from_string(buffer.getvalue())
    assert expand_sources([], [f"gs://{MANIFESTS}/reports/cfg_20250101_0.parquet"]) == listed


# --- reads: requests and bytes per object -----------------------------------------------------


def pixel_data_offset(path: Path) -> int:
    """Offset of the Pixel Data element, or the file size when there is none."""
    with warnings.catch_warnings(), open(path, "rb") as handle:
        warnings.simplefilter("ignore")
        try:
            read_partial(handle, stop_when=_at_pixel_data, force=True)
            return handle.tell()
        except Exception:
            return path.stat().st_size


def pixel_data_end(path: Path) -> tuple[int | None, int]:
    """End of a defined-length Pixel Data value (None when encapsulated) and the number of
    fragment items of an encapsulated one, from pydicom's full read."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = dcmread(path, force=True)
            element = ds["PixelData"]
        except Exception:
            return path.stat().st_size, 0
    if element.is_undefined_length:
        return None, len(element.value) // 8 + 2
    return pixel_data_offset(path) + 12 + len(element.value), 0


def test_requests_and_bytes_per_object(gcs_bucket: str, samples: dict[str, Path]) -> None:
    options = StorageOptions()
    run = new_run()
    refs = {ref.url: ref for ref in expand_sources([gcs_bucket])}
    checked_one_request = 0
    for name, path in samples.items():
        ref = refs[gcs_bucket + name]
        opened = open_object(ref, options)
        whole = opened.ranged.read_whole
        extracted = extract_object(ref, run, storage=options, opened=opened)
        size = path.stat().st_size
        offset = pixel_data_offset(path)
        row = extracted.metadata or extracted.error
        fetched = row.get("header_bytes_read", row.get("bytes_read"))
        if whole:
            assert fetched == size, name  # deflated: whole, once
            continue
        # the header, then what follows Pixel Data: nothing when it ends the object, else its
        # rest in one request (encapsulated: the object's tail and a few fragment headers)
        end, fragments = pixel_data_end(path)
        after = 0 if end is not None and end >= size else TRAILING_BLOCK + 8 * fragments
        if end is not None and end < size:
            after = size - end
        assert fetched <= max(options.first_block, 2 * offset) + after, name
        end_of_header = min(size, offset + 12)  # the parser reads Pixel Data's tag to stop
        if end_of_header <= options.first_block and extracted.metadata is not None and not after:
            assert extracted.requests == 1, name
            checked_one_request += 1
    assert checked_one_request > len(samples) // 2


def test_deflated_objects_are_read_whole_within_a_budget(gcs_bucket: str, samples) -> None:
    ref = next(r for r in expand_sources([gcs_bucket]) if r.url.endswith("image_dfl.dcm"))
    run = new_run()
    extracted = extract_object(ref, run, storage=StorageOptions())
    assert extracted.metadata is not None
    assert extracted.metadata["header_bytes_read"] == ref.size
    assert extracted.requests <= 2  # the first block, then the rest at once
    small = StorageOptions(whole_object_budget=1000)
    failed = extract_object(ref, run, storage=small)
    assert failed.error is not None
    assert (failed.error["stage"], failed.error["error_type"]) == ("read", "ObjectTooLarge")


# --- failures, one ingest_errors row each -----------------------------------------------------


def test_missing_objects_and_unreadable_lines_are_rows(
    s3_bucket: str, s3_options: StorageOptions, tmp_path: Path
) -> None:
    manifest = tmp_path / "m.s5cmd"
    manifest.write_text(
        f"cp s3://{BUCKET}/{PREFIX}CT_small.dcm .\n"
        f"cp s3://{BUCKET}/{PREFIX}no-such-file.dcm .\n"
        f"cp s3://{BUCKET}/no-such-series/* .\n"
        f"cp 's3://{BUCKET}/unbalanced .\n"
        f"cp s3://no-such-bucket-here/x.dcm .\n"
    )
    summary = ingest([], tmp_path / "w", manifests=[str(manifest)], storage=s3_options)
    assert (summary.objects, summary.instances, summary.errors) == (5, 1, 4)
    con = connect(tmp_path / "w")
    errors = con.sql(
        "SELECT source_url, stage, error_type, message FROM ingest_errors ORDER BY 1"
    ).fetchall()
    con.close()
    assert [(e[0], e[1], e[2]) for e in errors] == sorted(
        [
            (f"s3://{BUCKET}/{PREFIX}no-such-file.dcm", "read", "NotFound"),
            (f"s3://{BUCKET}/no-such-series/*", "list", "NoObjects"),
            (f"{manifest}#line=4", "list", "UnreadableLine"),
            ("s3://no-such-bucket-here/x.dcm", "read", "NotFound"),
        ]
    )
    assert all("testing" not in e[3] for e in errors)  # no credentials in messages


@pytest.mark.parametrize("store", ["gs", "s3"])
def test_an_object_replaced_after_listing_fails_alone(
    store: str, gcs_bucket: str, s3_bucket: str, s3_options: StorageOptions, s3_server,  # noqa: F811
    samples: dict[str, Path],
) -> None:  # fmt: skip
    prefix = gcs_bucket if store == "gs" else s3_bucket
    options = StorageOptions() if store == "gs" else s3_options
    names = ["CT_small.dcm", "MR_small.dcm"]
    refs = [ref for ref in expand_sources([prefix + n for n in names], lister=Lister(options))]
    replaced = PREFIX + names[0]
    body = samples["rtplan.dcm"].read_bytes()
    if store == "gs":
        gcs_client().bucket(BUCKET).blob(replaced).upload_from_string(body)
    else:
        s3_client(s3_server.endpoint).put_object(Bucket=BUCKET, Key=replaced, Body=body)
    try:
        run = new_run()
        first, second = (extract_object(ref, run, storage=options) for ref in refs)
        assert first.error is not None and second.metadata is not None
        assert (first.error["stage"], first.error["error_type"]) == ("read", "ObjectChanged")
        assert first.error["source_url"] == prefix + names[0]
    finally:
        body = samples[names[0]].read_bytes()
        if store == "gs":
            gcs_client().bucket(BUCKET).blob(replaced).upload_from_string(body)
        else:
            s3_client(s3_server.endpoint).put_object(Bucket=BUCKET, Key=replaced, Body=body)


@pytest.fixture
def s3_with_iam(samples: dict[str, Path]) -> Iterator[tuple[str, dict[str, str]]]:
    """A moto server enforcing IAM: a reader may read ``open/`` but not ``secret/``."""
    import requests

    server = start_moto()
    try:
        admin = s3_client(server.endpoint)
        admin.create_bucket(Bucket="guarded")
        for key in ("open/a.dcm", "secret/b.dcm"):
            admin.put_object(Bucket="guarded", Key=key, Body=samples["CT_small.dcm"].read_bytes())
        import boto3

        iam = boto3.client(
            "iam", endpoint_url=server.endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )  # fmt: skip
        iam.create_user(UserName="reader")
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetObject"], "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:GetObject",
                 "Resource": "arn:aws:s3:::guarded/secret/*"},
            ],
        }  # fmt: skip
        iam.put_user_policy(UserName="reader", PolicyName="read", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        requests.post(f"{server.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)
        yield (
            server.endpoint,
            {
                "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
            },
        )
    finally:
        stop_server(server.process)


def test_access_denied_on_s3_is_a_row(
    s3_with_iam: tuple[str, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, keys = s3_with_iam
    for name, value in keys.items():
        monkeypatch.setenv(name, value)
    options = StorageOptions(s3_endpoint_url=endpoint)
    summary = ingest(["s3://guarded/"], tmp_path / "w", storage=options)
    assert (summary.instances, summary.errors) == (1, 1)
    con = connect(tmp_path / "w")
    errors = con.sql("SELECT source_url, stage, error_type, message FROM ingest_errors").fetchall()
    con.close()
    assert [e[:3] for e in errors] == [("s3://guarded/secret/b.dcm", "read", "AccessDenied")]
    assert keys["AWS_SECRET_ACCESS_KEY"] not in errors[0][3]
    assert keys["AWS_ACCESS_KEY_ID"] not in errors[0][3]
    # anonymous requests to a bucket that needs credentials are refused too
    anonymous = extract_object(
        ObjectRef("s3://guarded/open/a.dcm"),
        new_run(),
        storage=StorageOptions(s3_endpoint_url=endpoint, anonymous=True),
    )
    assert anonymous.error is not None and anonymous.error["error_type"] == "AccessDenied"


class _Refusing(BaseHTTPRequestHandler):
    """Answers every request as GCS answers a caller without access (HTTP 403)."""

    def do_GET(self) -> None:
        body = b'{"error": {"code": 403, "message": "caller does not have storage.objects.get"}}'
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_access_denied_on_gcs_is_a_row() -> None:
    """gcp-storage-emulator has no access control, so it cannot refuse a read: a server on
    127.0.0.1 answering as GCS does (403 with a JSON error) stands in for it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        options = StorageOptions(
            gcs_endpoint_url=f"http://127.0.0.1:{server.server_port}", anonymous=True
        )
        extracted = extract_object(ObjectRef("gs://private/x.dcm"), new_run(), storage=options)
    finally:
        server.shutdown()
        server.server_close()
    assert extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == ("read", "AccessDenied")


def test_a_store_that_never_answers_times_out_per_object() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections, never answers
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        options = StorageOptions(s3_endpoint_url=endpoint, timeout=0.3, attempts=2)
        extracted = extract_object(ObjectRef("s3://slow/x.dcm"), new_run(), storage=options)
    finally:
        listener.close()
    assert extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == ("read", "Timeout")


def test_summary_line_counts_requests(tmp_path: Path) -> None:
    summary = IngestSummary("r", tmp_path, 2, 2, 10, 0, 100, 1.0, read_requests=3, list_requests=1)
    assert "3 read and 1 list requests" in summary.describe()
    assert os.fspath(tmp_path) in summary.describe()


def test_command_line_reads_a_bucket(gcs_bucket: str, tmp_path: Path) -> None:
    result = run_main(
        "ingest", gcs_bucket + "CT_*.dcm", "--warehouse", str(tmp_path / "w"),
        "--first-block", "4096", "--requests-in-flight", "4",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "ingested 1 objects" in result.stdout
    assert "1 list requests" in result.stdout
