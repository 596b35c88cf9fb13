"""Partition windows: half-open intervals of instants ``[start, end)`` at a grain, in a time zone.

The one place where partition time is computed. Every layer imports it (the registry, the
sources, the warehouse, the checks and the Dagster edge), and it imports nothing of Strata. It
knows three grains, the partitions of Dagster's ``Hourly``, ``Daily`` and
``MonthlyPartitionsDefinition`` (``platform_tests/test_partition_window.py`` compares them):

* an **hour** starts at each local ``HH:00`` that exists in the zone. A spring clock change skips
  an hour (America/Los_Angeles on 2010-03-14 has no 02:00, and its 01:00 hour ends at 03:00
  PDT); a fall one repeats an hour, and the second one's key carries its UTC offset, as Dagster's
  does (``2010-11-07-01:00`` then ``2010-11-07-01:00-0800``). A local day has 23, 24 or 25 hours.
* a **day** starts at local midnight (where midnight does not exist, at the clock change);
* a **month** starts at local midnight on its 1st; its key is that day (``2024-05-01``).

A :class:`Partition` is one such interval. Instants are ``datetime`` objects in UTC: Python
compares two local times of one zone by their wall clocks, so the two 01:00 hours of a fall day
would compare equal. What a row's ``_partition_date`` holds is :attr:`Partition.value`: the local
date for days and months (``DATE``), the start instant for hours (``TIMESTAMPTZ``).

In SQL a column is one of three kinds (:func:`column_kind`): ``date``, ``timestamp`` (wall-clock
time in the window's zone, no offset) and ``timestamptz`` (an instant). Where SQL must read a
wall-clock time as an instant (an hour of a ``timestamp`` column), it does as DuckDB's
``timezone()`` and PostgreSQL do: a time that occurs twice is the later instant (standard time),
and one in a spring gap is read with the offset before the change (02:30 is 03:30 after it).

Hourly partitions assume every clock change of the zone is a whole number of hours at a whole
hour, as Dagster's do (its ``apply_post_transition``): :func:`strata.clock.irregular_clock_change`
names the
first change that is not (Australia/Lord_Howe shifts by 30 minutes), and the registry refuses an
hourly partitioning over it.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property, lru_cache

from strata.clock import earliest, instants, wall_clock, zone

#: Partition grains: an hour, a day or a calendar month.
GRAINS = ("hourly", "daily", "monthly")
#: Dagster's key format of each grain (the second of a repeated hour adds ``%z``).
KEY_FORMATS = {"hourly": "%Y-%m-%d-%H:%M", "daily": "%Y-%m-%d", "monthly": "%Y-%m-%d"}
#: SQL column kinds a window can be rendered against.
KINDS = ("date", "timestamp", "timestamptz")


def column_kind(sql_type: str) -> str:
    """``date``, ``timestamp`` or ``timestamptz``: how a window reads a column of DuckDB type ``sql_type``.

    Raises:
        ValueError: the type is not a date or a timestamp.
    """
    kind = sql_type.strip().upper()
    if kind == "DATE":
        return "date"
    if kind in ("TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"):
        return "timestamptz"
    if kind.startswith("TIMESTAMP") or kind == "DATETIME":
        return "timestamp"
    raise ValueError(f"a partition column must be a DATE, TIMESTAMP or TIMESTAMPTZ, not {sql_type}")


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _literal_instant(moment: datetime) -> str:
    return f"timestamptz '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S')}+00'"


def _literalwall_clock(wall: datetime) -> str:
    return f"timestamp '{wall.strftime('%Y-%m-%d %H:%M:%S')}'"


def _tz(timezone: str) -> str:
    return "'" + timezone.replace("'", "''") + "'"


@dataclass(frozen=True, order=True)
class Partition:
    """One partition: the instants ``[start, end)`` (UTC), Dagster's ``key``, its grain and zone."""

    start: datetime
    end: datetime
    key: str
    grain: str
    timezone: str

    def __str__(self) -> str:
        return self.key

    @property
    def value(self) -> date | datetime:
        """What ``_partition_date`` holds for it: the local date (days, months) or the start instant (hours)."""
        return self.start if self.grain == "hourly" else self.wall_start.date()

    @property
    def wall_start(self) -> datetime:
        """The nominal local wall-clock start: ``HH:00``, or midnight (even where midnight did not exist)."""
        if self.grain == "hourly":
            return wall_clock(self.start, self.timezone)
        return datetime.combine(date.fromisoformat(self.key[:10]), time())

    @property
    def wall_end(self) -> datetime:
        """The nominal local wall-clock end: one hour, day or month after :attr:`wall_start`."""
        start = self.wall_start
        if self.grain == "hourly":
            return start + timedelta(hours=1)
        if self.grain == "daily":
            return start + timedelta(days=1)
        return datetime.combine(_next_month(start.date()), time())

    @property
    def value_literal(self) -> str:
        """:attr:`value` as a SQL literal (``date '2024-05-01'``, ``timestamptz '2024-05-01 07:00:00+00'``)."""
        if self.grain == "hourly":
            return _literal_instant(self.start)
        return f"date '{self.value.isoformat()}'"

    def window(self) -> PartitionWindow:
        """The window of this one partition."""
        return PartitionWindow(self.grain, self.timezone, self.start, self.end)

    @property
    def landing_values(self) -> dict[str, str]:
        """The landing-path placeholders of this partition: ``date`` (``YYYY-MM-DD``), ``hour``, ``month``.

        ``hour`` is ``HH``; the second of a repeated hour (a fall clock change) adds its UTC offset as
        its key does: ``01-0800``. ``month`` is ``YYYY-MM``.
        """
        wall = self.wall_start
        hour = self.key[11:13] + self.key[16:] if self.grain == "hourly" else "00"
        return {"date": wall.strftime("%Y-%m-%d"), "hour": hour, "month": wall.strftime("%Y-%m")}


