"""The derived views (segmentations, SR measurements, RT ROIs, bulk annotations, slide, CT/MR/PT
indexes, volume geometry) over real objects, each count checked against a walk of the same
files with pydicom or highdicom.

The objects come from highdicom and pydicom writers (``derived_objects``, ingested once per
session), from pydicom's bundled files (every view must run on a warehouse without any SEG or
SR) and, marked slow, from ../shared/corpus.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import highdicom as hd
import numpy as np
import pytest
from ingested import IngestedFolder
from pydicom import dcmread
from pydicom.dataset import Dataset

from dicomwarehouse.pipeline.run import ingest
from dicomwarehouse.warehouse.duckdb_file import connect
from dicomwarehouse.warehouse.views import load_views

SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
ANN_STORAGE = "1.2.840.10008.5.1.4.1.1.91.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
SR_STORAGE = {
    "1.2.840.10008.5.1.4.1.1.88.11",
    "1.2.840.10008.5.1.4.1.1.88.22",
    "1.2.840.10008.5.1.4.1.1.88.33",
    "1.2.840.10008.5.1.4.1.1.88.34",
    "1.2.840.10008.5.1.4.1.1.88.35",
}
FINDING = ("DCM", "121071")
FINDING_SITES = {("SCT", "363698007"), ("SRT", "G-C0E3")}

DERIVED_VIEWS = (
    "segmentations",
    "seg_index",
    "measurement_groups",
    "quantitative_measurements",
    "qualitative_measurements",
    "rtstruct_rois",
    "rtstruct_index",
    "ann_index",
    "ann_group_index",
    "sm_index",
    "sm_instance_index",
    "specimen_preparation_steps",
    "dicom_metadata_curated",
    "dicom_metadata_curated_series_level",
    "ct_index",
    "mr_index",
    "pt_index",
    "contrast_index",
    "volume_geometry",
)


# --- the independent walk -------------------------------------------------------------------


def _concept(item: Dataset, name: str = "ConceptNameCodeSequence") -> tuple[str, str] | None:
    codes = item.get(name)
    if not codes:
        return None
    return (codes[0].get("CodingSchemeDesignator"), codes[0].get("CodeValue"))


def _is_measurement_report(ds: Dataset) -> bool:
    return ds.get("SOPClassUID") in SR_STORAGE and any(
        template.get("TemplateIdentifier") == "1500" and template.get("MappingResource") == "DCMR"
        for template in ds.get("ContentTemplateSequence", [])
    )


def _measurement_groups(ds: Dataset) -> Iterator[Dataset]:
    for container in ds.get("ContentSequence", []):
        for item in container.get("ContentSequence", []):
            if item.get("ValueType") != "CONTAINER":
                continue
            name = item.ConceptNameCodeSequence[0] if item.get("ConceptNameCodeSequence") else None
            if name is not None and (
                (name.get("CodingSchemeDesignator"), name.get("CodeValue")) == ("DCM", "125007")
                or name.get("CodeMeaning") == "Measurement Group"
            ):
                yield item


def _segment_reference(group: Dataset) -> Dataset | None:
    for item in group.get("ContentSequence", []):
        references = item.get("ReferencedSOPSequence")
        if (
            item.get("ValueType") == "IMAGE"
            and references
            and references[0].get("ReferencedSOPClassUID") == SEG_STORAGE
        ):
            return references[0]
    return None


@dataclass
class Walk:
    """What pydicom finds in a set of files, counted as the views count it."""

    segments: int = 0
    segments_by_series: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))
    segment_labels: set[tuple[str, int, str]] = field(default_factory=set)
    groups: int = 0
    groups_with_segment: int = 0
    group_tracking_ids: Counter[str] = field(default_factory=Counter)
    numeric: int = 0
    numeric_values: Counter[tuple[str, float]] = field(default_factory=Counter)
    qualitative: int = 0
    qualitative_values: Counter[tuple[str, str]] = field(default_factory=Counter)
    rois: int = 0
    roi_details: set[tuple[str, int, str, str | None, int]] = field(default_factory=set)
    rtstruct_series: set[str] = field(default_factory=set)
    ann_objects: int = 0
    ann_groups: int = 0
    ann_annotations: int = 0
    sm_objects: int = 0
    sm_series: set[str] = field(default_factory=set)
    stains: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    ct_series: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))

    def add(self, ds: Dataset) -> None:
        sop_class = ds.get("SOPClassUID")
        if sop_class == SEG_STORAGE:
            for segment in ds.get("SegmentSequence", []):
                self.segments += 1
                self.segments_by_series[ds.SeriesInstanceUID].add(segment.SegmentNumber)
                self.segment_labels.add(
                    (ds.SOPInstanceUID, segment.SegmentNumber, segment.get("SegmentLabel"))
                )
        if _is_measurement_report(ds):
            self._add_report(ds)
        if sop_class == RTSTRUCT_STORAGE:
            self._add_structure_set(ds)
        if sop_class == ANN_STORAGE:
            self.ann_objects += 1
            for annotation_group in ds.get("AnnotationGroupSequence", []):
                self.ann_groups += 1
                self.ann_annotations += annotation_group.get("NumberOfAnnotations") or 0
        if ds.get("Modality") == "SM":
            self.sm_objects += 1
            self.sm_series.add(ds.SeriesInstanceUID)
            for specimen in ds.get("SpecimenDescriptionSequence", []):
                for step in specimen.get("SpecimenPreparationSequence", []):
                    for item in step.get("SpecimenPreparationStepContentItemSequence", []):
                        if _concept(item) == ("SCT", "424361007"):
                            for code in item.get("ConceptCodeSequence", []):
                                self.stains[ds.SOPInstanceUID].add(code.CodeMeaning)
        if sop_class == CT_STORAGE:
            self.ct_series[ds.SeriesInstanceUID].add(ds.SOPInstanceUID)

    def _add_report(self, ds: Dataset) -> None:
        for group in _measurement_groups(ds):
            self.groups += 1
            self.groups_with_segment += _segment_reference(group) is not None
            for item in group.get("ContentSequence", []):
                concept = _concept(item)
                if item.get("ValueType") == "TEXT" and concept == ("DCM", "112039"):
                    self.group_tracking_ids[item.TextValue] += 1
                if item.get("ValueType") == "NUM":
                    self.numeric += 1
                    measured = item.get("MeasuredValueSequence")
                    if measured:
                        self.numeric_values[
                            (
                                item.ConceptNameCodeSequence[0].CodeMeaning,
                                float(measured[0].NumericValue),
                            )
                        ] += 1
                if (
                    item.get("ValueType") == "CODE"
                    and concept != FINDING
                    and concept not in FINDING_SITES
                ):
                    self.qualitative += 1
                    value = _concept(item, "ConceptCodeSequence")
                    self.qualitative_values[
                        (item.ConceptNameCodeSequence[0].CodeMeaning, value and value[1])
                    ] += 1

    def _add_structure_set(self, ds: Dataset) -> None:
        self.rtstruct_series.add(ds.SeriesInstanceUID)
        kinds = {
            int(observation.ReferencedROINumber): observation.get("RTROIInterpretedType")
            for observation in reversed(ds.get("RTROIObservationsSequence", []))
        }
        contours: Counter[int] = Counter()
        for roi_contour in ds.get("ROIContourSequence", []):
            contours[int(roi_contour.ReferencedROINumber)] += len(
                roi_contour.get("ContourSequence", [])
            )
        for roi in ds.get("StructureSetROISequence", []):
            self.rois += 1
            number = int(roi.ROINumber)
            self.roi_details.add(
                (ds.SOPInstanceUID, number, roi.get("ROIName"), kinds.get(number), contours[number])
            )


def walk(paths: Iterable[str]) -> Walk:
    found = Walk()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            found.add(dcmread(path, stop_before_pixels=True, force=True))
    return found


def ingested_paths(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The files dicom_metadata has a row for: the views cover these, no more."""
    return [url for (url,) in con.execute("SELECT source_url FROM dicom_metadata").fetchall()]


