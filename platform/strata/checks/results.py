"""``quality.check_results``: the latest outcome of every check on every partition, and the gate.

Asset checks are Dagster events, but a range run records one evaluation for many partitions.
This table keeps one row per (asset, check, partition), replaced at each evaluation, so that a
later run can ask exactly which partitions of its upstream failed a blocking check. The gate
(:func:`blocked_partitions`) is what keeps a dbt build or a SQL dataset from building a partition
on top of an upstream partition whose check failed, whichever run (schedule, sensor, backfill, a
person) launches it. A partition is stored as instants, so an upstream of another grain (the hours
of a day) or zone is matched by overlap.

Columns: ``asset``, ``check_name`` (VARCHAR); ``partition_key`` (VARCHAR, Dagster's key; NULL
unpartitioned); ``partition_date`` (DATE, the partition's local date); ``partition_start``,
``partition_end`` (TIMESTAMPTZ, the partition's instants); ``passed``, ``blocking`` (BOOLEAN);
``severity``, ``detail``, ``run_id`` (VARCHAR); ``evaluated_at`` (TIMESTAMPTZ).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from strata import warehouse
from strata.checks import CheckOutcome
from strata.partition_window import Partition, PartitionWindow

TABLE = "quality.check_results"
_DDL = f"""create table if not exists {TABLE} (
    asset varchar, check_name varchar, partition_key varchar, partition_date date,
    partition_start timestamptz, partition_end timestamptz, passed boolean, severity varchar,
    blocking boolean, detail varchar, run_id varchar, evaluated_at timestamptz)"""

_INSTANT = pa.timestamp("us", tz="UTC")
_SCHEMA = pa.schema(
    [
        ("asset", pa.string()),
        ("check_name", pa.string()),
        ("partition_key", pa.string()),
        ("partition_date", pa.date32()),
        ("partition_start", _INSTANT),
        ("partition_end", _INSTANT),
        ("passed", pa.bool_()),
        ("severity", pa.string()),
        ("blocking", pa.bool_()),
        ("detail", pa.string()),
        ("run_id", pa.string()),
        ("evaluated_at", _INSTANT),
    ]
)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema and table if missing; bring a table of an earlier layout to this one.

    Before partitions were instants, results had a wall-clock ``partition_start`` (TIMESTAMP) and no
    key or end. They are kept, read as UTC: a midnight start as a day, any other as an hour; a
    later result for any partition they overlap replaces them (:func:`record`).
    """
    con.execute("create schema if not exists quality").fetchall()
    con.execute(_DDL).fetchall()
    have = dict(warehouse.columns(con, TABLE))
    if "partition_end" in have:
        return
    start = (
        "coalesce(partition_start, partition_date::timestamp)"
        if "partition_start" in have
        else "partition_date::timestamp"
    )
    daily = f"{start}::time = time '00:00'"
    with warehouse.transaction(con):
        con.execute(
            f"create temp table __strata_old_results as select asset, check_name, "
            f"case when partition_date is null then null when {daily} then strftime({start}, '%Y-%m-%d') "
            f"else strftime({start}, '%Y-%m-%d-%H:%M') end as partition_key, partition_date, "
            f"timezone('UTC', {start}) as partition_start, "
            f"timezone('UTC', {start} + case when {daily} then interval 1 day else interval 1 hour end) "
            "as partition_end, "
            f"passed, severity, blocking, detail, run_id, evaluated_at from {TABLE}"
        ).fetchall()
        con.execute(f"drop table {TABLE}").fetchall()
        con.execute(_DDL).fetchall()
        con.execute(f"insert into {TABLE} by name select * from __strata_old_results").fetchall()
        con.execute("drop table __strata_old_results").fetchall()


