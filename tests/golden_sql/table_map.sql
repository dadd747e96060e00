-- A table map sends a name, as written with its project and dataset, to another table.
-- table-map: my-project.my_dataset.instances=dicom_metadata
-- expect: [6]
SELECT COUNT(*) FROM `my-project.my_dataset.instances`
