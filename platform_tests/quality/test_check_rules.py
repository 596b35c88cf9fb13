"""The check rules on a real DuckDB file: volume, distribution, referential, custom SQL, the
schema with failing partitions and sample rows, and partition-aware freshness."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg
import duckdb
import pytest

from strata.checks import custom_sql, distribution, referential, schema, volume
from strata.checks.scope import Scope
from strata.partition_window import PartitionWindow
from strata.registry.models import CustomSqlCheck, Dataset, DistributionCheck, ReferentialCheck, VolumeCheck

START = date(2024, 1, 1)


@pytest.fixture
def con(tmp_path):
    """marts.sales: 20 days, 100 rows a day, amount ~ 10; day 21 has 0 rows, day 22 has 500."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        c.execute("create schema marts")
        c.execute(f"""create table marts.sales as
            select date '{START}' + (i // 100)::int as day, i as id, (10 + (i % 7) * 0.1)::decimal(12, 1) as amount, i % 50 as customer
            from range(2000) t(i)""")
        c.execute(f"insert into marts.sales select date '{START}' + 21, 100000 + i, 99, 1 from range(500) t(i)")
        c.execute("create table marts.customers as select i as customer from range(40) t(i)")
        yield c


def scope(first: int, days: int) -> Scope:
    start = START + timedelta(days=first)
    return Scope("marts.sales", "day", PartitionWindow.from_dates("daily", "UTC", start, start + timedelta(days=days)))


def by_day(outcome):
    return {p.partition.value: (p.passed, p.detail) for p in outcome.partitions}


def test_volume_bounds_median_and_sudden_zero(con):
    outcome = volume.evaluate(con, scope(19, 3), VolumeCheck(type="volume", max_rows=400, max_change_pct=50))
    days = by_day(outcome)
    assert days[START + timedelta(days=19)] == (True, "100 rows")
    assert days[START + timedelta(days=20)] == (False, "0 rows, where the trailing median is 100")
    passed, detail = days[START + timedelta(days=21)]
    assert not passed and "500 rows > max_rows 400" in detail and "400% from the trailing median 100" in detail
    assert outcome.summary()["partitions_failed"] == 2


def test_distribution_bounds_and_sigma(con):
    check = DistributionCheck(
        type="distribution", column="amount", statistic="mean", max_sigma=3, trailing_partitions=7
    )
    days = by_day(distribution.evaluate(con, scope(15, 7), check))
    assert days[START + timedelta(days=15)][0]
    assert not days[START + timedelta(days=21)][0] and "sigma" in days[START + timedelta(days=21)][1]
    quantile = DistributionCheck(type="distribution", column="amount", statistic="quantile", quantile=0.5, max=10.5)
    assert distribution.evaluate(con, scope(0, 2), quantile).passed


def test_referential_orphans_per_partition(con):
    check = ReferentialCheck(type="referential", column="customer", references="customers.customer")
    outcome = referential.evaluate(con, scope(0, 2), check, Scope("marts.customers"), "customer")
    assert not outcome.passed and outcome.metadata["orphans"] == 40  # customers 40..49, twice a day each
    assert all("not in customers.customer" in p.detail for p in outcome.failed_partitions)


def test_custom_sql_places_failures_on_their_partitions(con):
    check = CustomSqlCheck(
        type="custom_sql", name="amount_not_99", sql="select day, id from {table} where {window} and amount = 99"
    )
    outcome = custom_sql.evaluate(con, scope(20, 2), check)
    assert by_day(outcome) == {
        START + timedelta(days=20): (True, "no failing rows"),
        START + timedelta(days=21): (False, "500 failing row(s)"),
    }
    assert len(outcome.metadata["sample_failing_rows"]) == 5


def test_schema_names_failing_partitions_with_sample_rows(con):
    ds = Dataset.model_validate(
        {
            "name": "sales",
            "layer": "mart",
            "select": "select 1",
            "partitioning": {"column": "day", "start": str(START)},
            "columns": [
                {"name": "id", "type": "BIGINT", "unique": True},
                {"name": "amount", "type": "DECIMAL(12,1)", "range": {"max": 50}},
                {"name": "customer", "type": "BIGINT", "accepted_values": list(range(45))},
            ],
        }
    )
    outcome = schema.evaluate(con, scope(0, 22), ds)
    assert not outcome.passed
    failed = {p.partition.value for p in outcome.failed_partitions}
    assert failed == {START + timedelta(days=i) for i in range(20)} | {START + timedelta(days=21)}
    rules = {r["rule"] for r in outcome.metadata["failing_rules"]}
    assert "accepted_values: customer" in rules and "range: amount" in rules and "unique: id" not in rules
    assert (
        outcome.metadata["sample_failing_rows"]
        and "accepted_values" in outcome.metadata["sample_failing_rows"][0]["violations"]
    )
    assert schema.evaluate(con, scope(20, 1), ds).passed  # the empty day breaks nothing


