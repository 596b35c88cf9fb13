"""Hourly partitions end to end: the seeded page-view feed, hour by hour, through a daily mart.

The registry files are docs/registry.md's worked example, as written; the feed is
``strata demo page-views`` (:mod:`strata.demo.page_views`), whose counts are known per hour.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
from conftest import Platform, by_value, make_settings
from registry.test_registry_assets import guide_block

from strata.defs.schedules import ended_partition
from strata.demo.page_views import expected_views, generate, hour_file
from strata.registry.loader import load_registry

START = date(2024, 5, 1)
RAW = dg.AssetKey(["raw", "web_page_views"])
MART = dg.AssetKey(["marts", "page_views_daily"])


@pytest.fixture
def web(monkeypatch, tmp_path, instance) -> Platform:
    landing = tmp_path / "landing"
    generate(landing, START, 30)
    config = tmp_path / "config"
    config.mkdir()
    (config / "page_views.yaml").write_text(guide_block("name: web_page_views", "yaml"))
    (config / "page_views_daily.yaml").write_text(guide_block("name: page_views_daily", "yaml"))
    return Platform(make_settings(monkeypatch, tmp_path / "data", landing), instance, [config])


def hour_key(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d-%H:%M")


def test_an_hourly_feed_runs_hour_by_hour_through_a_daily_mart(web):
    raw = web.graph.get(RAW)
    keys = raw.partitions_def.get_partition_keys()
    assert len(keys) == 30 * 24 and keys[0] == "2024-05-01-00:00" and keys[-1] == "2024-05-30-23:00"
    day = datetime(2024, 5, 7)
    # a range run of two days' 48 hours, as a backfill launches it
    first = day - timedelta(days=1)
    result = web.materialize([RAW], start=hour_key(first), end=hour_key(day + timedelta(hours=23)))
    assert result.success
    # the freshness check judges every hour that is due: all 720 are, and 48 are loaded
    [freshness] = [e for e in result.get_asset_check_evaluations() if e.check_name == "freshness"]
    assert not freshness.passed and freshness.severity == dg.AssetCheckSeverity.WARN
    assert freshness.metadata["partitions_due"].value == 720 and freshness.metadata["partitions_missing"].value == 672
    assert freshness.description.startswith("672 partition(s) past their deadline are missing: 2024-05-01-00:00, ")
    spec = next(spec for check in web.defs.asset_checks for spec in check.check_specs if spec.name == "freshness")
    assert spec.metadata["deadline_cron"] == "30 * * * *"
    expected = {h: n for h, n in expected_views(START, 30).items() if first <= h < day + timedelta(days=1)}
    loaded = dict(
        web.query("select timezone('UTC', _partition_date), count(*) from raw.web_page_views group by 1 order by 1")
    )
    assert loaded == expected  # per hour, keyed by the hour's start (a TIMESTAMPTZ)
    assert web.query("select count(*) from quarantine.web_page_views") == [(0,)]
    # checks judge each hour: one volume result per hour; with 24 hours behind it, every hour of
    # the second day is within 300% of its trailing median (the first day's early hours had none)
    volume = web.query(
        "select count(distinct partition_start), count(*) filter (where passed and partition_start >= ?) "
        "from quality.check_results where asset = 'raw/web_page_views' and check_name = 'volume'",
        [day],
    )
    assert volume == [(48, 24)]
    expected = {h: n for h, n in expected.items() if h >= day}

    # the day's mart reads exactly its 24 hours
    mapped = web.graph.get(MART).partitions_def
    assert mapped.get_partition_keys()[0] == "2024-05-01"
    upstream = web.defs.resolve_asset_graph().get_parent_partition_keys_for_child("2024-05-07", RAW, MART)
    assert sorted(upstream.partitions_subset.get_partition_keys()) == [
        hour_key(day + timedelta(hours=h)) for h in range(24)
    ]
    assert web.materialize([MART], partition="2024-05-07").success
    assert web.query("select sum(views) from marts.page_views_daily where view_date = '2024-05-07'") == [
        (sum(expected.values()),)
    ]


def test_the_days_mart_waits_for_its_24_hours(web):
    """The automation sensor's condition (eager, on the latest day) requests the day only when all 24 hours are in."""
    last = datetime(2024, 5, 30)
    baseline = dg.evaluate_automation_conditions(defs=web.defs, instance=web.instance)
    assert web.materialize([RAW], start=hour_key(last), end=hour_key(last + timedelta(hours=22))).success
    partial = dg.evaluate_automation_conditions(defs=web.defs, instance=web.instance, cursor=baseline.cursor)
    assert partial.get_num_requested(MART) == 0  # 23 of 24 hours
    assert web.materialize([RAW], partition=hour_key(last + timedelta(hours=23))).success
    complete = dg.evaluate_automation_conditions(defs=web.defs, instance=web.instance, cursor=partial.cursor)
    assert complete.get_requested_partitions(MART) == {"2024-05-30"}


