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
  about ``max_changes`` changes, whole transactions), in commit order, into DuckDB in batches of
  :data:`BATCH_ROWS` (memory does not grow with a transaction's size). Each change keeps its row
  image (the new row; for a delete, the old one), ``_cdc_op``, commit and change LSN, order in the
  transaction and commit time (:data:`strata.registry.models.CDC_COLUMNS`). A primary-key update
  becomes a delete of the old key and an insert of the new one, as Debezium records it. A
  ``TRUNCATE`` is a change too: a ``t`` row at its LSN (the state is empty from there).
* **Exactly once:** the slot advances only after the raw write committed
  (:attr:`strata.sources.Extract.after_commit`), so a crash before that reads the changes again;
  raw merges by (commit LSN, LSN, seq), so a change read twice is stored once.
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

import json
import tempfile
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import duckdb
import psycopg2
import pyarrow as pa
from psycopg2.extras import LogicalReplicationConnection

from strata import warehouse
from strata.errors import CdcPositionLostError, SourceConfigError
from strata.partition_window import PartitionWindow
from strata.registry.models import CDC_COLUMNS, Dataset, PostgresSource
from strata.sources import Extract
from strata.sources.postgres import connection_kwargs

TEMP_TABLE = "__strata_cdc"
#: wal2json options: format 2 (one message per change), with each change's LSN, the commit time,
#: and the transaction's begin/commit messages (their LSN is the commit's).
WAL2JSON_OPTIONS = (
    "'format-version', '2', 'include-lsn', '1', 'include-timestamp', '1', 'include-transaction', '1', 'add-tables', %s"
)
#: Changes held in memory before they are written to DuckDB (rows): what bounds a load's memory.
BATCH_ROWS = 50_000
#: Operations: ``s`` snapshot marker, ``r`` snapshot row, ``c`` insert, ``u`` update, ``d`` delete,
#: ``t`` truncate (Debezium's letters, and the two markers).
RESET_OPS = ("s", "t")


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


def _text(value: object) -> str | None:
    """A decoded value as text, as PostgreSQL writes it (booleans ``true``/``false``, json as text)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


def _table_info(cur, table: str, dataset: Dataset) -> tuple[list[str], list[str]]:
    """The table's columns and their PostgreSQL types, in order.

    Raises:
        SourceConfigError: the table's updates and deletes would not carry their old rows
            (not ``REPLICA IDENTITY FULL``) and the dataset does not say it only gets inserts.
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
    return [r[0] for r in rows], [r[1] for r in rows]


class _Batches:
    """The changes of a load, written to a DuckDB temporary table :data:`BATCH_ROWS` at a time.

    Columns: the table's (VARCHAR), ``_cdc_op``, ``_cdc_commit_lsn``, ``_cdc_lsn`` (BIGINT),
    ``_cdc_seq`` (INTEGER), ``_cdc_committed_at`` (TIMESTAMPTZ), ``_source_row`` (BIGINT).
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, columns: list[str], keys: list[str]):
        self.con, self.columns, self.keys = con, columns, keys
        self.rows: list[dict] = []
        self.count = 0
        self.seq = 0  # rows of the current transaction so far
        self.schema = pa.schema(
            [(c, pa.string()) for c in columns]
            + [
                ("_cdc_op", pa.string()),
                ("_cdc_commit_lsn", pa.int64()),
                ("_cdc_lsn", pa.int64()),
                ("_cdc_seq", pa.int32()),
                ("_cdc_committed_at", pa.string()),
                ("_source_row", pa.int64()),
            ]
        )
        con.execute(f"drop table if exists {TEMP_TABLE}").fetchall()
        self._flush(force_create=True)

    def begin(self) -> None:
        """A transaction starts: its rows are numbered from 0 (``_cdc_seq``)."""
        self.seq = 0

    def add(self, op: str, image: dict, commit_lsn: int, lsn: int, seq: int, committed_at: str) -> None:
        """One change row (``image``: column -> text)."""
        row = {c: _text(image.get(c)) for c in self.columns}
        row.update(_cdc_op=op, _cdc_commit_lsn=commit_lsn, _cdc_lsn=lsn, _cdc_seq=seq, _cdc_committed_at=committed_at)
        self.count += 1
        row["_source_row"] = self.count
        self.rows.append(row)
        if len(self.rows) >= BATCH_ROWS:
            self._flush()

    def change(self, message: dict, commit_lsn: int, committed_at: str) -> None:
        """One wal2json change message (``I``, ``U``, ``D`` or ``T``).

        Rows are numbered within their transaction (``_cdc_seq``): the changes of one multi-row
        WAL record (``COPY``, a multi-insert) share their LSN, so the LSN alone would merge them.
        """
        lsn = lsn_number(message["lsn"])
        new = {c["name"]: c["value"] for c in message.get("columns", [])}
        old = {c["name"]: c["value"] for c in message.get("identity", [])}
        action = message["action"]
        rows: list[tuple[str, dict]] = []
        if action == "I":
            rows = [("c", new)]
        elif action == "D":
            rows = [("d", old)]
        elif action == "T":
            rows = [("t", {})]
        elif action == "U":
            new = {**old, **new}  # an unchanged TOASTed value is only in the old row
            if old and any(old.get(k) != new.get(k) for k in self.keys):
                rows = [("d", old), ("c", new)]
            else:
                rows = [("u", new)]
        for op, image in rows:
            self.add(op, image, commit_lsn, lsn, self.seq, committed_at)
            self.seq += 1

    def snapshot_file(self, path: Path, consistent_point: int, taken_at: str) -> int:
        """The ``s`` marker and one ``r`` row per line of a ``COPY ... (FORMAT csv)`` file; returns the rows."""
        self.add("s", {}, consistent_point, consistent_point, 0, taken_at)
        self._flush()
        types = "{" + ", ".join(f"{warehouse.literal(c)}: 'VARCHAR'" for c in self.columns) + "}"
        reader = (
            f"read_csv({warehouse.literal(str(path))}, header = false, columns = {types}, "
            "nullstr = '', allow_quoted_nulls = false, quote = '\"', escape = '\"', auto_detect = false, "
            "delim = ',', new_line = '\\n', parallel = false, max_line_size = 1073741824)"
        )
        cols = ", ".join(warehouse.quote(c) for c in self.columns)
        start = self.count
        inserted = self.con.execute(
            f"insert into {TEMP_TABLE} select {cols}, 'r', ?, ?, (row_number() over ())::integer, "
            f"?::timestamptz, ? + row_number() over () from {reader}",
            [consistent_point, consistent_point, taken_at, start],
        ).fetchall()[0][0]
        self.count += int(inserted)
        return int(inserted)

    def _flush(self, force_create: bool = False) -> None:
        if not self.rows and not force_create:
            return
        batch = pa.Table.from_pylist(self.rows, schema=self.schema)
        self.con.register("__strata_cdc_batch", batch)
        try:
            select = "select * replace (_cdc_committed_at::timestamptz as _cdc_committed_at) from __strata_cdc_batch"
            if force_create:
                self.con.execute(f"create temp table {TEMP_TABLE} as {select} limit 0").fetchall()
            if self.rows:
                self.con.execute(f"insert into {TEMP_TABLE} {select}").fetchall()
        finally:
            self.con.unregister("__strata_cdc_batch")
        self.rows = []

    def finish(self) -> int:
        """Write what is left; return the rows in all."""
        self._flush()
        return self.count


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


def _snapshot(kwargs: dict, slot: str, table: str, columns: list[str], types: list[str], batches: _Batches) -> int:
    """Create the slot with an exported snapshot and read ``table`` in that snapshot; returns the consistent point.

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
                cur.execute("select now()::text")
                taken_at = cur.fetchone()[0]
                exprs = [
                    f"case when {q} then 'true' when not {q} then 'false' end" if kind == "boolean" else q
                    for q, kind in (
                        (psycopg2.extensions.quote_ident(c, snap), t) for c, t in zip(columns, types, strict=True)
                    )
                ]
                relation = ".".join(psycopg2.extensions.quote_ident(p, snap) for p in table.split("."))
                handle, name = tempfile.mkstemp(suffix=".csv", prefix="strata-cdc-")
                path = Path(name)
                try:
                    with open(handle, "w", encoding="utf-8", newline="") as out:
                        cur.copy_expert(
                            f"COPY (select {', '.join(exprs)} from {relation}) TO STDOUT WITH (FORMAT csv)", out
                        )
                    batches.snapshot_file(path, consistent_point, taken_at)
                finally:
                    path.unlink(missing_ok=True)
            snap.commit()
    finally:
        replication.close()
    return consistent_point


def extract(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None, resync: bool = False
) -> Extract:
    """Read the table's changes since the last committed load into a DuckDB temporary table.

    Columns: the table's columns (VARCHAR), :data:`strata.registry.models.CDC_COLUMNS`,
    ``_source_table`` and ``_source_row``. The slot advances in the Extract's ``after_commit``.
    ``resync``: drop the slot (if any) and read the table again at a new one (``strata cdc resync``).

    Raises:
        SourceConfigError: a connection variable is unset, the table cannot be captured as declared,
            or an insert-only table had an update or a delete.
        CdcPositionLostError: the slot was dropped or invalidated after a snapshot was stored.
        psycopg2.Error: the server refused (no ``wal2json``, ``wal_level`` not ``logical``, no
            ``REPLICATION`` attribute ...).
    """
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    table, slot = _qualified(source.table), slot_name(dataset)  # type: ignore[arg-type]
    kwargs = connection_kwargs(source.connection, dataset.name)
    metadata: dict = {"slot": slot, "source": table}
    end_lsn: str | None = None
    with closing(psycopg2.connect(**kwargs)) as pg:
        pg.autocommit = True
        with pg.cursor() as cur:
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
            batches = _Batches(con, columns, dataset.primary_key)
            if taken is None or resync:
                # first load (or a slot left by a first load that never stored its snapshot), or a resync
                if state is not None:
                    cur.execute("select pg_drop_replication_slot(%s)", [slot])
                before = batches.count
                _snapshot(kwargs, slot, table, columns, types, batches)
                metadata["initial_snapshot_rows"] = batches.count - before - 1
        with pg.cursor(name="strata_cdc_changes") as cur:
            pg.autocommit = False
            cur.itersize = 10_000
            cur.execute(
                "select lsn::text, data from pg_logical_slot_peek_changes(%s, NULL, %s, " + WAL2JSON_OPTIONS + ")",
                [slot, source.cdc.max_changes, table],
            )
            commit_lsn, committed_at, transactions = 0, "", 0
            for row_lsn, data in cur:
                message = json.loads(data, parse_float=Decimal)
                action = message["action"]
                if action == "B":
                    commit_lsn, committed_at = lsn_number(message["lsn"]), message["timestamp"]
                    batches.begin()
                elif action == "C":
                    end_lsn, transactions = row_lsn, transactions + 1
                elif action in ("U", "D") and source.cdc.insert_only:
                    raise SourceConfigError(
                        f"{dataset.name}: {table} had an {'update' if action == 'U' else 'delete'} (LSN "
                        f"{message['lsn']}), but the dataset declares cdc: {{insert_only: true}}. Nothing was "
                        f"loaded and the slot did not move: run ALTER TABLE {table} REPLICA IDENTITY FULL, drop "
                        f"insert_only, and resync (strata cdc resync {dataset.name})"
                    )
                elif action in ("I", "U", "D", "T"):
                    batches.change(message, commit_lsn, committed_at)
        pg.rollback()
    read = batches.finish()
    metadata.update(changes_read=read, transactions_read=transactions)
    metadata["last_commit_lsn_read"] = end_lsn or "none"

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
        relation=f"(select *, {warehouse.literal(table)} as _source_table from {TEMP_TABLE})",
        origin_column="_source_table",
        units=transactions,
        metadata=metadata,
        cleanup=[TEMP_TABLE],
        load_columns=CDC_COLUMNS,
        after_commit=advance,
    )
