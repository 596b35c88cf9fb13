"""Clocks of IANA time zones: what instants a wall-clock time denotes, and changes partitions cannot follow.

Pure ``zoneinfo`` arithmetic, in UTC instants, for :mod:`strata.partition_window`. A wall-clock time
occurs once, twice (a fall clock change repeats an hour) or never (a spring one skips it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``UTC``, ``America/Los_Angeles``).

    Raises:
        zoneinfo.ZoneInfoNotFoundError: no such zone.
    """
    return ZoneInfo(name)


def instants(wall: datetime, timezone: str) -> list[datetime]:
    """The instants (UTC) at which the clocks of ``timezone`` read ``wall``: none, one or two, in order."""
    z = zone(timezone)
    found: list[datetime] = []
    for fold in (0, 1):
        moment = wall.replace(tzinfo=z, fold=fold).astimezone(UTC)
        if moment.astimezone(z).replace(tzinfo=None) == wall and moment not in found:
            found.append(moment)
    return sorted(found)


def earliest(wall: datetime, timezone: str) -> datetime:
    """``wall`` as an instant: the earlier of two, or in a spring gap the instant the clock jumped from."""
    found = instants(wall, timezone)
    return found[0] if found else wall.replace(tzinfo=zone(timezone), fold=0).astimezone(UTC)


def wall_clock(moment: datetime, timezone: str) -> datetime:
    """The wall-clock time (naive) that ``timezone``'s clocks show at instant ``moment``."""
    return moment.astimezone(zone(timezone)).replace(tzinfo=None)


def irregular_clock_change(timezone: str, first: date, last: date, grain: str = "hourly") -> str | None:
    """The first clock change of ``timezone`` in ``first`` .. ``last`` that ``grain`` partitions cannot follow.

    Described in words, or None if there is none. Hours need every change to be whole hours at a
    whole hour: across Australia/Lord_Howe's 30-minute changes Dagster's hours leave gaps and keys
    that name other hours (dagster 1.13, ``_utils/schedules.py``, which assumes it). Days and months
    need no change of a day or more: across Pacific/Apia's skipped 2011-12-30 Dagster's days overlap.
    """
    found = _irregular(timezone, first, last)
    for when, shift, text in found:
        if abs(shift) >= timedelta(days=1) or (grain == "hourly" and (shift % timedelta(hours=1) or when)):
            return text
    return None


@cache
def _irregular(timezone: str, first: date, last: date) -> tuple[tuple[bool, timedelta, str], ...]:
    """Each clock change in ``first`` .. ``last``: (not at a whole hour, the shift, a description)."""
    z = zone(timezone)
    moment = datetime.combine(first, time(), tzinfo=UTC) - timedelta(days=1)
    stop = datetime.combine(last, time(), tzinfo=UTC) + timedelta(days=2)
    step = timedelta(hours=6)
    offset = moment.astimezone(z).utcoffset()
    found = []
    while moment < stop:
        following = moment + step
        new = following.astimezone(z).utcoffset()
        if new != offset:
            lo, hi = moment, following  # the change is in (lo, hi]: narrow it to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(z).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            shift = new - offset  # type: ignore[operator]
            before = hi.astimezone(z).replace(tzinfo=None) - shift  # the wall clock just before the change
            minutes = shift.total_seconds() / 60
            amount = f"{abs(minutes) / 1440:g} day(s)" if abs(minutes) >= 1440 else f"{abs(minutes):g} minutes"
            text = (
                f"on {before:%Y-%m-%d} at {before:%H:%M:%S} the clocks of {timezone} "
                f"{'go forward' if minutes > 0 else 'go back'} {amount}"
            )
            found.append((bool(before.minute or before.second), shift, text))
            offset = new
        moment = following
    return tuple(found)
