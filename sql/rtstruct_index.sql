-- One row per RT Structure Set series that has at least one ROI, in the manner of
-- idc-index-data's rtstruct_index: how many ROIs, their names, generation algorithms and
-- interpreted types, and the series the structures were drawn on, rolled up from
-- rtstruct_rois.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the RTSTRUCT series, the key.
-- total_rois: number of distinct ROI numbers in the series.
-- ROINames: distinct ROI Names (3006,0026), sorted.
-- ROIGenerationAlgorithms: distinct ROI Generation Algorithms (3006,0036), sorted.
-- RTROIInterpretedTypes: distinct RT ROI Interpreted Types (3006,00A4), sorted.
-- referenced_SeriesInstanceUID: series the structure sets reference (one of them).
-- instance_count: number of distinct structure set objects in the series.
-- contour_count: number of contours over all ROIs of the series.

SELECT
  SeriesInstanceUID,
  COUNT(DISTINCT ROINumber) AS total_rois,
  ARRAY_AGG(DISTINCT ROIName IGNORE NULLS ORDER BY ROIName) AS ROINames,
  ARRAY_AGG(DISTINCT ROIGenerationAlgorithm IGNORE NULLS ORDER BY ROIGenerationAlgorithm)
    AS ROIGenerationAlgorithms,
  ARRAY_AGG(DISTINCT RTROIInterpretedType IGNORE NULLS ORDER BY RTROIInterpretedType)
    AS RTROIInterpretedTypes,
  ANY_VALUE(referenced_SeriesInstanceUID) AS referenced_SeriesInstanceUID,
  COUNT(DISTINCT SOPInstanceUID) AS instance_count,
  SUM(contour_count) AS contour_count
FROM rtstruct_rois
GROUP BY SeriesInstanceUID
