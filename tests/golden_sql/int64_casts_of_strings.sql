-- BigQuery casts a STRING to INT64 only when it is an integer literal (decimal or 0x hex);
-- SAFE_CAST gives NULL otherwise, it does not round (Conversion functions, CAST and SAFE_CAST;
-- Conversion rules). A FLOAT64 casts to INT64 rounding half away from zero.
-- expect: ["12", 12, 12]
-- expect: ["1.5", null, 2]
-- expect: ["2.5", null, 3]
-- expect: ["1e3", null, 1000]
-- expect: ["0x1F", 31, null]
-- expect: ["abc", null, null]
-- expect: [null, null, null]
SELECT
  text,
  SAFE_CAST(text AS INT64),
  SAFE_CAST(SAFE_CAST(text AS FLOAT64) AS INT64)
FROM UNNEST(['12', '1.5', '2.5', '1e3', '0x1F', 'abc', NULL]) AS text
