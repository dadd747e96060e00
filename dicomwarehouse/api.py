"""The Python API for notebooks: open a warehouse, query it, list its tables, export cohorts.

::

    import dicomwarehouse
    wh = dicomwarehouse.open("warehouse")                 # a local folder or a gs:// prefix
    wh = dicomwarehouse.open(bigquery="project.dataset")  # a published BigQuery dataset
    wh.sql("SELECT Modality, COUNT(*) AS n FROM dicom_all GROUP BY 1")  # a pandas DataFrame
    wh.export("SELECT SeriesInstanceUID FROM series WHERE Modality = 'CT'", format="s5cmd")
    dicomwarehouse.ingest(["files/"], warehouse="warehouse")

The same object runs on either engine, so one notebook runs on both: write GoogleSQL with
``dialect="bigquery"`` and DuckDB runs it through ``warehouse.googlesql``. Without a
dialect, a query is in the engine's own (DuckDB's SQL locally, GoogleSQL on BigQuery).

A gs:// warehouse is copied (its committed runs' files only, never the DICOM objects) into a
temporary folder when opened, since DuckDB has no httpfs here; that suits header warehouses of
a few GB. Larger ones are for BigQuery (``publish bigquery``, then ``open(bigquery=...)``).

This module sits above ``warehouse``, ``bigquery`` and ``pipeline``; it imports each lazily
(Beam only when ``ingest`` is called, google-cloud-bigquery only for a BigQuery warehouse).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dicomwarehouse.errors import UsageError
from dicomwarehouse.io.urls import Location

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from dicomwarehouse.pipeline.run import IngestSummary

__all__ = ["BigQueryWarehouse", "DuckDBWarehouse", "Warehouse", "ingest", "open"]

Dialect = Literal["duckdb", "bigquery"]
_DIALECTS = ("duckdb", "bigquery")
_KINDS = {"BASE TABLE": "table", "TABLE": "table", "VIEW": "view", "MATERIALIZED_VIEW": "view"}


class Warehouse:
    """What both engines offer: queries as DataFrames, tables, columns and cohort export."""

    #: the engine's own SQL dialect, used when a call names none
    dialect: str = "duckdb"

    def _native(self, query: str, dialect: str | None) -> str:
        """``query`` in the engine's own dialect."""
        raise NotImplementedError

    def _arrow(self, query: str) -> pa.Table:
        """The rows of a query in the engine's own dialect, as an Arrow table."""
        raise NotImplementedError

    def _query_columns(self, query: str) -> list[str]:
        """The output columns of a query in the engine's own dialect, without its rows."""
        raise NotImplementedError

    def sql(self, query: str, dialect: Dialect | None = None) -> pd.DataFrame:
        """The rows of ``query`` as a pandas DataFrame."""
        raise NotImplementedError

    def relation(self, query: str, dialect: Dialect | None = None) -> duckdb.DuckDBPyRelation:
        """The query as a lazy DuckDB relation (DuckDB-backed warehouses only)."""
        raise NotImplementedError

    def tables(self) -> pd.DataFrame:
        """The tables and views users query: columns ``name``, ``kind``, ``description``."""
        raise NotImplementedError

    def columns(self, table: str) -> pd.DataFrame:
        """The columns of a table or view: ``column``, ``type``, ``description``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection (and a gs:// warehouse's local copy)."""

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def export(
        self,
        query: str,
        format: str = "s5cmd",
        output: str | Path | None = None,
        dialect: Dialect | None = None,
    ) -> str | Path:
        """Export the objects ``query`` names (see ``warehouse.export``).

        Returns the file's text when ``output`` is None (the bytes of a Parquet file cannot be
        text: ``format="parquet"`` needs an ``output``), else the path written.
        """
        from dicomwarehouse.warehouse.export import (
            ExportError,
            check_format,
            cohort_key,
            cohort_sql,
            folder_counts_sql,
            manifest_columns,
            render,
        )

        check_format(format)
        if format == "parquet" and output is None:
            raise ExportError("a Parquet export needs an output file")
        native = self._native(query, dialect)
        key = cohort_key(self._query_columns(native))
        extras = manifest_columns(self._query_columns("SELECT * FROM dicom_metadata LIMIT 0"))
        rows = self._arrow(cohort_sql(native, key, extras))
        counts: dict[str, int] = {}
        if format == "s5cmd":
            folders = self._arrow(folder_counts_sql()).to_pylist()
            counts = {row["folder"]: row["objects"] for row in folders}
        content = render(rows, format, counts, extras)
        if output is None:
            return content.decode("utf-8")
        path = Path(output)
        path.write_bytes(content)
        return path


