"""P6: orchestration overhead per asset-partition, 200 small daily CSV datasets x 365 days.

    .venv/bin/python bench/many_datasets.py             # 200 datasets x 365 days (73,000)
    BENCH_DATASETS=20 BENCH_DAYS=30 .venv/bin/python bench/many_datasets.py   # a quick look

Generates BENCH_DATASETS registry files (raw, files source, daily partitions, a volume check) and
their landing files (BENCH_ROWS rows a day each) under `.strata/bench_many/`, then measures in the
same run:

  (bare) bare DuckDB loading every dataset's files into its table, one INSERT per dataset;
  (dagster) one asset backfill of every partition of the generated datasets through `dagster dev`
         (webserver + daemon, the embedded default), launched over GraphQL as the UI's
         Materialize all launches it, from launch to success.

Overhead per asset-partition = (dagster - bare) / (datasets x days), in ms. The target of the
orchestration-overhead issue is <= 2 ms (later <= 0.5 ms). Prints one JSON line; appends it to
bench/history/many_datasets.jsonl. Exits 1 if the backfill fails or a table's row count is wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
import spine  # noqa: E402  (the GraphQL and process helpers of the spine benchmark)

ROOT = spine.ROOT
BIN = spine.BIN
WORK = ROOT / ".strata" / "bench_many"
START = date(2023, 1, 1)
#: The orchestration-overhead issue's target for P6 (ms per asset-partition).
TARGET_MS = 2.0
P6_START, P6_END = "<!-- p6 -->", "<!-- /p6 -->"
LAYOUTS = {
    "sqlite": "SQLite (embedded default)",
    "postgres": "PostgreSQL (`deploy/dagster.prod.yaml`, batched multi-row inserts)",
}
COLUMNS = {"id": "BIGINT", "day": "DATE", "amount": "DECIMAL(18,2)", "status": "VARCHAR"}


def dataset_yaml(i: int, days: int) -> str:
    """One generated registry file: a raw CSV feed with daily partitions (inclusive end)."""
    end = START + timedelta(days=days - 1)
    return f"""name: many_{i:03d}
description: Generated daily CSV feed {i} (bench/many_datasets.py).
owners: [team:bench]
group: bench_many
layer: raw
source: {{type: files, format: csv, path: "many/{i:03d}/{{date}}.csv"}}
partitioning: {{column: day, start: {START}, end: {end}}}
primary_key: [id]
columns:
  - {{name: id, type: BIGINT, nullable: false}}
  - {{name: day, type: DATE, nullable: false}}
  - {{name: amount, type: "DECIMAL(18,2)"}}
  - {{name: status, type: VARCHAR}}
checks:
  - {{type: volume, min_rows: 1}}
"""


def generate(registry: Path, landing: Path, datasets: int, days: int, rows: int) -> int:
    """Write the registry files and landing CSVs; return the number of rows written."""
    shutil.rmtree(registry, ignore_errors=True)
    shutil.rmtree(landing, ignore_errors=True)
    registry.mkdir(parents=True)
    total = 0
    for i in range(datasets):
        (registry / f"many_{i:03d}.yaml").write_text(dataset_yaml(i, days))
        folder = landing / "many" / f"{i:03d}"
        folder.mkdir(parents=True)
        for d in range(days):
            day = START + timedelta(days=d)
            base = d * rows
            lines = ["id,day,amount,status"]
            lines += [f"{base + r},{day},{(r * 7919) % 10000 / 100:.2f},{'abc'[r % 3]}" for r in range(rows)]
            (folder / f"{day}.csv").write_text("\n".join(lines) + "\n")
            total += rows
    return total


def bare(landing: Path, datasets: int, db: Path) -> float:
    """Bare DuckDB: each dataset's files into its typed table, one INSERT each; seconds."""
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute("create schema raw")
        for i in range(datasets):
            con.execute(
                f"create table raw.many_{i:03d} as select * from read_csv(?, header = true, columns = ?)",
                [str(landing / "many" / f"{i:03d}" / "*.csv"), COLUMNS],
            )
    return time.perf_counter() - start


def backfill(keys: list[dict]) -> tuple[float, int]:
    """One asset backfill of every partition of ``keys``; (seconds launch -> success, runs)."""
    start = time.perf_counter()
    res = spine.gql(
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"p": {"assetSelection": keys, "allPartitions": True}},
    )["launchPartitionBackfill"]
    if res["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(res)
    while True:
        st = spine.gql(
            """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
                 ... on PartitionBackfill { status runs(limit: 1000) { status } } } }""",
            {"id": res["backfillId"]},
        )["partitionBackfillOrError"]
        runs = st["runs"]
        if st["status"] != "REQUESTED" and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs):
            if st["status"] != "COMPLETED_SUCCESS":
                raise RuntimeError(f"backfill ended {st['status']}")
            return time.perf_counter() - start, len(runs)
        time.sleep(0.5)