def count(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    return con.execute(sql).fetchone()[0]


def check_counts(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    """Every count the views give equals the walk's."""
    assert count(con, "SELECT COUNT(*) FROM segmentations") == found.segments
    assert dict(
        con.execute("SELECT SeriesInstanceUID, total_segments FROM seg_index").fetchall()
    ) == {series: len(numbers) for series, numbers in found.segments_by_series.items()}
    assert count(con, "SELECT COUNT(*) FROM measurement_groups") == found.groups
    assert (
        count(con, "SELECT COUNT(segmentationInstanceUID) FROM measurement_groups")
        == found.groups_with_segment
    )
    assert count(con, "SELECT COUNT(*) FROM quantitative_measurements") == found.numeric
    assert count(con, "SELECT COUNT(*) FROM qualitative_measurements") == found.qualitative
    assert count(con, "SELECT COUNT(*) FROM rtstruct_rois") == found.rois
    assert count(con, "SELECT COUNT(*) FROM rtstruct_index") == len(found.rtstruct_series)
    assert count(con, "SELECT COUNT(*) FROM ann_index") == found.ann_objects
    assert count(con, "SELECT COUNT(*) FROM ann_group_index") == found.ann_groups
    assert count(con, "SELECT IFNULL(SUM(annotation_count), 0) FROM ann_index") == (
        found.ann_annotations
    )
    assert count(con, "SELECT COUNT(*) FROM sm_instance_index") == found.sm_objects
    assert count(con, "SELECT COUNT(*) FROM sm_index") == len(found.sm_series)
    assert dict(
        con.execute("SELECT SeriesInstanceUID, instance_count FROM ct_index").fetchall()
    ) == {series: len(instances) for series, instances in found.ct_series.items()}


# --- generated objects ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def con(annotation_warehouse: IngestedFolder) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = connect(annotation_warehouse.warehouse)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def found(con: duckdb.DuckDBPyConnection) -> Walk:
    return walk(ingested_paths(con))


def test_every_object_was_ingested(annotation_warehouse: IngestedFolder) -> None:
    files = sorted(annotation_warehouse.root.glob("*.dcm"))
    con = connect(annotation_warehouse.warehouse)
    try:
        assert sorted(map(Path, ingested_paths(con))) == files
        assert count(con, "SELECT COUNT(*) FROM ingest_errors") == 0
    finally:
        con.close()


def test_counts_equal_the_pydicom_walk(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    assert found.segments > 2 and found.groups > 2 and found.rois > 2 and found.ann_groups > 1
    check_counts(con, found)


def test_segmentations(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    rows = con.execute(
        "SELECT SOPInstanceUID, SegmentNumber, SegmentLabel FROM segmentations"
    ).fetchall()
    assert set(rows) == found.segment_labels
    # every segment names the CT series the SEG was made from
    segmented = {
        ds.SeriesInstanceUID: ds.ReferencedSeriesSequence[0].SeriesInstanceUID
        for ds in map(dcmread, ingested_paths(con))
        if ds.SOPClassUID == SEG_STORAGE
    }
    assert (
        dict(
            con.execute(
                "SELECT DISTINCT SeriesInstanceUID, segmented_SeriesInstanceUID FROM segmentations"
            ).fetchall()
        )
        == segmented
    )


def test_measurement_groups_keep_groups_without_a_segment(
    con: duckdb.DuckDBPyConnection, found: Walk
) -> None:
    assert found.groups > found.groups_with_segment > 0
    rows = con.execute(
        "SELECT trackingIdentifier, segmentationInstanceUID IS NULL, measurementGroup_number"
        " FROM measurement_groups"
    ).fetchall()
    assert Counter(row[0] for row in rows) == found.group_tracking_ids
    assert sum(without for _, without, _ in rows) == found.groups - found.groups_with_segment
    # numbered from 0 in their container, as BigQuery's WITH OFFSET numbers them
    assert sorted(number for *_, number in rows) == list(range(found.groups))
    # a referenced segment resolves to its SEG series, found by the SEG's SOPInstanceUID
    assert (
        count(
            con,
            "SELECT COUNT(*) FROM measurement_groups AS mg JOIN segmentations AS s"
            " ON s.SOPInstanceUID = mg.segmentationInstanceUID"
            " AND s.SegmentNumber = mg.segmentationSegmentNumber"
            " AND s.SeriesInstanceUID = mg.segmentationSeriesUID",
        )
        == found.groups_with_segment
    )


def test_quantitative_values(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    rows = con.execute(
        "SELECT Quantity.CodeMeaning, Value, value_float64, Units.CodeValue"
        " FROM quantitative_measurements"
    ).fetchall()
    assert Counter((meaning, as_float) for meaning, _, as_float, _ in rows) == (
        found.numeric_values
    )
    for _, value, as_float, units in rows:
        # NUMERIC keeps 9 decimals, as BigQuery's does
        assert float(value) == pytest.approx(as_float, abs=5e-10)
        assert units
    # derivation and laterality modifiers are read from the items that carry them
    assert count(
        con,
        "SELECT COUNT(*) FROM quantitative_measurements"
        " WHERE derivationModifier.CodeMeaning = 'Maximum'",
    ) == sum(n for (meaning, _), n in found.numeric_values.items() if meaning == "Diameter")
    assert count(
        con,
        "SELECT COUNT(*) FROM quantitative_measurements"
        " WHERE lateralityModifier.CodeMeaning = 'Right'",
    ) == count(con, "SELECT COUNT(*) FROM quantitative_measurements WHERE findingSite IS NOT NULL")


def test_qualitative_values(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    rows = con.execute(
        "SELECT Quantity.CodeMeaning, Value.CodeValue FROM qualitative_measurements"
    ).fetchall()
    assert Counter(rows) == found.qualitative_values


def test_rtstruct_rois(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    rows = con.execute(
        "SELECT SOPInstanceUID, ROINumber, ROIName, RTROIInterpretedType, contour_count"
        " FROM rtstruct_rois"
    ).fetchall()
    assert set(rows) == found.roi_details
    assert count(con, "SELECT SUM(total_rois) FROM rtstruct_index") == found.rois


def test_bulk_annotations_against_highdicom(
    con: duckdb.DuckDBPyConnection, annotation_warehouse: IngestedFolder
) -> None:
    expected = set()
    for path in annotation_warehouse.root.glob("*.dcm"):
        ds = dcmread(path)
        if ds.SOPClassUID != ANN_STORAGE:
            continue
        annotations = hd.ann.MicroscopyBulkSimpleAnnotations.from_dataset(ds)
        for annotation_group in annotations.get_annotation_groups():
            expected.add(
                (
                    annotation_group.number,
                    annotation_group.label,
                    annotation_group.graphic_type.value,
                    len(annotation_group.get_graphic_data(annotations.AnnotationCoordinateType)),
                    annotation_group.annotated_property_type.meaning,
                )
            )
    rows = con.execute(
        "SELECT AnnotationGroupNumber, AnnotationGroupLabel, GraphicType, NumberOfAnnotations,"
        " AnnotationPropertyType_CodeMeaning FROM ann_group_index"
    ).fetchall()
    assert set(rows) == expected
    slide_series = con.execute("SELECT referenced_SeriesInstanceUID FROM ann_index").fetchall()
    assert slide_series == con.execute("SELECT SeriesInstanceUID FROM sm_index").fetchall()


def test_slide_preparation(con: duckdb.DuckDBPyConnection, found: Walk) -> None:
    rows = con.execute(
        "SELECT SOPInstanceUID, staining_usingSubstance_CodeMeaning,"
        " staining_usingSubstance_code_designator_value_str FROM sm_instance_index"
    ).fetchall()
    assert {uid: set(meanings) for uid, meanings, _ in rows} == found.stains
    for _, meanings, codes in rows:
        assert meanings == sorted(meanings) and len(codes) == len(meanings)
    row = con.execute(
        "SELECT ObjectiveLensPower, min_PixelSpacing_2sf, illuminationType_CodeMeaning"
        " FROM sm_index"
    ).fetchone()
    slide = next(
        dcmread(path, stop_before_pixels=True)
        for path in ingested_paths(con)
        if dcmread(path, stop_before_pixels=True).Modality == "SM"
    )
    spacing = float(
        slide.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0]
    )
    digits = 1 - math.floor(math.log10(abs(spacing)))
    assert row == (
        round(float(slide.OpticalPathSequence[0].ObjectiveLensPower)),
        pytest.approx(round(spacing, digits)),
        slide.OpticalPathSequence[0].IlluminationTypeCodeSequence[0].CodeMeaning,
    )


VOLUME_STORAGE = {CT_STORAGE, "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.128"}


def _slice_position(ds: Dataset) -> float | None:
    """The image's position along its slice normal in mm (0.001 mm), None without one."""
    try:
        position = np.array([float(v) for v in ds.ImagePositionPatient], dtype=float)
        cosines = np.array([float(v) for v in ds.ImageOrientationPatient], dtype=float)
    except (AttributeError, TypeError, ValueError):
        return None
    if position.shape != (3,) or cosines.shape != (6,):
        return None
    return round(float(np.dot(position, np.cross(cosines[:3], cosines[3:]))), 3)


def _series_geometry(paths: list[str]) -> dict[str, dict[str, Any]]:
    """Per single-frame CT, MR and PET series: slice positions along the normal, computed with
    numpy, one image per SOPInstanceUID, localizers and MIPs left out."""
    positions: dict[str, dict[str, float | None]] = defaultdict(dict)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            ds = dcmread(path, stop_before_pixels=True, force=True)
            image_type = list(ds.get("ImageType") or [])
            if ds.get("SOPClassUID") not in VOLUME_STORAGE or any(
                value == "LOCALIZER" or "MIP" in value for value in image_type
            ):
                continue
            positions[ds.SeriesInstanceUID][ds.SOPInstanceUID] = _slice_position(ds)
    geometry = {}
    for series, by_instance in positions.items():
        known = [value for value in by_instance.values() if value is not None]
        distinct = sorted(set(known))
        intervals = np.diff(distinct)
        several = len(distinct) > 1
        geometry[series] = {
            "instance_count": len(by_instance),
            "instances_without_position": len(by_instance) - len(known),
            "duplicate_position_count": len(known) - len(distinct),
            "slice_position_count": len(distinct),
            "slice_spacing_mm": (distinct[-1] - distinct[0]) / (len(distinct) - 1)
            if several
            else None,
            "missing_position_count": int(sum(np.round(intervals / intervals.min()) - 1))
            if several and intervals.min() > 0
            else 0,
        }
    return geometry


def volume_geometry_rows(con: duckdb.DuckDBPyConnection, columns: list[str]) -> dict[str, Any]:
    rows = con.execute(
        f"SELECT SeriesInstanceUID, {', '.join(columns)} FROM volume_geometry"
    ).fetchall()
    return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in rows}


def test_volume_geometry(con: duckdb.DuckDBPyConnection) -> None:
    expected = _series_geometry(ingested_paths(con))
    assert len(expected) == 2
    for values in expected.values():
        values["regularly_spaced_3d_volume"] = not any(
            values[key]
            for key in (
                "instances_without_position",
                "duplicate_position_count",
                "missing_position_count",
            )
        )
        values["slice_spacing_mm"] = pytest.approx(values["slice_spacing_mm"])
    assert sorted(values["regularly_spaced_3d_volume"] for values in expected.values()) == [
        False,
        True,
    ]
    columns = list(next(iter(expected.values())))
    assert volume_geometry_rows(con, columns) == expected


def test_contrast_and_ct_index(con: duckdb.DuckDBPyConnection) -> None:
    agents: dict[str, set[str]] = defaultdict(set)
    currents: dict[str, list[float]] = defaultdict(list)
    for path in ingested_paths(con):
        ds = dcmread(path, stop_before_pixels=True)
        if ds.get("ContrastBolusAgent"):
            agents[ds.SeriesInstanceUID].add(ds.ContrastBolusAgent)
        if ds.SOPClassUID == CT_STORAGE:
            currents[ds.SeriesInstanceUID].append(float(ds.XRayTubeCurrent))
    assert {
        series: set(values)
        for series, values in con.execute(
            "SELECT SeriesInstanceUID, ContrastBolusAgent FROM contrast_index"
        ).fetchall()
    } == agents
    assert {
        series: (low, high)
        for series, low, high in con.execute(
            "SELECT SeriesInstanceUID, XRayTubeCurrent_min, XRayTubeCurrent_max FROM ct_index"
        ).fetchall()
    } == {series: (min(values), max(values)) for series, values in currents.items()}


# --- warehouses without annotations, and the shared corpus ----------------------------------


def test_every_view_runs_on_pydicom_files(pydicom_warehouse: IngestedFolder) -> None:
    """pydicom's files have no SEG, TID 1500 SR or bulk annotations: the views bind anyway."""
    con = connect(pydicom_warehouse.warehouse)
    try:
        names = {view.name for view in load_views()}
        assert set(DERIVED_VIEWS) <= names
        for name in sorted(names):
            con.execute(f'SELECT * FROM "{name}"').fetchall()
        found = walk(ingested_paths(con))
        assert found.rois > 0  # pydicom ships an RTSTRUCT
        check_counts(con, found)
    finally:
        con.close()


@pytest.mark.slow
def test_views_over_the_shared_corpus(
    shared_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    warehouse = tmp_path_factory.mktemp("corpus-views") / "warehouse"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ingest([str(shared_corpus)], warehouse)
    con = connect(warehouse)
    try:
        for name in DERIVED_VIEWS:
            con.execute(f'SELECT * FROM "{name}"').fetchall()
        paths = ingested_paths(con)
        check_counts(con, walk(paths))
        robust = [
            "instance_count",
            "instances_without_position",
            "duplicate_position_count",
            "slice_position_count",
        ]
        expected = {
            series: {key: values[key] for key in robust}
            for series, values in _series_geometry(paths).items()
        }
        assert volume_geometry_rows(con, robust) == expected
    finally:
        con.close()
