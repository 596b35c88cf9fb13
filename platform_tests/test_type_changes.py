"""Changing a declared column type: a widening is applied in the load's transaction; an impossible one is
refused (before any run by ``strata registry validate``, at run time by the load) and ``strata rebuild``
moves the old table aside so that the dataset loads anew with nothing lost."""

from __future__ import annotations

import textwrap
from datetime import date

import dagster as dg
import duckdb
import pytest
from click.testing import CliRunner
from conftest import make_settings

from strata.cli import main
from strata.errors import TypeMigrationError
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.loader import load_registry

DAY = PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 1), date(2024, 3, 2))


def write(config, amount: str, code: str) -> None:
    (config / "orders.yaml").write_text(
        textwrap.dedent(
            f"""
            name: orders
            source: {{type: files, format: csv, path: "orders/{{date}}.csv"}}
            partitioning: {{column: order_date, start: 2024-03-01}}
            primary_key: [order_id]
            columns:
              - {{name: order_id, type: INTEGER, nullable: false}}
              - {{name: order_date, type: DATE}}
              - {{name: amount, type: "{amount}"}}
              - {{name: code, type: {code}}}
            """
        )
    )


@pytest.fixture
def setup(tmp_path, monkeypatch):
    landing, config = tmp_path / "landing", tmp_path / "config"
    (landing / "orders").mkdir(parents=True)
    config.mkdir()
    (landing / "orders" / "2024-03-01.csv").write_text(
        "order_id,order_date,amount,code\n1,2024-03-01,12.50,007\n2,2024-03-01,99999.99,x1\n"
    )
    settings = make_settings(monkeypatch, tmp_path / "data", landing)
    monkeypatch.setenv("STRATA_ASSETS_CONFIG", str(config))
    (tmp_path / "dagster_home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    settings.ensure_directories()
    return settings, config


def load(settings, config):
    dataset = load_registry([config]).datasets["orders"]
    with duckdb.connect(str(settings.warehouse)) as con:
        return load_dataset(con, dataset, settings.landing_dir, "r", DAY)


def types(settings) -> dict:
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        return dict(
            con.execute(
                "select column_name, data_type from duckdb_columns() where table_name = 'orders' "
                "and schema_name = 'raw'"
            ).fetchall()
        )


def test_a_widening_is_applied_with_the_load(setup):
    settings, config = setup
    write(config, "DECIMAL(7,2)", "VARCHAR")
    load(settings, config)
    assert types(settings)["amount"] == "DECIMAL(7,2)"
    write(config, "DECIMAL(18,2)", "VARCHAR")
    result = CliRunner().invoke(main, ["registry", "validate"])
    assert result.exit_code == 0, result.output
    assert (
        "note: " in result.output
        and "amount: DECIMAL(7,2) -> DECIMAL(18,2), applied to the existing rows" in result.output
    )
    report = load(settings, config)
    assert report.metadata["schema_changes"] == "amount: DECIMAL(7,2) -> DECIMAL(18,2)"
    assert types(settings)["amount"] == "DECIMAL(18,2)"
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        assert con.execute("select sum(amount)::varchar from raw.orders").fetchall()[0][0] == "100012.49"


def test_an_impossible_change_is_refused_and_rebuild_loses_nothing(setup):
    settings, config = setup
    write(config, "DECIMAL(7,2)", "VARCHAR")
    load(settings, config)
    write(config, "DECIMAL(7,2)", "INTEGER")  # 'x1' is no integer
    result = CliRunner().invoke(main, ["registry", "validate"])
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "column 'code'" in line)
    number = next(
        i for i, text in enumerate((config / "orders.yaml").read_text().splitlines(), 1) if "name: code" in text
    )
    assert (
        f"orders.yaml:{number}:" in line
        and "code is VARCHAR in the warehouse and 1 of its values do not convert to INTEGER" in line
    )
    assert "strata rebuild orders" in line
    # the load refuses it too, and changes nothing
    before = types(settings)
    with pytest.raises(TypeMigrationError, match="strata rebuild orders"):
        load(settings, config)
    assert types(settings) == before
    # rebuild: the table and its quarantine move aside, the instance forgets the partitions, and the
    # dataset loads with its new types
    key = dg.AssetKey(["raw", "orders"])
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=key, partition="2024-03-01"))
        assert instance.get_materialized_partitions(key) == {"2024-03-01"}
    result = CliRunner().invoke(main, ["rebuild", "orders", "--yes"])
    assert result.exit_code == 0, result.output
    assert "moved to archive.raw__orders__" in result.output and "dagster asset materialize" in result.output
    with dg.DagsterInstance.get() as instance:
        assert instance.get_materialized_partitions(key) == set()
    report = load(settings, config)
    assert (report.rows_written, report.rows_quarantined) == (1, 1)  # 'x1' is now a cast failure
    assert types(settings)["code"] == "INTEGER"
    with duckdb.connect(str(settings.warehouse), read_only=True) as con:
        [archived] = con.execute(
            "select table_name from duckdb_tables() where schema_name = 'archive' and table_name like 'raw__orders__%'"
        ).fetchall()
        assert con.execute(f'select count(*) from archive."{archived[0]}"').fetchall() == [(2,)]


def test_a_change_that_would_lose_digits_is_refused(setup):
    """99999.99 fits DECIMAL(7,1) only as 100000.0: refused, although DuckDB would cast it."""
    settings, config = setup
    write(config, "DECIMAL(7,2)", "VARCHAR")
    load(settings, config)
    write(config, "DECIMAL(7,1)", "VARCHAR")
    with pytest.raises(TypeMigrationError, match="1 of its values do not convert to DECIMAL\\(7,1\\) without loss"):
        load(settings, config)
    assert types(settings)["amount"] == "DECIMAL(7,2)"


def test_registry_new_writes_into_the_configured_folder(setup):
    _settings, config = setup
    result = CliRunner().invoke(main, ["registry", "new", "shop_orders"])
    assert result.exit_code == 0, result.output
    assert (config / "shop_orders.yaml").exists()
    again = CliRunner().invoke(main, ["registry", "new", "shop_orders"])
    assert again.exit_code != 0 and "already exists" in again.output
