"""The scale benchmark's synthetic objects and the cost model's bytes per row.

The benchmark's numbers are only as good as its inputs: synthetic objects must be valid DICOM
with new, distinct UIDs in a patient/study/series tree of the stated proportions, and the cost
model's row sizes must follow BigQuery's data-size rules. Both are checked here against pydicom
and against sizes counted by hand.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pydicom
import pytest
from conftest import SHARED_CORPUS

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bigquery_logical_bytes_follow_the_data_size_rules() -> None:
    cost = load("cost_model")
    strings = pa.array(["ab", None, "é"])  # 2+2, NULL 0, 2+2 (é is 2 bytes of UTF-8)
    assert cost.logical_bytes(strings) == 8
    assert cost.logical_bytes(pa.array([1, None, 3], pa.int64())) == 16
    assert cost.logical_bytes(pa.array([True, None])) == 1
    lists = pa.array([["a", "bc"], None, []], pa.list_(pa.string()))
    assert cost.logical_bytes(lists) == (2 + 1) + (2 + 2)
    structs = pa.array(
        [{"x": "abc", "y": 1.5}, None, {"x": None, "y": 2.0}],
        pa.struct([("x", pa.string()), ("y", pa.float64())]),
    )
    assert cost.logical_bytes(structs) == (2 + 3) + 8 + 8


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason="needs ../shared/corpus")
def test_synthetic_objects_are_valid_with_new_uids_in_a_realistic_tree(tmp_path: Path) -> None:
    scale = load("scale")
    templates = scale.load_templates(SHARED_CORPUS, 20, seed=5)
    tree = scale.Tree()
    made = list(scale.objects(templates, 700, 5, tree))
    assert len(made) == tree.instances == 700
    per_series: Counter[str] = Counter()
    studies_of: dict[str, set[str]] = {}
    sops = set()
    for relative, data in made:
        (tmp_path / "o.dcm").write_bytes(data)
        ds = pydicom.dcmread(tmp_path / "o.dcm", stop_before_pixels=True)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert "8888888888" not in ds.SOPInstanceUID + ds.SeriesInstanceUID + ds.PatientID
        sops.add(ds.SOPInstanceUID)
        per_series[ds.SeriesInstanceUID] += 1
        studies_of.setdefault(ds.PatientID, set()).add(ds.StudyInstanceUID)
        assert relative.startswith(f"p{int(ds.PatientID[6:]):06d}/")
    assert len(sops) == 700  # every object a distinct instance
    complete = list(per_series.values())[:-1]  # the last series is cut at the count
    assert all(scale.INSTANCES[0] <= n <= scale.INSTANCES[1] for n in complete)
    assert all(1 <= len(studies) <= scale.STUDIES[1] for studies in studies_of.values())


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CORPUS.is_dir(), reason="needs ../shared/corpus")
def test_the_measurement_finds_every_phase_the_submit_and_the_objects_read(
    tmp_path: Path,
) -> None:
    """The phases, the launcher's peak at the submit and the objects read come from log lines
    of the command line: if the pipeline stops printing one, the benchmark would say n/a."""
    scale = load("scale")
    source = tmp_path / "source"
    templates = scale.load_templates(SHARED_CORPUS, 5, seed=3)
    count = 0
    for relative, data in scale.objects(templates, 40, 3, scale.Tree()):
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        (source / relative).write_bytes(data)
        count += 1
    warehouse = str(tmp_path / "warehouse")
    first = scale.run_command(scale.cli("ingest", str(source), "--warehouse", warehouse))
    assert first.returncode == 0, first.last_line
    assert all(seconds is not None for seconds in first.phases.values()), first.phases
    assert first.objects_read == count
    assert first.launcher_at_submit_mib is not None and first.launcher_at_submit_mib > 0
    again = scale.rerun(str(source), warehouse, workers=1)
    assert again.returncode == 0, again.last_line
    assert again.phases["list+plan"] is not None
    assert again.objects_read == 0
