"""Postgres sources against a real PostgreSQL 15 server: incremental by high-water mark with lag,
upserts, idempotent re-runs, partition windows and snapshots."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from conftest import by_value

from strata import warehouse
from strata.errors import SourceConfigError
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

T0 = datetime(2024, 5, 1, 12, 0, 0)
CONNECTION = {
    "host": "${SHOP_PG_HOST}",
    "port": "${SHOP_PG_PORT}",
    "database": "${SHOP_PG_DATABASE}",
    "user": "${SHOP_PG_USER}",
}


@pytest.fixture
def pg(postgres, monkeypatch, request):
    """A fresh ``orders`` table in the session's server, and the connection variables set."""
    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    table = f"orders_{request.node.name[-40:].replace('[', '_').replace(']', '_').replace('-', '_')}"
    with conn.cursor() as cur:
        cur.execute(f"drop table if exists {table}")
        cur.execute(
            f"create table {table} (id int primary key, amount numeric(10,2), status text, "
            "updated_at timestamp not null, order_day date not null)"
        )
    yield conn, table
    conn.close()


def execute(conn, sql: str, params=None) -> None:
    with conn.cursor() as cur:
        cur.execute(sql, params)


def incremental(table: str, lag: str = "1h") -> Dataset:
    return Dataset.model_validate(
        {
            "name": "shop_orders",
            "source": {
                "type": "postgres",
                "connection": CONNECTION,
                "table": f"public.{table}",
                "incremental": {"cursor": "updated_at", "lag": lag},
                "batch_rows": 2,
            },
            "load": "merge",
            "primary_key": ["id"],
            "columns": [
                {"name": "id", "type": "INTEGER", "nullable": False},
                {"name": "amount", "type": "DECIMAL(10,2)"},
                {"name": "updated_at", "type": "TIMESTAMP"},
            ],
        }
    )


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as c:
        yield c


def rows(con) -> list[tuple]:
    return con.execute("select id, amount, status, updated_at, _run_id from raw.shop_orders order by id").fetchall()


def test_incremental_load_upsert_rerun_and_late_rows(pg, con):
    conn, table = pg
    for i in range(1, 4):
        execute(
            conn,
            f"insert into {table} values (%s, %s, 'open', %s, %s)",
            (i, 10 * i, T0 + timedelta(minutes=i), date(2024, 5, 1)),
        )
    ds = incremental(table)

    first = load_dataset(con, ds, None, "run-1")  # initial load: everything, in batches of 2 rows
    assert first.metadata["query_batches"] == 2 and first.metadata["high_water_mark_before"] == "none (first load)"
    assert (first.metadata["rows_inserted"], first.metadata["rows_updated"]) == (3, 0)
    assert first.metadata["high_water_mark"] == str(T0 + timedelta(minutes=3))

    # an upsert: order 2 changes, order 4 is new
    execute(
        conn,
        f"update {table} set status = 'paid', amount = 25, updated_at = %s where id = 2",
        (T0 + timedelta(minutes=10),),
    )
    execute(
        conn,
        f"insert into {table} values (4, 40, 'open', %s, %s)",
        (T0 + timedelta(minutes=11), date(2024, 5, 1)),
    )
    second = load_dataset(con, ds, None, "run-2")
    assert (second.metadata["rows_inserted"], second.metadata["rows_updated"]) == (1, 1)
    assert rows(con) == [
        (1, Decimal("10.00"), "open", T0 + timedelta(minutes=1), "run-1"),
        (2, Decimal("25.00"), "paid", T0 + timedelta(minutes=10), "run-2"),
        (3, Decimal("30.00"), "open", T0 + timedelta(minutes=3), "run-1"),
        (4, Decimal("40.00"), "open", T0 + timedelta(minutes=11), "run-2"),
    ]

    # a re-run with nothing new changes nothing, not even the load columns
    before = warehouse.fingerprint(con, "raw.shop_orders")
    third = load_dataset(con, ds, None, "run-3")
    assert third.rows_read > 0, "the lag window is read again"
    assert (third.metadata["rows_inserted"], third.metadata["rows_updated"]) == (0, 0)
    assert warehouse.fingerprint(con, "raw.shop_orders") == before

    # a late row (committed after the high-water mark moved, stamped 30 min earlier) is caught by
    # the 1 h lag; one stamped 2 h earlier is outside the lag and is not
    execute(
        conn,
        f"insert into {table} values (5, 50, 'open', %s, %s)",
        (T0 - timedelta(minutes=19), date(2024, 5, 1)),
    )
    execute(
        conn,
        f"insert into {table} values (6, 60, 'open', %s, %s)",
        (T0 - timedelta(hours=2), date(2024, 5, 1)),
    )
    fourth = load_dataset(con, ds, None, "run-4")
    assert fourth.metadata["rows_inserted"] == 1
    assert [r[0] for r in rows(con)] == [1, 2, 3, 4, 5]


