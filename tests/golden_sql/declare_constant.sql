-- A script that declares constants and then queries (BigQuery scripting, DECLARE: the
-- variable holds DEFAULT's value, of the declared type, in the statements after it).
DECLARE tolerance FLOAT64 DEFAULT 0.5;
DECLARE low, high INT64 DEFAULT 1;
-- expect: [1.25, 1, 1, 0.5]
SELECT x, low, high, tolerance FROM numbers WHERE ABS(x - 1) < tolerance