def _starts(grain: str, timezone: str, first: datetime, last: datetime) -> list[tuple[datetime, str]]:
    """``(start instant, key)`` of the partitions around ``first`` .. ``last``, in order.

    From before the one containing ``first`` through after the first one starting after ``last``, so
    that each partition in between has its end.
    """
    out: list[tuple[datetime, str]] = []
    if grain == "hourly":
        wall = wall_clock(first, timezone).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        stop = wall_clock(last, timezone) + timedelta(hours=3)
        fmt = KEY_FORMATS["hourly"]
        while wall <= stop:
            found = instants(wall, timezone)
            for i, moment in enumerate(found):
                key = wall.strftime(fmt)
                if i == 1:
                    key += moment.astimezone(zone(timezone)).strftime("%z")
                out.append((moment, key))
            wall += timedelta(hours=1)
    else:
        day = wall_clock(first, timezone).date() - timedelta(days=2)
        if grain == "monthly":
            day = (day.replace(day=1) - timedelta(days=1)).replace(day=1)
        stop = wall_clock(last, timezone).date() + timedelta(days=2)
        while day <= stop or (grain == "monthly" and day <= _next_month(stop)):
            out.append((earliest(datetime.combine(day, time()), timezone), day.isoformat()))
            day = _next_month(day) if grain == "monthly" else day + timedelta(days=1)
    out.sort()
    return out


@lru_cache(maxsize=64)
def _partitions(grain: str, timezone: str, start: datetime, end: datetime) -> tuple[Partition, ...]:
    starts = _starts(grain, timezone, start, end)
    moments = [m for m, _ in starts]
    out = []
    for i, (moment, key) in enumerate(starts[:-1]):
        if moment >= start and moment < end:
            out.append(Partition(moment, moments[i + 1], key, grain, timezone))
    return tuple(out)


