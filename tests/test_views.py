"""Tests of the curated views: they parse, document themselves, and give the right rows.

The views run on DuckDB over a small ``dicom_metadata`` built with the contract types (the
Cloud Healthcare API export rules: VR -> type, VM -> scalar or array, SQ -> array of structs,
PN -> struct). The table holds only the columns that :func:`referenced_keywords` names plus a
sequence and the provenance columns, so the tests also prove that list is enough to bind every
view. Expected rows are computed here from the fixture objects in plain Python, independently
of the SQL, and compared with what DuckDB returns.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import sqlglot
from pydicom.datadict import (
    dictionary_VM,
    dictionary_VR,
    keyword_dict,
    keyword_for_tag,
    tag_for_keyword,
)
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    SegmentationStorage,
    UID_dictionary,
)
from sqlglot import exp

from dicomwarehouse.tables.required_columns import DICOM_ALL_COLUMNS, IDC_MANIFEST_COLUMNS
from dicomwarehouse.tables.schema import metadata_schema
from dicomwarehouse.warehouse import views
from dicomwarehouse.warehouse.views import (
    ViewDefinition,
    create_duckdb_views,
    load_views,
    referenced_keywords,
    to_duckdb,
    uid_names_table,
)

Row = dict[str, Any]

# --- the contract types ---------------------------------------------------------------------

_PN_GROUP = pa.struct(
    [
        (name, pa.string())
        for name in ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
    ]
)
_PN = pa.struct([(name, _PN_GROUP) for name in ("Alphabetic", "Ideographic", "Phonetic")])
_SCALAR_TYPES = {
    "DA": pa.date32(),
    "TM": pa.time64("us"),
    "DT": pa.timestamp("us", tz="UTC"),
    "FL": pa.float64(),
    "FD": pa.float64(),
    "PN": _PN,
    **dict.fromkeys(("SS", "US", "SL", "UL", "AT", "SV", "UV"), pa.int64()),
    **dict.fromkeys(
        ("AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT", "DS", "IS"), pa.string()
    ),
}


def _contract_type(keyword: str, items: dict[str, Any] | None = None) -> pa.DataType:
    """The column type of a keyword by the table contract; ``items`` gives an SQ's item fields."""
    tag = tag_for_keyword(keyword)
    vr = dictionary_VR(tag)
    if vr == "SQ":
        assert items is not None, keyword
        return pa.list_(pa.struct([(k, _contract_type(k, v)) for k, v in items.items()]))
    scalar = _SCALAR_TYPES[vr.split(" or ")[0]]
    return scalar if dictionary_VM(tag) == "1" else pa.list_(scalar)


_SEQUENCES = {
    "ReferencedSeriesSequence": {
        "SeriesInstanceUID": None,
        "ReferencedInstanceSequence": {
            "ReferencedSOPClassUID": None,
            "ReferencedSOPInstanceUID": None,
        },
    },
}
_PROVENANCE = {
    "source_url": pa.string(),
    "source_size": pa.int64(),
    "header_bytes_read": pa.int64(),
    "ingest_run_id": pa.string(),
    "ingested_at": pa.timestamp("us", tz="UTC"),
    "ingest_anomalies": pa.list_(
        pa.struct([("tag_path", pa.string()), ("keyword", pa.string()), ("reason", pa.string())])
    ),
    **dict.fromkeys(IDC_MANIFEST_COLUMNS, pa.string()),  # every run has them
}


def _schema() -> pa.Schema:
    # sequences the fixture objects do not fill take the ingest's type for the paths the views
    # read (so the annotation views bind); the others are typed here, by the contract
    ingest_types = metadata_schema(views.referenced_column_paths())
    fields = [
        (
            k,
            ingest_types.field(k).type
            if dictionary_VR(tag_for_keyword(k)) == "SQ"
            else _contract_type(k),
        )
        for k in sorted(referenced_keywords() - _SEQUENCES.keys())
    ]
    fields += [(k, _contract_type(k, items)) for k, items in _SEQUENCES.items()]
    fields += list(_PROVENANCE.items())
    return pa.schema(fields)


# --- the fixture objects --------------------------------------------------------------------

_ROOT = "1.2.826.0.1.3680043.8.498.1"
_RUN1 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
_RUN2 = dt.datetime(2024, 2, 1, tzinfo=dt.timezone.utc)
_PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.8.498.999"


