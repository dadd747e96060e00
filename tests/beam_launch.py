"""A runner launch that does not wait, as a Dataflow Flex Template launcher does.

``pipeline.run()`` then only submits: the result has no job to wait for. Here the pipeline is
kept, to be run later on a thread standing in for the Dataflow job.
"""

from __future__ import annotations

import threading

import apache_beam as beam
import pytest


class Submitted:
    """What Dataflow's result looks like when the launcher only submitted the job."""

    has_job = False

    def wait_until_finish(self) -> str:
        return "DONE"


def submit_without_waiting(monkeypatch: pytest.MonkeyPatch) -> list[threading.Thread]:
    """Make ``Pipeline.run`` only submit; returns the jobs, to start and join by hand."""
    jobs: list[threading.Thread] = []
    run_for_real = beam.Pipeline.run

    def submit(pipeline: beam.Pipeline, *args: object, **kwargs: object) -> Submitted:
        jobs.append(threading.Thread(target=lambda: run_for_real(pipeline).wait_until_finish()))
        return Submitted()

    monkeypatch.setattr(beam.Pipeline, "run", submit)
    return jobs
