"""PostgreSQL tables and queries: a snapshot, a partition window, or an incremental extract.

* Snapshot: every row of the table or query.
* Partitioned: rows whose partition column lies in the window ``[start, end)``, its bounds of the
  column's type (:meth:`strata.partition_window.PartitionWindow.bounds`); the hours of a wall-clock
  ``timestamp`` column are selected by instant.
* Incremental (high-water mark): rows whose cursor is greater than the largest cursor value
  already loaded minus ``lag``, so rows that arrive late (or are updated again) within the lag
  are read again; the load merges them by primary key. The high-water mark is derived from the
  raw table, never stored separately.

Rows stream through a server-side cursor in batches of ``batch_rows`` into a DuckDB temporary
table. Connection settings come from environment variables only (the registry rejects literals).
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta

import duckdb
import psycopg2
import pyarrow as pa
from psycopg2 import sql as pgsql

from strata import warehouse
from strata.errors import SourceConfigError
from strata.partition_window import PartitionWindow, column_kind
from strata.registry.models import Dataset, PostgresConnection, PostgresSource, duration_seconds
from strata.sources import Extract

TEMP_TABLE = "__strata_postgres"


def resolve_env(reference: str | None, dataset: str) -> str | None:
    """The value of a ``${NAME}`` reference.

    Raises:
        SourceConfigError: the variable is not set.
    """
    if reference is None:
        return None
    name = re.fullmatch(r"\$\{([A-Z_][A-Z0-9_]*)\}", reference).group(1)  # type: ignore[union-attr]
    if name not in os.environ:
        raise SourceConfigError(f"{dataset}: environment variable {name} is not set (referenced as {reference})")
    return os.environ[name]


def connection_kwargs(conn: PostgresConnection, dataset: str) -> dict[str, str]:
    """psycopg2 keyword arguments from the environment variables the dataset names."""
    kwargs = {
        "host": resolve_env(conn.host, dataset),
        "port": resolve_env(conn.port, dataset),
        "dbname": resolve_env(conn.database, dataset),
        "user": resolve_env(conn.user, dataset),
        "password": resolve_env(conn.password, dataset),
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def high_water_mark(con: duckdb.DuckDBPyConnection, dataset: Dataset, cursor: str) -> object | None:
    """The largest ``cursor`` value already in the raw table, or None before the first load."""
    if not warehouse.table_exists(con, dataset.table):
        return None
    return con.execute(f"select max({warehouse.quote(cursor)}) from {warehouse.qualified(dataset.table)}").fetchall()[
        0
    ][0]


def _query(source: PostgresSource, dataset: Dataset, window: PartitionWindow | None, hwm: object | None):
    if source.table is not None:
        base = pgsql.SQL("select * from {}").format(pgsql.Identifier(*source.table.split(".")))
    else:
        base = pgsql.SQL("select * from ({}) as q").format(pgsql.SQL(source.query))  # validated single SELECT
    where, params = pgsql.SQL("true"), []
    declared = (
        dataset.column(dataset.partitioning.column) if dataset.partitioning and dataset.partitioning.column else None
    )
    if window is not None and declared is not None:
        col = pgsql.Identifier(declared.name)
        kind = column_kind(declared.sql_type)
        if kind == "timestamp" and window.grain == "hourly" and window.timezone != "UTC":
            # hours of wall-clock times, read as instants the way Strata's SQL reads them (PostgreSQL's
            # AT TIME ZONE, like DuckDB's timezone(): the later of a repeated hour, a skipped one with
            # the offset before the change), so that no hour's rows are left out or read twice
            where = pgsql.SQL("({} at time zone %s) >= %s and ({} at time zone %s) < %s").format(col, col)
            params = [window.timezone, window.start, window.timezone, window.end]
        else:
            where = pgsql.SQL("{} >= %s and {} < %s").format(col, col)
            params = list(window.bounds(kind))
    elif source.incremental is not None:
        col = pgsql.Identifier(source.incremental.cursor)
        if hwm is not None:
            lag = duration_seconds(source.incremental.lag)
            lower = hwm - timedelta(seconds=lag) if isinstance(hwm, datetime | date) else hwm
            where, params = pgsql.SQL("{} > %s").format(col), [lower]
        elif source.incremental.initial_value is not None:
            where, params = pgsql.SQL("{} >= %s").format(col), [source.incremental.initial_value]
    return pgsql.SQL("select * from ({}) as src where {}").format(base, where), params


def extract(con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None) -> Extract:
    """Read the rows this run needs into a DuckDB temporary table.

    Raises:
        SourceConfigError: a connection variable is not set.
        psycopg2.Error: the server refused the connection or the query.
    """
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    hwm = high_water_mark(con, dataset, source.incremental.cursor) if source.incremental else None
    query, params = _query(source, dataset, window, hwm)
    origin = source.table or f"query:{dataset.name}"
    con.execute(f"drop table if exists {TEMP_TABLE}")
    rows = batches = 0
    with psycopg2.connect(**connection_kwargs(source.connection, dataset.name)) as pg:
        with pg.cursor(name="strata_extract") as cur:
            cur.itersize = source.batch_rows
            cur.execute(query, params)
            while chunk := cur.fetchmany(source.batch_rows):
                names = [d.name for d in cur.description]
                batch = pa.Table.from_pylist(
                    [{**dict(zip(names, row, strict=True)), "_source_row": rows + i + 1} for i, row in enumerate(chunk)]
                )
                con.register("__strata_pg_batch", batch)
                if batches == 0:
                    con.execute(f"create temp table {TEMP_TABLE} as select * from __strata_pg_batch")
                else:
                    con.execute(f"insert into {TEMP_TABLE} by name select * from __strata_pg_batch")
                con.unregister("__strata_pg_batch")
                rows += len(chunk)
                batches += 1
    if batches == 0:
        _create_empty(con, dataset)
    metadata = {"rows_extracted": rows, "query_batches": batches, "source": origin}
    if source.incremental is not None:
        metadata["high_water_mark_before"] = str(hwm) if hwm is not None else "none (first load)"
        metadata["lag"] = source.incremental.lag
    return Extract(
        relation=f"(select *, {warehouse.literal(origin)} as _source_table from {TEMP_TABLE})",
        origin_column="_source_table",
        units=batches,
        metadata=metadata,
        cleanup=[TEMP_TABLE],
    )


def _create_empty(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> None:
    columns = [f"{warehouse.quote(c.name)} {c.sql_type}" for c in dataset.columns] + ['"_source_row" bigint']
    con.execute(f"create temp table {TEMP_TABLE} ({', '.join(columns)})")
