-- One row per slide microscopy object (Modality SM), in the manner of idc-index-data's
-- sm_instance_index: the specimen preparation of the object (from every specimen it
-- describes, see specimen_preparation_steps), its pixel spacing, image type, encoding and
-- size, so that one pyramid level or one stain can be picked out of a series.
--
-- Columns:
-- SOPInstanceUID: SOP Instance UID (0008,0018), the key.
-- SeriesInstanceUID: Series Instance UID (0020,000E).
-- embeddingMedium_CodeMeaning: code meanings of the object's embedding media, distinct,
--   sorted.
-- embeddingMedium_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- tissueFixative_CodeMeaning: code meanings of the tissue fixatives.
-- tissueFixative_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- staining_usingSubstance_CodeMeaning: code meanings of the staining substances.
-- staining_usingSubstance_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   same codes, in the same order.
-- PixelSpacing_0: first value of the Pixel Spacing in the Pixel Measures Sequence of the
--   Shared Functional Groups Sequence (5200,9229), in mm, as FLOAT64.
-- ImageType: Image Type (0008,0008), all values (VOLUME, LABEL, OVERVIEW, THUMBNAIL...).
-- TransferSyntaxUID: Transfer Syntax UID (0002,0010) of the file.
-- instance_size: size of the object in bytes (source_size).
-- TotalPixelMatrixColumns: Total Pixel Matrix Columns (0048,0006).
-- TotalPixelMatrixRows: Total Pixel Matrix Rows (0048,0007).
-- crdc_instance_uuid: IDC's UUID of the object (dicom_metadata's crdc_instance_uuid: from the
--   ingest manifest, else from an IDC-style object URL; NULL otherwise).
-- source_url: URL of the object.

WITH

preparation_codes AS (
  SELECT DISTINCT
    SOPInstanceUID,
    preparation_kind,
    IFNULL(CodeMeaning, '') AS meaning,
    IFNULL(code_designator_value_str, '') AS code
  FROM specimen_preparation_steps
  WHERE preparation_kind IS NOT NULL
),

preparations AS (
  SELECT
    SOPInstanceUID,
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
  GROUP BY SOPInstanceUID
)

SELECT
  slide.SOPInstanceUID,
  slide.SeriesInstanceUID,
  IFNULL(preparations.embedding_meanings, []) AS embeddingMedium_CodeMeaning,
  IFNULL(preparations.embedding_codes, []) AS embeddingMedium_code_designator_value_str,
  IFNULL(preparations.fixative_meanings, []) AS tissueFixative_CodeMeaning,
  IFNULL(preparations.fixative_codes, []) AS tissueFixative_code_designator_value_str,
  IFNULL(preparations.staining_meanings, []) AS staining_usingSubstance_CodeMeaning,
  IFNULL(preparations.staining_codes, []) AS staining_usingSubstance_code_designator_value_str,
  SAFE_CAST(
    TRIM(
      slide.SharedFunctionalGroupsSequence[SAFE_OFFSET(0)]
        .PixelMeasuresSequence[SAFE_OFFSET(0)].PixelSpacing[SAFE_OFFSET(0)]
    ) AS FLOAT64
  ) AS PixelSpacing_0,
  slide.ImageType,
  slide.TransferSyntaxUID,
  slide.source_size AS instance_size,
  slide.TotalPixelMatrixColumns,
  slide.TotalPixelMatrixRows,
  slide.crdc_instance_uuid,
  slide.source_url
FROM dicom_metadata AS slide
LEFT JOIN preparations
  ON preparations.SOPInstanceUID = slide.SOPInstanceUID
WHERE slide.Modality = 'SM'
