"""Change data capture against a real PostgreSQL 15 (``wal_level=logical``, the wal2json plugin).

Every change reaches raw once, in log order, with its operation, LSN and commit time; the staging
dataset that applies them equals the source table row for row; a crash on either side of the raw
commit loses nothing and duplicates nothing.
"""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from strata.checks import runner
from strata.errors import SourceConfigError
from strata.loading import build_derived, load_dataset
from strata.registry.loader import load_registry
from strata.registry.models import Dataset
from strata.sources import cdc

CONNECTION = {
    "host": "${SHOP_PG_HOST}",
    "port": "${SHOP_PG_PORT}",
    "database": "${SHOP_PG_DATABASE}",
    "user": "${SHOP_PG_USER}",
}
COLUMNS = [
    {"name": "id", "type": "INTEGER", "nullable": False},
    {"name": "name", "type": "VARCHAR"},
    {"name": "balance", "type": "DECIMAL(12,2)"},
    {"name": "segment", "type": "VARCHAR"},
]


def changes_dataset(table: str, **cdc_options) -> Dataset:
    return Dataset.model_validate(
        {
            "name": f"{table}_changes",
            "source": {
                "type": "postgres",
                "connection": CONNECTION,
                "table": f"public.{table}",
                "mode": "cdc",
                "cdc": cdc_options,
            },
            "primary_key": ["id"],
            "columns": COLUMNS,
        }
    )


def current_dataset(table: str) -> Dataset:
    return Dataset.model_validate(
        {
            "name": f"{table}_current",
            "layer": "staging",
            "apply_changes": f"{table}_changes",
            "primary_key": ["id"],
            "columns": COLUMNS,
        }
    )


@pytest.fixture
def source(postgres, monkeypatch, request):
    """A fresh ``customers_<n>`` table with REPLICA IDENTITY FULL; its slot is dropped afterwards."""
    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    table = "cust_" + "".join(ch if ch.isalnum() else "_" for ch in request.node.name)[-40:].lower()
    execute(conn, f"drop table if exists {table}")
    execute(conn, f"create table {table} (id int primary key, name text, balance numeric(12,2), segment text)")
    execute(conn, f"alter table {table} replica identity full")
    execute(conn, f"insert into {table} values (1, 'ann', 10.50, 'BUILDING'), (2, 'bob', 20, 'MACHINERY')")
    yield conn, table
    execute(
        conn, f"select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like '%{table}%'"
    )
    conn.close()


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as c:
        yield c


def execute(conn, sql: str, params=None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)


def source_rows(conn, table: str) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(f"select id, name, balance, segment from {table} order by id")
        return cur.fetchall()


def current_rows(con, table: str) -> list[tuple]:
    build_derived(con, current_dataset(table))
    return con.execute(f"select id, name, balance, segment from staging.{table}_current order by id").fetchall()


def changes(con, table: str) -> list[tuple]:
    """The change rows of raw, in log order (without the snapshot's ``s`` marker)."""
    return con.execute(
        f"select _cdc_op, id::integer, name, _cdc_seq from raw.{table}_changes where _cdc_op <> 's' "
        "order by _cdc_commit_lsn, _cdc_lsn, _cdc_seq"
    ).fetchall()


