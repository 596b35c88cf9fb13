"""Hourly data across both clock changes, through Dagster, to a daily mart checked against its own answer.

A feed of our own making: temperatures of two cities in America/Los_Angeles, one CSV per city per
local hour (``temps/<date>/<hour>/<city>.csv``), three readings an hour. Around the spring change
(2010-03-14 has no 02:00) and the fall one (2010-11-07 has 01:00 twice; the second hour's folder
is ``01-0800``). The event time is either an instant written with its offset (``TIMESTAMPTZ``) or a
wall-clock time (``TIMESTAMP``). The daily mart's mean, min, max and count per city and day are
compared with an answer computed here from the readings with Python's ``zoneinfo``.
"""

from __future__ import annotations

import math
import textwrap
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from conftest import Platform, make_settings

from strata.partition_window import PartitionWindow

ZONE = "America/Los_Angeles"
LA = ZoneInfo(ZONE)
CITIES = ("fresno", "san_diego")
SPRING = (date(2010, 3, 13), date(2010, 3, 16))  # [first, end)
FALL = (date(2010, 11, 6), date(2010, 11, 9))
RAW = dg.AssetKey(["raw", "city_temps"])
MART = dg.AssetKey(["marts", "city_temps_daily"])
PUBLISHED = dg.AssetKey(["published", "city_temps_daily"])


