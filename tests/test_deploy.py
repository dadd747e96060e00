"""Deployment files: the Flex Template matches the job, the Terraform is whole.

No terraform binary or Docker engine runs here, so the files are checked by parsing them
(python-hcl2) and by cross-checking every name they share with the code.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import pytest
from dicom_samples import base_dataset, dicom_bytes

from dicomwarehouse.bigquery.plan import PlanError
from dicomwarehouse.pipeline.job import run
from dicomwarehouse.pipeline.options import build_job_parser, main, metadata_text
from dicomwarehouse.pipeline.publish_options import BigQueryPublishOptions

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
TEMPLATE = REPO / "pipelines" / "ingest"

hcl2 = pytest.importorskip("hcl2", reason="python-hcl2 is in the test extra")


def template_parameters() -> list[str]:
    metadata = json.loads((TEMPLATE / "metadata.json").read_text())
    return [parameter["name"] for parameter in metadata["parameters"]]


def test_template_declares_every_parameter_of_the_job() -> None:
    """The job's own parameters, and the Beam options it reads itself (publish at the end)."""
    job_options = [a.dest for a in build_job_parser()._actions if a.dest != "help"]
    parser = argparse.ArgumentParser()
    BigQueryPublishOptions._add_argparse_args(parser)
    publish_options = [a.dest for a in parser._actions if a.dest != "help"]
    assert sorted(template_parameters()) == sorted(job_options + publish_options)


def test_metadata_is_generated_from_the_options(tmp_path: Path) -> None:
    """metadata.json is what the one table of ingest options says, storage options included."""
    committed = TEMPLATE / "metadata.json"
    assert committed.read_text() == metadata_text(), (
        "python -m dicomwarehouse.pipeline.options --write-metadata pipelines/ingest/metadata.json"
    )
    assert {"anonymous", "gcs_endpoint_url", "first_block"} <= set(template_parameters())
    stale = tmp_path / "metadata.json"
    stale.write_text(committed.read_text().replace('"anonymous"', '"anonymously"'))
    assert main(["--check-metadata", str(stale)]) == 1
    assert main(["--write-metadata", str(stale)]) == 0
    assert main(["--check-metadata", str(stale)]) == 0
    assert stale.read_text() == committed.read_text()


def test_required_parameters_agree() -> None:
    metadata = json.loads((TEMPLATE / "metadata.json").read_text())
    optional = {p["name"] for p in metadata["parameters"] if p.get("isOptional")}
    required = {a.dest for a in build_job_parser()._actions if a.required}
    assert required == set(template_parameters()) - optional


def test_dockerfile_copies_what_exists_and_runs_the_launcher() -> None:
    dockerfile = (TEMPLATE / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (REPO / source).exists(), source
    assert "FLEX_TEMPLATE_PYTHON_PY_FILE=/template/launcher.py" in dockerfile
    assert "pipelines/ingest/launcher.py /template/launcher.py" in dockerfile


def test_terraform_parses_and_references_only_existing_files() -> None:
    texts = {path.name: path.read_text() for path in sorted(INFRA.glob("*.tf"))}
    assert {"main.tf", "variables.tf", "versions.tf", "outputs.tf"} <= set(texts)
    for name in texts:
        with (INFRA / name).open() as handle:
            assert hcl2.load(handle) is not None, name
    referenced = re.findall(r'file\("\$\{path\.module\}/([^"]+)"\)', "\n".join(texts.values()))
    assert referenced, "the tables' schemas and the template metadata come from files"
    for relative in referenced:
        assert (INFRA / relative).resolve().is_file(), relative


def test_every_variable_is_declared_and_used() -> None:
    with (INFRA / "variables.tf").open() as handle:
        declared = {name.strip('"') for block in hcl2.load(handle)["variable"] for name in block}
    other = "\n".join(p.read_text() for p in INFRA.glob("*.tf") if p.name != "variables.tf")
    used = set(re.findall(r"\bvar\.([A-Za-z_][A-Za-z0-9_]*)", other))
    assert used <= declared, used - declared
    assert declared <= used, declared - used


def test_schedule_launches_the_template_incrementally_with_known_parameters() -> None:
    main = (INFRA / "main.tf").read_text()
    block = re.search(r"parameters = \{\n(.*?)\n\s*\}\n", main, re.S)
    assert block is not None
    keys = re.findall(r"^\s*(\w+)\s*=", block.group(1), re.M)
    assert set(keys) <= set(template_parameters())
    assert {"warehouse", "bigquery_dataset"} <= set(keys)  # written to gs://, then published
    assert re.search(r'incremental\s*=\s*"true"', block.group(1))
    assert "flexTemplates:launch" in main


def test_job_runs_with_template_style_arguments(tmp_path: Path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.dcm").write_bytes(dicom_bytes(base_dataset()))
    warehouse = tmp_path / "w"
    argv = [f"--sources={source}", f"--warehouse={warehouse}", "--incremental=true",
            "--full_listing=true", "--direct_num_workers=1"]  # fmt: skip
    first = run(argv)
    again = run(argv)
    assert (first.objects_read, again.objects_read) == (1, 0)


def test_job_hands_the_publish_parameters_to_the_publish(tmp_path: Path) -> None:
    """bigquery_* reach the publish check (which runs before anything is read)."""
    source = tmp_path / "in"
    source.mkdir()
    (source / "a.dcm").write_bytes(dicom_bytes(base_dataset()))
    argv = [f"--sources={source}", f"--warehouse={tmp_path / 'w'}",
            "--bigquery_dataset=some-project.dicom"]  # fmt: skip
    with pytest.raises(PlanError, match="needs --bigquery_staging"):
        run(argv)  # a local warehouse must be staged; a gs:// one loads in place
    assert not (tmp_path / "w").exists()
