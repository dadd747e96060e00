-- One row per numeric measurement (NUM content item) of every TID 1500 measurement group: the
-- IDC view of the same name, with its column names, so that IDC's queries over
-- `quantitative_measurements` run here. Built on measurement_groups, so a measurement of a
-- group without a finding, finding site or segment reference is a row too (NULL there), not
-- dropped as in IDC's view.
--
-- Columns:
-- PatientID: Patient ID (0010,0020) of the SR.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the SR.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the SR.
-- SeriesDescription: Series Description (0008,103E) of the SR.
-- measurementGroup_number: the group's number (see measurement_groups).
-- segmentationInstanceUID: SOP Instance UID of the segmentation the group references.
-- segmentationSeriesUID: Series Instance UID of that segmentation.
-- segmentationSegmentNumber: number of the referenced segment in that segmentation.
-- sourceSegmentedSeriesUID: series the referenced segmentation was made from.
-- trackingIdentifier: the group's Tracking Identifier (112039, DCM).
-- trackingUniqueIdentifier: the group's Tracking Unique Identifier (112040, DCM).
-- Quantity: concept name code of the measurement (such as Volume, Diameter) as
--   STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>.
-- derivationModifier: concept code of the measurement's Derivation (121401, DCM) modifier
--   (such as Mean, Maximum) as STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>; its
--   fields are NULL when the measurement has none.
-- lateralityModifier: concept code of the Laterality (272741003, SCT) modifier of the
--   group's finding site as STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>; its
--   fields are NULL when there is none.
-- Value: first Numeric Value (0040,A30A) of the measurement as NUMERIC (BigQuery's 38 digits,
--   9 after the point); NULL when it is not a number.
-- Units: first item of the measurement's Measurement Units Code Sequence (0040,08EA) as
--   STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning> (UCUM codes such as mm, mm3).
-- finding: the group's Finding (121071, DCM) code.
-- findingSite: the group's first Finding Site code.
-- measurement_index: 0-based position of the NUM item among the group's content items.
-- value_float64: the same first Numeric Value as FLOAT64, for values NUMERIC would round
--   (smaller than 1e-9 or with more than 9 decimals).

WITH

numeric_items AS (
  -- every NUM content item directly inside a measurement group
  SELECT
    grp.*,
    item,
    item_index
  FROM measurement_groups AS grp
  CROSS JOIN UNNEST(grp.contentSequence.ContentSequence) AS item WITH OFFSET AS item_index
  WHERE item.ValueType = 'NUM'
),

finding_sites AS (
  -- the laterality that modifies each group's first finding site, where it has one
  SELECT
    grp.SOPInstanceUID,
    grp.container_index,
    grp.measurementGroup_number,
    (
      SELECT AS STRUCT
        modifier.ConceptCodeSequence[SAFE_OFFSET(0)].CodeValue AS CodeValue,
        modifier.ConceptCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator
          AS CodingSchemeDesignator,
        modifier.ConceptCodeSequence[SAFE_OFFSET(0)].CodeMeaning AS CodeMeaning
      FROM UNNEST(site.ContentSequence) AS modifier WITH OFFSET AS position
      WHERE
        modifier.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '272741003'
        AND modifier.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'SCT'
      ORDER BY position
      LIMIT 1
    ) AS laterality
  FROM measurement_groups AS grp
  CROSS JOIN UNNEST(grp.contentSequence.ContentSequence) AS site WITH OFFSET AS site_index
  WHERE
    site.ValueType = 'CODE'
    AND (
      (
        site.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '363698007'
        AND site.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'SCT'
      )
      OR (
        site.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = 'G-C0E3'
        AND site.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'SRT'
      )
    )
  QUALIFY
    ROW_NUMBER() OVER (
      PARTITION BY grp.SOPInstanceUID, grp.container_index, grp.measurementGroup_number
      ORDER BY site_index
    ) = 1
)

SELECT
  numeric_items.PatientID,
  numeric_items.SOPInstanceUID,
  numeric_items.SeriesInstanceUID,
  numeric_items.SeriesDescription,
  numeric_items.measurementGroup_number,
  numeric_items.segmentationInstanceUID,
  numeric_items.segmentationSeriesUID,
  numeric_items.segmentationSegmentNumber,
  numeric_items.sourceSegmentedSeriesUID,
  numeric_items.trackingIdentifier,
  numeric_items.trackingUniqueIdentifier,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(numeric_items.item.ConceptNameCodeSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS Quantity,
  STRUCT(
    derivation.ConceptCodeSequence[SAFE_OFFSET(0)].CodeValue AS CodeValue,
    derivation.ConceptCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator
      AS CodingSchemeDesignator,
    derivation.ConceptCodeSequence[SAFE_OFFSET(0)].CodeMeaning AS CodeMeaning
  ) AS derivationModifier,
  STRUCT(
    finding_sites.laterality.CodeValue AS CodeValue,
    finding_sites.laterality.CodingSchemeDesignator AS CodingSchemeDesignator,
    finding_sites.laterality.CodeMeaning AS CodeMeaning
  ) AS lateralityModifier,
  SAFE_CAST(
    TRIM(numeric_items.item.MeasuredValueSequence[SAFE_OFFSET(0)].NumericValue[SAFE_OFFSET(0)])
    AS NUMERIC
  ) AS Value,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM
      UNNEST(
        numeric_items.item.MeasuredValueSequence[SAFE_OFFSET(0)].MeasurementUnitsCodeSequence
      ) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS Units,
  numeric_items.finding,
  numeric_items.findingSite,
  numeric_items.item_index AS measurement_index,
  SAFE_CAST(
    TRIM(numeric_items.item.MeasuredValueSequence[SAFE_OFFSET(0)].NumericValue[SAFE_OFFSET(0)])
    AS FLOAT64
  ) AS value_float64
FROM numeric_items
LEFT JOIN UNNEST(
  ARRAY(
    SELECT modifier
    FROM UNNEST(numeric_items.item.ContentSequence) AS modifier WITH OFFSET AS position
    WHERE
      modifier.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '121401'
      AND modifier.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'DCM'
    ORDER BY position
    LIMIT 1
  )
) AS derivation
LEFT JOIN finding_sites
  ON
    finding_sites.SOPInstanceUID = numeric_items.SOPInstanceUID
    AND finding_sites.container_index = numeric_items.container_index
    AND finding_sites.measurementGroup_number = numeric_items.measurementGroup_number