def test_a_row_updated_twice_within_the_lag_is_loaded_once_with_its_latest_values(pg, con):
    conn, table = pg
    execute(conn, f"insert into {table} values (1, 10, 'open', %s, %s)", (T0, date(2024, 5, 1)))
    ds = incremental(table)
    load_dataset(con, ds, None, "run-1")
    execute(
        conn,
        f"update {table} set status = 'paid', updated_at = %s where id = 1",
        (T0 + timedelta(minutes=5),),
    )
    execute(
        conn,
        f"update {table} set status = 'shipped', updated_at = %s where id = 1",
        (T0 + timedelta(minutes=6),),
    )
    report = load_dataset(con, ds, None, "run-2")
    assert report.metadata["rows_updated"] == 1
    assert rows(con) == [(1, Decimal("10.00"), "shipped", T0 + timedelta(minutes=6), "run-2")]


def test_partition_window_and_merge_free_overwrite(pg, con):
    conn, table = pg
    for i, day in enumerate([date(2024, 5, 1), date(2024, 5, 2), date(2024, 5, 2), date(2024, 5, 3)], start=1):
        execute(conn, f"insert into {table} values (%s, 1, 'open', %s, %s)", (i, T0, day))
    ds = Dataset.model_validate(
        {
            "name": "shop_orders",
            "source": {
                "type": "postgres",
                "connection": CONNECTION,
                "query": f"select id, order_day from {table}",
            },
            "partitioning": {"column": "order_day", "start": "2024-05-01"},
            "columns": [{"name": "id", "type": "INTEGER"}, {"name": "order_day", "type": "DATE"}],
        }
    )
    report = load_dataset(
        con, ds, None, "r", PartitionWindow.from_dates("daily", "UTC", date(2024, 5, 2), date(2024, 5, 3))
    )
    assert by_value(report.rows_by_partition) == {date(2024, 5, 2): 2}
    assert con.execute("select id, _source_table from raw.shop_orders order by 1").fetchall() == [
        (2, "query:shop_orders"),
        (3, "query:shop_orders"),
    ]


def test_hourly_wall_clock_rows_across_the_fall_change_load_once_each(pg, con):
    """A TIMESTAMP column partitioned by Los Angeles hours on 2010-11-07 (01:00 twice): hour by hour, every row
    lands in exactly one hour, none quarantined; the repeated 01:xx is the later hour, as DuckDB reads it."""
    conn, table = pg
    walls = [datetime(2010, 11, 7, 0, 30), datetime(2010, 11, 7, 1, 30), datetime(2010, 11, 7, 2, 30)]
    for i, wall in enumerate(walls, start=1):
        execute(conn, f"insert into {table} values (%s, 1, 'open', %s, %s)", (i, wall, wall.date()))
    ds = Dataset.model_validate(
        {
            "name": "shop_orders",
            "source": {"type": "postgres", "connection": CONNECTION, "query": f"select id, updated_at from {table}"},
            "partitioning": {
                "type": "hourly",
                "column": "updated_at",
                "start": "2010-11-01",
                "timezone": "America/Los_Angeles",
            },
            "columns": [{"name": "id", "type": "INTEGER"}, {"name": "updated_at", "type": "TIMESTAMP"}],
        }
    )
    day = PartitionWindow.from_dates("hourly", "America/Los_Angeles", date(2010, 11, 7), date(2010, 11, 8))
    placed = {}
    for hour in day:
        report = load_dataset(con, ds, None, "r", hour.window())
        assert report.rows_quarantined == 0, hour.key
        placed.update({p.key: n for p, n in report.rows_by_partition.items() if n})
    assert placed == {"2010-11-07-00:00": 1, "2010-11-07-01:00-0800": 1, "2010-11-07-02:00": 1}
    assert con.execute("select count(*) from raw.shop_orders").fetchall() == [(3,)]


def test_snapshot_replace(pg, con):
    conn, table = pg
    execute(conn, f"insert into {table} values (1, 1, 'open', %s, %s)", (T0, date(2024, 5, 1)))
    ds = Dataset.model_validate(
        {"name": "shop_orders", "source": {"type": "postgres", "connection": CONNECTION, "table": table}}
    )
    load_dataset(con, ds, None, "r1")
    execute(conn, f"delete from {table}")
    execute(conn, f"insert into {table} values (7, 1, 'open', %s, %s)", (T0, date(2024, 5, 1)))
    load_dataset(con, ds, None, "r2")
    assert con.execute("select id from raw.shop_orders").fetchall() == [(7,)]


def test_missing_connection_variable(pg, con, monkeypatch):
    _, table = pg
    monkeypatch.delenv("SHOP_PG_HOST")
    with pytest.raises(SourceConfigError, match=r"environment variable SHOP_PG_HOST is not set"):
        load_dataset(con, incremental(table), None, "r")
    assert not warehouse.table_exists(con, "raw.shop_orders")
