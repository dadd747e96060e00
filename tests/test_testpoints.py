"""The test points of ``testpoints``: inert unless their variable names them.

The tests that use them (test_incremental.py, test_gcs_warehouse.py, test_locks.py for crashes;
test_interrupts.py, test_readers.py for holds) only show a run failing or held; here is the
contract they rely on: the named point acts, every other point and an unset variable do nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from dicomwarehouse.testpoints import (
    FAULT_ENV,
    FAULT_POINTS,
    PAUSE_ENV,
    PAUSE_POINTS,
    InjectedFault,
    fault_point,
    pause_point,
)


def test_fault_points_do_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FAULT_ENV, raising=False)
    for point in FAULT_POINTS:
        fault_point(point)
    monkeypatch.setenv(FAULT_ENV, "before_commit")
    fault_point("after_shard")
    fault_point("after_commit")


@pytest.mark.parametrize("point", FAULT_POINTS)
def test_the_named_fault_point_raises(monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    monkeypatch.setenv(FAULT_ENV, point)
    with pytest.raises(InjectedFault, match=f"fault injected at {point}"):
        fault_point(point)


def test_pause_points_do_nothing_unless_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    monkeypatch.delenv(PAUSE_ENV, raising=False)
    for point in PAUSE_POINTS:
        pause_point(point)
    monkeypatch.setenv(PAUSE_ENV, f"{PAUSE_POINTS[0]}:{ready}")
    for point in PAUSE_POINTS[1:]:
        pause_point(point)
    assert not ready.exists()


def test_the_named_pause_point_holds_its_first_caller_until_released(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    monkeypatch.setenv(PAUSE_ENV, f"extract:{ready}")
    held = threading.Thread(target=pause_point, args=("extract",), daemon=True)
    held.start()
    deadline = time.monotonic() + 30
    while not ready.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ready.exists() and held.is_alive()
    pause_point("extract")  # a second caller passes through while the first is held
    assert held.is_alive()
    ready.unlink()
    held.join(timeout=30)
    assert not held.is_alive()
