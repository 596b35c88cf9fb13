"""Volume: rows per partition within bounds, and within a percentage of the trailing median.

A partition with 0 rows fails when the trailing median is above 0 ("it suddenly has no rows"),
whatever the bounds. The trailing median uses the ``trailing_partitions`` partitions before
each one (partitions without rows count as 0).
"""

from __future__ import annotations

import statistics

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import VolumeCheck


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, check: VolumeCheck) -> CheckOutcome:
    """Judge each partition's row count (or the table's, unpartitioned)."""
    lookback = check.trailing_partitions
    if not scope.partitioned:
        n = con.execute(f"select count(*) from {scope.sql_table}").fetchall()[0][0]
        return CheckOutcome("volume", check.severity, [_judge(None, n, [], check)], metadata={"rows": n})
    counts = scope.by_partition(
        con.execute(
            f"select {scope.partition_sql()}, count(*) from {scope.sql_table} where {scope.where(lookback)} group by 1"
        ).fetchall(),
        lookback,
    )
    results = []
    for partition in scope.days():
        trailing = [counts.get(p, 0) for p in scope.trailing(partition, lookback)]  # type: ignore[arg-type]
        results.append(_judge(partition, counts.get(partition, 0), trailing, check))
    rows = [{"partition": str(p), "rows": counts.get(p, 0)} for p in scope.days()][:31]
    return CheckOutcome("volume", check.severity, results, metadata={"rows_per_partition": rows})


def _judge(day, n: int, trailing: list[int], check: VolumeCheck) -> PartitionResult:
    problems = []
    if check.min_rows is not None and n < check.min_rows:
        problems.append(f"{n} rows < min_rows {check.min_rows}")
    if check.max_rows is not None and n > check.max_rows:
        problems.append(f"{n} rows > max_rows {check.max_rows}")
    median = statistics.median(trailing) if trailing else 0
    if n == 0 and median > 0:
        problems.append(f"0 rows, where the trailing median is {median:g}")
    elif check.max_change_pct is not None and median > 0:
        change = abs(n - median) / median * 100
        if change > check.max_change_pct:
            problems.append(
                f"{n} rows is {change:.0f}% from the trailing median {median:g} (max {check.max_change_pct:g}%)"
            )
    return PartitionResult(day, not problems, "; ".join(problems) or f"{n} rows")
