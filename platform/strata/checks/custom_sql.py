"""Custom SQL: a query returning failing rows; zero rows passes.

``{table}`` stands for the dataset's table and ``{window}`` for the predicate selecting the run's
partitions. When the query returns the partition column, failures are placed on their
partitions; otherwise any failing row fails every partition of the window.
"""

from __future__ import annotations

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import CustomSqlCheck
from strata.registry.sql import CHECK_PLACEHOLDERS, sandboxed, with_placeholders


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, check: CustomSqlCheck) -> CheckOutcome:
    """Run the query over the window and judge each partition.

    The query runs as sqlglot parsed it, ``{table}`` and ``{window}`` filled in on the tree
    (:func:`strata.registry.sql.sandboxed`).

    Raises:
        UnsafeSqlError: the policy refuses the query (nothing ran).
    """
    sql = sandboxed(
        with_placeholders(check.sql),
        tables={CHECK_PLACEHOLDERS["{table}"]: scope.sql_table},
        predicates={CHECK_PLACEHOLDERS["{window}"]: scope.where()},
    )
    names = [d[0] for d in con.execute(f"describe select * from ({sql})").fetchall()]
    sample = con.execute(f"select * from ({sql}) limit 5").fetchall()
    if scope.partitioned and scope.partition_column in names:
        per = scope.by_partition(
            con.execute(
                f"select {scope.partition_sql('failing.')}, count(*) from ({sql}) as failing group by 1"
            ).fetchall()
        )
        results = [
            PartitionResult(d, d not in per, f"{per[d]} failing row(s)" if d in per else "no failing rows")
            for d in scope.days()
        ]
    else:
        total = con.execute(f"select count(*) from ({sql})").fetchall()[0][0]
        results = [
            PartitionResult(d, total == 0, f"{total} failing row(s)" if total else "no failing rows")
            for d in scope.days()
        ]
    rows = [dict(zip(names, (str(v) for v in row), strict=True)) for row in sample]
    return CheckOutcome(check.name, check.severity, results, metadata={"sample_failing_rows": rows})
