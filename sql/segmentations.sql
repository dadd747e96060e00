-- One row per segment of every Segmentation object (SOP class 1.2.840.10008.5.1.4.1.1.66.4):
-- the IDC view of the same name, with its column names, so that IDC's queries over
-- `segmentations` run here. Each item of SegmentSequence is one row (every item, not the
-- first only); a segment whose codes are absent has NULL there rather than being dropped. The
-- segmented series is the series the SEG references in ReferencedSeriesSequence, else the
-- series of the first image it references (ReferencedSeriesSequence, ReferencedImageSequence,
-- SourceImageSequence, in that order) when that image is in the warehouse.
--
-- Columns:
-- PatientID: Patient ID (0010,0020) of the SEG.
-- StudyInstanceUID: Study Instance UID (0020,000D) of the SEG.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the SEG.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the SEG.
-- FrameOfReferenceUID: Frame of Reference UID (0020,0052) of the SEG.
-- SegmentationType: Segmentation Type (0062,0001): BINARY, FRACTIONAL or LABELMAP.
-- AnatomicRegion: first item of the segment's Anatomic Region Sequence (0008,2218) as
--   STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>; NULL when it has none.
-- AnatomicRegionModifier: first item of the Anatomic Region Modifier Sequence (0008,2220)
--   inside that region item, as STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>; NULL
--   when it has none.
-- SegmentedPropertyCategory: first item of Segmented Property Category Code Sequence
--   (0062,0003) as STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>: what kind of
--   thing the segment is (such as Tissue, Morphologically Abnormal Structure).
-- SegmentedPropertyType: first item of Segmented Property Type Code Sequence (0062,000F) as
--   STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>: what the segment is (such as
--   Liver, Neoplasm).
-- SegmentAlgorithmType: Segment Algorithm Type (0062,0008): AUTOMATIC, SEMIAUTOMATIC or
--   MANUAL.
-- SegmentAlgorithmName: first value of Segment Algorithm Name (0062,0009).
-- SegmentNumber: Segment Number (0062,0004), the segment's number inside its SEG.
-- TrackingUID: Tracking UID (0062,0021) of the segment.
-- TrackingID: Tracking ID (0062,0020) of the segment.
-- SegmentLabel: Segment Label (0062,0005), the segment's name as its creator gave it.
-- segment_index: 0-based position of the segment's item in SegmentSequence.
-- segmented_SeriesInstanceUID: Series Instance UID of the images the SEG was made from, NULL
--   when the SEG names no series and none of its referenced images is in the warehouse.
-- viewer_url: IDC's link to its image viewer; always NULL here (this archive has no viewer),
--   present so that queries selecting it bind.

WITH

segmentation_objects AS (
  -- every SEG object, with the first images it says it was derived from
  SELECT
    PatientID,
    StudyInstanceUID,
    SeriesInstanceUID,
    SOPInstanceUID,
    FrameOfReferenceUID,
    SegmentationType,
    SegmentSequence,
    ReferencedSeriesSequence[SAFE_OFFSET(0)].SeriesInstanceUID AS referenced_series_uid,
    COALESCE(
      ReferencedSeriesSequence[SAFE_OFFSET(0)]
        .ReferencedInstanceSequence[SAFE_OFFSET(0)].ReferencedSOPInstanceUID,
      ReferencedImageSequence[SAFE_OFFSET(0)].ReferencedSOPInstanceUID,
      SourceImageSequence[SAFE_OFFSET(0)].ReferencedSOPInstanceUID
    ) AS referenced_sop_uid
  FROM dicom_metadata
  WHERE SOPClassUID = '1.2.840.10008.5.1.4.1.1.66.4'
)

SELECT
  seg.PatientID,
  seg.StudyInstanceUID,
  seg.SeriesInstanceUID,
  seg.SOPInstanceUID,
  seg.FrameOfReferenceUID,
  seg.SegmentationType,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(segment.AnatomicRegionSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS AnatomicRegion,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM
      UNNEST(segment.AnatomicRegionSequence[SAFE_OFFSET(0)].AnatomicRegionModifierSequence)
        AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS AnatomicRegionModifier,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(segment.SegmentedPropertyCategoryCodeSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS SegmentedPropertyCategory,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(segment.SegmentedPropertyTypeCodeSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS SegmentedPropertyType,
  segment.SegmentAlgorithmType,
  segment.SegmentAlgorithmName[SAFE_OFFSET(0)] AS SegmentAlgorithmName,
  segment.SegmentNumber,
  segment.TrackingUID,
  segment.TrackingID,
  segment.SegmentLabel,
  segment_index,
  COALESCE(seg.referenced_series_uid, source_image.SeriesInstanceUID)
    AS segmented_SeriesInstanceUID,
  CAST(NULL AS STRING) AS viewer_url
FROM segmentation_objects AS seg
CROSS JOIN UNNEST(seg.SegmentSequence) AS segment WITH OFFSET AS segment_index
LEFT JOIN instances AS source_image
  ON source_image.SOPInstanceUID = seg.referenced_sop_uid
