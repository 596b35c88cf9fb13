"""strata demo generate: TPC-H laid out as daily drops plus snapshots, idempotently."""

from __future__ import annotations

import json

from conftest import TEST_SCALE_FACTOR, daily_file, landing_rows

from strata.demo.tpch import SNAPSHOT_TABLES, generate, order_dates


def test_one_file_per_order_date_and_table(tpch_landing):
    days = order_dates()
    assert len(days) == 2406 and days[0].isoformat() == "1992-01-01" and days[-1].isoformat() == "1998-08-02"
    for table in ("orders", "lineitem"):
        files = sorted((tpch_landing / "tpch" / table).glob("*.parquet"))
        assert [f.name for f in files] == [f"{table}_{d.isoformat()}.parquet" for d in days]
    for table in SNAPSHOT_TABLES:
        assert (tpch_landing / "tpch" / table / f"{table}.parquet").is_file()


def test_every_row_lands_once_and_line_items_follow_their_order_date(tpch_landing):
    root = tpch_landing / "tpch"
    # TPC-H SF 0.01: 15,000 orders and 60,175 line items (tpchgen-cli / dbgen)
    (orders,) = landing_rows(tpch_landing, f"select count(*) from '{root}/orders/*.parquet'")[0]
    (lines,) = landing_rows(tpch_landing, f"select count(*) from '{root}/lineitem/*.parquet'")[0]
    assert (orders, lines) == (15_000, 60_175)
    misplaced = landing_rows(
        tpch_landing,
        f"""select count(*) from read_parquet('{root}/lineitem/*.parquet', filename = true) l
            join read_parquet('{root}/orders/*.parquet') o on l.l_orderkey = o.o_orderkey
            where l.filename not like '%lineitem_' || strftime(o.o_orderdate, '%Y-%m-%d') || '.parquet'""",
    )
    assert misplaced == [(0,)]
    wrong_day = landing_rows(
        tpch_landing,
        f"""select count(*) from read_parquet('{root}/orders/*.parquet', filename = true)
            where filename not like '%orders_' || strftime(o_orderdate, '%Y-%m-%d') || '.parquet'""",
    )
    assert wrong_day == [(0,)]


def test_days_without_orders_get_an_empty_file_with_the_schema(tpch_landing):
    root = tpch_landing / "tpch" / "orders"
    counts = dict(
        landing_rows(
            tpch_landing,
            f"select o_orderdate, count(*) from '{root}/*.parquet' group by 1",
        )
    )
    empty = [d for d in order_dates() if d not in counts]
    assert empty, "SF 0.01 has days without orders"
    cols = landing_rows(tpch_landing, f"describe select * from '{daily_file(tpch_landing, 'orders', empty[0])}'")
    assert [c[0] for c in cols][:2] == ["o_orderkey", "o_custkey"]


def test_generate_is_idempotent(tpch_landing):
    manifest = json.loads((tpch_landing / "tpch" / "_manifest.json").read_text())
    assert manifest["scale_factor"] == TEST_SCALE_FACTOR and manifest["files"] == 2 * 2406 + 6 + 28
    before = {p: p.stat().st_mtime_ns for p in (tpch_landing / "tpch" / "orders").iterdir()}
    again = generate(tpch_landing, TEST_SCALE_FACTOR)
    assert not again.generated and again.files == manifest["files"]
    after = {p: p.stat().st_mtime_ns for p in (tpch_landing / "tpch" / "orders").iterdir()}
    assert before == after


def test_force_regenerates_the_same_rows(tmp_path):
    first = generate(tmp_path, 0.001)
    sql = f"select count(*), sum(hash(columns(*))::hugeint) from '{first.root}/lineitem/*.parquet'"
    before = landing_rows(tmp_path, sql)
    second = generate(tmp_path, 0.001, force=True)
    assert second.generated and landing_rows(tmp_path, sql) == before
    assert not list(tmp_path.glob(".tpch-*")), "the temporary build folder is removed"


def test_customer_snapshots_change_a_seeded_few_and_end_on_tpch_customer(tpch_landing):
    """The last snapshot is TPC-H's customer table; earlier ones differ for about 3% of customers."""
    from strata.demo.tpch import customer_snapshot_days, customer_snapshot_file, snapshot_file

    root = tpch_landing / "tpch"
    days = customer_snapshot_days()
    assert len(days) == 28 and days[-1] == order_dates()[-1]
    tpch = f"read_parquet('{snapshot_file(root, 'customer')}')"
    first, last = (
        f"read_parquet('{customer_snapshot_file(root, d)}', hive_partitioning = false)" for d in (days[0], days[-1])
    )
    assert landing_rows(
        tpch_landing, f"select count(*) from (select * from {last} except all select * from {tpch})"
    ) == [(0,)]
    changed, customers = landing_rows(
        tpch_landing,
        f"select (select count(*) from (select * from {first} except all select * from {tpch})), count(*) from {tpch}",
    )[0]
    assert 0.01 * customers < changed < 0.05 * customers
    # only the tracked columns differ
    assert landing_rows(
        tpch_landing,
        f"select count(*) from (select * exclude (c_mktsegment, c_acctbal) from {first} "
        f"except all select * exclude (c_mktsegment, c_acctbal) from {tpch})",
    ) == [(0,)]