def _pn(family: str, given: str) -> Row:
    return {"Alphabetic": {"FamilyName": family, "GivenName": given}}


def _uid(*parts: int) -> str:
    return ".".join([_ROOT, *map(str, parts)])


_P1 = {
    "PatientID": "P1",
    "IssuerOfPatientID": "HOSP_A",
    "PatientName": _pn("Doe", "Jane"),
    "PatientSex": "F",
    "PatientBirthDate": dt.date(1960, 1, 2),
}
_P2 = {"PatientID": "P2", "PatientName": _pn("Roe", "John"), "PatientSex": "M"}
_ST1 = {
    "StudyInstanceUID": _uid(1),
    "StudyDate": dt.date(2020, 1, 1),
    "StudyTime": dt.time(10, 0, 0),
    "StudyDescription": "CT CHEST",
    "AccessionNumber": "A1",
    "StudyID": "1",
    "PatientAge": "060Y",
}
_ST2 = {
    "StudyInstanceUID": _uid(2),
    "StudyDate": dt.date(2021, 6, 1),
    "StudyDescription": "MR BRAIN",
}
_ST3 = {"StudyInstanceUID": _uid(3), "StudyDate": dt.date(2019, 3, 4), "AccessionNumber": "A3"}
_CT_IMAGE = {
    "SeriesInstanceUID": _uid(1, 1),
    "Modality": "CT",
    "SOPClassUID": CTImageStorage,
    "SeriesDescription": "AXIAL 1.25",
    "SeriesNumber": "2",
    "BodyPartExamined": "CHEST",
    "Manufacturer": "GE MEDICAL SYSTEMS",
    "ManufacturerModelName": "LightSpeed VCT",
    "SeriesDate": dt.date(2020, 1, 1),
    "SeriesTime": dt.time(10, 5, 0),
    "ImageType": ["ORIGINAL", "PRIMARY", "AXIAL"],
    "Rows": 512,
    "Columns": 512,
    "BitsAllocated": 16,
    "PhotometricInterpretation": "MONOCHROME2",
    "SliceThickness": "1.25",
    "PixelSpacing": ["0.703125", "0.68"],
    "TransferSyntaxUID": ExplicitVRLittleEndian,
    "FrameOfReferenceUID": _uid(1, 9),
}
_MR_IMAGE = {
    "SeriesInstanceUID": _uid(2, 1),
    "Modality": "MR",
    "SOPClassUID": MRImageStorage,
    "SeriesDescription": "T1 AX",
    "SeriesNumber": " 5",
    "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND"],
    "Rows": 256,
    "Columns": 256,
    "SliceThickness": "3.0 ",
    "PixelSpacing": ["0.9", "0.9"],
    "TransferSyntaxUID": JPEG2000Lossless,
}
_CR_IMAGE = {
    "SeriesInstanceUID": _uid(3, 1),
    "Modality": "CR",
    "SOPClassUID": ComputedRadiographyImageStorage,
    "BodyPartExamined": "CHEST",
    "ImageType": ["DERIVED", "PRIMARY"],
    "Rows": 2048,
    "Columns": 2500,
    "PixelSpacing": ["0.139", "0.139"],
    "TransferSyntaxUID": ExplicitVRLittleEndian,
}


def _object(n: int, *levels: Row, **attributes: Any) -> Row:
    """One dicom_metadata row: the levels' attributes, then the object's own, then provenance."""
    row: Row = {}
    for level in levels:
        row.update(level)
    row.update(attributes)
    row.setdefault("source_url", f"gs://bucket/objects/{n:02d}.dcm")
    row.setdefault("source_size", 100_000 + 1_000 * n)
    row.setdefault("header_bytes_read", 4_000 + n)
    row.setdefault("ingest_run_id", "run-1")
    row.setdefault("ingested_at", _RUN1)
    row.setdefault("ingest_anomalies", [])
    row.setdefault("collection_id", "test_collection")
    return row