def test_inserts_updates_deletes_and_a_key_update_apply_to_the_source_state(source, con):
    conn, table = source
    ds = changes_dataset(table)
    first = load_dataset(con, ds, Path("."), "run-1")
    assert first.metadata["initial_snapshot_rows"] == 2 and first.rows_read == 3  # and the snapshot's marker
    assert changes(con, table) == [("r", 1, "ann", 1), ("r", 2, "bob", 2)]

    execute(conn, f"insert into {table} values (3, 'cy', 5, 'HOUSEHOLD')")
    execute(conn, f"update {table} set balance = 11.25, segment = 'AUTOMOBILE' where id = 1")
    execute(conn, f"delete from {table} where id = 2")
    # one transaction touching several rows, then a primary-key update
    execute(
        conn,
        f"begin; insert into {table} values (4, 'di', 1, 'BUILDING'), (5, 'ed', 2, 'BUILDING'); "
        f"update {table} set name = 'cyd' where id = 3; delete from {table} where id = 4; commit",
    )
    execute(conn, f"update {table} set id = 50 where id = 5")
    second = load_dataset(con, ds, Path("."), "run-2")
    assert second.metadata["transactions_read"] == 5
    assert second.rows_read == 9 and second.rows_quarantined == 0
    assert changes(con, table)[2:] == [
        ("c", 3, "cy", 0),
        ("u", 1, "ann", 0),
        ("d", 2, "bob", 0),
        ("c", 4, "di", 0),  # one transaction: its rows numbered in order
        ("c", 5, "ed", 1),
        ("u", 3, "cyd", 2),
        ("d", 4, "di", 3),
        ("d", 5, "ed", 0),  # a key update: the old key deleted, the new one inserted
        ("c", 50, "ed", 1),
    ]
    typed = con.execute(
        f"select _cdc_committed_at, _cdc_lsn, _cdc_commit_lsn, balance from raw.{table}_changes where _cdc_op = 'u' "
        "and id = 1"
    ).fetchall()[0]
    # raw keeps the values as PostgreSQL wrote them; the current state types them
    assert typed[0].tzinfo is not None and 0 < typed[1] < typed[2] and typed[3] == "11.25"
    assert current_rows(con, table) == source_rows(conn, table)

    # nothing new: nothing read, nothing written
    third = load_dataset(con, ds, Path("."), "run-3")
    assert third.rows_read == 0 and len(changes(con, table)) == 11
    assert current_rows(con, table) == source_rows(conn, table)


CRASH = """
import os, sys
from pathlib import Path
import duckdb
from strata import loading
from strata.sources import cdc
sys.path.insert(0, {tests!r})
from sources.test_cdc_source import changes_dataset

where = sys.argv[1]
read = cdc.extract

def crashing_extract(con, dataset, window, **options):
    ex = read(con, dataset, window, **options)
    if where == "after_commit":
        ex.after_commit = lambda: os._exit(9)  # the raw write committed, the slot did not advance
    return ex

write = loading._write_changes

def crashing_write(*args, **kwargs):
    write(*args, **kwargs)
    os._exit(9)  # the changes written, inside the raw write's transaction: nothing committed

cdc.extract = crashing_extract
if where == "before_commit":
    loading._write_changes = crashing_write
with duckdb.connect({warehouse!r}) as con:
    loading.load_dataset(con, changes_dataset({table!r}), Path("."), "crashing-run")
"""


@pytest.mark.parametrize("where", ["before_commit", "after_commit"])
def test_a_crash_on_either_side_of_the_raw_commit_gives_every_change_exactly_once(source, tmp_path, where):
    conn, table = source
    path = str(tmp_path / "crash.duckdb")
    with duckdb.connect(path) as con:
        load_dataset(con, changes_dataset(table), Path("."), "run-1")
    execute(
        conn, f"begin; insert into {table} values (3, 'cy', 5, 'HOUSEHOLD'); delete from {table} where id = 1; commit"
    )
    execute(conn, f"update {table} set balance = 99 where id = 2")
    script = CRASH.format(tests=str(Path(__file__).parents[1]), warehouse=path, table=table)
    crashed = subprocess.run([sys.executable, "-c", textwrap.dedent(script), where], capture_output=True, text=True)
    assert crashed.returncode == 9, crashed.stderr
    with duckdb.connect(path) as con:
        kept = con.execute(f"select count(*) from raw.{table}_changes").fetchall()[0][0]
        assert kept == (3 if where == "before_commit" else 6)  # the crash left the previous state, or the new one
        again = load_dataset(con, changes_dataset(table), Path("."), "run-2")
        assert again.rows_read == 3  # the slot had not moved: the changes are read again
        assert changes(con, table) == [
            ("r", 1, "ann", 1),
            ("r", 2, "bob", 2),
            ("c", 3, "cy", 0),
            ("d", 1, "ann", 1),
            ("u", 2, "bob", 0),
        ]
        assert again.metadata["rows_inserted"] == (3 if where == "before_commit" else 0)
        assert current_rows(con, table) == source_rows(conn, table)
        assert load_dataset(con, changes_dataset(table), Path("."), "run-3").rows_read == 0


