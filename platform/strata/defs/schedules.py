"""Partition schedules: each partitioned group's last complete partition, after a grace period, with a lookback.

The schedule follows the group's grain:

* **daily**: at ``STRATA_DAILY_SCHEDULE_AT`` (UTC, default 02:00), the last day that ended (day
  T-1 in UTC; in a zone west of UTC, the day before it);
* **hourly**: every hour at ``partitioning.grace`` past the hour (default 15 min: 10:15 runs
  09:00-10:00);
* **monthly**: on the 1st of the month, ``grace`` after midnight (default 00:15), the month before.

Hourly and monthly schedules tick in the partitioning's timezone (its 1st, its hours).

With a lookback of N partitions (the largest ``partitioning.lookback`` of the group's datasets;
``lookback_days`` for daily ones) the same run also covers the N partitions before it, as one
range run: late files are picked up, and because every write replaces its partition window,
re-materializing an unchanged partition gives the same tables (idempotent).

A tick whose partition is outside the group's partitions (the TPC-H demo ends in 1998) is
skipped with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg

from strata.defs.jobs import GroupJob
from strata.partition_window import Partition, last_ended
from strata.registry.models import duration_seconds

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def _cron(grain: str, at: str, grace_s: int) -> tuple[str, str]:
    """The cron and a description of when a ``grain`` schedule fires."""
    if grain == "hourly":
        minute = (grace_s // 60) % 60
        return f"{minute} * * * *", f"Every hour at :{minute:02d}: the previous hour"
    if grain == "monthly":
        hour, minute = divmod((grace_s // 60) % (24 * 60), 60)
        return f"{minute} {hour} 1 * *", f"On the 1st at {hour:02d}:{minute:02d}: the previous month"
    hour, minute = (int(x) for x in at.split(":"))
    return f"{minute} {hour} * * *", f"Every day at {at} UTC: the previous day"


def build_partition_schedule(group_job: GroupJob, at: str) -> dg.ScheduleDefinition:
    """The schedule of a partitioned :class:`GroupJob`, at its grain (``at``: the daily time, ``HH:MM`` UTC).

    Run requests: ``run_key`` = the partition key (one run per partition, however often the
    tick is retried); tags ``strata/trigger=schedule`` and, with a lookback, the partition
    range tags.
    """
    partitions_def = group_job.partitions_def
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition), "a schedule needs a time-partitioned job"
    spec = group_job.partitioning
    assert spec is not None, "a partitioned job has its roots' partitioning"
    grain, grace_s = spec.type, duration_seconds(spec.grace)
    cron, when = _cron(grain, at, grace_s)
    lookback = group_job.lookback
    unit = {"hourly": "hours", "daily": "days", "monthly": "months"}[grain]

    @dg.schedule(
        name=f"{group_job.job.name}_schedule",
        cron_schedule=cron,
        # hourly and monthly ticks in the partitions' timezone, so that "the 1st" is theirs
        execution_timezone="UTC" if grain == "daily" else partitions_def.timezone,
        job=group_job.job,
        description=when
        + (f" and the {lookback} {unit} before it (late data)" if lookback else "")
        + " through the marts.",
        default_status=dg.DefaultScheduleStatus.RUNNING,
    )
    def _schedule(context: dg.ScheduleEvaluationContext):
        tick = context.scheduled_execution_time
        partition = ended_partition(grain, tick, 0 if grain == "daily" else grace_s, partitions_def.timezone)
        key = partition.key
        keys = partitions_def.get_partition_keys()
        if key not in keys:
            span = f"{keys[0]} .. {keys[-1]}" if keys else "none yet"
            return dg.SkipReason(f"{key} is not a partition of {group_job.job.name} ({span})")
        first = keys[max(keys.index(key) - lookback, 0)]
        tags = {"strata/trigger": "schedule"}
        if first == key:
            return dg.RunRequest(run_key=key, partition_key=key, tags=tags)
        return dg.RunRequest(run_key=key, tags={**tags, RANGE_START: first, RANGE_END: key})

    return _schedule


def ended_partition(grain: str, tick: datetime, grace_s: int, timezone: str) -> Partition:
    """The partition a tick at ``tick`` runs: the last one that ended ``grace_s`` before it.

    In the partitioning's ``timezone`` (:func:`strata.partition_window.last_ended`): an hourly tick
    at 10:15 with 15 min grace gives 09:00; a monthly one on 1 June at 00:15 gives May; a daily tick
    (no grace) gives the last whole day. Across a fall clock change, the repeated hour runs twice,
    once per hour (``01:00`` and ``01:00-0800``); across a spring one, the hour that does not exist
    is never asked for.
    """
    return last_ended(grain, timezone, tick - timedelta(seconds=grace_s))
