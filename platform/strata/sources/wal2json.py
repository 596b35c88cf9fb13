r"""wal2json's change stream, decoded by DuckDB: one row per change, in log order, every value as PostgreSQL's text.

:mod:`strata.sources.cdc` writes what ``pg_logical_slot_peek_changes`` returns to tab-separated
chunk files with ``COPY (`` :func:`peek_sql` ``)`` (``n``, the message's order; ``lsn``; ``data``,
one wal2json format-2 message), and a :class:`Decoder` turns each chunk into change rows with SQL
(no Python per change), written to Parquet.
Messages: ``B`` (a transaction begins: its commit LSN and time),
``I``/``U``/``D`` (a row: ``columns`` the new image, ``identity`` the old one), ``T`` (truncate),
``C`` (commit). Numbers are read as the text wal2json wrote (:data:`NUMBER`), so a ``numeric``
keeps its every digit; booleans as ``true``/``false``; a ``bytea`` with the ``\x`` that wal2json
strips put back (:data:`BYTEA_OUTPUT`); other types as their output text, as ``COPY`` writes them
for the snapshot. wal2json 2.5 writes a ``NaN`` or an infinite ``float``/``numeric`` as ``null``
(2.6's ``numeric-data-types-as-string`` keeps them): that is lost before Strata reads it.

Per change: the row image, ``_cdc_op`` (``c`` insert, ``u`` update, ``d`` delete, ``t``
truncate), ``_cdc_commit_lsn`` (the transaction's commit), ``_cdc_lsn``, ``_cdc_seq`` (order in the
transaction), ``_cdc_committed_at``. An update that changes a key becomes a delete of the old key
and an insert of the new one; an update's columns missing from its new image (an unchanged
TOASTed value) keep the old image's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from strata import warehouse

#: ``pg_logical_slot_peek_changes`` options: format 2 (one message per change), each change's LSN,
#: the commit time, begin/commit messages (their LSN is the commit's), no column types (the
#: messages are a fifth smaller), and only the captured table (``add-tables``, bound as a parameter).
OPTIONS = (
    "'format-version', '2', 'include-lsn', '1', 'include-timestamp', '1', 'include-transaction', '1', "
    "'include-types', '0', 'add-tables', %s"
)
#: The session setting under which the snapshot's ``COPY`` and the decoding run: wal2json drops the
#: first two characters of a ``bytea``'s text, assuming hex (``\x00ff``); the decoder puts them back.
BYTEA_OUTPUT = "set bytea_output = 'hex'"
#: How ``COPY`` writes the messages: tab-separated, never quoted (a JSON text holds no tab, newline
#: or control character: wal2json escapes them), so DuckDB reads them as they are.
COPY_OPTIONS = "FORMAT csv, DELIMITER E'\\t', QUOTE E'\\x01'"
#: A column's number as wal2json writes it (``"value":10.50``): quoted before DuckDB parses the JSON,
#: so that it keeps its every digit (DuckDB reads a JSON number as a DOUBLE). Inside a JSON string a
#: quote is escaped, so ``e":`` only occurs where a key ends: a value's text can never match.
NUMBER = r'"value":(-?[0-9][0-9.eE+-]*)'

MESSAGES = "__strata_wal2json"


@dataclass
class Decoded:
    """What a decoded stream held: change rows, committed transactions, the last commit's LSN, updates and deletes."""

    rows: int = 0
    transactions: int = 0
    end_lsn: str | None = None
    updates_or_deletes: int = 0


@dataclass
class _Open:
    """The transaction a chunk ends inside: its ``B`` message's order, LSN and time, and its changes so far."""

    txn: int
    lsn: str
    ts: str
    seq: int = 0


def lsn_sql(text: str) -> str:
    """SQL of a PostgreSQL LSN text column (``16/B374D848``) as the BIGINT it stands for."""
    return f"(('0x' || split_part({text}, '/', 1))::bigint * 4294967296 + ('0x' || split_part({text}, '/', 2))::bigint)"


#: A message's text with its numbers quoted (:data:`NUMBER`; RE2, in DuckDB).
QUOTED = f"""regexp_replace(data, {warehouse.literal(NUMBER)}, '"value":"\\1"', 'g')"""
#: The shape of a wal2json format-2 message, as DuckDB parses it (a value as its text).
SHAPE = (
    '{"action": "VARCHAR", "lsn": "VARCHAR", "timestamp": "VARCHAR", '
    '"columns": [{"name": "VARCHAR", "value": "VARCHAR"}], "identity": [{"name": "VARCHAR", "value": "VARCHAR"}]}'
)


