-- IDC-compatible name for dicom_metadata: every column of it, DICOM keywords (CamelCase, typed
-- as in the Cloud Healthcare API BigQuery export behind IDC's dicom_all) and provenance columns
-- (source_url, source_size, ingest_run_id, ...), so that SQL written for IDC's dicom_all runs
-- unchanged. Three columns are added under the names of IDC's provenance columns, as this
-- archive's equivalents: gcs_url is source_url when it is a gs:// URL (NULL otherwise), aws_url
-- is source_url when it is an s3:// URL (NULL otherwise), instance_size is source_size (the
-- object's size in bytes). Manifest columns are dicom_metadata columns under their own names,
-- such as collection_id, which every run has (NULL when no manifest gave it), and IDC's
-- crdc_study_uuid, crdc_series_uuid and crdc_instance_uuid, which every run has too (from a
-- manifest's column of that name; the series and instance ones otherwise from an object URL in
-- IDC's layout, <series uuid>/<instance uuid>.dcm; NULL otherwise); a manifest column
-- named gcs_url, aws_url or instance_size is renamed (manifest_gcs_url, ...) so that it cannot
-- collide with these.
--
-- Columns: those of dicom_metadata, then gcs_url, aws_url and instance_size.

SELECT
  *,
  IF(STARTS_WITH(source_url, 'gs://'), source_url, NULL) AS gcs_url,
  IF(STARTS_WITH(source_url, 's3://'), source_url, NULL) AS aws_url,
  source_size AS instance_size
FROM dicom_metadata
