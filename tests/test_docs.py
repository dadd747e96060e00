"""The user docs: the generated reference is current, mkdocs builds, the cookbook's SQL runs.

Every query of ``docs/cookbook.md`` (a fenced ``sql`` block after a ``<!-- recipe: NAME
DIALECT -->`` comment) runs here on the session warehouse of pydicom's sample files, in each
dialect the page shows it in; a recipe shown in both dialects must return the same rows in
both. A few recipes are also checked against what pydicom reads from the same files.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pydicom
import pytest
from ingested import IngestedFolder

from dicomwarehouse import docs_reference
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.googlesql import translate

ROOT = Path(__file__).resolve().parents[1]
COOKBOOK = ROOT / "docs" / "cookbook.md"

_RECIPE = re.compile(
    r"<!-- recipe: (?P<name>[\w-]+) (?P<dialect>googlesql|duckdb) -->\n```sql\n(?P<sql>.*?)```",
    re.DOTALL,
)


def _recipes() -> dict[str, dict[str, str]]:
    """recipe name -> dialect -> SQL, from the cookbook page."""
    recipes: dict[str, dict[str, str]] = {}
    for match in _RECIPE.finditer(COOKBOOK.read_text(encoding="utf-8")):
        variants = recipes.setdefault(match["name"], {})
        assert match["dialect"] not in variants, f"recipe {match['name']} shown twice"
        variants[match["dialect"]] = match["sql"]
    return recipes


RECIPES = _recipes()


@contextmanager
def _connection(warehouse: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(warehouse)
    try:
        yield con
    finally:
        con.close()


def _run(con: duckdb.DuckDBPyConnection, sql: str, dialect: str) -> list[tuple]:
    query = translate(sql) if dialect == "googlesql" else sql
    return con.sql(query).fetchall()


def test_reference_page_is_current() -> None:
    """docs/reference.md is what the generator makes from sql/ and tables/ now."""
    assert docs_reference.main([str(ROOT / "docs" / "reference.md"), "--check"]) == 0, (
        "regenerate with: python -m dicomwarehouse.docs_reference"
    )


def test_reference_names_every_view_and_column() -> None:
    from dicomwarehouse.warehouse.views import load_views

    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for view in load_views():
        assert f"### `{view.name}`" in text
        for column in view.column_descriptions:
            assert f"| `{column}` |" in text, f"{view.name}.{column} missing"


def test_reference_check_reports_a_stale_page(tmp_path: Path) -> None:
    page = tmp_path / "reference.md"
    page.write_text("# stale\n", encoding="utf-8")
    assert docs_reference.main([str(page), "--check"]) == 1
    assert docs_reference.main([str(page)]) == 0
    assert docs_reference.main([str(page), "--check"]) == 0


def test_cookbook_has_recipes_in_both_dialects() -> None:
    assert len(RECIPES) >= 10
    assert sum(len(variants) == 2 for variants in RECIPES.values()) >= 3


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_cookbook_recipe_runs(name: str, pydicom_warehouse: IngestedFolder) -> None:
    """Each recipe returns rows on pydicom's files, the same rows in every dialect shown."""
    results = {}
    with _connection(pydicom_warehouse.warehouse) as con:
        for dialect, sql in RECIPES[name].items():
            rows = _run(con, sql, dialect)
            assert rows, f"{name} ({dialect}) returned no row"
            results[dialect] = sorted(rows, key=repr)
    if len(results) == 2:
        assert results["googlesql"] == results["duckdb"]


def _read_all(folder: Path) -> list[pydicom.Dataset]:
    datasets = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception:  # not DICOM: the warehouse's ingest_errors rows
            continue
    return datasets


@pytest.fixture(scope="module")
def sample_datasets(pydicom_warehouse: IngestedFolder) -> list[pydicom.Dataset]:
    with _quiet():
        return _read_all(pydicom_warehouse.root)


@contextmanager
def _quiet() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_seg_sources_match_pydicom(
    pydicom_warehouse: IngestedFolder, sample_datasets: list[pydicom.Dataset]
) -> None:
    expected = {
        (ds.SeriesInstanceUID, ref.SeriesInstanceUID)
        for ds in sample_datasets
        if ds.get("Modality") == "SEG"
        for ref in ds.get("ReferencedSeriesSequence", [])
    }
    with _connection(pydicom_warehouse.warehouse) as con:
        rows = _run(con, RECIPES["seg-sources"]["googlesql"], "googlesql")
    assert {(seg, source) for seg, source, *_ in rows} == expected


