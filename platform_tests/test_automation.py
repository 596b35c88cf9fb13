"""Automation on a real Dagster instance and warehouse: the daily schedule with its lookback, the
landing-zone sensor, declarative automation (including an unpartitioned child of a partitioned
parent), retries and the run-failure alert."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pyarrow.parquet as pq
import pytest
from conftest import Platform, copy_of, daily_file, make_settings, strata_instance

from strata.partition_window import PartitionWindow
from strata.reconcile.tpch import tpch_datasets, verify
from strata.settings import ASSETS_CONFIG_DIR

DAY = "1995-01-10"
ORDERS = dg.AssetKey(["raw", "tpch_orders"])
LINEITEM = dg.AssetKey(["raw", "tpch_lineitem"])
MART = dg.AssetKey(["marts", "mart_revenue_daily"])
PUBLISHED = dg.AssetKey(["published", "mart_revenue_daily"])


def tick(platform: Platform, name: str, cursor: str | None = None):
    """One evaluation of sensor ``name``, as the daemon does it."""
    sensor = platform.defs.resolve_sensor_def(name)
    context = dg.build_sensor_context(instance=platform.instance, cursor=cursor, definitions=platform.defs)
    return sensor.evaluate_tick(context)


def run(platform: Platform, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Execute a run request in process, as the daemon would launch it."""
    job = platform.defs.resolve_job_def(request.job_name or "daily_raw")
    return job.execute_in_process(
        instance=platform.instance,
        partition_key=request.partition_key,
        asset_selection=list(request.asset_selection) if request.asset_selection else None,
        tags=request.tags,
    )


