"""Warehouse maintenance: a daily job that compacts files and expires old snapshots.

Daily partitions leave a lake with many small Parquet files and a snapshot per commit; the job
``warehouse_maintenance`` runs :func:`strata.warehouse.maintain` (on a DuckDB file, a checkpoint),
keeping the snapshots of ``STRATA_LAKE_SNAPSHOT_RETENTION`` and the one the published layer shows.
Its schedule runs at 04:00 UTC, after the daily schedules (``STRATA_DAILY_SCHEDULE_AT``).
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from strata.defs.publish import PUBLISHED_SCHEMA
from strata.defs.resources import Warehouse

MAINTENANCE_CRON = "0 4 * * *"


def build_maintenance(retention: str, pool: str) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    """The maintenance job (its step in ``pool``) and its daily schedule."""

    @dg.op(pool=pool, description="Merge small files, expire old snapshots, delete unused files.")
    def maintain_warehouse(context: dg.OpExecutionContext, warehouse: Warehouse) -> None:
        from strata import warehouse as wh

        with warehouse.connect() as con:
            done = wh.retrying_conflicts("maintenance")(wh.maintain)(con, retention, PUBLISHED_SCHEMA)
        context.log.info(f"warehouse maintenance: {done or 'checkpoint'} (retention {retention})")
        context.add_output_metadata(dict(done) or {"checkpoint": True})

    @dg.job(name="warehouse_maintenance", description="Compact the warehouse and expire old snapshots.")
    def maintenance_job():
        maintain_warehouse()

    schedule = dg.ScheduleDefinition(
        name="warehouse_maintenance_schedule",
        job=maintenance_job,
        cron_schedule=MAINTENANCE_CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    return maintenance_job, schedule
