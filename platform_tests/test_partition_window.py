"""Partition windows on data nobody designed: random zones, grains, ranges and event times (Hypothesis).

Each property is checked against an answer computed another way: Dagster's own partitions
definitions (keys and time windows), a walk over UTC instants for the hours a day has, and DuckDB
selecting rows by the SQL a window renders. Dates lean towards clock changes: a zone's transitions
are found by scanning its UTC offset, and windows are drawn around them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

import dagster as dg
import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strata.clock import instants as instants_of
from strata.clock import irregular_clock_change
from strata.partition_window import PartitionWindow, column_kind, contiguous, last_ended, partition_of_key

ZONES = sorted(available_timezones() - {"Factory", "localtime"})
#: Zones the examples always include: DST, half-hour offsets, a 30-minute DST shift, a 24-hour jump
#: (Samoa skipped 2011-12-30), midnight transitions, and UTC.
NAMED = [
    "America/Los_Angeles",
    "Europe/Amsterdam",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "America/St_Johns",
    "Pacific/Apia",
    "America/Havana",
    "America/Sao_Paulo",
    "Asia/Tehran",
    "UTC",
]
PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def transitions(timezone: str) -> list[datetime]:
    """The instants (UTC) at which ``timezone``'s offset changes, 1990-2035 (6-hour scan, then to the second)."""
    z = ZoneInfo(timezone)
    found, moment = [], datetime(1990, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(z).utcoffset()
    while moment.year < 2035:
        following = moment + timedelta(hours=6)
        new = following.astimezone(z).utcoffset()
        if new != offset:
            found.append(following)
            offset = new
        moment = following
    return found


@st.composite
def zone_and_day(draw) -> tuple[str, date]:
    """A zone and a local day, half the time within two days of one of the zone's clock changes."""
    timezone = draw(st.one_of(st.sampled_from(NAMED), st.sampled_from(ZONES)))
    near = transitions(timezone)
    if near and draw(st.booleans()):
        moment = draw(st.sampled_from(near)).astimezone(ZoneInfo(timezone))
        return timezone, moment.date() + timedelta(days=draw(st.integers(-2, 1)))
    return timezone, draw(st.dates(date(1990, 1, 1), date(2034, 12, 1)))


def dagster_windows(grain: str, timezone: str, first: date, last: date) -> list[tuple[str, datetime, datetime]]:
    """Dagster's keys and time windows (UTC) of ``grain`` partitions from ``first`` to ``last`` (exclusive)."""
    if grain == "hourly":
        definition = dg.HourlyPartitionsDefinition(
            start_date=f"{first}-00:00", end_date=f"{last}-00:00", timezone=timezone
        )
    elif grain == "daily":
        definition = dg.DailyPartitionsDefinition(start_date=str(first), end_date=str(last), timezone=timezone)
    else:
        definition = dg.MonthlyPartitionsDefinition(start_date=str(first), end_date=str(last), timezone=timezone)
    out = []
    for key in definition.get_partition_keys(current_time=datetime(2100, 1, 1, tzinfo=UTC)):
        window = definition.time_window_for_partition_key(key)
        out.append((key, window.start.astimezone(UTC), window.end.astimezone(UTC)))
    return out


@PROPERTY
@given(zone_and_day(), st.sampled_from(["hourly", "daily", "monthly"]), st.integers(1, 4))
def test_partitions_are_dagsters(zone_day, grain, length):
    """Keys and windows equal Dagster's, in every zone, except hourly partitions where Dagster's go wrong
    (a 30-minute clock change): there the registry refuses the partitioning, and says why."""
    timezone, day = zone_day
    if grain == "monthly":
        first = day.replace(day=1)
        last = first
        for _ in range(length):
            last = (last.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        first, last = day, day + timedelta(days=length)
    ours = [(p.key, p.start, p.end) for p in PartitionWindow.from_dates(grain, timezone, first, last)]
    theirs = dagster_windows(grain, timezone, first, last)
    if irregular_clock_change(timezone, first, last, grain):
        return  # refused by validation (test_registry_validation): Dagster's partitions do not tile there
    assert ours == theirs
    for key, start, _end in ours:
        assert partition_of_key(grain, timezone, key).start == start


@PROPERTY
@given(zone_and_day(), st.sampled_from(["hourly", "daily", "monthly"]), st.data())
def test_every_instant_falls_in_exactly_one_partition(zone_day, grain, data):
    timezone, day = zone_day
    if irregular_clock_change(timezone, day - timedelta(days=31), day + timedelta(days=3), grain):
        return
    window = PartitionWindow.from_dates(grain, timezone, day, day + timedelta(days=3))
    parts = window.partitions
    assert parts and parts[0].start == window.start and parts[-1].end == window.end
    assert all(a.end == b.start and a.start < a.end for a, b in zip(parts, parts[1:], strict=False))
    seconds = int((window.end - window.start).total_seconds())
    for offset in data.draw(st.lists(st.integers(0, seconds - 1), min_size=1, max_size=20)):
        moment = window.start + timedelta(seconds=offset)
        holding = [p for p in parts if p.start <= moment < p.end]
        assert len(holding) == 1 and window.partition_at(moment) == holding[0]
    assert [(a.key, b.key) for a, b in contiguous(parts)] == [(parts[0].key, parts[-1].key)]


@PROPERTY
@given(zone_and_day())
def test_a_days_hours_are_exactly_the_hours_that_exist(zone_day):
    """The hours of a local day are the instants at which the zone's clocks read HH:00 during it: 23, 24
    or 25 across a clock change (a walk over UTC minutes finds them, without local-time arithmetic)."""
    timezone, day = zone_day
    if irregular_clock_change(timezone, day, day + timedelta(days=1)):
        return  # hours are refused there
    [the_day] = PartitionWindow.from_dates("daily", timezone, day, day + timedelta(days=1)).partitions
    hours = the_day.window().members("hourly")[the_day]
    zone = ZoneInfo(timezone)
    walked, moment = [], the_day.start
    while moment < the_day.end:
        local = moment.astimezone(zone)
        if local.minute == 0 and local.second == 0:
            walked.append(moment)
        moment += timedelta(minutes=15)
    assert [h.start for h in hours] == walked
    assert sum((h.end - h.start for h in hours), timedelta()) == the_day.end - the_day.start
    assert len(hours) == len({h.key for h in hours})  # a repeated hour has its own key


@pytest.fixture(scope="module")
def con():
    with duckdb.connect() as c:
        yield c


@PROPERTY
@given(zone_and_day(), st.sampled_from(["hourly", "daily", "monthly"]), st.data())
def test_a_window_as_sql_selects_exactly_its_rows(con, zone_day, grain, data):
    """Rows placed by an instant, a wall-clock time or a date: DuckDB, running the SQL a window renders,
    selects and places exactly the rows the window holds by Python's reckoning."""
    timezone, day = zone_day
    if irregular_clock_change(timezone, day - timedelta(days=40), day + timedelta(days=40), grain):
        return
    window = PartitionWindow.from_dates(grain, timezone, day, day + timedelta(days=2))
    zone = ZoneInfo(timezone)
    span = int((window.end - window.start).total_seconds())
    offsets = data.draw(st.lists(st.integers(-3 * 86400, span + 3 * 86400), min_size=1, max_size=40))
    instants = [window.start + timedelta(seconds=o) for o in offsets]
    walls = [
        m.astimezone(zone).replace(tzinfo=None) + timedelta(minutes=data.draw(st.sampled_from([0, 30, 60])))
        for m in instants
    ]
    con.execute("create or replace temp table t (i integer, moment timestamptz, wall timestamp, d date)")
    con.executemany(
        "insert into t values (?, ?, ?, ?)",
        [(i, m, w, w.date()) for i, (m, w) in enumerate(zip(instants, walls, strict=True))],
    )

    def selected(column: str, kind: str) -> dict[int, object]:
        rows = con.execute(
            f"select i, {window.partition_sql(column, kind)} from t where {window.predicate(column, kind)}"
        ).fetchall()
        return {i: window.partition_of_value(v) for i, v in rows}

    expected_at = {i: window.partition_at(m) for i, m in enumerate(instants) if window.start <= m < window.end}
    assert selected("moment", "timestamptz") == expected_at
    # a wall-clock time: its day by the calendar; its hour by its instant, as DuckDB's timezone() reads
    # it: the later of a repeated hour's two (Python's fold=1), and in a skipped hour with the offset
    # before the change (Python's fold=0 there)
    if grain == "hourly":
        read = [
            w.replace(tzinfo=zone, fold=1 if len(instants_of(w, timezone)) == 2 else 0).astimezone(UTC) for w in walls
        ]
        expected_wall = {i: window.partition_at(m) for i, m in enumerate(read) if window.start <= m < window.end}
    else:
        days = {p.wall_start.date(): p for p in window.partitions} if grain == "daily" else None
        expected_wall = {}
        for i, w in enumerate(walls):
            found = (
                days.get(w.date())
                if days is not None
                else next((p for p in window.partitions if p.wall_start <= w < p.wall_end), None)
            )
            if found is not None:
                expected_wall[i] = found
        assert selected("d", "date") == expected_wall
    assert selected("wall", "timestamp") == expected_wall


def test_a_clock_change_day_in_los_angeles():
    """The worked example of docs/registry.md: spring has no 02:00, fall repeats 01:00 with its offset in the key."""
    spring = PartitionWindow.from_dates("hourly", "America/Los_Angeles", date(2010, 3, 14), date(2010, 3, 15))
    assert len(spring) == 23 and "2010-03-14-02:00" not in spring.keys()
    assert spring.partitions[1].key == "2010-03-14-01:00" and spring.partitions[1].landing_values["hour"] == "01"
    fall = PartitionWindow.from_dates("hourly", "America/Los_Angeles", date(2010, 11, 7), date(2010, 11, 8))
    assert len(fall) == 25 and fall.keys()[1:3] == ["2010-11-07-01:00", "2010-11-07-01:00-0800"]
    assert fall.partitions[2].landing_values == {"date": "2010-11-07", "hour": "01-0800", "month": "2010-11"}
    with pytest.raises(ValueError, match="does not exist in America/Los_Angeles"):
        partition_of_key("hourly", "America/Los_Angeles", "2010-03-14-02:00")
    assert last_ended("hourly", "America/Los_Angeles", datetime(2010, 11, 7, 10, 5, tzinfo=UTC)).key == (
        "2010-11-07-01:00-0800"
    )
    assert column_kind("TIMESTAMP WITH TIME ZONE") == "timestamptz" and column_kind("TIMESTAMP_NS") == "timestamp"