OBJECTS: list[Row] = [
    # patient P1, study 1: a CT series of three images, one with a SliceThickness that is no number
    _object(1, _P1, _ST1, _CT_IMAGE, SOPInstanceUID=_uid(1, 1, 1), InstanceNumber="1"),
    _object(2, _P1, _ST1, _CT_IMAGE, SOPInstanceUID=_uid(1, 1, 2), InstanceNumber="2"),
    _object(
        3,
        _P1,
        _ST1,
        _CT_IMAGE,
        SOPInstanceUID=_uid(1, 1, 3),
        InstanceNumber="3",
        SliceThickness="abc",
        ingest_anomalies=[
            {"tag_path": "00180050", "keyword": "SliceThickness", "reason": "not a decimal string"}
        ],
    ),
    # ... and a segmentation of it, with four frames and a reference to the CT series
    _object(
        4,
        _P1,
        _ST1,
        SeriesInstanceUID=_uid(1, 2),
        SOPInstanceUID=_uid(1, 2, 1),
        SOPClassUID=SegmentationStorage,
        Modality="SEG",
        SeriesNumber="300",
        ImageType=["DERIVED", "PRIMARY"],
        Rows=512,
        Columns=512,
        NumberOfFrames="4",
        InstanceNumber="1",
        TransferSyntaxUID=ExplicitVRLittleEndian,
        ReferencedSeriesSequence=[
            {
                "SeriesInstanceUID": _uid(1, 1),
                "ReferencedInstanceSequence": [
                    {
                        "ReferencedSOPClassUID": CTImageStorage,
                        "ReferencedSOPInstanceUID": _uid(1, 1, i),
                    }
                    for i in (1, 2)
                ],
            }
        ],
    ),
    # patient P1, study 2: an MR series whose third object says its Modality is OT
    _object(5, _P1, _ST2, _MR_IMAGE, SOPInstanceUID=_uid(2, 1, 1), InstanceNumber=" 7"),
    _object(6, _P1, _ST2, _MR_IMAGE, SOPInstanceUID=_uid(2, 1, 2), InstanceNumber="8"),
    _object(
        7, _P1, _ST2, _MR_IMAGE, SOPInstanceUID=_uid(2, 1, 3), Modality="OT", SliceThickness=None
    ),
    # patient P2 (no issuer), study 3: CR images, one stored twice, birth dates that disagree
    _object(
        8, _P2, _ST3, _CR_IMAGE, SOPInstanceUID=_uid(3, 1, 1), PatientBirthDate=dt.date(1970, 5, 6)
    ),
    _object(
        9, _P2, _ST3, _CR_IMAGE, SOPInstanceUID=_uid(3, 1, 2), PatientBirthDate=dt.date(1970, 6, 5)
    ),
    _object(
        10,
        _P2,
        _ST3,
        _CR_IMAGE,
        SOPInstanceUID=_uid(3, 1, 2),
        PatientBirthDate=dt.date(1970, 6, 5),
        source_url="gs://bucket/copies/09.dcm",
        ingest_run_id="run-2",
        ingested_at=_RUN2,
    ),
    # an object of study 3 without a PatientID, of a private SOP class
    _object(
        11,
        _ST3,
        _CR_IMAGE,
        SOPInstanceUID=_uid(3, 1, 3),
        SOPClassUID=_PRIVATE_SOP_CLASS,
        PatientSex="O",
    ),
    # a DICOMDIR: no patient, study, series or instance keys, no pixels
    _object(12, TransferSyntaxUID=ExplicitVRLittleEndian),
]


# --- plain-Python reference rules -----------------------------------------------------------


