-- IDC's public dataset names (idc_current, idc_vNN) and any project.dataset prefix address
-- the warehouse's table of the same name.
-- expect: [6, 6, 6]
SELECT
  (SELECT COUNT(*) FROM `bigquery-public-data.idc_current.dicom_all`),
  (SELECT COUNT(*) FROM `bigquery-public-data`.idc_v19.dicom_all),
  (SELECT COUNT(*) FROM idc_current.dicom_all)
