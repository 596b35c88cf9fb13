"""Change data capture from PostgreSQL: a table's changes, read from the WAL, none lost.

A ``mode: cdc`` PostgreSQL source reads the changes of one table through a logical replication
slot decoded by the ``wal2json`` output plugin (format 2, Debian's ``postgresql-15-wal2json``).
Raw keeps every change verbatim, as the text PostgreSQL writes it (no contract is applied there:
what the current state cannot apply, a NULL key or a value of the wrong type, is quarantined by
:mod:`strata.current_state`, and applies once fixed, since raw still holds it):

* **First load.** The slot is created with an exported snapshot (``CREATE_REPLICATION_SLOT ...
  EXPORT_SNAPSHOT`` on a replication connection) and the table is read with ``COPY`` inside that
  very snapshot, as Debezium and PostgreSQL's own logical replication do: every change is either
  in the snapshot or after the slot's consistent point, never both. Raw gets an ``s`` marker (the
  state starts again here), then one ``r`` row per table row, all at the consistent point. An
  empty table is snapshotted once: the marker says the snapshot was taken.
* **Every load** reads the committed transactions after the slot's confirmed position (at most
  about ``max_changes`` changes, whole transactions), in commit order. ``COPY`` writes the stream
  to chunk files of :data:`strata.sources.spool.CHUNK_LINES` messages while DuckDB decodes the
  chunks already written, each to a Parquet file, from which raw is written: memory holds a few
  chunks, whatever the size of a load or a transaction. Each change keeps its row
  image (the new row; for a delete, the old one), ``_cdc_op``, commit and change LSN, order in the
  transaction and commit time (:data:`strata.registry.models.CDC_COLUMNS`). A primary-key update
  becomes a delete of the old key and an insert of the new one, as Debezium records it. A
  ``TRUNCATE`` is a change too: a ``t`` row at its LSN (the state is empty from there).
* **Exactly once:** the slot advances only after the raw write committed
  (:attr:`strata.sources.Extract.after_commit`), so a crash before that reads the changes again;
  raw's rows in the load's commit-LSN range are replaced, so a change read twice is stored once.
* **A lost position is said, not guessed.** A slot that was dropped, or invalidated because the
  server removed WAL it still needed, fails the load with :class:`~strata.errors.CdcPositionLostError`:
  changes since the last one in raw may be lost, and ``strata cdc resync <dataset>`` (``resync``)
  re-reads the table at a new slot, keeping the history already captured.
* ``slot_lag`` is the WAL the slot retains (``pg_current_wal_lsn() - restart_lsn``), measured
  after the advance.

The table needs ``REPLICA IDENTITY FULL`` (deletes and updates then carry the whole old row), or,
for a table that only ever gets inserts (a log such as ``pgbench_history``), ``cdc.insert_only``.
A table without a primary key is an append-only change log; its current state needs a key. The
role needs the ``REPLICATION`` attribute and ``SELECT`` on the table.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import duckdb
import psycopg2
from psycopg2.extras import LogicalReplicationConnection

from strata import warehouse
from strata.errors import CdcPositionLostError, ReservedColumnError, SourceConfigError
from strata.partition_window import PartitionWindow
from strata.registry.models import CDC_COLUMNS, Dataset, PostgresSource
from strata.registry.rules import RESERVED_COLUMNS
from strata.sources import Extract, wal2json
from strata.sources.postgres import connection_kwargs
from strata.sources.spool import LineChunks, Spool


def slot_name(dataset: Dataset) -> str:
    """The replication slot of a CDC dataset: ``cdc.slot``, or ``strata_<dataset>``."""
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    return source.cdc.slot or f"strata_{dataset.name}"


def lsn_number(text: str) -> int:
    """A PostgreSQL LSN (``16/B374D848``) as the 64-bit integer it stands for."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(number: int) -> str:
    """The PostgreSQL LSN text of a 64-bit integer (:func:`lsn_number` reversed)."""
    return f"{number >> 32:X}/{number & 0xFFFFFFFF:X}"


def _qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


