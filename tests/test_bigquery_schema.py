"""BigQuery schemas: generated files up to date, the real SchemaField classes, descriptions,
and Parquet written by the ingest read back as the schema the loader declares."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dicom_samples import dicom_bytes, every_vr_dataset
from google.cloud.bigquery import SchemaField
from pydicom.datadict import DicomDictionary

from dicomwarehouse.bigquery import schema_files
from dicomwarehouse.bigquery.layout import PUBLISHED_TABLES
from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.tables.bigquery_schema import (
    RUN_SCHEMA_FILE,
    SchemaConflictError,
    arrow_schema_to_bigquery,
    count_columns,
    union_schemas,
)
from dicomwarehouse.tables.descriptions import COLUMN_DESCRIPTIONS, attribute_description
from dicomwarehouse.tables.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, PROVENANCE_FIELDS
from dicomwarehouse.warehouse.ledger import EVENTS_SCHEMA

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


def test_schema_files_are_up_to_date() -> None:
    stale = schema_files.stale_files(SCHEMAS)
    assert not stale, f"regenerate with: python -m dicomwarehouse.bigquery.schema_files ({stale})"


def test_schema_files_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m dicomwarehouse.bigquery.schema_files``: its ``main``, in this process."""
    assert schema_files.main([str(SCHEMAS), "--check"]) == 0, capsys.readouterr().err
    assert schema_files.main([str(tmp_path)]) == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(schema_files.generate())
    (tmp_path / "ingest_errors.json").write_text("[]\n")
    capsys.readouterr()
    assert schema_files.main([str(tmp_path), "--check"]) == 1
    stderr = capsys.readouterr().err
    assert "ingest_errors.json" in stderr and len(stderr.splitlines()) == 1


@pytest.mark.parametrize("name", sorted(n for n in schema_files.generate() if n != "vr_types.json"))
def test_schema_files_round_trip_through_schema_field(name: str) -> None:
    fields = json.loads((SCHEMAS / name).read_text())
    assert [SchemaField.from_api_repr(f).to_api_repr() for f in fields] == fields
    assert all(f.get("description") for f in fields), name


def test_vr_types_is_the_code_map() -> None:
    from dicomwarehouse.tables.vr import BIGQUERY_TYPE_BY_VR

    data = json.loads((SCHEMAS / "vr_types.json").read_text())
    assert data["bigquery_type_by_vr"] == BIGQUERY_TYPE_BY_VR


def _dotted(fields, prefix=""):
    for field in fields:
        yield prefix + field["name"], field
        yield from _dotted(field.get("fields", ()), f"{prefix}{field['name']}.")


@pytest.mark.parametrize(
    ("table", "schema"),
    [
        ("dicom_elements", ELEMENTS_SCHEMA),
        ("ingest_errors", ERRORS_SCHEMA),
        ("ingest_object_events", EVENTS_SCHEMA),
        ("dicom_metadata", pa.schema(PROVENANCE_FIELDS)),
    ],
)
def test_every_fixed_column_is_described(table: str, schema: pa.Schema) -> None:
    fields = arrow_schema_to_bigquery(schema, table)
    missing = [name for name, field in _dotted(fields) if not field.get("description")]
    assert not missing, f"add descriptions to descriptions.COLUMN_DESCRIPTIONS[{table!r}]"
    unused = set(COLUMN_DESCRIPTIONS[table]) - {name for name, _ in _dotted(fields)}
    assert unused <= {k for k in unused if k.startswith("OtherElements")}


def test_keyword_descriptions_fit_bigquery() -> None:
    for _vr, _vm, name, _retired, keyword in DicomDictionary.values():
        if keyword:
            text = attribute_description(keyword)
            assert text and name in text and len(text) <= 1024
    for fields in COLUMN_DESCRIPTIONS.values():
        assert all(len(text) <= 1024 for text in fields.values())
    assert attribute_description("Tag_00091003") == "Private or unknown sequence (0009,1003)."
    assert attribute_description("FamilyName", "Alphabetic").startswith("FamilyName component")


_PN = pa.struct([("Alphabetic", pa.struct([("FamilyName", pa.string())]))])


@pytest.mark.parametrize(
    ("arrow_type", "nullable", "expected"),
    [
        (pa.string(), True, {"type": "STRING", "mode": "NULLABLE"}),
        (pa.string(), False, {"type": "STRING", "mode": "REQUIRED"}),
        (pa.int64(), True, {"type": "INTEGER", "mode": "NULLABLE"}),
        (pa.float64(), True, {"type": "FLOAT", "mode": "NULLABLE"}),
        (pa.bool_(), True, {"type": "BOOLEAN", "mode": "NULLABLE"}),
        (pa.date32(), True, {"type": "DATE", "mode": "NULLABLE"}),
        (pa.time64("us"), True, {"type": "TIME", "mode": "NULLABLE"}),
        (pa.timestamp("us", tz="UTC"), True, {"type": "TIMESTAMP", "mode": "NULLABLE"}),
        (pa.timestamp("us"), True, {"type": "DATETIME", "mode": "NULLABLE"}),
        (pa.list_(pa.string()), True, {"type": "STRING", "mode": "REPEATED"}),
        (pa.list_(pa.date32()), False, {"type": "DATE", "mode": "REPEATED"}),
        (
            pa.list_(pa.struct([("x", pa.int64())])),
            True,
            {
                "type": "RECORD",
                "mode": "REPEATED",
                "fields": [{"name": "x", "type": "INTEGER", "mode": "NULLABLE"}],
            },
        ),
    ],
)
def test_arrow_to_bigquery_types(arrow_type, nullable, expected) -> None:
    (field,) = arrow_schema_to_bigquery(pa.schema([pa.field("c", arrow_type, nullable)]), "t")
    assert field == {"name": "c", **expected}
    assert SchemaField.from_api_repr(field).to_api_repr() == field