def _check_dialect(dialect: str | None) -> None:
    if dialect is not None and dialect not in _DIALECTS:
        raise UsageError(f"unknown dialect {dialect!r}: 'duckdb' or 'bigquery'")


class DuckDBWarehouse(Warehouse):
    """A local warehouse (or a local copy of a gs:// one) through a DuckDB connection."""

    dialect = "duckdb"

    def __init__(self, root: Location, *, copy_of: str | None = None) -> None:
        from dicomwarehouse.warehouse.duckdb_file import connect

        self.root = str(copy_of or root)
        self._copy = Path(root) if copy_of else None
        self.connection: duckdb.DuckDBPyConnection = connect(root)

    def _native(self, query: str, dialect: str | None) -> str:
        _check_dialect(dialect)
        if dialect == "bigquery":
            from dicomwarehouse.warehouse.googlesql import translate

            return translate(query)
        return query

    def relation(self, query: str, dialect: Dialect | None = None) -> duckdb.DuckDBPyRelation:
        """The query as a DuckDB relation: lazy, for results too large for one DataFrame."""
        relation = self.connection.sql(self._native(query, dialect))
        if relation is None:
            raise UsageError("the statement returns no rows (a query is a SELECT)")
        return relation

    def sql(self, query: str, dialect: Dialect | None = None) -> pd.DataFrame:
        return self.relation(query, dialect).df()

    def _arrow(self, query: str) -> pa.Table:
        return self.connection.sql(query).fetch_arrow_table()

    def _query_columns(self, query: str) -> list[str]:
        return list(self.connection.sql(query).columns)

    def tables(self) -> pd.DataFrame:
        import pandas as pd

        from dicomwarehouse.tables.descriptions import TABLE_DESCRIPTIONS

        rows = self.connection.execute(
            "SELECT table_name, table_type, comment FROM ("
            "SELECT view_name AS table_name, 'VIEW' AS table_type, comment FROM duckdb_views() "
            "WHERE NOT internal UNION ALL "
            "SELECT table_name, 'BASE TABLE', comment FROM duckdb_tables()) "
            "ORDER BY table_name"
        ).fetchall()
        records = [
            {
                "name": name,
                "kind": _KINDS[kind],
                "description": comment or TABLE_DESCRIPTIONS.get(name) or _internal_text(name),
            }
            for name, kind, comment in rows
            if not _hidden(name)
        ]
        return pd.DataFrame(records, columns=["name", "kind", "description"])

    def columns(self, table: str) -> pd.DataFrame:
        import pandas as pd

        if _hidden(table) or table not in set(self.tables()["name"]):
            raise UsageError(f"no table or view named {table!r} (see tables())")
        rows = self.connection.execute(
            "SELECT column_name, data_type, comment FROM duckdb_columns() "
            "WHERE table_name = ? ORDER BY column_index",
            [table],
        ).fetchall()
        records = [
            {
                "column": name,
                "type": data_type,
                "description": comment or column_description(table, name),
            }
            for name, data_type, comment in rows
        ]
        return pd.DataFrame(records, columns=["column", "type", "description"])

    def close(self) -> None:
        self.connection.close()
        if self._copy is not None:
            shutil.rmtree(self._copy, ignore_errors=True)
            self._copy = None


def _hidden(name: str) -> bool:
    """DuckDB's helpers: the per-run Parquet views and the underscore tables."""
    return name.startswith("_") or name.endswith("_raw")