def test_copy_rows_sharing_one_wal_record_are_each_kept(source, con):
    """COPY logs many rows in one multi-insert record: they share an LSN and must not merge into one."""
    conn, table = source
    ds = changes_dataset(table)
    load_dataset(con, ds, Path("."), "run-1")
    with conn.cursor() as cur:
        cur.copy_expert(
            f"copy {table} from stdin", io.StringIO("".join(f"{i}\tn{i}\t{i}.5\tBUILDING\n" for i in range(10, 510)))
        )
    copied = load_dataset(con, ds, Path("."), "run-2")
    assert copied.rows_read == 500 and copied.metadata["rows_inserted"] == 500
    assert con.execute(
        f"select count(distinct _cdc_lsn) < 500 from raw.{table}_changes where _cdc_op = 'c'"
    ).fetchall() == [(True,)]  # shared LSNs: the multi-insert is what this test is about
    assert current_rows(con, table) == source_rows(conn, table)


def test_a_truncate_is_a_change_like_any_other(source, con):
    """TRUNCATE is recorded at its LSN and empties the current state; what follows it applies; no manual step."""
    conn, table = source
    ds = changes_dataset(table)
    load_dataset(con, ds, Path("."), "run-1")
    execute(conn, f"begin; truncate {table}; insert into {table} values (7, 'gil', 3, 'BUILDING'); commit")
    execute(conn, f"insert into {table} values (8, 'hal', 4, 'BUILDING')")
    after = load_dataset(con, ds, Path("."), "run-2")
    assert after.rows_read == 3 and [c[0] for c in changes(con, table)[2:]] == ["t", "c", "c"]
    assert (
        current_rows(con, table)
        == source_rows(conn, table)
        == [
            (7, "gil", Decimal("3.00"), "BUILDING"),
            (8, "hal", Decimal("4.00"), "BUILDING"),
        ]
    )
    assert load_dataset(con, ds, Path("."), "run-3").rows_read == 0


def test_array_and_json_columns_read_the_same_in_the_snapshot_and_the_changes(postgres, monkeypatch, con):
    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    execute(conn, "drop table if exists cust_typed")
    execute(
        conn,
        "create table cust_typed (id int primary key, name text, balance numeric(12,2), segment jsonb, tags int[])",
    )
    execute(conn, "alter table cust_typed replica identity full")
    execute(conn, """insert into cust_typed values (1, 'a', 1.5, '{"x": 1.25}', '{1,2}')""")
    ds = changes_dataset("cust_typed")
    try:
        load_dataset(con, ds, Path("."), "run-1")
        execute(conn, """insert into cust_typed values (2, 'b', 2.5, '{"x": 1.25}', '{1,2}')""")
        load_dataset(con, ds, Path("."), "run-2")
        assert con.execute(
            "select distinct segment, tags from raw.cust_typed_changes where _cdc_op <> 's'"
        ).fetchall() == [('{"x": 1.25}', "{1,2}")]
    finally:
        execute(
            conn,
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like '%cust_typed%'",
        )


def test_slot_lag_is_measured_and_checked_against_the_threshold(source, con):
    conn, table = source
    ds = changes_dataset(table, max_changes=1, max_lag_bytes=20_000)
    load_dataset(con, ds, Path("."), "run-1")
    for n in range(3):
        execute(
            conn,
            f"insert into {table} select g, 'bulk', 1, 'BUILDING' from generate_series({10 + n * 1000}, {n * 1000 + 1009}) g",
        )
    behind = load_dataset(con, ds, Path("."), "run-2")  # reads the first transaction only
    assert behind.rows_read == 1000 and behind.metadata["slot_lag_bytes"] > 20_000
    lag = {o.name: o for o in runner.evaluate(con, ds, None, {}, behind)}["slot_lag"]
    assert not lag.partitions[0].passed and lag.severity == "warn"
    assert "holds back" in lag.partitions[0].detail
    while load_dataset(con, ds, Path("."), "catch-up").rows_read:
        pass
    # the slot retains WAL from its restart point, which moves at the next running-transactions
    # record (a checkpoint writes one)
    execute(conn, "checkpoint")
    caught_up = load_dataset(con, ds, Path("."), "run-3")
    assert caught_up.metadata["slot_lag_bytes"] <= 20_000
    assert {o.name: o for o in runner.evaluate(con, ds, None, {}, caught_up)}["slot_lag"].partitions[0].passed
    assert current_rows(con, table) == source_rows(conn, table)


