"""The one place that assembles Strata's Dagster definitions.

registry (``assets_config/``) -> dataset assets; dbt project -> dbt assets; marts -> published
layer; settings -> resources. Cross-cutting policy (executor, pools, backfill chunks, retries,
automation conditions) is applied here, and the jobs, schedules and sensors that run it all.
A broken dataset file never stops the code location from loading: it becomes a placeholder asset
that shows its errors.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import dagster as dg

from strata.dbt_manifest import daily_partitions_of_models, load_manifest, model_relations
from strata.defs.automation import (
    SOURCE_RETRY_POLICY,
    build_automation_sensor,
    build_failure_alert_sensor,
    with_automation,
)
from strata.defs.cdc_sensor import build_cdc_sensor
from strata.defs.dbt_assets import build_dbt_assets
from strata.defs.dbt_project import dbt_project
from strata.defs.freshness import build_freshness
from strata.defs.jobs import build_group_jobs
from strata.defs.landing_sensor import build_landing_sensor
from strata.defs.maintenance import build_maintenance
from strata.defs.mart_checks import build_mart_checks
from strata.defs.partitions import daily_partitions
from strata.defs.publish import build_publish_asset, partitioned_marts
from strata.defs.registry_assets import (
    broken_keys,
    build_broken_asset,
    build_dataset_asset,
    build_registry_errors_sensor,
    dataset_key,
    relation_key,
)
from strata.defs.resources import build_resources
from strata.defs.schedules import build_partition_schedule
from strata.registry.loader import Registry, load_registry
from strata.registry.models import FilesSource, HttpSource, Partitioning, PostgresSource
from strata.settings import ASSETS_CONFIG_DIR, Settings
from strata.warehouse import writer_pool


def load_project_registry(config_dirs: list[Path] | None = None, manifest: dict | None = None) -> Registry:
    """The registry under ``config_dirs`` (default ``assets_config/``), checked against the dbt models."""
    manifest = manifest if manifest is not None else load_manifest(dbt_project.manifest_path)
    return load_registry(config_dirs or [ASSETS_CONFIG_DIR], external_tables=model_relations(manifest))


def build_definitions(settings: Settings | None = None, config_dirs: list[Path] | None = None) -> dg.Definitions:
    """Build the code location's definitions for ``settings`` (default: from the environment).

    Runs execute in process: on a DuckDB file every step shares the single-writer warehouse pool,
    so steps run one at a time anyway (on a lake, parallelism comes from concurrent runs: chunked
    backfills), and one process saves the ~5 s start-up per step of the multiprocess
    executor (docs/benchmarks.md).
    """
    settings = settings or Settings.from_env()
    settings.ensure_directories()
    manifest = load_manifest(dbt_project.manifest_path)
    registry = load_project_registry(config_dirs or settings.assets_config, manifest)

    transform_pool = writer_pool(settings.warehouse)
    chunked = dg.BackfillPolicy.multi_run(settings.backfill_chunk_days) if settings.backfill_chunk_days else None
    assets: list[dg.AssetsDefinition] = [
        build_dataset_asset(
            ds,
            [relation_key(r) for r in registry.dependencies.get(name, [])],
            registry.files[name],
            registry.datasets,
            backfill_policy=chunked,
            retry_policy=SOURCE_RETRY_POLICY if isinstance(ds.source, PostgresSource | HttpSource) else None,
            pool=writer_pool(settings.warehouse, ds.table),
        )
        for name, ds in registry.datasets.items()
    ]
    start, end = daily_partitions_of_models(manifest)
    dbt_daily = daily_partitions(
        Partitioning(start=date.fromisoformat(start), end=date.fromisoformat(end) if end else None)
    )
    dbt_defs = build_dbt_assets(dbt_daily, chunked, pool=transform_pool)
    marts = partitioned_marts(assets + dbt_defs)
    if marts:
        dbt_defs.append(build_publish_asset(marts, pool=transform_pool))
    fresh, freshness_schedules = build_freshness(registry.datasets)
    checks = build_mart_checks(dbt_daily, pool=transform_pool) + fresh
    taken = {dataset_key(ds) for ds in registry.datasets.values()} | {k for a in dbt_defs for k in a.keys}
    keys = broken_keys(registry, taken)
    assets += [build_broken_asset(b, keys[str(b.path)]) for b in registry.broken]
    raw_keys = {dataset_key(ds) for ds in registry.datasets.values() if ds.layer == "raw"} | set(keys.values())
    all_assets = with_automation(assets + dbt_defs, raw_keys)
    group_jobs = build_group_jobs(registry.datasets, all_assets)
    files_datasets = [ds for ds in registry.datasets.values() if isinstance(ds.source, FilesSource)]
    sensors = [
        build_landing_sensor(files_datasets, group_jobs, settings.landing_dir, settings.sensor_interval_seconds),
        build_automation_sensor(settings.sensor_interval_seconds),
        build_failure_alert_sensor(settings.alert_log),
    ]
    cdc = build_cdc_sensor(list(registry.datasets.values()), group_jobs, settings.sensor_interval_seconds)
    if cdc is not None:
        sensors.append(cdc)
    if registry.broken:
        sensors.append(build_registry_errors_sensor(registry, keys))
    maintenance_job, maintenance_schedule = build_maintenance(settings.lake_snapshot_retention, transform_pool)
    return dg.Definitions(
        assets=all_assets,
        asset_checks=checks,
        jobs=[gj.job for gj in group_jobs] + [maintenance_job],
        schedules=[build_partition_schedule(gj, settings.daily_schedule_at) for gj in group_jobs if gj.partitions_def]
        + [maintenance_schedule]
        + freshness_schedules,
        sensors=sensors,
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
