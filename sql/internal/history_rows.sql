-- Every committed run's rows of one table (dicom_metadata, dicom_elements or ingest_errors),
-- each with is_current: true when the row is in the current-state table (it is from its
-- source_url's latest run, as current_objects picks it). DuckDB only: there the history
-- tables are views over the Parquet of every committed run, so the column costs nothing; in
-- BigQuery they are loaded tables without it. One text serves the three tables: table_history
-- stands for the table's rows of every run, and the loader names the real table in its place.
--
-- Columns: those of the table, then is_current.

SELECT
  history.*,
  latest.source_url IS NOT NULL AS is_current
FROM table_history AS history
LEFT JOIN current_objects AS latest
  ON history.source_url = latest.source_url
  AND history.ingest_run_id = latest.ingest_run_id