def test_schema_flags_a_changed_column_type(con):
    ds = Dataset.model_validate(
        {
            "name": "sales",
            "layer": "mart",
            "select": "select 1",
            "partitioning": {"column": "day", "start": str(START)},
            "columns": [{"name": "amount", "type": "DOUBLE"}],
        }
    )
    outcome = schema.evaluate(con, scope(0, 2), ds)
    assert not outcome.passed
    assert {p.detail for p in outcome.failed_partitions} == {
        "column types differ: amount is DECIMAL(12,1), declared DOUBLE"
    }
    assert any(r["rule"].startswith("dtype") for r in outcome.metadata["failing_rules"])


def test_freshness_policy_and_partition_freshness_check(monkeypatch, tmp_path, tpch_landing, instance):
    """A dataset that declares freshness gets a FreshnessPolicy and a partition-aware check."""
    from conftest import Platform, make_settings

    config = tmp_path / "assets_config"
    config.mkdir()
    start = (date.today() - timedelta(days=3)).isoformat()
    (config / "feed.yaml").write_text(
        "name: feed\nsource: {type: files, format: csv, path: 'feed/{date}.csv'}\n"
        f"partitioning: {{start: {start}}}\nfreshness: {{cron: '0 6 * * *', severity: error}}\n"
    )
    platform = Platform(make_settings(monkeypatch, tmp_path / "data", tpch_landing), instance, [config])
    key = dg.AssetKey(["raw", "feed"])
    assert platform.graph.get(key).freshness_policy is not None
    check_keys = {k.name for k in platform.graph.get_check_keys_for_assets({key})}
    assert any("freshness" in name for name in check_keys)
    [schedule] = [s for s in platform.defs.schedules if s.name.startswith("freshness_")]
    assert schedule.cron_schedule == "0 6 * * *" and schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    # nothing has been loaded: the check fails
    [freshness_key] = [k for k in platform.graph.get_check_keys_for_assets({key}) if "freshness" in k.name]
    job = platform.defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection={freshness_key}
    )
    result = job.execute_in_process(instance=instance, raise_on_error=False)
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR


def test_a_sql_derived_datasets_primary_key_is_checked(con):
    from strata.checks import keys

    spec = {
        "name": "sales",
        "layer": "mart",
        "select": "select 1",
        "partitioning": {"column": "day", "start": str(START)},
    }
    unique = keys.evaluate(con, scope(0, 3), Dataset.model_validate({**spec, "primary_key": ["id"]}))
    assert unique.passed
    repeated = keys.evaluate(con, scope(0, 3), Dataset.model_validate({**spec, "primary_key": ["customer"]}))
    assert not repeated.passed
    assert all(p.detail.startswith("50 row(s) repeat or lack the key, e.g. ") for p in repeated.failed_partitions)
    assert len(repeated.failed_partitions) == 3


def test_a_referenced_table_not_built_yet_fails_the_check_saying_so(con):
    check = ReferentialCheck(type="referential", column="customer", references="customers.customer")
    outcome = referential.evaluate(con, scope(0, 2), check, Scope("raw.customers"), "customer")
    assert not outcome.passed and len(outcome.failed_partitions) == 2
    assert outcome.failed_partitions[0].detail == (
        "customers.customer cannot be checked: raw.customers is not built yet (materialize it first)"
    )


def test_results_kept_from_the_earlier_layout_are_replaced_by_the_next_result(tmp_path):
    """A results table from before partitions were instants is migrated; a failure kept from it (its span
    guessed) stops blocking once a passing result for the partition it overlaps is recorded."""
    from datetime import datetime

    from strata.checks import CheckOutcome, PartitionResult, results

    with duckdb.connect(str(tmp_path / "old.duckdb")) as c:
        c.execute("create schema quality")
        c.execute(
            "create table quality.check_results (asset varchar, check_name varchar, partition_date date, "
            "passed boolean, severity varchar, blocking boolean, detail varchar, run_id varchar, "
            "evaluated_at timestamptz, partition_start timestamp)"
        )
        c.execute(
            "insert into quality.check_results values ('raw/bills', 'schema', date '2024-05-01', false, 'error', "
            "true, 'bad', 'r0', now(), timestamp '2024-05-01 00:00:00')"
        )
        may = PartitionWindow.from_dates("monthly", "UTC", date(2024, 5, 1), date(2024, 6, 1))
        assert list(results.blocked_partitions(c, ["raw/bills"], may)) == list(may.partitions)
        passed = CheckOutcome("schema", "error", [PartitionResult(may.partitions[0], True, "valid")])
        results.record(c, "raw/bills", [passed], "r1")
        assert results.blocked_partitions(c, ["raw/bills"], may) == {}
        assert c.execute("select count(*) from quality.check_results").fetchall() == [(1,)]
        assert isinstance(c.execute("select partition_start from quality.check_results").fetchall()[0][0], datetime)
