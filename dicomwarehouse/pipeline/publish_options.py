"""Publish to BigQuery at the end of an ingest: Beam pipeline options and the hook ``ingest``
calls after it committed a run.

    dicomwarehouse ingest SOURCE --warehouse DIR -- --runner=DataflowRunner --project=P \\
        --bigquery_dataset=D [--bigquery_location=L] [--bigquery_staging=gs://...]

The options are Beam pipeline options (so they travel with the other Beam flags after ``--``
and show in the job's options on Dataflow); the project defaults to Beam's ``--project``. They
are checked before the pipeline runs, so a bad dataset name fails in a second, not after an
hour of Dataflow. The publish runs in the launching process once the pipeline has finished
and the run is committed: the job's last step, so a failed publish never loses the run (publish
it again with ``dicomwarehouse publish bigquery``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from dicomwarehouse.bigquery.plan import PlanError, check_names
from dicomwarehouse.io.urls import is_gs_url
from dicomwarehouse.pipeline.options import add_beam_arguments

__all__ = ["BigQueryPublishOptions", "PublishRequest", "publish_request"]

logger = logging.getLogger(__name__)


class BigQueryPublishOptions(PipelineOptions):
    """``--bigquery_dataset`` and friends: publish the warehouse when the ingest is done."""

    @classmethod
    def _add_argparse_args(cls, parser: Any) -> None:
        add_beam_arguments(parser)  # names and help from the one table of ingest options


def _default_clients(project: str, location: str | None) -> tuple[Any, Any]:
    from dicomwarehouse.bigquery.clients import GoogleBigQuery
    from dicomwarehouse.io.objectstore import GcsStore

    return GoogleBigQuery.from_environment(project, location), GcsStore.from_environment(project)


#: Makes the (BigQuery, Cloud Storage) clients of a publish; tests put fakes here.
client_factory: Callable[[str, str | None], tuple[Any, Any]] = _default_clients


@dataclass(frozen=True)
class PublishRequest:
    """A publish asked for on the ingest command line."""

    project: str
    dataset: str
    location: str | None
    staging: str | None

    def publish(self, warehouse: str) -> Any:
        """Plan and publish the warehouse (a folder or gs:// prefix); returns the report."""
        from dicomwarehouse.bigquery.plan import build_plan
        from dicomwarehouse.bigquery.publish import publish

        api, store = client_factory(self.project, self.location)
        plan = build_plan(
            warehouse,
            self.project,
            self.dataset,
            location=self.location,
            staging=self.staging,
            store=store,
        )
        report = publish(plan, api, store)
        logger.info("%s", report.describe())
        return report


def publish_request(beam_args: Sequence[str], warehouse: str) -> PublishRequest | None:
    """The publish the Beam flags ask for, checked; None when they ask for none.

    A gs:// warehouse is loaded in place; a local one is staged to ``--bigquery_staging``.
    """
    from dicomwarehouse.pipeline.transforms import PipelineArgumentError

    try:
        options = PipelineOptions(list(beam_args))
        wanted = options.view_as(BigQueryPublishOptions)
    except (ValueError, TypeError) as exc:
        raise PipelineArgumentError(f"bad Beam pipeline flags: {exc}") from exc
    if not wanted.bigquery_dataset:
        for flag in ("bigquery_location", "bigquery_staging"):
            if getattr(wanted, flag):
                raise PlanError(f"--{flag} needs --bigquery_dataset")
        return None
    project, _, dataset = wanted.bigquery_dataset.rpartition(".")
    project = project or options.view_as(GoogleCloudOptions).project or ""
    if not project:
        raise PlanError("--bigquery_dataset needs a project: PROJECT.DATASET or --project")
    check_names(project, dataset, wanted.bigquery_location, wanted.bigquery_staging)
    staging = wanted.bigquery_staging.rstrip("/") if wanted.bigquery_staging else None
    if staging is None and not is_gs_url(warehouse):
        raise PlanError(
            "--bigquery_dataset needs --bigquery_staging gs://... for a local warehouse"
        )
    return PublishRequest(project, dataset, wanted.bigquery_location, staging)
