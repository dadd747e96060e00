"""The ingest's options, defined once.

An ingest is started three ways: ``dicomwarehouse ingest`` (the command line), the job's
``run(argv)`` (a Dataflow Flex Template or a scheduler), and Beam options read by the workers
(the BigQuery publish at the end). Each way used to declare the options itself, and the
template's lagged behind (it could not read a public bucket anonymously). Here one table,
``OPTIONS``, names every option once, with its type, help and where it applies, and the rest
is derived from it:

- ``add_cli_arguments``: the ``ingest`` command's arguments (``--full-listing``, store-true
  flags, a repeatable ``--manifest``, positional SOURCEs);
- ``build_job_parser``: the job's own parameters in a template's spelling (``--full_listing``,
  strings only: booleans ``true``/``false``, lists comma-separated);
- ``add_beam_arguments``: the Beam pipeline options (``BigQueryPublishOptions``);
- ``template_metadata``: pipelines/ingest/metadata.json, the template's parameters
  (``python -m dicomwarehouse.pipeline.options --write-metadata PATH``; a test checks the
  committed file is current);
- ``ingest_from_arguments``: parsed options, checked, to one ``ingest`` call.

Only the standard library and light modules are imported: the command line builds its parser
from this table for every command, ``sql`` included.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.sources.manifests import MANIFEST_FORMATS
from dicomwarehouse.tables.schema import ColumnPath

if TYPE_CHECKING:
    from dicomwarehouse.pipeline.run import IngestSummary

__all__ = [
    "OPTIONS",
    "IngestOption",
    "OptionError",
    "add_beam_arguments",
    "add_cli_arguments",
    "build_job_parser",
    "ingest_from_arguments",
    "template_metadata",
]

#: text: a string; int: a whole number; flag: on or off; list: several strings
Kind = Literal["text", "int", "flag", "list"]
#: how a parser spells the options: the command line's ``--full-listing``, or a template's
#: ``--full_listing`` (Beam's and Dataflow's style)
Spelling = Literal["cli", "template"]

BUCKETS_GROUP = (
    "buckets and manifests",
    "SOURCE may be gs://bucket/prefix/, s3://bucket/prefix/ or a glob (* within a folder, "
    "** across folders); --manifest may be a local file or a bucket object",
)

TEMPLATE_NAME = "dicomwarehouse-ingest"
TEMPLATE_DESCRIPTION = (
    "Ingest DICOM headers from files, buckets or manifests into the dicomwarehouse tables "
    "(Parquet warehouse, ledger of object versions), reading only new or changed objects when "
    "incremental."
)


class OptionError(UsageError):
    """An option value the ingest cannot use; one line naming the flag as the user spelled it."""


@dataclass(frozen=True)
class IngestOption:
    """One option of an ingest, and every place it appears."""

    #: the parsed name (argparse dest), and the template parameter's name
    name: str
    kind: Kind
    #: the command line's help (also the Beam option's help)
    help: str
    #: metadata.json's helpText, and the job's --help
    template_help: str
    #: metadata.json's label (default: from the name, "full_listing" -> "Full listing")
    label: str | None = None
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    #: the smallest value an int may take
    minimum: int | None = None
    #: an option of the ``ingest`` command
    cli: bool = True
    #: a parameter of the template (the job's parser, or a Beam option it reads)
    template: bool = True
    #: a Beam pipeline option, read on the workers: after ``--`` on the command line, and
    #: parsed by Beam in the job, not by the job's own parser
    beam: bool = False
    #: the command line takes the values as positional arguments
    positional: bool = False
    #: the command line's flag when it is not ``--`` + the name with hyphens
    cli_flag: str | None = None
    #: the command line's argument group (title and description)
    cli_group: tuple[str, str] | None = None
    #: metadata.json's regex, when the kind's own (true|false, digits, choices) is not enough
    regex: str | None = None

    def flag(self, spelling: Spelling) -> str:
        """How a user of this parser names the option in a message."""
        if spelling == "template":
            return f"--{self.name}"
        if self.positional:
            return f"a {self.metavar}"
        return self.cli_flag or "--" + self.name.replace("_", "-")


OPTIONS: tuple[IngestOption, ...] = (
    IngestOption(
        "sources",
        "list",
        help="file, directory or glob",
        template_help="Comma-separated files, folders, globs or bucket prefixes to ingest.",
        metavar="SOURCE",
        positional=True,
    ),
    IngestOption(
        "warehouse",
        "text",
        help="a local folder (queried with DuckDB) or a gs://bucket/prefix (queried in BigQuery "
        "after publishing; for Dataflow runs)",
        template_help="Where the job writes its Parquet tables, ledger and run records: "
        "a gs://bucket/prefix.",
        metavar="DIR",
        required=True,
        regex="^gs://[a-z0-9][-_.a-z0-9]*[a-z0-9](/.*)?$",
    ),
    IngestOption(
        "manifests",
        "list",
        help="manifest (repeatable): URL or path lists, s5cmd, CSV/TSV/Parquet with a URL "
        "column, S3 or GCS inventory reports; a local file or a gs:// or s3:// object",
        template_help="Comma-separated manifests (gs:// objects): URL or path lists, s5cmd, "
        "CSV/TSV/Parquet with a URL column, S3 or GCS inventory reports.",
        metavar="FILE",
        cli_flag="--manifest",
    ),
    IngestOption(
        "incremental",
        "flag",
        help="read only objects that are new or changed (by generation, ETag or MD5) since the "
        "warehouse last read them; unchanged objects cost no byte",
        template_help="true: read only objects that are new or changed since the warehouse "
        "last read them.",
    ),
    IngestOption(
        "full_listing",
        "flag",
        help="the sources list every object: objects the warehouse holds that are missing from "
        "them are marked deleted (their rows leave the current views, stay in history)",
        template_help="true: the sources list every object; objects missing from them are "
        "marked deleted.",
    ),
    IngestOption(
        "retry_errors",
        "flag",
        help="read again objects whose last read failed, even when unchanged",
        template_help="true: read again objects whose last read failed, even when unchanged.",
    ),
    IngestOption(
        "force_unlock",
        "flag",
        help="take over the warehouse's gs:// write lock even though its lease has not ended "
        "(its holder is known to be dead); prints whose lock it took",
        template_help="true: take over the warehouse's write lock even though its lease has "
        "not ended (only when the job holding it is known to be dead).",
    ),
    IngestOption(
        "defer_size",
        "int",
        help="values longer than this are skipped, not loaded (default 262144)",
        template_help="Values longer than this many bytes are skipped, never loaded "
        "(default 262144).",
        metavar="BYTES",
        minimum=0,
    ),
    IngestOption(
        "required_columns",
        "text",
        help="dicom_metadata columns every row has, present in the files or not (NULL): one "
        "keyword path a line, such as SegmentSequence.AnatomicRegionSequence.CodeValue, so "
        "that SQL naming attributes absent from this data still binds",
        template_help="A file of dicom_metadata columns every row has, present in the files or "
        "not: one keyword path a line.",
        metavar="FILE",
    ),
    IngestOption(
        "max_elements",
        "int",
        help="an object whose header holds more elements and items than this is cut short "
        "(an anomaly, or an error row) (default 3000000; an item counts as 4)",
        template_help="Elements and items one object's header may hold before it is cut short "
        "(default 3000000).",
        metavar="N",
        minimum=1,
    ),
    IngestOption(
        "max_header_bytes",
        "int",
        help="an object whose header needs more bytes read than this is cut short "
        "(default 67108864)",
        template_help="Bytes one object's header may need read before it is cut short "
        "(default 67108864).",
        metavar="BYTES",
        minimum=1,
    ),
    IngestOption(
        "manifest_format",
        "text",
        help="format of the manifests (default: detected from their content)",
        template_help="Format of the manifests (default: detected from their content).",
        choices=MANIFEST_FORMATS,
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "s5cmd_endpoint_url",
        "text",
        help="the --endpoint-url the s5cmd manifest was written for: "
        "https://storage.googleapis.com reads its s3:// URLs from GCS",
        template_help="The --endpoint-url the s5cmd manifests were written for: "
        "https://storage.googleapis.com reads their s3:// URLs from GCS.",
        label="s5cmd endpoint URL",
        metavar="URL",
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "s3_endpoint_url",
        "text",
        help="S3-compatible endpoint",
        template_help="S3-compatible endpoint for s3:// sources (default: AWS).",
        label="S3 endpoint URL",
        metavar="URL",
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "gcs_endpoint_url",
        "text",
        help="GCS endpoint (default: STORAGE_EMULATOR_HOST "
        "if set, else https://storage.googleapis.com)",
        template_help="Cloud Storage endpoint for gs:// sources "
        "(default: https://storage.googleapis.com).",
        label="GCS endpoint URL",
        metavar="URL",
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "anonymous",
        "flag",
        help="send no credentials (public buckets); by default credentials are used when the "
        "standard chains find some",
        template_help="true: send no credentials to source buckets (public buckets such as "
        "IDC's); by default the job's service account is used.",
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "first_block",
        "int",
        help="size of the first ranged read of each object (default 8192)",
        template_help="Size in bytes of the first ranged read of each object (default 8192).",
        metavar="BYTES",
        minimum=1,
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "requests_in_flight",
        "int",
        help="objects opened ahead per worker, one request each (default 32)",
        template_help="Objects opened ahead per worker, one request each (default 32).",
        metavar="N",
        minimum=1,
        cli_group=BUCKETS_GROUP,
    ),
    IngestOption(
        "bigquery_dataset",
        "text",
        help="publish the warehouse to this BigQuery dataset ([PROJECT.]DATASET) at the end",
        template_help="Publish the warehouse to this dataset (PROJECT.DATASET, or DATASET in "
        "the job's project) when the run has committed.",
        label="BigQuery dataset",
        cli=False,
        beam=True,
        regex="^([-a-z0-9.:]+\\.)?[A-Za-z0-9_]{1,1024}$",
    ),
    IngestOption(
        "bigquery_location",
        "text",
        help="location of the dataset when created",
        template_help="Location of the dataset when the publish creates it (for example US or EU).",
        label="BigQuery location",
        cli=False,
        beam=True,
    ),
    IngestOption(
        "bigquery_staging",
        "text",
        help="gs:// prefix to stage a local warehouse's Parquet for the load jobs",
        template_help="gs:// prefix to stage Parquet for the load jobs; only for a local "
        "warehouse, so not needed here.",
        label="BigQuery staging",
        cli=False,
        beam=True,
    ),
)


# --- parsers ----------------------------------------------------------------------------------


def _template_flag(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")
    return value in ("true", "1", "yes")


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``ingest`` command's arguments: store-true flags, ``--manifest`` repeated."""
    groups: dict[tuple[str, str], Any] = {}
    for option in OPTIONS:
        if not option.cli:
            continue
        target: Any = parser
        if option.cli_group is not None:
            if option.cli_group not in groups:
                groups[option.cli_group] = parser.add_argument_group(*option.cli_group)
            target = groups[option.cli_group]
        kwargs: dict[str, Any] = {"help": option.help}
        if option.positional:
            target.add_argument(option.name, nargs="*", metavar=option.metavar, **kwargs)
            continue
        if option.kind == "flag":
            kwargs["action"] = "store_true"
        elif option.kind == "list":
            kwargs.update(action="append", default=[], metavar=option.metavar)
        else:
            kwargs.update(metavar=option.metavar, default=None)
            if option.kind == "int":
                kwargs["type"] = int
            if option.choices:
                kwargs["choices"] = option.choices
            if option.required:
                kwargs["required"] = True
        target.add_argument(option.flag("cli"), dest=option.name, **kwargs)