@dataclass(frozen=True)
class PartitionWindow:
    """The partitions of ``grain`` in ``timezone`` starting in ``[start, end)`` (instants, UTC).

    Built from Dagster's run (:meth:`of`), from partition keys (:meth:`between`) or from local dates
    (:meth:`from_dates`), it lists its partitions, renders itself as SQL, and maps a finer grain onto
    its partitions. ``start`` and ``end`` are partition boundaries.

    Raises:
        ValueError: an unknown grain, or ``end`` before ``start``.
    """

    grain: str
    timezone: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.grain not in GRAINS:
            raise ValueError(f"unknown grain {self.grain!r}: one of {', '.join(GRAINS)}")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a window's bounds are instants (aware datetimes)")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end < self.start:
            raise ValueError(f"window end {self.end} is before its start {self.start}")

    # ------------------------------------------------------------------ construction

    @classmethod
    def of(cls, grain: str, timezone: str, start: datetime, end: datetime) -> PartitionWindow:
        """The window between two instants (a Dagster ``TimeWindow``'s ``start`` and ``end``)."""
        return cls(grain, timezone, start, end)

    @classmethod
    def from_dates(cls, grain: str, timezone: str, first: date, end: date) -> PartitionWindow:
        """The partitions that overlap local midnight of ``first`` to local midnight of ``end`` (exclusive).

        For days, exactly those days; for months, every month from ``first``'s through the one before
        ``end``'s first instant (the window is widened to whole partitions).
        """
        window = cls(
            grain,
            timezone,
            earliest(datetime.combine(first, time()), timezone),
            earliest(datetime.combine(end, time()), timezone),
        )
        return window.at_grain(grain)

    @classmethod
    def between(cls, grain: str, timezone: str, first_key: str, last_key: str) -> PartitionWindow:
        """The partitions from key ``first_key`` through ``last_key`` (both included).

        Raises:
            ValueError: a key that names no partition (an hour that does not exist).
        """
        first, last = partition_of_key(grain, timezone, first_key), partition_of_key(grain, timezone, last_key)
        return cls(grain, timezone, first.start, last.end)

    # ------------------------------------------------------------------ partitions

    @cached_property
    def partitions(self) -> tuple[Partition, ...]:
        """Every partition of the window, in order."""
        if self.end == self.start:
            return ()
        return _partitions(self.grain, self.timezone, self.start, self.end)

    def __iter__(self) -> Iterator[Partition]:
        return iter(self.partitions)

    def __len__(self) -> int:
        return len(self.partitions)

    def keys(self) -> list[str]:
        """Dagster's keys of the window's partitions, in order."""
        return [p.key for p in self.partitions]

    @cached_property
    def _by_value(self) -> dict:
        return {p.value: p for p in self.partitions}

    def partition_of_value(self, value: date | datetime | None) -> Partition | None:
        """The partition of the window whose :attr:`Partition.value` is ``value`` (as SQL returns it), or None."""
        if isinstance(value, datetime):
            value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return self._by_value.get(value)

    def partition_at(self, moment: datetime) -> Partition | None:
        """The partition of the window containing instant ``moment``, or None."""
        starts = [p.start for p in self.partitions]
        i = bisect.bisect_right(starts, moment.astimezone(UTC)) - 1
        if i < 0 or moment >= self.end:
            return None
        return self.partitions[i]

    @cached_property
    def _positions(self) -> dict[Partition, int]:
        return {p: i for i, p in enumerate(self.partitions)}

    def index(self, partition: Partition) -> int:
        """The position of ``partition`` in the window.

        Raises:
            ValueError: it is not one of the window's.
        """
        try:
            return self._positions[partition]
        except KeyError:
            raise ValueError(f"{partition} is not in {self.describe()}") from None

    def extended(self, before: int) -> PartitionWindow:
        """The window with ``before`` more partitions at its start (the trailing partitions of a check)."""
        if before <= 0:
            return self
        return _extended(self, before)

    def _extended(self, before: int) -> PartitionWindow:
        reach = {"hourly": timedelta(hours=before + 3), "daily": timedelta(days=before + 2)}.get(
            self.grain, timedelta(days=31 * (before + 1))
        )
        earlier = [s for s, _ in _starts(self.grain, self.timezone, self.start - reach, self.start) if s < self.start]
        return PartitionWindow(self.grain, self.timezone, earlier[-before] if earlier else self.start, self.end)

    def at_grain(self, grain: str, timezone: str | None = None) -> PartitionWindow:
        """The window of ``grain`` partitions (in ``timezone``, default this one's) overlapping this one."""
        tz = timezone or self.timezone
        if self.end == self.start:
            return PartitionWindow(grain, tz, self.start, self.end)
        starts = _starts(grain, tz, self.start, self.end)
        first = max(s for s, _ in starts if s <= self.start)
        last = min(s for s, _ in starts if s >= self.end)
        return PartitionWindow(grain, tz, first, last)

    def members(self, grain: str, timezone: str | None = None) -> dict[Partition, list[Partition]]:
        """Each partition of this window and the ``grain`` partitions (a finer grain) that overlap it.

        A day in the same zone maps to exactly its hours (23, 24 or 25); in another zone, the hours
        that overlap it, as Dagster's ``TimeWindowPartitionMapping`` does.
        """
        fine = self.at_grain(grain, timezone).partitions
        return {p: [f for f in fine if f.start < p.end and f.end > p.start] for p in self.partitions}

    # ------------------------------------------------------------------ SQL

    @property
    def value_type(self) -> str:
        """The SQL type of :attr:`Partition.value`: ``date``, or ``timestamptz`` for hours."""
        return "timestamptz" if self.grain == "hourly" else "date"

    @property
    def value_kind(self) -> str:
        """:func:`column_kind` of :attr:`value_type`."""
        return self.value_type

    def predicate(self, column: str, kind: str) -> str:
        """SQL true for the rows whose ``column`` (SQL, of ``kind``) falls in the window.

        ``date``: the local dates; ``timestamptz``: the instants; ``timestamp``: wall-clock times in
        the zone (for hours read as instants, a repeated one as the later: see the module docstring).

        Raises:
            ValueError: an hourly window over a DATE column (a date cannot place a row in an hour).
        """
        if not self.partitions:
            return "false"
        first, last = self.partitions[0], self.partitions[-1]
        if kind == "timestamptz":
            return f"{column} >= {_literal_instant(self.start)} and {column} < {_literal_instant(self.end)}"
        if kind == "date":
            if self.grain == "hourly":
                raise ValueError("an hourly window cannot select rows by a DATE column")
            return f"{column} >= date '{first.wall_start.date()}' and {column} < date '{last.wall_end.date()}'"
        if kind != "timestamp":
            raise ValueError(f"unknown column kind {kind!r}")
        if self.grain == "hourly" and self.timezone != "UTC":
            instant = f"timezone({_tz(self.timezone)}, {column})"
            return f"{instant} >= {_literal_instant(self.start)} and {instant} < {_literal_instant(self.end)}"
        return f"{column} >= {_literalwall_clock(first.wall_start)} and {column} < {_literalwall_clock(last.wall_end)}"

    def bounds(self, kind: str) -> tuple[date | datetime, date | datetime]:
        """``(low, high)``, Python values bound to ``column >= low and column < high`` for a column of ``kind``.

        ``date``: local dates; ``timestamptz``: the instants; ``timestamp``: nominal wall-clock times.
        What :meth:`predicate` renders, for a query in another database (PostgreSQL).

        Raises:
            ValueError: an empty window, or an hourly window over a DATE column.
        """
        if not self.partitions:
            raise ValueError("an empty window has no bounds")
        first, last = self.partitions[0], self.partitions[-1]
        if kind == "timestamptz":
            return self.start, self.end
        if kind == "date":
            if self.grain == "hourly":
                raise ValueError("an hourly window cannot select rows by a DATE column")
            return first.wall_start.date(), last.wall_end.date()
        return first.wall_start, last.wall_end

    def placeholders(self) -> dict[str, str]:
        """An API's window parameters: ``date`` (the first partition's local date), ``start`` and ``end``.

        ``start``/``end`` are local dates (``2024-05-01``) for days and months, ISO 8601 instants in
        UTC (``2024-05-01T13:00:00Z``) for hours.
        """
        if not self.partitions:
            return {}
        first, last = self.partitions[0], self.partitions[-1]
        if self.grain == "hourly":
            start, end = (m.strftime("%Y-%m-%dT%H:%M:%SZ") for m in (self.start, self.end))
        else:
            start, end = first.wall_start.date().isoformat(), last.wall_end.date().isoformat()
        return {"date": first.wall_start.date().isoformat(), "start": start, "end": end}

    def partition_sql(self, column: str, kind: str) -> str:
        """SQL of each row's :attr:`Partition.value` (a ``date``, or a ``timestamptz`` for hours) from ``column``.

        Meaningful for values in any partition of the grain and zone, not only this window's.

        Raises:
            ValueError: an hourly window over a DATE column.
        """
        tz = _tz(self.timezone)
        if kind == "timestamptz":
            local = f"timezone({tz}, {column})"
            if self.grain == "hourly":
                # the zone's clock changes are whole hours at whole hours (see the module docstring)
                return f"({column} - ({local} - date_trunc('hour', {local})))"
        elif kind == "timestamp":
            local = column
            if self.grain == "hourly":
                return f"timezone({tz}, date_trunc('hour', {column}))"
        elif kind == "date":
            if self.grain == "hourly":
                raise ValueError("an hourly window cannot place rows by a DATE column")
            local = column
        else:
            raise ValueError(f"unknown column kind {kind!r}")
        if self.grain == "monthly":
            return f"cast(date_trunc('month', {local}) as date)"
        return f"cast({local} as date)"

    def describe(self) -> str:
        """``2024-05-07 .. 2024-05-08 (2 partitions)``, or the one key."""
        keys = self.keys()
        if not keys:
            return "no partitions"
        return keys[0] if len(keys) == 1 else f"{keys[0]} .. {keys[-1]} ({len(keys)} partitions)"


