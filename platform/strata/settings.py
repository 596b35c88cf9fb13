"""Where Strata keeps its files, read from the environment.

Environment variables (all optional):

* ``STRATA_DATA_DIR``: root of the landing zone and the warehouse. Default: ``<repo>/.strata``.
* ``STRATA_LANDING_DIR``: the landing zone. Default: ``$STRATA_DATA_DIR/landing``.
* ``STRATA_WAREHOUSE``: the warehouse backend, ``duckdb`` (default: one DuckDB file, one writing
  process) or ``ducklake`` (a DuckLake: catalog in PostgreSQL, data in Parquet files under a path
  or an object store; many writing processes). Only :mod:`strata.warehouse` acts on it.
* ``STRATA_WAREHOUSE_PATH``: the DuckDB warehouse file. Default: ``$STRATA_DATA_DIR/warehouse.duckdb``.
* ``STRATA_LAKE_CATALOG``: with ``ducklake``, the catalog database as DuckLake names it, a libpq
  connection string after ``postgres:`` (``postgres:dbname=lake host=db port=5432 user=strata``).
  Without it, ``STRATA_LAKE_PG_HOST``, ``_PORT`` (5432), ``_DATABASE`` (``lake``) and ``_USER``
  build one. Never a password: libpq reads ``PGPASSWORD`` or ``PGPASSFILE`` from the environment.
* ``STRATA_LAKE_DATA_PATH``: with ``ducklake``, where its Parquet files go: a folder, or an object
  store URL (``s3://bucket/lake/``, credentials from DuckDB's secrets). Default: ``$STRATA_DATA_DIR/lake/``.
* ``STRATA_LAKE_SNAPSHOT_RETENTION``: with ``ducklake``, how long the maintenance job keeps old
  snapshots (a DuckDB interval). Default: ``7 days``.
* ``STRATA_TPCH_SF``: TPC-H scale factor of the demo source (float). Default: ``0.1``.
* ``STRATA_ASSETS_CONFIG``: the registry folders, separated by ``:``. Default: ``<repo>/assets_config``.
* ``STRATA_DAILY_SCHEDULE_AT``: ``HH:MM`` (UTC) at which each daily group's schedule runs the
  previous day: the grace period for late files. Default: ``02:00``.
* ``STRATA_BACKFILL_CHUNK_DAYS``: partitions per run of a backfill. ``0`` (default) runs any
  range in one run; ``N`` splits a backfill into runs of N days (``BackfillPolicy.multi_run``).
* ``STRATA_SENSOR_INTERVAL_SECONDS``: how often the landing-zone and automation sensors tick
  (seconds). Default: ``30``.
* ``STRATA_LINEAGE_TRANSPORT``: where OpenLineage run events go (:mod:`strata.defs.openlineage`):
  ``file`` (default: JSON lines in ``STRATA_LINEAGE_FILE``, default
  ``$STRATA_DATA_DIR/lineage/events.jsonl``), ``http`` (``STRATA_LINEAGE_URL``, a Marquez-compatible
  server, path ``STRATA_LINEAGE_ENDPOINT``, default ``api/v1/lineage``; the bearer API key, if
  any, from ``STRATA_LINEAGE_API_KEY``), ``console`` (the log) or ``none``.
  ``STRATA_LINEAGE_NAMESPACE`` names Strata's jobs (default ``strata``).
* ``STRATA_ALERT_LOG``: the file run-failure alerts are appended to (JSON lines). Default:
  ``$STRATA_DATA_DIR/alerts.log``. ``STRATA_ALERT_WEBHOOK_URL``, when set, receives them instead
  (read when the alert is sent).

This module knows nothing of Dagster or DuckDB.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

#: The repository root: ``platform/strata/settings.py`` -> ``<root>``.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
ASSETS_CONFIG_DIR = PROJECT_ROOT / "assets_config"


class LakeLocation(BaseModel, frozen=True):
    """Where a DuckLake warehouse lives: its catalog database and its data files.

    ``catalog`` is what follows ``ducklake:`` in DuckDB's ``ATTACH`` (``postgres:dbname=lake
    host=...``); ``data_path`` is a folder or object-store URL, ending in ``/``.
    """

    catalog: str
    data_path: str


class Settings(BaseModel):
    """Resolved, absolute locations and the demo scale factor."""

    data_dir: Path
    landing_dir: Path
    warehouse_path: Path
    warehouse_backend: Literal["duckdb", "ducklake"] = "duckdb"
    lake: LakeLocation | None = None
    lake_snapshot_retention: str = Field(default="7 days", pattern=r"^[0-9]+ (second|minute|hour|day|week)s?$")
    tpch_sf: float = Field(gt=0)
    assets_config: list[Path] = Field(default_factory=lambda: [ASSETS_CONFIG_DIR])
    daily_schedule_at: str = Field(default="02:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
    backfill_chunk_days: int = Field(default=0, ge=0)
    sensor_interval_seconds: int = Field(default=30, ge=1)
    alert_log: Path
    lineage_transport: Literal["file", "http", "console", "none"] = "file"
    lineage_file: Path | None = None
    lineage_url: str | None = Field(default=None, pattern=r"^https?://")
    lineage_endpoint: str = "api/v1/lineage"
    lineage_namespace: str = Field(default="strata", min_length=1)

    @property
    def warehouse(self) -> Path | LakeLocation:
        """The warehouse :func:`strata.warehouse.connect` opens: the DuckDB file, or the lake.

        Raises:
            ValueError: ``STRATA_WAREHOUSE=ducklake`` names no catalog.
        """
        if self.warehouse_backend == "ducklake":
            if self.lake is None:
                raise ValueError(
                    "STRATA_WAREHOUSE=ducklake needs its catalog: set STRATA_LAKE_CATALOG "
                    "(postgres:dbname=... host=... user=...) or STRATA_LAKE_PG_HOST"
                )
            return self.lake
        return self.warehouse_path

    @property
    def warehouse_description(self) -> str:
        """The warehouse for people: the file's path, or ``ducklake:<catalog> (data: <path>)``."""
        if self.lake is not None and self.warehouse_backend == "ducklake":
            return f"ducklake:{self.lake.catalog} (data: {self.lake.data_path})"
        return str(self.warehouse_path)

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
        backend = env.get("STRATA_WAREHOUSE") or "duckdb"
        return cls(
            data_dir=data_dir,
            landing_dir=landing,
            warehouse_path=Path(warehouse).expanduser().resolve(),
            warehouse_backend=backend,
            lake=_lake_location(env, data_dir) if backend == "ducklake" else None,
            lake_snapshot_retention=env.get("STRATA_LAKE_SNAPSHOT_RETENTION") or "7 days",
            tpch_sf=float(env.get("STRATA_TPCH_SF") or 0.1),
            assets_config=[
                Path(p).expanduser().resolve() for p in (env.get("STRATA_ASSETS_CONFIG") or "").split(":") if p
            ]
            or [ASSETS_CONFIG_DIR],
            daily_schedule_at=env.get("STRATA_DAILY_SCHEDULE_AT") or "02:00",
            backfill_chunk_days=int(env.get("STRATA_BACKFILL_CHUNK_DAYS") or 0),
            sensor_interval_seconds=int(env.get("STRATA_SENSOR_INTERVAL_SECONDS") or 30),
            alert_log=Path(env.get("STRATA_ALERT_LOG") or data_dir / "alerts.log").expanduser().resolve(),
            lineage_transport=env.get("STRATA_LINEAGE_TRANSPORT") or "file",
            lineage_file=Path(env.get("STRATA_LINEAGE_FILE") or data_dir / "lineage" / "events.jsonl")
            .expanduser()
            .resolve(),
            lineage_url=env.get("STRATA_LINEAGE_URL") or None,
            lineage_endpoint=env.get("STRATA_LINEAGE_ENDPOINT") or "api/v1/lineage",
            lineage_namespace=env.get("STRATA_LINEAGE_NAMESPACE") or "strata",
        )

    def ensure_directories(self) -> None:
        """Create the data folder and the warehouse's folder (DuckDB does not create folders)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.warehouse_path.parent.mkdir(parents=True, exist_ok=True)
        if self.lake is not None and "://" not in self.lake.data_path:
            Path(self.lake.data_path).mkdir(parents=True, exist_ok=True)

    def export(self) -> None:
        """Publish the resolved paths to ``os.environ``, so that dbt subprocesses see the same files."""
        os.environ["STRATA_DATA_DIR"] = str(self.data_dir)
        os.environ["STRATA_LANDING_DIR"] = str(self.landing_dir)
        os.environ["STRATA_WAREHOUSE_PATH"] = str(self.warehouse_path)
        os.environ["STRATA_WAREHOUSE"] = self.warehouse_backend
        # dbt's profile picks its output by DBT_TARGET: the file, or the lake (dbt/profiles.yml)
        if self.lake is not None:
            os.environ["DBT_TARGET"] = "lake"
        elif os.environ.get("DBT_TARGET") in (None, "lake"):
            os.environ["DBT_TARGET"] = "local"
        if self.lake is not None:
            os.environ["STRATA_LAKE_CATALOG"] = self.lake.catalog
            os.environ["STRATA_LAKE_DATA_PATH"] = self.lake.data_path


def _lake_location(env, data_dir: Path) -> LakeLocation | None:
    """The lake named by ``STRATA_LAKE_CATALOG`` or ``STRATA_LAKE_PG_*``, or None if neither is set."""
    catalog = env.get("STRATA_LAKE_CATALOG")
    if not catalog and env.get("STRATA_LAKE_PG_HOST"):
        parts = {
            "dbname": env.get("STRATA_LAKE_PG_DATABASE") or "lake",
            "host": env["STRATA_LAKE_PG_HOST"],
            "port": env.get("STRATA_LAKE_PG_PORT") or "5432",
            "user": env.get("STRATA_LAKE_PG_USER") or "",
        }
        catalog = "postgres:" + " ".join(f"{k}={v}" for k, v in parts.items() if v)
    if not catalog:
        return None
    if "password" in catalog.lower():
        raise ValueError("STRATA_LAKE_CATALOG must not hold a password: set PGPASSWORD or PGPASSFILE (libpq)")
    data_path = env.get("STRATA_LAKE_DATA_PATH") or str(data_dir / "lake")
    if "://" not in data_path:
        data_path = str(Path(data_path).expanduser().resolve())
    return LakeLocation(catalog=catalog, data_path=data_path.rstrip("/") + "/")
