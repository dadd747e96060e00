-- DuckDB setup for the golden GoogleSQL cases: small tables typed as dicom_metadata is (DS
-- and IS as VARCHAR, multi-valued attributes as lists, sequences as lists of structs).
CREATE TABLE dicom_metadata AS
SELECT *
FROM (
  VALUES
    ('ct1', 'st1', 'se1', 'CT', '2', ['ORIGINAL', 'PRIMARY', 'AXIAL'],
     ['1', '0', '0', '0', '0.8', '-0.6'], '70.588235294118',
     'gs://idc-open-data/se1/ct1.dcm', 1000, NULL),
    ('ct2', 'st1', 'se1', 'CT', '1', ['ORIGINAL', 'PRIMARY'],
     ['1', '0', '0', '0', '1', '0'], '0.0000000005',
     's3://idc-open-data/se1/ct2.dcm', 2000, NULL),
    ('ct3', 'st1', 'se1', 'CT', '3', ['DERIVED', 'SECONDARY'],
     NULL, 'abc',
     '/data/se1/ct3.dcm', 3000, NULL),
    ('seg1', 'st1', 'se2', 'SEG', '1', ['DERIVED', 'PRIMARY'],
     NULL, NULL,
     'gs://idc-open-data/se2/seg1.dcm', 4000, NULL),
    ('sr1', 'st1', 'se3', 'SR', '1', NULL,
     NULL, NULL,
     'gs://idc-open-data/se3/sr1.dcm', 5000,
     [
       {'ValueType': 'CODE',
        'ConceptNameCodeSequence': [{'CodeValue': '121058', 'CodeMeaning': 'Procedure reported'}],
        'TextValue': NULL,
        'ContentSequence': []},
       {'ValueType': 'CONTAINER',
        'ConceptNameCodeSequence': [{'CodeValue': '126010', 'CodeMeaning': 'Imaging Measurements'}],
        'TextValue': NULL,
        'ContentSequence': [
          {'ValueType': 'CONTAINER',
           'ConceptNameCodeSequence': [{'CodeValue': '125007', 'CodeMeaning': 'Measurement Group'}],
           'TextValue': NULL},
          {'ValueType': 'CONTAINER',
           'ConceptNameCodeSequence': [{'CodeValue': '125007', 'CodeMeaning': 'Measurement Group'}],
           'TextValue': NULL},
          {'ValueType': 'TEXT',
           'ConceptNameCodeSequence': [{'CodeValue': '121106', 'CodeMeaning': 'Comment'}],
           'TextValue': 'not a group'},
          {'ValueType': 'CONTAINER',
           'ConceptNameCodeSequence': [{'CodeValue': '125007', 'CodeMeaning': 'Measurement Group'}],
           'TextValue': NULL}
        ]}
     ]),
    ('mr1', 'st2', 'se4', NULL, '1', ['ORIGINAL'],
     NULL, '3',
     'gs://idc-open-data/se4/mr1.dcm', 6000, [])
) AS v(
  SOPInstanceUID, StudyInstanceUID, SeriesInstanceUID, Modality, InstanceNumber, ImageType,
  ImageOrientationPatient, SliceThickness, source_url, source_size, ContentSequence
);

CREATE VIEW dicom_all AS SELECT * FROM dicom_metadata;

CREATE TABLE numbers AS
SELECT *
FROM (
  VALUES (2.5::DOUBLE, 0::BIGINT), (-2.5, 0), (1.25, 1), (1234.5678, -2), (0.125, 2)
) AS v(x, digits);
