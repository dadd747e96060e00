-- One row per SeriesInstanceUID in dicom_metadata with the series-level values that slide
-- microscopy cohort queries filter on: the IDC view of the same name, with its column names,
-- so that IDC's queries over `dicom_metadata_curated_series_level` run here (sm_index is its
-- SM rows). Specimen preparation codes come from every specimen of every object of the series
-- (specimen_preparation_steps), not from the first specimen only; the *_CodeMeaning and
-- *_code_designator_value_str arrays of one preparation are in the same order, so that
-- position i of both is one code. Single codes (anatomic structure, illumination, admitting
-- diagnosis) are the smallest CodingSchemeDesignator:CodeValue of the series' objects.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- Modality: Modality (0008,0060) of the series (one of its objects').
-- embeddingMedium_CodeMeaning: code meanings of the Embedding medium (430863003, SCT)
--   preparation steps, distinct, sorted.
-- embeddingMedium_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- tissueFixative_CodeMeaning: code meanings of the Tissue Fixative (430864009, SCT) steps.
-- tissueFixative_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- staining_usingSubstance_CodeMeaning: code meanings of the Using substance (424361007, SCT)
--   steps: the stains.
-- staining_usingSubstance_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   same codes, in the same order.
-- min_PixelSpacing_2sf: smallest first value of Pixel Spacing (0028,0030), else of the Pixel
--   Spacing in the Pixel Measures Sequence of the Shared Functional Groups Sequence, in mm,
--   rounded to 2 significant digits (the resolution of the finest level of a slide pyramid).
-- max_TotalPixelMatrixColumns: largest Total Pixel Matrix Columns (0048,0006), else largest
--   Columns (0028,0011).
-- max_TotalPixelMatrixRows: largest Total Pixel Matrix Rows (0048,0007), else largest Rows
--   (0028,0010).
-- ObjectiveLensPower: Objective Lens Power (0048,0112) of the first optical path, as INT64
--   (rounded; NULL when not a number).
-- primaryAnatomicStructure_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   first Primary Anatomic Structure Sequence (0008,2228) item of the first specimen.
-- primaryAnatomicStructure_CodeMeaning: its Code Meaning.
-- primaryAnatomicStructureModifier_code_designator_value_str: CodingSchemeDesignator:CodeValue
--   of the first Primary Anatomic Structure Modifier Sequence (0008,2230) item of that
--   structure.
-- primaryAnatomicStructureModifier_CodeMeaning: its Code Meaning.
-- illuminationType_code_designator_value_str: CodingSchemeDesignator:CodeValue of the first
--   Illumination Type Code Sequence (0022,0016) item of the first optical path.
-- illuminationType_CodeMeaning: its Code Meaning.
-- ContainerIdentifier: Container Identifier (0040,0512), the slide's identifier (one of the
--   series' objects').
-- admittingDiagnosis_code_designator_value_str: CodingSchemeDesignator:CodeValue of the first
--   Admitting Diagnoses Code Sequence (0008,1084) item.
-- admittingDiagnosis_CodeMeaning: its Code Meaning.
-- collection_id: the distinct collection_id values of the series' objects, sorted,
--   comma-separated.
-- instance_count: number of distinct SOPInstanceUIDs in the series.

WITH

objects AS (
  -- the series-level values of every object, codes as (designator:value, meaning) pairs
  SELECT
    SeriesInstanceUID,
    SOPInstanceUID,
    Modality,
    collection_id,
    ContainerIdentifier,
    TotalPixelMatrixColumns,
    TotalPixelMatrixRows,
    `Columns`,
    `Rows`,
    SAFE_CAST(TRIM(PixelSpacing[SAFE_OFFSET(0)]) AS FLOAT64) AS pixel_spacing_mm,
    SAFE_CAST(
      TRIM(
        SharedFunctionalGroupsSequence[SAFE_OFFSET(0)]
          .PixelMeasuresSequence[SAFE_OFFSET(0)].PixelSpacing[SAFE_OFFSET(0)]
      ) AS FLOAT64
    ) AS shared_pixel_spacing_mm,
    OpticalPathSequence[SAFE_OFFSET(0)].ObjectiveLensPower AS objective_lens_power,
    SpecimenDescriptionSequence[SAFE_OFFSET(0)]
      .PrimaryAnatomicStructureSequence[SAFE_OFFSET(0)] AS structure,
    SpecimenDescriptionSequence[SAFE_OFFSET(0)]
      .PrimaryAnatomicStructureSequence[SAFE_OFFSET(0)]
      .PrimaryAnatomicStructureModifierSequence[SAFE_OFFSET(0)] AS structure_modifier,
    OpticalPathSequence[SAFE_OFFSET(0)].IlluminationTypeCodeSequence[SAFE_OFFSET(0)]
      AS illumination,
    AdmittingDiagnosesCodeSequence[SAFE_OFFSET(0)] AS diagnosis
  FROM dicom_metadata
),

codes AS (
  SELECT
    * EXCEPT (structure, structure_modifier, illumination, diagnosis),
    IF(
      structure.CodeValue IS NULL,
      NULL,
      STRUCT(
        CONCAT(structure.CodingSchemeDesignator, ':', structure.CodeValue) AS code,
        structure.CodeMeaning AS meaning
      )
    ) AS structure_code,
    IF(
      structure_modifier.CodeValue IS NULL,
      NULL,
      STRUCT(
        CONCAT(structure_modifier.CodingSchemeDesignator, ':', structure_modifier.CodeValue)
          AS code,
        structure_modifier.CodeMeaning AS meaning
      )
    ) AS structure_modifier_code,
    IF(
      illumination.CodeValue IS NULL,
      NULL,
      STRUCT(
        CONCAT(illumination.CodingSchemeDesignator, ':', illumination.CodeValue) AS code,
        illumination.CodeMeaning AS meaning
      )
    ) AS illumination_code,
    IF(
      diagnosis.CodeValue IS NULL,
      NULL,
      STRUCT(
        CONCAT(diagnosis.CodingSchemeDesignator, ':', diagnosis.CodeValue) AS code,
        diagnosis.CodeMeaning AS meaning
      )
    ) AS diagnosis_code
  FROM objects
),