def _internal_text(name: str) -> str | None:
    from dicomwarehouse.warehouse.internal_sql import load_internal

    try:
        return load_internal(name).description
    except (FileNotFoundError, ValueError):
        return None


def column_description(table: str, column: str) -> str | None:
    """A column's description where the engine has none attached: the fixed columns of
    ``tables.descriptions``, the files of ``sql/internal``, then the DICOM dictionary."""
    from dicomwarehouse.tables.descriptions import COLUMN_DESCRIPTIONS, attribute_description

    base = table.removesuffix("_history")
    base = "dicom_metadata" if base == "dicom_all" else base
    fixed = COLUMN_DESCRIPTIONS.get(base, {}).get(column)
    if fixed:
        return fixed
    if table in ("ingest_objects",):
        from dicomwarehouse.warehouse.internal_sql import load_internal

        return load_internal(table).column_descriptions.get(column)
    return attribute_description(column)


class BigQueryWarehouse(Warehouse):
    """A published BigQuery dataset through google-cloud-bigquery (GoogleSQL only).

    Unqualified table names read the dataset (it is each query's default dataset), so the
    queries of a local notebook run unchanged.
    """

    dialect = "bigquery"

    def __init__(self, dataset: str, client: Any = None) -> None:
        from dicomwarehouse.bigquery.clients import import_bigquery

        self._bigquery = import_bigquery()
        project, _, name = dataset.rpartition(".")
        if client is None:
            client = self._bigquery.Client(project=project or None)
        self.client = client
        self.dataset = f"{project or client.project}.{name}"

    def _config(self, **options: Any) -> Any:
        return self._bigquery.QueryJobConfig(default_dataset=self.dataset, **options)

    def _native(self, query: str, dialect: str | None) -> str:
        _check_dialect(dialect)
        if dialect == "duckdb":
            raise UsageError("a BigQuery warehouse runs GoogleSQL: dialect='bigquery'")
        return query

    def sql(self, query: str, dialect: Dialect | None = None) -> pd.DataFrame:
        job = self.client.query(self._native(query, dialect), job_config=self._config())
        return job.to_dataframe()

    def relation(self, query: str, dialect: Dialect | None = None) -> duckdb.DuckDBPyRelation:
        raise UsageError("relation() is for DuckDB warehouses: use sql() on BigQuery")

    def _arrow(self, query: str) -> pa.Table:
        return self.client.query(query, job_config=self._config()).to_arrow()

    def _query_columns(self, query: str) -> list[str]:
        job = self.client.query(query, job_config=self._config(dry_run=True))
        return [field.name for field in job.schema]

    def tables(self) -> pd.DataFrame:
        import pandas as pd

        records = []
        for item in self.client.list_tables(self.dataset):
            table = self.client.get_table(f"{self.dataset}.{item.table_id}")
            records.append(
                {
                    "name": item.table_id,
                    "kind": _KINDS.get(table.table_type, "table"),
                    "description": table.description,
                }
            )
        records.sort(key=lambda record: record["name"])
        return pd.DataFrame(records, columns=["name", "kind", "description"])

    def columns(self, table: str) -> pd.DataFrame:
        import pandas as pd

        schema = self.client.get_table(f"{self.dataset}.{table}").schema
        records = [
            {"column": field.name, "type": _bigquery_type(field), "description": field.description}
            for field in schema
        ]
        return pd.DataFrame(records, columns=["column", "type", "description"])

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


def _bigquery_type(field: Any) -> str:
    """A field's type as BigQuery's console writes it: ARRAY<STRUCT<...>> for repeated records."""
    if field.field_type in ("RECORD", "STRUCT"):
        inner = ", ".join(f"{sub.name} {_bigquery_type(sub)}" for sub in field.fields)
        text = f"STRUCT<{inner}>"
    else:
        text = field.field_type
    return f"ARRAY<{text}>" if field.mode == "REPEATED" else text


