-- IDC-compatible name for dicom_metadata: every column of it, DICOM keywords (CamelCase, typed
-- as in the Cloud Healthcare API BigQuery export behind IDC's dicom_all) and provenance columns
-- (source_url, source_size, ingest_run_id, ...), so that SQL written for IDC's dicom_all runs
-- unchanged. No alias columns are added (such as IDC's gcs_url): manifest columns are copied
-- into dicom_metadata as they come, so an added name could collide with one of them and break
-- the view.
--
-- Columns: those of dicom_metadata.

SELECT
  *
FROM dicom_metadata
