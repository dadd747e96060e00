-- One row per SeriesInstanceUID in dicom_metadata, rolled up from every object of the series
-- (objects without a SeriesInstanceUID share one row with a NULL key). Series-level attributes
-- are ANY_VALUE of the objects' values; each has a *_distinct_count beside it (the number of
-- distinct non-NULL values), so a series whose objects disagree, such as on Modality, shows it
-- (count > 1) instead of hiding it. Counts and sizes are over objects, copies included (see
-- instance_count and object_count). The rows come from dicom_metadata, not from instances, so
-- that a series is never lost behind a conflicting copy of one of its instances.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- StudyInstanceUID: Study Instance UID (0020,000D) of the series.
-- PatientID: Patient ID (0010,0020).
-- IssuerOfPatientID: Issuer of Patient ID (0010,0021).
-- Modality: Modality (0008,0060).
-- SOPClassUID: SOP Class UID (0008,0016) of the objects.
-- SeriesDescription: Series Description (0008,103E).
-- series_number: Series Number (0020,0011) as INT64.
-- BodyPartExamined: Body Part Examined (0018,0015).
-- Manufacturer: Manufacturer (0008,0070) of the equipment.
-- ManufacturerModelName: Manufacturer's Model Name (0008,1090).
-- SeriesDate: Series Date (0008,0021).
-- SeriesTime: Series Time (0008,0031).
-- instance_count: number of distinct SOPInstanceUIDs.
-- object_count: number of objects (rows of dicom_metadata); more than instance_count when
--   instances have copies, and counts objects without a SOPInstanceUID.
-- frame_count: sum of the objects' frames (NumberOfFrames, 1 for a single-frame image).
-- total_size_bytes: sum of the objects' sizes in bytes.
-- slice_thickness_min_mm: smallest Slice Thickness (0018,0050) in mm.
-- slice_thickness_max_mm: largest Slice Thickness (0018,0050) in mm.
-- anomaly_count: number of values that did not fit their column, over all objects.
-- study_instance_uid_distinct_count: distinct StudyInstanceUID values.
-- patient_id_distinct_count: distinct PatientID values.
-- issuer_of_patient_id_distinct_count: distinct IssuerOfPatientID values.
-- modality_distinct_count: distinct Modality values.
-- sop_class_uid_distinct_count: distinct SOPClassUID values.
-- series_description_distinct_count: distinct SeriesDescription values.
-- series_number_distinct_count: distinct series_number values.
-- body_part_examined_distinct_count: distinct BodyPartExamined values.
-- manufacturer_distinct_count: distinct Manufacturer values.
-- manufacturer_model_name_distinct_count: distinct ManufacturerModelName values.
-- series_date_distinct_count: distinct SeriesDate values.
-- series_time_distinct_count: distinct SeriesTime values.

WITH

objects AS (
  -- the series-level attributes of every object, numbers cast
  SELECT
    SeriesInstanceUID,
    StudyInstanceUID,
    PatientID,
    IssuerOfPatientID,
    SOPInstanceUID,
    SOPClassUID,
    Modality,
    SeriesDescription,
    SAFE_CAST(TRIM(SeriesNumber) AS INT64) AS series_number,
    BodyPartExamined,
    Manufacturer,
    ManufacturerModelName,
    SeriesDate,
    SeriesTime,
    CASE
      WHEN NumberOfFrames IS NULL AND `Rows` IS NOT NULL THEN 1
      ELSE SAFE_CAST(TRIM(NumberOfFrames) AS INT64)
    END AS frame_count,
    SAFE_CAST(TRIM(SliceThickness) AS FLOAT64) AS slice_thickness_mm,
    source_size,
    COALESCE(ARRAY_LENGTH(ingest_anomalies), 0) AS anomaly_count
  FROM dicom_metadata
),

rolled_up AS (
  -- one row per series: one value of each attribute, counts, sizes and disagreements
  SELECT
    SeriesInstanceUID,
    ANY_VALUE(StudyInstanceUID) AS StudyInstanceUID,
    ANY_VALUE(PatientID) AS PatientID,
    ANY_VALUE(IssuerOfPatientID) AS IssuerOfPatientID,
    ANY_VALUE(Modality) AS Modality,
    ANY_VALUE(SOPClassUID) AS SOPClassUID,
    ANY_VALUE(SeriesDescription) AS SeriesDescription,
    ANY_VALUE(series_number) AS series_number,
    ANY_VALUE(BodyPartExamined) AS BodyPartExamined,
    ANY_VALUE(Manufacturer) AS Manufacturer,
    ANY_VALUE(ManufacturerModelName) AS ManufacturerModelName,
    ANY_VALUE(SeriesDate) AS SeriesDate,
    ANY_VALUE(SeriesTime) AS SeriesTime,
    COUNT(DISTINCT SOPInstanceUID) AS instance_count,
    COUNT(*) AS object_count,
    SUM(frame_count) AS frame_count,
    SUM(source_size) AS total_size_bytes,
    MIN(slice_thickness_mm) AS slice_thickness_min_mm,
    MAX(slice_thickness_mm) AS slice_thickness_max_mm,
    SUM(anomaly_count) AS anomaly_count,
    COUNT(DISTINCT StudyInstanceUID) AS study_instance_uid_distinct_count,
    COUNT(DISTINCT PatientID) AS patient_id_distinct_count,
    COUNT(DISTINCT IssuerOfPatientID) AS issuer_of_patient_id_distinct_count,
    COUNT(DISTINCT Modality) AS modality_distinct_count,
    COUNT(DISTINCT SOPClassUID) AS sop_class_uid_distinct_count,
    COUNT(DISTINCT SeriesDescription) AS series_description_distinct_count,
    COUNT(DISTINCT series_number) AS series_number_distinct_count,
    COUNT(DISTINCT BodyPartExamined) AS body_part_examined_distinct_count,
    COUNT(DISTINCT Manufacturer) AS manufacturer_distinct_count,
    COUNT(DISTINCT ManufacturerModelName) AS manufacturer_model_name_distinct_count,
    COUNT(DISTINCT SeriesDate) AS series_date_distinct_count,
    COUNT(DISTINCT SeriesTime) AS series_time_distinct_count
  FROM objects
  GROUP BY SeriesInstanceUID
)

SELECT
  *
FROM rolled_up