def readings(first: date, end: date) -> list[tuple[str, datetime, float]]:
    """``(city, instant, temperature)``: three readings an hour of every hour that exists, in both cities."""
    out = []
    for hour in PartitionWindow.from_dates("hourly", ZONE, first, end):
        for city in CITIES:
            for minute in (0, 20, 40):
                moment = hour.start + timedelta(minutes=minute)
                local = moment.astimezone(LA)
                temp = 12 + (4 if city == "san_diego" else 0) + 6 * math.sin((local.hour - 9) / 24 * 2 * math.pi)
                out.append((city, moment, round(temp + (moment.timestamp() // 60 % 7) / 10, 2)))
    return out


def write_feed(landing, rows, wall_clock: bool) -> None:
    """One CSV per city per hour: the hour's folder is its key's hour (``01-0800`` for the repeated one)."""
    window = PartitionWindow.from_dates("hourly", ZONE, date(2010, 1, 1), date(2011, 1, 1))
    files: dict = {}
    for i, (city, moment, temp) in enumerate(rows):
        hour = window.partition_at(moment)
        local = moment.astimezone(LA)
        shown = local.replace(tzinfo=None).isoformat(sep=" ") if wall_clock else local.isoformat()
        files.setdefault((hour, city), []).append(f"{i},{city},{shown},{temp}")
    for (hour, city), lines in files.items():
        path = landing / "temps" / hour.landing_values["date"] / hour.landing_values["hour"] / f"{city}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("reading_id,city,observed_at,temperature\n" + "\n".join(lines) + "\n")


def expected_daily(rows) -> dict[tuple[str, date], tuple]:
    """``{(city, local day): (mean, min, max, readings)}``, from the readings alone."""
    days: dict = {}
    for city, moment, temp in rows:
        days.setdefault((city, moment.astimezone(LA).date()), []).append(temp)
    return {k: (round(sum(v) / len(v), 6), min(v), max(v), len(v)) for k, v in days.items()}


@pytest.fixture(params=["instant", "wall_clock"])
def temps(request, monkeypatch, tmp_path, instance) -> tuple[Platform, list]:
    wall_clock = request.param == "wall_clock"
    landing = tmp_path / "landing"
    rows = readings(*SPRING) + readings(*FALL)
    write_feed(landing, rows, wall_clock)
    config = tmp_path / "config"
    config.mkdir()
    # an instant has a key of its own; a wall-clock time repeats in the fall, so the reading id is the key
    key, kind = ("reading_id", "TIMESTAMP") if wall_clock else ("city, observed_at", "TIMESTAMPTZ")
    (config / "city_temps.yaml").write_text(
        textwrap.dedent(
            f"""
            name: city_temps
            source: {{type: files, format: csv, path: "temps/{{date}}/{{hour}}/*.csv"}}
            partitioning: {{type: hourly, column: observed_at, timezone: {ZONE}, start: 2010-03-13, end: 2010-11-08}}
            primary_key: [{key}]
            columns:
              - {{name: reading_id, type: BIGINT, nullable: false}}
              - {{name: city, type: VARCHAR, nullable: false}}
              - {{name: observed_at, type: {kind}, nullable: false}}
              - {{name: temperature, type: DOUBLE}}
            """
        )
    )
    (config / "city_temps_daily.yaml").write_text(
        textwrap.dedent(
            f"""
            name: city_temps_daily
            layer: mart
            select: |
              select city, cast(observed_at as date) as day, round(avg(temperature), 6) as mean_temp,
                     min(temperature) as min_temp, max(temperature) as max_temp, count(*) as readings
              from raw.city_temps
              group by all
            partitioning: {{column: day, timezone: {ZONE}, start: 2010-03-13, end: 2010-11-08}}
            primary_key: [city, day]
            """
        )
    )
    return Platform(make_settings(monkeypatch, tmp_path / "data", landing), instance, [config]), rows


def hours(first: date, end: date) -> tuple[str, str]:
    keys = PartitionWindow.from_dates("hourly", ZONE, first, end).keys()
    return keys[0], keys[-1]


def mart(platform: Platform) -> dict:
    rows = platform.query("select city, day, mean_temp, min_temp, max_temp, readings from marts.city_temps_daily")
    return {(c, d): (float(m), lo, hi, n) for c, d, m, lo, hi, n in rows}


def test_both_clock_changes_from_hours_to_the_daily_mart(temps):
    platform, rows = temps
    keys = platform.graph.get(RAW).partitions_def.get_partition_keys()
    assert "2010-03-14-02:00" not in keys and {"2010-11-07-01:00", "2010-11-07-01:00-0800"} <= set(keys)
    for first, end in (SPRING, FALL):
        start, last = hours(first, end)
        assert platform.materialize([RAW], start=start, end=last).success
        assert platform.materialize([MART], start=str(first), end=str(end - timedelta(days=1))).success
    # no reading lost, misfiled or counted twice, the repeated hour included
    assert platform.query("select count(*), count(distinct reading_id) from raw.city_temps") == [(len(rows),) * 2]
    assert platform.query("select count(*) from quarantine.city_temps") == [(0,)]
    per_hour = dict(platform.query("select _partition_date, count(*) from raw.city_temps group by 1"))
    assert len(per_hour) == (3 * 24 - 1) + (3 * 24 + 1) and set(per_hour.values()) == {6}
    assert mart(platform) == expected_daily(rows)
    assert {d: n for (c, d), (*_, n) in mart(platform).items() if c == "fresno"} == {
        date(2010, 3, 13): 72,
        date(2010, 3, 14): 69,  # 23 hours
        date(2010, 3, 15): 72,
        date(2010, 11, 6): 72,
        date(2010, 11, 7): 75,  # 25 hours
        date(2010, 11, 8): 72,
    }
    # each day of the mart is built from exactly the hours that exist
    graph = platform.defs.resolve_asset_graph()
    spring_day = graph.get_parent_partition_keys_for_child("2010-03-14", RAW, MART).partitions_subset
    fall_day = graph.get_parent_partition_keys_for_child("2010-11-07", RAW, MART).partitions_subset
    assert len(spring_day) == 23 and len(fall_day) == 25


def test_a_missing_hour_keeps_its_day_out_until_it_arrives(temps):
    """The day without all its hours is not built (the step says which hour is missing); the others are. Once
    the hour lands and loads, automation asks for that day, and it and the published copy come out exact."""
    platform, rows = temps
    landing = platform.settings.landing_dir
    late = landing / "temps" / "2010-03-14" / "05"
    kept = {p.name: p.read_bytes() for p in late.iterdir()}
    for p in late.iterdir():
        p.unlink()
    late.rmdir()
    window = PartitionWindow.from_dates("hourly", ZONE, *SPRING)
    before = [k for k in window.keys() if k < "2010-03-14-05:00"]
    after = [k for k in window.keys() if k > "2010-03-14-05:00"]
    assert platform.materialize([RAW], start=before[0], end=before[-1]).success
    assert platform.materialize([RAW], start=after[0], end=after[-1]).success

    result = platform.materialize([MART], start="2010-03-13", end="2010-03-15", raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.to_string()
    assert "marts/city_temps_daily: built 2 of 3 partition(s); 1 skipped" in message
    assert "2010-03-14: missing raw/city_temps 2010-03-14-05:00" in message
    built = {e.partition for e in result.get_asset_materialization_events() if e.asset_key == MART}
    assert built == {"2010-03-13", "2010-03-15"}
    assert {d for _, d in mart(platform)} == {date(2010, 3, 13), date(2010, 3, 15)}
    # the skipped day is on record, so what is downstream of the mart holds it back in later runs too
    gate = "select partition_key, passed from quality.check_results where check_name = 'upstream_complete'"
    assert dict(platform.query(gate)) == {"2010-03-13": True, "2010-03-14": False, "2010-03-15": True}

    # the hour lands late: loading it makes its day due, and the day and the publish follow
    baseline = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance)
    late.mkdir()
    for name, data in kept.items():
        (late / name).write_bytes(data)
    assert platform.materialize([RAW], partition="2010-03-14-05:00").success
    due = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=baseline.cursor)
    assert due.get_requested_partitions(MART) == {"2010-03-14"}
    assert platform.materialize([MART], partition="2010-03-14").success
    assert dict(platform.query(gate))["2010-03-14"] is True
    spring = {k: v for k, v in expected_daily(rows).items() if k[1] < date(2010, 4, 1)}
    assert mart(platform) == spring
    published = dg.evaluate_automation_conditions(defs=platform.defs, instance=platform.instance, cursor=due.cursor)
    assert published.get_num_requested(PUBLISHED) == 1
    assert platform.materialize([PUBLISHED]).success
    assert platform.query("select count(*) from published.city_temps_daily") == [(len(spring),)]


def test_a_failing_hour_costs_its_day_not_the_range(temps):
    """One hour fails a blocking check in a range run: the run fails naming it, and the mart's range run builds
    every other day, then fails naming the day and the hour's failure."""
    platform, _rows = temps
    for bad in (platform.settings.landing_dir / "temps" / "2010-03-13" / "10").iterdir():  # every reading of the hour
        header, *lines = bad.read_text().splitlines()
        bad.write_text("\n".join([header] + [line.rsplit(",", 1)[0] + ",hot" for line in lines]) + "\n")
    start, last = hours(*SPRING)
    raw = platform.materialize([RAW], start=start, end=last, raise_on_error=False)
    assert not raw.success  # nothing downstream in this run to hold the hour back: the run fails here
    [check] = [e for e in raw.get_asset_check_evaluations() if e.check_name == "quarantine_threshold"]
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.description.startswith("quarantine_threshold failed on 1 hour, first 2010-03-13-10:00")
    assert len({e.partition for e in raw.get_asset_materialization_events()}) == 71

    result = platform.materialize([MART], start="2010-03-13", end="2010-03-15", raise_on_error=False)
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.to_string()
    assert "built 2 of 3 partition(s)" in message
    assert "2010-03-13: raw/city_temps quarantine_threshold failed on 2010-03-13-10:00" in message
    assert {d for _, d in mart(platform)} == {date(2010, 3, 14), date(2010, 3, 15)}


def test_a_day_built_incomplete_when_the_dataset_says_so(temps, tmp_path):
    """``incomplete: publish`` builds the day anyway and flags its rows, and the materialization says so."""
    platform, rows = temps
    path = tmp_path / "config" / "city_temps_daily.yaml"
    path.write_text(
        path.read_text().replace("partitioning: {column: day,", "partitioning: {incomplete: publish, column: day,")
    )
    platform = Platform(platform.settings, platform.instance, [tmp_path / "config"])
    window = PartitionWindow.from_dates("hourly", ZONE, *SPRING)
    keys = [k for k in window.keys() if k != "2010-03-14-05:00"]
    cut = keys.index("2010-03-14-06:00")
    assert platform.materialize([RAW], start=keys[0], end=keys[cut - 1]).success
    assert platform.materialize([RAW], start=keys[cut], end=keys[-1]).success
    result = platform.materialize([MART], start="2010-03-13", end="2010-03-15")
    events = {e.partition: e.materialization for e in result.get_asset_materialization_events() if e.asset_key == MART}
    assert events["2010-03-14"].metadata["complete"].value is False
    assert "raw/city_temps 2010-03-14-05:00" in events["2010-03-14"].metadata["missing_upstream"].value
    assert events["2010-03-13"].metadata["complete"].value is True
    flags = dict(platform.query("select day, bool_and(_complete) from marts.city_temps_daily group by 1"))
    assert flags == {date(2010, 3, 13): True, date(2010, 3, 14): False, date(2010, 3, 15): True}
    readings_14 = platform.query("select sum(readings) from marts.city_temps_daily where day = '2010-03-14'")[0][0]
    assert readings_14 == sum(1 for r in rows if r[1].astimezone(LA).date() == date(2010, 3, 14)) - 6


def test_a_utc_partitioning_with_local_event_times_and_the_reverse(tmp_path):
    """Where the files' hours and the event times' zone differ, each row still lands in its hour by its instant."""
    import duckdb

    from strata.loading import load_dataset
    from strata.registry.loader import load_registry

    moments = [datetime(2010, 11, 7, 8, 0, tzinfo=UTC) + timedelta(minutes=20 * i) for i in range(9)]
    config = tmp_path / "config"
    config.mkdir()
    for name, zone, shown in (
        ("utc_hours", "UTC", lambda m: m.astimezone(LA).isoformat()),  # local times, UTC hours
        ("local_hours", ZONE, lambda m: m.strftime("%Y-%m-%dT%H:%M:%SZ")),  # UTC times, local hours
    ):
        (config / f"{name}.yaml").write_text(
            f"name: {name}\nsource: {{type: files, format: csv, path: '{name}/{{date}}/{{hour}}.csv'}}\n"
            f"partitioning: {{type: hourly, column: at, timezone: {zone}, start: 2010-11-01}}\n"
            "columns: [{name: at, type: TIMESTAMPTZ, nullable: false}]\n"
        )
        window = PartitionWindow.from_dates("hourly", zone, date(2010, 11, 7), date(2010, 11, 8))
        for hour in window:
            mine = [m for m in moments if hour.start <= m < hour.end]
            path = tmp_path / name / hour.landing_values["date"] / f"{hour.landing_values['hour']}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("at\n" + "".join(shown(m) + "\n" for m in mine))
    registry = load_registry([config])
    assert registry.ok, registry.issues
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        for name, zone in (("utc_hours", "UTC"), ("local_hours", ZONE)):
            window = PartitionWindow.from_dates("hourly", zone, date(2010, 11, 7), date(2010, 11, 8))
            report = load_dataset(con, registry.datasets[name], tmp_path, "r", window)
            assert (report.rows_written, report.rows_quarantined) == (9, 0), name
            placed = con.execute(f'select "at", _partition_date from raw.{name}').fetchall()
            assert all(window.partition_at(at).start == p for at, p in placed), name
        # the repeated hour's two files hold its two sets of readings (08:00-09:00 UTC, then 09:00-10:00 UTC)
        local = dict(
            con.execute(
                "select strftime(timezone('UTC', _partition_date), '%H'), count(*) from raw.local_hours group by 1"
            ).fetchall()
        )
        assert local == {"08": 3, "09": 3, "10": 3}


def test_the_landing_sensor_and_the_schedule_know_only_real_hours(temps):
    """A file for the hour the spring change skips names no partition (logged, not run); the fall's second
    hour has its own folder and key; the hourly schedule runs each 01:00 hour of the fall day once."""
    from strata.defs.schedules import ended_partition

    platform, _rows = temps
    sensor = platform.defs.resolve_sensor_def("landing_files")
    baseline = sensor.evaluate_tick(dg.build_sensor_context(instance=platform.instance, definitions=platform.defs))
    landing = platform.settings.landing_dir / "temps"
    skipped = landing / "2010-03-14" / "02" / "fresno.csv"
    skipped.parent.mkdir()
    skipped.write_text("reading_id,city,observed_at,temperature\n")
    second = next((landing / "2010-11-07" / "01-0800").iterdir())
    second.write_bytes(second.read_bytes())  # delivered again
    context = dg.build_sensor_context(instance=platform.instance, cursor=baseline.cursor, definitions=platform.defs)
    result = sensor.evaluate_tick(context)
    [request] = result.run_requests
    assert request.partition_key == "2010-11-07-01:00-0800"
    assert RAW in request.asset_selection
    from strata.sources import arrivals

    scanned = {f.relative: f for f in arrivals.scan(platform_datasets(platform), platform.settings.landing_dir)}
    ignored = scanned["temps/2010-03-14/02/fresno.csv"]
    assert ignored.partition is None and "does not exist in America/Los_Angeles" in ignored.problem

    tick = datetime(2010, 11, 7, 9, 10, tzinfo=UTC)  # 01:10 PST, the second 01:00
    assert ended_partition("hourly", tick, 600, ZONE).key == "2010-11-07-01:00"
    assert ended_partition("hourly", tick + timedelta(hours=1), 600, ZONE).key == "2010-11-07-01:00-0800"
    assert ended_partition("hourly", datetime(2010, 3, 14, 10, 10, tzinfo=UTC), 600, ZONE).key == "2010-03-14-01:00"


def platform_datasets(platform: Platform):
    from strata.registry.loader import load_registry

    return list(load_registry(platform_config(platform)).datasets.values())


def platform_config(platform: Platform):
    return [platform.settings.landing_dir.parent / "config"]


def test_freshness_names_a_missing_hour_even_when_later_ones_arrived(temps, tmp_path):
    platform, _rows = temps
    path = tmp_path / "config" / "city_temps.yaml"
    path.write_text(
        path.read_text().replace("end: 2010-11-08}", "end: 2010-03-15}")
        + "freshness: {cron: '30 * * * *', timezone: America/Los_Angeles, lower_bound: 1h}\n"
    )
    (tmp_path / "config" / "city_temps_daily.yaml").unlink()
    platform = Platform(platform.settings, platform.instance, [tmp_path / "config"])
    keys = [k for k in PartitionWindow.from_dates("hourly", ZONE, *SPRING).keys() if k != "2010-03-14-05:00"]
    cut = keys.index("2010-03-14-06:00")
    platform.materialize([RAW], start=keys[0], end=keys[cut - 1])
    result = platform.materialize([RAW], start=keys[cut], end=keys[-1])
    [freshness] = [e for e in result.get_asset_check_evaluations() if e.check_name == "freshness"]
    assert not freshness.passed
    assert freshness.description == "1 partition(s) past their deadline are missing: 2010-03-14-05:00"
    assert freshness.metadata["partitions_due"].value == 71
    result = platform.materialize([RAW], partition="2010-03-14-05:00")
    [freshness] = [e for e in result.get_asset_check_evaluations() if e.check_name == "freshness"]
    assert freshness.passed
    schedules = [s.name for s in platform.defs.schedules if s.name.startswith("freshness_")]
    assert len(schedules) == 1


def test_an_open_ended_hourly_dataset_is_scanned_without_listing_its_hours(tmp_path):
    """No end means up to now: the landing sensor places files by their own hour, never by listing the range."""
    from strata.registry.loader import load_registry
    from strata.sources import arrivals

    config = tmp_path / "config"
    config.mkdir()
    (config / "feed.yaml").write_text(
        "name: feed\nsource: {type: files, format: csv, path: 'feed/{date}/{hour}.csv'}\n"
        f"partitioning: {{type: hourly, timezone: {ZONE}, start: 2001-01-01}}\n"
    )
    for hour in ("2010-11-07/01", "2010-11-07/01-0800", "2000-12-31/23"):
        path = tmp_path / "landing" / "feed" / f"{hour}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")
    found = {f.relative: f for f in arrivals.scan(load_registry([config]).datasets.values(), tmp_path / "landing")}
    assert found["feed/2010-11-07/01.csv"].partition.key == "2010-11-07-01:00"
    assert found["feed/2010-11-07/01-0800.csv"].partition.key == "2010-11-07-01:00-0800"
    assert "outside the dataset's partitions" in found["feed/2000-12-31/23.csv"].problem
