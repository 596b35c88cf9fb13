"""Where Strata keeps its files, read from the environment.

Environment variables (all optional):

* ``STRATA_DATA_DIR``: root of the landing zone and the warehouse. Default: ``<repo>/.strata``.
* ``STRATA_LANDING_DIR``: the landing zone. Default: ``$STRATA_DATA_DIR/landing``.
* ``STRATA_WAREHOUSE_PATH``: the DuckDB warehouse file. Default: ``$STRATA_DATA_DIR/warehouse.duckdb``.
* ``STRATA_TPCH_SF``: TPC-H scale factor of the demo source (float). Default: ``0.1``.
* ``STRATA_ASSETS_CONFIG``: the registry folders, separated by ``:``. Default: ``<repo>/assets_config``.
* ``STRATA_DAILY_SCHEDULE_AT``: ``HH:MM`` (UTC) at which each daily group's schedule runs the
  previous day: the grace period for late files. Default: ``02:00``.
* ``STRATA_BACKFILL_CHUNK_DAYS``: partitions per run of a backfill. ``0`` (default) runs any
  range in one run; ``N`` splits a backfill into runs of N days (``BackfillPolicy.multi_run``).
* ``STRATA_SENSOR_INTERVAL_SECONDS``: how often the landing-zone and automation sensors tick
  (seconds). Default: ``30``.
* ``STRATA_ALERT_LOG``: the file run-failure alerts are appended to (JSON lines). Default:
  ``$STRATA_DATA_DIR/alerts.log``. ``STRATA_ALERT_WEBHOOK_URL``, when set, receives them instead
  (read when the alert is sent).

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
    daily_schedule_at: str = Field(default="02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    backfill_chunk_days: int = Field(default=0, ge=0)
    sensor_interval_seconds: int = Field(default=30, ge=1)
    alert_log: Path

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Build the settings from ``environ`` (default: ``os.environ``).

        Raises:
            pydantic.ValidationError: ``STRATA_TPCH_SF`` is not a positive number, or another
                variable is malformed (the message names it).
            ValueError: ``STRATA_BACKFILL_CHUNK_DAYS`` or ``STRATA_SENSOR_INTERVAL_SECONDS`` is
                not an integer.
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
            daily_schedule_at=env.get("STRATA_DAILY_SCHEDULE_AT") or "02:00",
            backfill_chunk_days=int(env.get("STRATA_BACKFILL_CHUNK_DAYS") or 0),
            sensor_interval_seconds=int(env.get("STRATA_SENSOR_INTERVAL_SECONDS") or 30),
            alert_log=Path(env.get("STRATA_ALERT_LOG") or data_dir / "alerts.log").expanduser().resolve(),
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
