"""The extraction benchmark's summary across processes.

One process's per-folder ratios are one draw (they moved by up to a third between processes on
a shared machine), so ``--processes`` reruns the measurement in fresh interpreters and reports
the median and range; these tests check that the summary is built from every process's own
numbers and that its options are refused where they cannot apply.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom.data

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "benchmark.py"


def _samples(root: Path) -> Path:
    """Two source folders of pydicom's bundled files."""
    for folder, names in {
        "ct": ["CT_small.dcm", "MR_small.dcm"],
        "rt": ["rtplan.dcm", "rtdose.dcm", "JPEG2000.dcm"],
    }.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(pydicom.data.get_testdata_file(name), root / folder / name)
    return root


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCHMARK), *args], capture_output=True, text=True, timeout=300
    )


def test_one_process_writes_each_folders_summed_times(tmp_path: Path) -> None:
    root = _samples(tmp_path / "files")
    out = tmp_path / "times.json"
    finished = _run("--repeat", "1", "--emit-folder-times", str(out), str(root))
    assert finished.returncode == 0, finished.stderr
    times = json.loads(out.read_text())
    assert set(times["folders"]) == {"ct", "rt"}
    assert times["folders"]["ct"]["files"] == 2 and times["folders"]["rt"]["files"] == 3
    assert times["all"]["files"] == 5
    for group in times["folders"].values():
        assert group["ours"] > 0 and group["json_dict"] > 0 and group["elements"] > 0
    # the folder table of the same process prints the same ratio
    printed = re.search(
        r"^rt\s+3\s+[\d,]+\s+\S+\s+\S+\s+\S+\s+\S+\s+([\d.]+)x", finished.stdout, re.M
    )
    assert printed is not None
    rt = times["folders"]["rt"]
    assert float(printed.group(1)) == round(rt["json_dict"] / rt["ours"], 2)


def test_the_summary_has_a_median_and_range_per_folder_across_processes(tmp_path: Path) -> None:
    root = _samples(tmp_path / "files")
    finished = _run("--processes", "2", "--repeat", "1", str(root))
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.count(" done") == 2
    rows = {
        match.group(1): [float(match.group(i)) for i in (3, 4, 5)]
        for match in re.finditer(
            r"^(\S+(?: \S+)*?)\s+(\d+)\s+([\d.]+)x\s+([\d.]+)x\s+([\d.]+)x\s+[\d.]+x$",
            finished.stdout,
            re.M,
        )
    }
    assert set(rows) == {"(all, best passes)", "ct", "rt"}
    for median, lowest, highest in rows.values():
        assert 0 < lowest <= median <= highest


def test_options_that_do_not_time_folders_are_refused_with_processes(tmp_path: Path) -> None:
    for extra in (["--profile"], ["--ranged-only"], ["--processes", "0"]):
        args = ["--processes", "2", *extra] if extra[0] != "--processes" else extra
        finished = _run(*args, str(tmp_path))
        assert finished.returncode == 2
        assert "Traceback" not in finished.stderr
        assert "--processes" in finished.stderr.splitlines()[-1]
