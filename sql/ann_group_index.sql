-- One row per annotation group (item of Annotation Group Sequence) of every Microscopy Bulk
-- Simple Annotations object (SOP class 1.2.840.10008.5.1.4.1.1.91.1), in the manner of
-- idc-index-data's ann_group_index: what the group annotates, how many annotations of which
-- graphic type it holds, and the algorithm that made it.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the annotation object.
-- AnnotationGroupNumber: Annotation Group Number (0040,A180).
-- AnnotationGroupUID: Annotation Group UID (006A,0003).
-- AnnotationGroupLabel: Annotation Group Label (006A,0005).
-- AnnotationGroupGenerationType: Annotation Group Generation Type (006A,0007): AUTOMATIC,
--   SEMIAUTOMATIC or MANUAL.
-- NumberOfAnnotations: Number of Annotations (006A,000C) in the group.
-- GraphicType: Graphic Type (0070,0023) of the annotations (POINT, POLYLINE, POLYGON,
--   ELLIPSE, RECTANGLE).
-- AnnotationPropertyCategory_code: CodingSchemeDesignator:CodeValue of the first item of
--   Annotation Property Category Code Sequence (006A,0009).
-- AnnotationPropertyCategory_CodeMeaning: its Code Meaning.
-- AnnotationPropertyType_code: CodingSchemeDesignator:CodeValue of the first item of
--   Annotation Property Type Code Sequence (006A,000A).
-- AnnotationPropertyType_CodeMeaning: its Code Meaning.
-- AlgorithmName: Algorithm Name (0066,0036) of the first item of Annotation Group Algorithm
--   Identification Sequence (006A,000B); NULL for a group made by hand.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the annotation object.
-- group_index: 0-based position of the group's item in Annotation Group Sequence.

SELECT
  ann.SeriesInstanceUID,
  annotation_group.AnnotationGroupNumber,
  annotation_group.AnnotationGroupUID,
  annotation_group.AnnotationGroupLabel,
  annotation_group.AnnotationGroupGenerationType,
  annotation_group.NumberOfAnnotations,
  annotation_group.GraphicType,
  CONCAT(
    annotation_group.AnnotationPropertyCategoryCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator,
    ':',
    annotation_group.AnnotationPropertyCategoryCodeSequence[SAFE_OFFSET(0)].CodeValue
  ) AS AnnotationPropertyCategory_code,
  annotation_group.AnnotationPropertyCategoryCodeSequence[SAFE_OFFSET(0)].CodeMeaning
    AS AnnotationPropertyCategory_CodeMeaning,
  CONCAT(
    annotation_group.AnnotationPropertyTypeCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator,
    ':',
    annotation_group.AnnotationPropertyTypeCodeSequence[SAFE_OFFSET(0)].CodeValue
  ) AS AnnotationPropertyType_code,
  annotation_group.AnnotationPropertyTypeCodeSequence[SAFE_OFFSET(0)].CodeMeaning
    AS AnnotationPropertyType_CodeMeaning,
  annotation_group.AnnotationGroupAlgorithmIdentificationSequence[SAFE_OFFSET(0)].AlgorithmName
    AS AlgorithmName,
  ann.SOPInstanceUID,
  group_index
FROM dicom_metadata AS ann
CROSS JOIN UNNEST(ann.AnnotationGroupSequence) AS annotation_group WITH OFFSET AS group_index
WHERE ann.SOPClassUID = '1.2.840.10008.5.1.4.1.1.91.1'