def record(con: duckdb.DuckDBPyConnection, asset: str, outcomes: Iterable[CheckOutcome], run_id: str) -> None:
    """Replace the stored results of ``asset``'s checks for the partitions the outcomes cover.

    One transaction, run again if it lost a write conflict on a lake (every step records here).
    """
    now = datetime.now(UTC)
    rows = [
        {
            "asset": asset,
            "check_name": o.name,
            **_partition_columns(p.partition),
            "passed": p.passed,
            "severity": o.severity,
            "blocking": o.blocking,
            "detail": p.detail[:500],
            "run_id": run_id,
            "evaluated_at": now,
        }
        for o in outcomes
        for p in o.partitions
    ]
    if not rows:
        return
    # one Arrow table, not executemany: a 2,406-day run has ~20,000 rows (executemany: ~8 s)
    batch = pa.Table.from_pylist(rows, schema=_SCHEMA)
    con.register("__strata_results", batch)
    try:
        _replace(con)
    finally:
        con.unregister("__strata_results")


def _partition_columns(partition: Partition | None) -> dict:
    if partition is None:
        return {"partition_key": None, "partition_date": None, "partition_start": None, "partition_end": None}
    return {
        "partition_key": partition.key,
        "partition_date": partition.wall_start.date(),
        "partition_start": partition.start,
        "partition_end": partition.end,
    }


@warehouse.retrying_conflicts("recording check results")
def _replace(con: duckdb.DuckDBPyConnection) -> None:
    """Swap the rows of ``__strata_results`` into the results table, in one transaction."""
    ensure_table(con)
    with warehouse.transaction(con):
        # a new result replaces every stored one it overlaps (not only an exact match: a result
        # carried over from an earlier layout has a guessed span)
        con.execute(
            f"delete from {TABLE} t using __strata_results n where t.asset = n.asset "
            "and t.check_name = n.check_name and ((t.partition_start is null and n.partition_start is null) "
            "or (t.partition_start < n.partition_end and t.partition_end > n.partition_start))"
        ).fetchall()
        con.execute(f"insert into {TABLE} by name select * from __strata_results").fetchall()


def blocking_failures(
    con: duckdb.DuckDBPyConnection, assets: Sequence[str], window: PartitionWindow | None = None
) -> list[tuple[str, str, str | None, str]]:
    """``(asset, check, partition key, detail)`` of every failed blocking check on ``assets``.

    With a window, only the partitions that overlap it (and unpartitioned results) count.
    """
    return [(a, c, key, detail) for a, c, key, detail, _s, _e in _failures(con, assets, window)]


def blocked_partitions(
    con: duckdb.DuckDBPyConnection, assets: Sequence[str], window: PartitionWindow
) -> dict[Partition, list[str]]:
    """Each partition of ``window`` that a failed blocking check of ``assets`` overlaps, with the failures.

    A failure reads ``raw/temps quarantine_threshold failed on 2010-03-20-05:00: <detail>``. An
    unpartitioned result blocks every partition.
    """
    blocked: dict[Partition, list[str]] = {}
    for asset, check, key, detail, start, end in _failures(con, assets, window):
        line = f"{asset} {check} failed" + (f" on {key}" if key else "") + f": {detail}"
        for p in window.partitions:
            if start is None or (start < p.end and end > p.start):
                blocked.setdefault(p, []).append(line)
    return blocked


def _failures(con, assets: Sequence[str], window: PartitionWindow | None) -> list[tuple]:
    if not assets or not warehouse.table_exists(con, TABLE):
        return []
    ensure_table(con)
    listing = ", ".join(warehouse.literal(a) for a in assets)
    where = f"asset in ({listing}) and blocking and not passed"
    params: list = []
    if window is not None:
        where += " and (partition_start is null or (partition_start < ? and partition_end > ?))"
        params = [window.end, window.start]
    rows = con.execute(
        f"select asset, check_name, partition_key, detail, partition_start, partition_end from {TABLE} "
        f"where {where} order by asset, check_name, partition_start",
        params,
    ).fetchall()
    return [
        (a, c, k, d, s.astimezone(UTC) if s else None, e.astimezone(UTC) if e else None) for a, c, k, d, s, e in rows
    ]
