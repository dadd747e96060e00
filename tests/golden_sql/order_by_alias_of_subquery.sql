-- BigQuery resolves a name in ORDER BY to a SELECT-list alias first, also inside an
-- expression; here the alias holds a subquery (the number of ImageType values).
-- ordered
-- expect: ["ct1", 3]
-- expect: ["ct2", 2]
-- expect: ["ct3", 2]
-- expect: ["seg1", 2]
-- expect: ["mr1", 1]
-- expect: ["sr1", 0]
SELECT
  SOPInstanceUID,
  (SELECT COUNT(*) FROM UNNEST(ImageType)) AS image_type_count
FROM dicom_all
ORDER BY -image_type_count, SOPInstanceUID