def test_changes_beyond_a_row_group_and_the_initial_read_at_size(source, con):
    """130,000 rows in the initial read and 130,000 changes in one transaction: more than one row group each."""
    conn, table = source
    execute(conn, f"insert into {table} select g, 'n' || g, g % 1000, 'BUILDING' from generate_series(10, 130009) g")
    ds = changes_dataset(table)
    first = load_dataset(con, ds, Path("."), "run-1")
    assert first.rows_read == 130_003  # and the snapshot's marker
    execute(conn, f"update {table} set segment = 'AUTOMOBILE', balance = balance + 1 where id % 2 = 0")
    execute(conn, f"delete from {table} where id % 5 = 0")
    second = load_dataset(con, ds, Path("."), "run-2")
    assert second.rows_read == 65_001 + 26_000 and second.rows_quarantined == 0
    assert current_rows(con, table) == source_rows(conn, table)


def test_the_table_must_carry_its_old_rows(source, con):
    conn, table = source
    execute(conn, f"alter table {table} replica identity default")
    with pytest.raises(Exception, match="REPLICA IDENTITY FULL"):
        load_dataset(con, changes_dataset(table), Path("."), "run-1")
    assert cdc.slot_name(changes_dataset(table)) == f"strata_{table}_changes"


def test_the_registry_checks_cdc_and_apply_changes_declarations(tmp_path):
    (tmp_path / "orders_changes.yaml").write_text(
        textwrap.dedent(
            """
            name: orders_changes
            source:
              type: postgres
              connection: {host: "${H}", database: "${D}", user: "${U}"}
              query: select * from orders
              mode: cdc
            load: replace
            """
        )
    )
    (tmp_path / "orders_current.yaml").write_text(
        "name: orders_current\nlayer: staging\napply_changes: orders\nprimary_key: [id]\nselect: select 1 as id\n"
    )
    (tmp_path / "orders.yaml").write_text(
        "name: orders\nsource: {type: files, format: csv, path: orders.csv}\ncolumns: [{name: id, type: INTEGER}]\n"
    )
    registry = load_registry([tmp_path])
    messages = {b.name: " | ".join(i.message for i in b.issues) for b in registry.broken}
    assert "change data capture reads a table, not a query" in messages["orders_changes"]
    assert "merged by change" in messages["orders_changes"]
    assert "'orders' is not a registered CDC dataset" in messages["orders_current"]
    assert "apply_changes writes the select" in messages["orders_current"]


def test_the_guides_cdc_example_runs_in_dagster(postgres, monkeypatch, tmp_path, instance):
    """docs/registry.md's two files, as written: raw changes and staging current state as Dagster assets."""
    import dagster as dg
    from conftest import Platform, make_settings
    from registry.test_registry_assets import guide_block

    for key, value in postgres.env("CRM").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    execute(conn, "drop table if exists accounts")
    execute(conn, "create table accounts (id bigint primary key, name text, balance numeric(12,2))")
    execute(conn, "alter table accounts replica identity full")
    execute(conn, "insert into accounts values (1, 'ann', 1), (2, 'bob', 2)")
    config = tmp_path / "assets_config"
    config.mkdir()
    (config / "accounts_changes.yaml").write_text(guide_block("name: accounts_changes", "yaml"))
    (config / "accounts.yaml").write_text(guide_block("apply_changes: accounts_changes", "yaml"))
    try:
        platform = Platform(make_settings(monkeypatch, tmp_path / "data", tmp_path / "landing"), instance, [config])
        keys = [dg.AssetKey(["raw", "accounts_changes"]), dg.AssetKey(["staging", "accounts"])]
        assert platform.materialize(keys).success
        execute(conn, "begin; update accounts set balance = 5 where id = 1; delete from accounts where id = 2; commit")
        result = platform.materialize(keys)
        assert result.success
        lag = [e for e in result.get_asset_check_evaluations() if e.check_name == "slot_lag"]
        assert lag and lag[0].passed and lag[0].metadata["slot_lag_bytes"].value >= 0
        assert platform.query("select id, name, balance from staging.accounts order by id") == [
            (1, "ann", Decimal("5.00"))
        ]
        assert platform.query("select count(*) from raw.accounts_changes") == [(5,)]  # s, r, r, u, d
        # nothing runs a CDC dataset but the cdc_changes sensor: it asks for the changes and the state,
        # then waits its interval, and never while a run of the dataset is in progress
        sensor = platform.defs.resolve_sensor_def("cdc_changes")
        context = dg.build_sensor_context(instance=platform.instance, definitions=platform.defs)
        [request] = sensor.evaluate_tick(context).run_requests
        assert set(request.asset_selection) == set(keys) and request.tags["strata/cdc"] == "accounts_changes"
        again = dg.build_sensor_context(instance=platform.instance, definitions=platform.defs, cursor=context.cursor)
        assert "no CDC dataset is due" in sensor.evaluate_tick(again).skip_message
        platform.instance.add_run(
            dg.DagsterRun(
                job_name=request.job_name, run_id="r-active", tags=request.tags, status=dg.DagsterRunStatus.STARTED
            )
        )
        later = dg.build_sensor_context(
            instance=platform.instance, definitions=platform.defs, cursor='{"accounts_changes": 0}'
        )
        assert sensor.evaluate_tick(later).skip_message
    finally:
        execute(
            conn,
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'strata_accounts'",
        )
        conn.close()


