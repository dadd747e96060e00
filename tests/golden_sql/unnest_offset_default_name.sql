-- BigQuery: without an alias, the WITH OFFSET column is named "offset" and counts from zero
-- (Query syntax, UNNEST operator). SELECT * shows the value and the offset columns.
-- ordered
-- expect: ["a", 0]
-- expect: ["b", 1]
-- expect: ["c", 2]
SELECT * FROM UNNEST(['a', 'b', 'c']) AS letter WITH OFFSET ORDER BY 2