def _snake(name: str) -> str:
    """CamelCase keyword -> snake_case: SOPClassUID -> sop_class_uid."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _number(text: str | None, kind: type) -> Any:
    """SAFE_CAST(TRIM(text) AS kind): None when absent or not a number."""
    try:
        return kind(text.strip()) if text is not None else None
    except ValueError:
        return None


def _frames(row: Row) -> int | None:
    if row.get("NumberOfFrames") is None and row.get("Rows") is not None:
        return 1
    return _number(row.get("NumberOfFrames"), int)


def _family_name(row: Row) -> str | None:
    return ((row.get("PatientName") or {}).get("Alphabetic") or {}).get("FamilyName")


def _given_name(row: Row) -> str | None:
    return ((row.get("PatientName") or {}).get("Alphabetic") or {}).get("GivenName")


def _first(values: Iterable[Any]) -> Any:
    return next(iter(values), None)


def _group(key: Callable[[Row], Any]) -> dict[Any, list[Row]]:
    groups: dict[Any, list[Row]] = defaultdict(list)
    for row in OBJECTS:
        groups[key(row)].append(row)
    return dict(groups)


def _distinct(rows: list[Row], value: Callable[[Row], Any]) -> set[Any]:
    return {v for row in rows if (v := value(row)) is not None}


def _sum(values: Iterable[Any]) -> Any:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _attribute(name: str) -> Callable[[Row], Any]:
    return lambda row: row.get(name)


def _check_rolled_up(
    actual: Row, objects: list[Row], any_values: dict[str, Callable[[Row], Any]], counts: Row
) -> None:
    """One rolled-up row: each ANY_VALUE is one of the objects' values, with its distinct count."""
    for column, value in any_values.items():
        candidates = _distinct(objects, value)
        assert actual[column] in (candidates or {None}), column
        assert actual[f"{_snake(column)}_distinct_count"] == len(candidates), column
    for column, expected in counts.items():
        assert actual[column] == expected, column


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def con() -> Iterable[duckdb.DuckDBPyConnection]:
    schema = _schema()
    unknown = {key for row in OBJECTS for key in row} - set(schema.names)
    assert not unknown, f"fixture attributes outside the test schema: {unknown}"
    table = pa.Table.from_pylist(OBJECTS, schema=schema)
    connection = duckdb.connect()
    connection.register("fixture_objects", table)
    connection.execute("CREATE TABLE dicom_metadata AS SELECT * FROM fixture_objects")
    connection.unregister("fixture_objects")
    create_duckdb_views(connection)
    yield connection
    connection.close()


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[Row]:
    cursor = con.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _by_key(rows: list[Row], *key: str) -> dict[Any, Row]:
    keyed = {tuple(row[k] for k in key) if len(key) > 1 else row[key[0]]: row for row in rows}
    assert len(keyed) == len(rows), f"duplicate keys {key}"
    return keyed


# --- the SQL files --------------------------------------------------------------------------


def test_every_sql_file_is_one_bigquery_statement_reading_bare_names() -> None:
    for view in load_views():
        statements = sqlglot.parse(view.bigquery_sql, read="bigquery")
        assert len(statements) == 1, view.name
        assert isinstance(statements[0], exp.Query), view.name
        for table in statements[0].find_all(exp.Table):
            assert not table.args.get("db") and not table.args.get("catalog"), (
                view.name,
                table.sql(),
            )


def test_load_views_finds_each_file_once() -> None:
    names = [view.name for view in load_views()]
    files = sorted(path.stem for path in views._sql_dir().glob("*.sql"))
    assert sorted(names) == files
    assert {"dicom_all", "instances", "series", "studies", "patients"} <= set(names)


def test_load_views_order_respects_dependencies() -> None:
    seen: set[str] = set()
    for view in load_views():
        assert set(view.dependencies) <= seen, view.name
        seen.add(view.name)


@pytest.fixture
def sql_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterable[Path]:
    """Point load_views at a folder of the test's own views."""
    monkeypatch.setattr(views, "_sql_dir", lambda: tmp_path)
    views._load_views.cache_clear()
    yield tmp_path
    views._load_views.cache_clear()


def _write_view(folder: Path, name: str, body: str) -> None:
    header = f"-- The {name} view.\n--\n-- Columns:\n-- x: a column,\n--   on two lines.\n\n"
    (folder / f"{name}.sql").write_text(header + body)


def test_dependencies_are_views_read_by_name_not_ctes(sql_dir: Path) -> None:
    _write_view(sql_dir, "alpha", "SELECT x FROM zeta JOIN base USING (x)")
    _write_view(sql_dir, "base", "SELECT 1 AS x FROM dicom_metadata")
    _write_view(sql_dir, "zeta", "WITH alpha AS (SELECT 1 AS x) SELECT x FROM alpha, base")
    loaded = load_views()
    assert [view.name for view in loaded] == ["base", "zeta", "alpha"]
    assert {view.name: view.dependencies for view in loaded} == {
        "alpha": ("base", "zeta"),
        "base": (),
        "zeta": ("base",),
    }
    assert loaded[0] == ViewDefinition(
        name="base",
        description="The base view.",
        column_descriptions={"x": "a column, on two lines."},
        bigquery_sql=(sql_dir / "base.sql").read_text(),
        dependencies=(),
    )


