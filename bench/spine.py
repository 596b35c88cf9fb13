"""The spine benchmark: Dagster backfills against bare DuckDB and plain dbt, in one run.

    make bench                       # SF 1 (BENCH_SF=0.1 make bench for a quick look)

Measures, on the same landing zone and machine, one after another:

  (a) the full-range backfill through Dagster (webserver + daemon, every asset, every
      partition, launched over GraphQL as the UI does), from launch to success;
  (b) bare DuckDB doing the same loads and transforms in one process (bench/bare_duckdb.py);
  (c) `dbt build` alone over the same range, on raw tables already loaded;
  (d) one daily partition through Dagster (raw + dbt, launched as the schedule launches it),
      against a plain `dbt build` of the partitioned models for that day (median of 3 days).

Peak memory is the peak resident set of the process (tree). Results and ratios go to
docs/benchmarks.md, which is rewritten.
"""

import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "platform"))

sys.path.insert(0, str(ROOT / "platform_tests"))
import pg_server  # noqa: E402  (the tests' throwaway PostgreSQL server, for BENCH_INSTANCE=postgres)

from strata.demo.tpch import generate  # noqa: E402
from strata.settings import Settings  # noqa: E402

URL = "http://127.0.0.1:3300/graphql"
#: What the Makefile exports for `make run` (batched event writes, one planned event per asset);
#: set here too, so that running this script directly measures the same instance settings.
#: The orchestration-overhead issue's targets: P1 and P2 are ratios, P4 is MiB.
P1_TARGET, P2_TARGET, P4_TARGET_MIB = 4.0, 2.0, 2048
INSTANCE_ENV = {"DAGSTER_EVENT_BATCH_SIZE": "1000", "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1"}
DAYS = ["1994-03-15", "1995-06-17", "1996-09-20"]
FULL_WINDOW = {"window_start": "1992-01-01", "window_end": "1998-08-03"}


# --------------------------------------------------------------------------- processes, memory


