-- BigQuery ARRAY_AGG(... ORDER BY ... LIMIT n) keeps the first n inputs in that order (Aggregate
-- functions, ARRAY_AGG); [OFFSET(0)] takes the first element. Instance numbers are compared as
-- integers: '1' < '2' < '3'.
-- expect: ["se1", "ct2", "1"]
-- expect: ["se2", "seg1", "1"]
-- expect: ["se3", "sr1", "1"]
-- expect: ["se4", "mr1", "1"]
SELECT
  SeriesInstanceUID,
  ARRAY_AGG(STRUCT(SOPInstanceUID AS uid, InstanceNumber AS number)
    ORDER BY SAFE_CAST(InstanceNumber AS INT64) LIMIT 1)[OFFSET(0)].uid AS first_uid,
  ARRAY_AGG(STRUCT(SOPInstanceUID AS uid, InstanceNumber AS number)
    ORDER BY SAFE_CAST(InstanceNumber AS INT64) LIMIT 1)[OFFSET(0)].number AS first_number
FROM dicom_all
GROUP BY SeriesInstanceUID
