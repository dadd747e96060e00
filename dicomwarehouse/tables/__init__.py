"""The table contract: how DICOM is typed in the warehouse, and the tables' schemas.

Every stage writes toward these types, so this package sits low: it imports only ``io``.

- ``vr``: the VR type map (Healthcare API export rules) and data-dictionary columns;
- ``schema``: Arrow schemas of dicom_metadata (from column paths), dicom_elements, ingest_errors;
- ``limits``: BigQuery's column and depth limits, applied when a run's schema is chosen;
- ``parquet``: Arrow tables to Parquet shards that BigQuery and DuckDB both read;
- ``bigquery_schema`` and ``descriptions``: the same schemas as BigQuery JSON, with descriptions.
"""
