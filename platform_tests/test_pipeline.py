"""Raw -> staging -> marts through Dagster: one partition, a range in one run, re-runs, blocking tests.

Every test runs on both warehouse backends: a DuckDB file and a DuckLake.
"""

from __future__ import annotations

import shutil
from datetime import date

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import Platform, daily_file, landing_rows, on_both_backends, seeded_settings

from strata import warehouse
from strata.settings import ASSETS_CONFIG_DIR
from strata.sources import VOLATILE_LOAD_COLUMNS

DAY = "1995-03-15"
FCT = dg.AssetKey(["marts", "fct_order_lines"])
MART = dg.AssetKey(["marts", "mart_revenue_daily"])

pytestmark = on_both_backends


def expected_revenue(landing, start: str, end: str) -> list[tuple]:
    """mart_revenue_daily recomputed from the landing files with bare DuckDB."""
    root = landing / "tpch"
    return landing_rows(
        landing,
        f"""select o_orderdate, sum(l_extendedprice * (1 - l_discount)), count(distinct o_orderkey),
                   count(distinct o_custkey), count(*)
            from '{root}/lineitem/*.parquet' join '{root}/orders/*.parquet' on l_orderkey = o_orderkey
            where o_orderdate >= date '{start}' and o_orderdate < date '{end}' group by 1 order by 1""",
    )


def fingerprints(platform) -> dict[str, tuple[int, int]]:
    tables = [
        "raw.tpch_orders",
        "raw.tpch_lineitem",
        "staging.stg_tpch__orders",
        "staging.stg_tpch__lineitem",
        "marts.fct_order_lines",
        "marts.mart_revenue_daily",
        "marts.dim_customer",
    ]
    with warehouse.connect(platform.settings.warehouse, read_only=True) as con:
        return {t: warehouse.fingerprint(con, t, exclude=VOLATILE_LOAD_COLUMNS) for t in tables}


def test_one_partition_raw_to_marts(platform):
    platform.load_snapshots()  # a fresh warehouse: the dimensions first, then the day
    result = platform.materialize(platform.keys(partitioned=True), partition=DAY)
    assert result.success

    landing = platform.settings.landing_dir
    (orders_today,) = landing_rows(landing, f"select count(*) from '{daily_file(landing, 'orders', DAY)}'")[0]
    assert orders_today > 0
    assert platform.query("select count(*), min(_partition_date), max(_partition_date) from raw.tpch_orders") == [
        (orders_today, date(1995, 3, 15), date(1995, 3, 15))
    ]
    revenue = platform.query(
        "select order_date, revenue, order_count, customer_count, line_count from marts.mart_revenue_daily"
    )
    assert revenue == expected_revenue(landing, DAY, "1995-03-16")
    # raw keeps the source columns verbatim plus the load columns
    cols = [
        c
        for c, _ in platform.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'tpch_orders' order by ordinal_position"
        )
    ]
    assert cols == [
        "o_orderkey",
        "o_custkey",
        "o_orderstatus",
        "o_totalprice",
        "o_orderdate",
        "o_orderpriority",
        "o_clerk",
        "o_shippriority",
        "o_comment",
        "_source_file",
        "_partition_date",
        "_loaded_at",
        "_run_id",
    ]
    assert platform.query("select distinct _source_file, _run_id from raw.tpch_orders") == [
        (f"tpch/orders/orders_{DAY}.parquet", result.run_id)
    ]
    # every dbt test of the partition ran and passed
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) >= 20 and all(e.passed for e in evaluations)


def test_range_runs_in_one_run_with_one_dbt_invocation(seeded):
    platform = seeded
    result = platform.materialize(platform.keys(partitioned=True), start="1994-01-01", end="1994-01-31")
    assert result.success
    # one materialization per partition and asset, each with that partition's row count, and the
    # table's total as the UI's "Row count"
    mats = [e.materialization for e in result.get_asset_materialization_events()]
    fct = {m.partition: m.metadata["rows_in_partition"].value for m in mats if m.asset_key == FCT}
    total = platform.query("select count(*) from marts.fct_order_lines")[0][0]
    assert {m.metadata["dagster/row_count"].value for m in mats if m.asset_key == FCT} == {total}
    assert len(fct) == 31
    per_day = dict(
        platform.query(
            "select order_date::varchar, count(*) from marts.fct_order_lines "
            "where order_date between date '1994-01-01' and date '1994-01-31' group by 1"
        )
    )
    assert fct == {day: per_day.get(day, 0) for day in fct}
    raw = {
        m.partition: m.metadata["rows_in_partition"].value
        for m in mats
        if m.asset_key == dg.AssetKey(["raw", "tpch_orders"])
    }
    assert (
        sum(raw.values())
        == platform.query(
            "select count(*) from raw.tpch_orders where _partition_date between date '1994-01-01' and date '1994-01-31'"
        )[0][0]
    )
    # the whole window went to dbt once, as half-open vars
    dbt_commands = [
        e.user_message
        for e in platform.instance.all_logs(result.run_id)
        if e.step_key == "dbt_incremental" and e.user_message.startswith("Finished dbt command")
    ]
    assert len(dbt_commands) == 1
    assert '"window_start": "1994-01-01", "window_end": "1994-02-01"' in dbt_commands[0]
    got = platform.query(
        "select order_date, revenue, order_count, customer_count, line_count "
        "from marts.mart_revenue_daily where year(order_date) = 1994 order by 1"
    )
    assert got == expected_revenue(platform.settings.landing_dir, "1994-01-01", "1994-02-01")


