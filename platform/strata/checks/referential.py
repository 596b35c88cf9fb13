"""Referential integrity: every non-null foreign key of a partition exists in the referenced table.

When the referenced dataset has the same partitioning (line items and their orders), only the
same window of it is read; otherwise the referenced table's keys (a dimension) are read whole.
"""

from __future__ import annotations

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import ReferentialCheck
from strata.warehouse import quote, table_exists


def evaluate(
    con: duckdb.DuckDBPyConnection, scope: Scope, check: ReferentialCheck, target: Scope, target_column: str
) -> CheckOutcome:
    """Orphans per partition: rows whose ``check.column`` is not a ``target_column`` value of ``target``.

    A referenced table that is not built yet fails every partition, saying so (its keys cannot be
    checked), rather than failing the step with DuckDB's catalog error.
    """
    name = f"referential_{check.column}"
    if not table_exists(con, target.table):
        detail = f"{check.references} cannot be checked: {target.table} is not built yet (materialize it first)"
        return CheckOutcome(name, check.severity, [PartitionResult(d, False, detail) for d in scope.days()])
    col, ref = quote(check.column), quote(target_column)
    orphans = con.execute(
        f"select {scope.partition_sql('t.')}, count(*), min(t.{col})::varchar from {scope.sql_table} t "
        f"anti join (select {ref} as __ref from {target.sql_table} where {target.where()}) r on t.{col} = r.__ref "
        f"where {scope.where(alias='t.')} and t.{col} is not null group by 1"
    ).fetchall()
    found = scope.by_partition(orphans)
    results = [
        PartitionResult(
            d,
            d not in found,
            f"{found[d][0]} row(s) with {check.column} not in {check.references} (e.g. {found[d][1]})"
            if d in found
            else "all keys found",
        )
        for d in scope.days()
    ]
    return CheckOutcome(
        name,
        check.severity,
        results,
        metadata={"references": check.references, "orphans": sum(n for n, _ in found.values())},
    )
