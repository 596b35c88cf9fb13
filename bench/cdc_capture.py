"""Change data capture against the raw tools, in one run: the initial read and the change stream.

    make bench-cdc               # pgbench scale 10: 1,000,000 accounts, 1,000,000 changes
    BENCH_CDC_SCALE=2 make bench-cdc

On a throwaway PostgreSQL 15 (the tests' server, wal2json), with ``pgbench -i -s N``
(100,000 accounts per scale step) and ``pgbench_accounts`` REPLICA IDENTITY FULL:

  (a) ``COPY pgbench_accounts TO STDOUT`` by ``psql``, to a file: the rows/s of the raw tool;
  (b) Strata's first load of the table as a CDC dataset (slot, exported snapshot, COPY, DuckDB);
  (c) one change per account (``update pgbench_accounts set abalance = abalance + 1``, in 10
      transactions), read by ``pg_recvlogical`` from a wal2json slot created beside Strata's, with
      the same options, to a file: the changes/s of the raw tool;
  (d) Strata's load of the same changes into raw (peek, decode, DuckDB), in a process of its own
      whose peak resident set is measured; then once more with everything in one transaction, to
      show memory does not grow with a transaction.

Targets (the change-capture issue): (b) ≥ 50 % of (a)'s rows/s; (d) ≥ 50 % of (c)'s changes/s,
memory bounded by the batch size. Results go to docs/benchmarks.md (section ``<!-- cdc -->``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "platform"))
sys.path.insert(0, str(ROOT / "platform_tests"))
import pg_server  # noqa: E402

PG_BIN = Path(os.environ.get("STRATA_PG_BIN", "/usr/lib/postgresql/15/bin"))
SCALE = int(os.environ.get("BENCH_CDC_SCALE", "10"))
CDC_START, CDC_END = "<!-- cdc -->", "<!-- /cdc -->"
#: pg_recvlogical's wal2json options: Strata's own (strata.sources.wal2json.OPTIONS).
OPTIONS = [
    "format-version=2",
    "include-lsn=1",
    "include-timestamp=1",
    "include-transaction=1",
    "include-types=0",
    "add-tables=public.pgbench_accounts",
]

CAPTURE = """
import json, sys, time
from pathlib import Path
import duckdb
sys.path.insert(0, {platform!r})
from strata.loading import load_dataset
from strata.registry.models import Dataset
dataset = Dataset.model_validate(json.loads({dataset!r}))
with duckdb.connect({warehouse!r}) as con:
    con.execute("select ?", [1]).fetchall()  # DuckDB imports pandas on its first parameter: not the load's time
    start = time.perf_counter()
    report = load_dataset(con, dataset, Path("."), {run!r})
    print(json.dumps({{"seconds": time.perf_counter() - start, "rows": report.rows_read,
                      "snapshot": report.metadata.get("initial_snapshot_rows", 0)}}))
"""


FLOOR = """
import json, time
import duckdb
with duckdb.connect({warehouse!r}) as con:
    columns = "{{'aid': 'VARCHAR', 'bid': 'VARCHAR', 'abalance': 'VARCHAR', 'filler': 'VARCHAR'}}"
    start = time.perf_counter()
    con.execute(
        f"create temp table parsed as select * from read_csv({copy!r}, header = false, columns = {{columns}}, "
        "delim = '\\t', quote = '', escape = '', nullstr = '\\\\N', auto_detect = false)"
    ).fetchall()
    parsed = time.perf_counter()
    con.execute("create table written as select * from parsed").fetchall()
    print(json.dumps({{"parse": parsed - start, "write": time.perf_counter() - parsed}}))
