"""The ``dicomwarehouse`` command: ``ingest`` files into a warehouse, query it with ``sql``,
``publish bigquery`` it (``dicomwarehouse.bigquery.cli``).

Errors in use (a missing warehouse, a bad flag, an empty source) print one line and exit
non-zero; tracebacks are for bugs only (``-v`` shows them for everything).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from dicomwarehouse.bigquery.cli import COMMANDS as BIGQUERY_COMMANDS
from dicomwarehouse.bigquery.cli import add_commands as add_bigquery_commands
from dicomwarehouse.bigquery.cli import run_command as run_bigquery_command

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
    ingest.add_argument("sources", nargs="*", metavar="SOURCE", help="file, directory or glob")
    ingest.add_argument(
        "--warehouse",
        required=True,
        metavar="DIR",
        help="a local folder (queried with DuckDB) or a gs://bucket/prefix (queried in BigQuery "
        "after publishing; for Dataflow runs)",
    )
    ingest.add_argument(
        "--manifest",
        action="append",
        default=[],
        metavar="FILE",
        help="manifest (repeatable): URL or path lists, s5cmd, CSV/TSV/Parquet with a URL column, "
        "S3 or GCS inventory reports; a local file or a gs:// or s3:// object",
    )
    ingest.add_argument(
        "--incremental",
        action="store_true",
        help="read only objects that are new or changed (by generation, ETag or MD5) since the "
        "warehouse last read them; unchanged objects cost no byte",
    )
    ingest.add_argument(
        "--full-listing",
        action="store_true",
        help="the sources list every object: objects the warehouse holds that are missing from "
        "them are marked deleted (their rows leave the current views, stay in history)",
    )
    ingest.add_argument(
        "--retry-errors",
        action="store_true",
        help="read again objects whose last read failed, even when unchanged",
    )
    ingest.add_argument(
        "--required-columns",
        metavar="FILE",
        help="dicom_metadata columns every row has, present in the files or not (NULL): one "
        "keyword path a line, such as SegmentSequence.AnatomicRegionSequence.CodeValue, so "
        "that SQL naming attributes absent from this data still binds",
    )
    ingest.add_argument(
        "--defer-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="values longer than this are skipped, not loaded (default 262144)",
    )

    _add_bucket_arguments(ingest)

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
    add_bigquery_commands(commands)
    return parser


def _add_bucket_arguments(ingest: argparse.ArgumentParser) -> None:
    from dicomwarehouse.manifests import MANIFEST_FORMATS

    group = ingest.add_argument_group(
        "buckets and manifests",
        "SOURCE may be gs://bucket/prefix/, s3://bucket/prefix/ or a glob (* within a folder, "
        "** across folders); --manifest may be a local file or a bucket object",
    )
    group.add_argument(
        "--manifest-format",
        choices=MANIFEST_FORMATS,
        default=None,
        help="format of the manifests (default: detected from their content)",
    )
    group.add_argument(
        "--s5cmd-endpoint-url",
        metavar="URL",
        help="the --endpoint-url the s5cmd manifest was written for: "
        "https://storage.googleapis.com reads its s3:// URLs from GCS",
    )
    group.add_argument("--s3-endpoint-url", metavar="URL", help="S3-compatible endpoint")
    group.add_argument(
        "--gcs-endpoint-url",
        metavar="URL",
        help="GCS endpoint (default: STORAGE_EMULATOR_HOST "
        "if set, else https://storage.googleapis.com)",
    )
    group.add_argument(
        "--anonymous",
        action="store_true",
        help="send no credentials (public buckets); by default credentials are used when the "
        "standard chains find some",
    )
    group.add_argument(
        "--first-block",
        type=int,
        metavar="BYTES",
        help="size of the first ranged read of each object (default 8192)",
    )
    group.add_argument(
        "--requests-in-flight",
        type=int,
        metavar="N",
        help="objects opened ahead per worker, one request each (default 32)",
    )


def _storage_options(args: argparse.Namespace):
    from dicomwarehouse.storage import StorageOptions

    for name in ("first_block", "requests_in_flight"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise _UsageError(f"--{name.replace('_', '-')} must be at least 1")
    given = {
        "manifest_format": args.manifest_format,
        "s5cmd_endpoint_url": args.s5cmd_endpoint_url,
        "s3_endpoint_url": args.s3_endpoint_url,
        "gcs_endpoint_url": args.gcs_endpoint_url,
        "anonymous": args.anonymous,
        "first_block": args.first_block,
        "requests_in_flight": args.requests_in_flight,
    }
    return StorageOptions(**{name: value for name, value in given.items() if value is not None})


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    argv = list(argv)
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def _run_ingest(args: argparse.Namespace, beam_args: list[str]) -> int:
    from dicomwarehouse.ingest import IngestOptions, ingest
    from dicomwarehouse.read import DEFAULT_DEFER_SIZE

    if not args.sources and not args.manifest:
        raise _UsageError("ingest needs a SOURCE or --manifest")
    if args.defer_size is not None and args.defer_size < 0:
        raise _UsageError("--defer-size must be zero or more")
    required_columns = set()
    if args.required_columns is not None:
        from dicomwarehouse.required_columns import RequiredColumnsError, read_required_columns

        try:
            required_columns = read_required_columns(args.required_columns)
        except RequiredColumnsError as error:
            raise _UsageError(f"--required-columns: {error}") from None
    summary = ingest(
        args.sources,
        args.warehouse,
        manifests=args.manifest,
        beam_args=beam_args,
        defer_size=DEFAULT_DEFER_SIZE if args.defer_size is None else args.defer_size,
        options=IngestOptions(
            incremental=args.incremental,
            full_listing=args.full_listing,
            retry_errors=args.retry_errors,
        ),
        storage=_storage_options(args),
        required_columns=required_columns,
    )
    print(summary.describe())
    return 0


def _run_sql(args: argparse.Namespace) -> int:
    from dicomwarehouse.googlesql import parse_table_map, translate
    from dicomwarehouse.warehouse import connect

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
        writer.writerows(rows)
    else:
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        json.dump(records, sys.stdout, default=str, indent=1)
        sys.stdout.write("\n")
    return 0


class _UsageError(ValueError):
    pass


def _configure_logging(verbose: bool) -> None:
    """Library logs stay quiet unless -v: Beam and its cloud clients warn about things that
    do not concern a local run, and pydicom's read warnings are already recorded on each row.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(
            lambda record: (
                record.name.startswith("dicomwarehouse") or record.levelno >= logging.ERROR
            )
        )
        logging.getLogger("pydicom").propagate = False
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
            return _run_ingest(args, beam_args)
        if beam_args:
            raise _UsageError("arguments after '--' are only for ingest")
        if args.command == "samples":
            from dicomwarehouse.sources import sample_files_dir

            print(sample_files_dir())
            return 0
        if args.command in BIGQUERY_COMMANDS:
            return run_bigquery_command(args)
        return _run_sql(args)
    except _UsageError as exc:
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
