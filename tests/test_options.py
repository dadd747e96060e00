"""The ingest's options, defined once: the command line and the template job take the same
options to the same ingest, and say the same one-line errors in their own spelling."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dicom_samples import base_dataset, dicom_bytes
from emulators import gcs_client, gcs_server  # noqa: F401 (fixture)

from dicomwarehouse.cli import _build_parser
from dicomwarehouse.cli import main as cli_main
from dicomwarehouse.dicom.budgets import ReadBudget
from dicomwarehouse.io.buckets import StorageOptions
from dicomwarehouse.pipeline import run as run_module
from dicomwarehouse.pipeline.job import run as run_job
from dicomwarehouse.pipeline.run import IngestOptions


def ingest_parser() -> Any:
    commands = next(a for a in _build_parser()._actions if a.dest == "command")
    return commands.choices["ingest"]


def test_command_line_flags_are_those_users_know() -> None:
    """The ingest command's flags, defaults and metavars, as they were before the table."""
    got = [
        (tuple(a.option_strings), a.default, a.metavar, type(a).__name__.strip("_"))
        for a in ingest_parser()._actions
        if a.dest != "help"
    ]
    assert got == [
        ((), None, "SOURCE", "StoreAction"),
        (("--warehouse",), None, "DIR", "StoreAction"),
        (("--manifest",), [], "FILE", "AppendAction"),
        (("--incremental",), False, None, "StoreTrueAction"),
        (("--full-listing",), False, None, "StoreTrueAction"),
        (("--retry-errors",), False, None, "StoreTrueAction"),
        (("--force-unlock",), False, None, "StoreTrueAction"),
        (("--defer-size",), None, "BYTES", "StoreAction"),
        (("--required-columns",), None, "FILE", "StoreAction"),
        (("--max-elements",), None, "N", "StoreAction"),
        (("--max-header-bytes",), None, "BYTES", "StoreAction"),
        (("--manifest-format",), None, None, "StoreAction"),
        (("--s5cmd-endpoint-url",), None, "URL", "StoreAction"),
        (("--s3-endpoint-url",), None, "URL", "StoreAction"),
        (("--gcs-endpoint-url",), None, "URL", "StoreAction"),
        (("--anonymous",), False, None, "StoreTrueAction"),
        (("--first-block",), None, "BYTES", "StoreAction"),
        (("--requests-in-flight",), None, "N", "StoreAction"),
    ]
    groups = {g.title: [a.dest for a in g._group_actions] for g in ingest_parser()._action_groups}
    assert groups["buckets and manifests"][0] == "manifest_format"


