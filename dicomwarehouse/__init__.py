"""dicomwarehouse: turn folders and buckets of DICOM files into an SQL warehouse.

The package is cut by stage: ``sources`` (what to read), ``read`` (header-only parse),
``flatten`` and ``values`` (rows), ``schema`` and ``parquet`` (tables), ``pipeline`` (the Beam
job), ``warehouse`` (DuckDB), ``views`` (the SQL of sql/), ``cli``. Beam is imported only by
``pipeline``.
"""

import logging

__version__ = "0.1.0"
__all__ = ["__version__"]

logging.getLogger(__name__).addHandler(logging.NullHandler())
