"""The production stack, for real: PostgreSQL instance storage, the gRPC code server, the daemon
and the webserver as separate processes (``deploy/``), driven through the webserver's GraphQL
API and a headless Chromium, as people and the UI drive them.

One stack per module (starting it takes ~30 s); the tests run in file order.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import daily_file
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from stacks import BIN, ProdStack, wait_for

from strata.partition_window import PartitionWindow
from strata.reconcile.tpch import tpch_datasets, verify

#: slow; and one xdist worker runs every end-to-end test, one at a time (they start servers)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

START = date(1995, 3, 1)
DAYS = [(START + timedelta(days=i)).isoformat() for i in range(60)]  # 1995-03-01 .. 1995-04-29
CHUNK_DAYS = 20
NEW_DAY = "1996-01-10"  # its files are dropped into the landing zone while the backfill runs
LATE_DAY = "1995-03-05"  # half its orders at first; the rest arrive after the backfill
ARTIFACTS = Path(os.environ.get("STRATA_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts"))

LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }"""
BACKFILL = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status } } }"""
ASSETS = "{ assetNodes { assetKey { path } isPartitioned isMaterializable } }"
SENSOR_TICKS = """{ sensorOrError(sensorSelector: {repositoryLocationName: "strata",
  repositoryName: "__repository__", sensorName: "landing_files"}) {
  __typename ... on Sensor { sensorState { status ticks(limit: 5) { status } } } } }"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory, tpch_landing, postgres):
    """The stack over a private landing zone and warehouse, with its own Dagster database."""
    root = tmp_path_factory.mktemp("prod")
    landing = root / "landing"
    shutil.copytree(tpch_landing, landing)
    aside = root / "aside"
    aside.mkdir()
    for table in ("orders", "lineitem"):  # the new day is not there yet
        shutil.move(daily_file(landing, table, NEW_DAY), aside / f"{table}_{NEW_DAY}.parquet")
    half_day(landing, aside)

    con = postgres.connect()
    con.autocommit = True
    con.cursor().execute("create database dagster_prod")
    con.close()
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DAGSTER_HOME": str(root / "dagster_home"),
        "DAGSTER_PG_HOST": postgres.host,
        "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "dagster_prod",
        "DAGSTER_PG_USER": postgres.user,
        "DAGSTER_PG_PASSWORD": "",
        "STRATA_DATA_DIR": str(root / "data"),
        "STRATA_LANDING_DIR": str(landing),
        "STRATA_WAREHOUSE_PATH": str(root / "data" / "warehouse.duckdb"),
        "STRATA_BACKFILL_CHUNK_DAYS": str(CHUNK_DAYS),
        "STRATA_SENSOR_INTERVAL_SECONDS": "5",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
        "DAGSTER_EVENT_BATCH_SIZE": "1000",
    }
    env.pop("STRATA_ALERT_WEBHOOK_URL", None)
    prod = ProdStack(env, root / "dagster_home", root / "logs")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
            mp.setenv(name, env[name])
        prod.start()
        try:
            with dg.DagsterInstance.from_config(str(prod.home)) as instance:
                yield prod, instance, landing, aside
        finally:
            prod.stop()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copytree(prod.logs, ARTIFACTS / "prod-stack-logs", dirs_exist_ok=True)


def half_day(landing: Path, aside: Path) -> None:
    """Keep the full files of LATE_DAY aside; leave the first half of its orders (and their lines)."""
    orders, lines = daily_file(landing, "orders", LATE_DAY), daily_file(landing, "lineitem", LATE_DAY)
    shutil.copy(orders, aside / orders.name)
    shutil.copy(lines, aside / lines.name)
    table = pq.read_table(orders)
    early = table.slice(0, table.num_rows // 2)
    keep = set(early.column("o_orderkey").to_pylist())
    line_table = pq.read_table(lines)
    pq.write_table(early, orders)
    pq.write_table(line_table.filter([k in keep for k in line_table.column("l_orderkey").to_pylist()]), lines)


def drop(aside: Path, landing: Path, day: str) -> None:
    """Deliver the day's files as a producer should: write under a temporary name, then rename."""
    for table in ("orders", "lineitem"):
        target = daily_file(landing, table, day)
        tmp = target.with_suffix(".incoming")
        shutil.copy(aside / target.name, tmp)
        os.replace(tmp, target)


def launch(prod: ProdStack, params: dict) -> str:
    out = prod.graphql(LAUNCH, {"p": params})["launchPartitionBackfill"]
    assert out["__typename"] == "LaunchBackfillSuccess", out
    return out["backfillId"]


def backfill_status(prod: ProdStack, backfill_id: str) -> str:
    return prod.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]["status"]


