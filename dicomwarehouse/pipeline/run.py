"""One ingest run end to end: a pipeline that lists, plans against the ledger, reads, commits.

This is what ``dicomwarehouse ingest`` and the Beam job's ``run(argv)`` both call. Beam flags
may ask for a BigQuery publish at the end (``pipeline.publish_options``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dicomwarehouse.dicom.budgets import ReadBudget
from dicomwarehouse.dicom.extract import new_run
from dicomwarehouse.dicom.read import DEFAULT_DEFER_SIZE
from dicomwarehouse.errors import SourceError
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.io.objectstore import read_json, warehouse_location
from dicomwarehouse.io.urls import Location
from dicomwarehouse.pipeline.finish import RunFinish, publish_report_url
from dicomwarehouse.sources.expand import check_sources, listing_tasks
from dicomwarehouse.sources.listing import Lister
from dicomwarehouse.tables.required_columns import IDC_MANIFEST_COLUMNS, with_prefixes
from dicomwarehouse.tables.schema import ColumnPath
from dicomwarehouse.warehouse.commit import remove_uncommitted, start_run
from dicomwarehouse.warehouse.layout import (
    WarehouseError,
    committed_column_paths,
    read_run_record,
    run_output,
)
from dicomwarehouse.warehouse.ledger import ACTIONS, ledger_shard_urls
from dicomwarehouse.warehouse.lock import exclusive_writer

__all__ = ["IngestOptions", "IngestSummary", "ingest", "redact_arguments"]

logger = logging.getLogger(__name__)

_SECRET_FLAG = re.compile(r"(secret|password|token|credential|access_key|private_key)", re.I)


def redact_arguments(arguments: Sequence[str]) -> list[str]:
    """Pipeline flags as recorded in ingest_runs: values of secret-looking flags hidden."""
    redacted: list[str] = []
    hide_next = False
    for argument in arguments:
        if hide_next:
            redacted.append("<redacted>")
            hide_next = False
        elif _SECRET_FLAG.search(argument.split("=", 1)[0]):
            if "=" in argument:
                redacted.append(argument.split("=", 1)[0] + "=<redacted>")
            else:
                redacted.append(argument)
                hide_next = True
        else:
            redacted.append(argument)
    return redacted


@dataclass(frozen=True)
class IngestOptions:
    """How a run treats what the ledger already holds."""

    incremental: bool = False  # skip objects whose version the warehouse already holds
    full_listing: bool = False  # the listing is complete: objects absent from it are deleted
    retry_errors: bool = False  # read again objects whose last read failed, even unchanged
    #: take over a gs:// write lock whose lease has not ended (its holder is known to be dead)
    force_unlock: bool = False


@dataclass(frozen=True)
class IngestSummary:
    """What a run did, for the end-of-run summary line and for callers."""

    run_id: str
    warehouse: str  # a local folder or a gs:// prefix
    objects: int  # objects listed
    instances: int  # DICOM instances: objects read into a dicom_metadata row
    elements: int
    errors: int
    header_bytes_read: int
    elapsed_seconds: float
    actions: dict[str, int] = field(default_factory=dict)
    #: ranged read requests to buckets (every object, failed ones included)
    read_requests: int = 0
    #: listing and manifest requests to buckets
    list_requests: int = 0
    attributes_left_out: int = 0
    deep_sequences_left_out: int = 0
    #: what the publish at the end did (``PublishReport.to_json``) when the flags asked for one
    publish_report: dict[str, Any] | None = None
    #: the runner only submitted the job (a template launch): it commits when it finishes
    submitted: bool = False
    to_read: int = 0  # objects the run read (a submitted run: not known at launch)
    #: distinct SOPInstanceUIDs of those instances (the instances view's rows for this run)
    sop_instance_uids: int = 0
    instances_without_uid: int = 0  # instances without a SOPInstanceUID (DICOMDIRs, ...)

    @property
    def objects_read(self) -> int:
        return self.instances + self.errors

    def describe(self) -> str:
        """One human-readable line."""
        if self.submitted:
            return (
                f"submitted run {self.run_id}: the job lists, plans, reads and commits to "
                f"{self.warehouse}"
            )
        listed = ""
        if self.actions:
            listed = (
                " ("
                + ", ".join(f"{count} {name}" for name, count in self.actions.items() if count)
                + ")"
            )
        requests = (
            f", {self.read_requests} read and {self.list_requests} list requests"
            if self.read_requests or self.list_requests
            else ""
        )
        left_out = ""
        if self.attributes_left_out or self.deep_sequences_left_out:
            left_out = (
                f", left to dicom_elements only: {self.attributes_left_out} rare attributes "
                f"(column limit), {self.deep_sequences_left_out} sequences nested too deep"
            )
        without = (
            f", {self.instances_without_uid} without one" if self.instances_without_uid else ""
        )
        return (
            f"ingested {self.objects} objects{listed} into {self.warehouse}: "
            f"{self.objects_read} objects read: {self.instances} DICOM instances "
            f"({self.sop_instance_uids} distinct SOP Instance UIDs{without}), "
            f"{self.errors} errors; "
            f"{self.elements} elements, {self.header_bytes_read / 1e6:.1f} MB of headers read"
            f"{requests} "
            f"in {self.elapsed_seconds:.1f} s (run {self.run_id}){left_out}"
            + (f"; {self.publish_report['describe']}" if self.publish_report else "")
        )


def ingest(
    sources: Sequence[str],
    warehouse: Location,
    *,
    manifests: Sequence[str] = (),
    beam_args: Sequence[str] = (),
    defer_size: int = DEFAULT_DEFER_SIZE,
    options: IngestOptions | None = None,
    storage: StorageOptions | None = None,
    budget: ReadBudget | None = None,
    required_columns: Iterable[ColumnPath] = (),
) -> IngestSummary:
    """Ingest every object the sources and manifests name into the warehouse.

    ``warehouse`` is a local folder (queried with DuckDB: warehouse.duckdb is rebuilt at the
    end) or a gs:// prefix (the Dataflow case, queried in BigQuery). ``storage`` says how to
    reach gs:// and s3:// buckets and how to read their objects. ``budget`` bounds what one
    object may cost to parse (``budgets``); it is kept in the run record. ``required_columns``
    are column paths the run's dicom_metadata has even when no object has the attribute,
    besides those the views read (``required_columns.read_required_columns``).
    """
    from dicomwarehouse.pipeline.planning import PlanObjects
    from dicomwarehouse.pipeline.publish_options import publish_request
    from dicomwarehouse.pipeline.transforms import check_runner, run_pipeline
    from dicomwarehouse.warehouse.views import referenced_column_paths

    options = options or IngestOptions()
    started = time.monotonic()
    warehouse = warehouse_location(warehouse)
    check_runner(beam_args, warehouse)
    publish = publish_request(beam_args, warehouse)  # checked before the run, not after it
    storage = storage or StorageOptions()
    check_sources(sources, manifests)
    tasks = listing_tasks(sources, manifests)
    if not tasks:
        raise SourceError("the sources name no files")
    # extra manifest columns (collection_id, license, ...): STRING columns of dicom_metadata;
    # IDC's (collection_id, crdc_*_uuid) always, so that IDC queries naming them bind without
    # a manifest
    lister = Lister(storage)
    extra_columns = list(
        dict.fromkeys(
            [*IDC_MANIFEST_COLUMNS, *(n for m in manifests for n in lister.extra_columns(m))]
        )
    )
    with exclusive_writer(warehouse, force=options.force_unlock) as lock:
        remove_uncommitted(warehouse)
        run = new_run()
        logger.info("run %s: %d listing tasks", run.run_id, len(tasks))
        # before the run writes anything: the folders it writes (its ledger rows included)
        start_run(warehouse, run.run_id)
        finish = RunFinish(
            warehouse,
            run.run_id,
            lock.token,
            tuple(extra_columns),
            summary={
                "started_at": run.started_at.isoformat(),
                "sources": list(sources),
                "manifests": list(manifests),
                "incremental": options.incremental,
                "full_listing": options.full_listing,
                "retry_errors": options.retry_errors,
                "read_budget": dataclasses.asdict(budget or ReadBudget()),
                "pipeline_options": redact_arguments(beam_args),
            },
            publish=publish,
        )
        finished_here = run_pipeline(
            tasks,
            ledger_shard_urls(warehouse),
            PlanObjects(
                run.run_id,
                run.started_at,
                incremental=options.incremental,
                full_listing=options.full_listing,
                retry_errors=options.retry_errors,
            ),
            run_output(warehouse, run.run_id),
            run,
            finish,
            beam_args=beam_args,
            required_paths=with_prefixes(
                referenced_column_paths() | set(map(tuple, required_columns))
            ),
            existing_paths=committed_column_paths(warehouse),
            extra_columns=extra_columns,
            defer_size=defer_size,
            storage=storage,
            budget=budget,
            lock=(warehouse, lock.token),
        )
        if not finished_here:
            lock.hand_over()  # the job releases it when it commits
            return IngestSummary(
                run.run_id, warehouse, 0, 0, 0, 0, 0, time.monotonic() - started, submitted=True
            )
    record = read_run_record(warehouse, run.run_id)
    if record is None:
        raise WarehouseError(f"run {run.run_id} ended without committing")
    report_url = publish_report_url(warehouse, run.run_id)
    return IngestSummary(
        run_id=run.run_id,
        warehouse=warehouse,
        objects=record["objects_listed"],
        instances=record["instances"],
        elements=record["elements"],
        errors=record["errors"],
        header_bytes_read=record["header_bytes_read"],
        elapsed_seconds=time.monotonic() - started,
        actions={name: record[name] for name in ACTIONS},
        read_requests=record["read_requests"],
        list_requests=record["list_requests"],
        attributes_left_out=record["attributes_left_out"],
        deep_sequences_left_out=record["deep_sequences_left_out"],
        to_read=record["objects_read"],
        sop_instance_uids=record.get("sop_instance_uids", 0),
        instances_without_uid=record.get("instances_without_uid", 0),
        publish_report=read_json(report_url) if publish is not None else None,
    )
