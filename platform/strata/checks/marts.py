"""Checks on dbt marts that dbt tests cannot express simply: the revenue mart against raw.

``revenue_reconciliation`` recomputes revenue, orders, customers, line items and average order
value per day from the raw tables, with the same query ``strata verify`` runs over the landing
files (:data:`strata.reconcile.tpch.REVENUE_SOURCE`), and compares them with
``marts.mart_revenue_daily`` to the cent.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.partition_window import PartitionWindow
from strata.reconcile.compare import compare_keyed
from strata.reconcile.tpch import REVENUE_SOURCE, REVENUE_WAREHOUSE


def revenue_reconciliation(con: duckdb.DuckDBPyConnection, window: PartitionWindow | None) -> CheckOutcome:
    """Per day of ``window`` (or every day): mart_revenue_daily equals its recomputation from raw."""
    where = "true" if window is None else window.predicate("_partition_date", "date")
    mart_where = "true" if window is None else window.predicate("order_date", "date")
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
    if window is not None:
        days = list(window.partitions)
    else:
        every = sorted(set(expected) | set(actual))
        days = (
            list(PartitionWindow.from_dates("daily", "UTC", every[0], every[-1] + timedelta(days=1))) if every else []
        )
    results = [PartitionResult(d, d.key not in mismatches, mismatches.get(d.key, "equal to raw")) for d in days]
    return CheckOutcome(
        "revenue_reconciliation",
        "error",
        results,
        metadata={"days_compared": len(expected), "mismatches": len(mismatches)},
    )
