-- The current rows of one table (dicom_metadata, dicom_elements or ingest_errors): the rows of
-- its history from each current source_url's latest run, as current_objects picks it. One
-- text serves the three tables: table_history stands for the table's every-run rows, and the
-- loader names the real table in its place.
--
-- Columns: those of the table.

SELECT history.*
FROM table_history AS history
JOIN current_objects AS latest
  ON history.source_url = latest.source_url
  AND history.ingest_run_id = latest.ingest_run_id
