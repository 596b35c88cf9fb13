"""The DuckDB warehouse: connections, atomic writes, table fingerprints.

Writes are statements (:func:`delete_where`, :func:`insert_by_name`, :func:`merge_by_key`,
:func:`create_or_replace`) that callers compose inside one :func:`transaction`: a raw table and its
quarantine change together, and a crash or an error leaves the previous state. The
``replace_*``/``merge`` helpers are single-table shortcuts that open their own transaction.

Results are always fetched whole (``fetchall``): DuckDB 2.0 refuses further work on a connection
while a result is unfinished, which ``fetchone()`` leaves behind.
This module knows nothing of Dagster or the registry.
"""

from __future__ import annotations

import logging
import time
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


#: Python logger of lock waits: Dagster records it in run logs (dagster.yaml's ``python_logs``).
log = logging.getLogger(__name__)


def _lock_wait(what: str):
    """Retry ``what`` while another process holds the warehouse file's lock (see :data:`LOCK_TIMEOUT_SECONDS`).

    Each wait is logged, naming the holder DuckDB reports (its process id) and the time left.
    """
    started = time.monotonic()

    def before_sleep(state) -> None:
        err = state.outcome.exception()
        holder = str(err).split("Conflicting lock is held in", 1)[-1].strip().splitlines()[0] if err else "?"
        left = LOCK_TIMEOUT_SECONDS - (time.monotonic() - started)
        log.warning(f"waiting for the warehouse lock to {what} (held by {holder}); giving up in {left:.0f} s")

    return retry(
        retry=retry_if_exception(_is_lock_conflict),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(LOCK_TIMEOUT_SECONDS),
        before_sleep=before_sleep,
        reraise=True,
    )


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse file, and always close it.

    A lock held by another process (DuckDB allows one writer per file, and no reader beside a
    writer) is waited for with exponential backoff, up to :data:`LOCK_TIMEOUT_SECONDS`, and each
    wait is logged (:data:`log`).

    Raises:
        duckdb.IOException: the file stayed locked, or cannot be opened.
    """
    con = _lock_wait("read" if read_only else "write")(duckdb.connect)(str(path), read_only=read_only)
    con.execute("set enable_progress_bar = false").fetchall()
    try:
        yield con
    finally:
        con.close()


def attach(con: duckdb.DuckDBPyConnection, path: Path | str, alias: str, read_only: bool = True) -> None:
    """``ATTACH`` the warehouse file to ``con`` as ``alias``, waiting for a writer's lock as :func:`connect` does.

    Raises:
        duckdb.IOException: the file stayed locked, or cannot be opened.
    """
    mode = " (read_only)" if read_only else ""
    _lock_wait("read" if read_only else "write")(con.execute)(f"attach {literal(str(path))} as {quote(alias)}{mode}")


def sandbox(con: duckdb.DuckDBPyConnection, readable: Sequence[Path] = ()) -> None:
    """Confine ``con`` before it runs registry SQL: no files but ``readable``, no extensions, no settings.

    Uses DuckDB's own controls (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview):
    ``allowed_directories`` (the landing root, for checks that recount files), then
    ``enable_external_access = false`` (no other file, ``ATTACH``, ``COPY``, ``INSTALL`` or ``LOAD``),
    no extension auto-install or auto-load, and ``lock_configuration`` so the SQL cannot ``SET``
    any of it back. The warehouse file itself and DuckDB's spill directory stay usable. Permanent
    for the connection's database instance: open a new connection for unconfined work.
    """
    dirs = ", ".join(literal(str(Path(p).resolve()).rstrip("/") + "/") for p in readable)
    for statement in (
        f"set allowed_directories = [{dirs}]",
        "set enable_external_access = false",
        "set autoinstall_known_extensions = false",
        "set autoload_known_extensions = false",
        "set lock_configuration = true",
    ):
        con.execute(statement).fetchall()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK if the block raises."""
    con.execute("begin transaction")
    try:
        yield con
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


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
    rows = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return bool(rows[0][0])


