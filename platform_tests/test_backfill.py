"""Backfills launched as the UI launches them (GraphQL launchPartitionBackfill), run by the backfill daemon.

The daemon's iteration function and dagster-graphql's test workspace are Dagster internals used
as the Dagster notes (section 9) show; the code location is loaded out of process, as in the UI.
"""

from __future__ import annotations

import logging
from datetime import date

import dagster as dg
import pytest
from conftest import make_settings, strata_instance
from dagster._core.execution.backfill import BulkActionStatus
from dagster._daemon.backfill import execute_backfill_iteration
from dagster_graphql.test.utils import define_out_of_process_workspace, execute_dagster_graphql

from strata.partition_window import PartitionWindow
from strata.reconcile.tpch import tpch_datasets, verify
from strata.settings import PROJECT_ROOT

LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }"""
ASSETS = "{ assetNodes { assetKey { path } isPartitioned isMaterializable } }"
RUN_LAUNCHER = {
    "run_launcher": {
        "module": "dagster._core.launcher.sync_in_memory_run_launcher",
        "class": "SyncInMemoryRunLauncher",
    },
    "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"},
}


def serve(monkeypatch, tmp_path, tpch_landing):
    """A Dagster instance and the strata code location served out of process."""
    settings = make_settings(monkeypatch, tmp_path / "data", tpch_landing)
    with (
        strata_instance(RUN_LAUNCHER) as instance,
        define_out_of_process_workspace(
            str(PROJECT_ROOT / "platform" / "strata" / "definitions.py"), "defs", instance
        ) as workspace,
    ):
        yield settings, instance, workspace


@pytest.fixture
def ui(monkeypatch, tmp_path, tpch_landing):
    """The code location with the default single-run backfills."""
    yield from serve(monkeypatch, tmp_path, tpch_landing)


def backfill(instance, workspace, params: dict) -> list[dg.DagsterRun]:
    """Launch a backfill with the UI's mutation, run the daemon until it ends, return its runs."""
    res = execute_dagster_graphql(workspace.create_request_context(), LAUNCH, {"p": params})
    out = res.data["launchPartitionBackfill"]
    assert out["__typename"] == "LaunchBackfillSuccess", out
    backfill_id = out["backfillId"]
    for _ in range(20):
        list(execute_backfill_iteration(workspace, logging.getLogger("backfill-test")))
        if instance.get_backfill(backfill_id).status != BulkActionStatus.REQUESTED:
            break
    assert instance.get_backfill(backfill_id).status == BulkActionStatus.COMPLETED_SUCCESS
    return list(reversed(instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))))


def asset_paths(workspace, partitioned: bool | None = None) -> list[list[str]]:
    nodes = execute_dagster_graphql(workspace.create_request_context(), ASSETS).data["assetNodes"]
    return [
        n["assetKey"]["path"]
        for n in nodes
        if n["isMaterializable"] and (partitioned is None or n["isPartitioned"] == partitioned)
    ]


def test_partition_range_backfill_is_one_run_of_raw_and_dbt(ui):
    settings, instance, workspace = ui
    # the snapshots and dimensions exist already, as after any earlier run
    unpartitioned = asset_paths(workspace, partitioned=False)
    backfill(instance, workspace, {"assetSelection": [{"path": p} for p in unpartitioned], "allPartitions": True})

    partitioned = asset_paths(workspace, partitioned=True)
    runs = backfill(
        instance,
        workspace,
        {
            "partitionsByAssets": [
                {
                    "assetKey": {"path": p},
                    "partitions": {"range": {"start": "1997-02-01", "end": "1997-02-10"}},
                }
                for p in partitioned
            ]
        },
    )

    assert len(runs) == 1
    run = runs[0]
    assert run.tags["dagster/asset_partition_range_start"] == "1997-02-01"
    assert run.tags["dagster/asset_partition_range_end"] == "1997-02-10"
    assert {k.to_user_string() for k in run.asset_selection} == {"/".join(p) for p in partitioned}
    materialized = instance.get_materialized_partitions(dg.AssetKey(["marts", "mart_revenue_daily"]))
    assert len(materialized) == 10
    report = verify(
        tpch_datasets(),
        settings.landing_dir,
        settings.warehouse_path,
        PartitionWindow.from_dates("daily", "UTC", date(1997, 2, 1), date(1997, 2, 11)),
    )
    assert report.ok, [str(m) for m in report.mismatches]


