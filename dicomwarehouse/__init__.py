"""dicomwarehouse: turn folders and buckets of DICOM files into an SQL warehouse.

The package is cut by stage, in the order the data flows, and each stage imports only the
stages below it (``errors`` < ``io`` < ``tables`` < ``sources``, ``dicom``, ``warehouse`` <
``bigquery`` < ``pipeline`` < ``cli``)::

    sources (what to read) -> dicom (read, parse, flatten one object) -> tables (schemas,
    Parquet) -> pipeline (the Beam job) -> warehouse (commit, DuckDB, views) -> bigquery

``io`` reaches buckets and the warehouse's store for all of them. Beam is imported only by
``pipeline``; the Google Cloud libraries only where a gs:// or BigQuery call is made.
``api`` (``dicomwarehouse.open``, ``dicomwarehouse.ingest``) is the notebooks' entry point,
above every stage, as the command line is.
"""

import logging
from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "ingest", "open"]

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    """``open`` and ``ingest`` (``dicomwarehouse.api``), imported on first use so that
    ``import dicomwarehouse`` stays light (no DuckDB, pandas or Beam until asked for)."""
    if name in ("open", "ingest"):
        from dicomwarehouse import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