def _table_info(cur, table: str, dataset: Dataset) -> tuple[list[str], list[str]]:
    """The table's columns and their PostgreSQL types, in order.

    Raises:
        SourceConfigError: the table's updates and deletes would not carry their old rows
            (not ``REPLICA IDENTITY FULL``) and the dataset does not say it only gets inserts.
        ReservedColumnError: a column is named like one of raw's load columns
            (:data:`strata.registry.rules.RESERVED_COLUMNS`: ``_cdc_op``, ``_loaded_at`` ...).
    """
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    cur.execute("select relreplident from pg_class where oid = %s::regclass", [table])
    if cur.fetchone()[0] != "f" and not source.cdc.insert_only:
        raise SourceConfigError(
            f"{dataset.name}: change data capture needs the old row of every update and delete: run "
            f"ALTER TABLE {table} REPLICA IDENTITY FULL on the source, or, if the table only ever gets "
            "inserts, declare cdc: {insert_only: true}"
        )
    if source.cdc.insert_only:
        # wal2json does not send the updates and deletes of a table without a replica identity:
        # the table's statistics are what tells that some happened (they count within about 1 s)
        cur.execute("select n_tup_upd + n_tup_del from pg_stat_user_tables where relid = %s::regclass", [table])
        row = cur.fetchone()
        if row and row[0]:
            raise SourceConfigError(
                f"{dataset.name}: {table} has had {row[0]:,} update(s) or delete(s) (pg_stat_user_tables), but the "
                "dataset declares cdc: {insert_only: true}, which cannot capture them. Nothing was loaded: run "
                f"ALTER TABLE {table} REPLICA IDENTITY FULL, drop insert_only, and resync (strata cdc resync "
                f"{dataset.name})"
            )
    cur.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute where attrelid = %s::regclass "
        "and attnum > 0 and not attisdropped order by attnum",
        [table],
    )
    rows = cur.fetchall()
    # refused before the slot exists: a slot nobody reads retains WAL on the source
    clashes = sorted(r[0] for r in rows if r[0] in RESERVED_COLUMNS)
    if clashes:
        raise ReservedColumnError(dataset.name, clashes, table)
    return [r[0] for r in rows], [r[1] for r in rows]


#: The load's own columns of a change row, and their types.
CHANGE_TYPES = (
    ("_cdc_op", "varchar"),
    ("_cdc_commit_lsn", "bigint"),
    ("_cdc_lsn", "bigint"),
    ("_cdc_seq", "integer"),
    ("_cdc_committed_at", "timestamptz"),
    ("_source_row", "bigint"),
)


def _empty(columns: list[str]) -> str:
    """A SELECT of no change rows, with the columns and types of :class:`wal2json.Decoder`'s files."""
    types = [*((c, "varchar") for c in columns), *CHANGE_TYPES]
    return "select " + ", ".join(f"null::{t} as {warehouse.quote(c)}" for c, t in types) + " where false"


def _write_snapshot(
    con: duckdb.DuckDBPyConnection, path: Path, out: Path, columns: list[str], consistent_point: int, taken_at: str
) -> int:
    """The ``s`` marker and one ``r`` row per line of a ``COPY ... (FORMAT csv)`` file, to Parquet at ``out``.

    Returns the ``r`` rows. DuckDB streams the file (memory does not grow with the table).
    """
    types = "{" + ", ".join(f"{warehouse.literal(c)}: 'VARCHAR'" for c in columns) + "}"
    reader = (
        f"read_csv({warehouse.literal(str(path))}, header = false, columns = {types}, "
        "nullstr = '', allow_quoted_nulls = false, quote = '\"', escape = '\"', auto_detect = false, "
        "delim = ',', new_line = '\\n', parallel = false, max_line_size = 1073741824)"
    )
    cols = "".join(f"{warehouse.quote(c)}, " for c in columns)
    nulls = "".join(f"null::varchar as {warehouse.quote(c)}, " for c in columns)
    point, at = consistent_point, f"{warehouse.literal(taken_at)}::timestamptz"
    written = con.execute(
        f"copy (select {nulls}'s' as _cdc_op, {point}::bigint as _cdc_commit_lsn, {point}::bigint as _cdc_lsn, "
        f"0 as _cdc_seq, {at} as _cdc_committed_at, 1::bigint as _source_row "
        f"union all select {cols}'r', {point}::bigint, {point}::bigint, (row_number() over ())::integer, {at}, "
        f"(1 + row_number() over ())::bigint from {reader}) to {warehouse.literal(str(out))} (format parquet)"
    ).fetchall()[0][0]
    return int(written) - 1  # COPY returns the rows it wrote: the marker and the table's


def _slot_state(cur, slot: str) -> tuple[str, str | None] | None:
    """``(wal_status, restart_lsn)`` of the slot, or None if it does not exist."""
    cur.execute("select wal_status, restart_lsn::text from pg_replication_slots where slot_name = %s", [slot])
    row = cur.fetchone()
    return (row[0] or "", row[1]) if row else None


