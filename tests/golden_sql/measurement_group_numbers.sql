-- A TID 1500 walk in the style of IDC's measurement_groups: the level-2 items of the
-- "Imaging Measurements" container, numbered by WITH OFFSET (from zero), where the UNNEST
-- range variable contentSequence is also the name of a column of the CTE (BigQuery compares
-- names without case and resolves the name to the range variable). Items 0, 1 and 3 are
-- measurement groups; item 2 is a TEXT item.
-- ordered
-- expect: ["sr1", 0, "Measurement Group"]
-- expect: ["sr1", 1, "Measurement Group"]
-- expect: ["sr1", 3, "Measurement Group"]
WITH
  level1 AS (
    SELECT SOPInstanceUID, contentSequence
    FROM `bigquery-public-data.idc_current.dicom_all`
    CROSS JOIN UNNEST(ContentSequence) AS contentSequence
    WHERE contentSequence.ValueType = 'CONTAINER'
  )
SELECT
  SOPInstanceUID,
  measurementGroup_number,
  contentSequence.ConceptNameCodeSequence[OFFSET(0)].CodeMeaning AS meaning
FROM level1
CROSS JOIN UNNEST(contentSequence.ContentSequence) AS contentSequence
  WITH OFFSET AS measurementGroup_number
WHERE contentSequence.ValueType = 'CONTAINER'
  AND contentSequence.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeMeaning = 'Measurement Group'
ORDER BY measurementGroup_number
