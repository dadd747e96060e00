"""The ``dicomwarehouse`` command: ``ingest`` files into a warehouse, query it with ``sql``,
``export`` the objects a query names (``warehouse.export``), ``publish bigquery`` it
(``dicomwarehouse.bigquery.cli``).

Errors in use (a missing warehouse, a bad flag, an empty source) print one line and exit
non-zero; tracebacks are for bugs only (``-v`` shows them for everything).
"""

from __future__ import annotations

import argparse
import base64
import csv
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from dicomwarehouse.bigquery.cli import COMMANDS as BIGQUERY_COMMANDS
from dicomwarehouse.bigquery.cli import add_commands as add_bigquery_commands
from dicomwarehouse.bigquery.cli import run_command as run_bigquery_command
from dicomwarehouse.pipeline.options import OptionError, add_cli_arguments, ingest_from_arguments
from dicomwarehouse.warehouse.export import EXPORT_FORMATS

__all__ = ["main"]

logger = logging.getLogger("dicomwarehouse")

_EXIT_USAGE = 2
_EXIT_FAILED = 1


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, not a usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(_EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="dicomwarehouse",
        description="Turn folders and buckets of DICOM files into an SQL warehouse.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress and details")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ingest = commands.add_parser(
        "ingest",
        help="ingest DICOM files into a warehouse (a folder or gs:// prefix)",
        description="Ingest DICOM files (directories are walked recursively, globs expanded) "
        "into Parquet tables and a DuckDB warehouse. Apache Beam flags go after '--', "
        "e.g. -- --direct_num_workers=2.",
    )
    add_cli_arguments(ingest)

    commands.add_parser(
        "samples",
        help="print the folder of sample DICOM files that ship with pydicom (for a first run)",
    )

    sql = commands.add_parser("sql", help="run a query on a warehouse")
    sql.add_argument("query", metavar="QUERY")
    sql.add_argument("--warehouse", metavar="DIR", help="the warehouse to query (a folder)")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument(
        "--dialect",
        choices=("duckdb", "bigquery"),
        default="duckdb",
        help="write the query in BigQuery's GoogleSQL to run console SQL unchanged",
    )
    sql.add_argument(
        "--show-sql",
        action="store_true",
        help="print the DuckDB SQL the query runs as, instead of running it",
    )
    sql.add_argument(
        "--table-map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="with --dialect bigquery (repeatable): read table OLD, as the query names it "
        "(project.dataset.table), from the warehouse's NEW; without an entry, any "
        "project.dataset prefix (such as bigquery-public-data.idc_current) is dropped",
    )
    export = commands.add_parser(
        "export",
        help="export the objects a query names: an s5cmd file, a URL list, a CSV or Parquet table",
        description="Export the objects a query names (by source_url, SOPInstanceUID, "
        "SeriesInstanceUID or StudyInstanceUID, the first the query returns) as an s5cmd file "
        "(one wildcard line per series that is a whole bucket folder), a URL list, or a table "
        "of URLs and versions; each is a manifest 'ingest --manifest' reads back.",
    )
    export.add_argument("query", metavar="QUERY")
    export.add_argument(
        "--warehouse", metavar="DIR", required=True, help="a local folder or a gs:// prefix"
    )
    export.add_argument("--format", choices=EXPORT_FORMATS, default="s5cmd")
    export.add_argument("--output", metavar="FILE", help="write to FILE (default: standard output)")
    export.add_argument("--dialect", choices=("duckdb", "bigquery"), default="duckdb")
    add_bigquery_commands(commands)
    return parser


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def _run_ingest(args: argparse.Namespace, beam_args: list[str]) -> int:
    summary = ingest_from_arguments(args, beam_args, "cli")
    print(summary.describe())
    return 0


def _run_export(args: argparse.Namespace) -> int:
    from dicomwarehouse.api import open as open_warehouse

    if args.format == "parquet" and args.output is None:
        raise _UsageError("--format parquet needs --output FILE")
    with open_warehouse(args.warehouse) as warehouse:
        result = warehouse.export(args.query, args.format, args.output, args.dialect)
    if args.output is None:
        sys.stdout.write(str(result))
    return 0


def _run_sql(args: argparse.Namespace) -> int:
    from dicomwarehouse.warehouse.duckdb_file import connect
    from dicomwarehouse.warehouse.googlesql import parse_table_map, translate

    if args.table_map and args.dialect != "bigquery":
        raise _UsageError("--table-map is for --dialect bigquery")
    query = args.query
    if args.dialect == "bigquery":
        table_map = parse_table_map(args.table_map)
        query = translate(args.query, table_map=table_map, pretty=args.show_sql)
    if args.show_sql:
        print(query)
        return 0
    if args.warehouse is None:
        raise _UsageError("sql needs --warehouse DIR to run the query (or --show-sql)")
    con = connect(args.warehouse)
    try:
        relation = con.sql(query)
        if relation is None:
            return 0
        if args.format == "table":
            relation.show(max_width=200, max_rows=40)
            return 0
        columns = relation.columns
        rows = relation.fetchall()
    finally:
        con.close()
    if args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([_csv_cell(value) for value in row] for row in rows)
    else:
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        json.dump(records, sys.stdout, default=_json_default, indent=1)
        sys.stdout.write("\n")
    return 0


def _json_default(value: object) -> object:
    """JSON for what DuckDB returns beyond JSON's types: ISO dates and times (as BigQuery's
    JSON export writes them), base64 bytes, decimals as strings (no float rounding)."""
    if isinstance(value, (dt.date, dt.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)  # Decimal, UUID, timedelta


def _csv_cell(value: object) -> object:
    """One CSV field: lists and structs as JSON, dates and times ISO, NULL empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=_json_default, ensure_ascii=False)
    if isinstance(value, (str, int, float)):
        return value
    return _json_default(value)


class _UsageError(ValueError):
    pass


def _configure_logging(verbose: bool) -> None:
    """Library logs stay quiet unless -v: Beam and its cloud clients warn about things that
    do not concern a local run, and pydicom's read warnings are already recorded on each row.
    """
    from dicomwarehouse.dicom import read  # noqa: F401  (it sets pydicom's logger up first)

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(
            lambda record: (
                record.name.startswith("dicomwarehouse") or record.levelno >= logging.ERROR
            )
        )
    logging.getLogger("pydicom").propagate = verbose
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``dicomwarehouse`` command."""
    import duckdb

    from dicomwarehouse.errors import UsageError

    own_args, beam_args = _split_beam_args(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    args = parser.parse_args(own_args)
    _configure_logging(args.verbose)
    try:
        if args.command == "ingest":
            from dicomwarehouse.interrupts import one_line_interrupt

            # Ctrl-C: one line and status 130, also from Beam's threads and worker processes
            with one_line_interrupt(quiet_descriptor=not args.verbose):
                return _run_ingest(args, beam_args)
        if beam_args:
            raise _UsageError("arguments after '--' are only for ingest")
        if args.command == "samples":
            from dicomwarehouse.sources.expand import sample_files_dir

            print(sample_files_dir())
            return 0
        if args.command in BIGQUERY_COMMANDS:
            return run_bigquery_command(args)
        if args.command == "export":
            return _run_export(args)
        return _run_sql(args)
    except (_UsageError, OptionError) as exc:
        print(f"dicomwarehouse: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except (UsageError, duckdb.Error, OSError) as exc:
        if args.verbose:
            logger.exception("failed")
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"dicomwarehouse: error: {message}", file=sys.stderr)
        return _EXIT_FAILED
    except KeyboardInterrupt:
        print("dicomwarehouse: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
