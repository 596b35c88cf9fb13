"""Real size: the first load of a window past one DuckDB row group, into a fresh warehouse.

DuckDB 2.0.0 answered a filtered ``GROUP BY`` over a table created empty and filled in the same
load with no rows once the data spanned more than one row group (122,880 rows): every
``row_accounting`` and ``reconciliation`` partition failed with ``loaded 0``, while the table
held every row. Toy-size tests (SF 0.01, short windows) never fill a row group, so this one loads
the whole history of SF 0.1 (150,000 orders, ~600,000 line items) in one run, through Dagster and
the real loader, and compares every partition with the landing files.
"""

from __future__ import annotations

import dagster as dg
import pytest
from conftest import ROW_GROUP_ROWS, Platform, fresh_settings, landing_rows, on_both_backends

from strata.demo.tpch import FIRST_ORDER_DATE, LAST_ORDER_DATE

ORDERS, LINEITEM = dg.AssetKey(["raw", "tpch_orders"]), dg.AssetKey(["raw", "tpch_lineitem"])


@pytest.fixture
def real_size(request, monkeypatch, tmp_path, tpch_landing_real_size, instance, backend) -> Platform:
    """Strata over the SF 0.1 landing zone, with a fresh warehouse of the test's backend."""
    return Platform(fresh_settings(request, monkeypatch, tmp_path / "data", tpch_landing_real_size), instance)


def _landing_counts(landing, table: str) -> dict:
    """Rows per landing file's day, from the Parquet footers (independent of any load)."""
    rows = landing_rows(
        landing,
        f"select regexp_extract(file_name, '(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1)::date, num_rows "
        f"from parquet_file_metadata('{landing}/tpch/{table}/*.parquet')",
    )
    counts: dict = {}
    for day, n in rows:
        counts[day] = counts.get(day, 0) + n
    return counts


@on_both_backends
def test_first_load_past_a_row_group_accounts_for_every_row(real_size):
    """A fresh warehouse, the whole history of orders and line items in one run: every check passes.

    On the lake too: its load writes Parquet files through DuckLake, another write path past a
    row group.
    """
    raw_snapshots = [k for k in real_size.keys(partitioned=False) if k.path[0] == "raw"]  # customer and its nations
    assert real_size.materialize(raw_snapshots).success
    result = real_size.materialize(
        [ORDERS, LINEITEM], start=FIRST_ORDER_DATE.isoformat(), end=LAST_ORDER_DATE.isoformat(), raise_on_error=False
    )
    evaluations = result.get_asset_check_evaluations()
    failed = [f"{e.asset_key.to_user_string()}:{e.check_name}: {e.description}" for e in evaluations if not e.passed]
    assert result.success, failed
    by_check = {(e.asset_key, e.check_name): e for e in evaluations}
    for key in (ORDERS, LINEITEM):
        for check in ("row_accounting", "reconciliation"):
            assert by_check[(key, check)].passed, (key, check)

    landing = real_size.settings.landing_dir
    for table in ("orders", "lineitem"):
        expected = {d: n for d, n in _landing_counts(landing, table).items() if n}
        assert sum(expected.values()) > ROW_GROUP_ROWS  # the point of the test
        loaded = dict(real_size.query(f"select _partition_date, count(*) from raw.tpch_{table} group by 1"))
        assert loaded == expected
        # the per-partition row counts the UI shows come from the same grouped count
        counts = {
            m.partition: m.metadata["rows_in_partition"].value
            for m in (ev.materialization for ev in result.get_asset_materialization_events())
            if m.asset_key == dg.AssetKey(["raw", f"tpch_{table}"])
        }
        assert {d: n for d, n in counts.items() if n} == {d.isoformat(): n for d, n in expected.items()}
    assert real_size.query("select count(*) from quarantine.tpch_orders") == [(0,)]