def test_the_initial_read_is_the_slots_own_snapshot(source, con, monkeypatch):
    """A row committed after the slot is created but before the table is read is a change, never also a
    snapshot row: the read runs in the snapshot the slot exported."""
    conn, table = source
    made = cdc.Spool.path

    calls = []

    def insert_first(self, *args):  # the first runs after SET TRANSACTION SNAPSHOT, before COPY
        if not calls:
            execute(conn, f"insert into {table} values (3, 'cy', 5, 'HOUSEHOLD')")
        calls.append(args)
        return made(self, *args)

    monkeypatch.setattr(cdc.Spool, "path", insert_first)
    first = load_dataset(con, changes_dataset(table), Path("."), "run-1")
    assert first.metadata["initial_snapshot_rows"] == 2
    assert changes(con, table) == [("r", 1, "ann", 1), ("r", 2, "bob", 2), ("c", 3, "cy", 0)]
    assert current_rows(con, table) == source_rows(conn, table)


def test_an_empty_table_is_snapshotted_once(source, con):
    conn, table = source
    execute(conn, f"delete from {table}")
    ds = changes_dataset(table)
    assert load_dataset(con, ds, Path("."), "run-1").metadata["initial_snapshot_rows"] == 0
    execute(conn, f"insert into {table} values (3, 'cy', 5, 'HOUSEHOLD')")
    second = load_dataset(con, ds, Path("."), "run-2")
    assert "initial_snapshot_rows" not in second.metadata  # no second snapshot: its insert is a change
    assert changes(con, table) == [("c", 3, "cy", 0)]
    assert current_rows(con, table) == source_rows(conn, table)


def test_a_lost_slot_is_said_and_resync_makes_the_state_exact_again(source, con):
    from strata.errors import CdcPositionLostError

    conn, table = source
    ds = changes_dataset(table)
    load_dataset(con, ds, Path("."), "run-1")
    execute(conn, f"insert into {table} values (3, 'cy', 5, 'HOUSEHOLD')")
    load_dataset(con, ds, Path("."), "run-2")
    execute(conn, f"select pg_drop_replication_slot('{cdc.slot_name(ds)}')")
    execute(conn, f"update {table} set name = 'annie' where id = 1")  # made while nothing captured
    with pytest.raises(CdcPositionLostError, match=f"strata cdc resync {table}_changes") as info:
        load_dataset(con, ds, Path("."), "run-3")
    assert "does not exist (dropped)" in str(info.value) and "may be lost" in str(info.value)
    history = changes(con, table)
    resynced = load_dataset(con, ds, Path("."), "resync", resync=True)
    assert resynced.metadata["initial_snapshot_rows"] == 3
    assert changes(con, table)[: len(history)] == history  # the history already captured stays
    assert current_rows(con, table) == source_rows(conn, table)
    execute(conn, f"delete from {table} where id = 2")
    load_dataset(con, ds, Path("."), "run-4")
    assert current_rows(con, table) == source_rows(conn, table)


