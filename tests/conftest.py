"""Shared fixtures: where test DICOM files come from, and warehouses built once per session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
from ingested import IngestedFolder

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.sources.expand import sample_files_dir

#: ../shared/corpus beside the checkout: real files for slow tests; absent on a fresh clone.
#: DICOMWAREHOUSE_SHARED_CORPUS names it for a checkout that is not beside it (a git worktree).
SHARED_CORPUS = Path(
    os.environ.get("DICOMWAREHOUSE_SHARED_CORPUS")
    or Path(__file__).resolve().parents[1].parent / "shared" / "corpus"
)


@pytest.fixture(scope="session")
def pydicom_files_dir() -> Path:
    """pydicom's bundled test files (shipped inside the installed package)."""
    return Path(sample_files_dir())


@pytest.fixture(scope="session")
def pydicom_warehouse(
    pydicom_files_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> IngestedFolder:
    """One ingest of pydicom's bundled files, shared by every test that only reads it.

    A test that writes (a re-ingest, a publish) copies the warehouse first.
    """
    warehouse = tmp_path_factory.mktemp("pydicom-files") / "warehouse"
    with warnings.catch_warnings():  # pydicom warns about the odd files it is given
        warnings.simplefilter("ignore", UserWarning)
        summary = ingest([str(pydicom_files_dir)], warehouse)
    return IngestedFolder(pydicom_files_dir, warehouse, summary)


@pytest.fixture(scope="session")
def shared_corpus() -> Path:
    if not SHARED_CORPUS.is_dir():
        pytest.skip("../shared/corpus is not present")
    return SHARED_CORPUS


@pytest.fixture(scope="session")
def extra_corpus() -> Path:
    """Any other folder of DICOM files to run the corpus checks on (DICOMWAREHOUSE_CORPUS)."""
    folder = os.environ.get("DICOMWAREHOUSE_CORPUS")
    if not folder:
        pytest.skip("DICOMWAREHOUSE_CORPUS is not set")
    path = Path(folder)
    if not path.is_dir():
        pytest.fail(f"DICOMWAREHOUSE_CORPUS={folder} is not a folder")
    return path


@pytest.fixture(scope="session")
def annotation_warehouse(tmp_path_factory: pytest.TempPathFactory) -> IngestedFolder:
    """One ingest of the objects derived_objects makes (CT series, SEG, TID 1500 SR, RTSTRUCT,
    slide image, bulk annotations), shared by the tests of the derived views."""
    from derived_objects import write_objects

    root = tmp_path_factory.mktemp("annotations")
    folder = root / "objects"
    folder.mkdir()
    write_objects(folder)
    warehouse = root / "warehouse"
    summary = ingest([str(folder)], warehouse)
    return IngestedFolder(folder, warehouse, summary)
