"""Checks on dbt marts that dbt tests cannot express simply: the revenue mart against raw.

``revenue_reconciliation`` recomputes revenue, orders, customers, line items and average order
value per day from the raw tables, with the same query ``strata verify`` runs over the landing
files (:data:`strata.reconcile.tpch.REVENUE_SOURCE`), and compares them with
``marts.mart_revenue_daily`` to the cent.
"""

from __future__ import annotations

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.reconcile.compare import compare_keyed
from strata.reconcile.tpch import REVENUE_SOURCE, REVENUE_WAREHOUSE
from strata.sources import DateWindow


def revenue_reconciliation(con: duckdb.DuckDBPyConnection, window: DateWindow | None) -> CheckOutcome:
    """Per day of ``window`` (or every day): mart_revenue_daily equals its recomputation from raw."""
    where = (
        "true"
        if window is None
        else f"_partition_date >= date '{window.start}' and _partition_date < date '{window.end}'"
    )
    mart_where = (
        "true" if window is None else f"order_date >= date '{window.start}' and order_date < date '{window.end}'"
    )
    views = {
        "orders": f"select * from raw.tpch_orders where {where}",
        "lineitem": f"select * from raw.tpch_lineitem where {where}",
        "mart_revenue_daily": f"select * from marts.mart_revenue_daily where {mart_where}",
    }
    for name, sql in views.items():
        con.execute(f"create or replace temp view {name} as {sql}").fetchall()
    try:
        expected = {r[0]: r[1:] for r in con.execute(REVENUE_SOURCE).fetchall()}
        actual = {r[0]: r[1:] for r in con.execute(REVENUE_WAREHOUSE).fetchall()}
    finally:
        for name in views:
            con.execute(f"drop view if exists {name}").fetchall()
    mismatches = {m.row: str(m) for m in compare_keyed("revenue_per_day", expected, actual)}
    days = window.days() if window is not None else sorted(set(expected) | set(actual))
    results = [PartitionResult(d, str(d) not in mismatches, mismatches.get(str(d), "equal to raw")) for d in days]
    return CheckOutcome(
        "revenue_reconciliation",
        "error",
        results,
        metadata={"days_compared": len(expected), "mismatches": len(mismatches)},
    )
