-- BigQuery: LEFT JOIN UNNEST keeps a row whose array is empty or NULL, with NULL for the
-- element and its offset (Work with arrays: "to retain rows with empty arrays use LEFT JOIN").
-- expect: ["ct1", "ORIGINAL", 0]
-- expect: ["ct1", "PRIMARY", 1]
-- expect: ["ct1", "AXIAL", 2]
-- expect: ["sr1", null, null]
SELECT SOPInstanceUID, image_type, image_type_index
FROM dicom_all
LEFT JOIN UNNEST(ImageType) AS image_type WITH OFFSET AS image_type_index
WHERE SOPInstanceUID IN ('ct1', 'sr1')
