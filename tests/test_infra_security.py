"""The Terraform is secure by default: checkov finds nothing, and what it skips says why.

The warehouse holds DICOM headers, patient data in a hospital deployment, so a bucket open to
the public or a service account that can impersonate others is a bug like any other. checkov
has dependencies of its own that clash with the project's, so it lives in its own virtualenv
(.ci/run makes .venv-checkov) and runs here as a program: DICOMWAREHOUSE_CHECKOV names it, else
`checkov` on PATH, else the checkov tests skip. It runs offline: no API key, no download of
guidelines or mappings, no update check, and a timeout so a stray network call fails instead of
hanging. The checks of the Terraform's own shape below need only python-hcl2.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is in the test extra")

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
CHECKOV_ENV = "DICOMWAREHOUSE_CHECKOV"
#: an inline skip: `#checkov:skip=CKV_GCP_80:why` (checkov itself accepts one without a reason)
SKIP = re.compile(r"#\s*checkov:skip=([^\s:]+)(?::(.*))?")
CHECK_ID = re.compile(r"CKV2?_[A-Z0-9]+_\d+")
#: roles that act as, or manage, service accounts: never granted on the whole project
IMPERSONATING_ROLES = {
    "roles/owner",
    "roles/editor",
    "roles/iam.serviceAccountUser",
    "roles/iam.serviceAccountTokenCreator",
    "roles/iam.serviceAccountAdmin",
    "roles/iam.serviceAccountKeyAdmin",
    "roles/iam.workloadIdentityUser",
    "roles/dataflow.developer",
    "roles/dataflow.admin",
}


def terraform_texts() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(INFRA.glob("*.tf"))}


def pinned_checkov_version() -> str:
    """The version .ci/run installs: results are only comparable for one version."""
    pin = re.search(
        r"^CHECKOV_VERSION=([0-9][0-9A-Za-z.]*)$", (REPO / ".ci" / "run").read_text(), re.M
    )
    assert pin is not None, ".ci/run installs checkov at an exact version"
    return pin.group(1)


def checkov_program() -> str | None:
    """The checkov to run: the one the environment names (which must exist), else PATH's."""
    named = os.environ.get(CHECKOV_ENV)
    if named:
        if not os.access(named, os.X_OK):
            pytest.fail(f"{CHECKOV_ENV}={named} is not an executable checkov")
        return named
    return shutil.which("checkov")


def offline_environment() -> dict[str, str]:
    """The caller's environment without platform credentials and with every lookup off."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BC_", "PRISMA_", "CKV_", "CHECKOV_"))
    }
    env["CKV_SKIP_PACKAGE_UPDATE_CHECK"] = "true"  # no question to PyPI about newer versions
    env["BC_SKIP_MAPPING"] = "TRUE"  # no download of check id mappings and guidelines
    return env


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """checkov's JSON report on infra/, run once for the module."""
    program = checkov_program()
    if program is None:
        pytest.skip(f"checkov is not installed (.ci/run installs it; or set {CHECKOV_ENV})")
    command = [program, "--directory", str(INFRA), "--framework", "terraform",
               "--skip-download", "--output", "json"]  # fmt: skip
    try:
        done = subprocess.run(
            command, cwd=REPO, env=offline_environment(), capture_output=True, text=True,
            timeout=180, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("checkov did not finish in 180 s: is it trying to reach the network?")
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: some check failed
    report = json.loads(done.stdout)
    # one framework gives one report; checkov gives a list when there are several
    return report[0] if isinstance(report, list) else report


def describe(checks: list[dict[str, Any]]) -> str:
    return "\n".join(
        f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}: "
        f"{c['check_name']}"
        for c in checks
    )


