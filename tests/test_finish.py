"""The run's finishing step: it commits inside the job, once, and only what the job reported.

A Dataflow bundle that fails after writing a shard is retried, and the retry writes a shard of
its own: the first one is a leftover nobody reported. A finishing step that fails after its
commit is retried as well. Both are reproduced here on the DirectRunner (which never retries)
by calling the step by hand.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from beam_launch import submit_without_waiting
from dicom_samples import base_dataset, dicom_bytes

from dicomwarehouse.dicom.extract import new_run
from dicomwarehouse.pipeline.finish import RunFinish
from dicomwarehouse.pipeline.planning import PlanObjects
from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.pipeline.transforms import run_pipeline
from dicomwarehouse.sources.expand import listing_tasks
from dicomwarehouse.tables.required_columns import COLLECTION_COLUMN
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.layout import (
    EVENTS_TABLE,
    committed_runs,
    read_run_record,
    run_output,
)
from dicomwarehouse.warehouse.lock import exclusive_writer
from dicomwarehouse.warehouse.views import referenced_column_paths


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(5):
        ds = base_dataset(InstanceNumber=str(index))
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.10.3.{index}"
        (folder / f"i{index}.dcm").write_bytes(dicom_bytes(ds))
    (folder / "junk.txt").write_text("not DICOM")
    return folder


@dataclass(frozen=True)
class RecordFinish:
    """A finishing step that only records what the pipeline hands it (pickled like the real)."""

    path: str

    def __call__(self, shards, header_bytes_read: int, read_requests: int, counts) -> None:
        handed = [sorted(shards), header_bytes_read, read_requests, counts]
        Path(self.path).write_text(json.dumps(handed))


def count(warehouse: Path, query: str) -> int:
    con = connect(warehouse)
    try:
        return con.sql(query).fetchall()[0][0]
    finally:
        con.close()


def test_retried_bundles_and_a_retried_finish_leave_one_clean_run(
    folder: Path, tmp_path: Path
) -> None:
    warehouse = str(tmp_path / "w")
    run = new_run()
    handed = tmp_path / "handed.json"
    with exclusive_writer(warehouse) as lock:
        run_pipeline(
            listing_tasks([str(folder)]),
            [],  # an empty ledger
            PlanObjects(
                run.run_id,
                run.started_at,
                incremental=False,
                full_listing=False,
                retry_errors=False,
            ),
            run_output(warehouse, run.run_id),
            run,
            RecordFinish(str(handed)),
            required_paths=set(referenced_column_paths()),  # the views' columns, nested too
            extra_columns=[COLLECTION_COLUMN],  # as every ingest has it
        )
        shards, header_bytes, requests, counts = json.loads(handed.read_text())
        assert header_bytes > 0 and requests == 0  # local files: no bucket requests
        assert (counts["objects_listed"], counts["new"]) == (6, 6)
        metadata_shard = next(s for s in shards if "/dicom_metadata/" in s and s.endswith("et"))
        shutil.copy(metadata_shard, Path(metadata_shard).with_name("part-retried.parquet"))
        finish = RunFinish(warehouse, run.run_id, lock.token, summary={"note": "by hand"})
        finish(shards, header_bytes, requests, counts)
        record = read_run_record(warehouse, run.run_id)
        assert record is not None and record["note"] == "by hand"
        assert (record["instances"], record["errors"], record["failed"]) == (5, 1, 1)
        assert record["header_bytes_read"] == header_bytes
        assert not Path(metadata_shard).with_name("part-retried.parquet").exists()
        finish(shards, header_bytes, requests, counts)  # a retried step: nothing doubles
    assert committed_runs(warehouse) == [run.run_id]
    events = pq.read_table(Path(warehouse) / EVENTS_TABLE / f"run-{run.run_id}")
    assert sorted(events.column("outcome").to_pylist()) == ["failed"] + ["ingested"] * 5
    assert count(Path(warehouse), "SELECT count(*) FROM dicom_metadata") == 5
    assert count(Path(warehouse), "SELECT count(*) FROM ingest_objects") == 6


def test_the_job_commits_when_its_launcher_does_not_wait(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template launch: the runner submits the job and returns; the job commits alone."""
    jobs = submit_without_waiting(monkeypatch)
    warehouse = tmp_path / "w"
    summary = ingest([str(folder)], warehouse)
    assert summary.submitted
    assert "submitted run" in summary.describe()
    assert committed_runs(warehouse) == []  # nothing ran yet
    (job,) = jobs
    job.start()
    job.join(timeout=120)
    assert committed_runs(warehouse) == [summary.run_id]
    assert count(warehouse, "SELECT count(*) FROM dicom_metadata") == 5
