"""The Dagster pools Strata's steps use, created in the instance before any run needs them.

A pool's row in the instance is created the first time a step asks for a slot. When several
runs start together (the chunks of a backfill) and ask for a new pool at once, two of them
insert it: dagster-postgres raised ``UniqueViolation`` on ``concurrency_limits`` and the losing run
failed (seen in a chunked Materialize all on the lake, where every table has its own pool;
SQLite showed the same race under the one-writer pool). ``strata prepare`` creates them all first.
"""

from __future__ import annotations

import dagster as dg


def pools_of(defs: dg.Definitions) -> set[str]:
    """Every pool named by an op of ``defs``'s jobs (asset jobs included)."""
    return {
        op.pool
        for job in defs.resolve_all_job_defs()
        for op in job.graph.iterate_op_defs()
        if getattr(op, "pool", None)
    }


def initialize_pools(instance: dg.DagsterInstance, pools: set[str]) -> None:
    """Create each pool's row with the instance's default limit (idempotent)."""
    for pool in sorted(pools):
        instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
