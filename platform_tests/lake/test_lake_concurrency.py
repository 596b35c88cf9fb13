"""Concurrent writers on the lake: four runs at once, the same day twice, a writer killed mid-write.

Each run is its own process (``run_range.py``) on one Dagster instance in PostgreSQL (the
production instance config) and one DuckLake whose catalog is in the same PostgreSQL server:
Dagster's pools decide who writes when (one writer per table, ``lake:<table>``; dbt in
``lake_transform``), DuckLake's snapshot isolation and Strata's conflict retry do the rest.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest
from conftest import PROJECT_ROOT, by_value, daily_file, database_of, landing_rows, make_settings, new_lake_catalog

from strata.partition_window import PartitionWindow
from strata.reconcile.tpch import tpch_datasets, verify

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("lake")]

RUN = Path(__file__).parent / "run_range.py"
SELECTION = [
    "raw/tpch_orders",
    "raw/tpch_lineitem",
    "staging/stg_tpch__orders",
    "staging/stg_tpch__lineitem",
    "marts/fct_order_lines",
    "marts/mart_revenue_daily",
]
#: Four runs of three days each, started together.
WEEKS = [
    ("1995-03-01", "1995-03-03"),
    ("1995-03-04", "1995-03-06"),
    ("1995-03-07", "1995-03-09"),
    ("1995-03-10", "1995-03-12"),
]


@pytest.fixture(scope="module")
def lake_instance(tmp_path_factory, tpch_landing, postgres, seeded_lake):
    """A copy of the seeded lake (snapshots, dimensions and January 1995) and a Dagster instance
    in PostgreSQL with its pools set.

    Shared by this module's tests, which write days outside January 1995 (and one re-writes a day).
    The copy is the seeded lake's catalog database cloned (:func:`conftest.seeded_settings`),
    instead of loading the snapshots again (about 100 s beside the other worker).
    """
    template, lake_data = seeded_lake
    catalog = new_lake_catalog(postgres, template=template)
    root = tmp_path_factory.mktemp("lake_concurrency")
    home = root / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.prod.yaml", home / "dagster.yaml")
    conn = postgres.connect()
    conn.autocommit = True
    db = "dagster_" + database_of(catalog)
    with conn.cursor() as cur:
        cur.execute(f"create database {db}")
    conn.close()
    with pytest.MonkeyPatch.context() as mp:
        (root / "data").mkdir()
        settings = make_settings(mp, root / "data", tpch_landing, catalog, lake_data)
        for name, value in {
            "DAGSTER_HOME": str(home),
            "DAGSTER_PG_HOST": postgres.host,
            "DAGSTER_PG_PORT": str(postgres.port),
            "DAGSTER_PG_DB": db,
            "DAGSTER_PG_USER": postgres.user,
            "DAGSTER_PG_PASSWORD": "",
        }.items():
            mp.setenv(name, value)
        with dg.DagsterInstance.get() as instance:
            pools = ["lake_transform", "lake:raw.tpch_orders", "lake:raw.tpch_lineitem"]
            for pool in pools:  # as the first run would, before four runs race to create them
                instance.event_log_storage.initialize_concurrency_limit_to_default(pool)
        yield settings


def start_run(start: str, end: str, keys=SELECTION) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(RUN), start, end, *keys],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    out, err = proc.communicate(timeout=900)
    return proc.returncode, out + err


def day_counts(settings, table: str, column: str, start: str, end: str) -> dict:
    from strata import warehouse

    with warehouse.connect(settings.warehouse, read_only=True) as con:
        window = PartitionWindow.from_dates("daily", "UTC", date.fromisoformat(start), date.fromisoformat(end))
        return by_value(warehouse.rows_per_partition(con, table, column, window))


def landing_counts(landing: Path, table: str, column: str, start: str, end: str) -> dict:
    import duckdb

    rows = (
        duckdb.connect()
        .execute(
            f"select {column}, count(*) from '{landing}/tpch/{table}/*.parquet' where {column} >= ? and {column} < ? group by 1",
            [date.fromisoformat(start), date.fromisoformat(end)],
        )
        .fetchall()
    )
    return {r[0]: r[1] for r in rows}


def test_four_runs_at_once_write_different_days_and_every_day_is_exact(lake_instance):
    settings = lake_instance
    procs = [start_run(s, e) for s, e in WEEKS]
    outcomes = [finish(p) for p in procs]
    for code, output in outcomes:
        assert code == 0, output[-3000:]
        assert "Conflicting lock" not in output, output[-3000:]
    first, last = WEEKS[0][0], (date.fromisoformat(WEEKS[-1][1]) + timedelta(days=1)).isoformat()
    landing = settings.landing_dir
    assert day_counts(settings, "raw.tpch_orders", "_partition_date", first, last) == landing_counts(
        landing, "orders", "o_orderdate", first, last
    )
    report = verify(
        tpch_datasets(),
        landing,
        settings.warehouse,
        PartitionWindow.from_dates("daily", "UTC", date.fromisoformat(first), date.fromisoformat(last)),
    )
    assert report.ok, report.mismatches


def test_two_runs_of_the_same_day_leave_it_exactly_once(lake_instance):
    settings = lake_instance
    day = "1995-04-03"
    procs = [start_run(day, day, ["raw/tpch_orders", "raw/tpch_lineitem"]) for _ in range(2)]
    for code, output in (finish(p) for p in procs):
        assert code == 0, output[-3000:]
    end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    landing = settings.landing_dir
    assert day_counts(settings, "raw.tpch_orders", "_partition_date", day, end) == landing_counts(
        landing, "orders", "o_orderdate", day, end
    )
    (lines,) = landing_rows(landing, f"select count(*) from '{daily_file(landing, 'lineitem', day)}'")[0]
    assert day_counts(settings, "raw.tpch_lineitem", "_partition_date", day, end) == {date.fromisoformat(day): lines}


def _lineitem_state(settings) -> tuple:
    from strata import warehouse

    with warehouse.connect(settings.warehouse, read_only=True) as con:
        state = con.execute("select count(*), sum(l_extendedprice) from raw.tpch_lineitem").fetchall()[0]
        return state, warehouse.current_snapshot(con)


def test_a_killed_writer_leaves_the_previous_snapshot_and_the_rerun_succeeds(lake_instance):
    settings = lake_instance
    keys = ["raw/tpch_orders", "raw/tpch_lineitem"]
    code, output = finish(start_run("1995-05-01", "1995-05-07", keys))
    assert code == 0, output[-3000:]
    before, snapshot = _lineitem_state(settings)

    # the whole history of both tables: long enough to be killed while it writes its data files
    proc = subprocess.Popen(
        [sys.executable, str(RUN), "1992-01-01", "1998-08-02", *keys],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
        start_new_session=True,
    )
    data = Path(settings.lake.data_path)
    files_before = set(data.rglob("*.parquet"))
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not set(data.rglob("*.parquet")) - files_before:
        time.sleep(0.05)
    assert proc.poll() is None, "the writer finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # what run monitoring does for a dead run worker (the daemon is not running here): fail the
    # run and free its pool slots, so that the re-run can take the table's slot
    with dg.DagsterInstance.get() as instance:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
            instance.report_run_failed(run)
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)

    # the previous snapshot is still the latest, readable and complete
    assert _lineitem_state(settings) == (before, snapshot)
    code, output = finish(start_run("1995-05-01", "1995-05-07", keys))
    assert code == 0, output[-3000:]
    assert _lineitem_state(settings)[0] == before
