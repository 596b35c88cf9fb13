"""A writer killed in the middle of its transaction on the lake leaves the previous snapshot whole."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from conftest import SEEDED_KEYS

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

RUN = Path(__file__).parent / "run_range.py"


def test_a_killed_writer_leaves_the_previous_snapshot_and_the_rerun_succeeds(lake_platform, tmp_path):
    platform = lake_platform
    home = tmp_path / "dagster_home"  # the runs' own instance (SQLite)
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    start, end = SEEDED_KEYS
    keys = ["raw/tpch_orders", "raw/tpch_lineitem"]
    platform.load_snapshots()  # the referential checks of orders read customers
    assert platform.materialize([dg.AssetKey.from_user_string(k) for k in keys], start=start, end=end).success
    before = platform.query("select count(*), sum(l_extendedprice) from raw.tpch_lineitem")
    snapshot = platform.query("select id from ducklake_current_snapshot('lake')")[0][0]

    # the whole history of both tables: long enough to be killed while it writes
    proc = subprocess.Popen(
        [sys.executable, str(RUN), "1992-01-01", "1998-08-02", *keys],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    data = platform.settings.lake.data_path
    deadline = time.monotonic() + 300
    files_before = {p for p in Path(data).rglob("*.parquet")}
    while time.monotonic() < deadline and proc.poll() is None:
        if {p for p in Path(data).rglob("*.parquet")} - files_before:  # it is writing data files
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the writer finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # the previous snapshot is the latest, readable and complete
    assert platform.query("select id from ducklake_current_snapshot('lake')")[0][0] == snapshot
    assert platform.query("select count(*), sum(l_extendedprice) from raw.tpch_lineitem") == before

    rerun = subprocess.run([sys.executable, str(RUN), start, end, *keys], capture_output=True, text=True, env=env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert platform.query("select count(*), sum(l_extendedprice) from raw.tpch_lineitem") == before
