"""Change data capture from PostgreSQL: a table's inserts, updates and deletes, read from the WAL.

A ``mode: cdc`` PostgreSQL source reads the changes of one table through a logical replication
slot decoded by the ``wal2json`` output plugin (format 2, Debian's ``postgresql-15-wal2json``),
with the SQL functions ``pg_logical_slot_peek_changes`` and ``pg_replication_slot_advance``:

* **First load** (no raw rows yet): the slot is (re)created, then the table is read whole in one
  transaction as ``r`` rows at the slot's consistent point. A change committed between the two is
  both in that read and in the stream after it; applied in log order it converges on the same
  state (the stream's changes come later in log order).
* **Every load** peeks at the committed transactions after the slot's confirmed position (at most
  about ``max_changes`` changes, whole transactions), in commit order. Raw keeps every change:
  the row image (the new row; for a delete, the old one), ``_cdc_op``, the commit's and the change's
  LSN, the commit time (:data:`strata.registry.models.CDC_COLUMNS`). A primary-key update becomes a
  delete of the old key and an insert of the new one, as Debezium records it.
* **Exactly once:** the slot advances only after the raw write committed
  (:attr:`strata.sources.Extract.after_commit`), so a crash before that reads the changes again;
  raw merges by (commit LSN, LSN, seq), so a change read twice is stored once.
* Slot lag, the WAL bytes the slot still holds back (``pg_current_wal_lsn() - confirmed_flush_lsn``),
  is measured after the advance and checked against ``max_lag_bytes`` (the ``slot_lag`` check).

The table needs ``REPLICA IDENTITY FULL`` (deletes and key updates then carry the whole old row)
and the role the ``REPLICATION`` attribute. Values arrive as text (JSON numbers and booleans are
written back as text) and the contract casts the declared columns as for CSV files.
"""

from __future__ import annotations

import json
from decimal import Decimal

import duckdb
import psycopg2
import pyarrow as pa

from strata import warehouse
from strata.errors import SourceConfigError
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


def slot_name(dataset: Dataset) -> str:
    """The replication slot of a CDC dataset: ``cdc.slot``, or ``strata_<dataset>``."""
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    return source.cdc.slot or f"strata_{dataset.name}"


def lsn_number(text: str) -> int:
    """A PostgreSQL LSN (``16/B374D848``) as the 64-bit integer it stands for."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def _text(value: object) -> str | None:
    """A decoded value as text: what the contract casts to the declared type."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"


def _columns(cur, table: str, dataset: Dataset) -> list[str]:
    """The table's columns in order; raises SourceConfigError unless it has REPLICA IDENTITY FULL."""
    cur.execute("select relreplident from pg_class where oid = %s::regclass", [table])
    if cur.fetchone()[0] != "f":
        raise SourceConfigError(
            f"{dataset.name}: change data capture needs the old row of every update and delete: "
            f"run ALTER TABLE {table} REPLICA IDENTITY FULL on the source"
        )
    cur.execute(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
        "order by attnum",
        [table],
    )
    return [r[0] for r in cur.fetchall()]


class _Changes:
    """Rows of the raw batch being built: the row image as text, and the CDC columns."""

    def __init__(self, columns: list[str], keys: list[str]):
        self.columns, self.keys = columns, keys
        self.rows: list[dict] = []
        self.seq = 0  # rows of the current transaction so far

    def begin(self) -> None:
        """A transaction starts: its rows are numbered from 0 (``_cdc_seq``)."""
        self.seq = 0

    def add(self, op: str, image: dict, commit_lsn: int, lsn: int, seq: int, committed_at: str) -> None:
        row = {c: _text(image.get(c)) for c in self.columns}
        row.update(_cdc_op=op, _cdc_commit_lsn=commit_lsn, _cdc_lsn=lsn, _cdc_seq=seq, _cdc_committed_at=committed_at)
        row["_source_row"] = len(self.rows) + 1
        self.rows.append(row)

    def change(self, message: dict, commit_lsn: int, committed_at: str) -> None:
        """One wal2json change message (``I``, ``U`` or ``D``).

        Rows are numbered within their transaction (``_cdc_seq``): the changes of one multi-row
        WAL record (``COPY``, a multi-insert) share their LSN, so the LSN alone would merge them
        into one.
        """
        lsn = lsn_number(message["lsn"])
        new = {c["name"]: c["value"] for c in message.get("columns", [])}
        old = {c["name"]: c["value"] for c in message.get("identity", [])}
        action = message["action"]
        rows = []
        if action == "I":
            rows = [("c", new)]
        elif action == "D":
            rows = [("d", old)]
        elif action == "U":
            new = {**old, **new}  # an unchanged TOASTed value is only in the old row
            if old and any(old.get(k) != new.get(k) for k in self.keys):
                rows = [("d", old), ("c", new)]
            else:
                rows = [("u", new)]
        for op, image in rows:
            self.add(op, image, commit_lsn, lsn, self.seq, committed_at)
            self.seq += 1

    def table(self) -> pa.Table:
        schema = pa.schema(
            [(c, pa.string()) for c in self.columns]
            + [
                ("_cdc_op", pa.string()),
                ("_cdc_commit_lsn", pa.int64()),
                ("_cdc_lsn", pa.int64()),
                ("_cdc_seq", pa.int32()),
                ("_cdc_committed_at", pa.string()),
                ("_source_row", pa.int64()),
            ]
        )
        return pa.Table.from_pylist(self.rows, schema=schema)