@pytest.mark.parametrize(
    "text",
    [
        "SELECT 1 AS x",
        "-- Columns:\n-- x: a column\nSELECT 1 AS x",
        "-- A view.\n-- x: no Columns line\nSELECT 1 AS x",
        "-- A view.\n-- Columns:\n-- not a column line\nSELECT 1 AS x",
    ],
)
def test_undocumented_view_is_an_error(sql_dir: Path, text: str) -> None:
    (sql_dir / "bad.sql").write_text(text)
    with pytest.raises(ValueError, match="bad"):
        load_views()


def test_referenced_keywords() -> None:
    keywords = referenced_keywords()
    assert keywords <= keyword_dict.keys()
    assert {
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "PatientName",
        "Rows",
        "PixelSpacing",
    } <= keywords
    assert not keywords & {"source_url", "ingest_anomalies", "slice_thickness_mm", "FamilyName"}
    # every keyword a view names is read at some depth (so the ingest creates it), or is the
    # name of an output column of a view (Quantity, AlgorithmType)
    named, outputs = set(), set()
    for view in load_views():
        named |= set(re.findall(r"\b[A-Z][A-Za-z]+\b", view.bigquery_sql.split("\n\n", 1)[1]))
        outputs |= set(view.column_descriptions)
    read = {keyword_for_tag(tag) for path in views.referenced_column_paths() for tag in path}
    assert named & keyword_dict.keys() <= keywords | read | outputs