def run_child(cmd: list[str], env: dict, log: Path) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS MiB of the child). Fails on a non-zero exit."""
    start = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}); see {log}")
    return seconds, usage.ru_maxrss / 1024


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeMemory(threading.Thread):
    """Samples the summed RSS of a process tree every 0.2 s; ``peak_mib`` is the maximum seen."""

    def __init__(self, root: int):
        super().__init__(daemon=True)
        self.root, self.peak_kib, self.stop = root, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_kib = max(self.peak_kib, sum(_rss_kib(p) for p in _tree(self.root)))
            time.sleep(0.2)

    @property
    def peak_mib(self) -> float:
        return self.peak_kib / 1024


def start_postgres_instance(home: Path):
    """A throwaway PostgreSQL (as the tests start one) holding the Dagster instance.

    ``home`` gets the production instance config (`deploy/dagster.prod.yaml`: PostgreSQL storage,
    whose event log writes a batch in one multi-row insert). Returns (server, its DAGSTER_PG_* env).
    """
    server = pg_server.start()
    con = server.connect()
    con.autocommit = True
    con.cursor().execute("create database dagster_bench")
    con.close()
    home.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "dagster.prod.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_PG_HOST": server.host,
        "DAGSTER_PG_PORT": str(server.port),
        "DAGSTER_PG_DB": "dagster_bench",
        "DAGSTER_PG_USER": server.user,
        "DAGSTER_PG_PASSWORD": "",
    }
    return server, env


# --------------------------------------------------------------------------- Dagster over GraphQL


def gql(query: str, variables: dict | None = None, timeout: float = 120) -> dict:
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(URL, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        out = json.loads(resp.read())
    if out.get("errors"):
        raise RuntimeError(json.dumps(out["errors"])[:2000])
    return out["data"]


def wait_for_ui(seconds: float = 300) -> list[dict]:
    end = time.time() + seconds
    while time.time() < end:
        try:
            nodes = gql("{ assetNodes { assetKey { path } isPartitioned isMaterializable } }", timeout=10)
            if nodes["assetNodes"]:
                return nodes["assetNodes"]
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(1)
    raise TimeoutError("Dagster UI did not come up")


def backfill_everything(nodes: list[dict]) -> tuple[float, int]:
    """Launch what the UI's "Materialize all" launches; return (seconds to success, runs)."""
    keys = [{"path": n["assetKey"]["path"]} for n in nodes if n["isMaterializable"]]
    start = time.perf_counter()
    res = gql(
        """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"p": {"assetSelection": keys, "allPartitions": True}},
    )["launchPartitionBackfill"]
    if res["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(res)
    while True:
        st = gql(
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


def run_one_partition(nodes: list[dict], day: str) -> tuple[float, float]:
    """Launch a run of the partitioned assets for ``day`` (as a schedule does); (wall s, run s)."""
    keys = [{"path": n["assetKey"]["path"]} for n in nodes if n["isPartitioned"]]
    start = time.perf_counter()
    res = gql(
        """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) { __typename
             ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
        {
            "p": {
                "selector": {
                    "repositoryLocationName": "strata",
                    "repositoryName": "__repository__",
                    "jobName": "__ASSET_JOB",
                    "assetSelection": keys,
                },
                "executionMetadata": {"tags": [{"key": "dagster/partition", "value": day}]},
            }
        },
    )["launchRun"]
    if res["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(res)
    run_id = res["run"]["runId"]
    while True:
        run = gql(
            """query($id: ID!) { runOrError(runId: $id) { ... on Run { status startTime endTime } } }""",
            {"id": run_id},
        )["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            if run["status"] != "SUCCESS":
                raise RuntimeError(f"run {run_id} {run['status']}")
            return time.perf_counter() - start, run["endTime"] - run["startTime"]
        time.sleep(0.1)


# --------------------------------------------------------------------------- the benchmark


def main() -> None:
    settings = Settings.from_env()
    sf = settings.tpch_sf
    work = settings.data_dir
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**INSTANCE_ENV, **os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    print(f"landing zone SF {sf}: {generate(settings.landing_dir, sf)}", flush=True)
    subprocess.run([str(BIN / "strata"), "prepare"], env=env, check=True, cwd=ROOT)
    results: dict[str, object] = {"scale_factor": sf, "instance": os.environ.get("BENCH_INSTANCE", "sqlite")}

    # (b) bare DuckDB
    bare_db = work / "bare.duckdb"
    bare_db.unlink(missing_ok=True)
    results["b_seconds"], results["b_peak_mib"] = run_child(
        [
            str(BIN / "python"),
            str(ROOT / "bench" / "bare_duckdb.py"),
            str(settings.landing_dir),
            str(bare_db),
        ],
        env,
        logs / "bare.log",
    )
    print("(b) bare DuckDB", results["b_seconds"], flush=True)

    # (c) dbt build alone: a copy of the bare warehouse with only its raw schema
    dbt_db = work / "dbt_only" / "warehouse.duckdb"
    dbt_db.parent.mkdir(exist_ok=True)
    dbt_db.unlink(missing_ok=True)
    import duckdb

    with duckdb.connect(str(dbt_db)) as con:
        con.execute(f"attach '{bare_db}' as bare (read_only); create schema raw")
        for (table,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'bare' and table_schema = 'raw'"
        ).fetchall():
            con.execute(f"create table raw.{table} as select * from bare.raw.{table}")
    dbt_env = {**env, "STRATA_WAREHOUSE_PATH": str(dbt_db)}
    dbt = [str(BIN / "dbt"), "build", "--project-dir", "dbt", "--profiles-dir", "dbt"]
    results["c_seconds"], results["c_peak_mib"] = run_child(
        [*dbt, "--vars", json.dumps(FULL_WINDOW)], dbt_env, logs / "dbt_full.log"
    )
    print("(c) dbt build", results["c_seconds"], flush=True)

    # (a) the full backfill through Dagster, on a fresh instance and warehouse
    home = Path(os.environ["DAGSTER_HOME"])
    shutil.rmtree(home, ignore_errors=True)
    settings.warehouse_path.unlink(missing_ok=True)
    pg = None
    if results["instance"] == "postgres":
        pg, pg_env = start_postgres_instance(home)
        env.update(pg_env)
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
        nodes = wait_for_ui()
        memory = TreeMemory(server.pid)
        memory.start()
        results["a_seconds"], results["a_runs"] = backfill_everything(nodes)
        memory.stop.set()
        results["a_peak_mib"] = memory.peak_mib
        print("(a) Dagster backfill", results["a_seconds"], flush=True)
        verify = subprocess.run([str(BIN / "strata"), "verify"], env=env, cwd=ROOT, capture_output=True, text=True)
        results["verify"] = verify.stdout.strip().splitlines()[-1]

        # (d) one partition through Dagster
        walls, runs = [], []
        for day in DAYS:
            wall, run = run_one_partition(nodes, day)
            walls.append(wall)
            runs.append(run)
        results["d_dagster_seconds"], results["d_dagster_run_seconds"] = (
            statistics.median(walls),
            statistics.median(runs),
        )
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=60)
        server_log.close()
        if pg is not None:
            pg_server.stop(pg)

    # (d) plain dbt build for one day, on the warehouse Dagster just built
    day_env = {**env, "STRATA_WAREHOUSE_PATH": str(settings.warehouse_path)}
    plain = []
    for day in DAYS:
        end = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
        seconds, _ = run_child(
            [
                *dbt,
                "--select",
                "config.materialized:incremental",
                "--vars",
                json.dumps({"window_start": day, "window_end": end}),
            ],
            day_env,
            logs / f"dbt_{day}.log",
        )
        plain.append(seconds)
    results["d_dbt_seconds"] = statistics.median(plain)
    results["date"] = time.strftime("%Y-%m-%d")
    results["commit"] = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    print(json.dumps(results, indent=2), flush=True)
    with HISTORY.open("a") as out:
        out.write(json.dumps(results) + "\n")
    if results["instance"] == "sqlite":
        write_report(results, _previous(results))
    else:  # the table is the embedded default's; other layouts are in the history and the analysis
        print(f"{results['instance']}: not written to docs/benchmarks.md; see bench/history/spine.jsonl")


#: Every run's figures, one JSON object a line (committed): the report shows the previous run beside.
HISTORY = ROOT / "bench" / "history" / "spine.jsonl"


def _previous(current: dict) -> dict | None:
    """The latest earlier run at the same scale factor and instance layout in :data:`HISTORY`, if any."""
    if not HISTORY.exists():
        return None
    runs = [json.loads(line) for line in HISTORY.read_text().splitlines() if line.strip()]
    layout = current.get("instance", "sqlite")
    earlier = [  # the last is current
        r
        for r in runs[:-1]
        if r.get("scale_factor") == current["scale_factor"] and r.get("instance", "sqlite") == layout
    ]
    return earlier[-1] if earlier else None


def _before(prev: dict | None, key: str, fmt: str = "{:.1f}") -> str:
    if prev is None or prev.get(key) is None:
        return "–"
    return fmt.format(prev[key])


def write_report(r: dict, prev: dict | None = None) -> None:
    a_b = r["a_seconds"] / r["b_seconds"]
    c_b = r["c_seconds"] / r["b_seconds"]
    d = r["d_dagster_seconds"] / r["d_dbt_seconds"]
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = BENCH_TEMPLATE.format(
        sf=r["scale_factor"],
        machine=machine,
        when=time.strftime("%Y-%m-%d"),
        a=r["a_seconds"],
        a_runs=r["a_runs"],
        a_mem=r["a_peak_mib"],
        b=r["b_seconds"],
        b_mem=r["b_peak_mib"],
        c=r["c_seconds"],
        c_mem=r["c_peak_mib"],
        d_dag=r["d_dagster_seconds"],
        d_run=r["d_dagster_run_seconds"],
        d_dbt=r["d_dbt_seconds"],
        a_b=a_b,
        c_b=c_b,
        d=d,
        verify=r["verify"],
        a_ok="met" if a_b <= P1_TARGET else "not met",
        d_ok="met" if d <= P2_TARGET else "not met",
        m_ok="met" if r["a_peak_mib"] <= P4_TARGET_MIB else "not met",
        P1_TARGET=P1_TARGET,
        P2_TARGET=P2_TARGET,
        P4_TARGET_MIB=P4_TARGET_MIB,
        prev_when=f"{prev['date']} ({prev.get('commit') or 'earlier commit'})" if prev else "none recorded",
        pa=_before(prev, "a_seconds"),
        pa_runs=_before(prev, "a_runs", "{}"),
        pa_mem=_before(prev, "a_peak_mib", "{:.0f}"),
        pb=_before(prev, "b_seconds"),
        pc=_before(prev, "c_seconds"),
        pd_dag=_before(prev, "d_dagster_seconds"),
        pd_dbt=_before(prev, "d_dbt_seconds"),
        pa_b=f"{prev['a_seconds'] / prev['b_seconds']:.1f}" if prev else "–",
        pd=f"{prev['d_dagster_seconds'] / prev['d_dbt_seconds']:.2f}" if prev else "–",
    )
    target = ROOT / "docs" / "benchmarks.md"
    marker = "<!-- analysis -->"
    old = target.read_text() if target.exists() else ""
    analysis = old[old.index(marker) :] if marker in old else marker + "\n"
    target.write_text(text + "\n" + analysis)
    print(f"wrote {target}")


BENCH_TEMPLATE = """# Benchmarks

Reproduce with `make bench` (SF 1; `BENCH_SF=0.1 make bench` for a quick look). The script is
`bench/spine.py`; every figure below comes from one run of it, on {machine}, {when}, TPC-H SF {sf}
(2,406 daily partitions). Times are wall-clock seconds; memory is peak resident set (MiB).
Compare the ratios, which are measured in the same run, rather than absolute times.

The "before" column is the previous run recorded in `bench/history/spine.jsonl`: {prev_when}.

| | work | seconds | before | peak MiB | before |
|---|---|---:|---:|---:|---:|
| (a) | full-range backfill through Dagster: every asset, every partition, \
launched over GraphQL as the UI does, launch → success ({a_runs} runs; before: {pa_runs}) | {a:.1f} | {pa} | \
{a_mem:.0f} (process tree) | {pa_mem} |
| (b) | bare DuckDB, same loads and transforms, one process (`bench/bare_duckdb.py`) | {b:.1f} | {pb} | \
{b_mem:.0f} | |
| (c) | `dbt build` alone over the same range (raw already loaded) | {c:.1f} | {pc} | {c_mem:.0f} | |
| (d) | one daily partition through Dagster (raw + dbt, `launchRun` as a schedule does), \
launch → success, median of 3 days | {d_dag:.1f} (run itself: {d_run:.1f}) | {pd_dag} | | |
| (d) | plain `dbt build` of the partitioned models for that day, median of 3 days | {d_dbt:.1f} | {pd_dbt} | | |

| ratio | reached | before | target | |
|---|---:|---:|---:|---|
| P1: (a) / (b) | {a_b:.1f} | {pa_b} | ≤ {P1_TARGET:g} | {a_ok} |
| (c) / (b) | {c_b:.1f} | | | for reference |
| P2: (d) Dagster / plain dbt | {d:.2f} | {pd} | ≤ {P2_TARGET:g} | {d_ok} |
| P4: peak MiB of (a), process tree | {a_mem:.0f} | {pa_mem} | ≤ {P4_TARGET_MIB} | {m_ok} |

After (a), `strata verify`: {verify}
"""


if __name__ == "__main__":
    main()
