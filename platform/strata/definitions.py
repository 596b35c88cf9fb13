"""The one place that assembles Strata's Dagster definitions.

registry specs -> raw assets; dbt project -> dbt assets; settings -> resources. Cross-cutting
policy (executor, pools) is applied here.
"""

from __future__ import annotations

import dagster as dg

from strata.defs.dbt_assets import build_dbt_assets
from strata.defs.partitions import daily_partitions
from strata.defs.raw_assets import build_raw_asset
from strata.defs.resources import build_resources
from strata.registry.tpch import TPCH_DATASETS
from strata.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Build the code location's definitions for ``settings`` (default: from the environment).

    Runs execute in process: every step shares the single-writer warehouse pool, so steps run
    one at a time anyway, and one process saves the ~5 s start-up per step of the multiprocess
    executor (docs/benchmarks.md).
    """
    settings = settings or Settings.from_env()
    settings.ensure_directories()
    settings.export()
    datasets = TPCH_DATASETS
    daily = daily_partitions(next(d.partitioning for d in datasets if d.partitioning))
    return dg.Definitions(
        assets=[build_raw_asset(d) for d in datasets] + build_dbt_assets(daily),
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
