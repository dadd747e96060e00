"""One ingest run end to end: list, run the pipeline, commit, publish to DuckDB.

This is what ``dicomwarehouse ingest`` and the Beam job's ``run(argv)`` both call. Beam flags
may ask for a BigQuery publish at the end (``bigquery.options``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dicomwarehouse.extract import new_run
from dicomwarehouse.limits import committed_column_paths
from dicomwarehouse.read import DEFAULT_DEFER_SIZE
from dicomwarehouse.schema import keyword_paths
from dicomwarehouse.sources import SourceError, expand_sources
from dicomwarehouse.warehouse import build_duckdb, commit_run, staging_dir

__all__ = ["IngestSummary", "ingest"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestSummary:
    """What a run did, for the end-of-run summary line and for callers."""

    run_id: str
    warehouse: Path
    objects: int
    instances: int
    elements: int
    errors: int
    header_bytes_read: int
    elapsed_seconds: float
    attributes_left_out: int = 0
    deep_sequences_left_out: int = 0
    publish_report: Any = None  # bigquery.publish.PublishReport when the flags asked for one

    def describe(self) -> str:
        """One human-readable line."""
        left_out = ""
        if self.attributes_left_out or self.deep_sequences_left_out:
            left_out = (
                f", left to dicom_elements only: {self.attributes_left_out} rare attributes "
                f"(column limit), {self.deep_sequences_left_out} sequences nested too deep"
            )
        return (
            f"ingested {self.objects} objects into {self.warehouse}: {self.instances} instances, "
            f"{self.elements} elements, {self.errors} errors, "
            f"{self.header_bytes_read / 1e6:.1f} MB of headers read "
            f"in {self.elapsed_seconds:.1f} s (run {self.run_id}){left_out}"
            + (f"; {self.publish_report.describe()}" if self.publish_report else "")
        )


def ingest(
    sources: Sequence[str],
    warehouse: Path,
    *,
    manifests: Sequence[str] = (),
    beam_args: Sequence[str] = (),
    defer_size: int = DEFAULT_DEFER_SIZE,
) -> IngestSummary:
    """Ingest every object the sources and manifests name into the warehouse folder."""
    from dicomwarehouse.bigquery.options import publish_request
    from dicomwarehouse.pipeline import run_pipeline
    from dicomwarehouse.views import referenced_keywords

    started = time.monotonic()
    publish = publish_request(beam_args)  # checked before the run, not after it
    refs = expand_sources(sources, manifests)
    if not refs:
        raise SourceError("the sources name no files")
    warehouse.mkdir(parents=True, exist_ok=True)
    run = new_run()
    logger.info("run %s: %d objects", run.run_id, len(refs))
    counters = run_pipeline(
        refs,
        str(staging_dir(warehouse, run.run_id)),
        run,
        beam_args=beam_args,
        required_paths=keyword_paths(referenced_keywords()),
        existing_paths=committed_column_paths(warehouse),
        defer_size=defer_size,
    )
    counts = commit_run(
        warehouse,
        run.run_id,
        expected_objects=len(refs),
        summary={
            "started_at": run.started_at.isoformat(),
            "objects": len(refs),
            "sources": list(sources),
            "manifests": list(manifests),
        },
    )
    build_duckdb(warehouse)
    report = publish.publish(warehouse) if publish is not None else None
    return IngestSummary(
        run_id=run.run_id,
        warehouse=warehouse,
        objects=len(refs),
        instances=counts.instances,
        elements=counts.elements,
        errors=counts.errors,
        header_bytes_read=counters.get("header_bytes_read", 0),
        elapsed_seconds=time.monotonic() - started,
        attributes_left_out=counts.attributes_left_out,
        deep_sequences_left_out=counts.deep_sequences_left_out,
        publish_report=report,
    )