@lru_cache(maxsize=256)
def _extended(window: PartitionWindow, before: int) -> PartitionWindow:
    return window._extended(before)  # noqa: SLF001


def partition_of_key(grain: str, timezone: str, key: str) -> Partition:
    """The partition Dagster's ``key`` names at ``grain`` in ``timezone``.

    Raises:
        ValueError: not a key of that grain, or an hour that does not exist in the zone.
    """
    if grain == "hourly":
        wall = datetime.strptime(key[:16], KEY_FORMATS["hourly"])
        found = instants(wall, timezone)
        if not found:
            raise ValueError(f"{key} does not exist in {timezone}: the clocks skip that hour")
        if len(key) > 16:
            offset = key[16:]
            matching = [m for m in found if m.astimezone(zone(timezone)).strftime("%z") == offset]
            if not matching or len(found) < 2 or matching[0] != found[1]:
                raise ValueError(f"{key} is not an hour of {timezone}")
            moment = matching[0]
        else:
            moment = found[0]
    else:
        day = date.fromisoformat(key)
        if grain == "monthly" and day.day != 1:
            raise ValueError(f"{key} is not a month's key (its first day)")
        moment = earliest(datetime.combine(day, time()), timezone)
    [partition] = [p for p in _partitions(grain, timezone, moment, moment + timedelta(seconds=1))]
    return partition


def contiguous(partitions: Sequence[Partition]) -> list[tuple[Partition, Partition]]:
    """The distinct ``partitions`` in order, split into unbroken stretches: ``[(first, last), ...]``."""
    spans: list[tuple[Partition, Partition]] = []
    for p in sorted(set(partitions)):
        if spans and p.start == spans[-1][1].end:
            spans[-1] = (spans[-1][0], p)
        else:
            spans.append((p, p))
    return spans


def last_ended(grain: str, timezone: str, moment: datetime) -> Partition:
    """The last partition of ``grain`` in ``timezone`` that ended at or before instant ``moment``."""
    reach = {"hourly": timedelta(hours=4), "daily": timedelta(days=3)}.get(grain, timedelta(days=70))
    starts = _starts(grain, timezone, moment - reach, moment)
    ended = [
        Partition(start, starts[i + 1][0], key, grain, timezone)
        for i, (start, key) in enumerate(starts[:-1])
        if starts[i + 1][0] <= moment
    ]
    return ended[-1]
