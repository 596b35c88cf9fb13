"""Registry files become Dagster assets: the analyst's guide followed literally, SQL-derived
datasets over dbt models, broken files that stay visible without breaking the rest."""

from __future__ import annotations

import re
import subprocess
from datetime import date
from decimal import Decimal

import dagster as dg
import pytest
from conftest import BIN, SEEDED_KEYS, Platform, copy_of, make_settings

from strata.settings import ASSETS_CONFIG_DIR, PROJECT_ROOT

GUIDE = (PROJECT_ROOT / "docs" / "registry.md").read_text()


def guide_block(marker: str, lang: str) -> str:
    """The fenced block of ``lang`` in docs/registry.md whose text contains ``marker``."""
    for block in re.findall(rf"```{lang}\n(.*?)```", GUIDE, flags=re.S):
        if marker in block:
            return block
    raise AssertionError(f"no {lang} block with {marker!r} in docs/registry.md")


def test_a_new_csv_feed_written_from_the_guide_alone(monkeypatch, tmp_path, instance):
    """docs/registry.md's worked example: validate, load the code location, materialize a day."""
    config = tmp_path / "assets_config"
    config.mkdir()
    (config / "shop_orders.yaml").write_text(guide_block("name: shop_orders", "yaml"))
    landing = tmp_path / "landing"
    (landing / "shop").mkdir(parents=True)
    sample = guide_block("order_id,order_date", "csv")
    # the sample, plus a Windows-made file for the next day with a BOM
    (landing / "shop" / "orders_2024-03-01.csv").write_text(sample + "1003,01/03/2024,Zoë,0.00,cancelled\n")
    (landing / "shop" / "orders_2024-03-02.csv").write_bytes(
        '\ufefforder_id,order_date,customer,amount,status\r\n2001,02/03/2024,"Lee, A",1.50,open\r\n'.encode()
    )

    out = subprocess.run([str(BIN / "strata"), "registry", "validate", str(config)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout

    platform = Platform(make_settings(monkeypatch, tmp_path / "data", landing), instance, [config])
    key = dg.AssetKey(["raw", "shop_orders"])
    node = platform.graph.get(key)
    assert node.group_name == "shop" and node.owners == ["team:ecommerce"] and node.partitions_def is not None
    result = platform.materialize([key], partition="2024-03-01")
    assert result.success
    [mat] = result.get_asset_materialization_events()
    assert mat.materialization.metadata["rows_in_partition"].value == 3
    assert mat.materialization.metadata["dagster/row_count"].value == 3  # the table's total: that one day
    assert platform.query("select order_id, order_date, customer, amount, status from raw.shop_orders order by 1") == [
        (1001, date(2024, 3, 1), "Smith, Jane", Decimal("19.90"), "open"),
        (1002, date(2024, 3, 1), None, Decimal("5.00"), "closed"),
        (1003, date(2024, 3, 1), "Zoë", Decimal("0.00"), "cancelled"),
    ]
    assert platform.materialize([key], start="2024-03-01", end="2024-03-02").success
    assert platform.query("select _partition_date, count(*) from raw.shop_orders group by 1 order by 1") == [
        (date(2024, 3, 1), 3),
        (date(2024, 3, 2), 1),
    ]


def test_sql_derived_mart_over_dbt_models(monkeypatch, tmp_path, tpch_landing, seeded_warehouse, instance):
    config = tmp_path / "extra"
    config.mkdir()
    (config / "revenue_by_segment.yaml").write_text(guide_block("name: revenue_by_segment", "yaml"))
    settings = make_settings(monkeypatch, copy_of(seeded_warehouse, tmp_path), tpch_landing)
    platform = Platform(settings, instance, [ASSETS_CONFIG_DIR, config])
    key = dg.AssetKey(["marts", "revenue_by_segment"])
    node = platform.graph.get(key)
    assert {p.to_user_string() for p in node.parent_keys} == {"marts/fct_order_lines", "marts/dim_customer"}
    assert node.kinds == {"duckdb", "sql"}
    start, end = SEEDED_KEYS
    assert platform.materialize([key], start=start, end=end).success
    got = platform.query("select * from marts.revenue_by_segment order by all")
    expected = platform.query(
        "select f.order_date, c.market_segment, sum(f.net_revenue) from marts.fct_order_lines f "
        "join marts.dim_customer c using (customer_key) where f.order_date < date '1995-02-01' group by all order by all"
    )
    assert got == expected and len(got) > 50


def test_a_broken_file_stays_visible_and_does_not_break_the_others(monkeypatch, tmp_path, tpch_landing, instance):
    config = tmp_path / "assets_config"
    config.mkdir()
    (config / "good.yaml").write_text(
        "name: region_copy\nlayer: raw\nsource: {type: files, format: parquet, path: tpch/region/region.parquet}\n"
    )
    (config / "broken.yaml").write_text(
        "name: shop_orders\nlayer: raw\nsource:\n  type: files\n  format: xlsx\n  path: shop/{date}.xlsx\n"
    )
    platform = Platform(make_settings(monkeypatch, tmp_path / "data", tpch_landing), instance, [config])

    broken = dg.AssetKey(["raw", "shop_orders"])
    spec = platform.graph.get(broken)
    assert "broken.yaml:5:11" in (spec.description or "") and "xlsx" in spec.description
    # the valid dataset (and the dbt project) still load and run
    assert platform.materialize([dg.AssetKey(["raw", "region_copy"])]).success
    assert platform.query("select count(*) from raw.region_copy") == [(5,)]
    # materializing the broken one fails on its registry_valid check, with the error
    result = platform.materialize([broken], raise_on_error=False)
    assert not result.success
    [evaluation] = result.get_asset_check_evaluations()
    assert evaluation.check_name == "registry_valid" and not evaluation.passed
    # and the registry_errors sensor, on by default, reports the failed check without a run
    sensor = platform.defs.resolve_sensor_def("registry_errors")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    ctx = dg.build_sensor_context(instance=instance, definitions=platform.defs)
    events = sensor(ctx).asset_events
    assert [(e.asset_key, e.check_name, e.passed) for e in events] == [(broken, "registry_valid", False)]
    assert dg.build_sensor_context(instance=instance, cursor=ctx.cursor, definitions=platform.defs) is not None


def test_assets_carry_what_the_yaml_declares(platform):
    node = platform.graph.get(dg.AssetKey(["raw", "tpch_orders"]))
    assert node.group_name == "raw" and node.owners == ["team:data-platform"]
    assert node.tags["source"] == "tpch" and node.kinds == {"duckdb", "parquet"}
    assert node.description.startswith("TPC-H orders")
    assert node.backfill_policy == dg.BackfillPolicy.single_run()
    assert node.metadata["registry_file"] == "assets_config/tpch/orders.yaml"
    columns = {c.name: c for c in node.metadata["dagster/column_schema"].columns}
    assert columns["o_orderkey"].type == "BIGINT" and not columns["o_orderkey"].constraints.nullable
    assert node.code_version


def test_dbt_partitions_match_the_raw_datasets_they_read(platform):
    raw = platform.graph.get(dg.AssetKey(["raw", "tpch_orders"])).partitions_def
    for key in ("staging/stg_tpch__orders", "marts/fct_order_lines", "marts/mart_revenue_daily"):
        assert platform.graph.get(dg.AssetKey.from_user_string(key)).partitions_def == raw


def test_the_project_registry_is_valid():
    out = subprocess.run(
        [str(BIN / "strata"), "registry", "validate"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert out.returncode == 0, out.stdout
    assert re.search(r"\d+ file\(s\): \d+ valid, 0 with errors, 0 error\(s\)", out.stdout)


@pytest.mark.parametrize("relation", ["raw.tpch_orders", "staging.stg_tpch__orders"])
def test_dbt_sources_point_at_registered_datasets(platform, relation):
    assert dg.AssetKey(relation.split(".")) in platform.graph.get_all_asset_keys()
