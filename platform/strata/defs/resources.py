"""Dagster resources: the landing zone, the warehouse and dbt, configured from Settings."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from strata.dbt_manifest import dbt_executable
from strata.defs.dbt_project import dbt_project
from strata.settings import Settings


class LandingZone(dg.ConfigurableResource):
    """The landing zone root: files sources' paths are relative to it."""

    root: str

    @property
    def path(self) -> Path:
        """The root as an absolute path."""
        return Path(self.root)


class StrataDbtCliResource(DbtCliResource):
    """dagster-dbt's dbt CLI resource, reading dbt-core's version in process.

    dagster-dbt learns the dbt version by running ``dbt --version`` once per run. That spawns a
    Python process that imports dbt and asks PyPI for the newest release (2.3 s per run here,
    longer without network). dbt-core is installed in this environment, so its version is read
    from the package instead. Everything else is dagster-dbt's.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        from dbt.version import __version__ as dbt_core_version

        return version.parse(dbt_core_version)


class Warehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file. Steps that use it must be in the warehouse pool."""

    path: str

    def connect(self, read_only: bool = False):
        """A connection that is closed however the block ends (see :func:`strata.warehouse.connect`)."""
        from strata import warehouse  # DuckDB: at run time only, not when the code location loads

        return warehouse.connect(self.path, read_only=read_only)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every Strata definition uses, keyed by resource name.

    Paths are environment variables resolved when a run starts, the same variables dbt reads,
    so Python steps and dbt always open the same files. ``settings.export()`` sets them.
    """
    settings.export()
    return {
        "landing": LandingZone(root=dg.EnvVar("STRATA_LANDING_DIR")),
        "warehouse": Warehouse(path=dg.EnvVar("STRATA_WAREHOUSE_PATH")),
        "dbt": StrataDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
    }
