"""dicomwarehouse: turn folders and buckets of DICOM files into an SQL warehouse.

The package is cut by stage, in the order the data flows, and each stage imports only the
stages below it (``errors`` < ``io`` < ``tables`` < ``sources``, ``dicom``, ``warehouse`` <
``bigquery`` < ``pipeline`` < ``cli``)::

    sources (what to read) -> dicom (read, parse, flatten one object) -> tables (schemas,
    Parquet) -> pipeline (the Beam job) -> warehouse (commit, DuckDB, views) -> bigquery

``io`` reaches buckets and the warehouse's store for all of them. Beam is imported only by
``pipeline``; the Google Cloud libraries only where a gs:// or BigQuery call is made.
"""

import logging

__version__ = "0.1.0"
__all__ = ["__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
