-- BigQuery: "WITH OFFSET ... returns an additional column ... the offset value for each row
-- produced by the UNNEST operation. The offset starts at zero." (Query syntax, UNNEST
-- operator.) The first three values of ImageOrientationPatient are the row direction cosines,
-- so offsets 0, 1, 2 select three values, not two.
-- ordered
-- expect: ["ct1", [1.0, 0.0, 0.0], [0, 1, 2]]
-- expect: ["ct2", [1.0, 0.0, 0.0], [0, 1, 2]]
SELECT
  SOPInstanceUID,
  ARRAY_AGG(SAFE_CAST(value AS FLOAT64) ORDER BY position) AS row_cosines,
  ARRAY_AGG(position ORDER BY position) AS positions
FROM dicom_all
CROSS JOIN UNNEST(ImageOrientationPatient) AS value WITH OFFSET AS position
WHERE position < 3
GROUP BY SOPInstanceUID
ORDER BY SOPInstanceUID