def test_what_the_state_cannot_apply_is_kept_quarantined_and_applies_once_valid(postgres, monkeypatch, con):
    """A NULL key and a value of the wrong type reach raw (the slot moves past them); the current state
    quarantines them with the reason, and applies them once they are valid: nothing is lost."""
    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    execute(conn, "drop table if exists cust_loose")
    execute(conn, "create table cust_loose (id int, name text, balance text, segment text)")  # no key, text
    execute(conn, "alter table cust_loose replica identity full")
    execute(conn, "insert into cust_loose values (1, 'ann', '10.5', 'A'), (null, 'nobody', '1', 'A')")
    ds = changes_dataset("cust_loose")
    state = current_dataset("cust_loose")
    try:
        load_dataset(con, ds, Path("."), "run-1")
        execute(conn, "insert into cust_loose values (2, 'bob', 'n/a', 'B')")
        load_dataset(con, ds, Path("."), "run-2")
        assert con.execute("select count(*) from raw.cust_loose_changes where _cdc_op <> 's'").fetchall() == [(3,)]
        report = build_derived(con, state)
        assert (report.rows_written, report.rows_quarantined) == (1, 2)
        held = con.execute(
            "select _rule, _column, _reason from quarantine.cust_loose_current order by _cdc_commit_lsn, _cdc_seq"
        ).fetchall()
        assert held == [
            ("not_null", "id", "not_null on id: missing value"),
            ("cast", "balance", "cast on balance: n/a is not DECIMAL(12,2)"),
        ]
        # the source fixes the NULL key; the contract takes the text balance: both apply, from raw
        execute(conn, "update cust_loose set id = 3 where id is null")
        load_dataset(con, ds, Path("."), "run-3")
        relaxed = Dataset.model_validate(
            {
                **state.model_dump(exclude={"select", "columns"}),
                "columns": [c if c["name"] != "balance" else {**c, "type": "VARCHAR"} for c in COLUMNS],
            }
        )
        build_derived(con, relaxed)
        assert con.execute("select id, name, balance from staging.cust_loose_current order by id").fetchall() == [
            (1, "ann", "10.5"),
            (2, "bob", "n/a"),
            (3, "nobody", "1"),
        ]
    finally:
        execute(conn, "select pg_drop_replication_slot('strata_cust_loose_changes')")


def test_a_key_less_insert_only_table_is_an_append_only_log(postgres, monkeypatch, con):
    """pgbench_history has no primary key and only gets inserts: captured without REPLICA IDENTITY FULL.
    An update then stops the load, and the slot does not move."""
    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    execute(conn, "drop table if exists hist_log")
    execute(conn, "create table hist_log (tid int, delta int, mtime timestamp, filler char(22))")
    execute(conn, "insert into hist_log values (1, 5, '2024-01-01 10:00', 'x')")
    ds = Dataset.model_validate(
        {
            "name": "hist_log_changes",
            "source": {
                "type": "postgres",
                "connection": CONNECTION,
                "table": "public.hist_log",
                "mode": "cdc",
                "cdc": {"insert_only": True},
            },
        }
    )
    try:
        load_dataset(con, ds, Path("."), "run-1")
        execute(conn, "insert into hist_log values (2, -3, '2024-01-01 10:01', 'y')")
        load_dataset(con, ds, Path("."), "run-2")
        rows = con.execute(
            "select _cdc_op, tid, filler from raw.hist_log_changes where _cdc_op <> 's' order by _cdc_commit_lsn"
        ).fetchall()
        # character(n) arrives padded from the snapshot and from the changes alike
        assert rows == [("r", "1", "x" + " " * 21), ("c", "2", "y" + " " * 21)]
        execute(conn, "update hist_log set delta = 0 where tid = 1")
        execute(conn, "select pg_stat_force_next_flush()")  # what a few seconds of idling would do
        # wal2json sends no update of a table without a replica identity: the table's statistics (which
        # count it within seconds) stop the load instead
        for _ in range(50):
            try:
                load_dataset(con, ds, Path("."), "run-3")
            except SourceConfigError as err:
                assert "declares cdc: {insert_only: true}, which cannot capture them" in str(err)
                break
            time.sleep(0.1)
        else:
            pytest.fail("an update of an insert-only table was not noticed")
    finally:
        execute(conn, "select pg_drop_replication_slot('strata_hist_log_changes')")


