"""The landing-zone sensor never storms: high-water marks per dataset, range runs, a small cursor.

* A dataset whose registry file is broken for a while keeps its place in the cursor: once fixed,
  only the files that arrived meanwhile run.
* A first sighting of many files (a restored folder, a dataset the cursor does not know) becomes
  one range run per stretch of contiguous days, and such a run loads exactly those days.
* A file replaced by one of the same size and mtime is seen (its ctime changed).
* The cursor stays small (bytes per dataset, not per file).
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import date

import dagster as dg
from conftest import Platform, daily_file
from test_automation import run, tick, touch

from strata.settings import ASSETS_CONFIG_DIR

ORDERS = dg.AssetKey(["raw", "tpch_orders"])
MART = dg.AssetKey(["marts", "mart_revenue_daily"])
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def registry_copy(tmp_path, broken: str | None = None):
    """A copy of the project's registry, with ``broken``'s file made invalid."""
    target = tmp_path / "assets_config"
    shutil.copytree(ASSETS_CONFIG_DIR, target)
    if broken:
        path = next(target.rglob(f"{broken}.yaml"))
        path.write_text(path.read_text().replace("load: overwrite_partition", "load: overwrite_partitionz"))
    return [target]


def requests_by_range(result) -> dict[tuple[str, str], dg.RunRequest]:
    out = {}
    for r in result.run_requests:
        key = (
            (r.partition_key, r.partition_key) if r.partition_key else (r.tags.get(RANGE_START), r.tags.get(RANGE_END))
        )
        out[key] = r
    return out


def test_a_broken_dataset_keeps_its_place_in_the_cursor(damaged_platform, tmp_path):
    platform = damaged_platform
    landing = platform.settings.landing_dir
    baseline = tick(platform, "landing_files")
    assert not baseline.run_requests

    broken = Platform(platform.settings, platform.instance, registry_copy(tmp_path / "broken", "orders"))
    touch(daily_file(landing, "orders", "1995-01-10"))  # arrives while orders.yaml is broken
    while_broken = tick(broken, "landing_files", baseline.cursor)
    assert not while_broken.run_requests  # nothing of orders can run; lineitem did not change
    assert "tpch_orders" in json.loads(while_broken.cursor)["marks"]  # its mark is kept

    fixed = Platform(platform.settings, platform.instance, registry_copy(tmp_path / "fixed"))
    after = tick(fixed, "landing_files", while_broken.cursor)
    [request] = after.run_requests  # one day, not every orders file
    assert request.partition_key == "1995-01-10" and ORDERS in request.asset_selection


def test_a_restored_folder_runs_contiguous_days_as_range_runs(damaged_platform):
    platform = damaged_platform
    landing = platform.settings.landing_dir
    baseline = tick(platform, "landing_files")
    for day in ("1995-01-05", "1995-01-06", "1995-01-07", "1995-01-10"):
        touch(daily_file(landing, "orders", day))
        touch(daily_file(landing, "lineitem", day))
    result = tick(platform, "landing_files", baseline.cursor)
    runs = requests_by_range(result)
    assert set(runs) == {("1995-01-05", "1995-01-07"), ("1995-01-10", "1995-01-10")}
    span = runs[("1995-01-05", "1995-01-07")]
    assert span.partition_key is None and span.job_name == "daily_raw"

    before = platform.instance.get_materialized_partitions(MART)
    assert run(platform, span).success  # the range run loads exactly its days, through the marts
    assert platform.instance.get_materialized_partitions(MART) - before == {"1995-01-05", "1995-01-06", "1995-01-07"}
    assert platform.query(
        "select count(distinct _partition_date) from raw.tpch_orders where _run_id = ?",
        [platform.instance.get_runs(limit=1)[0].run_id],
    ) == [(3,)]


def test_a_dataset_the_cursor_does_not_know_runs_its_history_in_ranges(damaged_platform):
    platform = damaged_platform
    baseline = tick(platform, "landing_files")
    cursor = json.loads(baseline.cursor)
    del cursor["marks"]["tpch_orders"]  # as if orders had just been registered
    result = tick(platform, "landing_files", json.dumps(cursor))
    runs = requests_by_range(result)
    assert list(runs) == [("1992-01-01", "1998-08-02")]  # every day has a file: one range run
    [request] = runs.values()
    assert ORDERS in request.asset_selection
    assert dg.AssetKey(["raw", "tpch_customer"]) not in request.asset_selection


def test_a_corrected_file_with_the_same_size_and_mtime_is_seen_and_the_cursor_is_small(damaged_platform):
    platform = damaged_platform
    landing = platform.settings.landing_dir
    baseline = tick(platform, "landing_files")
    files = sum(1 for _ in (landing / "tpch").rglob("*.parquet"))
    assert files > 4_000 and len(baseline.cursor) < 2_000  # bytes per dataset, not per file

    path = daily_file(landing, "orders", "1995-01-12")
    st = path.stat()
    data = bytearray(path.read_bytes())
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(data))  # same bytes, so the same size; the mtime is set back below
    os.replace(tmp, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    [request] = tick(platform, "landing_files", baseline.cursor).run_requests
    assert request.partition_key == date(1995, 1, 12).isoformat()
