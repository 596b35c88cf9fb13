"""The warehouse: connections, atomic writes, table fingerprints, on either backend.

Two backends (``STRATA_WAREHOUSE``, :class:`strata.settings.Settings`), and this is the only module
that tells them apart:

* ``duckdb``: one DuckDB file. One writing process at a time (DuckDB's file lock), so every step
  that opens it shares a pool of one (:func:`writer_pool`).
* ``ducklake``: a DuckLake (https://ducklake.select): the catalog in PostgreSQL, the data in
  Parquet files under a folder or an object store. A connection is an in-memory DuckDB with the lake
  attached as ``lake`` and selected (``USE lake``), so the same ``schema.table`` names and the
  same statements work on both. Many processes write at once with snapshot isolation, one
  writer per table (:func:`writer_pool`). Commits that do not logically conflict are retried by
  DuckLake itself; a whole transaction that does conflict (two steps recording check results)
  is retried by :func:`retrying_conflicts`.

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
from pathlib import Path

import duckdb
from tenacity import retry, retry_if_exception, stop_after_attempt, stop_after_delay, wait_exponential, wait_random

from strata.partition_window import Partition, PartitionWindow, column_kind
from strata.settings import LakeLocation

#: What :func:`connect` opens: a DuckDB file (a path), or a DuckLake.
Location = Path | str | LakeLocation

#: The name the lake is attached under, and made the default catalog.
LAKE_ALIAS = "lake"

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
def connect(where: Location, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (a DuckDB file, or a DuckLake), and always close it.

    A DuckDB file's lock held by another process (DuckDB allows one writer per file, and no reader
    beside a writer) is waited for with exponential backoff, up to :data:`LOCK_TIMEOUT_SECONDS`,
    and each wait is logged (:data:`log`). A lake is attached as :data:`LAKE_ALIAS` and made the
    default catalog (:func:`attach_lake`); it has no such lock.

    Raises:
        duckdb.IOException: the file stayed locked, or cannot be opened.
        duckdb.Error: the lake's catalog cannot be reached.
    """
    if isinstance(where, LakeLocation):
        con = duckdb.connect()
        try:
            attach_lake(con, where, LAKE_ALIAS, read_only=read_only)
            con.execute(f"use {quote(LAKE_ALIAS)}").fetchall()
        except BaseException:
            con.close()
            raise
    else:
        con = _lock_wait("read" if read_only else "write")(duckdb.connect)(str(where), read_only=read_only)
    con.execute("set enable_progress_bar = false").fetchall()
    try:
        yield con
    finally:
        con.close()


#: DuckDB extensions a lake needs, installed from their PyPI packages (``duckdb-extension-*``):
#: DuckDB's own ``INSTALL`` downloads from extensions.duckdb.org, which may be unreachable.
LAKE_EXTENSIONS = ("ducklake", "postgres_scanner", "httpfs")

#: DuckLake's retries of a commit that raced another without a logical conflict (its defaults are
#: 10 tries 100 ms apart, x1.5): with several writers on 2 cores a commit can lose more races.
LAKE_RETRY_SETTINGS = {"ducklake_max_retry_count": 100, "ducklake_retry_wait_ms": 50, "ducklake_retry_backoff": 1.5}


#: Whether this process has installed :data:`LAKE_EXTENSIONS` (:func:`install_lake_extensions`).
_extensions_installed = False


def install_lake_extensions(con: duckdb.DuckDBPyConnection) -> None:
    """Install :data:`LAKE_EXTENSIONS` into DuckDB's extension folder from their Python packages.

    Idempotent, and done once per process (every lake connection calls it); afterwards any
    process's DuckDB (dbt's too) loads them without network access.
    """
    global _extensions_installed
    if _extensions_installed:
        return
    from duckdb_extensions import extension_importer

    installed = {r[0] for r in con.execute("select extension_name from duckdb_extensions() where installed").fetchall()}
    for name in LAKE_EXTENSIONS:
        if name not in installed:
            extension_importer.import_extension(name, con=con)
    _extensions_installed = True


