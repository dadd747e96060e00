"""Real annotation objects for the derived views, made with highdicom and pydicom.

A small CT series (pydicom), and objects that annotate it or a slide: a multi-segment
Segmentation, a TID 1500 Comprehensive 3D SR whose measurement groups reference segments (and
one that does not), an RTSTRUCT with several ROIs (pydicom: highdicom writes no RT objects),
a slide microscopy image with specimen preparation steps (pydicom) and a Microscopy Bulk
Simple Annotations object on it (highdicom). Everything is written by the writers a user would
use, so the views are tested on objects laid out as the standard's implementers lay them out.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
SM_STORAGE = "1.2.840.10008.5.1.4.1.1.77.1.6"

_SLICES = 4
_SIZE = 16


def _write(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _patient_study(ds: Dataset, study_uid: str, patient_id: str) -> None:
    ds.PatientID = patient_id
    ds.PatientName = "Test^Derived"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study_uid
    ds.StudyID = "1"
    ds.StudyDate = "20240101"
    ds.StudyTime = "120000"
    ds.AccessionNumber = "A1"
    ds.ReferringPhysicianName = ""


def _file_meta(ds: Dataset) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian


def ct_series(
    study_uid: str, frame_of_reference: str, positions: list[float | None] | None = None
) -> list[Dataset]:
    """Axial CT slices, 16 x 16 pixels, made with pydicom: at ``positions`` (mm along z; None
    for a slice without Image Position (Patient)), by default 4 slices 2.5 mm apart."""
    series_uid = generate_uid()
    slices = []
    if positions is None:
        positions = [index * 2.5 for index in range(_SLICES)]
    for index, z in enumerate(positions):
        ds = Dataset()
        _patient_study(ds, study_uid, "DERIVED-1")
        ds.SOPClassUID = CT_STORAGE
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID = series_uid
        ds.Modality = "CT"
        ds.SeriesNumber = "1"
        ds.InstanceNumber = str(index + 1)
        ds.FrameOfReferenceUID = frame_of_reference
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        if z is not None:
            ds.ImagePositionPatient = ["0", "0", f"{z:g}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.PixelSpacing = ["0.5", "0.5"]
        ds.SliceThickness = "2.5"
        ds.KVP = "120"
        ds.ConvolutionKernel = "STANDARD"
        ds.XRayTubeCurrent = str(200 + 10 * index)
        ds.ContrastBolusAgent = "Iohexol"
        ds.Rows = _SIZE
        ds.Columns = _SIZE
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = "0"
        ds.RescaleSlope = "1"
        ds.PixelData = np.zeros((_SIZE, _SIZE), dtype=np.int16).tobytes()
        _file_meta(ds)
        slices.append(ds)
    return slices


_LIVER = codes.SCT.Liver
_TISSUE = codes.SCT.Tissue
_ORGAN = codes.SCT.Organ
_LESION = codes.SCT.Lesion
_ABNORMAL = codes.SCT.MorphologicallyAbnormalStructure


def segmentation(ct: list[Dataset]) -> hd.seg.Segmentation:
    """Three segments over the CT: liver (with an anatomic region), and two lesions."""
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test-segmenter", family=codes.DCM.ArtificialIntelligence, version="1"
    )
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=1,
            segment_label="liver",
            segmented_property_category=_TISSUE,
            segmented_property_type=_LIVER,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id="liver",
            anatomic_regions=[codes.SCT.Abdomen],
        ),
        hd.seg.SegmentDescription(
            segment_number=2,
            segment_label="lesion 1",
            segmented_property_category=_ABNORMAL,
            segmented_property_type=_LESION,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=generate_uid(),
            tracking_id="lesion 1",
        ),
        hd.seg.SegmentDescription(
            segment_number=3,
            segment_label="lesion 2",
            segmented_property_category=_ABNORMAL,
            segmented_property_type=_LESION,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
            tracking_uid=generate_uid(),
            tracking_id="lesion 2",
        ),
    ]
    mask = np.zeros((_SLICES, _SIZE, _SIZE), dtype=np.uint8)
    mask[:, 2:14, 2:14] = 1
    mask[1, 4:6, 4:6] = 2
    mask[2, 8:10, 8:10] = 3
    return hd.seg.Segmentation(
        source_images=ct,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="dicomwarehouse tests",
        manufacturer_model_name="derived views",
        software_versions="1",
        device_serial_number="1",
    )


def measurement_report(ct: list[Dataset], seg: hd.seg.Segmentation) -> hd.sr.Comprehensive3DSR:
    """TID 1500: a volumetric group per lesion segment (findings, finding sites with
    laterality, measurements with a derivation, qualitative evaluations) and one group with no
    region or segment reference."""
    groups: list = []
    sizes = ((2, 1.5, 2.25), (3, 0.000123456, 70.588235294118))
    for number, volume, diameter in sizes:
        reference = hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID,
            sop_instance_uid=seg.SOPInstanceUID,
            segment_number=number,
            source_series=hd.sr.SourceSeriesForSegmentation(ct[0].SeriesInstanceUID),
        )
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"lesion {number - 1}"
                ),
                referenced_segment=reference,
                finding_type=_LESION,
                finding_sites=[hd.sr.FindingSite(_LIVER, laterality=codes.SCT.Right)],
                measurements=[
                    hd.sr.Measurement(
                        name=codes.SCT.Volume,
                        value=volume,
                        unit=codes.UCUM.CubicMillimeter,
                    ),
                    hd.sr.Measurement(
                        name=codes.SCT.Diameter,
                        value=diameter,
                        unit=codes.UCUM.Millimeter,
                        derivation=codes.SCT.Maximum,
                    ),
                ],
                qualitative_evaluations=[
                    hd.sr.QualitativeEvaluation(
                        name=hd.sr.CodedConcept("129715009", "SCT", "Margin"),
                        value=hd.sr.CodedConcept("129718006", "SCT", "Spiculated"),
                    ),
                ],
            )
        )
    groups.append(
        hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="whole"),
            finding_type=_ORGAN,
            measurements=[
                hd.sr.Measurement(
                    name=codes.SCT.Volume, value=1234.5, unit=codes.UCUM.CubicMillimeter
                )
            ],
            qualitative_evaluations=[
                hd.sr.QualitativeEvaluation(
                    name=hd.sr.CodedConcept("129715009", "SCT", "Margin"),
                    value=hd.sr.CodedConcept("129717001", "SCT", "Circumscribed"),
                ),
                hd.sr.QualitativeEvaluation(
                    name=hd.sr.CodedConcept("129716005", "SCT", "Shape"),
                    value=hd.sr.CodedConcept("112233002", "SCT", "Ovoid"),
                ),
            ],
        )
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(
            name="Reader^One"
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion,
        imaging_measurements=groups,
    )
    return hd.sr.Comprehensive3DSR(
        evidence=[*ct, seg],
        content=report,
        series_instance_uid=generate_uid(),
        series_number=3,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="dicomwarehouse tests",
    )


def rt_structure_set(ct: list[Dataset]) -> Dataset:
    """An RTSTRUCT with three ROIs over the CT: two with contours and observations, one with
    neither (pydicom: there is no RT writer in highdicom)."""
    first = ct[0]
    ds = Dataset()
    _patient_study(ds, first.StudyInstanceUID, first.PatientID)
    ds.SOPClassUID = RTSTRUCT_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "RTSTRUCT"
    ds.SeriesNumber = "4"
    ds.StructureSetLabel = "test structures"
    ds.StructureSetDate = "20240101"
    ds.StructureSetTime = "120000"

    referenced_series = Dataset()
    referenced_series.SeriesInstanceUID = first.SeriesInstanceUID
    referenced_series.ContourImageSequence = Sequence([_image_reference(image) for image in ct])
    referenced_study = Dataset()
    referenced_study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    referenced_study.ReferencedSOPInstanceUID = first.StudyInstanceUID
    referenced_study.RTReferencedSeriesSequence = Sequence([referenced_series])
    frame = Dataset()
    frame.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame.RTReferencedStudySequence = Sequence([referenced_study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])

    rois, contours, observations = [], [], []
    for number, name, algorithm, kind, slices in (
        (1, "External", "AUTOMATIC", "EXTERNAL", [0, 1, 2, 3]),
        (2, "GTV", "MANUAL", "GTV", [1, 2]),
        (3, "Marker", "SEMIAUTOMATIC", None, []),
    ):
        roi = Dataset()
        roi.ROINumber = str(number)
        roi.ReferencedFrameOfReferenceUID = first.FrameOfReferenceUID
        roi.ROIName = name
        roi.ROIGenerationAlgorithm = algorithm
        rois.append(roi)
        if not slices:
            continue
        roi_contour = Dataset()
        roi_contour.ReferencedROINumber = str(number)
        roi_contour.ROIDisplayColor = ["255", "0", "0"]
        roi_contour.ContourSequence = Sequence([_contour(ct[index]) for index in slices])
        contours.append(roi_contour)
        observation = Dataset()
        observation.ObservationNumber = str(number)
        observation.ReferencedROINumber = str(number)
        observation.RTROIInterpretedType = kind
        observation.ROIInterpreter = ""
        observations.append(observation)
    ds.StructureSetROISequence = Sequence(rois)
    ds.ROIContourSequence = Sequence(contours)
    ds.RTROIObservationsSequence = Sequence(observations)
    _file_meta(ds)
    return ds


def _image_reference(image: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = image.SOPClassUID
    item.ReferencedSOPInstanceUID = image.SOPInstanceUID
    return item


def _contour(image: Dataset) -> Dataset:
    z = image.ImagePositionPatient[2]
    contour = Dataset()
    contour.ContourImageSequence = Sequence([_image_reference(image)])
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = "4"
    contour.ContourData = ["1", "1", z, "6", "1", z, "6", "6", z, "1", "6", z]
    return contour


def _code_item(code: hd.sr.CodedConcept) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _preparation_step(concept: hd.sr.CodedConcept, value: hd.sr.CodedConcept) -> Dataset:
    item = Dataset()
    item.ValueType = "CODE"
    item.ConceptNameCodeSequence = Sequence([_code_item(concept)])
    item.ConceptCodeSequence = Sequence([_code_item(value)])
    step = Dataset()
    step.SpecimenPreparationStepContentItemSequence = Sequence([item])
    return step


STAINING = hd.sr.CodedConcept("424361007", "SCT", "Using substance")
FIXATIVE = hd.sr.CodedConcept("430864009", "SCT", "Tissue Fixative")
EMBEDDING = hd.sr.CodedConcept("430863003", "SCT", "Embedding medium")


def slide_image(study_uid: str) -> Dataset:
    """A VL Whole Slide Microscopy image (one 16 x 16 tile) with specimen preparation steps
    (staining with two substances, a fixative, an embedding medium), made with pydicom."""
    ds = Dataset()
    _patient_study(ds, study_uid, "DERIVED-2")
    ds.SOPClassUID = SM_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = "SM"
    ds.SeriesNumber = "1"
    ds.InstanceNumber = "1"
    ds.FrameOfReferenceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    ds.ContainerIdentifier = "SLIDE-1"
    ds.DimensionOrganizationType = "TILED_FULL"
    ds.TotalPixelMatrixRows = 48
    ds.TotalPixelMatrixColumns = 32
    ds.Rows = _SIZE
    ds.Columns = _SIZE
    ds.NumberOfFrames = "6"
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.ImagedVolumeWidth = 0.016
    ds.ImagedVolumeHeight = 0.024
    ds.ImagedVolumeDepth = 0.001
    ds.TotalPixelMatrixOriginSequence = Sequence([Dataset()])
    ds.TotalPixelMatrixOriginSequence[0].XOffsetInSlideCoordinateSystem = "0"
    ds.TotalPixelMatrixOriginSequence[0].YOffsetInSlideCoordinateSystem = "0"
    ds.ImageOrientationSlide = ["0", "-1", "0", "-1", "0", "0"]
    measures = Dataset()
    measures.PixelSpacing = ["0.000493", "0.000493"]
    measures.SliceThickness = "0.001"
    shared = Dataset()
    shared.PixelMeasuresSequence = Sequence([measures])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    optical_path = Dataset()
    optical_path.OpticalPathIdentifier = "1"
    optical_path.ObjectiveLensPower = "20"
    optical_path.IlluminationTypeCodeSequence = Sequence(
        [_code_item(hd.sr.CodedConcept("111744", "DCM", "Brightfield illumination"))]
    )
    ds.OpticalPathSequence = Sequence([optical_path])
    ds.NumberOfOpticalPaths = 1
    description = Dataset()
    description.SpecimenIdentifier = "S1"
    description.SpecimenUID = generate_uid()
    description.PrimaryAnatomicStructureSequence = Sequence([_code_item(codes.SCT.Liver)])
    description.SpecimenPreparationSequence = Sequence(
        [
            _preparation_step(STAINING, hd.sr.CodedConcept("12710003", "SCT", "hematoxylin")),
            _preparation_step(STAINING, hd.sr.CodedConcept("36879007", "SCT", "eosin")),
            _preparation_step(FIXATIVE, hd.sr.CodedConcept("431510009", "SCT", "Formalin")),
            _preparation_step(EMBEDDING, hd.sr.CodedConcept("311731000", "SCT", "Paraffin wax")),
        ]
    )
    ds.SpecimenDescriptionSequence = Sequence([description])
    ds.PixelData = np.zeros((6, _SIZE, _SIZE, 3), dtype=np.uint8).tobytes()
    _file_meta(ds)
    return ds


def bulk_annotations(slide: Dataset) -> hd.ann.MicroscopyBulkSimpleAnnotations:
    """Two annotation groups on the slide: three points (nuclei) and two polygons (tumour
    regions), one group with an algorithm."""
    algorithm = hd.AlgorithmIdentificationSequence(
        name="test-detector", family=codes.DCM.ArtificialIntelligence, version="1"
    )
    nuclei = hd.ann.AnnotationGroup(
        number=1,
        uid=generate_uid(),
        label="nuclei",
        annotated_property_category=_ABNORMAL,
        annotated_property_type=codes.SCT.Nucleus,
        graphic_type=hd.ann.GraphicTypeValues.POINT,
        graphic_data=[np.array([[1.0, 1.0]]), np.array([[2.0, 3.0]]), np.array([[4.0, 4.0]])],
        algorithm_type=hd.ann.AnnotationGroupGenerationTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
    )
    regions = hd.ann.AnnotationGroup(
        number=2,
        uid=generate_uid(),
        label="tumour",
        annotated_property_category=_ABNORMAL,
        annotated_property_type=codes.SCT.Neoplasm,
        graphic_type=hd.ann.GraphicTypeValues.POLYGON,
        graphic_data=[
            np.array([[1.0, 1.0], [5.0, 1.0], [5.0, 5.0]]),
            np.array([[6.0, 6.0], [9.0, 6.0], [9.0, 9.0], [6.0, 9.0]]),
        ],
        algorithm_type=hd.ann.AnnotationGroupGenerationTypeValues.MANUAL,
    )
    return hd.ann.MicroscopyBulkSimpleAnnotations(
        source_images=[slide],
        annotation_coordinate_type=hd.ann.AnnotationCoordinateTypeValues.SCOORD,
        annotation_groups=[nuclei, regions],
        series_instance_uid=generate_uid(),
        series_number=2,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="dicomwarehouse tests",
        manufacturer_model_name="derived views",
        software_versions="1",
        device_serial_number="1",
    )


def write_objects(folder: Path) -> dict[str, list[Path]]:
    """Make every object into ``folder``; returns the files by kind (ct, irregular_ct, seg,
    sr, rtstruct, sm, ann)."""
    study_uid = generate_uid()
    ct = ct_series(study_uid, generate_uid())
    seg = segmentation(ct)
    sr = measurement_report(ct, seg)
    rtstruct = rt_structure_set(ct)
    slide = slide_image(generate_uid())
    ann = bulk_annotations(slide)
    # a series with a duplicate position, a gap of one slice and a slice without a position
    irregular = ct_series(study_uid, ct[0].FrameOfReferenceUID, [0.0, 2.5, 2.5, 7.5, None])
    files: dict[str, list[Path]] = {
        "ct": [_write(image, folder / f"ct{index}.dcm") for index, image in enumerate(ct)],
        "irregular_ct": [
            _write(image, folder / f"irregular{index}.dcm") for index, image in enumerate(irregular)
        ],
        "seg": [_write(seg, folder / "seg.dcm")],
        "sr": [_write(sr, folder / "sr.dcm")],
        "rtstruct": [_write(rtstruct, folder / "rtstruct.dcm")],
        "sm": [_write(slide, folder / "sm.dcm")],
        "ann": [_write(ann, folder / "ann.dcm")],
    }
    return files
