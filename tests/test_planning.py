"""Planning in the pipeline (``pipeline.planning.PlanRun``): with several workers and bundles,
the per-bundle counts and batched ledger rows add up to exactly one per object."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from dicomwarehouse.pipeline.planning import LISTED, PlanObjects, PlanRun
from dicomwarehouse.sources.expand import expand_task, listing_tasks
from dicomwarehouse.sources.listing import Lister
from dicomwarehouse.tables.parquet import write_parquet
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA, INGESTED, SKIPPED, event_row

LISTED_AT = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)


def test_counts_and_ledger_rows_are_exact_across_workers(tmp_path: Path) -> None:
    source = tmp_path / "bucket"
    source.mkdir()
    for index in range(40):
        (source / f"{index:03d}.dcm").write_bytes(b"x" * (index + 1))
    refs = {
        ref.url: ref for task in listing_tasks([str(source)]) for ref in expand_task(task, Lister())
    }
    urls = sorted(refs)
    unchanged, changed, new = urls[:25], urls[25:30], urls[30:]
    gone = str(source / "gone.dcm")
    known_refs = [refs[url] for url in unchanged]
    known_refs += [dataclasses.replace(refs[url], generation="older") for url in changed]
    known_refs.append(dataclasses.replace(refs[urls[0]], url=gone))
    rows = [event_row(ref, "new", INGESTED, "run-1", LISTED_AT) for ref in known_refs]
    rows += [event_row(refs[url], "unchanged", SKIPPED, "run-0", LISTED_AT) for url in new]
    shards = []
    for part in range(3):  # several shards, so several readers
        shards.append(str(tmp_path / f"ledger-{part}.parquet"))
        write_parquet(shards[-1], pa.Table.from_pylist(rows[part::3], schema=EVENTS_SCHEMA))
    # the source twice: each object is still listed, planned and counted once
    tasks = listing_tasks([str(source), str(source)])
    plan = PlanObjects("run-2", LISTED_AT, incremental=True, full_listing=True, retry_errors=False)
    options = PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    with beam.Pipeline(options=options) as pipeline:
        planned = pipeline | beam.Create(tasks) | PlanRun(shards, plan)
        to_read = planned["to_read"] | "ToRead" >> beam.MapTuple(
            lambda ref, action: (ref.url, action)
        )
        events = planned["events"] | "Rows" >> beam.FlatMap(
            lambda batch: [(row["source_url"], row["action"], row["outcome"]) for row in batch]
        )
        expected_read = [(url, "changed") for url in changed] + [(url, "new") for url in new]
        expected_events = [(url, "unchanged", SKIPPED) for url in unchanged]
        expected_events.append((gone, "deleted", "deleted"))
        expected_counts = {
            LISTED: len(urls), "unchanged": 25, "changed": 5, "new": 10, "deleted": 1,
            "list_requests": 0,
        }  # fmt: skip
        assert_that(to_read, equal_to(expected_read), label="ReadCheck")
        assert_that(events, equal_to(expected_events), label="EventsCheck")
        assert_that(planned["counts"], equal_to([expected_counts]), label="CountsCheck")