def test_backfill_of_every_asset_orders_facts_after_dimensions(ui):
    """Selecting the whole graph on a fresh warehouse: snapshots and dimensions first, then the days."""
    settings, instance, workspace = ui
    runs = backfill(
        instance,
        workspace,
        {
            "assetSelection": [{"path": p} for p in asset_paths(workspace)],
            "partitionNames": ["1992-01-01", "1992-01-02", "1992-01-03"],
        },
    )
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    ran = [{k.to_user_string() for k in r.asset_selection} for r in runs]
    dims = next(i for i, s in enumerate(ran) if "marts/dim_customer" in s)
    facts = next(i for i, s in enumerate(ran) if "marts/fct_order_lines" in s)
    assert dims < facts
    assert all(
        r.tags.get("dagster/asset_partition_range_start") == "1992-01-01"
        for r in runs
        if "marts/fct_order_lines" in {k.to_user_string() for k in r.asset_selection}
    )
    report = verify(
        tpch_datasets(),
        settings.landing_dir,
        settings.warehouse_path,
        PartitionWindow.from_dates("daily", "UTC", date(1992, 1, 1), date(1992, 1, 4)),
    )
    assert report.ok, [str(m) for m in report.mismatches]


@pytest.fixture
def chunked_ui(monkeypatch, tmp_path, tpch_landing):
    """As ``ui``, with backfills split into runs of 3 days (STRATA_BACKFILL_CHUNK_DAYS=3)."""
    monkeypatch.setenv("STRATA_BACKFILL_CHUNK_DAYS", "3")
    yield from serve(monkeypatch, tmp_path, tpch_landing)


def test_chunked_backfill_publishes_the_whole_range_once_at_the_end(chunked_ui):
    """Raw and dbt run in chunks of 3 days; ``published`` is written once, after the last chunk,
    in one run and one transaction: readers never see half the range."""
    settings, instance, workspace = chunked_ui
    backfill(
        instance,
        workspace,
        {"assetSelection": [{"path": p} for p in asset_paths(workspace, False)], "allPartitions": True},
    )
    runs = backfill(
        instance,
        workspace,
        {
            "assetSelection": [
                {"path": p}
                for p in asset_paths(workspace, partitioned=True) + asset_paths(workspace, partitioned=False)
                if p in asset_paths(workspace, partitioned=True) or p[0] == "published"
            ],
            "partitionNames": [f"1997-02-0{d}" for d in range(1, 8)],
        },
    )
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    publish = [r for r in runs if any(k.path[0] == "published" for k in r.asset_selection)]
    chunks = [r for r in runs if r not in publish]
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]) for r in chunks
    ] == [
        ("1997-02-01", "1997-02-03"),
        ("1997-02-04", "1997-02-06"),
        ("1997-02-07", "1997-02-07"),
    ]
    [run] = publish  # once, unpartitioned: a swap of the whole table
    assert {k.path[0] for k in run.asset_selection} == {"published"}
    last_chunk_end = max(instance.get_run_stats(r.run_id).end_time for r in chunks)
    assert instance.get_run_stats(run.run_id).start_time >= last_chunk_end
    import duckdb

    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        published = con.execute("select * from published.mart_revenue_daily order by all").fetchall()
        mart = con.execute("select * from marts.mart_revenue_daily order by all").fetchall()
    assert published == mart and len(published) > 0
