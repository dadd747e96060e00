-- One row per series of CT Image Storage objects (SOP class 1.2.840.10008.5.1.4.1.1.2), in the
-- manner of idc-index-data's ct_index: the acquisition and reconstruction parameters that
-- cohort queries filter on, numbers cast from their string VRs (SAFE_CAST: NULL when not a
-- number). Attributes that may vary from slice to slice (tube current, exposure) are given
-- as minimum and maximum; the others are one value of the series (ANY_VALUE).
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- ImageType: Image Type (0008,0008) of one instance, all values.
-- PixelSpacing_row_mm: first value of Pixel Spacing (0028,0030) in mm.
-- PixelSpacing_col_mm: second value of Pixel Spacing (0028,0030) in mm.
-- Rows: Rows (0028,0010).
-- Columns: Columns (0028,0011).
-- SliceThickness: Slice Thickness (0018,0050) in mm, as FLOAT64.
-- KVP: KVP (0018,0060), peak kilovoltage, as FLOAT64.
-- ScanOptions: Scan Options (0018,0022), all values.
-- ConvolutionKernel: Convolution Kernel (0018,1210), all values.
-- GantryDetectorTilt: Gantry/Detector Tilt (0018,1120) in degrees, as FLOAT64.
-- XRayTubeCurrent_min: smallest X-Ray Tube Current (0018,1151) in mA.
-- XRayTubeCurrent_max: largest X-Ray Tube Current (0018,1151) in mA.
-- FilterType: Filter Type (0018,1160).
-- Exposure_min: smallest Exposure (0018,1152) in mAs.
-- Exposure_max: largest Exposure (0018,1152) in mAs.
-- ExposureTime_min: smallest Exposure Time (0018,1150) in ms.
-- ExposureTime_max: largest Exposure Time (0018,1150) in ms.
-- DataCollectionDiameter: Data Collection Diameter (0018,0090) in mm, as FLOAT64.
-- ReconstructionDiameter: Reconstruction Diameter (0018,1100) in mm, as FLOAT64.
-- SpiralPitchFactor: Spiral Pitch Factor (0018,9311).
-- instance_count: number of distinct SOPInstanceUIDs in the series.

SELECT
  SeriesInstanceUID,
  ANY_VALUE(ImageType) AS ImageType,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64)) AS PixelSpacing_row_mm,
  ANY_VALUE(SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(1)]) AS FLOAT64)) AS PixelSpacing_col_mm,
  ANY_VALUE(`Rows`) AS `Rows`,
  ANY_VALUE(`Columns`) AS `Columns`,
  ANY_VALUE(SAFE_CAST(TRIM(SliceThickness) AS FLOAT64)) AS SliceThickness,
  ANY_VALUE(SAFE_CAST(TRIM(KVP) AS FLOAT64)) AS KVP,
  ANY_VALUE(ScanOptions) AS ScanOptions,
  ANY_VALUE(ConvolutionKernel) AS ConvolutionKernel,
  ANY_VALUE(SAFE_CAST(TRIM(GantryDetectorTilt) AS FLOAT64)) AS GantryDetectorTilt,
  MIN(SAFE_CAST(TRIM(XRayTubeCurrent) AS FLOAT64)) AS XRayTubeCurrent_min,
  MAX(SAFE_CAST(TRIM(XRayTubeCurrent) AS FLOAT64)) AS XRayTubeCurrent_max,
  ANY_VALUE(FilterType) AS FilterType,
  MIN(SAFE_CAST(TRIM(Exposure) AS FLOAT64)) AS Exposure_min,
  MAX(SAFE_CAST(TRIM(Exposure) AS FLOAT64)) AS Exposure_max,
  MIN(SAFE_CAST(TRIM(ExposureTime) AS FLOAT64)) AS ExposureTime_min,
  MAX(SAFE_CAST(TRIM(ExposureTime) AS FLOAT64)) AS ExposureTime_max,
  ANY_VALUE(SAFE_CAST(TRIM(DataCollectionDiameter) AS FLOAT64)) AS DataCollectionDiameter,
  ANY_VALUE(SAFE_CAST(TRIM(ReconstructionDiameter) AS FLOAT64)) AS ReconstructionDiameter,
  ANY_VALUE(SpiralPitchFactor) AS SpiralPitchFactor,
  COUNT(DISTINCT SOPInstanceUID) AS instance_count
FROM dicom_metadata
WHERE SOPClassUID = '1.2.840.10008.5.1.4.1.1.2'
GROUP BY SeriesInstanceUID
