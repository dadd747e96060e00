-- One row per qualitative evaluation (CODE content item other than the finding and the finding
-- sites) of every TID 1500 measurement group: the IDC view of the same name, with its column
-- names, so that IDC's queries over `qualitative_measurements` run here. Built on
-- measurement_groups, so an evaluation of a group without a finding, finding site or segment
-- reference is a row too (NULL there), not dropped as in IDC's view.
--
-- Columns:
-- PatientID: Patient ID (0010,0020) of the SR.
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the SR.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the SR.
-- measurementGroup_number: the group's number (see measurement_groups).
-- segmentationInstanceUID: SOP Instance UID of the segmentation the group references.
-- segmentationSeriesUID: Series Instance UID of that segmentation.
-- segmentationSegmentNumber: number of the referenced segment in that segmentation.
-- sourceSegmentedSeriesUID: series the referenced segmentation was made from.
-- trackingIdentifier: the group's Tracking Identifier (112039, DCM).
-- trackingUniqueIdentifier: the group's Tracking Unique Identifier (112040, DCM).
-- Quantity: concept name code of the evaluation (what was assessed, such as Margin) as
--   STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>.
-- Value: concept code of the evaluation (the answer, such as Spiculated) as STRUCT<CodeValue,
--   CodingSchemeDesignator, CodeMeaning>.
-- finding: the group's Finding (121071, DCM) code.
-- findingSite: the group's first Finding Site code.
-- SeriesDescription: Series Description (0008,103E) of the SR.
-- evaluation_index: 0-based position of the CODE item among the group's content items.

SELECT
  grp.PatientID,
  grp.SOPInstanceUID,
  grp.SeriesInstanceUID,
  grp.measurementGroup_number,
  grp.segmentationInstanceUID,
  grp.segmentationSeriesUID,
  grp.segmentationSegmentNumber,
  grp.sourceSegmentedSeriesUID,
  grp.trackingIdentifier,
  grp.trackingUniqueIdentifier,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(evaluation.ConceptNameCodeSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS Quantity,
  (
    SELECT AS STRUCT code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning
    FROM UNNEST(evaluation.ConceptCodeSequence) AS code WITH OFFSET AS position
    ORDER BY position
    LIMIT 1
  ) AS Value,
  grp.finding,
  grp.findingSite,
  grp.SeriesDescription,
  evaluation_index
FROM measurement_groups AS grp
CROSS JOIN UNNEST(grp.contentSequence.ContentSequence) AS evaluation WITH OFFSET AS evaluation_index
WHERE
  evaluation.ValueType = 'CODE'
  -- the finding (121071, DCM) and finding sites (363698007, SCT; G-C0E3, SRT) are not evaluations
  AND IFNULL(
    CONCAT(
      evaluation.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator,
      ':',
      evaluation.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue
    ),
    ''
  ) NOT IN ('DCM:121071', 'SCT:363698007', 'SRT:G-C0E3')