def wait_backfill(prod: ProdStack, backfill_id: str, timeout_seconds: float) -> None:
    status = wait_for(
        lambda: (s := backfill_status(prod, backfill_id)) not in ("REQUESTED",) and s,
        timeout_seconds,
        what=f"backfill {backfill_id}",
    )
    assert status == "COMPLETED_SUCCESS", status


def asset_paths(prod: ProdStack, partitioned: bool) -> list[list[str]]:
    return [
        n["assetKey"]["path"]
        for n in prod.graphql(ASSETS)["assetNodes"]
        if n["isMaterializable"] and n["isPartitioned"] == partitioned
    ]


def landing_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(tags={"strata/trigger": "landing"})))


def published_after(instance: dg.DagsterInstance, published: list[list[str]], since: float) -> bool:
    """Every ``published`` asset was materialized after ``since`` and after the last update of its mart."""
    for path in published:
        publish = instance.get_latest_materialization_event(dg.AssetKey(path))
        mart = instance.get_latest_materialization_event(dg.AssetKey(["marts", path[-1]]))
        if publish is None or publish.timestamp <= since or (mart is not None and mart.timestamp >= publish.timestamp):
            return False
    return True


def run_summary(instance: dg.DagsterInstance) -> list[tuple]:
    """Each run in start order: its tags' trigger and partition, its assets, start and end (for a failure's message)."""
    out = []
    for run in instance.get_runs():
        stats = instance.get_run_stats(run.run_id)
        out.append(
            (
                stats.start_time,
                stats.end_time,
                run.tags.get("strata/trigger")
                or run.tags.get("dagster/sensor_name")
                or run.tags.get("dagster/backfill"),
                run.tags.get("dagster/partition") or run.tags.get("dagster/asset_partition_range_start"),
                sorted(k.to_user_string() for k in run.asset_selection or ()),
            )
        )
    return sorted(out, key=lambda r: r[0] or 0)


def settled(instance: dg.DagsterInstance) -> bool:
    """No run is queued, starting or running."""
    busy = [
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    return not instance.get_runs(filters=dg.RunsFilter(statuses=busy))


def _starting(instance) -> bool:
    return bool(instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING])))


