-- One row per measurement group of every Structured Report that follows TID 1500 (Measurement
-- Report): the IDC view of the same name, with its column names, so that IDC's queries over
-- `measurement_groups` run here. A group is a CONTAINER content item named Measurement Group
-- (125007, DCM) inside a container of the report's root content (Imaging Measurements). Every
-- group is a row: one without a tracking identifier, finding, finding site, source series or
-- segment reference has NULL there (IDC's view drops it). When a group has several content
-- items of one kind (two finding sites), the first stands for it.
--
-- Columns:
-- SOPInstanceUID: SOP Instance UID (0008,0018) of the SR.
-- SeriesInstanceUID: Series Instance UID (0020,000E) of the SR.
-- measurementGroup_number: 0-based position of the group among the content items of the
--   container that holds it.
-- trackingUniqueIdentifier: UID of the group's Tracking Unique Identifier (112040, DCM) item.
-- trackingIdentifier: text of the group's Tracking Identifier (112039, DCM) item.
-- PatientID: Patient ID (0010,0020) of the SR.
-- SeriesDescription: Series Description (0008,103E) of the SR.
-- finding: concept code of the group's Finding (121071, DCM) item as STRUCT<CodeValue,
--   CodingSchemeDesignator, CodeMeaning>; NULL when the group has none.
-- findingSite: concept code of the group's first Finding Site (363698007, SCT; or G-C0E3,
--   SRT) item as STRUCT<CodeValue, CodingSchemeDesignator, CodeMeaning>.
-- sourceSegmentedSeriesUID: UID of the group's Source series for segmentation (121232, DCM)
--   item: the series the referenced segmentation was made from.
-- segmentationInstanceUID: ReferencedSOPInstanceUID of the group's first IMAGE item that
--   references a Segmentation (SOP class 1.2.840.10008.5.1.4.1.1.66.4); NULL for a group
--   without a segment reference.
-- segmentationSeriesUID: Series Instance UID of that segmentation, when it is in the
--   warehouse.
-- segmentationSegmentNumber: first Referenced Segment Number (0062,000B) of that reference.
-- contentSequence: the group's content item, with its ContentSequence (the group's
--   measurements, evaluations and references).
-- StudyInstanceUID: Study Instance UID (0020,000D) of the SR.
-- container_index: 0-based position, in the report's root content, of the container that
--   holds the group.

WITH

measurement_reports AS (
  -- SR objects whose content follows TID 1500 (Measurement Report) of DCMR
  SELECT
    PatientID,
    StudyInstanceUID,
    SeriesInstanceUID,
    SOPInstanceUID,
    SeriesDescription,
    ContentSequence
  FROM dicom_metadata
  WHERE
    SOPClassUID IN (
      '1.2.840.10008.5.1.4.1.1.88.11',
      '1.2.840.10008.5.1.4.1.1.88.22',
      '1.2.840.10008.5.1.4.1.1.88.33',
      '1.2.840.10008.5.1.4.1.1.88.34',
      '1.2.840.10008.5.1.4.1.1.88.35'
    )
    AND EXISTS (
      SELECT 1
      FROM UNNEST(ContentTemplateSequence) AS template
      WHERE template.TemplateIdentifier = '1500' AND template.MappingResource = 'DCMR'
    )
),

group_items AS (
  -- every Measurement Group container one level below the report's root content
  SELECT
    report.PatientID,
    report.StudyInstanceUID,
    report.SeriesInstanceUID,
    report.SOPInstanceUID,
    report.SeriesDescription,
    container_index,
    group_index,
    measurement_group
  FROM measurement_reports AS report
  CROSS JOIN UNNEST(report.ContentSequence) AS container WITH OFFSET AS container_index
  CROSS JOIN UNNEST(container.ContentSequence) AS measurement_group WITH OFFSET AS group_index
  WHERE
    measurement_group.ValueType = 'CONTAINER'
    AND (
      (
        measurement_group.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '125007'
        AND measurement_group.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator
          = 'DCM'
      )
      OR measurement_group.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeMeaning
        = 'Measurement Group'
    )
),

described AS (
  -- what each group says about itself, from its content items (the first of each kind)
  SELECT
    group_items.*,
    (
      SELECT item.UID
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'UIDREF'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '112040'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'DCM'
      ORDER BY position
      LIMIT 1
    ) AS tracking_uid,
    (
      SELECT item.TextValue
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'TEXT'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '112039'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'DCM'
      ORDER BY position
      LIMIT 1
    ) AS tracking_id,
    (
      SELECT AS STRUCT
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodeValue AS CodeValue,
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator
          AS CodingSchemeDesignator,
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodeMeaning AS CodeMeaning
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'CODE'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '121071'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'DCM'
      ORDER BY position
      LIMIT 1
    ) AS finding_code,
    (
      SELECT AS STRUCT
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodeValue AS CodeValue,
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator
          AS CodingSchemeDesignator,
        item.ConceptCodeSequence[SAFE_OFFSET(0)].CodeMeaning AS CodeMeaning
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'CODE'
        AND (
          (
            item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '363698007'
            AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'SCT'
          )
          OR (
            item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = 'G-C0E3'
            AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'SRT'
          )
        )
      ORDER BY position
      LIMIT 1
    ) AS finding_site_code,
    (
      SELECT item.UID
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'UIDREF'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodeValue = '121232'
        AND item.ConceptNameCodeSequence[SAFE_OFFSET(0)].CodingSchemeDesignator = 'DCM'
      ORDER BY position
      LIMIT 1
    ) AS source_series_uid,
    (
      SELECT item.ReferencedSOPSequence[SAFE_OFFSET(0)]
      FROM UNNEST(measurement_group.ContentSequence) AS item WITH OFFSET AS position
      WHERE
        item.ValueType = 'IMAGE'
        AND item.ReferencedSOPSequence[SAFE_OFFSET(0)].ReferencedSOPClassUID
          = '1.2.840.10008.5.1.4.1.1.66.4'
      ORDER BY position
      LIMIT 1
    ) AS segment_reference
  FROM group_items
)

SELECT
  described.SOPInstanceUID,
  described.SeriesInstanceUID,
  described.group_index AS measurementGroup_number,
  described.tracking_uid AS trackingUniqueIdentifier,
  described.tracking_id AS trackingIdentifier,
  described.PatientID,
  described.SeriesDescription,
  described.finding_code AS finding,
  described.finding_site_code AS findingSite,
  described.source_series_uid AS sourceSegmentedSeriesUID,
  described.segment_reference.ReferencedSOPInstanceUID AS segmentationInstanceUID,
  segmentation.SeriesInstanceUID AS segmentationSeriesUID,
  described.segment_reference.ReferencedSegmentNumber[SAFE_OFFSET(0)]
    AS segmentationSegmentNumber,
  described.measurement_group AS contentSequence,
  described.StudyInstanceUID,
  described.container_index
FROM described
LEFT JOIN instances AS segmentation
  ON segmentation.SOPInstanceUID = described.segment_reference.ReferencedSOPInstanceUID