#: VRs whose private elements are not in OtherElements: sequences and binary values.
_NOT_IN_OTHER = frozenset({"SQ", "OB", "OW", "OD", "OF", "OL", "OV", "UN"})


def _creators(ds: pydicom.Dataset, *, top_level_values_only: bool) -> set[str]:
    """Private creators of ``ds``: of its non-binary private elements at the top level, or of
    every private block at any depth."""
    creators = set()
    for element in ds:
        tag = element.tag
        if element.VR == "SQ" and not top_level_values_only:
            for item in element.value:
                creators |= _creators(item, top_level_values_only=False)
        if not tag.is_private:
            continue
        if top_level_values_only and element.VR in _NOT_IN_OTHER:
            continue
        # a creator element is an element of its own block
        creator = element if tag.is_private_creator else ds.get((tag.group, tag.element >> 8))
        if creator is not None and creator.value:
            creators.add(str(creator.value).strip())
    return creators


def test_private_creators_match_pydicom(
    pydicom_warehouse: IngestedFolder, sample_datasets: list[pydicom.Dataset]
) -> None:
    """Every creator of a top-level private value is listed, and nothing pydicom lacks."""
    with _quiet():  # pydicom warns about the odd values it meets
        top_level = set().union(
            *(_creators(ds, top_level_values_only=True) for ds in sample_datasets)
        )
        anywhere = set().union(
            *(_creators(ds, top_level_values_only=False) for ds in sample_datasets)
        )
    with _connection(pydicom_warehouse.warehouse) as con:
        rows = _run(con, RECIPES["private-creators"]["googlesql"], "googlesql")
    listed = {creator for creator, *_ in rows}
    assert top_level <= listed <= anywhere


def test_sr_measurements_match_pydicom(
    pydicom_warehouse: IngestedFolder, sample_datasets: list[pydicom.Dataset]
) -> None:
    """Every NUM content item at any depth, as pydicom walks the content tree."""

    def walk(items, sop_uid):
        for item in items:
            if item.get("ValueType") == "NUM":
                for value in item.get("MeasuredValueSequence", []):
                    yield sop_uid, float(value.NumericValue)
            yield from walk(item.get("ContentSequence", []), sop_uid)

    expected = sorted(
        measurement
        for ds in sample_datasets
        if ds.get("Modality") == "SR"
        for measurement in walk(ds.get("ContentSequence", []), ds.SOPInstanceUID)
    )
    with _connection(pydicom_warehouse.warehouse) as con:
        rows = _run(con, RECIPES["sr-measurements-any-depth"]["googlesql"], "googlesql")
    assert sorted((sop, value) for sop, _path, value in rows) == expected


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="mkdocs is not installed")
def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    """Every page is in the nav, every link resolves (mkdocs --strict fails otherwise)."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "index.html").is_file()


_STEP = re.compile(r"<!-- step -->\n```sh\n(?P<script>.*?)```", re.DOTALL)


@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_getting_started_runs_as_written(tmp_path: Path, pydicom_files_dir: Path) -> None:
    """The shell steps of getting-started.md, run in order in an empty folder, end in a
    manifest of the cohort: the CT series of 3 or more files no thicker than 3 mm, as pydicom
    reads them from the sample files."""
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    steps = [match["script"] for match in _STEP.finditer(page)]
    assert len(steps) >= 5
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    for script in steps:
        result = subprocess.run(
            ["bash", "-e", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, f"{script}\n{result.stderr[-2000:]}"

    series: dict[str, list[tuple[Path, float | None]]] = {}
    with _quiet():
        for path in sorted(p for p in pydicom_files_dir.rglob("*") if p.is_file()):
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True)
            except Exception:
                continue
            if ds.get("Modality") == "CT" and "SeriesInstanceUID" in ds:
                thickness = ds.get("SliceThickness")
                value = float(thickness) if thickness not in (None, "") else None
                series.setdefault(ds.SeriesInstanceUID, []).append((path, value))
    expected = {
        str(path)
        for files in series.values()
        if len({p for p, _ in files}) >= 3
        and all(t is not None for _, t in files)
        and max(t for _, t in files) <= 3
        for path, _ in files
    }
    assert expected
    listed = (tmp_path / "cohort.txt").read_text(encoding="utf-8").split()
    assert set(listed) == expected
    assert (tmp_path / "cohort.s5cmd").is_file()
    assert (tmp_path / "cohort-warehouse" / "warehouse.duckdb").is_file()