def test_chunked_backfill_survives_a_daemon_kill_while_the_sensor_fires(stack):
    prod, instance, landing, aside = stack
    # the landing sensor has taken its baseline (the new day's files are not there yet)
    wait_for(lambda: prod.graphql(SENSOR_TICKS)["sensorOrError"]["sensorState"]["ticks"], 120, what="first sensor tick")

    unpartitioned = asset_paths(prod, False)
    snapshots = [p for p in unpartitioned if p[0] != "published"]
    wait_backfill(prod, launch(prod, {"assetSelection": [{"path": p} for p in snapshots], "allPartitions": True}), 600)

    # the days, and the published layer: what "Materialize all" on the marts and published selects
    partitioned = asset_paths(prod, True)
    published = [p for p in unpartitioned if p[0] == "published"]
    backfill_id = launch(
        prod, {"assetSelection": [{"path": p} for p in partitioned + published], "partitionNames": DAYS}
    )
    drop(aside, landing, NEW_DAY)  # the sensor fires while the backfill runs
    wait_for(
        lambda: any(
            r.status == dg.DagsterRunStatus.SUCCESS
            for r in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        ),
        600,
        what="a first backfill run",
    )
    # mid-backfill: chunks are still queued or running. Not while the run queue is handing a run
    # to the code server: a run killed in STARTING has no worker and fails only after run
    # monitoring's start_timeout_seconds (docs/deploy.md, "Stopping the daemon")
    wait_for(lambda: not _starting(instance), 120, what="no run being launched")
    prod.kill_daemon()
    assert backfill_status(prod, backfill_id) == "REQUESTED"
    prod.start_daemon()
    wait_backfill(prod, backfill_id, 1200)

    wait_for(
        lambda: any(r.tags.get("dagster/partition") == NEW_DAY for r in landing_runs(instance)), 300, what="sensor run"
    )
    wait_for(lambda: settled(instance), 600, what="all runs finished")
    drop(aside, landing, LATE_DAY)  # late rows for a day the backfill loaded
    late = wait_for(
        lambda: next((r for r in landing_runs(instance) if r.tags.get("dagster/partition") == LATE_DAY), None),
        300,
        what="late run",
    )
    wait_for(lambda: settled(instance), 600, what="all runs finished")
    # declarative automation publishes after the sensor's run: every published table is newer than
    # its mart's last update (whichever run made it), and nothing is left to run
    late_end = instance.get_run_stats(late.run_id).end_time
    wait_for(
        lambda: published_after(instance, published, late_end) and settled(instance),
        600,
        what="the automation's publish",
    )

    runs = list(instance.get_runs())
    failed = [(r.run_id, r.job_name, r.status) for r in runs if r.status != dg.DagsterRunStatus.SUCCESS]
    assert failed == []
    lock_errors = [
        (r.run_id, e.message)
        for r in runs
        for e in instance.all_logs(r.run_id)
        if "Could not set lock" in (e.message or "") or "Conflicting lock" in (e.message or "")
    ]
    assert lock_errors == []

    backfill_runs = {r.run_id for r in instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))}
    chunks = [r for r in runs if r.run_id in backfill_runs and any(k.path[0] == "raw" for k in r.asset_selection)]
    assert len(chunks) == 60 // CHUNK_DAYS
    # published is swapped in once, after every chunk ended
    [publish] = [
        r for r in runs if r.run_id in backfill_runs and any(k.path[0] == "published" for k in r.asset_selection)
    ]
    assert {k.path[0] for k in publish.asset_selection} == {"published"}
    others = [instance.get_run_stats(r).end_time for r in backfill_runs if r != publish.run_id]
    assert instance.get_run_stats(publish.run_id).start_time >= max(others)
    for path in partitioned:  # every partition materialized exactly once by the backfill
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(path), asset_partitions=DAYS), limit=10_000
        ).records
        counts = Counter(r.partition_key for r in records if r.run_id in backfill_runs)
        assert set(counts) == set(DAYS) and set(counts.values()) == {1}, (path, counts)

    # each dropped file is run exactly once (no duplicate run across the daemon restart). A day's two
    # files are renamed into place one after the other, so a tick may fall between them: one run
    # per file is then right, one run of both files too
    for day in (NEW_DAY, LATE_DAY):
        runs_files = [
            r.tags["strata/files"].split(", ") for r in landing_runs(instance) if r.tags.get("dagster/partition") == day
        ]
        ran = Counter(f for files in runs_files for f in files)
        expected = {daily_file(landing, table, day).relative_to(landing).as_posix() for table in ("orders", "lineitem")}
        assert set(ran) == expected and set(ran.values()) == {1}, (day, runs_files)

    warehouse = Path(prod.env["STRATA_WAREHOUSE_PATH"])
    for window in (
        PartitionWindow.from_dates("daily", "UTC", START, START + timedelta(days=60)),
        PartitionWindow.from_dates("daily", "UTC", date(1996, 1, 10), date(1996, 1, 11)),
    ):
        report = verify(tpch_datasets(), landing, warehouse, window)
        assert report.ok, [str(m) for m in report.mismatches]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        published = con.execute("select * from published.mart_revenue_daily order by all").fetchall()
        mart = con.execute("select * from marts.mart_revenue_daily order by all").fetchall()
    assert published == mart and len(published) > 0, run_summary(instance)
    assert not (Path(prod.env["STRATA_DATA_DIR"]) / "alerts.log").exists()


