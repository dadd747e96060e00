-- BigQuery NUMERIC is a decimal of precision 38 and scale 9; a value with more fractional
-- digits is rounded half away from zero to 9 digits (Data types, Numeric types; Conversion
-- rules). SAFE_CAST of a string that is not a number is NULL. BIGNUMERIC keeps 70.588235294118
-- exactly (here DECIMAL(38, 18), the documented choice for DuckDB).
-- expect: ["ct1", "70.588235294", "70.588235294118"]
-- expect: ["ct2", "0.000000001", "0.0000000005"]
-- expect: ["ct3", null, null]
-- expect: ["mr1", "3", "3"]
SELECT
  SOPInstanceUID,
  SAFE_CAST(SliceThickness AS NUMERIC) AS thickness,
  SAFE_CAST(SliceThickness AS BIGNUMERIC) AS thickness_big
FROM dicom_all
WHERE SliceThickness IS NOT NULL
