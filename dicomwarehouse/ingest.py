"""One ingest run end to end: list, run the pipeline, commit, publish to DuckDB.

This is what ``dicomwarehouse ingest`` and the Beam job's ``run(argv)`` both call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from dicomwarehouse.extract import new_run
from dicomwarehouse.read import DEFAULT_DEFER_SIZE
from dicomwarehouse.schema import keyword_paths
from dicomwarehouse.sources import SourceError, expand_sources
from dicomwarehouse.storage import StorageOptions
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
    #: ranged read requests to buckets (every object, failed ones included)
    read_requests: int = 0
    #: listing and manifest requests to buckets
    list_requests: int = 0

    def describe(self) -> str:
        """One human-readable line."""
        requests = (
            f", {self.read_requests} read and {self.list_requests} list requests"
            if self.read_requests or self.list_requests
            else ""
        )
        return (
            f"ingested {self.objects} objects into {self.warehouse}: {self.instances} instances, "
            f"{self.elements} elements, {self.errors} errors, "
            f"{self.header_bytes_read / 1e6:.1f} MB of headers read{requests} "
            f"in {self.elapsed_seconds:.1f} s (run {self.run_id})"
        )


def ingest(
    sources: Sequence[str],
    warehouse: Path,
    *,
    manifests: Sequence[str] = (),
    beam_args: Sequence[str] = (),
    defer_size: int = DEFAULT_DEFER_SIZE,
    storage: StorageOptions | None = None,
) -> IngestSummary:
    """Ingest every object the sources and manifests name into the warehouse folder.

    ``storage`` says how to reach gs:// and s3:// buckets and how to read their objects.
    """
    from dicomwarehouse.listing import Lister
    from dicomwarehouse.pipeline import run_pipeline
    from dicomwarehouse.views import referenced_keywords

    started = time.monotonic()
    lister = Lister(storage)
    refs = expand_sources(sources, manifests, lister=lister)
    # extra manifest columns (collection_id, license, ...): STRING columns of dicom_metadata
    extra_columns = list(dict.fromkeys(name for ref in refs for name, _ in ref.extras))
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
        extra_columns=extra_columns,
        defer_size=defer_size,
        storage=lister.options,
    )
    counts = commit_run(
        warehouse,
        run.run_id,
        expected_objects=len(refs),
        extra_columns=extra_columns,
        summary={
            "started_at": run.started_at.isoformat(),
            "objects": len(refs),
            "sources": list(sources),
            "manifests": list(manifests),
            "read_requests": counters.get("read_requests", 0),
            "list_requests": lister.requests,
        },
    )
    build_duckdb(warehouse)
    return IngestSummary(
        run_id=run.run_id,
        warehouse=warehouse,
        objects=len(refs),
        instances=counts.instances,
        elements=counts.elements,
        errors=counts.errors,
        header_bytes_read=counters.get("header_bytes_read", 0),
        elapsed_seconds=time.monotonic() - started,
        read_requests=counters.get("read_requests", 0),
        list_requests=lister.requests,
    )
