-- A FROM item that is a path to an array of an earlier item (d.ImageType) is an implicit
-- UNNEST, one row per element (Query syntax, correlated join; UNNEST operator).
-- expect: ["ct1", "AXIAL"]
SELECT d.SOPInstanceUID, image_type
FROM dicom_all AS d, d.ImageType AS image_type
WHERE image_type = 'AXIAL'