def attach_lake(con: duckdb.DuckDBPyConnection, lake: LakeLocation, alias: str, read_only: bool = False) -> None:
    """``ATTACH`` the DuckLake ``lake`` to ``con`` as ``alias``, with :data:`LAKE_RETRY_SETTINGS`.

    An object-store data path (``s3://``, ``gs://``, ``https://``) loads httpfs; its credentials come
    from DuckDB's secrets (``CREATE SECRET``), never from here.

    Raises:
        duckdb.Error: the catalog database cannot be reached or is not a DuckLake catalog.
    """
    install_lake_extensions(con)
    loads = ["ducklake", "postgres_scanner"] + (["httpfs"] if "://" in lake.data_path else [])
    for name in loads:
        con.execute(f"load {name}").fetchall()
    for name, value in LAKE_RETRY_SETTINGS.items():
        con.execute(f"set {name} = {value}").fetchall()
    options = f"data_path {literal(lake.data_path)}" + (", read_only" if read_only else "")
    con.execute(f"attach {literal('ducklake:' + lake.catalog)} as {quote(alias)} ({options})").fetchall()


def _is_write_conflict(err: BaseException) -> bool:
    return isinstance(err, duckdb.TransactionException) and "conflict" in str(err).lower()


#: How often a transaction that lost a logical conflict is run again (:func:`retrying_conflicts`).
CONFLICT_ATTEMPTS = 30


def retrying_conflicts(what: str):
    """A decorator: run the function again when its transaction lost a write conflict on the lake.

    Two DuckLake transactions that change the same table's rows (two partition replaces of one
    table, even on different days) conflict logically, and the later commit fails with
    ``TransactionException: Transaction conflict``; DuckLake rolls it back whole. The function
    must be idempotent (every Strata write is: delete the window, insert it), so running it again
    against the new snapshot gives the same table as running it alone. Exponential backoff with
    jitter, up to :data:`CONFLICT_ATTEMPTS` tries, each logged. A DuckDB file never conflicts
    (one writer), so there the function runs once.
    """

    def before_sleep(state) -> None:
        log.warning(f"{what}: lost a write conflict on the lake (try {state.attempt_number}); running it again")

    return retry(
        retry=retry_if_exception(_is_write_conflict),
        wait=wait_exponential(multiplier=0.2, max=5) + wait_random(0, 0.5),
        stop=stop_after_attempt(CONFLICT_ATTEMPTS),
        before_sleep=before_sleep,
        reraise=True,
    )


def writer_pool(where: Location, table: str | None = None) -> str:
    """The Dagster pool of a step that writes ``table`` (``schema.table``), or dbt's steps (None).

    Every pool's limit is 1 (dagster.yaml's ``concurrency.pools.default_limit``).

    * A DuckDB file allows one writing process: every step is in ``duckdb_writer``.
    * A lake allows many, so each table has its own pool, ``lake:<schema.table>``: different
      datasets load at the same time, in as many runs as the run queue allows
      (``max_concurrent_runs``). Two writes of one table take turns, because DuckLake cannot keep
      them apart: two partition replaces of one table conflict at commit even for different days
      (measured; the loser redoes its work), and when neither deletes a row (a first load of a
      day) both commit, leaving the day twice. dbt's steps, the publish and maintenance share
      ``lake_transform``: a dbt build writes many tables in many transactions.
    """
    if not isinstance(where, LakeLocation):
        return "duckdb_writer"
    return f"lake:{table}" if table else "lake_transform"


def attach(con: duckdb.DuckDBPyConnection, where: Location, alias: str, read_only: bool = True) -> None:
    """``ATTACH`` the warehouse to ``con`` as ``alias``.

    The DuckDB file (waiting for a writer's lock as :func:`connect` does), or the lake (:func:`attach_lake`).

    Raises:
        duckdb.IOException: the file stayed locked, or cannot be opened.
    """
    if isinstance(where, LakeLocation):
        attach_lake(con, where, alias, read_only=read_only)
        return
    mode = " (read_only)" if read_only else ""
    _lock_wait("read" if read_only else "write")(con.execute)(f"attach {literal(str(where))} as {quote(alias)}{mode}")


def sandbox(con: duckdb.DuckDBPyConnection, readable: Sequence[Path] = ()) -> None:
    """Confine ``con`` before it runs registry SQL: no files but ``readable``, no extensions, no settings.

    Uses DuckDB's own controls (https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview):
    ``allowed_directories`` (the landing root, for checks that recount files), then
    ``enable_external_access = false`` (no other file, ``ATTACH``, ``COPY``, ``INSTALL`` or ``LOAD``),
    no extension auto-install or auto-load, and ``lock_configuration`` so the SQL cannot ``SET``
    any of it back. The warehouse file itself, an attached lake's data path and DuckDB's spill
    directory stay usable. Permanent for the connection's database instance: open a new
    connection for unconfined work.
    """
    paths = [str(Path(p).resolve()).rstrip("/") + "/" for p in readable] + _lake_data_paths(con)
    dirs = ", ".join(literal(p) for p in paths)
    for statement in (
        f"set allowed_directories = [{dirs}]",
        "set enable_external_access = false",
        "set autoinstall_known_extensions = false",
        "set autoload_known_extensions = false",
        "set lock_configuration = true",
    ):
        con.execute(statement).fetchall()


