"""The ingest job's entry point for launchers (Dataflow Flex Template, schedulers).

A Flex Template passes each template parameter as ``--name=value`` (strings only, lists
comma-separated, booleans ``true``/``false``) and Beam's own options the same way. ``run(argv)``
takes the job's parameters with ``parse_known_args`` and hands everything else to Beam, as
Beam's examples do. The parameters, their help and pipelines/ingest/metadata.json all come
from the one table of ingest options (``options``), storage options included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from dicomwarehouse.pipeline.options import OptionError, build_job_parser, ingest_from_arguments
from dicomwarehouse.pipeline.run import IngestSummary

__all__ = ["run"]

logger = logging.getLogger(__name__)


def run(argv: Sequence[str] | None = None) -> IngestSummary:
    """Parse the job parameters, pass the rest to Beam, and ingest.

    A value the ingest cannot use ends the job as a usage error of its parser (exit status 2,
    one line naming the parameter), before anything is listed or read.
    """
    parser = build_job_parser()
    known, beam_args = parser.parse_known_args(argv)
    try:
        summary = ingest_from_arguments(known, beam_args, "template")
    except OptionError as exc:
        parser.error(str(exc))
    logger.info("%s", summary.describe())
    return summary
