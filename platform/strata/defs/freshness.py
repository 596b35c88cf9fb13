"""Freshness per partition: every partition past its deadline is materialized, and the missing ones are named.

A dataset's ``freshness.cron`` is when new data is due: a partition is due by the first tick of the
cron (in ``freshness.timezone``) at or after its end. Dagster's time-partition freshness checks
judge only the latest partition, so an hour missing in the middle of a day that arrived around it
was never reported. The ``freshness`` check here judges every partition of the dataset that is due:
it fails while any is not materialized (Dagster's instance says which are), names them (the first
20, and how many in all), and passes again once they are loaded.

Each check runs on the dataset's own deadline: one schedule per distinct ``(cron, timezone)``
(``freshness_<hash of both>``, on by default) runs the checks that share it. A materialization of the dataset
runs it too, in the same run.
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import hashlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta

import dagster as dg
from cronsim import CronSim

from strata.defs.registry_assets import dataset_key
from strata.partition_window import PartitionWindow, last_ended, zone
from strata.registry.models import Dataset, Freshness, Partitioning

CHECK_NAME = "freshness"
#: Missing partitions named in a check result (the count is always given).
SHOWN = 20


def due_window(spec: Partitioning, freshness: Freshness, now: datetime) -> PartitionWindow | None:
    """The partitions of ``spec`` that are due at ``now``: those ending by the last deadline tick at or before it.

    None when no partition is due yet.
    """
    tick = next(CronSim(freshness.cron, now.astimezone(zone(freshness.timezone)) + timedelta(seconds=1), reverse=True))
    day = _first_day(spec)
    start = PartitionWindow.from_dates(spec.type, spec.timezone, day, day).start
    end = last_ended(spec.type, spec.timezone, tick).end
    if spec.end is not None:
        end = min(end, PartitionWindow.from_dates(spec.type, spec.timezone, spec.end, spec.end + timedelta(days=1)).end)
    if end <= start:
        return None
    return PartitionWindow.of(spec.type, spec.timezone, start, end)


def _first_day(spec: Partitioning) -> date:
    return spec.start.replace(day=1) if spec.type == "monthly" else spec.start


def missing_partitions(due: PartitionWindow | None, materialized: set[str]) -> list[str]:
    """The keys of the ``due`` partitions that are not ``materialized``, in order."""
    return [] if due is None else [p.key for p in due.partitions if p.key not in materialized]


def build_freshness_check(dataset: Dataset) -> dg.AssetChecksDefinition:
    """The ``freshness`` check of a partitioned ``dataset`` with a ``freshness`` block (see the module docstring)."""
    assert dataset.partitioning is not None and dataset.freshness is not None
    spec, freshness = dataset.partitioning, dataset.freshness
    key = dataset_key(dataset)
    severity = dg.AssetCheckSeverity.ERROR if freshness.severity == "error" else dg.AssetCheckSeverity.WARN

    @dg.asset_check(
        asset=key,
        name=CHECK_NAME,
        blocking=False,
        description=f"Every partition is materialized by its deadline ({freshness.cron}, {freshness.timezone}).",
        metadata={"deadline_cron": freshness.cron, "timezone": freshness.timezone},
    )
    def _freshness(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = datetime.now(UTC)
        due = due_window(spec, freshness, now)
        done = context.instance.get_materialized_partitions(key)
        missing = missing_partitions(due, done)
        shown = ", ".join(missing[:SHOWN]) + (f" and {len(missing) - SHOWN} more" if len(missing) > SHOWN else "")
        return dg.AssetCheckResult(
            passed=not missing,
            severity=severity,
            description=(
                f"{len(missing):,} partition(s) past their deadline are missing: {shown}" if missing else None
            ),
            metadata={
                "partitions_due": len(due) if due is not None else 0,
                "partitions_missing": len(missing),
                "missing": dg.MetadataValue.json(missing[:SHOWN]),
                "evaluated_at": now.isoformat(),
            },
        )

    return _freshness


def build_freshness(
    datasets: Mapping[str, Dataset],
) -> tuple[list[dg.AssetChecksDefinition], list[dg.ScheduleDefinition]]:
    """The ``freshness`` checks of the partitioned datasets that declare freshness, and their schedules."""
    checks: dict[tuple[str, str], list[dg.AssetChecksDefinition]] = {}
    for ds in sorted(datasets.values(), key=lambda d: d.name):
        if ds.freshness is None or ds.partitioning is None:
            continue
        checks.setdefault((ds.freshness.cron, ds.freshness.timezone), []).append(build_freshness_check(ds))
    schedules = [
        dg.ScheduleDefinition(
            name="freshness_" + hashlib.sha256(f"{cron}|{timezone}".encode()).hexdigest()[:8],
            cron_schedule=cron,
            execution_timezone=timezone,
            target=dg.AssetSelection.checks(*group),
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"The freshness checks whose deadline is '{cron}' ({timezone}).",
        )
        for (cron, timezone), group in sorted(checks.items())
    ]
    return [c for group in checks.values() for c in group], schedules
