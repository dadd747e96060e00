"""The warehouse: committed Parquet per run, in a local folder or under a gs:// prefix.

Layout of a warehouse ``DIR`` (a folder, or ``gs://bucket/prefix``)::

    DIR/dicom_metadata/run-<run id>/part-*.parquet         (+ _column_paths.json,
                                                              _columns_left_out.json)
    DIR/dicom_elements/run-<run id>/part-*.parquet
    DIR/ingest_errors/run-<run id>/part-*.parquet
    DIR/ingest_object_events/run-<run id>/part-*.parquet   the ledger (see ``ledger``)
    (each run folder also holds _bigquery_schema.json: the BigQuery schema of its shards)
    DIR/_runs/<run id>.json                                 the commit record of a run
    DIR/warehouse.duckdb                                    (local warehouses only; built
                                                              aside, then swapped in whole)

A run writes its shards straight into its own ``run-<run id>`` folders (nothing is renamed:
object stores cannot rename atomically, see ``objectstore``). Its commit is the last write, the
run record ``_runs/<run id>.json``: a run is committed exactly when that record exists, and every
reader looks only at committed runs. A run killed at any point therefore leaves nothing a query
sees, and the next writer removes its leftovers before it starts.

Every committed run is kept (the ``*_history`` views, with ``is_current``); the tables users
query hold, for each source URL, the rows of the latest run that read it, unless a later full
listing found it deleted. Ingesting the same inputs twice never doubles a row.

A gs:// warehouse is queried in BigQuery (``publish bigquery`` loads it in place): DuckDB here
has no httpfs extension, so ``warehouse.duckdb`` is built for local warehouses only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from dicomwarehouse.errors import UsageError
from dicomwarehouse.ledger import EVENTS_SCHEMA, EVENTS_TABLE, KnownObject, known_objects
from dicomwarehouse.objectstore import (
    Location,
    PreconditionFailed,
    is_gs_url,
    join,
    read_json,
    read_json_if_present,
    store_for,
    warehouse_location,
    write_json,
)
from dicomwarehouse.parquet import read_parquet, write_shard
from dicomwarehouse.pausepoints import pause_point
from dicomwarehouse.schema import ELEMENTS_SCHEMA, ERRORS_SCHEMA, metadata_schema

__all__ = [
    "COLUMN_PATHS_FILE",
    "DUCKDB_FILE",
    "LEFT_OUT_FILE",
    "LOCK_LEASE",
    "PLANS_FOLDER",
    "RUNS_FOLDER",
    "TABLES",
    "RunCounts",
    "WarehouseError",
    "WriterLock",
    "build_duckdb",
    "commit_run",
    "committed_runs",
    "connect",
    "exclusive_writer",
    "read_known_objects",
    "read_run_record",
    "remove_uncommitted",
    "run_dir",
    "run_output",
    "shard_urls",
    "staged_urls",
]

logger = logging.getLogger(__name__)

TABLES = ("dicom_metadata", "dicom_elements", "ingest_errors")
_ALL_TABLES = (*TABLES, EVENTS_TABLE)
DUCKDB_FILE = "warehouse.duckdb"
#: Written beside a run's dicom_metadata shards: the union of the run's column paths.
COLUMN_PATHS_FILE = "_column_paths.json"
#: Beside it: what BigQuery's limits left out of the run's dicom_metadata (limits.py).
LEFT_OUT_FILE = "_columns_left_out.json"
#: Folder of the run records; a run is committed exactly when its record is here.
RUNS_FOLDER = "_runs"
#: Folder of the ledger rows a run plans to write (see ``finish``); gone once it commits.
PLANS_FOLDER = "_plans"
_LOCK = ".lock"
#: How long a gs:// writer lock holds: a lock older than this was left by a run that died (a
#: local lock dies with its process). Longer than any ingest; a writer that outlives it finds
#: the lock taken over and refuses to commit.
LOCK_LEASE = dt.timedelta(hours=48)


class WarehouseError(UsageError):
    """A warehouse that is missing or inconsistent; reported as one line to the user."""


@dataclass(frozen=True)
class RunCounts:
    """Rows one run committed, per table, and what BigQuery's limits left to dicom_elements."""

    instances: int
    elements: int
    errors: int
    #: column paths the column limit left out of dicom_metadata (limits.choose_columns)
    attributes_left_out: int = 0
    #: sequences nested too deep for dicom_metadata (schema.MAX_SEQUENCE_COLUMN_DEPTH)
    deep_sequences_left_out: int = 0


