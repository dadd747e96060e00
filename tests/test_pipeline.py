"""The Beam pipeline on the DirectRunner: shards, one schema per run, every object accounted."""

from __future__ import annotations

import json
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to
from dicom_samples import base_dataset, dicom_bytes, every_vr_dataset

from dicomwarehouse.dicom.extract import new_run
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.pipeline.transforms import (
    IngestTransform,
    StageMetadataRows,
    WriteMetadataShards,
)
from dicomwarehouse.sources.expand import expand_sources
from dicomwarehouse.tables.schema import keyword_paths
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import COLUMN_PATHS_FILE, STAGING_FOLDER


@pytest.fixture
def mixed_files(tmp_path: Path) -> Path:
    """Files whose attributes differ, so only a union gives every shard one schema."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "rich.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    for index in range(6):
        ds = base_dataset(InstanceNumber=str(index))
        if index == 5:
            ds.SeriesDescription = "only here"
        (folder / f"plain{index}.dcm").write_bytes(dicom_bytes(ds))
    (folder / "junk.txt").write_text("not DICOM")
    return folder


def test_transform_writes_shards_with_one_schema(mixed_files: Path, tmp_path: Path) -> None:
    refs = expand_sources([str(mixed_files)])
    staging = tmp_path / "staging"
    run = new_run()
    with TestPipeline() as pipeline:
        written = (
            pipeline
            | beam.Create(refs)
            | IngestTransform(
                str(staging / "{table}"),
                run,
                required_paths=keyword_paths(["Modality"]),
                shard_rows={"metadata": 2, "elements": 50},
            )
        )
        assert_that(
            written["ingest_errors"] | beam.Map(lambda path: Path(path).parent.name),
            equal_to(["ingest_errors"]),
            label="OneErrorShard",
        )
    metadata_shards = sorted((staging / "dicom_metadata").glob("*.parquet"))
    assert len(metadata_shards) >= 2
    schemas = {pq.read_schema(p).to_string() for p in metadata_shards}
    assert len(schemas) == 1
    schema = pq.read_schema(metadata_shards[0])
    assert {"SeriesDescription", "PatientName", "ReferencedSeriesSequence"} <= set(schema.names)
    rows = sum(pq.read_metadata(p).num_rows for p in metadata_shards)
    errors = pq.read_table(staging / "ingest_errors").to_pylist()
    assert rows + len(errors) == len(refs)
    assert [Path(e["source_url"]).name for e in errors] == ["junk.txt"]
    paths = json.loads((staging / "dicom_metadata" / COLUMN_PATHS_FILE).read_text())
    assert [0x00080060] in paths  # a column the views need is there even if no file lacked it


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_multi_process_direct_runner_gives_the_same_tables(mixed_files: Path, tmp_path: Path):
    single = ingest([str(mixed_files)], tmp_path / "one")
    double = ingest(
        [str(mixed_files)],
        tmp_path / "two",
        beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    )
    assert (single.instances, single.errors, single.elements) == (
        double.instances,
        double.errors,
        double.elements,
    )
    query = "SELECT source_url, SeriesDescription FROM dicom_metadata ORDER BY 1"
    one, two = connect(tmp_path / "one"), connect(tmp_path / "two")
    assert one.sql(query).fetchall() == two.sql(query).fetchall()


def test_object_refs_pickle_through_beam() -> None:
    ref = ObjectRef("/x.dcm", 3, (("collection_id", "c1"),))
    with TestPipeline() as pipeline:
        result = pipeline | beam.Create([ref]) | beam.Reshuffle() | beam.Map(lambda r: r.extras)
        assert_that(result, equal_to([(("collection_id", "c1"),)]))


def test_metadata_rows_are_staged_then_removed_at_commit(mixed_files: Path, tmp_path: Path):
    """Rows wait for the run's schema in staged files, not in memory; the commit removes them."""
    summary = ingest([str(mixed_files)], tmp_path / "w")
    run_folder = tmp_path / "w" / "dicom_metadata" / f"run-{summary.run_id}"
    assert not (run_folder / STAGING_FOLDER).exists()
    assert not list((tmp_path / "w").rglob("*.pickle"))
    shards = sorted(run_folder.glob("*.parquet"))
    dicom_files = len(list(mixed_files.glob("*.dcm")))
    assert sum(pq.read_metadata(p).num_rows for p in shards) == summary.instances == dicom_files


def test_staged_rows_make_the_shard_the_rows_would_make(tmp_path: Path) -> None:
    run = new_run()
    provenance = {"ingest_run_id": run.run_id, "ingested_at": run.started_at, "OtherElements": []}
    rows = [
        {"source_url": "/a.dcm", "Modality": "CT", **provenance},
        {"source_url": "/b.dcm", "Modality": None, **provenance},
    ]
    staged = StageMetadataRows(str(tmp_path), shard_rows=10)
    staged.start_bundle()
    assert list(staged.process(rows[0])) == [] and list(staged.process(rows[1])) == []
    (windowed,) = staged.finish_bundle()
    url = windowed.value
    assert Path(url).parent.name == STAGING_FOLDER
    writer = WriteMetadataShards(str(tmp_path), ())
    writer.start_bundle()
    (shard,) = writer.process(url, column_paths=keyword_paths(["Modality"]))
    table = pq.read_table(shard)
    assert table.column("Modality").to_pylist() == ["CT", None]
    assert table.num_rows == 2


def test_sources_that_overlap_give_each_object_once(mixed_files: Path, tmp_path: Path) -> None:
    """Listing tasks are expanded by workers; the join on the URL keeps one object per URL."""
    one = mixed_files / "plain0.dcm"
    summary = ingest([str(mixed_files), str(mixed_files / "plain*.dcm"), str(one)], tmp_path / "w")
    files = len(list(mixed_files.iterdir()))
    assert (summary.objects, summary.objects_read, summary.actions["new"]) == (files,) * 3
    con = connect(tmp_path / "w")
    try:
        urls = con.sql("SELECT source_url FROM ingest_object_events_history").fetchall()
    finally:
        con.close()
    assert sorted(url for (url,) in urls) == sorted(str(p) for p in mixed_files.iterdir())
