-- One row per series of single-frame CT, MR and PET images (SOP classes
-- 1.2.840.10008.5.1.4.1.1.2, .4 and .128) saying whether its slices form a regularly spaced 3D
-- volume, in the manner of idc-index-data's volume_geometry_index, plus the numbers behind
-- each check. Each slice's Image Position (Patient) is projected on the slice normal (the
-- cross product of the two Image Orientation (Patient) direction cosines), which gives its
-- position along the volume axis whatever the obliquity or gantry tilt; the positions are
-- compared at 0.001 mm. The expected spacing is the span of the distinct positions divided by
-- their number less one. Tolerances: slice intervals within 1% of the expected spacing, in-plane
-- offsets within 0.1 mm, direction cosines within 0.0001, normal length within 0.01 of 1.
-- Localizer and MIP images (Image Type LOCALIZER, or a value containing MIP) are left out of
-- their series, and the series is kept; slices without a position or orientation are counted,
-- not used. Copies of one instance (one SOPInstanceUID in several objects) count once, as in
-- instances.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- Modality: Modality (0008,0060) of the series.
-- instance_count: number of distinct images (SOPInstanceUIDs) of the series considered
--   (localizers and MIPs left out).
-- instances_without_position: images without a complete Image Position (Patient) (0020,0032)
--   or Image Orientation (Patient) (0020,0037).
-- single_orientation: TRUE if every image has the same Image Orientation (Patient).
-- orthogonal_orientation: TRUE if every image's slice normal has length 1 (orthogonal unit
--   direction cosines).
-- unique_slice_positions: TRUE if no two images share a position along the slice normal.
-- duplicate_position_count: images whose position along the normal another image already has.
-- consistent_in_plane_row: TRUE if the projection of the positions on the row direction is
--   the same for every image (no lateral shift).
-- consistent_in_plane_col: TRUE if the projection on the column direction is the same for
--   every image.
-- consistent_pixel_spacing: TRUE if every image has the same Pixel Spacing (0028,0030).
-- consistent_image_dimensions: TRUE if every image has the same Rows and Columns.
-- slice_position_count: number of distinct positions along the slice normal.
-- slice_spacing_mm: expected spacing between adjacent positions in mm (span / (count - 1));
--   NULL for fewer than 2 positions.
-- slice_interval_min_mm: smallest distance between adjacent distinct positions in mm.
-- slice_interval_max_mm: largest distance between adjacent distinct positions in mm.
-- uniform_slice_spacing: TRUE if every interval is within 1% of slice_spacing_mm; NULL for
--   fewer than 2 positions.
-- missing_position_count: estimated number of missing slices: for each interval, how many
--   times the smallest interval fits into it, less one, summed.
-- obliquity_degrees: angle in degrees between the slice normal and the nearest patient axis
--   (0 for axial, sagittal or coronal), rounded to 2 decimals.
-- regularly_spaced_3d_volume: TRUE if the series has at least 2 positions, every image a
--   position, and every check above passes: it loads into a 3D array without resampling.

WITH

images AS (
  -- the geometry of every single-frame CT, MR and PET image that is not a localizer or MIP
  SELECT
    SeriesInstanceUID,
    SOPInstanceUID,
    Modality,
    SAFE_CAST(TRIM(ImagePositionPatient[SAFE_OFFSET(0)]) AS FLOAT64) AS px,
    SAFE_CAST(TRIM(ImagePositionPatient[SAFE_OFFSET(1)]) AS FLOAT64) AS py,
    SAFE_CAST(TRIM(ImagePositionPatient[SAFE_OFFSET(2)]) AS FLOAT64) AS pz,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(0)]) AS FLOAT64) AS rx,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(1)]) AS FLOAT64) AS ry,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(2)]) AS FLOAT64) AS rz,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(3)]) AS FLOAT64) AS cx,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(4)]) AS FLOAT64) AS cy,
    SAFE_CAST(TRIM(ImageOrientationPatient[SAFE_OFFSET(5)]) AS FLOAT64) AS cz,
    SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64) AS spacing_row,
    SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(1)]) AS FLOAT64) AS spacing_column,
    `Rows` AS row_count,
    `Columns` AS column_count
  FROM dicom_metadata
  WHERE
    SOPClassUID IN (
      '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.5.1.4.1.1.128'
    )
    AND NOT EXISTS (
      SELECT 1
      FROM UNNEST(ImageType) AS image_type
      WHERE image_type = 'LOCALIZER' OR image_type LIKE '%MIP%'
    )
  -- copies of one instance (the same SOPInstanceUID at two URLs) are one image
  QUALIFY ROW_NUMBER() OVER (PARTITION BY SOPInstanceUID ORDER BY ingested_at DESC, source_url) = 1
),