class Stop(Exception):
    """Raised in place of an ingest: no handler of the command line catches it."""


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What ``ingest`` is called with; the call then stops (the parsing is what is tested)."""
    seen: list[dict[str, Any]] = []

    def record(sources: list[str], warehouse: str, **kwargs: Any) -> Any:
        seen.append({"sources": sources, "warehouse": warehouse, **kwargs})
        raise Stop

    monkeypatch.setattr(run_module, "ingest", record)
    return seen


def test_command_line_and_template_make_the_same_ingest(calls: list[dict[str, Any]]) -> None:
    cli = [
        "ingest", "a", "gs://b/c/", "--warehouse", "gs://w/x", "--manifest", "m1",
        "--manifest", "m2", "--incremental", "--full-listing", "--retry-errors",
        "--force-unlock", "--defer-size", "0", "--manifest-format", "s5cmd",
        "--s5cmd-endpoint-url", "https://s5",
        "--s3-endpoint-url", "https://s3", "--gcs-endpoint-url", "https://gcs", "--anonymous",
        "--first-block", "4096", "--requests-in-flight", "2", "--", "--direct_num_workers=1",
    ]  # fmt: skip
    template = [
        "--sources=a,gs://b/c/", "--warehouse=gs://w/x", "--manifests=m1, m2",
        "--incremental=true", "--full_listing=TRUE", "--retry_errors=yes",
        "--force_unlock=true", "--defer_size=0",
        "--manifest_format=s5cmd", "--s5cmd_endpoint_url=https://s5",
        "--s3_endpoint_url=https://s3", "--gcs_endpoint_url=https://gcs", "--anonymous=true",
        "--first_block=4096", "--requests_in_flight=2", "--direct_num_workers=1",
    ]  # fmt: skip
    with pytest.raises(Stop):
        cli_main(cli)
    with pytest.raises(Stop):
        run_job(template)
    expected = {
        "sources": ["a", "gs://b/c/"],
        "warehouse": "gs://w/x",
        "manifests": ["m1", "m2"],
        "beam_args": ["--direct_num_workers=1"],
        "defer_size": 0,
        "options": IngestOptions(
            incremental=True, full_listing=True, retry_errors=True, force_unlock=True
        ),
        "storage": StorageOptions(
            s3_endpoint_url="https://s3",
            gcs_endpoint_url="https://gcs",
            anonymous=True,
            first_block=4096,
            requests_in_flight=2,
            manifest_format="s5cmd",
            s5cmd_endpoint_url="https://s5",
        ),
        "required_columns": set(),
        "budget": ReadBudget(),
    }
    assert calls == [expected, expected]
    with pytest.raises(Stop):
        cli_main(["ingest", "a", "--warehouse", "w"])
    with pytest.raises(Stop):
        run_job(["--sources=a", "--warehouse=w"])
    defaults = {**calls[2], "beam_args": []}
    assert calls[2] == defaults and calls[3] == defaults
    assert (defaults["storage"], defaults["options"]) == (StorageOptions(), IngestOptions())
    assert defaults["defer_size"] == 256 * 1024


@pytest.mark.parametrize(
    ("cli", "template", "bound"),
    [
        (["--defer-size", "-1"], "--defer_size=-1", "zero or more"),
        (["--first-block", "0"], "--first_block=0", "at least 1"),
        (["--requests-in-flight", "0"], "--requests_in_flight=0", "at least 1"),
    ],
)
def test_bad_values_are_one_line_in_each_spelling(
    cli: list[str], template: str, bound: str, calls: list[dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    assert cli_main(["ingest", "a", "--warehouse", "w", *cli]) == 2
    assert capsys.readouterr().err == f"dicomwarehouse: error: {cli[0]} must be {bound}\n"
    with pytest.raises(SystemExit) as exited:
        run_job(["--sources=a", "--warehouse=w", template])
    assert exited.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == f"dicomwarehouse-ingest-job: error: {template.split('=')[0]} must be {bound}"
    assert calls == []


def test_no_source_is_named_in_each_spelling(
    calls: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["ingest", "--warehouse", "w"]) == 2
    assert capsys.readouterr().err == "dicomwarehouse: error: ingest needs a SOURCE or --manifest\n"
    with pytest.raises(SystemExit):
        run_job(["--warehouse=w", "--anonymous=false"])
    assert "ingest needs --sources or --manifests" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_job(["--sources=a", "--warehouse=w", "--anonymous=maybe"])
    assert "expected true or false, not 'maybe'" in capsys.readouterr().err
    assert calls == []


def test_template_reads_a_bucket_with_its_storage_parameters(
    gcs_server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The endpoint, anonymous access and the first block reach the reader from the template:
    with STORAGE_EMULATOR_HOST unset, only --gcs_endpoint_url leads to the emulator."""
    bucket = gcs_client().create_bucket("dw-template-options")
    bucket.blob("a.dcm").upload_from_string(dicom_bytes(base_dataset()))
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    common = [
        "--sources=gs://dw-template-options/a.dcm",
        f"--gcs_endpoint_url={gcs_server.endpoint}",
        "--anonymous=true",
        "--direct_num_workers=1",
    ]
    whole = run_job([*common, f"--warehouse={tmp_path / 'w1'}"])
    small = run_job([*common, f"--warehouse={tmp_path / 'w2'}", "--first_block=128"])
    assert (whole.instances, small.instances) == (1, 1)
    assert whole.read_requests == 1
    assert small.read_requests > 1  # the header did not fit in 128 bytes