def build_job_parser() -> argparse.ArgumentParser:
    """The job's own parameters, as a template passes them (strings, ``--name=value``).

    Beam options (the publish) are left to Beam: ``parse_known_args`` hands them on.
    """
    parser = argparse.ArgumentParser(prog="dicomwarehouse-ingest-job", add_help=True)
    for option in OPTIONS:
        if not option.template or option.beam:
            continue
        kwargs: dict[str, Any] = {"help": option.template_help}
        if option.kind == "flag":
            kwargs.update(type=_template_flag, default=False)
        elif option.kind == "list":
            kwargs.update(type=_comma_list, default=[])
        else:
            kwargs.update(type=int if option.kind == "int" else str, default=None)
            if option.choices:
                kwargs["choices"] = option.choices
        if option.required:
            kwargs["required"] = True
        parser.add_argument(option.flag("template"), **kwargs)
    return parser


def add_beam_arguments(parser: Any) -> None:
    """The Beam pipeline options of the table (``PipelineOptions._add_argparse_args``)."""
    for option in OPTIONS:
        if option.beam:
            parser.add_argument(f"--{option.name}", default=None, help=option.help)


# --- the template's metadata ------------------------------------------------------------------


def _label(option: IngestOption) -> str:
    return option.label or option.name.replace("_", " ").capitalize()