def test_rerun_is_idempotent(seeded):
    platform = seeded
    selection = platform.keys(partitioned=True)
    assert platform.materialize(selection, start="1993-05-01", end="1993-05-03").success
    first = fingerprints(platform)
    assert first["marts.fct_order_lines"][0] > 0
    # the same range again, then one partition of it again, then the snapshots again
    assert platform.materialize(selection, start="1993-05-01", end="1993-05-03").success
    assert platform.materialize(selection, partition="1993-05-02").success
    platform.load_snapshots()
    assert fingerprints(platform) == first


def test_a_new_range_leaves_other_partitions_alone(seeded):
    """The seeded January 1995 is untouched by a run of the adjacent days (half-open windows)."""
    platform = seeded
    january = "select * from {} where order_date < date '1995-02-01' order by all"
    before = {t: platform.query(january.format(t)) for t in ("marts.fct_order_lines", "marts.mart_revenue_daily")}
    assert platform.materialize(platform.keys(partitioned=True), start="1995-02-01", end="1995-02-02").success
    assert {t: platform.query(january.format(t)) for t in before} == before
    assert platform.query("select count(*) from marts.mart_revenue_daily where order_date >= date '1995-02-01'") == [
        (2,)
    ]


def test_failing_error_test_blocks_the_marts(request, monkeypatch, tmp_path, landing_copy, instance, backend):
    """A dbt test at error severity fails: dbt skips what is downstream, the marts keep their numbers.

    The raw contract is relaxed (o_custkey nullable) so that the null reaches staging, where
    stg_tpch__orders' not_null test catches it.
    """
    config = tmp_path / "assets_config"
    shutil.copytree(ASSETS_CONFIG_DIR, config)
    orders_yaml = config / "tpch" / "orders.yaml"
    orders_yaml.write_text(
        orders_yaml.read_text().replace(
            "{name: o_custkey, type: BIGINT, nullable: false}", "{name: o_custkey, type: BIGINT}"
        )
    )
    settings = seeded_settings(request, monkeypatch, tmp_path, landing_copy)
    platform = Platform(settings, instance, [config])
    selection = platform.keys(partitioned=True)
    assert platform.materialize(selection, partition=DAY).success
    mart_before = platform.query("select * from marts.mart_revenue_daily")
    fct_before = platform.query("select count(*) from marts.fct_order_lines")

    # a new drop of that day where one order has no customer
    path = daily_file(platform.settings.landing_dir, "orders", DAY)
    table = pq.read_table(path)
    custkeys = table.column("o_custkey").to_pylist()
    custkeys[0] = None
    table = table.set_column(
        table.schema.get_field_index("o_custkey"),
        "o_custkey",
        pa.array(custkeys, table.schema.field("o_custkey").type),
    )
    pq.write_table(table, path)

    result = platform.materialize(selection, partition=DAY, raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["not_null_stg_tpch__orders_customer_key"]
    # the step's failure names the test, its model, the failing rows and the window, in plain text
    [failure] = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "staging/stg_tpch__orders not_null_stg_tpch__orders_customer_key: 1 failing row(s)" in message
    assert f"failing row(s) in {DAY}\n" in message and "\x1b[" not in message
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert FCT not in materialized and MART not in materialized
    # the marts still hold the previous, good numbers
    assert platform.query("select * from marts.mart_revenue_daily") == mart_before
    assert platform.query("select count(*) from marts.fct_order_lines") == fct_before


def test_a_window_builds_on_a_warehouse_where_another_window_failed(seeded):
    """A half-built window elsewhere (line items without their orders, as a failed backfill leaves
    them) does not fail the tests of the window being built: a partitioned test judges only its
    window, on both sides of a relationship whose parent is partitioned the same way."""
    platform = seeded
    # January's orders half gone
    platform.execute(
        "delete from staging.stg_tpch__orders where order_date between date '1995-01-10' and date '1995-01-20'"
    )
    result = platform.materialize(platform.keys(partitioned=True), start="1995-02-01", end="1995-02-07")
    failed = [
        f"{e.asset_key.to_user_string()} {e.check_name}" for e in result.get_asset_check_evaluations() if not e.passed
    ]
    assert result.success, failed
    # ... and the test still catches orphans in the window it judges: line items whose orders are gone
    platform.execute("delete from raw.tpch_orders where _partition_date = date '1995-01-15'")
    staging = [k for k in platform.keys(partitioned=True) if k.path[0] == "staging"]
    broken = platform.materialize(staging, partition="1995-01-15", raise_on_error=False)
    assert not broken.success
    failed = {e.check_name for e in broken.get_asset_check_evaluations() if not e.passed}
    assert any(name.startswith("relationships_in_window_stg_tpch__lineitem_order_key") for name in failed), failed
