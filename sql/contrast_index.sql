-- One row per CT, MR, PT, XA or RF series whose objects name a contrast agent, in the manner
-- of idc-index-data's contrast_index: the distinct contrast or bolus agents, ingredients and
-- routes of the series. A series without any of the three attributes has no row.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- ContrastBolusAgent: distinct Contrast/Bolus Agents (0018,0010) of the series, sorted (NULL
--   when none of its objects has one; likewise below).
-- ContrastBolusIngredient: distinct Contrast/Bolus Ingredients (0018,1048), sorted.
-- ContrastBolusRoute: distinct Contrast/Bolus Routes (0018,1040), sorted.
-- Modality: Modality (0008,0060) of the series (one of its objects').

WITH

contrast AS (
  SELECT
    SeriesInstanceUID,
    ARRAY_AGG(DISTINCT ContrastBolusAgent IGNORE NULLS ORDER BY ContrastBolusAgent)
      AS ContrastBolusAgent,
    ARRAY_AGG(DISTINCT ContrastBolusIngredient IGNORE NULLS ORDER BY ContrastBolusIngredient)
      AS ContrastBolusIngredient,
    ARRAY_AGG(DISTINCT ContrastBolusRoute IGNORE NULLS ORDER BY ContrastBolusRoute)
      AS ContrastBolusRoute,
    ANY_VALUE(Modality) AS Modality
  FROM dicom_metadata
  WHERE Modality IN ('CT', 'MR', 'PT', 'XA', 'RF')
  GROUP BY SeriesInstanceUID
)

SELECT
  *
FROM contrast
WHERE
  ARRAY_LENGTH(ContrastBolusAgent) > 0
  OR ARRAY_LENGTH(ContrastBolusIngredient) > 0
  OR ARRAY_LENGTH(ContrastBolusRoute) > 0