def run_dir(root: Location, table: str, run_id: str) -> str:
    """The folder (path or gs:// prefix) of one table's shards of one run."""
    return join(warehouse_location(root), table, f"run-{run_id}")


def run_output(root: Location, run_id: str) -> str:
    """The pipeline's output template for a run: its folders, with a ``{table}`` placeholder."""
    return run_dir(root, "{table}", run_id)


def _runs_prefix(root: str) -> str:
    return join(root, RUNS_FOLDER) + "/"


def _run_record_url(root: str, run_id: str) -> str:
    return _runs_prefix(root) + f"{run_id}.json"


def read_run_record(root: Location, run_id: str) -> dict[str, Any] | None:
    """The run record of a committed run, or None when the run did not commit."""
    return read_json_if_present(_run_record_url(warehouse_location(root), run_id))


def committed_runs(root: Location) -> list[str]:
    """Ids of the committed runs, oldest first (run ids sort by start time)."""
    location = warehouse_location(root)
    names = (
        stored.url.rsplit("/", 1)[-1] for stored in store_for(location).list(_runs_prefix(location))
    )
    return sorted(
        name[: -len(".json")] for name in names if name.endswith(".json") and name[0] != "."
    )


def shard_urls(root: Location, table: str, run_id: str) -> list[str]:
    """The Parquet shards of one table of one run, by name."""
    folder = run_dir(root, table, run_id)
    return sorted(
        stored.url
        for stored in store_for(folder).list(folder + "/")
        if stored.url.endswith(".parquet") and stored.url.rsplit("/", 1)[-1][0] != "."
    )


