"""Dagster partitions definitions built from the registry's partitioning specs (hourly, daily, monthly)."""

from __future__ import annotations

from datetime import timedelta
from functools import cache

import dagster as dg

from strata.partition_window import PartitionWindow
from strata.registry.models import Partitioning


@cache
def partitions_of(spec: Partitioning) -> dg.TimeWindowPartitionsDefinition:
    """The partitions of ``spec``: hours, days or months from ``spec.start`` through ``spec.end``.

    Keys: ``YYYY-MM-DD-HH:MM`` (hourly; the second of a repeated hour adds its UTC offset,
    ``2010-11-07-01:00-0800``), ``YYYY-MM-DD`` (daily; monthly: the month's first day).
    Equal specs give the same object, so assets sharing a partitioning share one definition.
    """
    if spec.type == "hourly":
        end = f"{spec.end + timedelta(days=1)}-00:00" if spec.end else None
        return dg.HourlyPartitionsDefinition(start_date=f"{spec.start}-00:00", end_date=end, timezone=spec.timezone)
    if spec.type == "monthly":
        end = (spec.end.replace(day=28) + timedelta(days=4)).replace(day=1).isoformat() if spec.end else None
        return dg.MonthlyPartitionsDefinition(
            start_date=spec.start.replace(day=1).isoformat(), end_date=end, timezone=spec.timezone
        )
    return daily_partitions(spec)


@cache
def daily_partitions(spec: Partitioning) -> dg.DailyPartitionsDefinition:
    """Daily partitions ``spec.start`` .. ``spec.end`` (inclusive), keys ``YYYY-MM-DD``."""
    end = (spec.end + timedelta(days=1)).isoformat() if spec.end else None
    return dg.DailyPartitionsDefinition(start_date=spec.start.isoformat(), end_date=end, timezone=spec.timezone)


def grain_of(partitions_def: dg.PartitionsDefinition | None) -> str:
    """``hourly``, ``daily`` or ``monthly``: the grain of a time partitions definition."""
    if isinstance(partitions_def, dg.HourlyPartitionsDefinition):
        return "hourly"
    if isinstance(partitions_def, dg.MonthlyPartitionsDefinition):
        return "monthly"
    return "daily"


def window_of_partitions(
    partitions_def: dg.PartitionsDefinition, first_key: str, last_key: str | None = None
) -> PartitionWindow:
    """The window from partition ``first_key`` through ``last_key`` (default: the same) of ``partitions_def``."""
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition), "a time-partitioned asset"
    first = partitions_def.time_window_for_partition_key(first_key)
    last = partitions_def.time_window_for_partition_key(last_key or first_key)
    return PartitionWindow.of(grain_of(partitions_def), partitions_def.timezone, first.start, last.end)


def window_of(context: dg.AssetExecutionContext) -> PartitionWindow:
    """The run's partition window (one key or a range alike), in the partitions' grain and zone.

    Raises:
        dagster.DagsterInvariantViolationError: the window's partitions are not the run's keys
            (Strata's partition arithmetic and Dagster's disagree: a bug, never silently).
    """
    partitions_def = context.assets_def.partitions_def
    assert isinstance(partitions_def, dg.TimeWindowPartitionsDefinition), "a time-partitioned asset"
    tw = context.partition_time_window
    window = PartitionWindow.of(grain_of(partitions_def), partitions_def.timezone, tw.start, tw.end)
    if window.keys() != list(context.partition_keys):
        raise dg.DagsterInvariantViolationError(
            f"partition window {window.describe()} does not list this run's keys "
            f"({context.partition_keys[0]} .. {context.partition_keys[-1]}, {len(context.partition_keys)})"
        )
    return window