series_values AS (
  SELECT
    SeriesInstanceUID,
    ANY_VALUE(Modality) AS Modality,
    STRING_AGG(DISTINCT collection_id, ',' ORDER BY collection_id) AS collection_id,
    ANY_VALUE(ContainerIdentifier) AS ContainerIdentifier,
    COALESCE(MAX(TotalPixelMatrixColumns), MAX(`Columns`)) AS max_TotalPixelMatrixColumns,
    COALESCE(MAX(TotalPixelMatrixRows), MAX(`Rows`)) AS max_TotalPixelMatrixRows,
    COALESCE(MIN(pixel_spacing_mm), MIN(shared_pixel_spacing_mm)) AS min_spacing_mm,
    ANY_VALUE(objective_lens_power) AS objective_lens_power,
    ARRAY_AGG(structure_code IGNORE NULLS ORDER BY structure_code.code LIMIT 1)[SAFE_OFFSET(0)]
      AS structure_code,
    ARRAY_AGG(
      structure_modifier_code IGNORE NULLS ORDER BY structure_modifier_code.code LIMIT 1
    )[SAFE_OFFSET(0)] AS structure_modifier_code,
    ARRAY_AGG(
      illumination_code IGNORE NULLS ORDER BY illumination_code.code LIMIT 1
    )[SAFE_OFFSET(0)] AS illumination_code,
    ARRAY_AGG(diagnosis_code IGNORE NULLS ORDER BY diagnosis_code.code LIMIT 1)[SAFE_OFFSET(0)]
      AS diagnosis_code,
    COUNT(DISTINCT SOPInstanceUID) AS instance_count
  FROM codes
  GROUP BY SeriesInstanceUID
),

preparation_codes AS (
  -- each distinct staining, fixative and embedding code of each series
  SELECT DISTINCT
    SeriesInstanceUID,
    preparation_kind,
    IFNULL(CodeMeaning, '') AS meaning,
    IFNULL(code_designator_value_str, '') AS code
  FROM specimen_preparation_steps
  WHERE preparation_kind IS NOT NULL
),

preparations AS (
  SELECT
    SeriesInstanceUID,
    ARRAY_AGG(IF(preparation_kind = 'embedding', meaning, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS embedding_meanings,
    ARRAY_AGG(IF(preparation_kind = 'embedding', code, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS embedding_codes,
    ARRAY_AGG(IF(preparation_kind = 'fixative', meaning, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS fixative_meanings,
    ARRAY_AGG(IF(preparation_kind = 'fixative', code, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS fixative_codes,
    ARRAY_AGG(IF(preparation_kind = 'staining', meaning, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS staining_meanings,
    ARRAY_AGG(IF(preparation_kind = 'staining', code, NULL) IGNORE NULLS ORDER BY meaning, code)
      AS staining_codes
  FROM preparation_codes
  GROUP BY SeriesInstanceUID
)

SELECT
  series_values.SeriesInstanceUID,
  series_values.Modality,
  IFNULL(preparations.embedding_meanings, []) AS embeddingMedium_CodeMeaning,
  IFNULL(preparations.embedding_codes, []) AS embeddingMedium_code_designator_value_str,
  IFNULL(preparations.fixative_meanings, []) AS tissueFixative_CodeMeaning,
  IFNULL(preparations.fixative_codes, []) AS tissueFixative_code_designator_value_str,
  IFNULL(preparations.staining_meanings, []) AS staining_usingSubstance_CodeMeaning,
  IFNULL(preparations.staining_codes, []) AS staining_usingSubstance_code_designator_value_str,
  IF(
    series_values.min_spacing_mm = 0,
    0,
    ROUND(
      series_values.min_spacing_mm,
      CAST(1 - FLOOR(LOG10(ABS(series_values.min_spacing_mm))) AS INT64)
    )
  ) AS min_PixelSpacing_2sf,
  series_values.max_TotalPixelMatrixColumns,
  series_values.max_TotalPixelMatrixRows,
  SAFE_CAST(ROUND(SAFE_CAST(TRIM(series_values.objective_lens_power) AS FLOAT64)) AS INT64)
    AS ObjectiveLensPower,
  series_values.structure_code.code AS primaryAnatomicStructure_code_designator_value_str,
  series_values.structure_code.meaning AS primaryAnatomicStructure_CodeMeaning,
  series_values.structure_modifier_code.code
    AS primaryAnatomicStructureModifier_code_designator_value_str,
  series_values.structure_modifier_code.meaning AS primaryAnatomicStructureModifier_CodeMeaning,
  series_values.illumination_code.code AS illuminationType_code_designator_value_str,
  series_values.illumination_code.meaning AS illuminationType_CodeMeaning,
  series_values.ContainerIdentifier,
  series_values.diagnosis_code.code AS admittingDiagnosis_code_designator_value_str,
  series_values.diagnosis_code.meaning AS admittingDiagnosis_CodeMeaning,
  series_values.collection_id,
  series_values.instance_count
FROM series_values
LEFT JOIN preparations
  ON preparations.SeriesInstanceUID = series_values.SeriesInstanceUID