@pytest.fixture
def memo_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterable[Path]:
    """A cache folder of the test's own, and a process that has not read the memo yet."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(views._Memo, "entries", None)
    monkeypatch.setattr(views._Memo, "added", False)
    views._memo_path.cache_clear()
    yield tmp_path / "dicomwarehouse"
    views._memo_path.cache_clear()


def test_translations_are_remembered_across_processes(
    memo_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    definitions = load_views()
    translate = views.translate
    expected = [translate(view.bigquery_sql) for view in definitions]
    stale = memo_folder / "sql-of-another-version.json"
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    assert [to_duckdb(view.bigquery_sql, remember=True) for view in definitions] == expected
    views._save_memo()
    (memo,) = memo_folder.glob("sql-*.json")  # the other version's memo is gone
    assert memo != stale

    def no_sqlglot(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("translated again")

    monkeypatch.setattr(views, "translate", no_sqlglot)
    monkeypatch.setattr(views._Memo, "entries", None)  # as a new process
    assert [to_duckdb(view.bigquery_sql, remember=True) for view in definitions] == expected
    with pytest.raises(AssertionError, match="translated again"):  # user queries are not kept
        to_duckdb(definitions[0].bigquery_sql)
    memo.write_text("not json")  # a damaged memo costs the time, never the answer
    monkeypatch.setattr(views._Memo, "entries", None)
    monkeypatch.setattr(views, "translate", translate)
    assert to_duckdb(definitions[0].bigquery_sql, remember=True) == expected[0]


def test_no_cache_folder_means_no_memo(memo_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def homeless() -> Path:
        raise RuntimeError("no home")

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setattr(Path, "home", homeless)
    views._memo_path.cache_clear()
    view = load_views()[0]
    assert to_duckdb(view.bigquery_sql, remember=True) == views.translate(view.bigquery_sql)
    views._save_memo()  # nowhere to write: nothing written, nothing raised
    assert views._memo_path() is None
    assert not memo_folder.exists()


# --- DuckDB ---------------------------------------------------------------------------------


def test_views_are_created_in_order_and_documented(con: duckdb.DuckDBPyConnection) -> None:
    definitions = {view.name: view for view in load_views()}
    created = create_duckdb_views(con)
    assert created == list(definitions)
    comments = dict(con.execute("SELECT view_name, comment FROM duckdb_views()").fetchall())
    for name, view in definitions.items():
        assert comments[name] == view.description
        described = con.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE table_name = ?"
            " ORDER BY column_index",
            [name],
        ).fetchall()
        if name == "dicom_all":
            assert [c for c, _, _ in described] == [*_schema().names, *DICOM_ALL_COLUMNS]
            continue
        assert [c for c, _, _ in described] == list(view.column_descriptions), name
        assert [comment for _, _, comment in described] == list(view.column_descriptions.values())
        assert "HUGEINT" not in {data_type for _, data_type, _ in described}, name


def test_view_columns_are_those_describe_binds(con: duckdb.DuckDBPyConnection) -> None:
    names = [view.name for view in load_views()]
    created = con.execute("SELECT view_name FROM duckdb_views()").fetchall()
    assert set(names) <= {name for (name,) in created}
    for name in names:
        described = [
            (column, kind) for column, kind, *_ in con.execute(f'DESCRIBE "{name}"').fetchall()
        ]
        assert views.view_columns(con, name) == described, name
    assert views.view_columns(con, "no_such_view") == []


def test_column_types(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("instances", "series", "studies", "patients"):
        types = dict(
            con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {name})").fetchall()
        )
        for column, column_type in types.items():
            if column.endswith(("_count", "_bytes")) or column in (
                "instance_number",
                "series_number",
            ):
                assert column_type == "BIGINT", (name, column)
            if column.endswith("_mm"):
                assert column_type == "DOUBLE", (name, column)
    assert con.execute(
        "SELECT column_type FROM (DESCRIBE studies) WHERE column_name = 'modalities'"
    ).fetchone() == ("VARCHAR[]",)


def test_instances(con: duckdb.DuckDBPyConnection) -> None:
    actual = _by_key(_rows(con, "SELECT * FROM instances"), "SOPInstanceUID")
    groups = _group(_attribute("SOPInstanceUID"))
    assert actual.keys() == groups.keys()
    for uid, objects in groups.items():
        newest = max(row["ingested_at"] for row in objects)
        chosen = min(
            (row for row in objects if row["ingested_at"] == newest), key=lambda r: r["source_url"]
        )
        row = actual[uid]
        for column in (
            "SeriesInstanceUID",
            "StudyInstanceUID",
            "PatientID",
            "IssuerOfPatientID",
            "SOPClassUID",
            "Modality",
            "ImageType",
            "Rows",
            "Columns",
            "PhotometricInterpretation",
            "BitsAllocated",
            "FrameOfReferenceUID",
            "TransferSyntaxUID",
            "source_url",
            "source_size",
            "header_bytes_read",
            "ingest_run_id",
            "ingested_at",
        ):
            assert row[column] == chosen.get(column), (uid, column)
        pixel_spacing = chosen.get("PixelSpacing") or []
        assert row["instance_number"] == _number(chosen.get("InstanceNumber"), int)
        assert row["frame_count"] == _frames(chosen)
        assert row["slice_thickness_mm"] == _number(chosen.get("SliceThickness"), float)
        assert row["pixel_spacing_row_mm"] == _number(_first(pixel_spacing), float)
        assert row["pixel_spacing_column_mm"] == _number(_first(pixel_spacing[1:]), float)
        assert row["sop_class_name"] == UID_dictionary.get(chosen.get("SOPClassUID"), (None,))[0]
        assert row["transfer_syntax_name"] == UID_dictionary[chosen["TransferSyntaxUID"]][0]
        assert row["anomaly_count"] == len(chosen["ingest_anomalies"])
        assert row["object_count"] == len(objects)


def test_instances_golden_cases(con: duckdb.DuckDBPyConnection) -> None:
    actual = _by_key(_rows(con, "SELECT * FROM instances"), "SOPInstanceUID")
    assert actual[_uid(1, 1, 3)]["slice_thickness_mm"] is None  # "abc"
    assert actual[_uid(1, 1, 3)]["anomaly_count"] == 1
    assert actual[_uid(1, 1, 1)]["slice_thickness_mm"] == 1.25
    assert actual[_uid(2, 1, 1)]["instance_number"] == 7  # " 7"
    assert actual[_uid(1, 2, 1)]["frame_count"] == 4
    assert actual[_uid(1, 2, 1)]["sop_class_name"] == "Segmentation Storage"
    assert actual[_uid(3, 1, 3)]["sop_class_name"] is None  # private SOP class
    assert actual[_uid(3, 1, 2)]["object_count"] == 2
    assert actual[_uid(3, 1, 2)]["source_url"] == "gs://bucket/copies/09.dcm"  # newest copy
    assert actual[None]["frame_count"] is None  # the DICOMDIR


def test_series(con: duckdb.DuckDBPyConnection) -> None:
    actual = _by_key(_rows(con, "SELECT * FROM series"), "SeriesInstanceUID")
    groups = _group(_attribute("SeriesInstanceUID"))
    assert actual.keys() == groups.keys()
    any_values = {
        name: _attribute(name)
        for name in (
            "StudyInstanceUID",
            "PatientID",
            "IssuerOfPatientID",
            "Modality",
            "SOPClassUID",
            "SeriesDescription",
            "BodyPartExamined",
            "Manufacturer",
            "ManufacturerModelName",
            "SeriesDate",
            "SeriesTime",
        )
    }
    any_values["series_number"] = lambda row: _number(row.get("SeriesNumber"), int)
    for uid, objects in groups.items():
        thickness = _distinct(objects, lambda row: _number(row.get("SliceThickness"), float))
        _check_rolled_up(
            actual[uid],
            objects,
            any_values,
            {
                "instance_count": len(_distinct(objects, _attribute("SOPInstanceUID"))),
                "object_count": len(objects),
                "frame_count": _sum(map(_frames, objects)),
                "total_size_bytes": sum(row["source_size"] for row in objects),
                "slice_thickness_min_mm": min(thickness, default=None),
                "slice_thickness_max_mm": max(thickness, default=None),
                "anomaly_count": sum(len(row["ingest_anomalies"]) for row in objects),
            },
        )
    mr = actual[_uid(2, 1)]
    assert mr["modality_distinct_count"] == 2 and mr["Modality"] in ("MR", "OT")
    assert actual[_uid(1, 1)]["slice_thickness_max_mm"] == 1.25  # "abc" is not a number
    assert actual[_uid(3, 1)]["patient_id_distinct_count"] == 1  # NULL is not a value


def test_studies(con: duckdb.DuckDBPyConnection) -> None:
    actual = _by_key(_rows(con, "SELECT * FROM studies"), "StudyInstanceUID")
    groups = _group(_attribute("StudyInstanceUID"))
    assert actual.keys() == groups.keys()
    any_values = {
        name: _attribute(name)
        for name in (
            "PatientID",
            "IssuerOfPatientID",
            "StudyDate",
            "StudyTime",
            "StudyDescription",
            "AccessionNumber",
            "StudyID",
            "PatientAge",
        )
    }
    for uid, objects in groups.items():
        _check_rolled_up(
            actual[uid],
            objects,
            any_values,
            {
                "modalities": sorted(_distinct(objects, _attribute("Modality"))) or None,
                "series_count": len(_distinct(objects, _attribute("SeriesInstanceUID"))),
                "instance_count": len(_distinct(objects, _attribute("SOPInstanceUID"))),
                "object_count": len(objects),
                "total_size_bytes": sum(row["source_size"] for row in objects),
            },
        )
    assert actual[_uid(1)]["modalities"] == ["CT", "SEG"]


def test_patients(con: duckdb.DuckDBPyConnection) -> None:
    actual = _by_key(_rows(con, "SELECT * FROM patients"), "PatientID", "IssuerOfPatientID")
    groups = _group(lambda row: (row.get("PatientID"), row.get("IssuerOfPatientID")))
    assert actual.keys() == groups.keys()
    any_values = {
        "patient_family_name": _family_name,
        "patient_given_name": _given_name,
        "PatientSex": _attribute("PatientSex"),
        "PatientBirthDate": _attribute("PatientBirthDate"),
    }
    for key, objects in groups.items():
        _check_rolled_up(
            actual[key],
            objects,
            any_values,
            {
                "study_count": len(_distinct(objects, _attribute("StudyInstanceUID"))),
                "series_count": len(_distinct(objects, _attribute("SeriesInstanceUID"))),
                "instance_count": len(_distinct(objects, _attribute("SOPInstanceUID"))),
                "object_count": len(objects),
                "total_size_bytes": sum(row["source_size"] for row in objects),
            },
        )
    assert actual[("P1", "HOSP_A")]["patient_family_name"] == "Doe"
    assert actual[("P2", None)]["patient_birth_date_distinct_count"] == 2
    assert actual[(None, None)]["object_count"] == 2  # no PatientID: one CR image and the DICOMDIR
    assert sum(row["object_count"] for row in actual.values()) == len(OBJECTS)


def test_dicom_all_is_dicom_metadata(con: duckdb.DuckDBPyConnection) -> None:
    added = ", ".join(DICOM_ALL_COLUMNS)
    assert _rows(con, f"SELECT * EXCLUDE ({added}) FROM dicom_all ORDER BY source_url") == _rows(
        con, "SELECT * FROM dicom_metadata ORDER BY source_url"
    )
    compatible = _rows(con, f"SELECT source_url, source_size, {added} FROM dicom_all")
    assert compatible  # every fixture object is on gs://
    for row in compatible:
        assert row["gcs_url"] == row["source_url"] and row["aws_url"] is None
        assert row["instance_size"] == row["source_size"]


def test_uid_names_table() -> None:
    table = uid_names_table()
    assert table.column_names == ["uid", "name", "type", "keyword", "retired"]
    assert table.num_rows == len(UID_dictionary)
    rows = {row["uid"]: row for row in table.to_pylist()}
    assert rows[CTImageStorage]["name"] == CTImageStorage.name
    assert rows[CTImageStorage]["type"] == "SOP Class"
    assert rows[ExplicitVRLittleEndian]["keyword"] == "ExplicitVRLittleEndian"


# --- IDC-style queries on dicom_all ---------------------------------------------------------


def _idc(con: duckdb.DuckDBPyConnection, bigquery_sql: str) -> list[tuple[Any, ...]]:
    return sorted(con.execute(to_duckdb(bigquery_sql)).fetchall(), key=repr)


def test_idc_query_in_unnest(con: duckdb.DuckDBPyConnection) -> None:
    got = _idc(con, "SELECT SOPInstanceUID FROM dicom_all WHERE 'ORIGINAL' IN UNNEST(ImageType)")
    expected = [
        (row["SOPInstanceUID"],) for row in OBJECTS if "ORIGINAL" in (row.get("ImageType") or [])
    ]
    assert got == sorted(expected, key=repr)
    assert got


def test_idc_query_safe_offset(con: duckdb.DuckDBPyConnection) -> None:
    got = _idc(
        con,
        "SELECT source_url, SAFE_CAST(PixelSpacing[SAFE_OFFSET(1)] AS FLOAT64),"
        " PixelSpacing[SAFE_OFFSET(2)] FROM dicom_all",
    )
    expected = [
        (row["source_url"], _number(_first((row.get("PixelSpacing") or [])[1:]), float), None)
        for row in OBJECTS
    ]
    assert got == sorted(expected, key=repr)


def test_idc_query_unnest_sequences(con: duckdb.DuckDBPyConnection) -> None:
    got = _idc(
        con,
        """
        SELECT
          seg.SOPInstanceUID,
          ref_series.SeriesInstanceUID,
          ref_instance.ReferencedSOPInstanceUID
        FROM dicom_all AS seg,
          UNNEST(seg.ReferencedSeriesSequence) AS ref_series,
          UNNEST(ref_series.ReferencedInstanceSequence) AS ref_instance
        WHERE seg.Modality = 'SEG'
        """,
    )
    expected = [
        (row["SOPInstanceUID"], series["SeriesInstanceUID"], instance["ReferencedSOPInstanceUID"])
        for row in OBJECTS
        if row.get("Modality") == "SEG"
        for series in row["ReferencedSeriesSequence"]
        for instance in series["ReferencedInstanceSequence"]
    ]
    assert got == sorted(expected, key=repr)
    assert len(got) == 2


def test_idc_query_person_name(con: duckdb.DuckDBPyConnection) -> None:
    got = _idc(
        con,
        "SELECT DISTINCT PatientID, PatientName.Alphabetic.GivenName FROM dicom_all"
        " WHERE PatientName.Alphabetic.FamilyName = 'Doe'",
    )
    assert got == sorted(
        {(row["PatientID"], _given_name(row)) for row in OBJECTS if _family_name(row) == "Doe"}
    )
    assert got == [("P1", "Jane")]


def test_idc_cohort_query_on_views(con: duckdb.DuckDBPyConnection) -> None:
    """Thin CT series with a segmentation in the same study: the views answer cohort questions."""
    got = _idc(
        con,
        """
        SELECT ct.SeriesInstanceUID
        FROM series AS ct
        JOIN studies USING (StudyInstanceUID)
        WHERE ct.Modality = 'CT' AND ct.slice_thickness_max_mm < 1.5
          AND 'SEG' IN UNNEST(studies.modalities)
        """,
    )
    assert got == [(_uid(1, 1),)]


def test_to_duckdb_drops_comments() -> None:
    assert "--" not in to_duckdb("-- a comment\nSELECT 1 AS x -- another\n")
    assert "/*" not in to_duckdb("-- a comment\nSELECT 1 AS x -- another\n")
