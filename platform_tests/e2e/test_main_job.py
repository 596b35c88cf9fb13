"""The main job as a newcomer runs it, at a size that fills several DuckDB row groups.

A fresh data folder with TPC-H at SF 0.1 (150,000 orders, ~600,000 line items: more than one row
group of 122,880 rows per table), a fresh Dagster instance, ``dagster dev`` as ``make run`` starts
it, and one backfill of every partition of every asset, launched as the UI's **Materialize all**
launches it (GraphQL ``launchPartitionBackfill`` with ``allPartitions``), run by the real daemon.
It must succeed; the UI's partition status must show every partition materialized; and
``strata verify`` must find 0 mismatches. The figures it prints (wall time, runs) are the ones the
README quotes.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from stacks import BIN, EmbeddedStack, wait_for

from strata.settings import PROJECT_ROOT

#: slow; and one xdist worker runs every end-to-end test, one at a time (they start servers)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("e2e")]

ASSETS = """{ assetNodes { assetKey { path } isMaterializable isPartitioned
  partitionStats { numMaterialized numPartitions numFailed } } }"""
LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) {
  __typename ... on PartitionBackfill { status runs(limit: 1000) { runId status } } } }"""


def test_materialize_all_at_real_size_succeeds_and_verifies(tmp_path, tpch_landing_real_size):
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "STRATA_DATA_DIR": str(tmp_path / "data"),
        "STRATA_LANDING_DIR": str(tpch_landing_real_size),
        "STRATA_WAREHOUSE_PATH": str(tmp_path / "data" / "warehouse.duckdb"),
        "STRATA_TPCH_SF": "0.1",
        "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "1",
        "DAGSTER_EVENT_BATCH_SIZE": "1000",
    }
    stack = EmbeddedStack(env, tmp_path / "dagster_home", tmp_path / "logs")
    stack.start()
    try:
        nodes = stack.graphql(ASSETS)["assetNodes"]
        keys = [n["assetKey"]["path"] for n in nodes if n["isMaterializable"]]
        started = time.monotonic()
        out = stack.graphql(LAUNCH, {"p": {"assetSelection": [{"path": k} for k in keys], "allPartitions": True}})
        launched = out["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched

        def finished():
            backfill = stack.graphql(STATUS, {"id": launched["backfillId"]})["partitionBackfillOrError"]
            done = backfill["status"] != "REQUESTED" and all(
                r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in backfill["runs"]
            )
            return done and backfill

        backfill = wait_for(finished, 1500, 5, "Materialize all")
        elapsed = time.monotonic() - started
        statuses = [r["status"] for r in backfill["runs"]]
        print(f"Materialize all at SF 0.1: {backfill['status']} in {elapsed:.0f} s, {len(statuses)} runs")  # noqa: T201
        assert backfill["status"] == "COMPLETED_SUCCESS", (statuses, stack.logs)

        # the UI's partition status: every partition of every partitioned asset materialized, none failed
        for node in stack.graphql(ASSETS)["assetNodes"]:
            stats = node["partitionStats"]
            if node["isMaterializable"] and node["isPartitioned"]:
                assert stats["numMaterialized"] == stats["numPartitions"] == 2406, node
                assert stats["numFailed"] == 0, node
    finally:
        stack.stop()

    verify = subprocess.run(
        [str(BIN / "strata"), "verify"], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert verify.returncode == 0, verify.stdout[-3000:] + verify.stderr[-3000:]
    assert " 0 mismatches" in verify.stdout
