"""The notebooks of notebooks/ run from top to bottom on the data they ship with or make.

Each notebook is copied with its helper (``sample_seg.py``) into a temporary folder and executed
there by nbclient in a fresh kernel, so what it writes stays out of the checkout. The notebooks
check their own results against pydicom where it matters (an ``assert`` in a cell fails the
test); here it is checked that they are committed with the outputs of a full run.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ROOT = NOTEBOOKS.parent
NOTEBOOK_FILES = sorted(NOTEBOOKS.glob("*.ipynb"))

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("nbclient", "ipykernel", "highdicom")),
    reason="the notebook tools are not installed (pip install -e '.[test]')",
)


def test_there_are_notebooks() -> None:
    assert [path.name for path in NOTEBOOK_FILES] == [
        "01_local_cohort.ipynb",
        "02_bigquery_cohort.ipynb",
        "03_data_quality.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda path: path.stem)
def test_notebook_is_committed_with_outputs(path: Path) -> None:
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "run every cell once, in order, then save"
    assert not [o for cell in code for o in cell.outputs if o.output_type == "error"]


@pytest.mark.parametrize("path", NOTEBOOK_FILES, ids=lambda path: path.stem)
@pytest.mark.slow  # end to end, over 10 s: CI runs it (see pyproject's markers)
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    for helper in NOTEBOOKS.glob("*.py"):
        shutil.copy(helper, tmp_path)
    # the kernel imports this checkout's package, and runs locally (no BigQuery dataset)
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.delenv("DICOMWAREHOUSE_BIGQUERY_DATASET", raising=False)
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on a failure
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert outputs
    if path.stem != "02_bigquery_cohort":  # the plots
        assert any("image/png" in output.get("data", {}) for output in outputs)


def test_beam_is_told_it_runs_as_a_script_only_within_the_block() -> None:
    """Inside IPython Beam imports its interactive mode, which fails with pandas 3; the ingest
    hides IPython from Beam while it runs, and puts everything back afterwards."""
    import apache_beam.pipeline
    from apache_beam.runners.direct import direct_runner
    from apache_beam.utils import interactive_utils

    from dicomwarehouse.pipeline.interactive import beam_outside_ipython

    modules = (interactive_utils, apache_beam.pipeline, direct_runner)
    before = [module.is_in_ipython for module in modules]
    with beam_outside_ipython():
        assert [module.is_in_ipython() for module in modules] == [False, False, False]
        assert interactive_utils.is_in_ipython is not before[0]
    assert [module.is_in_ipython for module in modules] == before
