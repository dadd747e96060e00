-- The object ledger, one row per object version: each version of each source_url that an
-- ingest run saw (read, failed or skipped as unchanged), with the first and last run that saw
-- it and its status. Built from the ledger's events (ingest_object_events_history), one row per
-- object a run was given or found deleted by a full listing.
--
-- A version is told apart by the object's generation, else its ETag, else its MD5 (an object
-- without any is one version). The status is 'superseded' when a later run saw another version
-- of the object, 'deleted' when a full listing lacked the object after this version was last
-- seen, and otherwise the outcome of the last run that read this version: 'ingested' or
-- 'failed' (a run that skipped it as unchanged did not read it).
--
-- Columns:
-- source_url: URL of the object (file path, gs:// or s3:// URL).
-- source_generation: Generation of this version, where the store gives one (a local file's
--   modification time in nanoseconds).
-- source_etag: ETag of this version, where the store gives one.
-- source_md5: MD5 of this version (hex), where the store gives one.
-- source_size: Size of this version in bytes.
-- first_seen_run_id: First ingest run that saw this version.
-- last_seen_run_id: Last ingest run that saw this version (read or skipped it).
-- status: ingested, failed, superseded or deleted.
-- deleted_run_id: Latest run whose full listing lacked the object (NULL if none did).

WITH events AS (
  SELECT
    *,
    COALESCE(source_generation, source_etag, source_md5, '') AS version_key
  FROM ingest_object_events_history
),
versions AS (
  SELECT
    source_url,
    version_key,
    ANY_VALUE(source_generation) AS source_generation,
    ANY_VALUE(source_etag) AS source_etag,
    ANY_VALUE(source_md5) AS source_md5,
    ANY_VALUE(source_size) AS source_size,
    MIN(ingest_run_id) AS first_seen_run_id,
    MAX(ingest_run_id) AS last_seen_run_id,
    -- the last run that read this version (a skip is no read)
    MAX(IF(outcome = 'skipped', NULL, ingest_run_id)) AS last_read_run_id
  FROM events
  WHERE outcome <> 'deleted'
  GROUP BY source_url, version_key
),
latest AS (
  -- the object's latest run that saw it: the version it saw is the current one
  SELECT source_url, MAX(last_seen_run_id) AS last_seen_run_id
  FROM versions
  GROUP BY source_url
),
deletions AS (
  SELECT source_url, MAX(ingest_run_id) AS deleted_run_id
  FROM events
  WHERE outcome = 'deleted'
  GROUP BY source_url
)
SELECT
  versions.source_url,
  versions.source_generation,
  versions.source_etag,
  versions.source_md5,
  versions.source_size,
  versions.first_seen_run_id,
  versions.last_seen_run_id,
  CASE
    WHEN versions.last_seen_run_id < latest.last_seen_run_id THEN 'superseded'
    WHEN deletions.deleted_run_id > versions.last_seen_run_id THEN 'deleted'
    ELSE last_read.outcome
  END AS status,
  deletions.deleted_run_id
FROM versions
JOIN latest ON latest.source_url = versions.source_url
LEFT JOIN deletions ON deletions.source_url = versions.source_url
-- a run gives one ledger row per object, so (source_url, ingest_run_id) is one event
LEFT JOIN events AS last_read
  ON last_read.source_url = versions.source_url
  AND last_read.ingest_run_id = versions.last_read_run_id
