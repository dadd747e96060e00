-- One row per Segmentation series that has at least one segment, in the manner of
-- idc-index-data's seg_index: the series' segmentation type, how many segments it has, the
-- algorithms and the codes of what was segmented, rolled up from the segmentations view.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the SEG series, the key.
-- SegmentationType: Segmentation Type (0062,0001) of the series' objects (one of them).
-- total_segments: number of distinct segment numbers in the series.
-- AlgorithmType: the distinct Segment Algorithm Types (0062,0008), sorted, comma-separated.
-- AlgorithmName: the distinct first values of Segment Algorithm Name (0062,0009), sorted,
--   comma-separated.
-- segmented_SeriesInstanceUID: series the segmentation was made from (one of them, see
--   segmentations).
-- SegmentedPropertyCategory_CodeMeanings: distinct code meanings of the segments' property
--   categories, sorted.
-- SegmentedPropertyType_CodeMeanings: distinct code meanings of the segments' property types,
--   sorted.
-- AnatomicRegion_CodeMeanings: distinct code meanings of the segments' anatomic regions,
--   sorted.
-- instance_count: number of distinct SEG objects (SOPInstanceUIDs) in the series.

SELECT
  SeriesInstanceUID,
  ANY_VALUE(SegmentationType) AS SegmentationType,
  COUNT(DISTINCT SegmentNumber) AS total_segments,
  STRING_AGG(DISTINCT SegmentAlgorithmType, ',' ORDER BY SegmentAlgorithmType) AS AlgorithmType,
  STRING_AGG(DISTINCT SegmentAlgorithmName, ',' ORDER BY SegmentAlgorithmName) AS AlgorithmName,
  ANY_VALUE(segmented_SeriesInstanceUID) AS segmented_SeriesInstanceUID,
  ARRAY_AGG(
    DISTINCT SegmentedPropertyCategory.CodeMeaning IGNORE NULLS
    ORDER BY SegmentedPropertyCategory.CodeMeaning
  ) AS SegmentedPropertyCategory_CodeMeanings,
  ARRAY_AGG(
    DISTINCT SegmentedPropertyType.CodeMeaning IGNORE NULLS
    ORDER BY SegmentedPropertyType.CodeMeaning
  ) AS SegmentedPropertyType_CodeMeanings,
  ARRAY_AGG(
    DISTINCT AnatomicRegion.CodeMeaning IGNORE NULLS ORDER BY AnatomicRegion.CodeMeaning
  ) AS AnatomicRegion_CodeMeanings,
  COUNT(DISTINCT SOPInstanceUID) AS instance_count
FROM segmentations
GROUP BY SeriesInstanceUID
