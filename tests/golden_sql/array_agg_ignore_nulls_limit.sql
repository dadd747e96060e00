-- BigQuery ARRAY_AGG(x IGNORE NULLS ORDER BY ... LIMIT n): NULLs are excluded from the result,
-- then the first n values in order are kept (Aggregate functions, ARRAY_AGG). In descending
-- SOPInstanceUID order the values are SR, SEG, NULL (mr1), CT, CT, CT.
-- expect: [["SR", "SEG", "CT"]]
SELECT ARRAY_AGG(Modality IGNORE NULLS ORDER BY SOPInstanceUID DESC LIMIT 3) FROM dicom_all
