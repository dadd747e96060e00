-- BigQuery ROUND(X, N) rounds to N decimal places (N < 0: to the left of the decimal point);
-- halfway cases are rounded away from zero (Mathematical functions, ROUND). N here is an
-- INT64 column, so the translation cannot rely on a literal.
-- expect: [2.5, 0, 3.0]
-- expect: [-2.5, 0, -3.0]
-- expect: [1.25, 1, 1.3]
-- expect: [1234.5678, -2, 1200.0]
-- expect: [0.125, 2, 0.13]
SELECT x, digits, ROUND(x, digits) AS rounded FROM numbers
