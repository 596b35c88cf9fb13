"""Two runs at once: the warehouse pool makes their DuckDB steps take turns, and both succeed."""

from __future__ import annotations

import os
import subprocess

import dagster as dg
import duckdb
import yaml
from conftest import BIN, copy_of, make_settings
from dagster._core.instance.ref import InstanceRef

from strata.defs.constants import WAREHOUSE_POOL
from strata.settings import PROJECT_ROOT


def test_concurrent_runs_queue_on_the_writer_pool(monkeypatch, tmp_path, tpch_landing, seeded_warehouse):
    settings = make_settings(monkeypatch, copy_of(seeded_warehouse, tmp_path), tpch_landing)
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())))
    env = {**os.environ, "DAGSTER_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # the instance read below is DAGSTER_HOME's
    selection = " or ".join(
        f"key:{k}"
        for k in (
            "raw/tpch_orders",
            "raw/tpch_lineitem",
            "staging/stg_tpch__orders",
            "staging/stg_tpch__lineitem",
        )
    )

    def launch(start: str, end: str) -> subprocess.Popen:
        return subprocess.Popen(
            [
                str(BIN / "dagster"),
                "asset",
                "materialize",
                "-m",
                "strata.definitions",
                "--select",
                selection,
                "--partition-range",
                f"{start}...{end}",
            ],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        # create the SQLite storage and the pool's one slot once, before two processes race to:
        # two runs that start in the same instant on a fresh SQLite instance can each allocate
        # the pool's default slot (a count-then-insert in Dagster), and then both hold "the" slot
        instance.event_log_storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 1
    runs = [launch("1996-03-01", "1996-03-20"), launch("1996-04-01", "1996-04-20")]
    outputs = [r.communicate(timeout=600)[0] for r in runs]
    assert [r.returncode for r in runs] == [0, 0], "\n".join(o[-3000:] for o in outputs)

    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home))) as instance:
        records = instance.get_run_records()
        assert len(records) == 2 and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        intervals = []
        for record in records:
            starts, ends = {}, {}
            for entry in instance.all_logs(record.dagster_run.run_id):
                if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_START":
                    starts[entry.step_key] = entry.timestamp
                if entry.dagster_event and entry.dagster_event.event_type_value == "STEP_SUCCESS":
                    ends[entry.step_key] = entry.timestamp
            intervals += [(starts[k], ends[k], record.dagster_run.run_id) for k in ends]
        slots = instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count
    assert slots == 1, f"the {WAREHOUSE_POOL} pool has {slots} slots"
    intervals.sort()
    assert len(intervals) == 6
    for (_, end, run_a), (start, _, run_b) in zip(intervals, intervals[1:], strict=False):
        assert end <= start, f"steps of {run_a} and {run_b} held the warehouse at the same time"
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        days = con.execute(
            "select count(distinct order_date) from staging.stg_tpch__orders where year(order_date) = 1996"
        ).fetchone()[0]
    assert days == 40


def test_a_reader_holding_the_file_makes_the_steps_wait_and_say_so(seeded):
    """A BI tool or `strata verify` reading the file for a moment: the run's steps (Python and dbt)
    wait for the lock with a bounded backoff, log what they wait for, and succeed."""
    import sys

    holder = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1], read_only=True); "
        "print('held', flush=True); time.sleep(6); c.close()"
    )
    reader = subprocess.Popen(
        [sys.executable, "-c", holder, str(seeded.settings.warehouse_path)], stdout=subprocess.PIPE, text=True
    )
    assert reader.stdout.readline().strip() == "held"
    dbt_keys = [k for k in seeded.keys(partitioned=True) if k.path[0] in ("staging", "marts")]
    result = seeded.materialize(dbt_keys, partition="1995-01-12")
    reader.wait(timeout=60)
    assert result.success
    logged = [e.user_message for e in seeded.instance.all_logs(result.run_id)]
    assert any("waiting for the warehouse lock to write (held by" in m for m in logged), logged[-20:]