def test_the_hourly_schedule_runs_the_previous_hour_with_its_lookback(web):
    schedule = web.defs.resolve_schedule_def("hourly_web_schedule")
    assert schedule.cron_schedule == "10 * * * *"  # grace: 10m
    tick = datetime(2024, 5, 7, 10, 10, tzinfo=UTC)
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick)).run_requests
    assert request.run_key == "2024-05-07-09:00"
    assert request.tags["dagster/asset_partition_range_start"] == "2024-05-07-06:00"  # lookback: 3 hours
    assert request.tags["dagster/asset_partition_range_end"] == "2024-05-07-09:00"
    after = dg.build_schedule_context(scheduled_execution_time=datetime(2024, 6, 2, 0, 10, tzinfo=UTC))
    assert schedule.evaluate_tick(after).skip_message.startswith("2024-06-01-23:00 is not a partition")
    # monthly and daily ticks: the month and the day that ended
    assert ended_partition("monthly", datetime(2024, 6, 1, 0, 15, tzinfo=UTC), 900, "UTC").key == "2024-05-01"
    assert ended_partition("daily", datetime(2024, 6, 1, 2, 0, tzinfo=UTC), 0, "UTC").key == "2024-05-31"
    # a partitioning's timezone: 10:10 UTC is 12:10 in Amsterdam (CEST)
    assert ended_partition("hourly", tick, 600, "Europe/Amsterdam").key == "2024-05-07-11:00"


def test_a_view_outside_its_files_hour_is_quarantined(web):
    hour = datetime(2024, 5, 3, 8)
    path = hour_file(web.settings.landing_dir, hour)
    path.write_text(path.read_text() + "999999,2024-05-03 09:00:00,/late,1\n")
    assert web.materialize([RAW], partition=hour_key(hour)).success
    assert web.query("select _rule, _column from quarantine.web_page_views") == [("partition", "viewed_at")]
    assert web.query("select count(*) from raw.web_page_views") == [(expected_views(START, 30)[hour],)]


def test_the_registry_checks_paths_and_lookback_against_the_grain(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    text = guide_block("name: web_page_views", "yaml").replace("{date}/{hour}.csv", "{date}.csv")
    text = text.replace("lookback: 3 ", "lookback_days: 3 ")
    (config / "page_views.yaml").write_text(textwrap.dedent(text))
    messages = " | ".join(i.message for i in load_registry([config]).issues)
    assert "an hourly files dataset needs {date} and {hour} in its path" in messages
    assert "lookback_days counts days; an hourly partitioning counts partitions" in messages


def test_the_landing_sensor_runs_the_hours_whose_files_changed(web):
    sensor = web.defs.resolve_sensor_def("landing_files")
    baseline = sensor.evaluate_tick(dg.build_sensor_context(instance=web.instance, definitions=web.defs))
    assert "baseline: 720 landing files" in baseline.skip_message
    for hour in (datetime(2024, 5, 9, 7), datetime(2024, 5, 9, 8)):
        path = hour_file(web.settings.landing_dir, hour)
        path.write_text(path.read_text())  # dropped again
    tick = dg.build_sensor_context(instance=web.instance, cursor=baseline.cursor, definitions=web.defs)
    [request] = sensor.evaluate_tick(tick).run_requests
    assert request.job_name == "hourly_web"
    assert request.tags["dagster/asset_partition_range_start"] == "2024-05-09-07:00"
    assert request.tags["dagster/asset_partition_range_end"] == "2024-05-09-08:00"
    assert RAW in request.asset_selection and MART not in request.asset_selection  # the mart is daily: automation


def test_a_monthly_dataset_loads_a_month_per_partition(tmp_path):
    """``{month}`` in the path, keys on the month's first day, rows placed by their date's month."""
    import duckdb

    from strata.defs.partitions import partitions_of
    from strata.loading import load_dataset
    from strata.partition_window import PartitionWindow

    config = tmp_path / "config"
    config.mkdir()
    (config / "bills.yaml").write_text(
        textwrap.dedent(
            """
            name: bills
            source: {type: files, format: csv, path: "bills/{month}.csv"}
            partitioning: {type: monthly, column: billed_on, start: 2024-01-15, end: 2024-06-30}
            primary_key: [bill_id]
            columns:
              - {name: bill_id, type: BIGINT, nullable: false}
              - {name: billed_on, type: DATE, nullable: false}
            """
        )
    )
    registry = load_registry([config])
    assert registry.ok, registry.issues
    bills = registry.datasets["bills"]
    assert partitions_of(bills.partitioning).get_partition_keys() == [f"2024-0{m}-01" for m in range(1, 7)]
    (tmp_path / "bills").mkdir()
    (tmp_path / "bills" / "2024-05.csv").write_text("bill_id,billed_on\n1,2024-05-01\n2,2024-05-31\n3,2024-06-01\n")
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        report = load_dataset(
            con,
            bills,
            tmp_path,
            "run",
            PartitionWindow.from_dates("monthly", "UTC", date(2024, 5, 1), date(2024, 6, 1)),
        )
        assert by_value(report.rows_by_partition) == {date(2024, 5, 1): 2} and report.rows_quarantined == 1
        assert con.execute("select distinct _partition_date from raw.bills").fetchall() == [(date(2024, 5, 1),)]
        assert con.execute("select _reason from quarantine.bills").fetchall()[0][0].startswith("partition on billed_on")


def test_a_monthly_path_names_its_month(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "bills.yaml").write_text(
        "name: bills\nsource: {type: files, format: csv, path: 'bills/{date}.csv'}\n"
        "partitioning: {type: monthly, column: billed_on, start: 2024-01-01, grace: 2d}\n"
        "columns: [{name: billed_on, type: DATE}]\n"
    )
    messages = " | ".join(i.message for i in load_registry([config]).issues)
    assert "{date} cannot place a file in a monthly partition" in messages
    assert "a monthly files dataset needs {month} in its path" in messages
    assert "grace must be under a day" in messages
