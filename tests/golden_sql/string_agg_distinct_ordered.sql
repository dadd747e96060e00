-- BigQuery STRING_AGG(DISTINCT x, sep ORDER BY x) concatenates the distinct non-NULL values in
-- order; NULL values are ignored, and a group with only NULLs gives NULL (Aggregate functions,
-- STRING_AGG).
-- expect: ["st1", "CT, SEG, SR"]
-- expect: ["st2", null]
SELECT
  StudyInstanceUID,
  STRING_AGG(DISTINCT Modality, ', ' ORDER BY Modality) AS modalities
FROM dicom_all
GROUP BY StudyInstanceUID
