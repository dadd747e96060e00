"""The ``publish bigquery`` and ``schemas`` commands (wired into ``dicomwarehouse.cli``).

Everything the command line needs from this package is here, so the main CLI gains two lines:
one to add the sub-commands, one to run them. Errors in use are UsageError subclasses (one line,
non-zero exit); failures reported by Google's libraries become one line too.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dicomwarehouse.errors import UsageError

__all__ = ["COMMANDS", "PublishFailed", "add_commands", "run_command"]

#: The sub-commands this module adds.
COMMANDS = ("publish", "schemas")


class PublishFailed(UsageError):
    """BigQuery or Cloud Storage refused a request (credentials, permissions, quotas)."""


def add_commands(commands: Any) -> None:
    """Add ``publish bigquery`` and ``schemas`` to the CLI's sub-command parsers."""
    publish = commands.add_parser(
        "publish",
        help="publish a warehouse to a cloud warehouse (BigQuery)",
        description="Publish a warehouse's tables and views to a cloud warehouse.",
    )
    targets = publish.add_subparsers(dest="target", required=True, parser_class=type(publish))
    bigquery = targets.add_parser(
        "bigquery",
        help="load the tables into a BigQuery dataset and create the views there",
        description="Create the dataset if missing, load every run's Parquet into the "
        "*_history tables (the days not yet published), and create the current-state views and "
        "the views of sql/. --dry-run prints the plan without credentials.",
    )
    bigquery.add_argument(
        "--warehouse", required=True, metavar="DIR_OR_GS_PREFIX", help="warehouse folder"
    )
    bigquery.add_argument("--project", required=True, metavar="P", help="Google Cloud project")
    bigquery.add_argument("--dataset", required=True, metavar="D", help="BigQuery dataset")
    bigquery.add_argument(
        "--location", metavar="L", help="dataset location when created (such as US, EU)"
    )
    bigquery.add_argument(
        "--staging",
        metavar="GS_PREFIX",
        help="gs:// prefix to copy a local warehouse's Parquet to for the load jobs",
    )
    bigquery.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan; needs no credentials; fails (status 1) when the publish would "
        "(a local warehouse without --staging)",
    )
    bigquery.add_argument(
        "--full", action="store_true", help="reload every day, even those already published"
    )
    bigquery.add_argument("--format", choices=("text", "json"), default="text")

    schemas = commands.add_parser(
        "schemas",
        help="write the BigQuery JSON schemas of the fixed tables (schemas/)",
        description="Generate schemas/ from the code; --check only reports stale files.",
    )
    schemas.add_argument("directory", nargs="?", default="schemas", type=Path)
    schemas.add_argument("--check", action="store_true")


def _store(project: str, *, anonymous: bool = False) -> Any:
    from dicomwarehouse.io.objectstore import GcsStore

    return GcsStore.from_environment(project, anonymous=anonymous)


def _publish(args: argparse.Namespace) -> int:
    from dicomwarehouse.bigquery.plan import build_plan

    needs_gcs = args.warehouse.startswith("gs://")
    plan = build_plan(
        args.warehouse,
        args.project,
        args.dataset,
        location=args.location,
        staging=args.staging,
        store=_store(args.project, anonymous=args.dry_run) if needs_gcs else None,
    )
    if args.dry_run:
        if args.format == "json":
            print(json.dumps(plan.to_dict(), indent=1))
        else:
            print(plan.describe())
        # a dry run that the real publish would refuse fails too, so scripts see it
        for problem in plan.problems():
            print(f"dicomwarehouse: error: the publish would stop: {problem}", file=sys.stderr)
            return 1
        return 0
    from dicomwarehouse.bigquery.clients import GoogleBigQuery
    from dicomwarehouse.bigquery.publish import publish

    plan.check_publishable()
    api = GoogleBigQuery.from_environment(args.project, args.location)
    store = _store(args.project) if (needs_gcs or args.staging) else None
    report = publish(plan, api, store, full=args.full)
    print(report.describe())
    return 0


def run_command(args: argparse.Namespace) -> int:
    """Run ``publish`` or ``schemas``; Google library failures become PublishFailed."""
    if args.command == "schemas":
        from dicomwarehouse.bigquery.schema_files import run

        return run(args.directory, check=args.check)
    try:
        return _publish(args)
    except UsageError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith(("google.", "requests.", "urllib3.")):
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PublishFailed(f"{type(exc).__name__}: {first}") from exc
        raise