def test_a_stream_decoded_in_small_chunks_is_the_stream_decoded_whole(source, con, monkeypatch):
    """Two slots on one table, one decoded in chunks of 7 messages (transactions span chunks, a key
    update and a delete among them), the other in one chunk: raw holds the same rows, order and all."""
    from strata.sources import spool

    conn, table = source
    whole = changes_dataset(table)
    chunked = whole.model_copy(update={"name": f"{table}_chunked"})
    load_dataset(con, whole, Path("."), "first-whole")
    load_dataset(con, chunked, Path("."), "first-chunked")
    execute(conn, f"insert into {table} select i, 'n' || i, i, 'AUTOMOBILE' from generate_series(10, 40) as i")
    execute(conn, f"update {table} set balance = balance + 1 where id < 20")
    execute(conn, f"update {table} set id = 99 where id = 2; delete from {table} where id = 30")
    execute(conn, f"truncate {table}; insert into {table} values (5, 'eve', 1.25, 'FURNITURE')")
    load_dataset(con, whole, Path("."), "whole")
    monkeypatch.setattr(spool, "CHUNK_LINES", 7)
    report = load_dataset(con, chunked, Path("."), "chunked")
    assert report.rows_read > 7 * 5  # several chunks

    def rows(name: str) -> list[tuple]:
        return con.execute(
            "select _cdc_op, id, name, balance, segment, _cdc_commit_lsn, _cdc_lsn, _cdc_seq, _cdc_committed_at "
            f"from raw.{name} where _cdc_op not in ('s', 'r') order by _cdc_commit_lsn, _cdc_lsn, _cdc_seq"
        ).fetchall()

    assert rows(f"{table}_chunked") == rows(f"{table}_changes")
    seqs = con.execute(
        f"select _cdc_commit_lsn, list(_cdc_seq order by _cdc_seq) from raw.{table}_chunked group by 1"
    ).fetchall()
    assert all(s == list(range(len(s))) for _, s in seqs if len(s) > 1)  # each transaction's order, unbroken