def _snapshot_taken(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> int | None:
    """The LSN of the last ``s`` marker in raw (a snapshot was stored), or None."""
    if not warehouse.table_exists(con, dataset.table):
        return None
    # 'r' rows without an 's': a snapshot stored before the marker existed
    rows = con.execute(
        f"select max(_cdc_commit_lsn) from {warehouse.qualified(dataset.table)} where _cdc_op in ('s', 'r')"
    ).fetchall()
    return rows[0][0]


def _last_change(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> int | None:
    if not warehouse.table_exists(con, dataset.table):
        return None
    return con.execute(f"select max(_cdc_commit_lsn) from {warehouse.qualified(dataset.table)}").fetchall()[0][0]


def _snapshot(
    con: duckdb.DuckDBPyConnection,
    kwargs: dict,
    slot: str,
    table: str,
    columns: list[str],
    types: list[str],
    spool: Spool,
) -> tuple[int, Path]:
    """Create the slot with an exported snapshot and read ``table`` in that snapshot.

    Returns the rows read and their Parquet file (:func:`_write_snapshot`).

    The replication connection stays open, idle, until the read is done: the exported snapshot
    lives as long as it does (PostgreSQL, "Exporting a Snapshot"). ``COPY`` writes each value with
    its type's output function, as wal2json does (``character(n)`` padded, arrays as ``{1,2}``);
    booleans are spelled ``true``/``false`` as in the changes.
    """
    replication = psycopg2.connect(**kwargs, connection_factory=LogicalReplicationConnection)
    try:
        with replication.cursor() as cur:
            cur.execute(
                f"CREATE_REPLICATION_SLOT {psycopg2.extensions.quote_ident(slot, replication)} "
                "LOGICAL wal2json EXPORT_SNAPSHOT"
            )
            _name, point, exported, _plugin = cur.fetchone()
        consistent_point = lsn_number(point)
        with closing(psycopg2.connect(**kwargs)) as snap:
            snap.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with snap.cursor() as cur:
                cur.execute("SET TRANSACTION SNAPSHOT %s", [exported])
                cur.execute(wal2json.BYTEA_OUTPUT)
                cur.execute("select now()::text")
                taken_at = cur.fetchone()[0]
                exprs = [
                    f"case when {q} then 'true' when not {q} then 'false' end" if kind == "boolean" else q
                    for q, kind in (
                        (psycopg2.extensions.quote_ident(c, snap), t) for c, t in zip(columns, types, strict=True)
                    )
                ]
                relation = ".".join(psycopg2.extensions.quote_ident(p, snap) for p in table.split("."))
                path, parquet = spool.path(".csv"), spool.path(".parquet")
                with path.open("wb") as out:
                    cur.copy_expert(
                        f"COPY (select {', '.join(exprs)} from {relation}) TO STDOUT WITH (FORMAT csv)", out
                    )
            snap.commit()
    finally:
        replication.close()
    rows = _write_snapshot(con, path, parquet, columns, consistent_point, taken_at)
    path.unlink()
    return rows, parquet


def _stream(cur, copy: str, spool: Spool) -> Iterator[Path]:
    """The chunk files of ``copy``'s output, each as soon as it is complete.

    ``COPY`` runs in a thread of its own: PostgreSQL decodes the WAL (one core on the server)
    while DuckDB decodes the chunks already written. At most :data:`AHEAD` chunks wait on disk.
    Raises what ``COPY`` raised.
    """
    ready: queue.Queue = queue.Queue(maxsize=AHEAD)
    done = object()

    def produce() -> None:
        try:
            with LineChunks(spool, ".tsv", on_file=ready.put) as chunks:
                cur.copy_expert(copy, chunks)
        except BaseException as err:  # handed to the reader, raised there
            ready.put(err)
        else:
            ready.put(done)

    worker = threading.Thread(target=produce, name="strata-cdc-copy", daemon=True)
    worker.start()
    try:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        while worker.is_alive():  # a reader that stops early: let COPY finish into the spool
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


#: Chunks of the change stream written ahead of the decoding (each about 110 MB on disk).
AHEAD = 4


def extract(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None, resync: bool = False
) -> Extract:
    """Read the table's changes since the last committed load into Parquet files of a private spool directory.

    Columns: the table's columns (VARCHAR), :data:`strata.registry.models.CDC_COLUMNS`,
    ``_source_table`` and ``_source_row``. The stream is decoded in chunks of
    :data:`strata.sources.spool.CHUNK_LINES` messages, so memory holds one chunk whatever the size
    of a load or a transaction; the Extract's ``release`` removes the files. The slot advances in
    the Extract's ``after_commit``.
    ``resync``: drop the slot (if any) and read the table again at a new one (``strata cdc resync``).

    Raises:
        SourceConfigError: a connection variable is unset, the table cannot be captured as declared,
            or an insert-only table had an update or a delete.
        ReservedColumnError: a column of the table is named like a load column (no slot is made).
        CdcPositionLostError: the slot was dropped or invalidated after a snapshot was stored.
        psycopg2.Error: the server refused (no ``wal2json``, ``wal_level`` not ``logical``, no
            ``REPLICATION`` attribute ...).
    """
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    table, slot = _qualified(source.table), slot_name(dataset)  # type: ignore[arg-type]
    kwargs = connection_kwargs(source.connection, dataset.name)
    metadata: dict = {"slot": slot, "source": table}
    with closing(psycopg2.connect(**kwargs)) as pg:
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute(wal2json.BYTEA_OUTPUT)  # as the snapshot's: the decoding runs in this session
            columns, types = _table_info(cur, table, dataset)
            state, taken = _slot_state(cur, slot), _snapshot_taken(con, dataset)
            lost = None
            if taken is not None and not resync:
                if state is None:
                    lost = "does not exist (dropped)"
                elif state[0] == "lost":
                    lost = "was invalidated: the server removed WAL it still needed (max_slot_wal_keep_size)"
            if lost is not None:
                raise CdcPositionLostError(dataset.name, slot, lost, lsn_text(_last_change(con, dataset) or 0))
            spool = Spool()
            try:
                files: list[Path] = []
                snapshot_rows = 0
                if taken is None or resync:
                    # first load (or a slot left by a first load that never stored its snapshot), or a resync
                    if state is not None:
                        cur.execute("select pg_drop_replication_slot(%s)", [slot])
                    snapshot_rows, snapshot_file = _snapshot(con, kwargs, slot, table, columns, types, spool)
                    metadata["initial_snapshot_rows"] = snapshot_rows
                    files.append(snapshot_file)
                stored = snapshot_rows + 1 if files else 0
                peek = cur.mogrify(wal2json.peek_sql(), [slot, source.cdc.max_changes, table]).decode()
                decoder = wal2json.Decoder(columns, dataset.primary_key, stored, types)
                for chunk in _stream(cur, f"COPY ({peek}) TO STDOUT WITH ({wal2json.COPY_OPTIONS})", spool):
                    files.append(spool.path(".parquet"))
                    decoder.chunk(con, chunk, files[-1])
                    chunk.unlink()
                decoded = decoder.decoded
                if decoded.updates_or_deletes and source.cdc.insert_only:
                    raise SourceConfigError(
                        f"{dataset.name}: {table} had {decoded.updates_or_deletes:,} update(s) or delete(s), but the "
                        "dataset declares cdc: {insert_only: true}. Nothing was loaded and the slot did not move: run "
                        f"ALTER TABLE {table} REPLICA IDENTITY FULL, drop insert_only, and resync "
                        f"(strata cdc resync {dataset.name})"
                    )
            except BaseException:
                spool.close()
                raise
    end_lsn = decoded.end_lsn
    read = stored + decoded.rows
    metadata.update(changes_read=read, transactions_read=decoded.transactions)
    metadata["last_commit_lsn_read"] = end_lsn or "none"
    transactions = decoded.transactions
    changes = (
        f"read_parquet([{', '.join(warehouse.literal(str(f)) for f in files)}])" if files else f"({_empty(columns)})"
    )

    def advance() -> None:
        """Move the slot past what was read, then measure the WAL it still retains."""
        with closing(psycopg2.connect(**kwargs)) as pg, pg.cursor() as cur:
            if end_lsn is not None:
                cur.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, end_lsn])
            cur.execute(
                "select confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint "
                "from pg_replication_slots where slot_name = %s",
                [slot],
            )
            confirmed, lag = cur.fetchone()
            pg.commit()
        metadata.update(confirmed_lsn=confirmed, slot_lag_bytes=int(lag), max_lag_bytes=source.cdc.max_lag_bytes)

    return Extract(
        relation=f"(select *, {warehouse.literal(table)} as _source_table from {changes})",
        origin_column="_source_table",
        units=transactions,
        metadata=metadata,
        release=spool.close,
        load_columns=CDC_COLUMNS,
        after_commit=advance,
    )
