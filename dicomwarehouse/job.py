"""The ingest job's entry point for launchers (Dataflow Flex Template, schedulers).

A Flex Template passes each template parameter as ``--name=value`` (strings only, lists
comma-separated) and Beam's own options the same way. ``run(argv)`` takes the job's parameters
with ``parse_known_args`` and hands everything else to Beam, as Beam's examples do.
pipelines/ingest/metadata.json declares exactly the parameters of ``build_parser``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from dicomwarehouse.budgets import DEFAULT_MAX_ELEMENTS, DEFAULT_MAX_HEADER_BYTES, ReadBudget
from dicomwarehouse.ingest import IngestOptions, IngestSummary, ingest
from dicomwarehouse.read import DEFAULT_DEFER_SIZE

__all__ = ["build_parser", "run"]

logger = logging.getLogger(__name__)


def _flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return value in ("true", "1", "yes")


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The job's own parameters (each one is a template parameter)."""
    parser = argparse.ArgumentParser(prog="dicomwarehouse-ingest-job", add_help=True)
    parser.add_argument(
        "--sources",
        type=_comma_list,
        default=[],
        help="comma-separated files, folders, globs or bucket prefixes",
    )
    parser.add_argument(
        "--manifests", type=_comma_list, default=[], help="comma-separated manifest files"
    )
    parser.add_argument(
        "--warehouse", required=True, help="the warehouse: a gs://bucket/prefix or a local folder"
    )
    parser.add_argument(
        "--incremental",
        type=_flag,
        default=False,
        help="read only new or changed objects (true/false)",
    )
    parser.add_argument(
        "--full_listing",
        type=_flag,
        default=False,
        help="objects missing from the sources are marked deleted (true/false)",
    )
    parser.add_argument(
        "--retry_errors",
        type=_flag,
        default=False,
        help="read again objects whose last read failed (true/false)",
    )
    parser.add_argument(
        "--defer_size",
        type=int,
        default=DEFAULT_DEFER_SIZE,
        help="values longer than this many bytes are skipped, not loaded",
    )
    parser.add_argument(
        "--max_elements",
        type=int,
        default=DEFAULT_MAX_ELEMENTS,
        help="elements and items one object's header may hold before it is cut short",
    )
    parser.add_argument(
        "--max_header_bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help="bytes one object's header may need read before it is cut short",
    )
    return parser  # fmt: skip


def run(argv: Sequence[str] | None = None) -> IngestSummary:
    """Parse the job parameters, pass the rest to Beam, and ingest."""
    known, beam_args = build_parser().parse_known_args(argv)
    summary = ingest(
        known.sources,
        known.warehouse,
        manifests=known.manifests,
        beam_args=beam_args,
        defer_size=known.defer_size,
        budget=ReadBudget(max_elements=known.max_elements, max_header_bytes=known.max_header_bytes),
        options=IngestOptions(
            incremental=known.incremental,
            full_listing=known.full_listing,
            retry_errors=known.retry_errors,
        ),
    )
    logger.info("%s", summary.describe())
    return summary