normals AS (
  -- the slice normal (row cosines x column cosines) of every image
  SELECT
    *,
    ry * cz - rz * cy AS nx,
    rz * cx - rx * cz AS ny,
    rx * cy - ry * cx AS nz,
    (
      px IS NOT NULL AND py IS NOT NULL AND pz IS NOT NULL
      AND rx IS NOT NULL AND ry IS NOT NULL AND rz IS NOT NULL
      AND cx IS NOT NULL AND cy IS NOT NULL AND cz IS NOT NULL
    ) AS positioned
  FROM images
),

projections AS (
  -- where each positioned image lies along the normal and in its own plane
  SELECT
    *,
    SQRT(nx * nx + ny * ny + nz * nz) AS normal_length,
    ROUND(px * nx + py * ny + pz * nz, 3) AS slice_position,
    px * rx + py * ry + pz * rz AS in_plane_row,
    px * cx + py * cy + pz * cz AS in_plane_col
  FROM normals
  WHERE positioned
),

positions AS (
  -- the distinct positions of each series, each with the distance to the next one
  SELECT
    SeriesInstanceUID,
    slice_position,
    LEAD(slice_position) OVER (PARTITION BY SeriesInstanceUID ORDER BY slice_position)
      - slice_position AS slice_interval
  FROM (SELECT DISTINCT SeriesInstanceUID, slice_position FROM projections)
),

spacing AS (
  -- the expected spacing, interval range and estimated gaps of each series
  SELECT
    SeriesInstanceUID,
    COUNT(*) AS slice_position_count,
    SAFE_DIVIDE(MAX(slice_position) - MIN(slice_position), COUNT(*) - 1) AS slice_spacing_mm,
    MIN(slice_interval) AS slice_interval_min_mm,
    MAX(slice_interval) AS slice_interval_max_mm
  FROM positions
  GROUP BY SeriesInstanceUID
),

spacing_checks AS (
  SELECT
    spacing.*,
    (
      SELECT MAX(ABS(positions.slice_interval - spacing.slice_spacing_mm))
      FROM positions
      WHERE positions.SeriesInstanceUID = spacing.SeriesInstanceUID
    ) AS largest_deviation_mm,
    (
      SELECT SUM(
        CAST(ROUND(positions.slice_interval / spacing.slice_interval_min_mm) AS INT64) - 1
      )
      FROM positions
      WHERE
        positions.SeriesInstanceUID = spacing.SeriesInstanceUID
        AND spacing.slice_interval_min_mm > 0
    ) AS missing_position_count
  FROM spacing
),

