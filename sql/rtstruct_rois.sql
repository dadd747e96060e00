-- One row per ROI of every RT Structure Set (SOP class 1.2.840.10008.5.1.4.1.1.481.3): each
-- item of Structure Set ROI Sequence, with the interpreted type of its observation (RT ROI
-- Observations Sequence) and the size of its contours (ROI Contour Sequence), matched on the
-- ROI number. An ROI without an observation or without contours is a row too (NULL type, 0
-- contours).
--
-- Columns:
-- PatientID: Patient ID (0010,0020) of the structure set.
-- StudyInstanceUID: Study Instance UID (0020,000D) of the structure set.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the structure set.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the structure set.
-- ROINumber: ROI Number (3006,0022) as INT64: the ROI's key inside its structure set.
-- ROIName: ROI Name (3006,0026).
-- ROIGenerationAlgorithm: ROI Generation Algorithm (3006,0036): AUTOMATIC, SEMIAUTOMATIC or
--   MANUAL.
-- RTROIInterpretedType: RT ROI Interpreted Type (3006,00A4) of the ROI's first observation
--   (such as EXTERNAL, GTV, ORGAN); NULL without an observation.
-- ROIObservationLabel: ROI Observation Label (3006,0085) of that observation.
-- ReferencedFrameOfReferenceUID: Referenced Frame of Reference UID (3006,0024) of the ROI.
-- contour_count: number of contours (items of the ROI's Contour Sequence), 0 without any.
-- contour_point_count: sum of the contours' Number of Contour Points (3006,0046); NULL for an
--   ROI without contours.
-- referenced_SeriesInstanceUID: first series the structure set references (Referenced Frame
--   of Reference Sequence > RT Referenced Study Sequence > RT Referenced Series Sequence).
-- roi_index: 0-based position of the ROI's item in Structure Set ROI Sequence.

WITH

structure_sets AS (
  SELECT
    PatientID,
    StudyInstanceUID,
    SeriesInstanceUID,
    SOPInstanceUID,
    StructureSetROISequence,
    ROIContourSequence,
    RTROIObservationsSequence,
    ReferencedFrameOfReferenceSequence[SAFE_OFFSET(0)]
      .RTReferencedStudySequence[SAFE_OFFSET(0)]
      .RTReferencedSeriesSequence[SAFE_OFFSET(0)].SeriesInstanceUID
      AS referenced_series_uid
  FROM dicom_metadata
  WHERE SOPClassUID = '1.2.840.10008.5.1.4.1.1.481.3'
)

SELECT
  structure_set.PatientID,
  structure_set.StudyInstanceUID,
  structure_set.SeriesInstanceUID,
  structure_set.SOPInstanceUID,
  SAFE_CAST(TRIM(roi.ROINumber) AS INT64) AS ROINumber,
  roi.ROIName,
  roi.ROIGenerationAlgorithm,
  (
    SELECT observation.RTROIInterpretedType
    FROM UNNEST(structure_set.RTROIObservationsSequence) AS observation WITH OFFSET AS position
    WHERE SAFE_CAST(TRIM(observation.ReferencedROINumber) AS INT64)
      = SAFE_CAST(TRIM(roi.ROINumber) AS INT64)
    ORDER BY position
    LIMIT 1
  ) AS RTROIInterpretedType,
  (
    SELECT observation.ROIObservationLabel
    FROM UNNEST(structure_set.RTROIObservationsSequence) AS observation WITH OFFSET AS position
    WHERE SAFE_CAST(TRIM(observation.ReferencedROINumber) AS INT64)
      = SAFE_CAST(TRIM(roi.ROINumber) AS INT64)
    ORDER BY position
    LIMIT 1
  ) AS ROIObservationLabel,
  roi.ReferencedFrameOfReferenceUID,
  (
    SELECT COUNT(*)
    FROM UNNEST(structure_set.ROIContourSequence) AS roi_contour
    CROSS JOIN UNNEST(roi_contour.ContourSequence) AS contour
    WHERE SAFE_CAST(TRIM(roi_contour.ReferencedROINumber) AS INT64)
      = SAFE_CAST(TRIM(roi.ROINumber) AS INT64)
  ) AS contour_count,
  (
    SELECT SUM(SAFE_CAST(TRIM(contour.NumberOfContourPoints) AS INT64))
    FROM UNNEST(structure_set.ROIContourSequence) AS roi_contour
    CROSS JOIN UNNEST(roi_contour.ContourSequence) AS contour
    WHERE SAFE_CAST(TRIM(roi_contour.ReferencedROINumber) AS INT64)
      = SAFE_CAST(TRIM(roi.ROINumber) AS INT64)
  ) AS contour_point_count,
  structure_set.referenced_series_uid AS referenced_SeriesInstanceUID,
  roi_index
FROM structure_sets AS structure_set
CROSS JOIN UNNEST(structure_set.StructureSetROISequence) AS roi WITH OFFSET AS roi_index
