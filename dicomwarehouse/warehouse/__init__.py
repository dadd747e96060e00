"""The warehouse: committed Parquet per run, in a local folder or under a gs:// prefix.

Cut by what each part is for: ``layout`` (where every file of a warehouse lives and which runs
are committed), ``lock`` (one writer at a time), ``commit`` (a run's commit and the clean-up of
runs that never committed), ``ledger`` (which version of which object each run saw),
``duckdb_file`` (the DuckDB views over the committed Parquet) and ``views`` (the curated SQL of
sql/). ``connect`` is the one name users need: a DuckDB connection to a local warehouse.
"""

from dicomwarehouse.warehouse.duckdb_file import connect

__all__ = ["connect"]