def test_no_arrays_of_arrays() -> None:
    with pytest.raises(ValueError, match="arrays of arrays"):
        arrow_schema_to_bigquery(pa.schema([("c", pa.list_(pa.list_(pa.int64())))]), "t")


def test_person_names_are_described_at_every_level() -> None:
    (field,) = arrow_schema_to_bigquery(pa.schema([("PatientName", _PN)]), "dicom_metadata")
    assert field["description"] == "Patient's Name (0010,0010)"
    assert field["fields"][0]["description"].startswith("Alphabetic representation")
    assert field["fields"][0]["fields"][0]["description"].startswith("FamilyName component")


def test_union_keeps_order_appends_and_relaxes() -> None:
    def record(name: str, child: str, child_type: str) -> dict:
        inner = {"name": child, "type": child_type, "mode": "NULLABLE"}
        return {"name": name, "type": "RECORD", "mode": "REPEATED", "fields": [inner]}

    a = [{"name": "x", "type": "STRING", "mode": "REQUIRED"}, record("s", "p", "DATE")]
    b = [
        record("S", "q", "TIME"),
        {"name": "y", "type": "INTEGER", "mode": "NULLABLE", "description": "why"},
    ]
    union = union_schemas([a, b])
    assert [f["name"] for f in union] == ["x", "s", "y"]
    assert [f["name"] for f in union[1]["fields"]] == ["p", "q"]
    assert union[0]["mode"] == "NULLABLE"  # the second run has no x
    assert union[2]["description"] == "why"
    assert union_schemas([a, a]) == a
    with pytest.raises(SchemaConflictError, match="x is REQUIRED STRING"):
        union_schemas([a, [{"name": "x", "type": "INTEGER", "mode": "NULLABLE"}]])


# --- Parquet written by the ingest, read back the way BigQuery reads it ----------------------


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("schema")
    (root / "in").mkdir()
    (root / "in" / "all.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    (root / "in" / "bad.dcm").write_bytes(b"not dicom")
    ingest([str(root / "in")], root / "w")
    return root / "w"


def _bigquery_type(column) -> str:
    """BigQuery's type for a Parquet leaf column (its documented Parquet conversions)."""
    logical = json.loads(column.logical_type.to_json())["Type"]
    physical = column.physical_type
    if physical == "BYTE_ARRAY":
        return "STRING" if logical == "String" else "BYTES"
    if physical == "INT32":
        return "DATE" if logical == "Date" else "INTEGER"
    if physical == "INT64":
        if logical == "Timestamp":
            assert json.loads(column.logical_type.to_json())["isAdjustedToUTC"]
            return "TIMESTAMP"
        return {"Time": "TIME", "None": "INTEGER"}[logical]
    return {"DOUBLE": "FLOAT", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN"}[physical]


@pytest.mark.parametrize("table", PUBLISHED_TABLES)
def test_parquet_maps_to_the_declared_schema(warehouse: Path, table: str) -> None:
    """Walk the Parquet file's own leaf columns (not the Arrow schema that wrote them): with
    list inference ``x.list.element`` is the REPEATED field x, so each leaf has the declared
    type, as many REPEATED fields on its path as the column has repetition levels, and a
    REQUIRED top-level field exactly where the column has no definition level."""
    folder = next((warehouse / table).glob("run-*"))
    declared = json.loads((folder / RUN_SCHEMA_FILE).read_text())
    by_path = dict(_dotted(declared))
    leaves = {name for name, field in by_path.items() if field["type"] != "RECORD"}
    parquet = pq.ParquetFile(next(folder.glob("*.parquet"))).schema
    seen = set()
    for index in range(len(parquet)):
        column = parquet.column(index)
        name = column.path.replace(".list.element", "")
        assert name in leaves, f"{column.path} is not in the declared schema"
        seen.add(name)
        field = by_path[name]
        assert field["type"] == _bigquery_type(column), name
        parts = name.split(".")
        modes = [by_path[".".join(parts[: i + 1])]["mode"] for i in range(len(parts))]
        assert modes.count("REPEATED") == column.max_repetition_level, name
        if len(parts) == 1 and field["mode"] != "REPEATED":
            assert (field["mode"] == "REQUIRED") == (column.max_definition_level == 0), name
    assert seen == leaves
    assert count_columns(declared)[1] == len(leaves)