def _copy_gs_warehouse(location: str) -> Path:
    """The committed runs of a gs:// warehouse, copied into a new temporary folder."""
    from dicomwarehouse.io.objectstore import store_for
    from dicomwarehouse.warehouse.layout import (
        ALL_TABLES,
        WarehouseError,
        committed_runs,
        run_dir,
        run_record_url,
    )

    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no warehouse at {location} (no committed run); run ingest first")
    store = store_for(location)
    folder = Path(tempfile.mkdtemp(prefix="dicomwarehouse-"))
    try:
        for run in runs:
            urls = [run_record_url(location, run)]
            for table in ALL_TABLES:
                urls += [stored.url for stored in store.list(run_dir(location, table, run) + "/")]
            for url in urls:
                target = folder / url[len(location) + 1 :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(store.read_bytes(url))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def open(
    warehouse: Location | None = None,
    *,
    bigquery: str | None = None,
    client: Any = None,
) -> Warehouse:
    """A warehouse to query: a local folder or gs:// prefix, or ``bigquery="project.dataset"``.

    ``client`` is the google.cloud.bigquery.Client to use (default: one from Application
    Default Credentials, billing the dataset's project).
    """
    from dicomwarehouse.io.objectstore import warehouse_location

    if (warehouse is None) == (bigquery is None):
        raise UsageError("open() takes a warehouse folder or gs:// prefix, or bigquery=DATASET")
    if bigquery is not None:
        return BigQueryWarehouse(bigquery, client)
    location = warehouse_location(warehouse)
    if location.startswith("gs://"):
        copy = _copy_gs_warehouse(location)
        try:
            return DuckDBWarehouse(copy, copy_of=location)
        except BaseException:
            shutil.rmtree(copy, ignore_errors=True)
            raise
    return DuckDBWarehouse(location)


class _NotBeam(logging.Filter):
    """Drops what Beam logs on the root logger itself (``logging.warning`` at import)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "apache_beam" not in record.pathname


@contextlib.contextmanager
def _beam_quiet() -> Iterator[None]:
    """Beam's INFO and WARNING records out of a notebook's output for the call's length (the
    command line does the same unless ``-v``); errors still show."""
    beam_logger = logging.getLogger("apache_beam")
    level = beam_logger.level
    beam_logger.setLevel(logging.ERROR)
    root_filter = _NotBeam()
    logging.getLogger().addFilter(root_filter)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(root_filter)
        beam_logger.setLevel(level)


def ingest(
    sources: Sequence[str | Path] | str | Path,
    warehouse: Location = "warehouse",
    *,
    beam_args: Sequence[str] = (),
    verbose: bool = False,
    **options: Any,
) -> IngestSummary:
    """Run the ingest the command line runs; ``options`` are its options by their names.

    ``manifests=["cohort.s5cmd"]``, ``incremental=True``, ``anonymous=True``,
    ``max_elements=1000``, ... (``dicomwarehouse ingest --help``, spelled with underscores);
    ``beam_args`` are Beam's flags (what the command line takes after ``--``). Beam's own log
    records below ERROR are held back unless ``verbose``. Returns the run's summary
    (``print(summary.describe())`` prints the command line's last line).
    """
    from dicomwarehouse.pipeline.options import add_cli_arguments, ingest_from_arguments

    parser = argparse.ArgumentParser(prog="dicomwarehouse.ingest")
    add_cli_arguments(parser)
    args = parser.parse_args(["--warehouse", str(warehouse)])
    sources = [sources] if isinstance(sources, (str, Path)) else sources
    args.sources = [str(source) for source in sources]
    unknown = sorted(set(options) - set(vars(args)))
    if unknown:
        raise UsageError(f"unknown ingest option {unknown[0]!r} (see dicomwarehouse ingest --help)")
    for name, value in options.items():
        if name == "manifests":
            value = [value] if isinstance(value, (str, Path)) else value
            value = [str(manifest) for manifest in value]
        setattr(args, name, value)
    with contextlib.nullcontext() if verbose else _beam_quiet():
        return ingest_from_arguments(args, list(beam_args), "cli")