def test_checkov_finds_no_failed_check(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 0, "checkov ran no check: did it read infra/?"
    failed = checkov_report["results"]["failed_checks"]
    assert summary["failed"] == 0, "\n" + describe(failed)


def test_checkov_is_the_pinned_version(checkov_report: dict[str, Any]) -> None:
    assert checkov_report["summary"]["checkov_version"] == pinned_checkov_version()


def test_checkov_reports_each_skip_with_its_reason(checkov_report: dict[str, Any]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]
    comments = [(c["check_id"], c["check_result"].get("suppress_comment", "")) for c in skipped]
    assert all(comment.strip() for _, comment in comments), comments
    inline = {
        match.group(1) for text in terraform_texts().values() for match in SKIP.finditer(text)
    }
    # every skip checkov honoured is one written in the Terraform, not a flag or a config file
    assert {check_id for check_id, _ in comments} <= inline


def test_every_skip_in_the_terraform_has_a_reason() -> None:
    skips = [(name, match) for name, text in terraform_texts().items()
             for match in SKIP.finditer(text)]  # fmt: skip
    assert skips, "the CMEK checks are skipped while the key is opt-in"
    for name, match in skips:
        assert CHECK_ID.fullmatch(match.group(1)), (name, match.group(0))
        reason = (match.group(2) or "").strip()
        assert len(reason.split()) >= 3, f"{name}: {match.group(0)} needs a reason"


# The shape of the Terraform, checked without checkov.


def plain(value: Any) -> Any:
    """A parsed value the same for every python-hcl2: newer ones keep the quotes of strings
    and names, and add markers of blocks and comments."""
    if isinstance(value, dict):
        return {plain(key): plain(item) for key, item in value.items() if not key.startswith("__")}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def parsed(name: str) -> dict[str, Any]:
    with (INFRA / name).open() as handle:
        return plain(hcl2.load(handle))


def resources() -> dict[str, dict[str, dict[str, Any]]]:
    """Every resource of infra/, by type and name."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(INFRA.glob("*.tf")):
        for block in parsed(path.name).get("resource", []):
            for kind, named in block.items():
                for name, body in named.items():
                    found.setdefault(kind, {})[name] = body
    return found


def test_every_bucket_is_closed_to_the_public_and_logged() -> None:
    buckets = resources()["google_storage_bucket"]
    assert {"warehouse", "staging", "access_logs"} <= set(buckets)
    for name, bucket in buckets.items():
        assert bucket["public_access_prevention"] == "enforced", name
        assert bucket["uniform_bucket_level_access"] is True, name
        encryption = bucket["dynamic"][0]["encryption"]
        assert encryption["for_each"] == "${local.kms_keys}", name
        if name != "access_logs":
            log_bucket = bucket["logging"][0]["log_bucket"]
            assert log_bucket == "${google_storage_bucket.access_logs.name}", name


def test_the_customer_managed_key_reaches_everything_that_holds_data() -> None:
    found = resources()
    dataset = found["google_bigquery_dataset"]["warehouse"]
    dataset_key = dataset["dynamic"][0]["default_encryption_configuration"]
    assert dataset_key["for_each"] == "${local.dataset_kms_keys}"
    for name, table in found["google_bigquery_table"].items():
        table_key = table["dynamic"][0]["encryption_configuration"]
        assert table_key["for_each"] == "${local.dataset_kms_keys}", name
    registry = found["google_artifact_registry_repository"]["images"]
    assert registry["kms_key_name"] == "${var.kms_key_name}"
    main = (INFRA / "main.tf").read_text()
    assert re.search(r"kmsKeyName\s*=\s*var\.kms_key_name", main), "the Dataflow job's state"


def test_the_key_is_off_by_default() -> None:
    variables = {name: body for block in parsed("variables.tf")["variable"]
                 for name, body in block.items()}  # fmt: skip
    for name in ("kms_key_name", "dataset_kms_key_name"):
        assert variables[name]["default"] is None, name


def test_no_project_level_role_acts_as_or_manages_service_accounts() -> None:
    found = resources()
    for kind in ("google_project_iam_member", "google_project_iam_binding"):
        for name, grant in found.get(kind, {}).items():
            assert grant["role"] not in IMPERSONATING_ROLES, (kind, name, grant["role"])
    acts_as = [grant for grant in found["google_service_account_iam_member"].values()
               if grant["role"] == "roles/iam.serviceAccountUser"]  # fmt: skip
    assert [grant["service_account_id"] for grant in acts_as] == [
        "${google_service_account.worker.name}"
    ]


def test_data_access_is_audited_for_storage_and_bigquery() -> None:
    audit = resources()["google_project_iam_audit_config"]["data_access"]
    security = (INFRA / "security.tf").read_text()
    for service in ("storage.googleapis.com", "bigquery.googleapis.com"):
        assert service in security
    log_types = {config["log_type"] for config in audit["audit_log_config"]}
    assert {"DATA_READ", "DATA_WRITE"} <= log_types
