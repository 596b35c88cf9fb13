"""``quality.check_results``: the latest outcome of every check on every partition, and the gate.

Asset checks are Dagster events, but a range run records one evaluation for many partitions.
This table keeps one row per (asset, check, partition), replaced at each evaluation, so that a
later run can ask exactly which partitions of its upstream failed a blocking check. The gate
(:func:`blocking_failures`) is what keeps a dbt build or a SQL dataset from running on top of a
partition whose upstream check failed, whichever run (schedule, sensor, backfill, a person)
launches it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time

import duckdb
import pyarrow as pa

from strata import warehouse
from strata.checks import CheckOutcome

TABLE = "quality.check_results"
_DDL = f"""create table if not exists {TABLE} (
    asset varchar, check_name varchar, partition_date date, passed boolean, severity varchar,
    blocking boolean, detail varchar, run_id varchar, evaluated_at timestamptz, partition_start timestamp)"""


_SCHEMA = pa.schema(
    [
        ("asset", pa.string()),
        ("check_name", pa.string()),
        ("partition_date", pa.date32()),
        ("passed", pa.bool_()),
        ("severity", pa.string()),
        ("blocking", pa.bool_()),
        ("detail", pa.string()),
        ("run_id", pa.string()),
        ("evaluated_at", pa.timestamp("us", tz="UTC")),
        ("partition_start", pa.timestamp("us")),
    ]
)


def ensure_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create the schema and table if missing."""
    con.execute("create schema if not exists quality").fetchall()
    con.execute(_DDL).fetchall()
    if "partition_start" not in {c for c, _ in warehouse.columns(con, TABLE)}:
        # a table made before hourly partitions: results keyed by day only
        con.execute(f"alter table {TABLE} add column partition_start timestamp").fetchall()


def record(con: duckdb.DuckDBPyConnection, asset: str, outcomes: Iterable[CheckOutcome], run_id: str) -> None:
    """Replace the stored results of ``asset``'s checks for the partitions the outcomes cover.

    One transaction, run again if it lost a write conflict on a lake (every step records here).
    """
    now = datetime.now(UTC)
    rows = [
        {
            "asset": asset,
            "check_name": o.name,
            "partition_date": p.partition.date() if isinstance(p.partition, datetime) else p.partition,
            # the partition's start: an hour of an hourly partitioning, else the day's (or month's) midnight
            "partition_start": p.partition
            if isinstance(p.partition, datetime) or p.partition is None
            else datetime.combine(p.partition, time()),
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


@warehouse.retrying_conflicts("recording check results")
def _replace(con: duckdb.DuckDBPyConnection) -> None:
    """Swap the rows of ``__strata_results`` into the results table, in one transaction."""
    ensure_table(con)
    with warehouse.transaction(con):
        con.execute(
            f"delete from {TABLE} t using __strata_results n where t.asset = n.asset "
            "and t.check_name = n.check_name and t.partition_date is not distinct from n.partition_date "
            "and (t.partition_start is null or t.partition_start is not distinct from n.partition_start)"
        ).fetchall()
        con.execute(f"insert into {TABLE} by name select * from __strata_results").fetchall()


def blocking_failures(
    con: duckdb.DuckDBPyConnection, assets: Sequence[str], start: date | None = None, end: date | None = None
) -> list[tuple[str, str, date | None, str]]:
    """``(asset, check, partition, detail)`` of every failed blocking check on ``assets``.

    With a window ``[start, end)``, only those partitions (and unpartitioned results) count.
    """
    if not assets or not warehouse.table_exists(con, TABLE):
        return []
    listing = ", ".join(warehouse.literal(a) for a in assets)
    where = f"asset in ({listing}) and blocking and not passed"
    params: list = []
    if start is not None and end is not None:
        moment = "coalesce(partition_start, partition_date::timestamp)"
        where += f" and (partition_date is null or ({moment} >= ?::timestamp and {moment} < ?::timestamp))"
        params = [start, end]
    rows = con.execute(
        f"select asset, check_name, partition_date, partition_start, detail from {TABLE} where {where} "
        "order by asset, check_name, partition_date, partition_start",
        params,
    ).fetchall()
    # an hour is named by its start; a day or month by its date
    return [
        (asset, check, hour if hour is not None and hour.time() != time() else day, detail)
        for asset, check, day, hour, detail in rows
    ]
