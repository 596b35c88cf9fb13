"""Daily schedules: each daily group's previous day, after a grace period, with a lookback.

At ``STRATA_DAILY_SCHEDULE_AT`` (UTC, default 02:00) on day T the schedule of ``daily_<group>``
requests day T-1 through the marts. With a lookback of N days (the largest
``partitioning.lookback_days`` of the group's datasets) the same run covers T-1-N .. T-1, as one
range run: late files for those days are picked up, and because every write replaces its
partition window, re-materializing an unchanged day gives the same tables (idempotent).

A tick whose day is outside the group's partitions (the TPC-H demo ends in 1998) is skipped
with the reason.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from strata.defs.jobs import GroupJob

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def build_daily_schedule(group_job: GroupJob, at: str) -> dg.ScheduleDefinition:
    """The schedule of a daily :class:`GroupJob`, firing at ``at`` (``HH:MM``, UTC) every day.

    Run requests: ``run_key`` = the day (one run per day, however often the tick is retried);
    tags ``strata/trigger=schedule`` and, with a lookback, the partition range tags.
    """
    hour, minute = (int(x) for x in at.split(":"))
    partitions_def = group_job.partitions_def
    assert partitions_def is not None, "a daily schedule needs a partitioned job"
    lookback = group_job.lookback_days

    @dg.schedule(
        name=f"{group_job.job.name}_schedule",
        cron_schedule=f"{minute} {hour} * * *",
        execution_timezone="UTC",
        job=group_job.job,
        description=(
            f"Every day at {at} UTC: the previous day"
            + (f" and the {lookback} days before it (late data)" if lookback else "")
            + " through the marts."
        ),
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        day = (context.scheduled_execution_time - timedelta(days=1)).date()
        keys = partitions_def.get_partition_keys()
        if day.isoformat() not in keys:
            return dg.SkipReason(f"{day} is not a partition of {group_job.job.name} ({keys[0]} .. {keys[-1]})")
        first = max((day - timedelta(days=lookback)).isoformat(), keys[0])
        tags = {"strata/trigger": "schedule"}
        if first == day.isoformat():
            return dg.RunRequest(run_key=day.isoformat(), partition_key=day.isoformat(), tags=tags)
        return dg.RunRequest(run_key=day.isoformat(), tags={**tags, RANGE_START: first, RANGE_END: day.isoformat()})

    return _schedule
