"""Concurrent writers on the DuckLake backend against the single DuckDB file, in one run.

    make bench-lake                  # SF 1 (BENCH_SF=0.1 for a quick look); about 30 minutes here

On one landing zone, one after another, each on a fresh Dagster instance (SQLite, `dagster dev`,
the embedded layout) and a fresh warehouse:

  * the bare DuckDB baseline (bench/bare_duckdb.py), as in the spine benchmark;
  * "Materialize all" as a chunked backfill (STRATA_BACKFILL_CHUNK_DAYS, default 365 days a run)
    on ``duckdb`` (one writer) and on ``ducklake`` with 1, 2 and 4 concurrent runs (the instance's
    ``max_concurrent_runs``; on the lake each table has one writer, so runs overlap their steps);
    the lake's catalog is a database on a throwaway PostgreSQL server, its data a local folder;
  * ``strata verify`` after each (it must be clean: a fast wrong answer is not a result);
  * the publish of the marts on each finished warehouse (:func:`strata.warehouse.publish`, what
    the ``publish_marts`` step runs): a full copy on the file, views at a snapshot on the lake.

Results go to bench/history/lake_writers.jsonl; docs/benchmarks.md quotes them.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import spine  # noqa: E402  (its processes, GraphQL and PostgreSQL helpers)

from strata import warehouse  # noqa: E402
from strata.settings import Settings  # noqa: E402

BIN = spine.BIN
CHUNK_DAYS = os.environ.get("BENCH_CHUNK_DAYS", "365")
CONFIGS = [("duckdb", 1), ("ducklake", 1), ("ducklake", 2), ("ducklake", 4)]
MARTS = {"fct_order_lines": "marts.fct_order_lines", "mart_revenue_daily": "marts.mart_revenue_daily"}
HISTORY = ROOT / "bench" / "history" / "lake_writers.jsonl"


def create_database(server, name: str) -> str:
    con = server.connect()
    con.autocommit = True
    con.cursor().execute(f"create database {name}")
    con.close()
    return f"postgres:dbname={name} host={server.host} port={server.port} user={server.user}"


def measure(backend: str, writers: int, base_env: dict, work: Path, server) -> dict:
    """One chunked Materialize all on a fresh instance and warehouse; its figures."""
    run_dir = work / f"{backend}_{writers}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = {
        **base_env,
        "DAGSTER_HOME": str(run_dir / "dagster_home"),
        "STRATA_SENSOR_INTERVAL_SECONDS": "3600",  # no sensor runs beside the backfill
        "STRATA_WAREHOUSE": backend,
        "STRATA_WAREHOUSE_PATH": str(run_dir / "warehouse.duckdb"),
        "STRATA_BACKFILL_CHUNK_DAYS": CHUNK_DAYS,
    }
    if backend == "ducklake":
        env["STRATA_LAKE_CATALOG"] = create_database(server, f"lake_{writers}_{int(time.time())}")
        env["STRATA_LAKE_DATA_PATH"] = str(run_dir / "lake")
    home = run_dir / "dagster_home"
    home.mkdir()
    config = (ROOT / "dagster.yaml").read_text()
    (home / "dagster.yaml").write_text(config.replace("max_concurrent_runs: 4", f"max_concurrent_runs: {writers}"))
    subprocess.run([str(BIN / "strata"), "prepare"], env=env, check=True, cwd=ROOT, capture_output=True)
    log = (run_dir / "dagster.log").open("w")
    server_proc = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", "3300"],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    out = {"backend": backend, "writers": writers, "chunk_days": int(CHUNK_DAYS)}
    try:
        nodes = spine.wait_for_ui()
        memory = spine.TreeMemory(server_proc.pid)
        memory.start()
        out["seconds"], out["runs"] = spine.backfill_everything(nodes)
        memory.stop.set()
        out["peak_mib"] = round(memory.peak_mib)
    finally:
        print(json.dumps(out), flush=True)  # the backfill's figures, before a slow shutdown
        os.killpg(server_proc.pid, 15)
        try:
            server_proc.wait(timeout=60)
        except subprocess.TimeoutExpired:  # dagster dev took longer than 60 s to stop
            os.killpg(server_proc.pid, 9)
            server_proc.wait(timeout=30)
        log.close()
    verify = subprocess.run([str(BIN / "strata"), "verify"], env=env, cwd=ROOT, capture_output=True, text=True)
    out["verify"] = (verify.stdout.strip().splitlines() or ["?"])[-1]
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        with warehouse.connect(Settings.from_env().warehouse) as con:
            start = time.perf_counter()
            rows = warehouse.publish(con, "published", MARTS)
            out["publish_seconds"] = round(time.perf_counter() - start, 2)
            out["published_rows"] = sum(rows.values())
    finally:
        os.environ.clear()
        os.environ.update(saved)
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    settings = Settings.from_env()
    work = settings.data_dir
    work.mkdir(parents=True, exist_ok=True)
    env = {**spine.INSTANCE_ENV, **os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    print(f"landing zone SF {settings.tpch_sf}: {spine.generate(settings.landing_dir, settings.tpch_sf)}", flush=True)
    bare = work / "bare.duckdb"
    bare.unlink(missing_ok=True)
    bare_seconds, _ = spine.run_child(
        [str(BIN / "python"), str(ROOT / "bench" / "bare_duckdb.py"), str(settings.landing_dir), str(bare)],
        env,
        work / "bare.log",
    )
    print("bare DuckDB", bare_seconds, flush=True)
    server = spine.pg_server.start()
    try:
        only = os.environ.get("BENCH_CONFIGS")  # e.g. "duckdb:1,ducklake:4"
        configs = [(b, int(w)) for b, w in (c.split(":") for c in only.split(","))] if only else CONFIGS
        results = [measure(backend, writers, env, work, server) for backend, writers in configs]
    finally:
        spine.pg_server.stop(server)
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "scale_factor": settings.tpch_sf,
        "bare_seconds": round(bare_seconds, 1),
        "results": [{**r, "ratio_to_bare": round(r["seconds"] / bare_seconds, 2)} for r in results],
    }
    print(json.dumps(record, indent=2))
    with HISTORY.open("a") as out:
        out.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
