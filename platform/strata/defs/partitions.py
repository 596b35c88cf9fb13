"""Dagster partitions definitions built from the registry's partitioning specs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import cache

import dagster as dg

from strata.registry.models import DailyPartitioning
from strata.sources import DateWindow


@cache
def daily_partitions(spec: DailyPartitioning) -> dg.DailyPartitionsDefinition:
    """Daily partitions ``spec.start`` .. ``spec.end`` (inclusive), keys ``YYYY-MM-DD``.

    Equal specs give the same object, so assets sharing a partitioning share one definition.
    """
    end = (spec.end + timedelta(days=1)).isoformat() if spec.end else None
    return dg.DailyPartitionsDefinition(start_date=spec.start.isoformat(), end_date=end, timezone=spec.timezone)


def window_of(context: dg.AssetExecutionContext) -> DateWindow:
    """The run's partition window as dates ``[start, end)``; one key or a range alike."""
    tw = context.partition_time_window
    return DateWindow(_as_date(tw.start), _as_date(tw.end))


def _as_date(moment: datetime) -> date:
    return moment.date()
