"""``strata``: the one command-line interface.

strata demo generate [--scale-factor SF] [--force]   TPC-H landing zone (STRATA_TPCH_SF)
strata demo page-views [--start D] [--days N]         a seeded hourly event feed
strata prepare                                        dbt manifest + Dagster home
strata verify                                         reconcile the warehouse with the source
strata registry validate|schema|new                   the dataset registry
strata rebuild NAME                                   move a dataset's tables aside to load it anew
strata cdc resync NAME                                a CDC dataset's table read again at a new slot
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from strata.settings import PROJECT_ROOT, Settings


@click.group()
def main() -> None:
    """Strata: TPC-H from a landing zone to tested marts, on Dagster, dbt and DuckDB."""


@main.group()
def demo() -> None:
    """The demo source."""


@demo.command("generate")
@click.option(
    "--scale-factor",
    "-s",
    type=float,
    default=None,
    help="TPC-H scale factor (default: STRATA_TPCH_SF or 0.1).",
)
@click.option("--force", is_flag=True, help="Regenerate even if the landing zone already holds this scale factor.")
def demo_generate(scale_factor: float | None, force: bool) -> None:
    """Generate TPC-H with tpchgen-cli and lay it out in the landing zone (idempotent)."""
    from strata.demo.tpch import generate

    settings = Settings.from_env()
    sf = scale_factor if scale_factor is not None else settings.tpch_sf
    result = generate(settings.landing_dir, sf, force=force)
    state = "generated" if result.generated else "up to date"
    click.echo(f"TPC-H SF {sf} landing zone {state}: {result.root} ({result.files} files)")


@demo.command("page-views")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), default="2024-05-01", show_default=True)
@click.option("--days", type=int, default=30, show_default=True)
def demo_page_views(start, days: int) -> None:
    """Drop a seeded hourly page-view feed in the landing zone (web/page_views/<date>/<HH>.csv)."""
    from strata.demo.page_views import FOLDER, generate

    settings = Settings.from_env()
    files = generate(settings.landing_dir, start.date(), days)
    click.echo(f"{files} hourly files under {settings.landing_dir / FOLDER}")


@main.command()
def prepare() -> None:
    """Build the dbt manifest (dbt parse) and make sure DAGSTER_HOME has a dagster.yaml.

    With a lake (``STRATA_WAREHOUSE=ducklake``): install DuckDB's lake extensions from their
    packages and attach the lake once (DuckLake creates its catalog tables). With
    ``DAGSTER_HOME``, create every pool the steps use in the instance
    (:mod:`strata.dagster_instance.pools`).
    """
    import os

    from strata.dbt_manifest import parse_project

    settings = Settings.from_env()
    settings.ensure_directories()
    settings.export()
    click.echo(f"dbt manifest: {parse_project()}")
    home = os.environ.get("DAGSTER_HOME")
    if home:
        target = Path(home) / "dagster.yaml"
        Path(home).mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(PROJECT_ROOT / "dagster.yaml")
            click.echo(f"Dagster instance config: {target} -> {PROJECT_ROOT / 'dagster.yaml'}")
    if settings.lake is not None:
        import duckdb

        from strata.warehouse import attach_lake

        with duckdb.connect() as con:  # installs the extensions; creates the lake's catalog on first use
            attach_lake(con, settings.lake, "lake")
        click.echo(f"warehouse: {settings.warehouse_description}")
    if home:
        import dagster as dg

        from strata.dagster_instance.pools import initialize_pools, pools_of
        from strata.definitions import build_definitions

        pools = pools_of(build_definitions(settings))
        with dg.DagsterInstance.get() as instance:
            initialize_pools(instance, pools)
        click.echo(f"pools: {len(pools)} ({', '.join(sorted(pools)[:3])}{' ...' if len(pools) > 3 else ''})")


@main.command()
@click.option("--start", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First order date to compare.")
@click.option(
    "--end",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Order date after the last one (exclusive).",
)
def verify(start, end) -> None:
    """Recompute rows, daily revenue and TPC-H Q1/Q3/Q5/Q6 from the landing files; compare.

    Without --start/--end, everything in the landing zone. Prints every mismatch and exits 1 if
    there is any.
    """
    from strata.partition_window import PartitionWindow
    from strata.reconcile.tpch import tpch_datasets
    from strata.reconcile.tpch import verify as run_verify

    if (start is None) != (end is None):
        raise click.UsageError("give both --start and --end, or neither")
    window = PartitionWindow.from_dates("daily", "UTC", start.date(), end.date()) if start else None
    import logging

    import duckdb

    from strata.demo.tpch import read_manifest

    logging.basicConfig(level=logging.WARNING, format="strata verify: %(message)s")  # lock waits, to stderr
    settings = Settings.from_env()
    manifest = read_manifest(settings.landing_dir / "tpch") or {}
    try:
        report = run_verify(
            tpch_datasets(), settings.landing_dir, settings.warehouse, window, manifest.get("scale_factor")
        )
    except duckdb.IOException as err:
        raise click.ClickException(
            f"cannot read the warehouse {settings.warehouse_description}: {str(err).splitlines()[0]}\n"
            "A run (or another program) kept it locked; try again when it has finished."
        ) from err
    for mismatch in report.mismatches:
        click.echo(f"MISMATCH {mismatch}")
    click.echo(
        f"{len(report.checks)} checks, {len(report.mismatches)} mismatches "
        f"({settings.warehouse_description} vs {settings.landing_dir})"
    )
    sys.exit(0 if report.ok else 1)


@main.group()
def registry() -> None:
    """The dataset registry (assets_config/)."""


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@registry.command("validate")
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
def registry_validate(paths: tuple[Path, ...]) -> None:
    """Check every dataset file in PATHS (default: $STRATA_ASSETS_CONFIG, else assets_config/).

    Prints every error as file:line:col: message (hint), and exits 1 if there is any.
    """
    from strata.dbt_manifest import load_manifest, model_relations
    from strata.registry.loader import discover, load_registry
    from strata.settings import Settings

    settings = Settings.from_env()
    roots = list(paths) or settings.assets_config
    files = discover(roots)
    result = load_registry(roots, external_tables=model_relations(load_manifest()))
    issues = list(result.issues) + _type_change_issues(settings, result)
    for issue in issues:
        text = f"{_relative(issue.path)}:{issue.line}:{issue.column}: {issue.message}"
        click.echo(text + (f" (hint: {issue.hint})" if issue.hint else ""))
    click.echo(
        f"{len(files)} file(s): {len(result.datasets)} valid, {len(result.broken)} with errors, {len(issues)} error(s)"
    )
    sys.exit(0 if not issues else 1)


def _type_change_issues(settings: Settings, result) -> list:
    """Declared types the warehouse's values cannot take, as issues at the column's type.

    Each names the rebuild command; changes the next load applies are printed as notes. Nothing when
    the warehouse is absent or busy.
    """
    import duckdb

    from strata import type_changes, warehouse
    from strata.registry.yaml_doc import read_yaml

    if settings.lake is None and not settings.warehouse.exists():  # type: ignore[union-attr]
        return []
    try:
        with warehouse.connect(settings.warehouse, read_only=True) as con:
            changes = type_changes.planned(con, result.datasets.values())
    except duckdb.Error as err:
        click.echo(f"note: declared types not compared with the warehouse ({str(err).splitlines()[0]})")
        return []
    issues = []
    for change in changes:
        path = result.files[change.dataset]
        if change.compatible:
            click.echo(f"note: {_relative(path)}: {change.dataset}.{change.describe()}")
            continue
        doc, _ = read_yaml(path)
        if doc is not None:
            issues.append(
                doc.issue(
                    ("columns", change.index, "type"),
                    f"column '{change.column}': {change.describe()}",
                    f"declare a type its values convert to, or rebuild the dataset: strata rebuild {change.dataset}",
                )
            )
    return issues


@main.command()
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def rebuild(name: str, yes: bool) -> None:
    """Move dataset NAME's table and quarantine aside (into the archive schema) so that it loads anew.

    For a declared type its stored values cannot take. Nothing is deleted: the old tables stay as
    archive.<schema>__<name>__<UTC time>. The Dagster instance ($DAGSTER_HOME) forgets the asset's
    materializations, so that freshness, automation and the quality gate see it as not loaded.
    Then materialize the dataset's partitions again (the UI's Materialize, or `dagster asset
    materialize`).
    """
    import os

    from strata import type_changes, warehouse
    from strata.defs.partitions import partitions_of
    from strata.registry.loader import load_registry

    settings = Settings.from_env()
    registry = load_registry(settings.assets_config)
    dataset = registry.datasets.get(name)
    if dataset is None:
        raise click.ClickException(f"no valid dataset named {name} in {', '.join(map(str, settings.assets_config))}")
    if not yes:
        click.confirm(f"Move {dataset.table} and quarantine.{name} into {type_changes.ARCHIVE_SCHEMA}?", abort=True)
    with warehouse.connect(settings.warehouse) as con:
        moved = type_changes.archive(con, dataset)
    for table in moved:
        click.echo(f"moved to {table}")
    key = f"{dataset.schema_name}/{dataset.name}"
    if os.environ.get("DAGSTER_HOME"):
        import dagster as dg

        with dg.DagsterInstance.get() as instance:
            instance.wipe_assets([dg.AssetKey([dataset.schema_name, dataset.name])])
        click.echo(f"the Dagster instance forgot {key}'s materializations")
    else:
        click.echo(f"DAGSTER_HOME is not set: wipe {key}'s materializations in the UI (Wipe materializations)")
    span = ""
    if dataset.partitioning is not None:
        keys = partitions_of(dataset.partitioning).get_partition_keys()
        span = f" --partition-range '{keys[0]}...{keys[-1]}'" if keys else ""
    click.echo(f"now materialize it again, e.g.: dagster asset materialize -m strata.definitions --select {key}{span}")


@registry.command("schema")
def registry_schema() -> None:
    """Print the JSON Schema of a dataset file (for editors: yaml-language-server)."""
    import json

    from strata.registry.models import Dataset

    schema = Dataset.model_json_schema()
    schema = {**schema, "$schema": "https://json-schema.org/draft/2020-12/schema", "title": "Strata dataset"}
    click.echo(json.dumps(schema, indent=2))


@registry.command("new")
@click.argument("name")
@click.option("--source", type=click.Choice(["files", "postgres", "http"]), default="files", show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Default: the first folder of $STRATA_ASSETS_CONFIG, else assets_config/",
)
def registry_new(name: str, source: str, directory: Path | None) -> None:
    """Write a commented dataset file NAME.yaml to start from (never over an existing file)."""
    import re

    from strata.registry.models import IDENTIFIER_PATTERN
    from strata.registry.scaffold import render

    if not re.fullmatch(IDENTIFIER_PATTERN, name):
        raise click.BadParameter("a lower snake_case identifier, e.g. sales_orders", param_hint="NAME")
    target = (directory or Settings.from_env().assets_config[0]) / f"{name}.yaml"
    if target.exists():
        raise click.ClickException(f"{_relative(target)} already exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(name, source))
    click.echo(f"wrote {_relative(target)}: edit it, then run `strata registry validate`")


@main.group()
def cdc() -> None:
    """Change data capture datasets (PostgreSQL sources with mode: cdc)."""


@cdc.command("resync")
@click.argument("name")
def cdc_resync(name: str) -> None:
    """Read CDC dataset NAME's table again, at a new replication slot, after the old one was lost.

    Drops the slot if it still exists, creates it with an exported snapshot, and appends the table as
    it is in that snapshot to raw (an `s` marker, then one `r` row per table row): the current state
    starts again from there, and the changes already captured stay in raw as history. Then rebuilds
    the current state of every dataset that applies NAME's changes. The next run goes on from the new
    slot.
    """
    from datetime import UTC, datetime

    from strata import warehouse
    from strata.loading import build_derived, load_dataset
    from strata.registry.loader import load_registry

    settings = Settings.from_env()
    registry = load_registry(settings.assets_config)
    dataset = registry.datasets.get(name)
    if dataset is None or not dataset.is_cdc:
        raise click.ClickException(
            f"{name} is not a valid CDC dataset in {', '.join(map(str, settings.assets_config))}"
        )
    run_id = "resync-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with warehouse.connect(settings.warehouse) as con:
        report = load_dataset(con, dataset, settings.landing_dir, run_id, resync=True)
    click.echo(
        f"{dataset.table}: re-read {report.metadata.get('initial_snapshot_rows', 0):,} rows at slot "
        f"{report.metadata.get('slot')} (LSN {report.metadata.get('confirmed_lsn')}), "
        f"and {report.metadata.get('changes_read', 0):,} change(s) in all"
    )
    for state in (d for d in registry.datasets.values() if d.apply_changes == name):
        with warehouse.connect(settings.warehouse) as con:
            warehouse.sandbox(con, readable=[settings.landing_dir])
            built = build_derived(con, state)
        click.echo(f"{state.table}: {built.rows_written:,} rows, {built.rows_quarantined:,} change(s) quarantined")


if __name__ == "__main__":
    main()
