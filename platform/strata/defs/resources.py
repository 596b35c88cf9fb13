"""Dagster resources: the landing zone, the warehouse and dbt, configured from Settings."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource
from dagster_duckdb import DuckDBResource

from strata.defs.dbt_project import dbt_project
from strata.settings import Settings


class LandingZone(dg.ConfigurableResource):
    """The landing zone root: files sources' paths are relative to it."""

    root: str

    @property
    def path(self) -> Path:
        """The root as an absolute path."""
        return Path(self.root)


def dbt_executable() -> str:
    """The ``dbt`` of this interpreter's environment (a virtualenv need not be on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def build_resources(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    """The resources every Strata definition uses, keyed by resource name."""
    return {
        "landing": LandingZone(root=str(settings.landing_dir)),
        "warehouse": DuckDBResource(database=str(settings.warehouse_path)),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=dbt_executable()),
    }
