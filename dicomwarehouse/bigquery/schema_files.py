"""The ``schemas/`` folder: BigQuery JSON schemas of the fixed tables, generated from code.

``python -m dicomwarehouse.bigquery.schema_files [--check] [DIR]`` (or ``dicomwarehouse schemas``)
writes them; ``--check`` only reports stale files, and a test runs it, so the folder never
drifts from ``schema.py`` and ``vr.py``. dicom_metadata has no fixed schema (its columns are
what each run met); its provenance columns are fixed, and each run writes its full schema
beside its shards (``_bigquery_schema.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from dicomwarehouse.tables.bigquery_schema import (
    INGEST_RUNS_SCHEMA,
    INGEST_RUNS_TABLE,
    arrow_schema_to_bigquery,
)
from dicomwarehouse.tables.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, PROVENANCE_FIELDS
from dicomwarehouse.tables.vr import BIGQUERY_TYPE_BY_VR, BINARY_VRS
from dicomwarehouse.warehouse.layout import EVENTS_TABLE
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA
from dicomwarehouse.warehouse.views import UID_NAMES_TABLE, uid_names_table

__all__ = ["generate", "main", "stale_files"]


def _json(data: object) -> str:
    if isinstance(data, list):  # a schema: one field a line, for readable diffs
        return "[\n" + ",\n".join(json.dumps(f, ensure_ascii=False) for f in data) + "\n]\n"
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> content of every file of ``schemas/``."""
    schemas = {
        "dicom_elements.json": arrow_schema_to_bigquery(ELEMENTS_SCHEMA, "dicom_elements"),
        "ingest_errors.json": arrow_schema_to_bigquery(ERRORS_SCHEMA, "ingest_errors"),
        f"{EVENTS_TABLE}.json": arrow_schema_to_bigquery(EVENTS_SCHEMA, EVENTS_TABLE),
        "dicom_metadata_provenance.json": arrow_schema_to_bigquery(
            pa.schema(PROVENANCE_FIELDS), "dicom_metadata"
        ),
        f"{UID_NAMES_TABLE}.json": arrow_schema_to_bigquery(
            uid_names_table().schema, UID_NAMES_TABLE
        ),
        f"{INGEST_RUNS_TABLE}.json": arrow_schema_to_bigquery(
            INGEST_RUNS_SCHEMA, INGEST_RUNS_TABLE
        ),
    }
    files = {name: _json(fields) for name, fields in schemas.items()}
    files["vr_types.json"] = _json(
        {
            "description": "BigQuery (GoogleSQL) type of a dicom_metadata column for each DICOM "
            "VR, from dicomwarehouse.tables.vr.BIGQUERY_TYPE_BY_VR. A column is REPEATED when "
            "the data dictionary's VM is not 1; PN is STRUCT<Alphabetic, Ideographic, Phonetic> of "
            "STRUCT<FamilyName, GivenName, MiddleName, NamePrefix, NameSuffix>; SQ is a REPEATED "
            "RECORD of its items. Binary VRs are no columns (their elements are in "
            "dicom_elements).",
            "bigquery_type_by_vr": dict(sorted(BIGQUERY_TYPE_BY_VR.items())),
            "binary_vrs": sorted(BINARY_VRS),
        }
    )
    return files


def stale_files(directory: Path) -> list[str]:
    """Names of files in ``directory`` that differ from the generated ones (or are missing)."""
    stale = []
    for name, content in generate().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            stale.append(name)
    return stale


def write(directory: Path) -> list[str]:
    """Write the generated files; returns the names written."""
    directory.mkdir(parents=True, exist_ok=True)
    files = generate()
    for name, content in files.items():
        (directory / name).write_text(content, encoding="utf-8")
    return sorted(files)


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with --check, verify) the schema files."""
    parser = argparse.ArgumentParser(prog="python -m dicomwarehouse.bigquery.schema_files")
    parser.add_argument("directory", nargs="?", default="schemas", type=Path)
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args(argv)
    return run(args.directory, check=args.check)


def run(directory: Path, *, check: bool) -> int:
    """Shared by ``main`` and ``dicomwarehouse schemas``."""
    if check:
        stale = stale_files(directory)
        if stale:
            print(
                f"stale in {directory}: {', '.join(stale)} "
                "(regenerate: python -m dicomwarehouse.bigquery.schema_files)",
                file=sys.stderr,
            )
            return 1
        print(f"{directory}: up to date")
        return 0
    names = write(directory)
    print(f"wrote {len(names)} files to {directory}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