def peek_sql(options: str = OPTIONS) -> str:
    """The query ``COPY`` runs on the source: each message's order, LSN and text.

    Parameters: the slot, the most changes to read, the table (``add-tables``).
    """
    return (
        "select n, lsn::text, data "
        f"from pg_logical_slot_peek_changes(%s, NULL, %s, {options}) with ordinality as changes(lsn, xid, data, n)"
    )


class Decoder:
    r"""Decodes a stream chunk by chunk (files of whole lines, in order), each to a Parquet file of change rows.

    A transaction may span chunks: its ``B`` message (commit LSN, time) and the order of its
    changes so far carry over, so the rows are those of one pass over the whole stream, while
    memory holds one chunk. Output columns: the table's ``columns`` (VARCHAR), ``_cdc_op``,
    ``_cdc_commit_lsn``, ``_cdc_lsn`` (BIGINT), ``_cdc_seq`` (INTEGER), ``_cdc_committed_at``
    (TIMESTAMPTZ) and ``_source_row`` (BIGINT, counting on from ``first_row``). A row image whose
    columns are all there (an insert, a delete, most updates) is read by position; one with
    columns missing (an unchanged TOASTed value) by name. ``types``: the columns' PostgreSQL types
    (``format_type``): a table with ``numeric`` columns, whose digits a JSON number would not keep,
    has its numbers quoted first (:data:`QUOTED`; integers and floats read exactly either way);
    a ``bytea`` gets its ``\x`` back.
    """

    def __init__(self, columns: list[str], keys: list[str], first_row: int, types: list[str]) -> None:
        self.columns, self.keys = columns, keys
        self.exact_numbers = any(t.startswith("numeric") for t in types)
        self.bytea = {c for c, t in zip(columns, types, strict=True) if t == "bytea"}
        self.first_row = first_row
        self.decoded = Decoded()
        self._open: _Open | None = None

    def chunk(self, con: duckdb.DuckDBPyConnection, path: Path, out: Path) -> int:
        """Decode the lines at ``path`` (of :func:`peek_sql`) to Parquet at ``out``; returns the change rows."""
        text = QUOTED if self.exact_numbers else "data"
        con.execute(
            f"create or replace temp table {MESSAGES} as select n, lsn, "
            f"from_json({text}, {warehouse.literal(SHAPE)}) as m "
            f"from read_csv({warehouse.literal(str(path))}, header = false, columns = {{'n': 'BIGINT', "
            "'lsn': 'VARCHAR', 'data': 'VARCHAR'}, quote = '\x01', escape = '\x01', delim = '\t', "
            "auto_detect = false, max_line_size = 1073741824)"
        ).fetchall()
        try:
            return self._write(con, out)
        finally:
            con.execute(f"drop table if exists {MESSAGES}").fetchall()

    def _write(self, con: duckdb.DuckDBPyConnection, out: Path) -> int:
        commits, end_lsn, changed = con.execute(
            "select count(*) filter (where m.action = 'C'), max_by(lsn, n) filter (where m.action = 'C'), "
            f"count(*) filter (where m.action in ('U', 'D')) from {MESSAGES}"
        ).fetchall()[0]
        columns, width = self.columns, len(self.columns)

        def value(image: str, i: int, column: str) -> str:
            by_name = f"list_filter({image}, x -> x.name = {warehouse.literal(column)})[1].value"
            text = f"case when len({image}) = {width} then {image}[{i + 1}].value else {by_name} end"
            return f"('\\x' || {text})" if column in self.bytea else text

        def present(image: str, column: str) -> str:
            return (
                f"(len({image}) = {width} or len(list_filter({image}, x -> x.name = {warehouse.literal(column)})) > 0)"
            )

        new = {c: value("cols", i, c) for i, c in enumerate(columns)}
        old = {c: value("ident", i, c) for i, c in enumerate(columns)}
        merged = {c: f"case when {present('cols', c)} then {new[c]} else {old[c]} end" for c in columns}
        quoted = [warehouse.quote(c) for c in columns]

        key_changed = " or ".join(f"{old[k]} is distinct from {merged[k]}" for k in self.keys) or "false"
        # one row per change (an update of the key: its delete here, its insert below), in one scan
        first = {
            c: f"case when action = 'I' then {new[c]} when action = 'T' then null "
            f"when action = 'D' or rekeyed then {old[c]} else {merged[c]} end"
            for c in columns
        }
        # the images' values by position (``__v0``...) until the last select names them: a table's
        # column may be called like any of the query's own (``ts``, ``op``, ``k``)
        listed = "".join(f"{first[c]} as __v{i}, " for i, c in enumerate(columns))
        again = "".join(f"{merged[c]} as __v{i}, " for i, c in enumerate(columns))
        op = (
            "case action when 'I' then 'c' when 'T' then 't' when 'D' then 'd' "
            "else case when rekeyed then 'd' else 'u' end end"
        )
        cols = "".join(f"r.__v{i}::varchar as {q}, " for i, q in enumerate(quoted))
        carried = self._open
        # the transaction open at the end of the previous chunk: its begin, and its changes' order so far
        open_txn, open_seq = (carried.txn, carried.seq) if carried else (-1, 0)
        open_begin = (
            f"union all select {carried.txn}, {warehouse.literal(carried.lsn)}, {warehouse.literal(carried.ts)}"
            if carried
            else ""
        )
        # the windows (each change's transaction and numbers) run over narrow rows, never sorting
        # the row images: a change yields k rows (2 for an update of the key), numbered up to `upto`
        query = f"""
            with messages as (
                select n, m.action as action, m.lsn as mlsn, m.timestamp as ts,
                    coalesce(m.columns, []) as cols, coalesce(m.identity, []) as ident
                from {MESSAGES}
            ),
            flags as (
                select n, action, (action = 'U' and len(ident) > 0 and ({key_changed})) as rekeyed
                from messages where action in ('B', 'I', 'U', 'D', 'T')
            ),
            framed as (
                select n, action, rekeyed, 1 + rekeyed::integer as k, coalesce(
                    max(case when action = 'B' then n end) over (order by n rows unbounded preceding), {open_txn}
                ) as txn
                from flags
            ),
            numbered as (
                select n, rekeyed, k, txn,
                    sum(k) over (order by n rows unbounded preceding) as upto,
                    sum(k) over (partition by txn order by n rows unbounded preceding) as upto_txn
                from framed where action <> 'B'
            ),
            changes as (
                select m.*, f.rekeyed, f.k, f.txn, f.upto, f.upto_txn from messages as m join numbered as f using (n)
            ),
            rows as (
                select 0 as sub, {op} as op, {listed}mlsn, txn, upto, upto_txn, k from changes
                union all select 1 as sub, 'c' as op, {again}mlsn, txn, upto, upto_txn, k from changes where rekeyed
            ),
            begins as (select n as txn, mlsn as commit_text, ts from messages where action = 'B' {open_begin})
            select {cols}op::varchar as _cdc_op, {lsn_sql("b.commit_text")} as _cdc_commit_lsn,
                {lsn_sql("r.mlsn")} as _cdc_lsn,
                (r.upto_txn - r.k + r.sub + case when r.txn = {open_txn} then {open_seq} else 0 end)::integer
                    as _cdc_seq,
                b.ts::timestamptz as _cdc_committed_at,
                ({self.first_row + self.decoded.rows} + r.upto - r.k + 1 + r.sub)::bigint as _source_row
            from rows as r join begins as b on r.txn = b.txn"""
        rows = con.execute(f"copy ({query}) to {warehouse.literal(str(out))} (format parquet)").fetchall()[0][0]
        begin = con.execute(
            f"select n, m.lsn, m.timestamp from {MESSAGES} where m.action = 'B' order by n desc limit 1"
        ).fetchall()
        if begin:  # the chunk's last transaction: its changes in this chunk come after its begin
            n, lsn, ts = begin[0]
            in_it = con.execute(
                f"select count(*) from read_parquet({warehouse.literal(str(out))}) where _cdc_commit_lsn = "
                f"{lsn_sql(warehouse.literal(lsn))}"
            ).fetchall()[0][0]
            self._open = _Open(int(n), lsn, ts, int(in_it))
        elif carried is not None:
            carried.seq += int(rows)
        d = self.decoded
        d.rows += int(rows)
        d.transactions += int(commits)
        d.updates_or_deletes += int(changed)
        d.end_lsn = end_lsn or d.end_lsn
        return int(rows)
