"""Publishing a warehouse to BigQuery: schemas, the publish plan, load jobs and views.

- ``descriptions``: table and column descriptions (schema docs and the DICOM dictionary);
- ``schema``: Arrow schemas to BigQuery JSON schemas; counting columns and RECORD depth.
"""

__all__: list[str] = []
