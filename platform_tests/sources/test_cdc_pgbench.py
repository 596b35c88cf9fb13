"""Change capture under a real client: pgbench's TPC-B-like transactions, captured while they run, loads killed.

``pgbench -i -s 2`` builds 200,000 accounts (more than a DuckDB row group). Strata captures two
tables: ``pgbench_accounts`` (a primary key, REPLICA IDENTITY FULL; its current state is applied)
and ``pgbench_history`` (no key, insert-only: an append-only log that plain ``pgbench`` truncates
when it starts). While ``pgbench`` runs four clients, loads run in fresh processes and some are
killed (SIGKILL) at random moments. Then the capture catches up, and:

* the current state of the accounts equals the table, row for row;
* each transaction pgbench reports is exactly one ``u`` of an account and one ``c`` of the history
  after its ``TRUNCATE``, and the history's rows equal the table's;
* no snapshot row is also a change, and no change is stored twice.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from strata.loading import build_derived, load_dataset
from strata.registry.models import Dataset

PG_BIN = Path(os.environ.get("STRATA_PG_BIN", "/usr/lib/postgresql/15/bin"))
CONNECTION = {
    "host": "${BENCH_PG_HOST}",
    "port": "${BENCH_PG_PORT}",
    "database": "${BENCH_PG_DATABASE}",
    "user": "${BENCH_PG_USER}",
}
ACCOUNTS = Dataset.model_validate(
    {
        "name": "accounts_changes",
        "source": {"type": "postgres", "connection": CONNECTION, "table": "public.pgbench_accounts", "mode": "cdc"},
        "primary_key": ["aid"],
        "columns": [
            {"name": "aid", "type": "INTEGER", "nullable": False},
            {"name": "bid", "type": "INTEGER"},
            {"name": "abalance", "type": "INTEGER"},
            {"name": "filler", "type": "VARCHAR"},
        ],
    }
)
STATE = Dataset.model_validate(
    {
        "name": "accounts",
        "layer": "staging",
        "apply_changes": "accounts_changes",
        "primary_key": ["aid"],
        "columns": [c.model_dump() for c in ACCOUNTS.columns],
    }
)
HISTORY = Dataset.model_validate(
    {
        "name": "history_changes",
        "source": {
            "type": "postgres",
            "connection": CONNECTION,
            "table": "public.pgbench_history",
            "mode": "cdc",
            "cdc": {"insert_only": True},
        },
    }
)
LOADER = """
import sys
from pathlib import Path
import duckdb
sys.path.insert(0, {tests!r})
from sources.test_cdc_pgbench import ACCOUNTS, HISTORY
from strata.loading import load_dataset
with duckdb.connect({warehouse!r}) as con:
    for dataset in (ACCOUNTS, HISTORY):
        load_dataset(con, dataset, Path("."), "loader")
"""


@pytest.fixture
def bench(postgres, monkeypatch):
    """A database ``pgbench_<pid>`` initialized by ``pgbench -i -s 2``; dropped afterwards with its slots."""
    database = f"pgbench_{os.getpid()}"
    admin = postgres.connect()
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {database}")
        cur.execute(f"create database {database}")
    env = {"PGHOST": postgres.host, "PGPORT": str(postgres.port), "PGUSER": postgres.user}
    subprocess.run(
        [str(PG_BIN / "pgbench"), "-i", "-s", "2", "-q", database],
        check=True,
        capture_output=True,
        env={**os.environ, **env},
    )
    for key, value in postgres.env("BENCH").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("BENCH_PG_DATABASE", database)
    conn = postgres.connect()
    conn.close()
    import psycopg2

    source = psycopg2.connect(host=postgres.host, port=postgres.port, user=postgres.user, dbname=database)
    source.autocommit = True
    with source.cursor() as cur:
        cur.execute("alter table pgbench_accounts replica identity full")
    yield source, env, database
    with source.cursor() as cur:
        cur.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where database = %s", [database]
        )
    source.close()
    with admin.cursor() as cur:
        cur.execute(f"drop database if exists {database}")
    admin.close()


def table_rows(source, sql: str) -> list[tuple]:
    with source.cursor() as cur:
        cur.execute(sql)
        return [tuple(str(v) for v in row) for row in cur.fetchall()]


def test_pgbench_captured_while_it_runs_with_loads_killed(bench, tmp_path):
    source, env, database = bench
    path = str(tmp_path / "warehouse.duckdb")
    with duckdb.connect(path) as con:
        first = load_dataset(con, ACCOUNTS, Path("."), "first")
        assert first.metadata["initial_snapshot_rows"] == 200_000
        load_dataset(con, HISTORY, Path("."), "first")
    client = subprocess.Popen(
        [str(PG_BIN / "pgbench"), "-c", "4", "-j", "2", "-T", "15", database],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    script = textwrap.dedent(LOADER.format(tests=str(Path(__file__).parents[1]), warehouse=path))
    rng = random.Random(20)
    killed = finished = 0
    while client.poll() is None:
        loader = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if (killed + finished) % 2 == 0:  # every other load is killed, at a random moment
            time.sleep(rng.uniform(0.5, 3.0))
            if loader.poll() is None:
                loader.send_signal(signal.SIGKILL)
                killed += 1
        _, err = loader.communicate(timeout=300)
        if loader.returncode == 0:
            finished += 1
        else:
            assert loader.returncode == -signal.SIGKILL, err.decode()[-2000:]
    report = client.stdout.read()  # type: ignore[union-attr]
    assert client.returncode == 0, report
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", report).group(1))
    assert killed >= 1 and finished >= 1 and transactions > 100, (killed, finished, transactions)
    with duckdb.connect(path) as con:
        while load_dataset(con, ACCOUNTS, Path("."), "catch-up").rows_read:
            pass
        while load_dataset(con, HISTORY, Path("."), "catch-up").rows_read:
            pass
        build_derived(con, STATE)

        def rows(sql: str) -> list[tuple]:
            return [tuple(str(v) for v in row) for row in con.execute(sql).fetchall()]

        # the current state equals the table, row for row
        assert rows("select aid, bid, abalance, filler from staging.accounts order by aid") == table_rows(
            source, "select aid, bid, abalance, filler from pgbench_accounts order by aid"
        )
        # every transaction exactly once: one account update, one history insert after pgbench's truncate
        ops = dict(con.execute("select _cdc_op, count(*) from raw.accounts_changes group by 1").fetchall())
        assert ops == {"s": 1, "r": 200_000, "u": transactions}
        log = dict(con.execute("select _cdc_op, count(*) from raw.history_changes group by 1").fetchall())
        assert log == {"s": 1, "t": 1, "c": transactions}
        assert sorted(
            rows("select tid, bid, aid, delta, mtime from raw.history_changes where _cdc_op = 'c'")
        ) == sorted(table_rows(source, "select tid, bid, aid, delta, mtime::text from pgbench_history"))
        # no change stored twice, and no snapshot row is also a change
        assert con.execute(
            "select count(*) = count(distinct (_cdc_commit_lsn, _cdc_lsn, _cdc_seq)) from raw.accounts_changes"
        ).fetchall() == [(True,)]
        assert con.execute("select count(*) from raw.accounts_changes where _cdc_op = 'c'").fetchall() == [
            (0,)
        ]  # pgbench inserts no account: an insert would be a snapshot row read twice
