"""Reaching objects: bucket clients for gs:// and s3:// sources, and the warehouse's store.

- ``refs``: what a listing knows of one object (``ObjectRef``), and a listing failure;
- ``buckets``: bucket URLs and globs, listings, ranged reads with request counts (sources);
- ``objectstore``: where warehouse files live, a local folder or a gs:// prefix.

The lowest stage: it knows nothing of DICOM, tables or Beam.
"""
