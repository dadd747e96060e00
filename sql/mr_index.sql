-- One row per series of MR Image Storage objects (SOP class 1.2.840.10008.5.1.4.1.1.4), in the
-- manner of idc-index-data's mr_index: the sequence parameters that cohort queries filter on,
-- numbers cast from their string VRs (SAFE_CAST: NULL when not a number). Echo times and
-- b-values, which differ between the images of multi-echo and diffusion series, are the
-- sorted distinct values of the series; the others are one value of the series (ANY_VALUE).
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- MagneticFieldStrength: Magnetic Field Strength (0018,0087) in tesla, as FLOAT64.
-- ScanningSequence: Scanning Sequence (0018,0020), all values (SE, GR, IR, EP, RM).
-- SequenceVariant: Sequence Variant (0018,0021), all values.
-- MRAcquisitionType: MR Acquisition Type (0018,0023): 2D or 3D.
-- EchoTime: distinct Echo Times (0018,0081) of the series in ms, sorted.
-- RepetitionTime: Repetition Time (0018,0080) in ms, as FLOAT64.
-- EchoTrainLength: Echo Train Length (0018,0091), as INT64.
-- FlipAngle: Flip Angle (0018,1314) in degrees, as FLOAT64.
-- PixelBandwidth: Pixel Bandwidth (0018,0095) in Hz, as FLOAT64.
-- ImagingFrequency: Imaging Frequency (0018,0084) in MHz, as FLOAT64.
-- ImagedNucleus: Imaged Nucleus (0018,0085).
-- PixelSpacing_row_mm: first value of Pixel Spacing (0028,0030) in mm.
-- PixelSpacing_col_mm: second value of Pixel Spacing (0028,0030) in mm.
-- Rows: Rows (0028,0010).
-- Columns: Columns (0028,0011).
-- SliceThickness: Slice Thickness (0018,0050) in mm, as FLOAT64.
-- InversionTime: Inversion Time (0018,0082) in ms, as FLOAT64.
-- ReceiveCoilName: Receive Coil Name (0018,1250).
-- SequenceName: Sequence Name (0018,0024).
-- DiffusionBValue: distinct Diffusion b-values (0018,9087) of the series, sorted.
-- NumberOfTemporalPositions: Number of Temporal Positions (0020,0105), as INT64.
-- instance_count: number of distinct SOPInstanceUIDs in the series.

SELECT
  SeriesInstanceUID,
  ANY_VALUE(SAFE_CAST(TRIM(MagneticFieldStrength) AS FLOAT64)) AS MagneticFieldStrength,
  ANY_VALUE(ScanningSequence) AS ScanningSequence,
  ANY_VALUE(SequenceVariant) AS SequenceVariant,
  ANY_VALUE(MRAcquisitionType) AS MRAcquisitionType,
  ARRAY_AGG(
    DISTINCT SAFE_CAST(TRIM(EchoTime) AS FLOAT64) IGNORE NULLS
    ORDER BY SAFE_CAST(TRIM(EchoTime) AS FLOAT64)
  ) AS EchoTime,
  ANY_VALUE(SAFE_CAST(TRIM(RepetitionTime) AS FLOAT64)) AS RepetitionTime,
  ANY_VALUE(SAFE_CAST(TRIM(EchoTrainLength) AS INT64)) AS EchoTrainLength,
  ANY_VALUE(SAFE_CAST(TRIM(FlipAngle) AS FLOAT64)) AS FlipAngle,
  ANY_VALUE(SAFE_CAST(TRIM(PixelBandwidth) AS FLOAT64)) AS PixelBandwidth,
  ANY_VALUE(SAFE_CAST(TRIM(ImagingFrequency) AS FLOAT64)) AS ImagingFrequency,
  ANY_VALUE(ImagedNucleus) AS ImagedNucleus,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64)) AS PixelSpacing_row_mm,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(1)]) AS FLOAT64)) AS PixelSpacing_col_mm,
  ANY_VALUE(`Rows`) AS `Rows`,
  ANY_VALUE(`Columns`) AS `Columns`,
  ANY_VALUE(SAFE_CAST(TRIM(SliceThickness) AS FLOAT64)) AS SliceThickness,
  ANY_VALUE(SAFE_CAST(TRIM(InversionTime) AS FLOAT64)) AS InversionTime,
  ANY_VALUE(ReceiveCoilName) AS ReceiveCoilName,
  ANY_VALUE(SequenceName) AS SequenceName,
  ARRAY_AGG(DISTINCT DiffusionBValue IGNORE NULLS ORDER BY DiffusionBValue) AS DiffusionBValue,
  ANY_VALUE(SAFE_CAST(TRIM(NumberOfTemporalPositions) AS INT64)) AS NumberOfTemporalPositions,
  COUNT(DISTINCT SOPInstanceUID) AS instance_count
FROM dicom_metadata
WHERE SOPClassUID = '1.2.840.10008.5.1.4.1.1.4'
GROUP BY SeriesInstanceUID
