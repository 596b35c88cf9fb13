"""What only the DuckLake backend has: verify on a lake, a pinned published snapshot, conflict retries, maintenance.

A real PostgreSQL catalog, Parquet data, real dbt and Dagster.
"""

from __future__ import annotations

from datetime import date

import pytest
from conftest import SEEDED_WINDOW, new_lake_catalog

from strata.partition_window import PartitionWindow
from strata.reconcile.tpch import tpch_datasets, verify

#: The ``platform`` and ``seeded`` fixtures give a lake.
on_the_lake = pytest.mark.parametrize("backend", ["ducklake"], indirect=True)


def _revenue(platform, table: str) -> tuple:
    return platform.query(f"select count(*), sum(revenue) from {table}")[0]


@on_the_lake
def test_the_lake_verifies_and_its_published_layer_is_a_pinned_snapshot(seeded):
    """``strata verify`` is clean on the lake; the published layer is pinned to a snapshot.

    Readers of ``published.*`` see the last publish throughout a backfill, then the new numbers.
    On the lake the published layer is views at a snapshot (time travel), not copies. (The
    pipeline itself runs on the lake in ``test_pipeline.py``, parametrised on both backends.)
    """
    platform = seeded  # the seeded lake: snapshots and January 1995
    # the tables are in the lake (DuckLake's catalog and Parquet files), not in a DuckDB file
    assert not platform.settings.warehouse_path.exists()
    assert platform.query("select count(*) from ducklake_table_info('lake') where table_name = 'fct_order_lines'") == [
        (1,)
    ]
    start, end = (date.fromisoformat(d) for d in SEEDED_WINDOW)
    report = verify(
        tpch_datasets(),
        platform.settings.landing_dir,
        platform.settings.warehouse,
        PartitionWindow.from_dates("daily", "UTC", start, end),
    )
    assert report.ok, report.mismatches

    marts = [k for k in platform.keys(partitioned=True) if k.path[0] in ("raw", "staging", "marts")]
    published = [k for k in platform.keys(partitioned=False) if k.path[0] == "published"]
    assert platform.materialize(published).success
    before = _revenue(platform, "published.mart_revenue_daily")
    assert before == _revenue(platform, "marts.mart_revenue_daily") and before[0] == 31
    (kind,) = platform.query(
        "select table_type from information_schema.tables where table_schema = 'published' "
        "and table_name = 'mart_revenue_daily'"
    )[0]
    assert kind == "VIEW"  # zero-copy: a view at a snapshot

    # the backfill writes the marts; readers of the published layer see none of it
    assert platform.materialize(marts, start="1995-02-01", end="1995-02-05").success
    assert _revenue(platform, "marts.mart_revenue_daily")[0] == 36
    assert _revenue(platform, "published.mart_revenue_daily") == before

    assert platform.materialize(published).success
    assert _revenue(platform, "published.mart_revenue_daily") == _revenue(platform, "marts.mart_revenue_daily")
    (snapshot,) = platform.query("select snapshot_id from published._published_snapshot")[0]
    assert snapshot < platform.query("select id from ducklake_current_snapshot('lake')")[0][0]


def test_a_transaction_that_loses_a_write_conflict_is_run_again(postgres, tmp_path):
    """A delete that races another writer's insert on one table fails at commit; the whole
    idempotent function runs again and the table ends as if the writers had taken turns."""
    from strata import warehouse
    from strata.settings import LakeLocation

    lake = LakeLocation(catalog=new_lake_catalog(postgres), data_path=str(tmp_path / "lake") + "/")
    with warehouse.connect(lake) as con:
        con.execute("create schema raw; create table raw.t as select range::bigint as day, 1 as n from range(3)")
    attempts = []

    @warehouse.retrying_conflicts("replacing day 1")
    def replace_day_one(con) -> None:
        attempts.append(1)
        with warehouse.transaction(con):
            warehouse.delete_where(con, "raw.t", "day = ?", [1])
            warehouse.insert_by_name(con, "raw.t", "select 1::bigint as day, 2 as n")
            if len(attempts) == 1:  # another writer commits an insert into the table meanwhile
                with warehouse.connect(lake) as other:
                    other.execute("insert into raw.t values (7, 1)")

    with warehouse.connect(lake) as con:
        replace_day_one(con)
        rows = con.execute("select day, n from raw.t order by day").fetchall()
    assert len(attempts) == 2  # the first commit lost the conflict, the second won
    assert rows == [(0, 1), (1, 2), (2, 1), (7, 1)]


def test_maintenance_merges_files_expires_snapshots_and_keeps_the_published_one(postgres, tmp_path):
    from strata import warehouse
    from strata.settings import LakeLocation

    lake = LakeLocation(catalog=new_lake_catalog(postgres), data_path=str(tmp_path / "lake") + "/")
    with warehouse.connect(lake) as con:
        con.execute("call lake.set_option('data_inlining_row_limit', 0)")  # every insert a Parquet file
        con.execute("create schema marts; create table marts.m (day bigint, n bigint)")
        for day in range(5):  # one small file per daily write
            con.execute("insert into marts.m select ?, range from range(1000)", [day])
        assert warehouse.publish(con, "published", {"m": "marts.m"}) == {"m": 5000}
        con.execute("insert into marts.m select 9, range from range(1000)")
        before = con.execute("select count(*) from lake.snapshots()").fetchall()[0][0]
        done = warehouse.maintain(con, "0 seconds", "published")
        assert done["files_merged"] > 0 and done["snapshots_expired"] > 0
        assert con.execute("select count(*) from lake.snapshots()").fetchall()[0][0] < before
        # the published snapshot survives: readers of the published layer still see 5,000 rows
        assert con.execute("select count(*) from published.m").fetchall() == [(5000,)]
        assert con.execute("select count(*) from marts.m").fetchall() == [(6000,)]
