-- One row per coded value of a specimen preparation step, for every object that describes its
-- specimens (slide microscopy): each code of the Concept Code Sequence of each item of
-- Specimen Preparation Step Content Item Sequence, of each step of Specimen Preparation
-- Sequence, of each item of Specimen Description Sequence. The steps that cohort queries
-- look for are named in preparation_kind: the staining substance (Using substance,
-- 424361007, SCT), the fixative (Tissue Fixative, 430864009, SCT) and the embedding medium
-- (Embedding medium, 430863003, SCT). The sm_index, sm_instance_index and
-- dicom_metadata_curated_series_level views read it.
--
-- Columns:
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the object.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the object.
-- specimen_index: 0-based position of the specimen in Specimen Description Sequence
--   (0040,0560).
-- SpecimenIdentifier: Specimen Identifier (0040,0551) of the specimen.
-- step_index: 0-based position of the step in Specimen Preparation Sequence (0040,0610).
-- item_index: 0-based position of the content item in Specimen Preparation Step Content Item
--   Sequence (0040,0612).
-- concept_code_designator_value_str: CodingSchemeDesignator:CodeValue of the item's concept
--   name (what the item says, such as SCT:424361007).
-- concept_CodeMeaning: Code Meaning of the item's concept name.
-- preparation_kind: staining, fixative or embedding for the concept names above, NULL for
--   any other.
-- code_designator_value_str: CodingSchemeDesignator:CodeValue of the coded value (such as
--   SCT:12710003).
-- CodeMeaning: Code Meaning of the coded value (such as hematoxylin).

WITH

items AS (
  SELECT
    object.SOPInstanceUID,
    object.SeriesInstanceUID,
    specimen_index,
    specimen.SpecimenIdentifier,
    step_index,
    item_index,
    item.ConceptNameCodeSequence[SAFE_OFFSET(0)] AS concept,
    item.ConceptCodeSequence AS coded_values
  FROM dicom_metadata AS object
  CROSS JOIN UNNEST(object.SpecimenDescriptionSequence) AS specimen WITH OFFSET AS specimen_index
  CROSS JOIN UNNEST(specimen.SpecimenPreparationSequence) AS step WITH OFFSET AS step_index
  CROSS JOIN
    UNNEST(step.SpecimenPreparationStepContentItemSequence) AS item WITH OFFSET AS item_index
)

SELECT
  items.SOPInstanceUID,
  items.SeriesInstanceUID,
  items.specimen_index,
  items.SpecimenIdentifier,
  items.step_index,
  items.item_index,
  CONCAT(items.concept.CodingSchemeDesignator, ':', items.concept.CodeValue)
    AS concept_code_designator_value_str,
  items.concept.CodeMeaning AS concept_CodeMeaning,
  CASE CONCAT(items.concept.CodingSchemeDesignator, ':', items.concept.CodeValue)
    WHEN 'SCT:424361007' THEN 'staining'
    WHEN 'SCT:430864009' THEN 'fixative'
    WHEN 'SCT:430863003' THEN 'embedding'
  END AS preparation_kind,
  CONCAT(coded_value.CodingSchemeDesignator, ':', coded_value.CodeValue)
    AS code_designator_value_str,
  coded_value.CodeMeaning
FROM items
CROSS JOIN UNNEST(items.coded_values) AS coded_value