def touch(path) -> None:
    """Replace a landing file with a byte-identical copy written later (a re-delivery)."""
    data = path.read_bytes()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    st = path.stat()
    os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_daily_schedule_runs_yesterday_with_its_lookback(seeded):
    schedule = seeded.defs.resolve_schedule_def("daily_raw_schedule")
    assert schedule.cron_schedule == "0 2 * * *" and schedule.execution_timezone == "UTC"
    context = dg.build_schedule_context(
        instance=seeded.instance, scheduled_execution_time=datetime(1995, 1, 13, 2, 0, tzinfo=UTC)
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.run_key == "1995-01-12"
    assert request.tags["dagster/asset_partition_range_start"] == "1995-01-10"  # lookback_days: 2
    assert request.tags["dagster/asset_partition_range_end"] == "1995-01-12"
    outside = dg.build_schedule_context(
        instance=seeded.instance, scheduled_execution_time=datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    )
    data = schedule.evaluate_tick(outside)
    assert not data.run_requests and "2026-11-20 is not a partition" in data.skip_message


def test_the_lookback_corrects_a_day_whose_file_came_late(monkeypatch, tmp_path, landing_copy, seeded_warehouse):
    """Day D loads with half its orders; the rest arrive late; the next daily run fixes D's mart."""
    with strata_instance() as instance:
        settings = make_settings(monkeypatch, copy_of(seeded_warehouse, tmp_path), landing_copy)
        platform = Platform(settings, instance)
        orders, lines = daily_file(landing_copy, "orders", DAY), daily_file(landing_copy, "lineitem", DAY)
        full_orders, full_lines = pq.read_table(orders), pq.read_table(lines)
        early = full_orders.slice(0, full_orders.num_rows // 2)
        keep = set(early.column("o_orderkey").to_pylist())
        pq.write_table(early, orders)
        pq.write_table(full_lines.filter([k in keep for k in full_lines.column("l_orderkey").to_pylist()]), lines)
        assert platform.materialize(platform.keys(partitioned=True), partition=DAY).success
        window = PartitionWindow.from_dates("daily", "UTC", date(1995, 1, 10), date(1995, 1, 11))

        pq.write_table(full_orders, orders)  # the late rows arrive
        pq.write_table(full_lines, lines)
        assert not verify(tpch_datasets(), landing_copy, settings.warehouse_path, window).ok

        schedule = platform.defs.resolve_schedule_def("daily_raw_schedule")
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(1995, 1, 13, 2, 0, tzinfo=UTC)
        )
        [request] = schedule.evaluate_tick(context).run_requests
        result = run(platform, dg.RunRequest(job_name="daily_raw", tags=request.tags))
        assert result.success
        report = verify(tpch_datasets(), landing_copy, settings.warehouse_path, window)
        assert report.ok, [str(m) for m in report.mismatches]


def test_landing_sensor_runs_exactly_the_changed_partition(damaged_platform):
    platform = damaged_platform
    first = tick(platform, "landing_files")
    assert not first.run_requests and "baseline" in first.skip_message
    assert not tick(platform, "landing_files", first.cursor).run_requests  # nothing changed

    touch(daily_file(platform.settings.landing_dir, "orders", DAY))
    touch(daily_file(platform.settings.landing_dir, "lineitem", DAY))
    (platform.settings.landing_dir / "tpch" / "orders" / "orders_2031-01-01.parquet").write_bytes(b"x")  # no such day
    changed = tick(platform, "landing_files", first.cursor)
    [request] = changed.run_requests
    assert request.job_name == "daily_raw" and request.partition_key == DAY
    selected = {k.to_user_string() for k in request.asset_selection}
    assert {
        "raw/tpch_orders",
        "raw/tpch_lineitem",
        "staging/stg_tpch__lineitem",
        "marts/mart_revenue_daily",
    } <= selected
    assert "raw/tpch_customer" not in selected
    # the next tick does not see them again; a tick re-evaluated from the old cursor (a daemon that
    # restarted before saving it) asks for the same run key, which Dagster does not launch twice
    assert not tick(platform, "landing_files", changed.cursor).run_requests
    [again] = tick(platform, "landing_files", first.cursor).run_requests
    assert again.run_key == request.run_key

    assert run(platform, request).success
    assert platform.instance.get_latest_materialization_event(MART).dagster_event.partition == DAY

    touch(daily_file(platform.settings.landing_dir, "orders", DAY))  # replaced again: a new run key
    [replaced] = tick(platform, "landing_files", changed.cursor).run_requests
    assert replaced.run_key != request.run_key
    assert {k.to_user_string() for k in replaced.asset_selection} >= {"raw/tpch_orders", "marts/fct_order_lines"}
    assert "raw/tpch_customer" not in {k.to_user_string() for k in replaced.asset_selection}

    touch(platform.settings.landing_dir / "tpch" / "customer" / "customer.parquet")
    [snapshot] = tick(platform, "landing_files", changed.cursor).run_requests[-1:]
    assert snapshot.job_name == "snapshots_raw" and snapshot.partition_key is None
    assert {"raw/tpch_customer", "staging/stg_tpch__customer", "marts/dim_customer"} <= {
        k.to_user_string() for k in snapshot.asset_selection
    }


def test_automation_propagates_to_marts_and_to_an_unpartitioned_child(
    monkeypatch, tmp_path, tpch_landing, seeded_warehouse
):
    """eager() on the marts; an unpartitioned summary of a partitioned fact fires although most
    days of the fact were never materialized (the trap of eager() there, Dagster notes section 5)."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "order_lines_summary.yaml").write_text(
        "name: order_lines_summary\nlayer: mart\ndescription: All-time line count and revenue.\n"
        "select: select count(*) as lines, sum(net_revenue) as revenue from marts.fct_order_lines\n"
    )
    with strata_instance() as instance:
        settings = make_settings(monkeypatch, copy_of(seeded_warehouse, tmp_path), tpch_landing)
        platform = Platform(settings, instance, [ASSETS_CONFIG_DIR, config])
        summary = dg.AssetKey(["marts", "order_lines_summary"])
        platform.load_snapshots()  # the dimensions the fact depends on exist, as in any running platform
        baseline = dg.evaluate_automation_conditions(defs=platform.defs, instance=instance)
        assert baseline.total_requested == 0

        last = "1998-08-02"  # eager() follows the latest day
        assert platform.materialize([ORDERS, LINEITEM], partition=last).success
        after = dg.evaluate_automation_conditions(defs=platform.defs, instance=instance, cursor=baseline.cursor)
        for key in (MART, dg.AssetKey(["staging", "stg_tpch__orders"])):
            assert after.get_requested_partitions(key) == {last}, key
        assert after.get_num_requested(summary) == 0  # its parent has not updated yet
        assert after.get_num_requested(PUBLISHED) == 0
        assert platform.materialize(
            [k for k in platform.keys(partitioned=True) if k.path[0] != "raw"], partition=last
        ).success

        later = dg.evaluate_automation_conditions(defs=platform.defs, instance=instance, cursor=after.cursor)
        assert later.get_num_requested(summary) == 1
        assert later.get_num_requested(PUBLISHED) == 1  # the published swap follows the marts
        again = dg.evaluate_automation_conditions(defs=platform.defs, instance=instance, cursor=later.cursor)
        assert again.get_num_requested(summary) == 0
        sensor = platform.defs.resolve_sensor_def("strata_automation")
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_network_sources_retry_with_backoff_and_jitter_and_contract_errors_do_not(platform):
    from strata.defs.automation import SOURCE_RETRY_POLICY

    assert SOURCE_RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL
    assert SOURCE_RETRY_POLICY.jitter == dg.Jitter.PLUS_MINUS
    files_asset = platform.graph.get(ORDERS)
    assert files_asset.assets_def.op.retry_policy is None  # a local file is not transient


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    status = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append(json.loads(body))
        self.send_response(Hook.status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), Hook)
    Hook.received, Hook.status = [], 200
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alert"
    server.shutdown()


def failure_alert(platform: Platform):
    """Fail a run (a day whose landing files are gone) and evaluate the run-failure sensor on it."""
    daily_file(platform.settings.landing_dir, "orders", DAY).unlink()
    result = platform.materialize([ORDERS], partition=DAY, raise_on_error=False)
    assert not result.success
    run = platform.instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    sensor = platform.defs.resolve_sensor_def("run_failure_alert")
    context = dg.build_run_status_sensor_context(
        sensor_name="run_failure_alert", dagster_instance=platform.instance, dagster_run=run, dagster_event=failure
    ).for_run_failure()
    sensor(context)
    return result.run_id


def test_a_failed_run_is_alerted_to_the_log_file(damaged_platform, monkeypatch):
    monkeypatch.delenv("STRATA_ALERT_WEBHOOK_URL", raising=False)
    run_id = failure_alert(damaged_platform)
    [line] = (damaged_platform.settings.data_dir / "alerts.log").read_text().splitlines()
    alert = json.loads(line)
    assert alert["run_id"] == run_id and alert["partition"] == DAY
    assert "orders_1995-01-10.parquet" in alert["error"]  # the step's error names the missing file
    assert alert["text"].startswith("Strata run failed")


def test_a_failed_run_is_posted_to_the_webhook(damaged_platform, monkeypatch, webhook):
    monkeypatch.setenv("STRATA_ALERT_WEBHOOK_URL", webhook)
    run_id = failure_alert(damaged_platform)
    [alert] = Hook.received
    assert alert["run_id"] == run_id and "orders_1995-01-10.parquet" in alert["error"]
    assert not (damaged_platform.settings.data_dir / "alerts.log").exists()


def test_an_alert_the_webhook_refuses_goes_to_the_log(damaged_platform, monkeypatch, webhook):
    monkeypatch.setenv("STRATA_ALERT_WEBHOOK_URL", webhook)
    Hook.status = 503
    run_id = failure_alert(damaged_platform)
    assert len(Hook.received) == 4  # tenacity: 4 attempts with backoff
    alert = json.loads((damaged_platform.settings.data_dir / "alerts.log").read_text())
    assert alert["run_id"] == run_id and "503" in alert["webhook_error"]
