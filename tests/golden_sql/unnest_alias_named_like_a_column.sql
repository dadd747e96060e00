-- The range variable imageType differs from the column ImageType only in case: BigQuery
-- names are case-insensitive and, in the SELECT and WHERE of this FROM clause, the name is the
-- range variable (one value of ImageType), not the column (the whole array).
-- expect: ["ct3", "DERIVED", 0]
-- expect: ["seg1", "DERIVED", 0]
SELECT SOPInstanceUID, imageType, position
FROM dicom_all, UNNEST(ImageType) AS imageType WITH OFFSET AS position
WHERE imageType = 'DERIVED'
