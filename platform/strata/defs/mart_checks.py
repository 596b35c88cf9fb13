"""Python checks on dbt marts, run after the dbt step in the same run (and on their own).

``revenue_reconciliation`` (blocking) compares ``marts.mart_revenue_daily`` with raw, to the cent,
over the run's partition window. Nothing dbt builds depends on the revenue mart, so a check after
the dbt step stops everything downstream of it (registry datasets over it, by the quality gate).
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.dataset_metadata import check_metadata
from strata.defs.quality_gate import run_window
from strata.defs.resources import Warehouse

REVENUE_MART = dg.AssetKey(["marts", "mart_revenue_daily"])


def build_mart_checks(daily: dg.PartitionsDefinition, pool: str = WAREHOUSE_POOL) -> list[dg.AssetChecksDefinition]:
    """The Python checks on dbt marts, their steps in ``pool``."""

    @dg.asset_check(
        asset=REVENUE_MART,
        name="revenue_reconciliation",
        blocking=True,
        pool=pool,
        additional_deps=[dg.AssetKey(["raw", "tpch_orders"]), dg.AssetKey(["raw", "tpch_lineitem"])],
        description="Revenue, orders, customers, line items and AOV per day equal their recomputation from raw.",
    )
    def revenue_reconciliation(context: dg.AssetCheckExecutionContext, warehouse: Warehouse) -> dg.AssetCheckResult:
        from strata.checks import marts, results

        window = run_window(context.run.tags, daily)
        with warehouse.connect() as con:
            outcome = marts.revenue_reconciliation(con, window)
            results.record(con, REVENUE_MART.to_user_string(), [outcome], context.run.run_id)
        return dg.AssetCheckResult(
            passed=outcome.passed,
            metadata=check_metadata(outcome.summary()),
            description="; ".join(p.detail for p in outcome.failed_partitions[:3]) or None,
        )

    return [revenue_reconciliation]
