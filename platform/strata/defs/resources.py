"""Dagster resources: the landing zone, the warehouse and dbt, configured from Settings."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from strata.dbt_manifest import dbt_executable
from strata.defs.dbt_project import dbt_project
from strata.settings import LakeLocation, Settings


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
    """The warehouse: the DuckDB file at ``path``, or the lake when ``lake_catalog`` is set.

    Steps that use it must be in its writer pool (:func:`strata.warehouse.writer_pool`).
    """

    path: str
    lake_catalog: str | None = None
    lake_data_path: str | None = None

    @property
    def location(self) -> Path | LakeLocation:
        """What :func:`strata.warehouse.connect` opens."""
        if self.lake_catalog:
            return LakeLocation(catalog=self.lake_catalog, data_path=self.lake_data_path or "")
        return Path(self.path)

    def connect(self, read_only: bool = False):
        """A connection that is closed however the block ends (see :func:`strata.warehouse.connect`)."""
        from strata import warehouse  # DuckDB: at run time only, not when the code location loads

        return warehouse.connect(self.location, read_only=read_only)


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every Strata definition uses, keyed by resource name.

    Paths are environment variables resolved when a run starts, the same variables dbt reads,
    so Python steps and dbt always open the same files. ``settings.export()`` sets them.
    """
    settings.export()
    return {
        "landing": LandingZone(root=dg.EnvVar("STRATA_LANDING_DIR")),
        "warehouse": Warehouse(
            path=dg.EnvVar("STRATA_WAREHOUSE_PATH"),
            **(
                {"lake_catalog": dg.EnvVar("STRATA_LAKE_CATALOG"), "lake_data_path": dg.EnvVar("STRATA_LAKE_DATA_PATH")}
                if settings.lake is not None
                else {}
            ),
        ),
        "dbt": StrataDbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
    }
