-- In ORDER BY a bare name is a SELECT-list alias before it is anything else (Query syntax,
-- ORDER BY clause: it may reference aliases of the SELECT list). Here the alias value
-- (SOPInstanceUID) is also the name of the UNNEST range variable; rows are ordered by the
-- alias, descending.
-- ordered
-- expect: ["ct2", "ORIGINAL"]
-- expect: ["ct1", "ORIGINAL"]
SELECT SOPInstanceUID AS value, value AS image_type
FROM dicom_all, UNNEST(ImageType) AS value WITH OFFSET AS position
WHERE Modality = 'CT' AND position = 0 AND value = 'ORIGINAL'
ORDER BY value DESC
