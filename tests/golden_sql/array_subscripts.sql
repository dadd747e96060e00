-- BigQuery array subscripts: OFFSET is zero-based, ORDINAL one-based; SAFE_ variants give NULL
-- past the end (Array functions / Operators, array subscript operator). x IN UNNEST(array) is
-- membership.
-- expect: ["ct1", "PRIMARY", "ORIGINAL", null, true]
-- expect: ["ct2", "PRIMARY", "ORIGINAL", null, false]
SELECT
  SOPInstanceUID,
  ImageType[OFFSET(1)],
  ImageType[ORDINAL(1)],
  ImageType[SAFE_OFFSET(3)],
  'AXIAL' IN UNNEST(ImageType)
FROM dicom_all
WHERE Modality = 'CT' AND 'ORIGINAL' IN UNNEST(ImageType)
