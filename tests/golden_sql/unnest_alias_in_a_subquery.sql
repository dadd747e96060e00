-- A range variable of a correlated subquery's UNNEST, named like the outer column up to case.
-- expect: ["ct3"]
-- expect: ["seg1"]
SELECT SOPInstanceUID
FROM dicom_all
WHERE EXISTS (SELECT 1 FROM UNNEST(ImageType) AS imageType WHERE imageType = 'DERIVED')
