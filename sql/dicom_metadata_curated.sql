-- One row per object of dicom_metadata with values cleaned for cohort queries: the IDC view of
-- the same name, with its column names, so that IDC's queries over `dicom_metadata_curated`
-- run here. Body Part Examined is brought to the standard's defined terms (PS3.16 Annex L
-- style: upper case, no spaces) by rules on the words it contains, so that free-text
-- variants (such as "CT CHEST W CONTRAST", "Abdomen Pelvis", "head-neck") group with the
-- defined term; a value no rule recognizes is kept in upper case with everything but its
-- letters and digits removed.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E).
-- SOPInstanceUID: SOP Instance UID (0008,0018).
-- SliceThickness: Slice Thickness (0018,0050) in mm, as FLOAT64 (NULL when not a number).
-- BodyPartExamined: Body Part Examined (0018,0015) as a defined term: CHESTABDPELVIS,
--   NECKCHESTABDPELV, CHESTABDOMEN, ABDOMENPELVIS, HEADNECK, CHEST, ABDOMEN, PELVIS,
--   THORAX, BRAIN, CSPINE, TSPINE, LSSPINE, KIDNEY, WHOLEBODY, else the value cleaned as
--   above; NULL when the object has none.
-- cancer_types: IDC's cancer types of the object's collection (from IDC's collection
--   metadata); always NULL here (this archive has no such table), present so that queries
--   selecting it bind.
-- BodyPartExamined_original: Body Part Examined (0018,0015) as written in the object.

WITH

words AS (
  -- the body part in upper case, every run of characters other than letters one space
  SELECT
    SeriesInstanceUID,
    SOPInstanceUID,
    SliceThickness,
    BodyPartExamined,
    CONCAT(' ', TRIM(REGEXP_REPLACE(UPPER(BodyPartExamined), r'[^A-Z]+', ' ')), ' ') AS part
  FROM dicom_metadata
),

regions AS (
  -- which regions the words name
  SELECT
    *,
    REGEXP_CONTAINS(part, r'CHEST| CH | CAP |THORAXABD') AS chest,
    REGEXP_CONTAINS(part, r' ABD|ABDOM|BRZUSZN| CAP |CHABD') AS abdomen,
    REGEXP_CONTAINS(part, r'PEL| CAP ') AS pelvis,
    REGEXP_CONTAINS(part, r'NECK') AS neck,
    REGEXP_CONTAINS(part, r'HEAD') AS head
  FROM words
)

SELECT
  SeriesInstanceUID,
  SOPInstanceUID,
  SAFE_CAST(TRIM(SliceThickness) AS FLOAT64) AS SliceThickness,
  CASE
    WHEN BodyPartExamined IS NULL THEN NULL
    WHEN neck AND NOT head AND (chest OR pelvis) THEN 'NECKCHESTABDPELV'
    WHEN chest AND abdomen AND pelvis THEN 'CHESTABDPELVIS'
    WHEN chest AND pelvis THEN 'CHESTABDPELVIS'
    WHEN chest AND abdomen THEN 'CHESTABDOMEN'
    WHEN abdomen AND pelvis THEN 'ABDOMENPELVIS'
    WHEN head AND neck THEN 'HEADNECK'
    WHEN chest THEN 'CHEST'
    WHEN abdomen THEN 'ABDOMEN'
    WHEN pelvis THEN 'PELVIS'
    WHEN REGEXP_CONTAINS(part, r'THORAX') AND NOT REGEXP_CONTAINS(part, r'SPINE') THEN 'THORAX'
    WHEN REGEXP_CONTAINS(part, r'BRAIN') THEN 'BRAIN'
    WHEN REGEXP_CONTAINS(part, r'CERVICAL') THEN 'CSPINE'
    WHEN REGEXP_CONTAINS(part, r'THORACIC') AND REGEXP_CONTAINS(part, r'SPINE') THEN 'TSPINE'
    WHEN REGEXP_CONTAINS(part, r'LUMB') AND REGEXP_CONTAINS(part, r'SAC') THEN 'LSSPINE'
    WHEN REGEXP_CONTAINS(part, r'KIDNEY|RENAL| REN ') THEN 'KIDNEY'
    WHEN REGEXP_CONTAINS(part, r'WHOLE BODY|WHOLEBODY') THEN 'WHOLEBODY'
    ELSE REGEXP_REPLACE(UPPER(BodyPartExamined), r'[^A-Z0-9]', '')
  END AS BodyPartExamined,
  CAST(NULL AS STRING) AS cancer_types,
  BodyPartExamined AS BodyPartExamined_original
FROM regions
