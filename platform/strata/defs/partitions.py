"""Dagster partitions definitions built from the registry's partitioning specs (hourly, daily, monthly)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache

import dagster as dg

from strata.registry.models import Partitioning
from strata.sources import DateWindow, next_month


@cache
def partitions_of(spec: Partitioning) -> dg.TimeWindowPartitionsDefinition:
    """The partitions of ``spec``: hours, days or months from ``spec.start`` through ``spec.end``.

    Keys: ``YYYY-MM-DD-HH:MM`` (hourly), ``YYYY-MM-DD`` (daily; monthly: the month's first day).
    Equal specs give the same object, so assets sharing a partitioning share one definition.
    """
    if spec.type == "hourly":
        end = f"{spec.end + timedelta(days=1)}-00:00" if spec.end else None
        return dg.HourlyPartitionsDefinition(start_date=f"{spec.start}-00:00", end_date=end, timezone=spec.timezone)
    if spec.type == "monthly":
        end = next_month(spec.end).isoformat() if spec.end else None
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


def window_of(context: dg.AssetExecutionContext) -> DateWindow:
    """The run's partition window ``[start, end)`` at its grain; one key or a range alike."""
    tw = context.partition_time_window
    grain = grain_of(context.assets_def.partitions_def)
    return DateWindow(_as_moment(tw.start, grain), _as_moment(tw.end, grain), grain)


def _as_moment(moment: datetime, grain: str) -> date:
    return moment.replace(tzinfo=None) if grain == "hourly" else moment.date()
