-- One row per Microscopy Bulk Simple Annotations object (SOP class
-- 1.2.840.10008.5.1.4.1.1.91.1), in the manner of idc-index-data's ann_index: its coordinate
-- type and the slide series it annotates.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the annotation object.
-- AnnotationCoordinateType: Annotation Coordinate Type (006A,0001): 2D (pixel matrix) or 3D
--   (slide coordinates).
-- referenced_SeriesInstanceUID: Series Instance UID of the first item of Referenced Series
--   Sequence (0008,1115): the annotated image series.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the annotation object.
-- StudyInstanceUID: Study Instance UID (0020,000D) of the annotation object.
-- PatientID: Patient ID (0010,0020) of the annotation object.
-- annotation_group_count: number of items of Annotation Group Sequence (006A,0002), 0 without
--   any.
-- annotation_count: sum of the groups' Number of Annotations (006A,000C).

SELECT
  ann.SeriesInstanceUID,
  ann.AnnotationCoordinateType,
  ann.ReferencedSeriesSequence[SAFE_OFFSET(0)].SeriesInstanceUID AS referenced_SeriesInstanceUID,
  ann.SOPInstanceUID,
  ann.StudyInstanceUID,
  ann.PatientID,
  IFNULL(ARRAY_LENGTH(ann.AnnotationGroupSequence), 0) AS annotation_group_count,
  (
    SELECT SUM(annotation_group.NumberOfAnnotations)
    FROM UNNEST(ann.AnnotationGroupSequence) AS annotation_group
  ) AS annotation_count
FROM dicom_metadata AS ann
WHERE ann.SOPClassUID = '1.2.840.10008.5.1.4.1.1.91.1'
