"""Distribution: a column's mean, standard deviation or quantile per partition.

It must lie within fixed bounds, or within ``max_sigma`` standard deviations of the same
statistic over the trailing partitions.
"""

from __future__ import annotations

import statistics

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import DistributionCheck
from strata.warehouse import quote


def statistic_sql(check: DistributionCheck) -> str:
    """The SQL aggregate of the check's statistic."""
    col = f"{quote(check.column)}::double"
    if check.statistic == "mean":
        return f"avg({col})"
    if check.statistic == "stddev":
        return f"stddev_samp({col})"
    return f"quantile_cont({col}, {check.quantile})"


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, check: DistributionCheck) -> CheckOutcome:
    """Judge the statistic of each partition (or of the table, unpartitioned)."""
    name = f"distribution_{check.column}_{check.statistic}"
    lookback = check.trailing_partitions if check.max_sigma is not None else 0
    values = scope.by_partition(
        con.execute(
            f"select {scope.partition_sql()}, {statistic_sql(check)} from {scope.sql_table} "
            f"where {scope.where(lookback)} group by 1"
        ).fetchall(),
        lookback,
    )
    results = []
    for partition in scope.days():
        value = values.get(partition)
        earlier = scope.trailing(partition, lookback) if partition is not None else []
        trailing = [v for p in earlier if (v := values.get(p)) is not None]
        results.append(_judge(partition, value, trailing, check))
    return CheckOutcome(
        name,
        check.severity,
        results,
        metadata={"statistic": check.statistic, "values": {str(d): values.get(d) for d in scope.days()[:31]}},
    )


def _judge(day, value, trailing: list[float], check: DistributionCheck) -> PartitionResult:
    if value is None:
        return PartitionResult(day, True, "no values")
    problems = []
    if check.min is not None and value < check.min:
        problems.append(f"{check.statistic} {value:.4g} < min {check.min:g}")
    if check.max is not None and value > check.max:
        problems.append(f"{check.statistic} {value:.4g} > max {check.max:g}")
    if check.max_sigma is not None and len(trailing) >= 2:
        mean, sd = statistics.mean(trailing), statistics.stdev(trailing)
        if sd > 0 and abs(value - mean) > check.max_sigma * sd:
            problems.append(
                f"{check.statistic} {value:.4g} is {abs(value - mean) / sd:.1f} sigma from the trailing "
                f"{mean:.4g} (max {check.max_sigma:g})"
            )
    return PartitionResult(day, not problems, "; ".join(problems) or f"{check.statistic} {value:.4g}")