"""


def timed(cmd: list[str], env: dict, out=subprocess.DEVNULL) -> tuple[float, float, str]:
    """Run ``cmd``; (wall seconds, peak RSS MiB, stdout)."""
    # stdout and stderr go to files, not pipes: a child filling a pipe nobody reads would block
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=stdout if out is None else out, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        text = stdout.read().decode()
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"{cmd[:3]} failed: {stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, text


def sql(server, database: str, statement: str) -> list[tuple]:
    import psycopg2

    conn = psycopg2.connect(host=server.host, port=server.port, user=server.user, dbname=database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def capture(server, database: str, warehouse: Path, run: str, env: dict) -> tuple[float, float, dict]:
    """Strata's load of the accounts' changes in a fresh process: (seconds in the load, peak MiB, report)."""

    dataset = {
        "name": "accounts_changes",
        "source": {
            "type": "postgres",
            "connection": {
                "host": "${B_PG_HOST}",
                "port": "${B_PG_PORT}",
                "database": "${B_PG_DATABASE}",
                "user": "${B_PG_USER}",
            },
            "table": "public.pgbench_accounts",
            "mode": "cdc",
            "cdc": {"max_changes": 100_000_000},
        },
        "primary_key": ["aid"],
    }
    script = CAPTURE.format(
        platform=str(ROOT / "platform"), dataset=json.dumps(dataset), warehouse=str(warehouse), run=run
    )
    _wall, mib, out = timed([sys.executable, "-c", script], env, out=None)
    report = json.loads(out.strip().splitlines()[-1])
    return report["seconds"], mib, report


def main() -> None:
    server = pg_server.start()
    work = Path(tempfile.mkdtemp(prefix="strata-bench-cdc-"))
    os.chmod(work, 0o777)
    database = "bench"
    env = {**os.environ, "PGHOST": server.host, "PGPORT": str(server.port), "PGUSER": server.user}
    env |= {
        "B_PG_HOST": server.host,
        "B_PG_PORT": str(server.port),
        "B_PG_DATABASE": database,
        "B_PG_USER": server.user,
    }
    try:
        sql(server, "postgres", f"create database {database}")
        start = time.perf_counter()
        subprocess.run(
            [str(PG_BIN / "pgbench"), "-i", "-s", str(SCALE), "-q", database], check=True, env=env, capture_output=True
        )
        generated = time.perf_counter() - start
        sql(server, database, "alter table pgbench_accounts replica identity full")
        accounts = sql(server, database, "select count(*) from pgbench_accounts")[0][0]
        psql = shutil.which("psql") or str(PG_BIN / "psql")
        # (a) the raw tool's initial read
        with (work / "copy.txt").open("wb") as out:
            copy_s, _, _ = timed(
                [psql, "-X", "-q", "-d", database, "-c", "COPY pgbench_accounts TO STDOUT"], env, out=out
            )
        # (e) the floor: bare DuckDB parsing (a)'s output, then writing it to a database file
        script = FLOOR.format(warehouse=str(work / "floor.duckdb"), copy=str(work / "copy.txt"))
        floor = json.loads(timed([sys.executable, "-c", script], env, out=None)[2].strip().splitlines()[-1])
        # (b) Strata's first load: slot, exported snapshot, COPY, DuckDB
        first_s, first_mib, first = capture(server, database, work / "w.duckdb", "first", env)
        assert first["snapshot"] == accounts, first
        # (c) the raw tool's change stream, from a slot beside Strata's
        sql(server, database, "select pg_create_logical_replication_slot('bench_recv', 'wal2json')")
        for n in range(10):
            step = accounts // 10
            sql(
                server,
                database,
                f"update pgbench_accounts set abalance = abalance + 1 where aid > {n * step} and aid <= {(n + 1) * step}",
            )
        end_lsn = sql(server, database, "select pg_current_wal_lsn()::text")[0][0]
        recv = [
            str(PG_BIN / "pg_recvlogical"),
            "-d",
            database,
            "--slot",
            "bench_recv",
            "--start",
            "--endpos",
            end_lsn,
            "-f",
            str(work / "recv.json"),
            "--no-loop",
        ]
        for option in OPTIONS:
            recv += ["-o", option]
        recv_s, recv_mib, _ = timed(recv, env)
        changes = sum(1 for line in (work / "recv.json").open() if '"action":"U"' in line)
        # (d) Strata's load of the same changes
        load_s, load_mib, load = capture(server, database, work / "w.duckdb", "changes", env)
        assert load["rows"] == accounts, load
        # one transaction of every change: memory bounded by the batch, not the transaction
        sql(server, database, "update pgbench_accounts set abalance = abalance + 1")
        big_s, big_mib, big = capture(server, database, work / "w.duckdb", "one-transaction", env)
        assert big["rows"] == accounts, big
    finally:
        pg_server.stop(server)
        shutil.rmtree(work, ignore_errors=True)
    copy_rate, first_rate = accounts / copy_s, accounts / first_s
    recv_rate, load_rate = changes / recv_s, accounts / load_s
    rows = [
        ("(a)", f"`COPY pgbench_accounts TO STDOUT` by psql, {accounts:,} rows", copy_s, copy_rate, "", "rows/s"),
        (
            "(b)",
            "Strata's first load: slot, exported snapshot, COPY, into DuckDB",
            first_s,
            first_rate,
            f"{first_mib:.0f}",
            "rows/s",
        ),
        (
            "(c)",
            f"`pg_recvlogical` (wal2json, same options), {changes:,} changes in 10 transactions",
            recv_s,
            recv_rate,
            f"{recv_mib:.0f}",
            "changes/s",
        ),
        (
            "(e1)",
            "bare DuckDB parsing (a)'s output into memory",
            floor["parse"],
            accounts / floor["parse"],
            "",
            "rows/s",
        ),
        (
            "(e2)",
            "bare DuckDB writing those rows to a database file",
            floor["write"],
            accounts / floor["write"],
            "",
            "rows/s",
        ),
        ("(d)", "Strata's load of the same changes into raw", load_s, load_rate, f"{load_mib:.0f}", "changes/s"),
        (
            "(d')",
            f"the same, {accounts:,} changes in one transaction",
            big_s,
            accounts / big_s,
            f"{big_mib:.0f}",
            "changes/s",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c:.1f} | {d:,.0f} {u} | {m} |" for a, b, c, d, m, u in rows)
    read_ratio, change_ratio = first_rate / copy_rate, load_rate / recv_rate
    floor_ratio = copy_s / (copy_s + floor["write"])
    parse_ratio = copy_s / (copy_s + floor["parse"] + floor["write"])
    section = f"""{CDC_START}