def temp_table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the connection has a temporary table ``name``."""
    rows = con.execute("select count(*) from duckdb_tables() where temporary and table_name = ?", [name]).fetchall()
    return bool(rows[0][0])


# --------------------------------------------------------------------------- statements


def create_like(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()) -> None:
    """Create ``table`` (and its schema) with the shape of ``select_sql``, or evolve it.

    If the table exists, the columns ``select_sql`` has and the table lacks are added (nullable, so
    earlier rows read NULL): a source that gains a column keeps it. Columns the table has and the
    select lacks stay, and later inserts by name leave them NULL. A changed type is not widened; the
    insert then fails with DuckDB's conversion error naming the column.
    """
    if table_exists(con, table):
        have = {name for name, _ in columns(con, table)}
        described = con.execute(f"describe select * from ({select_sql})", list(params)).fetchall()
        for name, type_, *_ in described:
            if name not in have:
                con.execute(f"alter table {qualified(table)} add column {quote(name)} {type_}").fetchall()
        return
    schema, _, _ = table.partition(".")
    con.execute(f"create schema if not exists {quote(schema)}").fetchall()
    con.execute(f"create table {qualified(table)} as select * from ({select_sql}) limit 0", list(params)).fetchall()


def delete_where(con: duckdb.DuckDBPyConnection, table: str, where: str, params: Sequence[object] = ()) -> None:
    """``delete from table where ...``."""
    con.execute(f"delete from {qualified(table)} where {where}", list(params)).fetchall()


def insert_by_name(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()) -> int:
    """Insert ``select_sql`` into ``table`` matching columns by name; return the rows inserted."""
    return int(con.execute(f"insert into {qualified(table)} by name {select_sql}", list(params)).fetchall()[0][0])


def create_or_replace(
    con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()
) -> int:
    """Replace ``table`` with ``select_sql``; return its row count."""
    schema, _, _ = table.partition(".")
    con.execute(f"create schema if not exists {quote(schema)}").fetchall()
    con.execute(f"create or replace table {qualified(table)} as {select_sql}", list(params)).fetchall()
    return int(con.execute(f"select count(*) from {qualified(table)}").fetchall()[0][0])


def merge_by_key(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    keys: Sequence[str],
    params: Sequence[object] = (),
    order_by: str | None = None,
    ignore: Sequence[str] = (),
) -> tuple[int, int]:
    """Upsert ``select_sql`` into ``table`` by ``keys`` (SQL MERGE).

    The batch keeps one row per key (the first by ``order_by``). A matching row is updated only
    if a column outside ``ignore`` (load metadata) differs, so merging the same data again
    changes nothing.

    Returns:
        ``(rows inserted, rows updated)``.
    """
    target = qualified(table)
    key_cols = [quote(k) for k in keys]
    order = order_by or ", ".join(key_cols)
    create_like(con, table, select_sql, params)
    con.execute(
        f"create or replace temp table __strata_merge as select * from ({select_sql}) "
        f"qualify row_number() over (partition by {', '.join(key_cols)} order by {order}) = 1",
        list(params),
    ).fetchall()
    cols = [c for c, _ in columns(con, table)]
    compared = [quote(c) for c in cols if c not in set(keys) | set(ignore)]
    differs = " or ".join(f"t.{c} is distinct from s.{c}" for c in compared) or "false"
    on = " and ".join(f"t.{k} = s.{k}" for k in key_cols)
    before = con.execute(f"select count(*) from {target}").fetchall()[0][0]
    changed = con.execute(f"select count(*) from __strata_merge s join {target} t on {on} where {differs}").fetchall()[
        0
    ][0]
    updates = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in cols if c not in keys)
    con.execute(
        f"merge into {target} as t using __strata_merge as s on ({on}) "
        f"when matched and ({differs}) then update set {updates} "
        "when not matched then insert by name"
    ).fetchall()
    inserted = con.execute(f"select count(*) from {target}").fetchall()[0][0] - before
    con.execute("drop table __strata_merge").fetchall()
    return int(inserted), int(changed)


# --------------------------------------------------------------------------- single-table shortcuts


def window_predicate(column: str) -> str:
    """``column >= ? and column < ?``: the half-open window, bound to (start, end)."""
    return f"{quote(column)} >= ? and {quote(column)} < ?"


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
    with transaction(con):
        create_like(con, table, select_sql, params)
        delete_where(con, table, window_predicate(partition_column), [start, end])
        return insert_by_name(con, table, select_sql, params)


def merge(
    con: duckdb.DuckDBPyConnection,
    table: str,
    select_sql: str,
    keys: Sequence[str],
    params: Sequence[object] = (),
    order_by: str | None = None,
    ignore: Sequence[str] = (),
) -> tuple[int, int]:
    """:func:`merge_by_key` in its own transaction."""
    with transaction(con):
        return merge_by_key(con, table, select_sql, keys, params, order_by, ignore)


def replace_table(con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()) -> int:
    """Replace ``table`` with the result of ``select_sql`` in one transaction; return the row count."""
    with transaction(con):
        return create_or_replace(con, table, select_sql, params)


# --------------------------------------------------------------------------- reading


def columns(con: duckdb.DuckDBPyConnection, table: str, catalog: str | None = None) -> list[tuple[str, str]]:
    """``(name, type)`` of each column of ``schema.table`` (in the attached ``catalog``, if given), in order."""
    schema, _, name = table.partition(".")
    where = "table_schema = ? and table_name = ?" + (" and table_catalog = ?" if catalog else "")
    params = [schema, name] + ([catalog] if catalog else [])
    return [
        (r[0], r[1])
        for r in con.execute(
            f"select column_name, data_type from information_schema.columns where {where} order by ordinal_position",
            params,
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
    where = window_predicate(column)
    rows = con.execute(
        f"select {quote(column)}, count(*) from {qualified(table)} where {where} group by 1", [start, end]
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}
