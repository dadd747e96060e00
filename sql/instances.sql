-- One row per SOPInstanceUID in dicom_metadata: the keys of the patient, study, series and
-- instance levels, the attributes cohort queries filter on, numbers cast from their DICOM
-- string VRs (SAFE_CAST: a value that is not a number becomes NULL here; the raw value stays in
-- dicom_metadata and the object's ingest_anomalies), and where the object came from.
-- When several objects carry the same SOPInstanceUID (copies at two URLs, a re-ingest), the most
-- recently ingested one, then the smallest source_url, stands for the instance and object_count
-- says how many there were. Objects without a SOPInstanceUID (such as DICOMDIR files) share one
-- row with a NULL key. SOP class and transfer syntax names come from dicom_uid_names, the table
-- of pydicom's UID dictionary that dicomwarehouse.views creates beside the views.
--
-- Columns:
-- SOPInstanceUID: SOP Instance UID (0008,0018), the key.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the instance.
-- StudyInstanceUID: Study Instance UID (0020,000D) of the instance.
-- PatientID: Patient ID (0010,0020) of the instance.
-- IssuerOfPatientID: Issuer of Patient ID (0010,0021) of the instance.
-- SOPClassUID: SOP Class UID (0008,0016).
-- sop_class_name: name of the SOP class in the DICOM standard (PS3.6 Annex A), NULL for a UID
--   the standard does not define (private SOP classes).
-- Modality: Modality (0008,0060).
-- instance_number: Instance Number (0020,0013) as INT64.
-- ImageType: Image Type (0008,0008), all values.
-- Rows: Rows (0028,0010), pixels per column.
-- Columns: Columns (0028,0011), pixels per row.
-- frame_count: frames in the object: Number of Frames (0028,0008) as INT64; 1 for an image
--   without the attribute (Rows present); NULL for objects without pixels.
-- slice_thickness_mm: Slice Thickness (0018,0050) in mm, as FLOAT64.
-- pixel_spacing_row_mm: first value of Pixel Spacing (0028,0030): distance between the centres
--   of adjacent rows in mm, as FLOAT64.
-- pixel_spacing_column_mm: second value of Pixel Spacing (0028,0030): distance between the
--   centres of adjacent columns in mm, as FLOAT64.
-- PhotometricInterpretation: Photometric Interpretation (0028,0004).
-- BitsAllocated: Bits Allocated (0028,0100).
-- FrameOfReferenceUID: Frame of Reference UID (0020,0052).
-- ContentDate: Content Date (0008,0023).
-- ContentTime: Content Time (0008,0033).
-- TransferSyntaxUID: Transfer Syntax UID (0002,0010) of the file.
-- transfer_syntax_name: name of the transfer syntax in the DICOM standard.
-- source_url: URL of the object that stands for the instance.
-- source_size: size of that object in bytes.
-- header_bytes_read: bytes read from that object to parse its header.
-- ingest_run_id: ingest run that read that object.
-- ingested_at: when that object was read.
-- anomaly_count: number of values of that object that did not fit their column (listed in
--   dicom_metadata.ingest_anomalies).
-- object_count: number of objects in dicom_metadata with this SOPInstanceUID; more than 1 means
--   copies or conflicting versions.

WITH

objects AS (
  -- the instance-level attributes of every object, numbers cast
  SELECT
    SOPInstanceUID,
    SeriesInstanceUID,
    StudyInstanceUID,
    PatientID,
    IssuerOfPatientID,
    SOPClassUID,
    Modality,
    SAFE_CAST(TRIM(InstanceNumber) AS INT64) AS instance_number,
    ImageType,
    `Rows`,
    Columns,
    CASE
      WHEN NumberOfFrames IS NULL AND `Rows` IS NOT NULL THEN 1
      ELSE SAFE_CAST(TRIM(NumberOfFrames) AS INT64)
    END AS frame_count,
    SAFE_CAST(TRIM(SliceThickness) AS FLOAT64) AS slice_thickness_mm,
    SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64) AS pixel_spacing_row_mm,
    SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(1)]) AS FLOAT64) AS pixel_spacing_column_mm,
    PhotometricInterpretation,
    BitsAllocated,
    FrameOfReferenceUID,
    ContentDate,
    ContentTime,
    TransferSyntaxUID,
    source_url,
    source_size,
    header_bytes_read,
    ingest_run_id,
    ingested_at,
    COALESCE(ARRAY_LENGTH(ingest_anomalies), 0) AS anomaly_count
  FROM dicom_metadata
),

ranked AS (
  -- every object, ranked among the objects that share its SOPInstanceUID
  SELECT
    *,
    ROW_NUMBER() OVER (
      PARTITION BY SOPInstanceUID
      ORDER BY ingested_at DESC, source_url
    ) AS copy_rank,
    COUNT(*) OVER (PARTITION BY SOPInstanceUID) AS object_count
  FROM objects
)

-- one object per SOPInstanceUID, with the names of its SOP class and transfer syntax
SELECT
  ranked.SOPInstanceUID,
  ranked.SeriesInstanceUID,
  ranked.StudyInstanceUID,
  ranked.PatientID,
  ranked.IssuerOfPatientID,
  ranked.SOPClassUID,
  sop_class.name AS sop_class_name,
  ranked.Modality,
  ranked.instance_number,
  ranked.ImageType,
  ranked.`Rows`,
  ranked.Columns,
  ranked.frame_count,
  ranked.slice_thickness_mm,
  ranked.pixel_spacing_row_mm,
  ranked.pixel_spacing_column_mm,
  ranked.PhotometricInterpretation,
  ranked.BitsAllocated,
  ranked.FrameOfReferenceUID,
  ranked.ContentDate,
  ranked.ContentTime,
  ranked.TransferSyntaxUID,
  transfer_syntax.name AS transfer_syntax_name,
  ranked.source_url,
  ranked.source_size,
  ranked.header_bytes_read,
  ranked.ingest_run_id,
  ranked.ingested_at,
  ranked.anomaly_count,
  ranked.object_count
FROM ranked
LEFT JOIN dicom_uid_names AS sop_class
  ON sop_class.uid = ranked.SOPClassUID
LEFT JOIN dicom_uid_names AS transfer_syntax
  ON transfer_syntax.uid = ranked.TransferSyntaxUID
WHERE ranked.copy_rank = 1
