"""The limits of the warehouse's writer pools in a Dagster instance.

Dagster's instance config has one ``concurrency.pools.default_limit`` (1 in Strata's, the DuckDB
file's one writer); a pool with another limit is set in the instance's storage
(``dagster instance concurrency set``). ``strata prepare`` calls :func:`set_writer_pool_limits`
before Dagster starts, so the limit is in place before the first run asks for a slot.
"""

from __future__ import annotations

import dagster as dg

from strata.settings import Settings
from strata.warehouse import writer_pools


def writer_limit(instance: dg.DagsterInstance, settings: Settings) -> int:
    """How many steps may load into the warehouse at once.

    1 for a DuckDB file; for a lake, ``STRATA_LAKE_WRITERS`` or else the instance's
    ``max_concurrent_runs`` (every run may write).
    """
    if settings.lake is None:
        return 1
    if settings.lake_writers:
        return settings.lake_writers
    queue = instance.get_concurrency_config().run_queue_config
    return max(1, queue.max_concurrent_runs) if queue and queue.max_concurrent_runs > 0 else 1


def set_writer_pool_limits(instance: dg.DagsterInstance, settings: Settings) -> dict[str, int]:
    """Set the load pool's limit (:func:`writer_limit`) in ``instance``; return ``{pool: limit}``.

    The transform pool (dbt, publish) keeps the default limit of 1 (:func:`strata.warehouse.writer_pools`).
    """
    load_pool, _ = writer_pools(settings.warehouse)
    limit = writer_limit(instance, settings)
    instance.event_log_storage.set_concurrency_slots(load_pool, limit)
    return {load_pool: limit}