def test_copy_output_is_split_at_line_ends_only(tmp_path):
    """Whatever pieces ``COPY`` writes, each chunk holds at most N whole lines and together they are the input."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from strata.sources.spool import LineChunks, Spool

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(st.text(alphabet="ab\t{}é", max_size=12), max_size=40),
        st.integers(1, 6),
        st.lists(st.integers(1, 30), min_size=1, max_size=10),
    )
    def check(lines, per_chunk, cuts):
        data = "".join(line + "\n" for line in lines).encode()
        with Spool() as sp:
            with LineChunks(sp, ".tsv", per_chunk) as out:
                at, i = 0, 0
                while at < len(data):
                    size = cuts[i % len(cuts)]
                    out.write(data[at : at + size])
                    at, i = at + size, i + 1
            parts = [f.read_bytes() for f in out.files]
        assert b"".join(parts) == data
        assert all(p.endswith(b"\n") and 0 < p.count(b"\n") <= per_chunk for p in parts)
        assert len(parts) == -(-len(lines) // per_chunk)

    check()


def test_copy_runs_beside_the_decoding_and_its_error_is_raised(postgres, monkeypatch):
    """``COPY`` writes chunks in a thread while the reader takes them in order; a failing ``COPY`` raises in the reader."""
    import psycopg2

    from strata.sources import spool

    monkeypatch.setattr(spool, "CHUNK_LINES", 10)
    conn = postgres.connect()
    try:
        with spool.Spool() as sp, conn.cursor() as cur:
            chunks = [p.read_text() for p in cdc._stream(cur, "COPY (select generate_series(1, 25)) TO STDOUT", sp)]
            assert [c.split() for c in chunks] == [[str(i) for i in range(a, min(a + 10, 26))] for a in (1, 11, 21)]
        conn.rollback()
        with spool.Spool() as sp, conn.cursor() as cur:
            with pytest.raises(psycopg2.errors.DivisionByZero):
                list(cdc._stream(cur, "COPY (select 1 / (i - 3) from generate_series(1, 5) as i) TO STDOUT", sp))
    finally:
        conn.close()


#: Every column type of the values test, and the SQL that reads a column as PostgreSQL's own text
#: (``character(n)``: its output function keeps the padding, which a cast to text drops).
VALUE_TYPES = {
    "t": ("text", "t::text"),
    "c": ("character(4)", "rpad(c, 4)"),
    "n": ("numeric", "n::text"),
    "f": ("float8", "f::text"),
    "b": ("boolean", "b::text"),
    "ts": ("timestamptz", "ts::text"),
    "d": ("date", "d::text"),
    "by": ("bytea", '"by"::text'),
    "iv": ("interval", "iv::text"),
    "arr": ("text[]", "arr::text"),
    "j": ("json", "j::text"),
}


def test_any_value_reads_the_same_in_the_snapshot_and_in_the_changes(postgres, monkeypatch, tmp_path):
    """Values nobody chose (Hypothesis): a row's text in raw is PostgreSQL's own, as a snapshot row and as a change.

    Quotes, commas, tabs, newlines, backslashes, non-ASCII text, empty strings against NULL,
    padded ``character(n)``, arrays with NULLs, JSON, bytea, intervals.
    """
    import json
    from datetime import UTC, datetime, timedelta

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-(10**6), 10**6) | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=6,
    )
    row = st.fixed_dictionaries(
        {
            "t": st.none() | text,
            "c": st.none() | st.text(st.characters(codec="ascii", blacklist_characters="\x00"), max_size=4),
            "n": st.none()
            | st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9),
            # finite: wal2json 2.5 writes NaN and infinities as null (platform/strata/sources/wal2json.py)
            "f": st.none() | st.floats(allow_nan=False, allow_infinity=False),
            "b": st.none() | st.booleans(),
            "ts": st.none()
            | st.datetimes(datetime(1900, 1, 1), datetime(2200, 1, 1)).map(lambda d: d.replace(tzinfo=UTC)),
            "d": st.none() | st.dates(),
            "by": st.none() | st.binary(max_size=6),
            "iv": st.none() | st.timedeltas(timedelta(days=-9999), timedelta(days=9999)),
            "arr": st.none() | st.lists(st.none() | text, max_size=3),
            "j": st.none() | json_values.map(json.dumps),
        }
    )
    conn = postgres.connect()
    conn.autocommit = True
    names = list(VALUE_TYPES)
    quoted = ", ".join(f'"{c}"' for c in names)
    examples = iter(range(10**6))

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(row, min_size=1, max_size=6))
    def check(rows):
        table = f"cust_values_{next(examples)}"
        columns = ", ".join(f'"{c}" {VALUE_TYPES[c][0]}' for c in names)
        execute(conn, f"drop table if exists {table}")
        execute(conn, f"create table {table} (id int primary key, {columns})")
        execute(conn, f"alter table {table} replica identity full")
        insert = f"insert into {table} values (%s, {', '.join(['%s'] * len(names))})"
        for i, r in enumerate(rows):  # before the slot: snapshot rows
            execute(conn, insert, [i, *(r[c] for c in names)])
        ds = changes_dataset(table).model_copy(update={"columns": []})  # every column, as it is
        path = tmp_path / f"{table}.duckdb"
        try:
            with duckdb.connect(str(path)) as con:
                load_dataset(con, ds, Path("."), "run-1")
                for i, r in enumerate(rows):  # after it: the same values as changes
                    execute(conn, insert, [1000 + i, *(r[c] for c in names)])
                load_dataset(con, ds, Path("."), "run-2")
                got = {
                    int(k): rest
                    for k, *rest in con.execute(
                        f"select id, {quoted} from raw.{table}_changes where _cdc_op in ('r', 'c')"
                    ).fetchall()
                }
            with conn.cursor() as cur:
                cur.execute(f"select id, {', '.join(VALUE_TYPES[c][1] for c in names)} from {table}")
                expected = {k: list(rest) for k, *rest in cur.fetchall()}
            assert got == expected
        finally:
            execute(
                conn,
                f"select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like '%{table}%'",
            )
            execute(conn, f"drop table if exists {table}")

    try:
        check()
    finally:
        conn.close()


@pytest.mark.parametrize("column", ["_cdc_op", "_source_row", "_loaded_at"])
def test_a_column_named_like_a_load_column_is_refused_before_the_slot_is_made(postgres, monkeypatch, con, column):
    from strata.errors import ReservedColumnError

    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    table = f"cust_reserved{column}"
    execute(conn, f"drop table if exists {table}")
    execute(conn, f'create table {table} (id int primary key, "{column}" text)')
    execute(conn, f"alter table {table} replica identity full")
    try:
        with pytest.raises(ReservedColumnError, match=column) as err:
            load_dataset(con, changes_dataset(table).model_copy(update={"columns": []}), Path("."), "run-1")
        assert f"public.{table}" in str(err.value)
        with conn.cursor() as cur:
            cur.execute("select count(*) from pg_replication_slots where slot_name like %s", [f"%{table}%"])
            assert cur.fetchone()[0] == 0
    finally:
        execute(
            conn,
            f"select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name like '%{table}%'",
        )
        execute(conn, f"drop table if exists {table}")
        conn.close()