CHROMIUM = "/usr/bin/chromium"
BACKFILLS = """{ partitionBackfillsOrError(limit: 1) { __typename ... on PartitionBackfills {
  results { id status assetSelection { path } } } } }"""


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium from Debian, driven by Playwright (never downloaded by it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
        )
        yield chromium
        chromium.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(url, wait_until="networkidle")
    skip = page.get_by_role("button", name="Skip")  # Dagster's first-visit community dialog
    try:
        skip.wait_for(timeout=5000)
        skip.click()
    except Exception:  # noqa: BLE001 (not shown: nothing to dismiss)
        pass
    return page


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def test_the_ui_shows_the_layers_launches_a_backfill_and_shows_check_results(stack, browser):
    prod, instance, _landing, _aside = stack
    if instance.get_latest_materialization_event(dg.AssetKey(["raw", "tpch_customer"])) is None:
        # run alone: the orders' dimensions first, as the test above loads them
        snapshots = [p for p in asset_paths(prod, False) if p[0] != "published"]
        wait_backfill(
            prod, launch(prod, {"assetSelection": [{"path": p} for p in snapshots], "allPartitions": True}), 600
        )
    page = open_page(browser, f"{prod.url}/asset-groups")
    for group in ("raw", "staging", "marts"):
        page.get_by_text(group, exact=True).last.wait_for(state="visible", timeout=60_000)
    shot(page, "asset-graph.png")
    page.get_by_text("raw", exact=True).last.click()  # expand the raw group
    page.get_by_text("tpch_orders", exact=True).first.wait_for(state="visible", timeout=60_000)
    shot(page, "asset-graph-raw.png")

    # an asset's partitions dialog: a backfill of three days
    page = open_page(browser, f"{prod.url}/assets/raw/tpch_orders")
    dialog = page.get_by_role("dialog")
    # the button can be clicked before the page has loaded the asset's partitions; then the click
    # opens nothing, so click again. A dialog that is open but still loading is waited for, never
    # clicked through (its backdrop takes the clicks). A loaded machine took over 60 s once.
    # Whether "Are you sure?" comes first depends on which tests ran before (tpch_customer).
    launch_text = dialog.get_by_text("Launch runs to materialize")
    deadline = time.monotonic() + 300
    while not launch_text.first.is_visible():
        if time.monotonic() > deadline:
            shot(page, "materialize-dialog-timeout.png")
            raise AssertionError("the Materialize dialog did not load within 300 s")
        confirm = page.get_by_role("dialog").filter(has_text="Are you sure?").get_by_role("button", name="Confirm")
        if confirm.is_visible():
            # Dagster asks first when an upstream asset (tpch_customer) was never materialized;
            # the load itself tells that case apart (referential check), so go on
            confirm.click()
        elif not dialog.first.is_visible():
            try:
                page.get_by_role("button", name="Materialize…").first.click(timeout=10_000)
            except PlaywrightTimeoutError:
                pass
        time.sleep(1)
    field = dialog.locator("input[type=text]").first
    field.fill("[1995-05-01...1995-05-03]")
    field.press("Enter")
    dialog.get_by_text("3 partitions").wait_for(timeout=30_000)
    shot(page, "backfill-dialog.png")
    dialog.get_by_role("button", name="Launch backfill").click()

    def latest():
        results = prod.graphql(BACKFILLS)["partitionBackfillsOrError"]["results"]
        return results[0] if results and results[0]["assetSelection"] == [{"path": ["raw", "tpch_orders"]}] else None

    backfill = wait_for(latest, 60, what="the UI's backfill")
    wait_backfill(prod, backfill["id"], 600)
    materialized = instance.get_materialized_partitions(dg.AssetKey(["raw", "tpch_orders"]))
    assert {"1995-05-01", "1995-05-02", "1995-05-03"} <= materialized

    # the asset's checks and their results
    page = open_page(browser, f"{prod.url}/assets/raw/tpch_orders?view=checks")
    for check in ("schema", "reconciliation", "row_accounting", "referential_o_custkey"):
        page.get_by_text(check, exact=True).first.wait_for(state="visible", timeout=60_000)
    body = page.inner_text("body")
    assert "Passed" in body or "Succeeded" in body
    shot(page, "asset-checks.png")
