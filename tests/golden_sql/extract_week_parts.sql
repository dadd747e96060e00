-- BigQuery EXTRACT (Date functions): DAYOFWEEK is 1 (Sunday) to 7 (Saturday); WEEK counts weeks
-- starting on Sunday, dates before the year's first Sunday in week 0; WEEK(MONDAY) likewise
-- from the first Monday; ISOWEEK is the ISO 8601 week. 2024-01-01 is a Monday, 2024-01-07 a
-- Sunday, 2023-01-01 a Sunday (ISO week 52 of 2022).
-- expect: ["2024-01-01", 2, 0, 1, 1]
-- expect: ["2024-01-06", 7, 0, 1, 1]
-- expect: ["2024-01-07", 1, 1, 1, 1]
-- expect: ["2023-01-01", 1, 1, 0, 52]
SELECT
  day,
  EXTRACT(DAYOFWEEK FROM day),
  EXTRACT(WEEK FROM day),
  EXTRACT(WEEK(MONDAY) FROM day),
  EXTRACT(ISOWEEK FROM day)
FROM UNNEST([DATE '2024-01-01', DATE '2024-01-06', DATE '2024-01-07', DATE '2023-01-01']) AS day