def _regexes(option: IngestOption) -> list[str]:
    if option.regex:
        return [option.regex]
    if option.kind == "flag":
        return ["^(true|false)$"]
    if option.kind == "int":
        return ["^[1-9][0-9]*$" if option.minimum else "^[0-9]+$"]
    if option.choices:
        return ["^(" + "|".join(option.choices) + ")$"]
    return []


def template_metadata() -> dict[str, Any]:
    """pipelines/ingest/metadata.json: the Flex Template's parameters."""
    parameters = []
    for option in OPTIONS:
        if not option.template:
            continue
        parameter: dict[str, Any] = {
            "name": option.name,
            "label": _label(option),
            "helpText": option.template_help,
        }
        if not option.required:
            parameter["isOptional"] = True
        if regexes := _regexes(option):
            parameter["regexes"] = regexes
        parameters.append(parameter)
    return {"name": TEMPLATE_NAME, "description": TEMPLATE_DESCRIPTION, "parameters": parameters}


def metadata_text() -> str:
    """The metadata file's text, as committed."""
    return json.dumps(template_metadata(), indent=2, ensure_ascii=False) + "\n"


# --- parsed options to one ingest -------------------------------------------------------------


def _check(args: argparse.Namespace, spelling: Spelling) -> None:
    by_name = {option.name: option for option in OPTIONS}
    if not args.sources and not args.manifests:
        raise OptionError(
            f"ingest needs {by_name['sources'].flag(spelling)} "
            f"or {by_name['manifests'].flag(spelling)}"
        )
    for option in OPTIONS:
        value = getattr(args, option.name, None)
        if option.minimum is None or value is None or value >= option.minimum:
            continue
        bound = "zero or more" if option.minimum == 0 else f"at least {option.minimum}"
        raise OptionError(f"{option.flag(spelling)} must be {bound}")


