"""The DuckDB warehouse: atomic, idempotent writes and table fingerprints.

Every write here happens in one transaction: a crash or an error leaves the previous state.
Results are always fetched whole (``fetchall``): DuckDB 2.0 refuses further work on a connection
while a result is unfinished, which ``fetchone()`` leaves behind.
This module knows nothing of Dagster or the registry.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import duckdb
from tenacity import retry, retry_if_exception, stop_after_delay, wait_exponential

#: How long to wait for another process's lock on the warehouse file before giving up (seconds).
LOCK_TIMEOUT_SECONDS = 60


def _is_lock_conflict(err: BaseException) -> bool:
    return isinstance(err, duckdb.IOException) and "lock" in str(err).lower()


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file, and always close it.

    A lock held by another process (DuckDB allows one writer per file) is retried with
    exponential backoff for up to :data:`LOCK_TIMEOUT_SECONDS`.

    Raises:
        duckdb.IOException: the file stayed locked, or cannot be opened.
    """
    opener = retry(
        retry=retry_if_exception(_is_lock_conflict),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(LOCK_TIMEOUT_SECONDS),
        reraise=True,
    )(duckdb.connect)
    con = opener(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


def quote(identifier: str) -> str:
    """Quote a SQL identifier for DuckDB (``a"b`` -> ``"a""b"``)."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: str) -> str:
    """A SQL string literal (``it's`` -> ``'it''s'``)."""
    return "'" + value.replace("'", "''") + "'"


def qualified(table: str) -> str:
    """Quote a ``schema.table`` name."""
    schema, _, name = table.partition(".")
    return f"{quote(schema)}.{quote(name)}" if name else quote(schema)


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``schema.table`` exists."""
    schema, _, name = table.partition(".")
    row = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()[0]
    return bool(row and row[0])


def replace_window(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    partition_column: str,
    start: date,
    end: date,
    params: Sequence[object] = (),
) -> int:
    """Replace the rows of ``table`` whose ``partition_column`` is in ``[start, end)`` with ``select_sql``.

    The table is created from the query's shape on first use. Delete and insert run in one
    transaction; columns are matched by name.

    Returns:
        The number of rows inserted.

    Raises:
        duckdb.Error: the query failed; the transaction was rolled back.
    """
    column = quote(partition_column)
    return _delete_insert(con, table, select_sql, params, f"{column} >= ? and {column} < ?", [start, end])


def replace_origins(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    origin_column: str,
    origins: Sequence[str],
    params: Sequence[object] = (),
) -> int:
    """Append ``select_sql`` to ``table`` after deleting earlier rows from the same ``origins``.

    One transaction; appending a file twice keeps one copy of its rows.

    Returns:
        The number of rows inserted.
    """
    listing = ", ".join(literal(o) for o in origins) or "null"
    return _delete_insert(con, table, select_sql, params, f"{quote(origin_column)} in ({listing})", [])


def _delete_insert(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    params: Sequence[object],
    where: str,
    where_params: Sequence[object],
) -> int:
    """In one transaction: create ``table`` if needed, delete ``where``, insert ``select_sql`` by name."""
    target = qualified(table)
    con.execute("begin transaction")
    try:
        _create_if_missing(con, table, select_sql, params)
        con.execute(f"delete from {target} where {where}", list(where_params)).fetchall()
        inserted = con.execute(f"insert into {target} by name {select_sql}", list(params)).fetchall()[0][0]
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(inserted)


def merge(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    keys: Sequence[str],
    params: Sequence[object] = (),
    order_by: str | None = None,
    ignore: Sequence[str] = (),
) -> tuple[int, int]:
    """Upsert ``select_sql`` into ``table`` by ``keys`` in one transaction (SQL MERGE).

    The batch keeps one row per key (the first by ``order_by``). A matching row is updated only
    if a column outside ``ignore`` (load metadata) differs, so merging the same data again
    changes nothing.

    Returns:
        ``(rows inserted, rows updated)``.
    """
    target = qualified(table)
    key_cols = [quote(k) for k in keys]
    order = order_by or ", ".join(key_cols)
    con.execute("begin transaction")
    try:
        _create_if_missing(con, table, select_sql, params)
        con.execute(
            f"create or replace temp table __strata_merge as select * from ({select_sql}) "
            f"qualify row_number() over (partition by {', '.join(key_cols)} order by {order}) = 1",
            list(params),
        )
        cols = [c for c, _ in columns(con, table)]
        compared = [quote(c) for c in cols if c not in set(keys) | set(ignore)]
        differs = " or ".join(f"t.{c} is distinct from s.{c}" for c in compared) or "false"
        on = " and ".join(f"t.{k} = s.{k}" for k in key_cols)
        before = con.execute(f"select count(*) from {target}").fetchall()[0][0]
        changed = con.execute(
            f"select count(*) from __strata_merge s join {target} t on {on} where {differs}"
        ).fetchall()[0][0]
        updates = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in cols if c not in keys)
        con.execute(
            f"merge into {target} as t using __strata_merge as s on ({on}) "
            f"when matched and ({differs}) then update set {updates} "
            "when not matched then insert by name"
        ).fetchall()
        inserted = con.execute(f"select count(*) from {target}").fetchall()[0][0] - before
        con.execute("drop table __strata_merge")
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(inserted), int(changed)


def replace_table(
    con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()
) -> int:
    """Replace ``table`` with the result of ``select_sql`` in one transaction; return the row count."""
    schema, _, _ = table.partition(".")
    con.execute("begin transaction")
    try:
        con.execute(f"create schema if not exists {quote(schema)}")
        con.execute(f"create or replace table {qualified(table)} as {select_sql}", list(params))
        count = con.execute(f"select count(*) from {qualified(table)}").fetchall()[0][0]
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(count)


def _create_if_missing(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params) -> None:
    if table_exists(con, table):
        return
    schema, _, _ = table.partition(".")
    con.execute(f"create schema if not exists {quote(schema)}")
    con.execute(f"create table {qualified(table)} as select * from ({select_sql}) limit 0", list(params))


def columns(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    """``(name, type)`` of each column of ``schema.table``, in table order."""
    schema, _, name = table.partition(".")
    return [
        (r[0], r[1])
        for r in con.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = ? and table_name = ? order by ordinal_position",
            [schema, name],
        ).fetchall()
    ]


def fingerprint(con: duckdb.DuckDBPyConnection, table: str, exclude: Sequence[str] = ()) -> tuple[int, int]:
    """An order-independent fingerprint of a table's content: ``(row count, sum of row hashes)``.

    ``exclude`` names columns left out, such as load metadata that differs between runs
    (``_loaded_at``, ``_run_id``). Two tables with the same rows give the same fingerprint.
    """
    cols = [quote(c) for c, _ in columns(con, table) if c not in set(exclude)]
    row = con.execute(
        f"select count(*), coalesce(sum(hash({', '.join(cols)})::hugeint), 0) from {qualified(table)}"
    ).fetchall()[0]
    return int(row[0]), int(row[1])


def rows_per_partition(
    con: duckdb.DuckDBPyConnection, table: str, column: str, start: date, end: date
) -> dict[date, int]:
    """Row count of ``table`` per value of date ``column`` in ``[start, end)`` (absent dates: none)."""
    rows = con.execute(
        f"select {quote(column)}, count(*) from {qualified(table)} "
        f"where {quote(column)} >= ? and {quote(column)} < ? group by 1",
        [start, end],
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}
