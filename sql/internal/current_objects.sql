-- The current-state rule: for each source_url, the latest ingest run that read it, unless a
-- later run's full listing found it deleted. The current-state tables (dicom_metadata,
-- dicom_elements, ingest_errors) keep only the rows of these (source_url, ingest_run_id)
-- pairs, so re-ingesting an object never doubles a row and every run stays in the history.
--
-- A run read an object when it left a row for it in dicom_metadata_history (the read worked)
-- or in ingest_errors_history (it failed): a failed re-read makes the failure current and the
-- older metadata row history. A deletion is a ledger row (ingest_object_events_history) with
-- outcome 'deleted', written by a run whose full listing lacked the object; a later read
-- brings the object back. Run ids sort by start time, so two runs on one day are ordered too.
--
-- Columns:
-- source_url: URL of a current object.
-- ingest_run_id: The latest ingest run that read it: the run whose rows are current.

WITH produced AS (
  SELECT source_url, MAX(ingest_run_id) AS ingest_run_id
  FROM (
    SELECT source_url, ingest_run_id FROM dicom_metadata_history
    UNION ALL
    SELECT source_url, ingest_run_id FROM ingest_errors_history
  )
  GROUP BY source_url
),
deleted AS (
  SELECT source_url, MAX(ingest_run_id) AS deleted_run_id
  FROM ingest_object_events_history
  WHERE outcome = 'deleted'
  GROUP BY source_url
)
SELECT produced.source_url, produced.ingest_run_id
FROM produced
LEFT JOIN deleted ON deleted.source_url = produced.source_url
WHERE deleted.deleted_run_id IS NULL
  OR deleted.deleted_run_id < produced.ingest_run_id
