"""What one object holds can fail that object only, never the run's schema, shards or commit."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pyarrow as pa
import pytest
from cli_runs import run_cli
from dicom_mutations import element_spans
from dicom_samples import ImplicitVRLittleEndian, dicom_bytes, every_vr_dataset
from pydicom.data import get_testdata_file

from dicomwarehouse.dicom.extract import Extracted, extract_object, new_run
from dicomwarehouse.io.refs import ObjectRef
from dicomwarehouse.tables.limits import choose_columns
from dicomwarehouse.tables.parquet import metadata_table
from dicomwarehouse.tables.schema import column_path_problem, metadata_schema

RUN = new_run()
DELIMITER_TAGS = (0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD)


def with_stray_tag(data: bytes, tag: int, before: int, length: int = 0) -> bytes:
    """``data`` with an item or delimitation tag inserted where the last element ``before``
    starts (the top-level one, when a sequence item holds the same tag before it)."""
    at = [span.offset for span in element_spans(data) if span.tag == before][-1]
    stray = struct.pack("<HHI", tag >> 16, tag & 0xFFFF, length) + b"\x00" * (
        0 if length == 0xFFFFFFFF else length
    )
    return data[:at] + stray + data[at:]


def extract_bytes(tmp_path: Path, data: bytes, name: str = "object.dcm") -> Extracted:
    path = tmp_path / name
    path.write_bytes(data)
    return extract_object(ObjectRef(str(path), len(data)), RUN)


@pytest.mark.parametrize("tag", DELIMITER_TAGS, ids=lambda t: f"{t:08X}")
@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_stray_delimiter_tag_is_an_anomaly_not_a_column(
    tmp_path: Path, tag: int, syntax: str
) -> None:
    kwargs = {"syntax": ImplicitVRLittleEndian} if syntax == "implicit" else {}
    data = with_stray_tag(dicom_bytes(every_vr_dataset(), **kwargs), tag, before=0x00100020)
    extracted = extract_bytes(tmp_path, data)
    assert extracted.metadata is not None, extracted.error
    paths = extracted.column_paths
    assert paths and not any(t >> 16 == 0xFFFE for path in paths for t in path)
    assert all(column_path_problem(path) is None for path in paths)
    metadata_schema(paths)  # the run-level step that used to fail with KeyError 'NONE'
    anomalies = extracted.metadata["ingest_anomalies"]
    if tag == 0xFFFEE00D:  # pydicom ends a data set there: the reader goes on past it
        assert any("item delimitation tag" in a["reason"] for a in anomalies), anomalies
    else:
        assert f"{tag:08X}" in extracted.elements.column("tag").to_pylist()
        assert any(a["tag_path"].endswith(f"{tag:08X}") for a in anomalies), anomalies
    assert extracted.metadata["SOPInstanceUID"]
    assert extracted.metadata["PatientID"] == "PAT-1"  # the top-level element after the tag


def test_rt_plan_with_a_stray_item_tag_keeps_its_nested_columns(tmp_path: Path) -> None:
    data = Path(get_testdata_file("rtplan.dcm")).read_bytes()
    spans = element_spans(data)
    nested = next(s for s in spans if s.tag == 0x300A00B0)  # BeamSequence
    inside = next(s for s in spans if s.offset > nested.offset and s.tag >> 16 != 0xFFFE)
    mutated = with_stray_tag(data, 0xFFFEE000, before=inside.tag)
    extracted = extract_bytes(tmp_path, mutated)
    assert extracted.metadata is not None, extracted.error
    assert not any(t >> 16 == 0xFFFE for path in extracted.column_paths for t in path)
    metadata_schema(extracted.column_paths)


def test_run_level_steps_are_total_over_any_path() -> None:
    """A path no object may report (the flattener drops it) still gets a schema and a count."""
    odd = {(0xFFFEE000,): 1, (0x300A00B0, 0xFFFEE0DD): 1, (0x00100010,): 2}
    assert column_path_problem((0xFFFEE000,)) is not None
    choice = choose_columns(odd)
    schema = metadata_schema(choice.paths)
    assert schema.field("PatientName").type != pa.string()  # real columns keep their type
    assert (0xFFFEE000,) in choice.paths


def test_a_row_value_that_does_not_fit_is_left_null_not_failing_the_shard() -> None:
    schema = metadata_schema([(0x00280010,)])  # Rows: INT64
    good = {"Rows": 512, "source_url": "a", "ingest_run_id": "r", "ingested_at": RUN.started_at}
    bad = {**good, "source_url": "b", "Rows": "not a number", "ingest_anomalies": []}
    table = metadata_table([good, bad], schema)
    assert table.column("Rows").to_pylist() == [512, None]
    anomalies = table.column("ingest_anomalies").to_pylist()
    assert anomalies[0] in (None, [])
    assert anomalies[1][0]["keyword"] == "Rows"


def test_ingest_with_stray_delimiter_tags_commits(tmp_path: Path) -> None:
    sources = tmp_path / "in"
    sources.mkdir()
    (sources / "plain.dcm").write_bytes(dicom_bytes(every_vr_dataset()))
    for tag in DELIMITER_TAGS:
        data = with_stray_tag(dicom_bytes(every_vr_dataset()), tag, before=0x00100020)
        (sources / f"stray_{tag:08X}.dcm").write_bytes(data)
    warehouse = tmp_path / "warehouse"
    result = run_cli("ingest", str(sources), "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stderr
    (record_path,) = (warehouse / "_runs").glob("*.json")
    record = json.loads(record_path.read_text())
    assert record["instances"] + record["errors"] == 4
    assert record["columns_of_unknown_type"] == 0


def test_no_exception_escapes_extract_object(tmp_path: Path, monkeypatch) -> None:
    from dicomwarehouse.dicom.flatten import ElementRows

    extracted = extract_object(ObjectRef(str(tmp_path / "nul\x00byte.dcm")), RUN)
    assert extracted.error is not None and extracted.error["error_type"] == "ValueError"

    def broken(*args, **kwargs):
        raise ValueError("a value that must not be logged")

    monkeypatch.setattr(ElementRows, "to_arrow", broken)
    extracted = extract_bytes(tmp_path, dicom_bytes(every_vr_dataset()))
    assert extracted.metadata is None and extracted.error is not None
    assert (extracted.error["stage"], extracted.error["error_type"]) == ("flatten", "ValueError")
    assert "must not" not in extracted.error["message"]


def test_commit_counts_columns_without_a_type_of_their_own(tmp_path: Path) -> None:
    from dicomwarehouse.io.objectstore import write_json
    from dicomwarehouse.warehouse.commit import commit_run
    from dicomwarehouse.warehouse.layout import COLUMN_PATHS_FILE, read_run_record, run_dir

    run_id = new_run().run_id
    folder = run_dir(str(tmp_path), "dicom_metadata", run_id)
    Path(folder).mkdir(parents=True)
    paths = [[0x00100010], [0xFFFEE000], [0x300A00B0, 0xFFFEE0DD]]
    write_json(f"{folder}/{COLUMN_PATHS_FILE}", paths)
    commit_run(str(tmp_path), run_id, expected_objects=0)
    record = read_run_record(str(tmp_path), run_id)
    assert record is not None and record["columns_of_unknown_type"] == 2