def _lake_data_paths(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The data paths of the lakes attached to ``con``: a sandboxed connection still writes there."""
    lakes = [
        r[0] for r in con.execute("select database_name from duckdb_databases() where type = 'ducklake'").fetchall()
    ]
    return [
        r[0] for lake in lakes for r in con.execute("select data_path from ducklake_settings(?)", [lake]).fetchall()
    ]


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """BEGIN ... COMMIT, or ROLLBACK if the block raises.

    A COMMIT that fails (on a lake: a write conflict) has already ended the transaction; the
    commit's own error is what propagates, not the ROLLBACK's "no transaction is active".
    """
    con.execute("begin transaction")
    try:
        yield con
        con.execute("commit")
    except BaseException:
        _rollback_if_open(con)
        raise


def _rollback_if_open(con: duckdb.DuckDBPyConnection) -> None:
    try:
        con.execute("rollback")
    except duckdb.TransactionException as err:
        if "no transaction is active" not in str(err):
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


def table_type(con: duckdb.DuckDBPyConnection, table: str) -> str | None:
    """``schema.table``'s ``information_schema`` type (``BASE TABLE``, ``VIEW``), or None if it does not exist."""
    schema, _, name = table.partition(".")
    rows = con.execute(
        "select table_type from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return rows[0][0] if rows else None


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``schema.table`` exists (a table or a view)."""
    return table_type(con, table) is not None


def temp_table_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Whether the connection has a temporary table ``name``."""
    rows = con.execute("select count(*) from duckdb_tables() where temporary and table_name = ?", [name]).fetchall()
    return bool(rows[0][0])


# --------------------------------------------------------------------------- statements


class IncompatibleTypeError(Exception):
    """A column's new type cannot hold the values the table already has.

    Attributes:
        table: ``schema.table``.
        column: the column.
        old, new: its type in the table and the type asked for (DuckDB's names).
        failing: how many existing values do not convert.
        example: one of them, as text.
    """

    def __init__(self, table: str, column: str, old: str, new: str, failing: int, example: str):
        self.table, self.column, self.old, self.new = table, column, old, new
        self.failing, self.example = failing, example
        super().__init__(
            f"{table}.{column} is {old}; {failing:,} of its values do not convert to {new} without loss "
            f"(e.g. {example!r})"
        )


def create_like(
    con: duckdb.DuckDBPyConnection, table: str, select_sql: str, params: Sequence[object] = ()
) -> list[str]:
    """Create ``table`` (and its schema) with the shape of ``select_sql``, or evolve it; return the changes made.

    If the table exists, the columns ``select_sql`` has and the table lacks are added (nullable, so
    earlier rows read NULL): a source that gains a column keeps it. Columns the table has and the
    select lacks stay, and later inserts by name leave them NULL. A column whose type changed is
    migrated when every value it holds converts to the new type (a widening such as INTEGER to
    BIGINT, or DATE to TIMESTAMP, always does): the table's column takes the new type, in the
    caller's transaction. Each change is described (``amount: DECIMAL(10,2) -> DECIMAL(18,2)``).

    Raises:
        IncompatibleTypeError: a changed column holds values the new type cannot (nothing changed).
    """
    changes: list[str] = []
    if table_exists(con, table):
        have = dict(columns(con, table))
        described = con.execute(f"describe select * from ({select_sql})", list(params)).fetchall()
        for name, type_, *_ in described:
            if name not in have:
                con.execute(f"alter table {qualified(table)} add column {quote(name)} {type_}").fetchall()
                changes.append(f"{name}: added ({type_})")
            elif have[name] != type_ and type_ != "NULL":
                migrate_column(con, table, name, have[name], type_)
                changes.append(f"{name}: {have[name]} -> {type_}")
        return changes
    schema, _, _ = table.partition(".")
    con.execute(f"create schema if not exists {quote(schema)}").fetchall()
    con.execute(f"create table {qualified(table)} as select * from ({select_sql}) limit 0", list(params)).fetchall()
    return changes


def lossy_conversion(column: str, old: str, new: str) -> str:
    """SQL true for a value of ``column`` (of type ``old``) that ``new`` cannot hold without loss."""
    col = quote(column)
    converted = f"try_cast({col} as {new})"
    if old.upper() in ("VARCHAR", "TEXT"):
        return f"{col} is not null and {converted} is null"
    return f"{col} is not null and try_cast({converted} as {old}) is distinct from {col}"


def migrate_column(con: duckdb.DuckDBPyConnection, table: str, column: str, old: str, new: str) -> None:
    """Give ``table``'s ``column`` the type ``new`` (it is ``old``), converting every value.

    Only a conversion that loses nothing is made: every value must convert, and (unless the old
    type is text, which is parsed) convert back to itself, so a time of day (TIMESTAMP to DATE),
    decimals (DOUBLE to INTEGER) or digits (DECIMAL(10,4) to DECIMAL(10,2)) are never dropped. A
    TIMESTAMP becoming a TIMESTAMPTZ is read in the connection's ``TimeZone``.

    Raises:
        IncompatibleTypeError: some value does not convert, or not without loss (nothing changed).
    """
    failing, example = con.execute(
        f"select count(*), any_value({quote(column)}::varchar) from {qualified(table)} "
        f"where {lossy_conversion(column, old, new)}"
    ).fetchall()[0]
    col = quote(column)
    if failing:
        raise IncompatibleTypeError(table, column, old, new, int(failing), str(example))
    if not is_lake(con):
        con.execute(f"alter table {qualified(table)} alter column {col} set data type {new}").fetchall()
    else:  # a lake promotes only some types in place: rewrite the table with the column converted
        con.execute(
            f"create or replace table {qualified(table)} as "
            f"select * replace (cast({col} as {new}) as {col}) from {qualified(table)}"
        ).fetchall()


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


def replace_window(
    con: duckdb.DuckDBPyConnection, table: str, select_sql: str, predicate: str, params: Sequence[object] = ()
) -> tuple[int, list[str]]:
    """Replace the rows of ``table`` for which ``predicate`` holds with ``select_sql``.

    ``predicate`` selects the partitions replaced (:meth:`strata.partition_window.PartitionWindow.predicate`);
    ``select_sql`` should yield only such rows. The table is created from the query's shape on first
    use. Delete and insert run in one transaction; columns are matched by name.

    Returns:
        The number of rows inserted, and the changes made to the table's columns (:func:`create_like`).

    Raises:
        duckdb.Error: the query failed; the transaction was rolled back.
        IncompatibleTypeError: a column's type changed to one its values do not convert to.
    """
    with transaction(con):
        changes = create_like(con, table, select_sql, params)
        delete_where(con, table, predicate)
        return insert_by_name(con, table, select_sql, params), changes


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


# --------------------------------------------------------------------------- publishing


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``con``'s default catalog is a DuckLake (:func:`connect` on a lake)."""
    rows = con.execute("select type from duckdb_databases() where database_name = current_database()").fetchall()
    return bool(rows) and rows[0][0] == "ducklake"


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int:
    """The id of the lake's latest committed snapshot (``ducklake_current_snapshot``)."""
    return int(con.execute("select id from ducklake_current_snapshot(current_database())").fetchall()[0][0])


#: The table in the published schema that records which snapshot a lake's published views show.
PUBLISHED_SNAPSHOT_TABLE = "_published_snapshot"


def publish(con: duckdb.DuckDBPyConnection, schema: str, sources: dict[str, str]) -> dict[str, int]:
    """Point ``<schema>.<name>`` at the current content of each ``sources[name]`` (``schema.table``).

    All in one transaction: a reader sees the previous publish or this one, never half.

    * DuckDB file: each ``<schema>.<name>`` is a copy of its source (a full copy: about 2 s per
      6 M rows on this machine).
    * Lake: each is a view of its source *at the lake's current snapshot* (DuckLake time travel,
      ``AT (VERSION => n)``): no data is copied, so the cost does not grow with the tables, and
      later writes to the sources do not show until the next publish. The snapshot id is kept in
      ``<schema>._published_snapshot`` (columns ``snapshot_id BIGINT``, ``published_at
      TIMESTAMPTZ``), which maintenance reads so that it never expires it
      (:func:`expire_snapshots`).

    Returns:
        Rows per published name.
    """
    counts: dict[str, int] = {}
    lake = is_lake(con)
    snapshot = current_snapshot(con) if lake else None
    with transaction(con):
        con.execute(f"create schema if not exists {quote(schema)}").fetchall()
        for name, source in sources.items():
            target = f"{schema}.{name}"
            if lake:
                # a copy published earlier by the file backend, or a previous view: replace either
                if table_type(con, target) == "BASE TABLE":
                    con.execute(f"drop table {qualified(target)}").fetchall()
                con.execute(
                    f"create or replace view {qualified(target)} as "
                    f"select * from {qualified(source)} at (version => {snapshot})"
                ).fetchall()
                counts[name] = int(con.execute(f"select count(*) from {qualified(target)}").fetchall()[0][0])
            else:
                counts[name] = create_or_replace(con, target, f"select * from {qualified(source)}")
        if lake:
            con.execute(
                f"create or replace table {qualified(f'{schema}.{PUBLISHED_SNAPSHOT_TABLE}')} as "
                f"select {snapshot}::bigint as snapshot_id, now() as published_at"
            ).fetchall()
    return counts


def published_snapshot(con: duckdb.DuckDBPyConnection, schema: str) -> int | None:
    """The lake snapshot the views of ``schema`` show (:func:`publish`), or None if never published."""
    table = f"{schema}.{PUBLISHED_SNAPSHOT_TABLE}"
    if not table_exists(con, table):
        return None
    rows = con.execute(f"select max(snapshot_id) from {qualified(table)}").fetchall()
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


# --------------------------------------------------------------------------- maintenance


#: Files a lake no longer needs are deleted only when they have been unneeded this long, so that a
#: reader still scanning an expired snapshot finishes (DuckLake's ``cleanup_old_files``).
UNUSED_FILE_GRACE = "1 hour"


def maintain(con: duckdb.DuckDBPyConnection, retention: str, keep_schema: str = "published") -> dict[str, int]:
    """Compact and trim the warehouse; return what was done, by name (counts).

    * DuckDB file: ``CHECKPOINT`` (writes the WAL into the file). ``{}``.
    * Lake (https://ducklake.select/docs/stable/duckdb/maintenance/recommended_maintenance):
      ``ducklake_merge_adjacent_files`` merges the small files daily partitions leave behind
      (``files_merged``); ``ducklake_expire_snapshots`` drops the snapshots older than
      ``retention`` (a DuckDB interval, ``7 days``) except the one ``keep_schema``'s views show
      (:func:`published_snapshot`) and the current one (``snapshots_expired``); then
      ``ducklake_cleanup_old_files`` deletes the files no snapshot needs any more, once unneeded
      for :data:`UNUSED_FILE_GRACE` (``files_deleted``).

    Raises:
        duckdb.Error: ``retention`` is not an interval, or the catalog failed.
    """
    if not is_lake(con):
        con.execute("checkpoint").fetchall()
        return {}
    lake = con.execute("select current_database()").fetchall()[0][0]
    merged = con.execute("call ducklake_merge_adjacent_files(?)", [lake]).fetchall()
    keep = {current_snapshot(con), published_snapshot(con, keep_schema)}
    old = [
        r[0]
        for r in con.execute(
            "select snapshot_id from ducklake_snapshots(?) where snapshot_time < now() - ?::interval",
            [lake, retention],
        ).fetchall()
        if r[0] not in keep
    ]
    expired = con.execute("call ducklake_expire_snapshots(?, versions => ?)", [lake, old]).fetchall() if old else []
    deleted = con.execute(
        "call ducklake_cleanup_old_files(?, older_than => now() - ?::interval)", [lake, UNUSED_FILE_GRACE]
    ).fetchall()
    return {"files_merged": len(merged), "snapshots_expired": len(expired), "files_deleted": len(deleted)}


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
    con: duckdb.DuckDBPyConnection, table: str, column: str, window: PartitionWindow
) -> dict[Partition, int]:
    """Row count of ``table`` per partition of ``window``, placing each row by ``column`` (empty ones: absent)."""
    kind = column_kind(dict(columns(con, table))[column])
    rows = con.execute(
        f"select {window.partition_sql(quote(column), kind)}, count(*) from {qualified(table)} "
        f"where {window.predicate(quote(column), kind)} group by 1"
    ).fetchall()
    counts: dict[Partition, int] = {}
    for value, n in rows:
        partition = window.partition_of_value(value)
        if partition is not None:
            counts[partition] = counts.get(partition, 0) + int(n)
    return counts


def column_kind_of(con: duckdb.DuckDBPyConnection, table: str, column: str) -> str:
    """The :func:`strata.partition_window.column_kind` of ``table``'s ``column``.

    Raises:
        KeyError: the table has no such column.
    """
    return column_kind(dict(columns(con, table))[column])


def set_timezone(con: duckdb.DuckDBPyConnection, timezone: str) -> None:
    """Make ``timezone`` the connection's ``TimeZone``: how it reads and shows a TIMESTAMPTZ without an offset.

    Set before :func:`sandbox`, which locks the configuration.
    """
    con.execute(f"set TimeZone = {literal(timezone)}").fetchall()