def ingest_from_arguments(
    args: argparse.Namespace, beam_args: Sequence[str], spelling: Spelling
) -> IngestSummary:
    """Check parsed options (raises OptionError) and run the ingest they ask for.

    Each option lands where its name says: a field of ``IngestOptions`` (how the ledger is
    used), of ``StorageOptions`` (how buckets are reached; unset ones keep their defaults), or
    an argument of ``ingest``.
    """
    from dicomwarehouse.dicom.budgets import (
        DEFAULT_MAX_ELEMENTS,
        DEFAULT_MAX_HEADER_BYTES,
        ReadBudget,
    )
    from dicomwarehouse.dicom.read import DEFAULT_DEFER_SIZE
    from dicomwarehouse.pipeline.run import IngestOptions, ingest

    _check(args, spelling)

    def given(fields: type) -> dict[str, Any]:
        names = {field.name for field in dataclasses.fields(fields)}
        return {
            option.name: getattr(args, option.name)
            for option in OPTIONS
            if option.name in names and getattr(args, option.name, None) is not None
        }

    return ingest(
        args.sources,
        args.warehouse,
        manifests=args.manifests,
        beam_args=list(beam_args),
        defer_size=DEFAULT_DEFER_SIZE if args.defer_size is None else args.defer_size,
        options=IngestOptions(**given(IngestOptions)),
        storage=StorageOptions(**given(StorageOptions)),
        required_columns=_required_columns(args.required_columns, spelling),
        budget=ReadBudget(
            max_elements=args.max_elements or DEFAULT_MAX_ELEMENTS,
            max_header_bytes=args.max_header_bytes or DEFAULT_MAX_HEADER_BYTES,
        ),
    )


def _required_columns(path: str | None, spelling: Spelling) -> set[ColumnPath]:
    """The column paths a --required-columns file names; a bad line is a one-line usage error."""
    from dicomwarehouse.tables.required_columns import RequiredColumnsError, read_required_columns

    if not path:
        return set()
    try:
        return read_required_columns(path)
    except RequiredColumnsError as error:
        flag = "--required-columns" if spelling == "cli" else "--required_columns"
        raise OptionError(f"{flag}: {error}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the template's metadata file."""
    parser = argparse.ArgumentParser(
        prog="python -m dicomwarehouse.pipeline.options",
        description="Write the Flex Template's metadata.json from the ingest's options.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write-metadata", type=Path, metavar="PATH")
    action.add_argument("--check-metadata", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    if args.write_metadata:
        args.write_metadata.write_text(metadata_text(), encoding="utf-8")
        return 0
    path: Path = args.check_metadata
    if not path.is_file() or path.read_text(encoding="utf-8") != metadata_text():
        print(
            f"{path} is not current: python -m dicomwarehouse.pipeline.options "
            f"--write-metadata {path}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