image_checks AS (
  -- the checks that compare the images of each series
  SELECT
    normals.SeriesInstanceUID,
    ANY_VALUE(normals.Modality) AS Modality,
    COUNT(*) AS instance_count,
    COUNTIF(NOT normals.positioned) AS instances_without_position,
    COUNTIF(normals.positioned) AS positioned_count,
    GREATEST(
      MAX(normals.rx) - MIN(normals.rx), MAX(normals.ry) - MIN(normals.ry),
      MAX(normals.rz) - MIN(normals.rz), MAX(normals.cx) - MIN(normals.cx),
      MAX(normals.cy) - MIN(normals.cy), MAX(normals.cz) - MIN(normals.cz)
    ) <= 0.0001 AS single_orientation,
    IFNULL(
      LOGICAL_AND(
        ABS(SQRT(normals.nx * normals.nx + normals.ny * normals.ny + normals.nz * normals.nz) - 1)
          <= 0.01
      ),
      FALSE
    ) AS orthogonal_orientation,
    IFNULL(
      MAX(normals.spacing_row) - MIN(normals.spacing_row) <= 0.0001
      AND MAX(normals.spacing_column) - MIN(normals.spacing_column) <= 0.0001
      AND COUNT(normals.spacing_row) = COUNT(*),
      FALSE
    ) AS consistent_pixel_spacing,
    COUNT(DISTINCT normals.row_count) = 1 AND COUNT(DISTINCT normals.column_count) = 1
      AND COUNT(normals.row_count) = COUNT(*) AND COUNT(normals.column_count) = COUNT(*)
      AS consistent_image_dimensions
  FROM normals
  GROUP BY normals.SeriesInstanceUID
),

plane_checks AS (
  SELECT
    SeriesInstanceUID,
    COUNT(*) - COUNT(DISTINCT slice_position) AS duplicate_position_count,
    MAX(in_plane_row) - MIN(in_plane_row) < 0.1 AS consistent_in_plane_row,
    MAX(in_plane_col) - MIN(in_plane_col) < 0.1 AS consistent_in_plane_col,
    ROUND(
      ACOS(
        LEAST(
          1.0,
          GREATEST(ABS(ANY_VALUE(nx)), ABS(ANY_VALUE(ny)), ABS(ANY_VALUE(nz)))
            / ANY_VALUE(normal_length)
        )
      ) * 180 / ACOS(-1),
      2
    ) AS obliquity_degrees
  FROM projections
  GROUP BY SeriesInstanceUID
),

checks AS (
  SELECT
    image_checks.SeriesInstanceUID,
    image_checks.Modality,
    image_checks.instance_count,
    image_checks.instances_without_position,
    IFNULL(image_checks.single_orientation, FALSE) AS single_orientation,
    image_checks.orthogonal_orientation,
    IFNULL(plane_checks.duplicate_position_count = 0, FALSE) AS unique_slice_positions,
    IFNULL(plane_checks.duplicate_position_count, 0) AS duplicate_position_count,
    IFNULL(plane_checks.consistent_in_plane_row, FALSE) AS consistent_in_plane_row,
    IFNULL(plane_checks.consistent_in_plane_col, FALSE) AS consistent_in_plane_col,
    image_checks.consistent_pixel_spacing,
    image_checks.consistent_image_dimensions,
    IFNULL(spacing_checks.slice_position_count, 0) AS slice_position_count,
    spacing_checks.slice_spacing_mm,
    spacing_checks.slice_interval_min_mm,
    spacing_checks.slice_interval_max_mm,
    spacing_checks.largest_deviation_mm
      < 0.01 * ABS(spacing_checks.slice_spacing_mm) AS uniform_slice_spacing,
    IFNULL(spacing_checks.missing_position_count, 0) AS missing_position_count,
    plane_checks.obliquity_degrees
  FROM image_checks
  LEFT JOIN plane_checks
    ON plane_checks.SeriesInstanceUID = image_checks.SeriesInstanceUID
  LEFT JOIN spacing_checks
    ON spacing_checks.SeriesInstanceUID = image_checks.SeriesInstanceUID
)

SELECT
  *,
  IFNULL(
    slice_position_count >= 2
    AND instances_without_position = 0
    AND single_orientation
    AND orthogonal_orientation
    AND unique_slice_positions
    AND consistent_in_plane_row
    AND consistent_in_plane_col
    AND consistent_pixel_spacing
    AND consistent_image_dimensions
    AND uniform_slice_spacing,
    FALSE
  ) AS regularly_spaced_3d_volume
FROM checks
