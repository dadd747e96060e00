-- One row per slide microscopy series (Modality SM), in the manner of idc-index-data's
-- sm_index: the slide, its specimen preparation (stains, fixative, embedding medium), the
-- resolution and size of its finest level, the objective and the anatomy. These are the SM
-- rows of dicom_metadata_curated_series_level, whose columns have the same meaning.
--
-- Columns:
-- SeriesInstanceUID: Series Instance UID (0020,000E), the key.
-- ContainerIdentifier: Container Identifier (0040,0512), the slide's identifier.
-- embeddingMedium_CodeMeaning: code meanings of the embedding media, distinct, sorted.
-- embeddingMedium_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- tissueFixative_CodeMeaning: code meanings of the tissue fixatives.
-- tissueFixative_code_designator_value_str: CodingSchemeDesignator:CodeValue of the same
--   codes, in the same order.
-- staining_usingSubstance_CodeMeaning: code meanings of the staining substances.
-- staining_usingSubstance_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   same codes, in the same order.
-- min_PixelSpacing_2sf: smallest pixel spacing of the series in mm, 2 significant digits.
-- max_TotalPixelMatrixColumns: largest Total Pixel Matrix Columns (0048,0006).
-- max_TotalPixelMatrixRows: largest Total Pixel Matrix Rows (0048,0007).
-- ObjectiveLensPower: Objective Lens Power (0048,0112), as INT64.
-- primaryAnatomicStructure_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   specimen's primary anatomic structure.
-- primaryAnatomicStructure_CodeMeaning: its Code Meaning.
-- primaryAnatomicStructureModifier_code_designator_value_str: CodingSchemeDesignator:CodeValue
--   of that structure's modifier.
-- primaryAnatomicStructureModifier_CodeMeaning: its Code Meaning.
-- illuminationType_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   illumination type.
-- illuminationType_CodeMeaning: its Code Meaning.
-- admittingDiagnosis_code_designator_value_str: CodingSchemeDesignator:CodeValue of the
--   admitting diagnosis.
-- admittingDiagnosis_CodeMeaning: its Code Meaning.
-- collection_id: the series' collection_id values, comma-separated.
-- instance_count: number of distinct SOPInstanceUIDs (pyramid levels and other images).

SELECT
  SeriesInstanceUID,
  ContainerIdentifier,
  embeddingMedium_CodeMeaning,
  embeddingMedium_code_designator_value_str,
  tissueFixative_CodeMeaning,
  tissueFixative_code_designator_value_str,
  staining_usingSubstance_CodeMeaning,
  staining_usingSubstance_code_designator_value_str,
  min_PixelSpacing_2sf,
  max_TotalPixelMatrixColumns,
  max_TotalPixelMatrixRows,
  ObjectiveLensPower,
  primaryAnatomicStructure_code_designator_value_str,
  primaryAnatomicStructure_CodeMeaning,
  primaryAnatomicStructureModifier_code_designator_value_str,
  primaryAnatomicStructureModifier_CodeMeaning,
  illuminationType_code_designator_value_str,
  illuminationType_CodeMeaning,
  admittingDiagnosis_code_designator_value_str,
  admittingDiagnosis_CodeMeaning,
  collection_id,
  instance_count
FROM dicom_metadata_curated_series_level
WHERE Modality = 'SM'
