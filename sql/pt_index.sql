-- One row per series of PET Image Storage objects (SOP class 1.2.840.10008.5.1.4.1.1.128), in
-- the manner of idc-index-data's pt_index: units, corrections, reconstruction and the
-- radiopharmaceutical, numbers cast from their string VRs (SAFE_CAST: NULL when not a
-- number). Frame durations, which differ between the frames of a dynamic series, are the
-- sorted distinct values of the series; the others are one value of the series (ANY_VALUE).
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- SeriesType: the two values of Series Type (0054,1000) joined by '/' (such as
--   STATIC/IMAGE).
-- Units: Units (0054,1001) of the pixel values (such as BQML, CNTS).
-- DecayCorrection: Decay Correction (0054,1102): NONE, START or ADMIN.
-- CorrectedImage: Corrected Image (0028,0051), all values (such as ATTN, DECY, SCAT).
-- RandomsCorrectionMethod: Randoms Correction Method (0054,1100).
-- ReconstructionMethod: Reconstruction Method (0054,1103).
-- ActualFrameDuration: distinct Actual Frame Durations (0018,1242) of the series in ms, sorted.
-- ScatterCorrectionMethod: Scatter Correction Method (0054,1105).
-- AttenuationCorrectionMethod: Attenuation Correction Method (0054,1101).
-- RadionuclideCodeMeaning: Code Meaning of the first Radionuclide Code Sequence (0054,0300)
--   item of the first Radiopharmaceutical Information Sequence (0054,0016) item.
-- RadionuclideTotalDose: Radionuclide Total Dose (0018,1074) in Bq, as FLOAT64.
-- RadiopharmaceuticalStartTime: Radiopharmaceutical Start Time (0018,1072) as text.
-- Radiopharmaceutical: Radiopharmaceutical (0018,0031).
-- PixelSpacing_row_mm: first value of Pixel Spacing (0028,0030) in mm.
-- PixelSpacing_col_mm: second value of Pixel Spacing (0028,0030) in mm.
-- Rows: Rows (0028,0010).
-- Columns: Columns (0028,0011).
-- SliceThickness: Slice Thickness (0018,0050) in mm, as FLOAT64.
-- NumberOfSlices: Number of Slices (0054,0081).
-- NumberOfTimeSlices: Number of Time Slices (0054,0101).
-- instance_count: number of distinct SOPInstanceUIDs in the series.

SELECT
  SeriesInstanceUID,
  ANY_VALUE(ARRAY_TO_STRING(SeriesType, '/')) AS SeriesType,
  ANY_VALUE(Units) AS Units,
  ANY_VALUE(DecayCorrection) AS DecayCorrection,
  ANY_VALUE(CorrectedImage) AS CorrectedImage,
  ANY_VALUE(RandomsCorrectionMethod) AS RandomsCorrectionMethod,
  ANY_VALUE(ReconstructionMethod) AS ReconstructionMethod,
  ARRAY_AGG(
    DISTINCT SAFE_CAST(TRIM(ActualFrameDuration) AS FLOAT64) IGNORE NULLS
    ORDER BY SAFE_CAST(TRIM(ActualFrameDuration) AS FLOAT64)
  ) AS ActualFrameDuration,
  ANY_VALUE(ScatterCorrectionMethod) AS ScatterCorrectionMethod,
  ANY_VALUE(AttenuationCorrectionMethod) AS AttenuationCorrectionMethod,
  ANY_VALUE(
    RadiopharmaceuticalInformationSequence[SAFE_OFFSET(0)]
      .RadionuclideCodeSequence[SAFE_OFFSET(0)].CodeMeaning
  ) AS RadionuclideCodeMeaning,
  ANY_VALUE(
    SAFE_CAST(
      TRIM(RadiopharmaceuticalInformationSequence[SAFE_OFFSET(0)].RadionuclideTotalDose)
      AS FLOAT64
    )
  ) AS RadionuclideTotalDose,
  CAST(
    ANY_VALUE(RadiopharmaceuticalInformationSequence[SAFE_OFFSET(0)].RadiopharmaceuticalStartTime)
    AS STRING
  ) AS RadiopharmaceuticalStartTime,
  ANY_VALUE(RadiopharmaceuticalInformationSequence[SAFE_OFFSET(0)].Radiopharmaceutical)
    AS Radiopharmaceutical,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64)) AS PixelSpacing_row_mm,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(1)]) AS FLOAT64)) AS PixelSpacing_col_mm,
  ANY_VALUE(`Rows`) AS `Rows`,
  ANY_VALUE(`Columns`) AS `Columns`,
  ANY_VALUE(SAFE_CAST(TRIM(SliceThickness) AS FLOAT64)) AS SliceThickness,
  ANY_VALUE(NumberOfSlices) AS NumberOfSlices,
  ANY_VALUE(NumberOfTimeSlices) AS NumberOfTimeSlices,
  COUNT(DISTINCT SOPInstanceUID) AS instance_count
FROM dicom_metadata
WHERE SOPClassUID = '1.2.840.10008.5.1.4.1.1.128'
GROUP BY SeriesInstanceUID