## Change data capture against the raw tools (`make bench-cdc`, {time.strftime("%Y-%m-%d")})

`bench/cdc_capture.py`, on {platform.machine()}, {os.cpu_count()} cores: pgbench scale {SCALE} on a throwaway
PostgreSQL 15 with wal2json (generated in {generated:.1f} s), every figure from the same run.

| | work | seconds | rate | peak MiB |
|---|---|---:|---:|---:|
{table}

| ratio | reached | target | |
|---|---:|---:|---|
| initial read: (b) / (a) | {read_ratio:.0%} | ≥ 50 % | {"met" if read_ratio >= 0.5 else "not met"} |
| change capture: (d) / (c) | {change_ratio:.0%} | ≥ 50 % | {"met" if change_ratio >= 0.5 else "not met"} |
| memory: one transaction (d') against ten (d) | {big_mib:.0f} / {load_mib:.0f} MiB | bounded by the batch | |
| floor, in sequence: (a) / ((a) + (e2)) | {floor_ratio:.0%} | | COPY, then only the write |
| floor with the parse: (a) / ((a) + (e1) + (e2)) | {parse_ratio:.0%} | | |
{CDC_END}"""
    print(section)
    target = ROOT / "docs" / "benchmarks.md"
    text = target.read_text()
    if CDC_START in text:
        text = text[: text.index(CDC_START)] + section + text[text.index(CDC_END) + len(CDC_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    target.write_text(text)
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
