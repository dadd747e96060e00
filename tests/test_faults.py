"""The crash points of ``pipeline.faults``: inert unless DICOMWAREHOUSE_FAULT names them.

The crash tests that use them (test_incremental.py, test_gcs_warehouse.py) only show a run
failing; here is the contract they rely on: the named point fails, every other point and an
unset variable do nothing.
"""

from __future__ import annotations

import pytest

from dicomwarehouse.pipeline.faults import FAULT_ENV, FAULT_POINTS, InjectedFault, fault_point


def test_points_do_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    for point in FAULT_POINTS:
        fault_point(point)
    monkeypatch.setenv(FAULT_ENV, "before_commit")
    fault_point("after_shard")
    fault_point("after_commit")


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_the_named_point_raises(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    monkeypatch.setenv(FAULT_ENV, point)
    with pytest.raises(InjectedFault, match=f"fault injected at {point}"):
        fault_point(point)