class WriterLock:
    """The warehouse's write lock, held by ``exclusive_writer``.

    Locally an ``flock`` (released by the kernel when its process dies). On gs:// an object
    created only if absent (``ifGenerationMatch=0``) that names its holder and its lease's end;
    an expired lock is taken over with a precondition on its generation, so of two writers
    racing for it exactly one wins.
    """

    def __init__(self, root: str, token: str | None = None) -> None:
        """``token``: the token of a lock acquired elsewhere (the launcher), to check and
        release it where the run finishes (a Beam worker)."""
        self.root = root
        self.url = join(root, _LOCK)
        self.token = token or uuid.uuid4().hex
        self.generation: int | None = None
        self._handle: Any = None

    def acquire(self) -> None:
        if not is_gs_url(self.root):
            Path(self.root).mkdir(parents=True, exist_ok=True)
            self._handle = open(self.url, "w")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._handle.close()
                raise WarehouseError(f"another ingest is writing to {self.root}") from None
            return
        store = store_for(self.url)
        now = dt.datetime.now(dt.timezone.utc)
        current = store.stat(self.url)
        expected = 0  # create only if absent
        if current is not None:
            holder = self._holder()
            if holder is not None and dt.datetime.fromisoformat(holder["expires_at"]) > now:
                raise WarehouseError(
                    f"another ingest is writing to {self.root}: {self.url} is held by "
                    f"{holder.get('host')} since {holder.get('acquired_at')} until "
                    f"{holder['expires_at']}; delete it if that run is dead"
                )
            logger.warning("taking over the expired or unreadable lock %s", self.url)
            expected = current.generation or 0
        record = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired_at": now.isoformat(),
            "expires_at": (now + LOCK_LEASE).isoformat(),
        }
        try:
            store.write_bytes(self.url, json.dumps(record).encode(), if_generation_match=expected)
        except PreconditionFailed:
            raise WarehouseError(f"another ingest is writing to {self.root}") from None
        self.check()

    def _holder(self) -> dict[str, Any] | None:
        """The lock's record, or None when it is unreadable (a torn or foreign object)."""
        try:
            holder = read_json(self.url)
            dt.datetime.fromisoformat(holder["expires_at"])
        except (ValueError, KeyError, TypeError):
            return None
        return holder

    def check(self) -> None:
        """Raise unless this writer still holds the lock (call before committing)."""
        if not is_gs_url(self.root):
            return
        stored = store_for(self.url).stat(self.url)
        holder = self._holder() if stored is not None else None
        if holder is None or holder.get("token") != self.token:
            raise WarehouseError(
                f"lost the write lock {self.url} to another ingest; this run is not committed"
            )
        self.generation = stored.generation

    def hand_over(self) -> None:
        """Leave a gs:// lock to the job that will commit the run (it releases it)."""
        if self._handle is None:
            self.generation = None

    def release(self) -> None:
        if self._handle is not None:
            fcntl.flock(self._handle, fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None
        elif self.generation is not None:
            try:
                store_for(self.url).delete(self.url, if_generation_match=self.generation)
            except PreconditionFailed:
                logger.warning("lock %s was taken over; left to its new holder", self.url)
            self.generation = None


@contextlib.contextmanager
def exclusive_writer(root: Location) -> Iterator[WriterLock]:
    """Hold the warehouse's write lock: one ingest at a time may stage and commit."""
    lock = WriterLock(warehouse_location(root))
    lock.acquire()
    try:
        yield lock
    finally:
        lock.release()


def remove_uncommitted(root: Location) -> list[str]:
    """Delete what runs that never committed left behind; returns their ids.

    Also removes the files of DuckDB builds that were cut short. Call only while holding
    ``exclusive_writer``: then no run, and no build, is in progress.
    """
    location = warehouse_location(root)
    store = store_for(location)
    committed = set(committed_runs(location))
    leftovers: set[tuple[str, str]] = set()
    for table in _ALL_TABLES:
        prefix = join(location, table) + "/"
        for stored in store.list(prefix):
            folder = stored.url[len(prefix) :].split("/", 1)[0]
            run_id = folder.removeprefix("run-")
            if folder.startswith("run-") and run_id not in committed:
                leftovers.add((table, run_id))
    for table, run_id in sorted(leftovers):
        store.remove_tree(run_dir(location, table, run_id))
    for stored in store.list(join(location, PLANS_FOLDER) + "/"):
        run_id = stored.url.rsplit("/", 1)[-1].split(".", 1)[0]  # <run id>[.objects].parquet
        if run_id not in committed:
            leftovers.add((PLANS_FOLDER, run_id))
            store.delete(stored.url)
    if not is_gs_url(location):  # DuckDB builds cut short (only lock holders build)
        for leftover in _duckdb_build_files(Path(location)):
            leftover.unlink(missing_ok=True)
    removed = sorted({run_id for _, run_id in leftovers})
    if removed:
        logger.warning("removed %d uncommitted run(s): %s", len(removed), removed)
    return removed


def _row_count(root: str, table: str, run_id: str) -> int:
    total = 0
    for url in shard_urls(root, table, run_id):
        with store_for(url).open_input(url) as handle:
            total += pq.ParquetFile(handle).metadata.num_rows
    return total


def staged_urls(root: Location, run_id: str) -> dict[str, str]:
    """Source URL -> table ("dicom_metadata" or "ingest_errors") of a run's staged rows."""
    found: dict[str, str] = {}
    for table in ("dicom_metadata", "ingest_errors"):
        for url in shard_urls(root, table, run_id):
            for source in read_parquet(url, ["source_url"]).column(0).to_pylist():
                found[source] = table
    return found


def commit_run(
    root: Location,
    run_id: str,
    *,
    expected_objects: int,
    events: pa.Table | None = None,
    extra_columns: Sequence[str] = (),
    summary: dict[str, Any] | None = None,
) -> RunCounts:
    """Commit a finished run: complete its folders, then write its run record.

    Refuses (leaving the run uncommitted, hence invisible) unless every object read is in
    exactly one of dicom_metadata and ingest_errors. The run record is the last write: it is
    the commit.
    """
    from dicomwarehouse.bigquery.schema import RUN_SCHEMA_FILE, run_schema_json

    location = warehouse_location(root)
    metadata_dir = run_dir(location, "dicom_metadata", run_id)
    paths = read_json_if_present(join(metadata_dir, COLUMN_PATHS_FILE)) or []
    schemas = {
        "dicom_metadata": metadata_schema(
            (tuple(p) for p in paths), dict.fromkeys(extra_columns, pa.string())
        ),
        "dicom_elements": ELEMENTS_SCHEMA,
        "ingest_errors": ERRORS_SCHEMA,
        EVENTS_TABLE: EVENTS_SCHEMA,
    }
    if events is not None and events.num_rows:
        store_for(location).remove_tree(run_dir(location, EVENTS_TABLE, run_id))  # a retry
        write_shard(events, run_dir(location, EVENTS_TABLE, run_id))
    for table, schema in schemas.items():
        shards = shard_urls(location, table, run_id)
        if not shards:  # one empty shard, so every run reads the same way
            shards = [write_shard(schema.empty_table(), run_dir(location, table, run_id))]
        with store_for(shards[0]).open_input(shards[0]) as handle:
            shard_schema = pq.read_schema(handle)
        # the loader's job schema, beside the shards
        store_for(location).write_bytes(
            join(run_dir(location, table, run_id), RUN_SCHEMA_FILE),
            run_schema_json(shard_schema, table).encode("utf-8"),
        )
    left_out = read_json_if_present(join(metadata_dir, LEFT_OUT_FILE)) or {}
    counts = RunCounts(
        instances=_row_count(location, "dicom_metadata", run_id),
        elements=_row_count(location, "dicom_elements", run_id),
        errors=_row_count(location, "ingest_errors", run_id),
        attributes_left_out=left_out.get("left_out_count", 0),
        deep_sequences_left_out=left_out.get("too_deep", {}).get("sequences", 0),
    )
    if counts.instances + counts.errors != expected_objects:
        raise WarehouseError(
            f"run {run_id} wrote rows for {counts.instances + counts.errors} of "
            f"{expected_objects} objects; not committed"
        )
    record = {"run_id": run_id, **asdict(counts), **(summary or {})}
    write_json(_run_record_url(location, run_id), record, indent=2)  # the commit point
    return counts


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _committed_files(root: str, table: str, runs: Sequence[str]) -> str:
    """A DuckDB list of the Parquet globs of the committed runs of one (local) table."""
    globs = [join(root, table, f"run-{run}", "*.parquet") for run in runs]
    return "[" + ", ".join(_sql_string(g) for g in globs) + "]"


def read_known_objects(root: Location) -> dict[str, KnownObject]:
    """The ledger's current knowledge per URL, from the committed runs' events.

    Read through the store (local or gs://) into memory: one row per object per run that
    read or deleted it, so a few hundred bytes per object.
    """
    location = warehouse_location(root)
    tables = [
        read_parquet(url)
        for run_id in committed_runs(location)
        for url in shard_urls(location, EVENTS_TABLE, run_id)
    ]
    if not tables:
        return {}
    events = pa.concat_tables(tables, promote_options="default")  # noqa: F841 - read by DuckDB
    con = duckdb.connect()
    try:
        relation = con.sql(
            "SELECT * FROM events WHERE outcome <> 'skipped' "
            "QUALIFY row_number() OVER (PARTITION BY source_url ORDER BY ingest_run_id DESC) = 1"
        )
        columns = relation.columns
        rows = [dict(zip(columns, row, strict=True)) for row in relation.fetchall()]
    finally:
        con.close()
    return known_objects(rows)


_CURRENT_OBJECTS = """
CREATE OR REPLACE TABLE _current_objects AS
WITH produced AS (
    SELECT source_url, max(ingest_run_id) AS ingest_run_id
    FROM (
        SELECT source_url, ingest_run_id FROM dicom_metadata_raw
        UNION ALL
        SELECT source_url, ingest_run_id FROM ingest_errors_raw
    )
    GROUP BY source_url
),
deleted AS (
    SELECT source_url, max(ingest_run_id) AS deleted_run_id
    FROM ingest_object_events_raw
    WHERE outcome = 'deleted'
    GROUP BY source_url
)
SELECT p.source_url, p.ingest_run_id
FROM produced AS p
LEFT JOIN deleted AS d ON d.source_url = p.source_url
WHERE d.deleted_run_id IS NULL OR d.deleted_run_id < p.ingest_run_id
"""

_INGEST_OBJECTS = """
CREATE OR REPLACE VIEW ingest_objects AS
WITH events AS (
    SELECT *, coalesce(source_generation, source_etag, source_md5, '') AS version_key
    FROM ingest_object_events_history
),
versions AS (
    SELECT
        source_url,
        version_key,
        any_value(source_generation) AS source_generation,
        any_value(source_etag) AS source_etag,
        any_value(source_md5) AS source_md5,
        any_value(source_size) AS source_size,
        min(ingest_run_id) AS first_seen_run_id,
        max(ingest_run_id) AS last_seen_run_id,
        arg_max(outcome, ingest_run_id) FILTER (WHERE outcome NOT IN ('skipped', 'deleted'))
            AS last_outcome
    FROM events
    WHERE outcome <> 'deleted'
    GROUP BY source_url, version_key
),
latest AS (
    SELECT source_url, arg_max(version_key, ingest_run_id) AS version_key
    FROM events
    WHERE outcome <> 'deleted'
    GROUP BY source_url
),
deletions AS (
    SELECT source_url, max(ingest_run_id) AS deleted_run_id
    FROM events
    WHERE outcome = 'deleted'
    GROUP BY source_url
)
SELECT
    v.source_url,
    v.source_generation,
    v.source_etag,
    v.source_md5,
    v.source_size,
    v.first_seen_run_id,
    v.last_seen_run_id,
    CASE
        WHEN l.version_key <> v.version_key THEN 'superseded'
        WHEN d.deleted_run_id > v.last_seen_run_id THEN 'deleted'
        ELSE v.last_outcome
    END AS status,
    d.deleted_run_id
FROM versions AS v
JOIN latest AS l ON l.source_url = v.source_url
LEFT JOIN deletions AS d ON d.source_url = v.source_url
"""


def _local_root(root: Location) -> str:
    """A local warehouse's absolute path; a one-line refusal for gs:// (no httpfs here)."""
    location = warehouse_location(root)
    if is_gs_url(location):
        raise WarehouseError(
            f"{location} is on Cloud Storage, which DuckDB cannot read here (no httpfs): "
            "query it in BigQuery after 'dicomwarehouse publish bigquery', or copy it to a "
            "local folder ('gcloud storage cp -r') and query that"
        )
    return location


def _create_warehouse_objects(
    con: duckdb.DuckDBPyConnection, location: str, runs: Sequence[str]
) -> None:
    """Create the tables and views of a warehouse over its committed ``runs`` in ``con``.

    The views read the Parquet in place (nothing is copied); ``_current_objects`` is the one
    table materialized here: for each current source URL, the latest run that read it.
    """
    from dicomwarehouse.views import create_duckdb_views

    for table in _ALL_TABLES:
        con.execute(
            f"CREATE OR REPLACE VIEW {table}_raw AS SELECT * FROM read_parquet("
            f"{_committed_files(location, table, runs)}, union_by_name = true, "
            "hive_partitioning = false)"
        )
    con.execute(
        "CREATE OR REPLACE VIEW ingest_object_events_history AS "
        "SELECT * FROM ingest_object_events_raw"
    )
    con.execute(_CURRENT_OBJECTS)
    for table in TABLES:
        con.execute(
            f"CREATE OR REPLACE VIEW {table}_history AS SELECT h.*, "
            "(c.source_url IS NOT NULL) AS is_current FROM {table}_raw AS h "
            "LEFT JOIN _current_objects AS c "
            "ON h.source_url = c.source_url AND h.ingest_run_id = c.ingest_run_id".format(
                table=table
            )
        )
        con.execute(
            f"CREATE OR REPLACE VIEW {table} AS SELECT h.* FROM {table}_raw AS h "
            "SEMI JOIN _current_objects AS c "
            "ON h.source_url = c.source_url AND h.ingest_run_id = c.ingest_run_id"
        )
    con.execute(_INGEST_OBJECTS)
    run_files = [_sql_string(_run_record_url(location, run)) for run in runs]
    con.execute(
        "CREATE OR REPLACE VIEW ingest_runs AS SELECT * FROM read_json_auto("
        f"[{', '.join(run_files)}], union_by_name = true) ORDER BY run_id"
    )
    con.execute(
        "CREATE OR REPLACE TABLE _warehouse AS SELECT ? AS root, ? AS runs",
        [location, len(runs)],
    )
    create_duckdb_views(con)


def _duckdb_build_files(folder: Path) -> list[Path]:
    """Files of DuckDB builds in progress or abandoned (with their write-ahead logs)."""
    return sorted(folder.glob(f".{DUCKDB_FILE}.*.tmp*"))


def build_duckdb(root: Location) -> Path:
    """(Re)create warehouse.duckdb over the committed runs: history, current, ledger, views.

    Call while holding the writer lock (an ingest, or ``connect`` when no ingest runs): the new
    file is built aside under a temporary name in the same folder and then replaces the old one
    with one ``os.replace``. DuckDB locks a file for as long as a read-write connection is open
    on it, so building in place would make every reader fail with a lock error for the length
    of the build; built aside, a reader opens either the previous file or the new one, whole,
    and a reader still open on the previous file keeps reading it until it closes.
    """
    location = _local_root(root)
    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no committed run in {location}")
    path = Path(location) / DUCKDB_FILE
    aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        con = duckdb.connect(str(aside))
        try:
            _create_warehouse_objects(con, location, runs)
            pause_point("build_duckdb")  # tests query the warehouse mid-build (pausepoints)
        finally:
            con.close()  # checkpoints: the file is complete, without a write-ahead log
        os.replace(aside, path)
    finally:
        for leftover in (aside, aside.with_name(aside.name + ".wal")):
            leftover.unlink(missing_ok=True)
    return path


def _open_current(location: str, *, read_only: bool) -> duckdb.DuckDBPyConnection | None:
    """The warehouse's DuckDB file, opened, if it exists and describes this folder as it is.

    None when it is missing, or was built elsewhere (the folder moved) or before the latest
    committed run.
    """
    path = Path(location) / DUCKDB_FILE
    if not path.is_file():
        return None
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        ((stored_root, stored_runs),) = con.execute("SELECT root, runs FROM _warehouse").fetchall()
    except BaseException:
        con.close()
        raise
    if stored_root == location and stored_runs == len(committed_runs(location)):
        return con
    con.close()
    return None


def _lock_if_free(location: str) -> WriterLock | None:
    """The writer lock, if it can be had at once: None while an ingest writes, or when the
    folder cannot be written (a read-only copy or mount)."""
    lock = WriterLock(location)
    try:
        lock.acquire()
    except (WarehouseError, OSError):
        return None
    return lock


def connect(root: Location, *, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection to a warehouse, which never waits for nor fails on a writer.

    The warehouse's file is opened read-only when it is current. When it is missing (a gs://
    warehouse copied down) or stale (the folder moved, or a run committed since it was built),
    it is rebuilt in place if the writer lock is free at once; while an ingest holds the lock
    (between its commit and its own rebuild), and on a warehouse that cannot be written, the
    same tables and views are built in memory for this connection instead, and nothing in the
    folder is written. ``read_only=False`` opens the file read-write (an in-memory build is
    always writable, and is lost on close).
    """
    location = _local_root(root)
    runs = committed_runs(location)
    if not runs:
        raise WarehouseError(f"no warehouse at {root} (no committed run); run ingest first")
    con = _open_current(location, read_only=read_only)
    if con is not None:
        return con
    lock = _lock_if_free(location)
    if lock is not None:
        try:
            logger.info("warehouse moved or changed since its views were built; rebuilding them")
            build_duckdb(location)
        except OSError as exc:
            logger.info("could not rebuild %s (%s); building in memory", DUCKDB_FILE, exc)
        finally:
            lock.release()
        # still stale when a connection of this process holds the previous file open (DuckDB
        # then serves the database it has open under that path) or an ingest committed since
        con = _open_current(location, read_only=read_only)
        if con is not None:
            return con
    logger.info("%s is being written or cannot be; views built in memory", location)
    con = duckdb.connect(":memory:")
    try:
        _create_warehouse_objects(con, location, committed_runs(location))
    except BaseException:
        con.close()
        raise
    return con
