"""Where Strata keeps its files, read from the environment.

Environment variables (all optional):

* ``STRATA_DATA_DIR``: root of the landing zone and the warehouse. Default: ``<repo>/.strata``.
* ``STRATA_LANDING_DIR``: the landing zone. Default: ``$STRATA_DATA_DIR/landing``.
* ``STRATA_WAREHOUSE_PATH``: the DuckDB warehouse file. Default: ``$STRATA_DATA_DIR/warehouse.duckdb``.
* ``STRATA_TPCH_SF``: TPC-H scale factor of the demo source (float). Default: ``0.1``.
* ``STRATA_ASSETS_CONFIG``: the registry folders, separated by ``:``. Default: ``<repo>/assets_config``.

This module knows nothing of Dagster or DuckDB.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field

#: The repository root: ``platform/strata/settings.py`` -> ``<root>``.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
ASSETS_CONFIG_DIR = PROJECT_ROOT / "assets_config"


class Settings(BaseModel):
    """Resolved, absolute locations and the demo scale factor."""

    data_dir: Path
    landing_dir: Path
    warehouse_path: Path
    tpch_sf: float = Field(gt=0)
    assets_config: list[Path] = Field(default_factory=lambda: [ASSETS_CONFIG_DIR])

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default: ``os.environ``).

        Raises:
            pydantic.ValidationError: ``STRATA_TPCH_SF`` is not a positive number.
        """
        env = os.environ if environ is None else environ
        data_dir = Path(env.get("STRATA_DATA_DIR") or PROJECT_ROOT / ".strata").expanduser().resolve()
        landing = Path(env.get("STRATA_LANDING_DIR") or data_dir / "landing").expanduser().resolve()
        warehouse = env.get("STRATA_WAREHOUSE_PATH") or data_dir / "warehouse.duckdb"
        return cls(
            data_dir=data_dir,
            landing_dir=landing,
            warehouse_path=Path(warehouse).expanduser().resolve(),
            tpch_sf=float(env.get("STRATA_TPCH_SF") or 0.1),
            assets_config=[
                Path(p).expanduser().resolve() for p in (env.get("STRATA_ASSETS_CONFIG") or "").split(":") if p
            ]
            or [ASSETS_CONFIG_DIR],
        )

    def ensure_directories(self) -> None:
        """Create the data folder and the warehouse's folder (DuckDB does not create folders)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.warehouse_path.parent.mkdir(parents=True, exist_ok=True)

    def export(self) -> None:
        """Publish the resolved paths to ``os.environ``, so that dbt subprocesses see the same files."""
        os.environ["STRATA_DATA_DIR"] = str(self.data_dir)
        os.environ["STRATA_LANDING_DIR"] = str(self.landing_dir)
        os.environ["STRATA_WAREHOUSE_PATH"] = str(self.warehouse_path)
