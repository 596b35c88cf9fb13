"""The code location loads, and its asset graph is what we review (snapshot)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from strata.defs.constants import WAREHOUSE_POOL
from strata.settings import PROJECT_ROOT

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"


def graph_snapshot(platform) -> dict:
    """Keys, groups, deps, partitioning, kinds, owners and checks of every asset."""
    g = platform.graph
    out = {}
    for key in sorted(g.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = g.get(key)
        out[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(p.to_user_string() for p in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "backfill_policy": str(node.backfill_policy.policy_type.value) if node.backfill_policy else None,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "checks": sorted(k.name for k in g.get_check_keys_for_assets({key})),
        }
    return out


def test_definitions_load(platform):
    dg.Definitions.validate_loadable(platform.defs)


def test_asset_graph_matches_snapshot(platform):
    """Any change of a key, a dependency, a group or a check shows up here and in review.

    Regenerate with STRATA_UPDATE_SNAPSHOTS=1 after an intended change.
    """
    current = graph_snapshot(platform)
    if os.environ.get("STRATA_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_layers_and_partitioning(platform):
    snap = graph_snapshot(platform)
    raw = {k for k in snap if k.startswith("raw/")}
    assert raw == {
        f"raw/tpch_{t}" for t in ("orders", "lineitem", "customer", "part", "supplier", "partsupp", "nation", "region")
    } | {"raw/tpch_customer_snapshots"}
    # the snapshots' SCD Type 2 history is an asset of its own, which dbt's history dimension reads
    assert snap["staging/tpch_customer_snapshots_history"]["deps"] == ["raw/tpch_customer_snapshots"]
    assert "staging/tpch_customer_snapshots_history" in snap["marts/dim_customer_history"]["deps"]
    assert "marts/dim_customer_history" in snap["marts/fct_order_lines"]["deps"]
    assert {k for k, v in snap.items() if v["partitioned"]} == {
        "raw/tpch_orders",
        "raw/tpch_lineitem",
        "staging/stg_tpch__orders",
        "staging/stg_tpch__lineitem",
        "marts/fct_order_lines",
        "marts/mart_revenue_daily",
    }
    assert all(v["backfill_policy"] == "SINGLE_RUN" for v in snap.values() if v["partitioned"])
    # each dbt source maps onto its raw asset: staging depends on raw, nothing is a stub
    assert snap["staging/stg_tpch__orders"]["deps"] == ["raw/tpch_orders"]
    assert all(platform.graph.get(dg.AssetKey.from_user_string(k)).is_materializable for k in snap)
    # dbt tests are asset checks
    assert "unique_stg_tpch__orders_order_key" in snap["staging/stg_tpch__orders"]["checks"]
    assert any(
        c.startswith("relationships_fct_order_lines_customer_key") for c in snap["marts/fct_order_lines"]["checks"]
    )


def test_daily_partitions_cover_the_tpch_order_dates(platform):
    pdef = platform.graph.get(dg.AssetKey(["raw", "tpch_orders"])).partitions_def
    keys = pdef.get_partition_keys()
    assert (len(keys), keys[0], keys[-1]) == (2406, "1992-01-01", "1998-08-02")


def test_every_step_that_opens_the_warehouse_is_in_the_writer_pool(platform):
    for assets_def in platform.defs.assets:
        assert assets_def.op.pool == WAREHOUSE_POOL, assets_def.op.name
    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_error_checks_are_blocking_and_warn_checks_are_not(platform):
    """dbt error tests and error-severity registry checks block; warn ones (volume, drift) do not."""
    specs = {(s.asset_key.to_user_string(), s.name): s.blocking for a in platform.defs.assets for s in a.check_specs}
    dbt_specs = {k: v for k, v in specs.items() if k[0].startswith(("staging/", "marts/"))}
    warn = {k for k, v in dbt_specs.items() if not v}
    assert warn and all(name.startswith("volume_vs_trailing_median") for _, name in warn)  # config: {severity: warn}
    assert len(warn) < len(dbt_specs)
    assert specs[("raw/tpch_orders", "row_accounting")] and specs[("raw/tpch_orders", "schema")]
    assert not specs[("raw/tpch_orders", "schema_drift")]
    assert not specs[("raw/tpch_orders", "volume")]


#: Generic tests that read the window vars themselves (both sides of a comparison), or only the schema.
WINDOW_AWARE_TESTS = {"row_count_matches", "relationships_in_window", "volume_vs_trailing_median", "column_types"}


def test_every_test_of_a_partitioned_model_judges_only_the_window(tmp_path):
    """A test on an incremental (partitioned) model reads the run's window: its own generic test
    does, or its ``where`` config is rendered from the window vars. A test that scanned the whole
    table would fail a window's run over days that another, failed window left half-built.

    The project is parsed with a window, as Dagster runs it, into a private target folder.
    """
    import subprocess

    from strata.dbt_manifest import dbt_executable
    from strata.settings import DBT_PROJECT_DIR

    window = '{"window_start": "2001-02-03", "window_end": "2001-02-04"}'
    subprocess.run(
        [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
        + ["--target-path", str(tmp_path), "--vars", window, "--quiet"],
        check=True,
    )
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    incremental = {
        uid
        for uid, n in manifest["nodes"].items()
        if n["resource_type"] == "model" and n["config"]["materialized"] == "incremental"
    }
    unscoped = []
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "test" or node.get("attached_node") not in incremental:
            continue
        name = (node.get("test_metadata") or {}).get("name")
        if name not in WINDOW_AWARE_TESTS and "2001-02-03" not in (node["config"].get("where") or ""):
            unscoped.append(uid)
    assert incremental and not unscoped


def test_the_manifest_is_parsed_again_only_when_a_project_file_changes(tmp_path):
    from strata.dbt_manifest import manifest_is_current

    project = tmp_path / "dbt"
    (project / "models").mkdir(parents=True)
    (project / "target").mkdir()
    model = project / "models" / "m.sql"
    model.write_text("select 1")
    manifest = project / "target" / "manifest.json"
    assert not manifest_is_current(manifest, project)  # never parsed
    manifest.write_text("{}")
    os.utime(model, ns=(1, 1))
    assert manifest_is_current(manifest, project)
    (project / "target" / "run_results.json").write_text("{}")  # dbt's own output: not a source
    (project / "logs").mkdir()
    (project / "logs" / "dbt.log").write_text("x")
    assert manifest_is_current(manifest, project)
    later = manifest.stat().st_mtime_ns + 1_000_000_000
    os.utime(model, ns=(later, later))
    assert not manifest_is_current(manifest, project)


#: The tests that watch the shared manifest, and the one that parses it again, on one worker one
#: after the other: a parse on the other worker changed the manifest under the watch (fresh-ci).
MANIFEST_GROUP = pytest.mark.xdist_group("dbt_manifest")


@MANIFEST_GROUP
def test_a_run_worker_under_dagster_dev_does_not_parse_the_dbt_project_again(dbt_manifest):
    """`dagster dev` sets DAGSTER_IS_DEV_CLI for every process it starts; dagster-dbt's
    prepare_if_dev would run `dbt parse` in each run worker (about 11 s here)."""
    import subprocess
    import sys

    before = dbt_manifest.stat().st_mtime_ns
    env = {**os.environ, "DAGSTER_IS_DEV_CLI": "1"}
    subprocess.run([sys.executable, "-W", "ignore", "-c", "import strata.definitions"], env=env, check=True)
    assert dbt_manifest.stat().st_mtime_ns == before


@MANIFEST_GROUP
def test_readers_never_see_half_a_manifest_while_the_project_is_parsed(dbt_manifest):
    """`strata prepare` parses while runs started by a sensor, or test workers, load their
    definitions from the manifest without a lock: they must see the old manifest or the new one,
    never the file dbt is still writing (the most likely cause of a lake run that failed in fresh-ci)."""
    import threading

    from strata.dbt_manifest import parse_project

    done, reads, torn = threading.Event(), 0, []

    def parse() -> None:
        try:
            parse_project()
        finally:
            done.set()

    parser = threading.Thread(target=parse)
    parser.start()
    while not done.is_set():
        text = dbt_manifest.read_bytes()
        reads += 1
        if not text.rstrip().endswith(b"}"):
            torn.append(len(text))
    parser.join()
    json.loads(dbt_manifest.read_text())
    assert reads > 100 and not torn, f"{len(torn)} of {reads} reads saw a partial manifest: {torn[:5]} bytes"
