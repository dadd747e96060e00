"""Golden tests of the GoogleSQL -> DuckDB layer (``dicomwarehouse.warehouse.layout.googlesql``).

Each ``tests/golden_sql/*.sql`` file is one GoogleSQL query with, in its leading comments, the
rows BigQuery returns by its documentation (``-- expect: <JSON row>``, one a line; ``--
ordered`` when the query's ORDER BY fixes the order; ``-- table-map: OLD=NEW``). The rows were
written from the documentation cited in each file, not from this layer's output. The queries
run on real DuckDB over the small tables of ``_tables.sql``.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dicomwarehouse.cli import main
from dicomwarehouse.warehouse.googlesql import (
    BIGNUMERIC_TYPE,
    NUMERIC_TYPE,
    GoogleSQLError,
    parse_table_map,
    translate,
)

GOLDEN = Path(__file__).parent / "golden_sql"
CASES = sorted(path for path in GOLDEN.glob("*.sql") if not path.name.startswith("_"))


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute((GOLDEN / "_tables.sql").read_text(encoding="utf-8"))
    yield connection
    connection.close()


def _plain(value: Any) -> Any:
    """A DuckDB value as JSON would hold it: decimals as their shortest exact text."""
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, dt.date | dt.time | dt.datetime):
        return value.isoformat()
    return value


def _case(path: Path) -> tuple[str, list[Any], bool, dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    expected: list[Any] = []
    ordered = False
    table_map: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("-- expect:"):
            expected.append(json.loads(line.removeprefix("-- expect:")))
        elif line.strip() == "-- ordered":
            ordered = True
        elif line.startswith("-- table-map:"):
            table_map.update(parse_table_map([line.removeprefix("-- table-map:").strip()]))
    assert expected, f"{path.name} has no expected rows"
    return text, expected, ordered, table_map


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_golden(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    sql, expected, ordered, table_map = _case(path)
    got = [_plain(list(row)) for row in con.execute(translate(sql, table_map=table_map)).fetchall()]
    if not ordered:
        got, expected = sorted(got, key=repr), sorted(expected, key=repr)
    assert got == expected


def test_there_are_golden_cases() -> None:
    assert len(CASES) >= 10


# --- what the translation writes --------------------------------------------------------------


def test_offset_is_not_ordinality_alone() -> None:
    """The offset column is the ordinality minus one, inside a derived table."""
    sql = translate("SELECT o FROM t, UNNEST(a) AS x WITH OFFSET AS o")
    assert "WITH ORDINALITY" in sql
    assert '"o" - 1 AS "o"' in sql


@pytest.mark.parametrize(
    ("google", "duck"),
    [
        ("NUMERIC", NUMERIC_TYPE),
        ("DECIMAL", NUMERIC_TYPE),
        ("BIGNUMERIC", BIGNUMERIC_TYPE),
        ("BIGDECIMAL", BIGNUMERIC_TYPE),
        ("NUMERIC(10, 2)", "DECIMAL(10, 2)"),
    ],
)
def test_numeric_types(google: str, duck: str) -> None:
    assert translate(f"SELECT CAST(x AS {google}) FROM t") == f"SELECT CAST(x AS {duck}) FROM t"


def test_comments_are_dropped() -> None:
    sql = translate("-- a comment\nSELECT 1 AS x /* another */\n")
    assert "--" not in sql and "/*" not in sql


def test_several_statements() -> None:
    assert translate("SELECT 1; SELECT 2") == "SELECT 1;\nSELECT 2"


def test_duckdb_schemas_are_kept() -> None:
    assert "information_schema.tables" in translate("SELECT * FROM information_schema.tables")


def test_cte_named_like_a_mapped_table_is_kept() -> None:
    sql = translate("WITH dicom_all AS (SELECT 1 AS x) SELECT x FROM dicom_all")
    assert sql == "WITH dicom_all AS (SELECT 1 AS x) SELECT x FROM dicom_all"


# --- one-line errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("DECLARE x INT64; SELECT x", "scripting (DECLARE x without a constant DEFAULT)"),
        ("DECLARE x INT64 DEFAULT (SELECT 1); SELECT x", "scripting (DECLARE x without"),
        ("DECLARE x INT64 DEFAULT 1", "no query to translate"),
        ("SET x = 1", "scripting (SET)"),
        ("BEGIN SELECT 1; END", "scripting (BEGIN)"),
        ("EXECUTE IMMEDIATE 'SELECT 1'", "scripting (EXECUTE IMMEDIATE)"),
        (
            "CREATE TEMP FUNCTION f(x FLOAT64) RETURNS FLOAT64 LANGUAGE js AS 'return x;';"
            " SELECT f(1.0)",
            "CREATE FUNCTION ... LANGUAGE js",
        ),
        ("CREATE TEMP FUNCTION g(x INT64) AS (x + 1); SELECT g(1)", "CREATE FUNCTION"),
        ("SELECT 1 FROM WHERE", "parse error at line 1, column 19"),
        ("SELECT a,\n  b FROM t WHERE (b", "parse error at line 2"),
        ("SELECT 'abc", "parse error"),
        ("SELECT STRING_AGG(x, ',' LIMIT 2) FROM t", "STRING_AGG(... LIMIT n)"),
        ("", "no GoogleSQL statement"),
    ],
)
def test_untranslatable_is_one_line(sql: str, words: str) -> None:
    with pytest.raises(GoogleSQLError) as error:
        translate(sql)
    assert words in str(error.value)
    assert "\n" not in str(error.value)


def test_table_map_entries() -> None:
    assert parse_table_map(["`p.d.t`=x", "a = b"]) == {"p.d.t": "x", "a": "b"}
    with pytest.raises(GoogleSQLError, match="OLD=NEW"):
        parse_table_map(["no-equals-sign"])


# --- the sql command --------------------------------------------------------------------------


def test_show_sql_prints_duckdb_text(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "sql",
            "--dialect",
            "bigquery",
            "--show-sql",
            "--table-map",
            "p.d.instances=dicom_metadata",
            "SELECT SAFE_CAST(x AS NUMERIC) FROM `p.d.instances`",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") > 1  # pretty-printed, for reading
    assert " ".join(printed.split()) == "SELECT TRY_CAST(x AS DECIMAL(38, 9)) FROM dicom_metadata"


def test_sql_parse_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["sql", "--dialect", "bigquery", "--show-sql", "SELECT 1 FROM WHERE"])
    assert code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "line 1, column 19" in err


def test_sql_needs_a_warehouse_to_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sql", "SELECT 1"]) == 2
    assert "--warehouse" in capsys.readouterr().err
