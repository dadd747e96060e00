"""Reaching objects: bucket clients for gs:// and s3:// sources, and the warehouse's store.

- ``refs``: what a listing knows of one object (``ObjectRef``), and a listing failure;
- ``urls``: the one set of URL helpers (``gs://`` and ``s3://`` parsing, joining);
- ``gcs``: the one way to reach Cloud Storage (endpoint, credentials, per-process clients);
- ``buckets``: globs, listings, ranged reads with request counts (sources);
- ``objectstore``: where warehouse files live, a local folder or a gs:// prefix.

The lowest stage: it knows nothing of DICOM, tables or Beam.
"""
