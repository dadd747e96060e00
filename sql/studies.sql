-- One row per StudyInstanceUID in dicom_metadata, rolled up from every object of the study
-- (objects without a StudyInstanceUID share one row with a NULL key). Study-level attributes are
-- ANY_VALUE of the objects' values; each has a *_distinct_count beside it (the number of
-- distinct non-NULL values), so a study whose objects disagree, such as on PatientID, shows it
-- (count > 1) instead of hiding it. Counts and sizes are over objects, copies included. The rows
-- come from dicom_metadata, not from series, so that no disagreement is lost in a series-level
-- ANY_VALUE.
--
-- Columns:
-- StudyInstanceUID: Study Instance UID (0020,000D), the key.
-- PatientID: Patient ID (0010,0020).
-- IssuerOfPatientID: Issuer of Patient ID (0010,0021).
-- StudyDate: Study Date (0008,0020).
-- StudyTime: Study Time (0008,0030).
-- StudyDescription: Study Description (0008,1030).
-- AccessionNumber: Accession Number (0008,0050).
-- StudyID: Study ID (0020,0010).
-- PatientAge: Patient's Age (0010,1010) at the time of the study, as written (such as 045Y).
-- modalities: the distinct Modality (0008,0060) values of the study's objects, sorted.
-- series_count: number of distinct SeriesInstanceUIDs.
-- instance_count: number of distinct SOPInstanceUIDs.
-- object_count: number of objects (rows of dicom_metadata).
-- total_size_bytes: sum of the objects' sizes in bytes.
-- patient_id_distinct_count: distinct PatientID values.
-- issuer_of_patient_id_distinct_count: distinct IssuerOfPatientID values.
-- study_date_distinct_count: distinct StudyDate values.
-- study_time_distinct_count: distinct StudyTime values.
-- study_description_distinct_count: distinct StudyDescription values.
-- accession_number_distinct_count: distinct AccessionNumber values.
-- study_id_distinct_count: distinct StudyID values.
-- patient_age_distinct_count: distinct PatientAge values.

WITH

objects AS (
  -- the study-level attributes of every object
  SELECT
    StudyInstanceUID,
    PatientID,
    IssuerOfPatientID,
    StudyDate,
    StudyTime,
    StudyDescription,
    AccessionNumber,
    StudyID,
    PatientAge,
    Modality,
    SeriesInstanceUID,
    SOPInstanceUID,
    source_size
  FROM dicom_metadata
),

rolled_up AS (
  -- one row per study: one value of each attribute, counts, sizes and disagreements
  SELECT
    StudyInstanceUID,
    ANY_VALUE(PatientID) AS PatientID,
    ANY_VALUE(IssuerOfPatientID) AS IssuerOfPatientID,
    ANY_VALUE(StudyDate) AS StudyDate,
    ANY_VALUE(StudyTime) AS StudyTime,
    ANY_VALUE(StudyDescription) AS StudyDescription,
    ANY_VALUE(AccessionNumber) AS AccessionNumber,
    ANY_VALUE(StudyID) AS StudyID,
    ANY_VALUE(PatientAge) AS PatientAge,
    ARRAY_AGG(DISTINCT Modality IGNORE NULLS ORDER BY Modality) AS modalities,
    COUNT(DISTINCT SeriesInstanceUID) AS series_count,
    COUNT(DISTINCT SOPInstanceUID) AS instance_count,
    COUNT(*) AS object_count,
    SUM(source_size) AS total_size_bytes,
    COUNT(DISTINCT PatientID) AS patient_id_distinct_count,
    COUNT(DISTINCT IssuerOfPatientID) AS issuer_of_patient_id_distinct_count,
    COUNT(DISTINCT StudyDate) AS study_date_distinct_count,
    COUNT(DISTINCT StudyTime) AS study_time_distinct_count,
    COUNT(DISTINCT StudyDescription) AS study_description_distinct_count,
    COUNT(DISTINCT AccessionNumber) AS accession_number_distinct_count,
    COUNT(DISTINCT StudyID) AS study_id_distinct_count,
    COUNT(DISTINCT PatientAge) AS patient_age_distinct_count
  FROM objects
  GROUP BY StudyInstanceUID
)

SELECT
  *
FROM rolled_up
