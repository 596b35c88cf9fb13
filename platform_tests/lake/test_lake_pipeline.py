"""The pipeline on the DuckLake backend: a real PostgreSQL catalog, Parquet data, real dbt and Dagster."""

from __future__ import annotations

from datetime import date, timedelta

from conftest import SEEDED_KEYS, landing_rows

from strata.reconcile.tpch import tpch_datasets, verify
from strata.sources import DateWindow

DAY = "1995-03-15"


def test_a_range_runs_raw_to_marts_on_the_lake_and_verify_is_clean(lake_platform):
    platform = lake_platform
    platform.load_snapshots()
    start, end = SEEDED_KEYS
    assert platform.materialize(platform.keys(partitioned=True), start=start, end=end).success

    landing = platform.settings.landing_dir
    (orders,) = landing_rows(
        landing,
        f"select count(*) from '{landing}/tpch/orders/*.parquet' where o_orderdate between '{start}' and '{end}'",
    )[0]
    assert platform.query("select count(*) from raw.tpch_orders") == [(orders,)]
    # the tables are in the lake (DuckLake's catalog), not in a DuckDB file
    assert not platform.settings.warehouse_path.exists()
    assert platform.query("select count(*) from ducklake_table_info('lake') where table_name = 'fct_order_lines'") == [
        (1,)
    ]
    window = DateWindow(date.fromisoformat(start), date.fromisoformat(end) + timedelta(days=1))
    report = verify(tpch_datasets(), landing, platform.settings.warehouse, window)
    assert report.ok, report.mismatches


def _revenue(platform, table: str) -> tuple:
    return platform.query(f"select count(*), sum(revenue) from {table}")[0]


def test_published_marts_are_a_pinned_snapshot_until_the_next_publish(lake_platform):
    """Readers of ``published.*`` see the last publish throughout a backfill, then the new numbers.

    On the lake the published layer is views at a snapshot (time travel), not copies.
    """
    platform = lake_platform
    platform.load_snapshots()
    marts = [k for k in platform.keys(partitioned=True) if k.path[0] in ("raw", "staging", "marts")]
    published = [k for k in platform.keys(partitioned=False) if k.path[0] == "published"]
    assert platform.materialize(marts, start="1995-01-01", end="1995-01-10").success
    assert platform.materialize(published).success
    before = _revenue(platform, "published.mart_revenue_daily")
    assert before == _revenue(platform, "marts.mart_revenue_daily") and before[0] == 10
    (kind,) = platform.query(
        "select table_type from information_schema.tables where table_schema = 'published' "
        "and table_name = 'mart_revenue_daily'"
    )[0]
    assert kind == "VIEW"  # zero-copy: a view at a snapshot

    # the backfill writes the marts; readers of the published layer see none of it
    assert platform.materialize(marts, start="1995-01-11", end="1995-01-20").success
    assert _revenue(platform, "marts.mart_revenue_daily")[0] == 20
    assert _revenue(platform, "published.mart_revenue_daily") == before

    assert platform.materialize(published).success
    assert _revenue(platform, "published.mart_revenue_daily") == _revenue(platform, "marts.mart_revenue_daily")
    (snapshot,) = platform.query("select snapshot_id from published._published_snapshot")[0]
    assert snapshot < platform.query("select id from ducklake_current_snapshot('lake')")[0][0]
