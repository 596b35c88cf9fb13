"""``strata``: the one command-line interface.

strata demo generate [--scale-factor SF] [--force]   TPC-H landing zone (STRATA_TPCH_SF)
strata prepare                                        dbt manifest + Dagster home
strata verify                                         reconcile the warehouse with the source
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
@click.option(
    "--force", is_flag=True, help="Regenerate even if the landing zone already holds this scale factor."
)
def demo_generate(scale_factor: float | None, force: bool) -> None:
    """Generate TPC-H with tpchgen-cli and lay it out in the landing zone (idempotent)."""
    from strata.demo.tpch import generate

    settings = Settings.from_env()
    sf = scale_factor if scale_factor is not None else settings.tpch_sf
    result = generate(settings.landing_dir, sf, force=force)
    state = "generated" if result.generated else "up to date"
    click.echo(f"TPC-H SF {sf} landing zone {state}: {result.root} ({result.files} files)")


@main.command()
def prepare() -> None:
    """Build the dbt manifest (dbt parse) and make sure DAGSTER_HOME has a dagster.yaml."""
    import os

    from strata.dbt_manifest import parse_project

    Settings.from_env().export()
    click.echo(f"dbt manifest: {parse_project()}")
    home = os.environ.get("DAGSTER_HOME")
    if home:
        target = Path(home) / "dagster.yaml"
        Path(home).mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(PROJECT_ROOT / "dagster.yaml")
            click.echo(f"Dagster instance config: {target} -> {PROJECT_ROOT / 'dagster.yaml'}")


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
    from strata.reconcile.tpch import tpch_datasets
    from strata.reconcile.tpch import verify as run_verify
    from strata.sources import DateWindow

    if (start is None) != (end is None):
        raise click.UsageError("give both --start and --end, or neither")
    window = DateWindow(start.date(), end.date()) if start else None
    from strata.demo.tpch import read_manifest

    settings = Settings.from_env()
    manifest = read_manifest(settings.landing_dir / "tpch") or {}
    report = run_verify(
        tpch_datasets(), settings.landing_dir, settings.warehouse_path, window, manifest.get("scale_factor")
    )
    for mismatch in report.mismatches:
        click.echo(f"MISMATCH {mismatch}")
    click.echo(
        f"{len(report.checks)} checks, {len(report.mismatches)} mismatches "
        f"({settings.warehouse_path} vs {settings.landing_dir})"
    )
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
