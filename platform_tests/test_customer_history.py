"""The demo's customer history through Dagster: daily snapshots -> SCD Type 2 -> point-in-time facts.

``strata demo generate`` seeds changes of market segment and balance into the last 28 days'
customer snapshots; ``fct_order_lines.customer_market_segment_at_order`` must be the segment the
snapshot of the order date shows, and the snapshots loaded again must change nothing.
"""

from __future__ import annotations

import dagster as dg

from strata import warehouse
from strata.demo.tpch import customer_snapshot_days

HISTORY_DAYS = (customer_snapshot_days()[0].isoformat(), customer_snapshot_days()[-1].isoformat())


def test_facts_join_the_customer_version_of_their_order_date(seeded):
    start, end = HISTORY_DAYS
    assert seeded.materialize(seeded.keys(partitioned=True), start=start, end=end).success

    # every version of a changed customer starts where the previous one ends
    changed = seeded.query(
        "select count(*) from (select c_custkey from raw.tpch_customer_snapshots group by 1 "
        "having count(distinct (c_mktsegment, c_acctbal)) > 1)"
    )[0][0]
    versions = seeded.query(
        "select customer_key, version, valid_from, valid_to, is_current from marts.dim_customer_history "
        "where customer_key in (select customer_key from marts.dim_customer_history where version = 2) "
        "order by 1, 2"
    )
    assert changed > 0 and len(versions) == 2 * changed
    for first, second in zip(versions[::2], versions[1::2], strict=True):
        assert first[0] == second[0] and (first[1], second[1]) == (1, 2)
        assert first[3] == second[2] and not first[4] and second[4] and second[3] is None

    # the facts of the history's days: the segment of the order date's snapshot, row for row
    assert seeded.query(
        "select count(*) from marts.fct_order_lines f join raw.tpch_customer_snapshots s "
        "on s.c_custkey = f.customer_key and s.snapshot_date = f.order_date "
        "where f.customer_market_segment_at_order is distinct from s.c_mktsegment"
    ) == [(0,)]
    in_history = seeded.query(
        "select count(*), count(*) filter (where f.customer_market_segment_at_order <> c.market_segment), "
        "count(*) filter (where h.version = 2 and f.customer_market_segment_at_order = c.market_segment) "
        "from marts.fct_order_lines f join marts.dim_customer c using (customer_key) "
        "left join marts.dim_customer_history h on h.customer_key = f.customer_key and h.version = 2 "
        "and f.order_date >= h.valid_from and h.market_segment <> (select market_segment from "
        "marts.dim_customer_history v where v.customer_key = h.customer_key and v.version = 1) "
        f"where f.order_date >= '{start}'"
    )[0]
    # before its change a customer's orders show the old segment, after it the new (current) one
    assert in_history[0] > 0 and in_history[1] > 0 and in_history[2] > 0, in_history
    # orders before the history starts take the first version
    assert (
        seeded.query(
            "select count(*), count(*) filter (where f.customer_market_segment_at_order = h.market_segment) "
            "from marts.fct_order_lines f join marts.dim_customer_history h on h.customer_key = f.customer_key "
            f"and h.version = 1 where f.order_date < '{start}'"
        )[0]
        == (seeded.query(f"select count(*) from marts.fct_order_lines where order_date < '{start}'")[0][0],) * 2
    )

    # the snapshots loaded again: the same history
    with warehouse.connect(seeded.settings.warehouse, read_only=True) as con:
        before = warehouse.fingerprint(con, "marts.dim_customer_history")
    keys = [
        dg.AssetKey(["raw", "tpch_customer_snapshots"]),
        dg.AssetKey(["staging", "tpch_customer_snapshots_history"]),
    ]
    assert seeded.materialize([*keys, dg.AssetKey(["marts", "dim_customer_history"])]).success
    with warehouse.connect(seeded.settings.warehouse, read_only=True) as con:
        assert warehouse.fingerprint(con, "marts.dim_customer_history") == before