def _snapshot(pg, table: str, changes: _Changes, consistent_point: int) -> None:
    """Every row of ``table`` as an ``r`` change at the slot's consistent point.

    Each column is read as PostgreSQL's text (``::text``), the form wal2json gives the same
    values in (arrays as ``{1,2}``, json as its text, booleans as ``true``/``false``).
    """
    quoted = [psycopg2.extensions.quote_ident(c, pg) for c in changes.columns]
    relation = ".".join(psycopg2.extensions.quote_ident(p, pg) for p in table.split("."))
    with pg.cursor(name="strata_cdc_snapshot") as cur:
        cur.itersize = 50_000
        cur.execute(f"select {', '.join(c + '::text' for c in quoted)}, now()::text from {relation}")
        for seq, row in enumerate(cur, start=1):
            image = dict(zip(changes.columns, row[:-1], strict=True))
            changes.add("r", image, consistent_point, consistent_point, seq, row[-1])


def _raw_rows(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> int:
    if not warehouse.table_exists(con, dataset.table):
        return 0
    return con.execute(f"select count(*) from {warehouse.qualified(dataset.table)}").fetchall()[0][0]


def extract(con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None) -> Extract:
    """Read the table's changes since the last committed load into a DuckDB temporary table.

    Columns: the table's columns (VARCHAR), :data:`strata.registry.models.CDC_COLUMNS`,
    ``_source_table`` and ``_source_row``. The slot advances in the Extract's ``after_commit``.

    Raises:
        SourceConfigError: a connection variable is unset, or the table lacks REPLICA IDENTITY FULL.
        psycopg2.Error: the server refused (no ``wal2json``, ``wal_level`` not ``logical``, no
            ``REPLICATION`` attribute ...).
    """
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    table, slot = _qualified(source.table), slot_name(dataset)  # type: ignore[arg-type]
    kwargs = connection_kwargs(source.connection, dataset.name)
    metadata: dict = {"slot": slot, "source": table}
    end_lsn: str | None = None
    with psycopg2.connect(**kwargs) as pg:
        pg.autocommit = True
        with pg.cursor() as cur:
            changes = _Changes(_columns(cur, table, dataset), dataset.primary_key)
            if _raw_rows(con, dataset) == 0:
                # first load: a new slot, then the table as it is from there on
                cur.execute(
                    "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s",
                    [slot],
                )
                cur.execute("select lsn::text from pg_create_logical_replication_slot(%s, 'wal2json')", [slot])
                consistent_point = lsn_number(cur.fetchone()[0])
                with psycopg2.connect(**kwargs) as snap:
                    snap.set_session(isolation_level="REPEATABLE READ", readonly=True)
                    _snapshot(snap, table, changes, consistent_point)
                metadata["initial_snapshot_rows"] = len(changes.rows)
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
                    changes.begin()
                elif action == "T":
                    # nothing committed: the slot stays where it was, and the next run fails the same way
                    raise SourceConfigError(
                        f"{dataset.name}: {table} was truncated (LSN {message.get('lsn', row_lsn)}): change data "
                        "capture cannot apply a TRUNCATE row by row. Read the table again: empty "
                        f"raw.{dataset.name} (a first load re-creates the slot and reads the whole table)"
                    )
                elif action == "C":
                    end_lsn, transactions = row_lsn, transactions + 1
                elif action in ("I", "U", "D"):
                    changes.change(message, commit_lsn, committed_at)
    con.execute(f"drop table if exists {TEMP_TABLE}")
    batch = changes.table()
    con.register("__strata_cdc_batch", batch)
    con.execute(
        f"create temp table {TEMP_TABLE} as select * replace (_cdc_committed_at::timestamptz as _cdc_committed_at) "
        "from __strata_cdc_batch"
    )
    con.unregister("__strata_cdc_batch")
    metadata.update(changes_read=batch.num_rows, transactions_read=transactions)
    metadata["last_commit_lsn_read"] = end_lsn or "none"

    def advance() -> None:
        """Move the slot past what was read, then measure what it still holds back."""
        with psycopg2.connect(**kwargs) as pg, pg.cursor() as cur:
            if end_lsn is not None:
                cur.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", [slot, end_lsn])
            cur.execute(
                "select confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
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
