-- One row per patient, keyed by (PatientID, IssuerOfPatientID) as in dicom_metadata: the same
-- PatientID from two issuers is two patients. Objects without a PatientID are not dropped: they
-- share the row whose PatientID is NULL (with their IssuerOfPatientID), so the counts of all
-- rows add up to dicom_metadata. Patient-level attributes are ANY_VALUE of the objects' values;
-- each has a *_distinct_count beside it (the number of distinct non-NULL values), so a patient
-- whose objects disagree, such as on PatientSex, shows it (count > 1) instead of hiding it.
-- Counts and sizes are over objects, copies included.
--
-- Columns:
-- PatientID: Patient ID (0010,0020), the key with IssuerOfPatientID; NULL for the objects
--   without one.
-- IssuerOfPatientID: Issuer of Patient ID (0010,0021), the key with PatientID.
-- patient_family_name: family name of the alphabetic form of Patient's Name (0010,0010).
-- patient_given_name: given name of the alphabetic form of Patient's Name (0010,0010).
-- PatientSex: Patient's Sex (0010,0040).
-- PatientBirthDate: Patient's Birth Date (0010,0030).
-- study_count: number of distinct StudyInstanceUIDs.
-- series_count: number of distinct SeriesInstanceUIDs.
-- instance_count: number of distinct SOPInstanceUIDs.
-- object_count: number of objects (rows of dicom_metadata).
-- total_size_bytes: sum of the objects' sizes in bytes.
-- patient_family_name_distinct_count: distinct patient_family_name values.
-- patient_given_name_distinct_count: distinct patient_given_name values.
-- patient_sex_distinct_count: distinct PatientSex values.
-- patient_birth_date_distinct_count: distinct PatientBirthDate values.

WITH

objects AS (
  -- the patient-level attributes of every object, the name taken apart
  SELECT
    PatientID,
    IssuerOfPatientID,
    PatientName.Alphabetic.FamilyName AS patient_family_name,
    PatientName.Alphabetic.GivenName AS patient_given_name,
    PatientSex,
    PatientBirthDate,
    StudyInstanceUID,
    SeriesInstanceUID,
    SOPInstanceUID,
    source_size
  FROM dicom_metadata
),

rolled_up AS (
  -- one row per patient: one value of each attribute, counts, sizes and disagreements
  SELECT
    PatientID,
    IssuerOfPatientID,
    ANY_VALUE(patient_family_name) AS patient_family_name,
    ANY_VALUE(patient_given_name) AS patient_given_name,
    ANY_VALUE(PatientSex) AS PatientSex,
    ANY_VALUE(PatientBirthDate) AS PatientBirthDate,
    COUNT(DISTINCT StudyInstanceUID) AS study_count,
    COUNT(DISTINCT SeriesInstanceUID) AS series_count,
    COUNT(DISTINCT SOPInstanceUID) AS instance_count,
    COUNT(*) AS object_count,
    SUM(source_size) AS total_size_bytes,
    COUNT(DISTINCT patient_family_name) AS patient_family_name_distinct_count,
    COUNT(DISTINCT patient_given_name) AS patient_given_name_distinct_count,
    COUNT(DISTINCT PatientSex) AS patient_sex_distinct_count,
    COUNT(DISTINCT PatientBirthDate) AS patient_birth_date_distinct_count
  FROM objects
  GROUP BY PatientID, IssuerOfPatientID
)

SELECT
  *
FROM rolled_up
