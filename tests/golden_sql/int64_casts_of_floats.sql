-- BigQuery casts FLOAT64 and NUMERIC to INT64 to the closest integer, halfway cases away from
-- zero (Conversion rules: "1.5 or -0.5 round away from zero"); CAST of an INT64 is itself.
-- expect: [2.5, 3, 3, 3]
-- expect: [-2.5, -3, -3, -3]
-- expect: [1.25, 1, 1, 1]
-- expect: [1234.5678, 1235, 1235, 1235]
-- expect: [0.125, 0, 0, 0]
SELECT
  x,
  CAST(x AS INT64),
  SAFE_CAST(x AS INT64),
  CAST(CAST(x AS NUMERIC) AS INT64)
FROM numbers
