-- BigQuery FORMAT uses printf-style specifiers: %d integer, %s string, %5.2f fixed point,
-- %x hexadecimal, %% a percent sign, %t any value as text (String functions, FORMAT).
-- expect: ["ct1 #2:  3.14|ff|100%|[1, 2]"]
SELECT FORMAT('%s #%d: %5.2f|%x|100%%|%t', SOPInstanceUID, 2, 3.14159, 255, [1, 2])
FROM dicom_all
WHERE SOPInstanceUID = 'ct1'