def main() -> None:
    datasets = int(os.environ.get("BENCH_DATASETS", "200"))
    days = int(os.environ.get("BENCH_DAYS", "365"))
    rows = int(os.environ.get("BENCH_ROWS", "20"))
    registry, landing, logs = WORK / "registry", WORK / "landing", WORK / "logs"
    written = generate(registry, landing, datasets, days, rows)
    logs.mkdir(parents=True, exist_ok=True)
    home = WORK / "dagster_home"
    shutil.rmtree(home, ignore_errors=True)
    instance = os.environ.get("BENCH_INSTANCE", "sqlite")
    pg, pg_env = spine.start_postgres_instance(home) if instance == "postgres" else (None, {})
    warehouse = WORK / "warehouse.duckdb"
    warehouse.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "STRATA_DATA_DIR": str(WORK),
        "STRATA_LANDING_DIR": str(landing),
        "STRATA_WAREHOUSE_PATH": str(warehouse),
        "STRATA_ASSETS_CONFIG": f"{ROOT / 'assets_config'}:{registry}",
        "DAGSTER_HOME": str(home),
        **{k: os.environ.get(k, v) for k, v in spine.INSTANCE_ENV.items()},
        **pg_env,
    }
    result: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "datasets": datasets,
        "days": days,
        "instance": instance,
    }
    result["rows"] = written
    result["bare_seconds"] = bare(landing, datasets, WORK / "bare.duckdb")
    print("bare DuckDB", result["bare_seconds"], flush=True)

    subprocess.run([str(BIN / "strata"), "prepare"], env=env, check=True, cwd=ROOT)
    server_log = (logs / "dagster.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", "3300"],
        env=env,
        cwd=ROOT,
        stdout=server_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        nodes = spine.wait_for_ui()
        keys = [{"path": n["assetKey"]["path"]} for n in nodes if n["assetKey"]["path"][-1].startswith("many_")]
        if len(keys) != datasets:
            raise RuntimeError(f"{len(keys)} generated assets in the UI, expected {datasets}")
        memory = spine.TreeMemory(server.pid)
        memory.start()
        result["dagster_seconds"], result["runs"] = backfill(keys)
        memory.stop.set()
        result["dagster_peak_mib"] = round(memory.peak_mib)
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        server_log.close()
        if pg is not None:
            spine.pg_server.stop(pg)

    with duckdb.connect(str(warehouse), read_only=True) as con:
        loaded = sum(con.execute(f"select count(*) from raw.many_{i:03d}").fetchone()[0] for i in range(datasets))
    if loaded != written:
        sys.exit(f"loaded {loaded} rows, wrote {written}")
    partitions = datasets * days
    result["asset_partitions"] = partitions
    result["overhead_ms_per_asset_partition"] = round(
        (result["dagster_seconds"] - result["bare_seconds"]) / partitions * 1000, 3
    )
    result["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    line = json.dumps(result)
    print(line)
    history = ROOT / "bench" / "history" / "many_datasets.jsonl"
    with history.open("a") as out:
        out.write(line + "\n")
    write_doc([json.loads(x) for x in history.read_text().splitlines()])


def write_doc(history: list[dict]) -> None:
    """docs/benchmarks.md's P6 section: the latest run of each instance layout, with its previous one."""
    latest: dict[str, dict] = {}
    previous: dict[str, dict] = {}
    for record in history:
        layout = record.get("instance", "sqlite")
        if layout in latest:
            previous[layout] = latest[layout]
        latest[layout] = record
    rows = []
    for layout, r in latest.items():
        ms = r["overhead_ms_per_asset_partition"]
        before = previous.get(layout)
        was = f"{before['overhead_ms_per_asset_partition']:.2f} ({before['commit']})" if before else "–"
        rows.append(
            f"| {LAYOUTS[layout]} | {r['date']}, {r['commit']} | {r['datasets']} × {r['days']} | "
            f"{r['bare_seconds']:.1f} | {r['dagster_seconds']:.1f} | {r['runs']} | {r['dagster_peak_mib']} | "
            f"**{ms:.2f}** | {was} | {'met' if ms <= TARGET_MS else 'not met'} |"
        )
    section = (
        f"""{P6_START}
## P6: overhead per asset-partition, daily CSV datasets × days

Reproduce with `.venv/bin/python bench/many_datasets.py` (part of `make bench`; `BENCH_INSTANCE=postgres`
for the production instance storage). Generated raw CSV datasets (20 rows a day each), one asset
backfill of all of them through `dagster dev` as the UI's Materialize all launches it, against bare
DuckDB loading the same files into the same tables in the same run. Overhead per asset-partition =
(Dagster − bare) ÷ (datasets × days); target ≤ {TARGET_MS:g} ms.

| instance | run | datasets × days | bare DuckDB (s) | Dagster, launch → success (s) | runs | peak MiB | ms per asset-partition | before | target |
|---|---|---:|---:|---:|---:|---:|---:|---:|---|
"""
        + "\n".join(rows)
        + f"""
{P6_END}
"""
    )
    doc = ROOT / "docs" / "benchmarks.md"
    text = doc.read_text()
    if P6_START in text:
        text = text[: text.index(P6_START)] + text[text.index(P6_END) + len(P6_END) + 1 :]
    anchor = "\n## Code-location load time with registry datasets"
    at = text.index(anchor) + 1 if anchor in text else len(text)
    doc.write_text(text[:at] + section + "\n" + text[at:])
    print(f"wrote {doc}")


if __name__ == "__main__":
    main()
