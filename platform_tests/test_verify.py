"""strata verify: recompute from the landing files, compare, exit 1 on any mismatch."""

from __future__ import annotations

import os
import subprocess

import duckdb
import pytest
from conftest import BIN, SEEDED_WINDOW

WINDOW = ["--start", SEEDED_WINDOW[0], "--end", SEEDED_WINDOW[1]]


def run_verify(platform, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "strata"), "verify", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )


@pytest.fixture
def january_1995(seeded):
    return seeded


def test_verify_passes_on_what_was_loaded(january_1995):
    out = run_verify(january_1995, *WINDOW)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 mismatches" in out.stdout and "MISMATCH" not in out.stdout


def test_verify_fails_on_a_tampered_mart_row(january_1995):
    with duckdb.connect(str(january_1995.settings.warehouse_path)) as con:
        con.execute("update marts.mart_revenue_daily set revenue = revenue + 0.01 where order_date = date '1995-01-17'")
    out = run_verify(january_1995, *WINDOW)
    assert out.returncode == 1
    assert "MISMATCH revenue_per_day [1995-01-17]" in out.stdout


def test_verify_fails_on_a_dropped_fact_row(january_1995):
    with duckdb.connect(str(january_1995.settings.warehouse_path)) as con:
        con.execute(
            "delete from marts.fct_order_lines where order_key = "
            "(select min(order_key) from marts.fct_order_lines where ship_date > date '1995-03-15')"
        )
    out = run_verify(january_1995, *WINDOW)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert any(line.startswith("MISMATCH rows:marts.fct_order_lines") for line in lines)
    assert any(line.startswith("MISMATCH tpch_q1") for line in lines)


def test_verify_over_everything_reports_unloaded_partitions(january_1995):
    out = run_verify(january_1995)
    assert out.returncode == 1 and "MISMATCH rows:raw.tpch_orders" in out.stdout


def test_official_sf1_answers_are_checked_when_the_source_is_sf1(january_1995):
    """At SF 1 verify also compares with TPC-H's official answers; here (SF 0.01) they must differ."""
    from strata.reconcile.tpch import tpch_datasets, verify

    settings = january_1995.settings
    report = verify(tpch_datasets(), settings.landing_dir, settings.warehouse_path, None, scale_factor=1)
    assert {"tpch_q1:official_sf1", "tpch_q6:official_sf1"} <= set(report.checks)
    assert any(m.check == "tpch_q6:official_sf1" for m in report.mismatches)
    plain = verify(tpch_datasets(), settings.landing_dir, settings.warehouse_path, None, scale_factor=0.01)
    assert not any(c.endswith("official_sf1") for c in plain.checks)


@pytest.mark.parametrize(
    ("table", "column", "key"),
    [
        ("raw.tpch_lineitem", "l_extendedprice", "_partition_date"),
        ("raw.tpch_orders", "o_custkey", "_partition_date"),
        ("staging.stg_tpch__lineitem", "extended_price", "order_date"),
        ("marts.fct_order_lines", "ship_mode", "order_date"),
    ],
)
def test_verify_sees_a_changed_value_and_names_the_day_and_column(january_1995, table, column, key):
    """A changed value with unchanged counts: the per-partition fingerprint names the first day and column."""
    value = "'TRUCK_'" if column == "ship_mode" else f"{column} + 1"
    with duckdb.connect(str(january_1995.settings.warehouse_path)) as con:
        con.execute(
            f"update {table} set {column} = {value} where rowid = "
            f"(select min(rowid) from {table} where {key} = date '1995-01-17')"
        )
    out = run_verify(january_1995, *WINDOW)
    assert out.returncode == 1
    assert f"MISMATCH values:{table} [first differing day 1995-01-17, 1 day(s) in all]" in out.stdout
    assert f"different {column}" in out.stdout


def test_verify_waits_for_a_writer_and_says_so(january_1995):
    """A run holding the warehouse for a moment makes verify wait (and say so), not fail."""
    import threading
    import time

    con = duckdb.connect(str(january_1995.settings.warehouse_path))  # a writer holds the file
    threading.Timer(4, con.close).start()
    started = time.monotonic()
    out = run_verify(january_1995, *WINDOW)
    assert out.returncode == 0, out.stdout + out.stderr
    assert time.monotonic() - started >= 4
    assert "waiting for the warehouse lock to read" in out.stderr
