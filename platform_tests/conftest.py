"""Shared fixtures: a tiny TPC-H landing zone (SF 0.01), a temporary warehouse, a Dagster instance.

Everything is real: tpchgen-cli data, a DuckDB file, dbt-duckdb, a Dagster instance on SQLite.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from strata.dbt_manifest import parse_project
from strata.demo.tpch import generate
from strata.settings import PROJECT_ROOT, Settings

TEST_SCALE_FACTOR = 0.01
#: The real-size scale factor: 150,000 orders and ~600,000 line items, more than one DuckDB row
#: group (122,880 rows) per table. DuckDB's storage behaves differently past a row group.
REAL_SIZE_SCALE_FACTOR = 0.1
ROW_GROUP_ROWS = 122_880
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def tpch_landing(tmp_path_factory) -> Path:
    """A TPC-H SF 0.01 landing zone, generated once per session. Tests must not modify it."""
    root = tmp_path_factory.mktemp("landing")
    generate(root, TEST_SCALE_FACTOR)
    return root


@pytest.fixture(scope="session")
def tpch_landing_real_size(tmp_path_factory) -> Path:
    """A TPC-H SF 0.1 landing zone (every table past one row group), generated once per session."""
    root = tmp_path_factory.mktemp("landing_sf01")
    generate(root, REAL_SIZE_SCALE_FACTOR)
    return root


@pytest.fixture(scope="session", autouse=True)
def dbt_manifest() -> Path:
    """dbt parse once per session, as the Dagster project's conftest in project_dbt does.

    Each pytest-xdist worker is a session: ``parse_project`` holds a file lock, so two workers
    never write the manifest at once, and a worker that finds it parsed meanwhile keeps it (a
    test may be watching the manifest while another worker starts).
    """
    return parse_project(only_if_stale=True)


@pytest.fixture
def landing_copy(tpch_landing, tmp_path) -> Path:
    """A private copy of the landing zone that a test may damage."""
    target = tmp_path / "landing"
    shutil.copytree(tpch_landing, target)
    return target


def make_settings(
    monkeypatch, data_dir: Path, landing: Path, lake_catalog: str | None = None, lake_data: Path | None = None
) -> Settings:
    """Point Strata's environment at ``data_dir`` (warehouse) and ``landing``.

    With ``lake_catalog`` (``postgres:dbname=...``), the warehouse is a DuckLake with that catalog
    and its data under ``lake_data`` (default ``data_dir/lake``); otherwise the DuckDB file
    ``data_dir/warehouse.duckdb``.
    """
    monkeypatch.setenv("STRATA_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STRATA_LANDING_DIR", str(landing))
    monkeypatch.setenv("STRATA_WAREHOUSE_PATH", str(data_dir / "warehouse.duckdb"))
    monkeypatch.setenv("STRATA_WAREHOUSE", "ducklake" if lake_catalog else "duckdb")
    monkeypatch.setenv("DBT_TARGET", "lake" if lake_catalog else "local")
    if lake_catalog:
        monkeypatch.setenv("STRATA_LAKE_CATALOG", lake_catalog)
        monkeypatch.setenv("STRATA_LAKE_DATA_PATH", str(lake_data or data_dir / "lake"))
    else:
        monkeypatch.delenv("STRATA_LAKE_CATALOG", raising=False)
        monkeypatch.delenv("STRATA_LAKE_DATA_PATH", raising=False)
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
    return Settings.from_env()


class Platform:
    """The code location under test: definitions, a Dagster instance and the warehouse file."""

    def __init__(self, settings: Settings, instance: dg.DagsterInstance, config_dirs: list[Path] | None = None):
        from strata.definitions import build_definitions

        self.settings = settings
        self.instance = instance
        self.defs = build_definitions(settings, config_dirs)
        self.graph = self.defs.resolve_asset_graph()
        self.job = self.defs.resolve_implicit_global_asset_job_def()

    def keys(self, partitioned: bool | None = None) -> list[dg.AssetKey]:
        """All asset keys, or only the (un)partitioned ones."""
        return [
            k
            for k in self.graph.get_all_asset_keys()
            if self.graph.get(k).is_materializable
            and (partitioned is None or bool(self.graph.get(k).partitions_def) == partitioned)
        ]

    def materialize(
        self,
        selection: Iterable[dg.AssetKey] | None = None,
        partition: str | None = None,
        start: str | None = None,
        end: str | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """Run the selection: one partition, a range in one run (inclusive keys), or unpartitioned."""
        tags = {}
        if start:
            tags = {"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}
        return self.job.execute_in_process(
            instance=self.instance,
            asset_selection=list(selection) if selection is not None else None,
            partition_key=partition,
            tags=tags,
            raise_on_error=raise_on_error,
        )

    def load_snapshots(self) -> None:
        """Materialize every unpartitioned asset (raw snapshots, their staging, dimensions)."""
        assert self.materialize(self.keys(partitioned=False)).success

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        """Run SQL against the warehouse (read-only) and return all rows."""
        from strata import warehouse

        with warehouse.connect(self.settings.warehouse, read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def execute(self, sql: str, params: list | None = None) -> None:
        """Change the warehouse behind Strata's back (a test damaging it), on either backend."""
        from strata import warehouse

        with warehouse.connect(self.settings.warehouse) as con:
            con.execute(sql, params or []).fetchall()


#: From the project's dagster.yaml: tests store events and capture Strata's logs as `make run` does.
_PROJECT_INSTANCE = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
INSTANCE_STORAGE = {k: _PROJECT_INSTANCE[k] for k in ("event_log_storage", "python_logs")}


def strata_instance(overrides: dict | None = None):
    """``dg.instance_for_test`` with the project's event log storage (and ``overrides``)."""
    return dg.instance_for_test(overrides={**INSTANCE_STORAGE, **(overrides or {})})


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """An ephemeral Dagster instance (SQLite in a temp dir, the project's event log storage)."""
    with strata_instance() as inst:
        yield inst


#: The warehouse backends (``STRATA_WAREHOUSE``).
BACKENDS = ("duckdb", "ducklake")

#: A module's ``pytestmark`` (or a test's mark) that runs its tests on both backends: the
#: ``platform``, ``seeded`` and ``damaged_platform`` fixtures then give a DuckDB file, then a lake.
on_both_backends = pytest.mark.parametrize("backend", BACKENDS, indirect=True)


@pytest.fixture
def backend(request) -> str:
    """The warehouse backend of the test: ``duckdb``, unless parametrised (:data:`on_both_backends`)."""
    return getattr(request, "param", "duckdb")


def fresh_settings(request, monkeypatch, data_dir: Path, landing: Path) -> Settings:
    """Settings for an empty warehouse of the test's backend (a lake gets a new catalog database)."""
    if request.getfixturevalue("backend") == "ducklake":
        return make_settings(monkeypatch, data_dir, landing, new_lake_catalog(request.getfixturevalue("postgres")))
    return make_settings(monkeypatch, data_dir, landing)


@pytest.fixture
def platform(request, monkeypatch, tmp_path, tpch_landing, instance, backend) -> Platform:
    """Strata over the shared landing zone, with a fresh warehouse of the test's backend."""
    return Platform(fresh_settings(request, monkeypatch, tmp_path / "data", tpch_landing), instance)


#: The order dates the seeded warehouse holds: January 1995, as [start, end) and as inclusive keys.
SEEDED_WINDOW = ("1995-01-01", "1995-02-01")
SEEDED_KEYS = ("1995-01-01", "1995-01-31")


def _seed(platform: Platform) -> None:
    platform.load_snapshots()
    start, end = SEEDED_KEYS
    assert platform.materialize(platform.keys(partitioned=True), start=start, end=end).success


@pytest.fixture(scope="session")
def seeded_warehouse(tmp_path_factory, tpch_landing) -> Path:
    """A warehouse built once through Dagster: every snapshot and dimension, and January 1995.

    Built once for the whole run, not once per pytest-xdist worker: the workers share pytest's
    base folder, and the first to take the lock builds it (about a minute) while the others wait.
    Tests get private copies (:func:`copy_of`).
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    data, built = shared / "seeded", shared / "seeded.built"
    with (shared / "seeded.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            shutil.rmtree(data, ignore_errors=True)  # what a failed build left
            with pytest.MonkeyPatch.context() as mp, strata_instance() as inst:
                _seed(Platform(make_settings(mp, data, tpch_landing), inst))
            built.touch()
    return data / "warehouse.duckdb"


@pytest.fixture(scope="session")
def seeded_lake(tmp_path_factory, tpch_landing, postgres) -> tuple[str, Path]:
    """:func:`seeded_warehouse` on a lake: its catalog database's name and its data folder.

    Copies (:func:`seeded_settings`) clone the catalog database (PostgreSQL's ``CREATE DATABASE
    ... TEMPLATE``) and share the data folder: DuckLake never changes a data file once written
    (writes add files under new names, deletes add delete files), so the copies cannot see each
    other's changes. Only maintenance rewrites files, and it runs on lakes of its own.
    """
    data = tmp_path_factory.mktemp("seeded_lake")
    catalog = new_lake_catalog(postgres)
    with pytest.MonkeyPatch.context() as mp, strata_instance() as inst:
        _seed(Platform(make_settings(mp, data, tpch_landing, catalog), inst))
    return database_of(catalog), data / "lake"


def seeded_settings(request, monkeypatch, tmp_path: Path, landing: Path) -> Settings:
    """Settings for a private copy of the seeded warehouse, of the test's backend."""
    if request.getfixturevalue("backend") == "ducklake":
        template, lake_data = request.getfixturevalue("seeded_lake")
        catalog = new_lake_catalog(request.getfixturevalue("postgres"), template=template)
        (tmp_path / "data").mkdir()
        return make_settings(monkeypatch, tmp_path / "data", landing, catalog, lake_data)
    return make_settings(monkeypatch, copy_of(request.getfixturevalue("seeded_warehouse"), tmp_path), landing)


def copy_of(warehouse: Path, tmp_path: Path) -> Path:
    """A data folder holding a private copy of ``warehouse``."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(warehouse, data / "warehouse.duckdb")
    return data


@pytest.fixture
def seeded(request, monkeypatch, tmp_path, tpch_landing, instance, backend) -> Platform:
    """Strata over the shared landing zone, with a private copy of the seeded warehouse."""
    return Platform(seeded_settings(request, monkeypatch, tmp_path, tpch_landing), instance)


@pytest.fixture
def damaged_platform(request, monkeypatch, tmp_path, landing_copy, instance, backend) -> Platform:
    """The seeded warehouse over a private landing copy (``settings.landing_dir``) a test may damage."""
    return Platform(seeded_settings(request, monkeypatch, tmp_path, landing_copy), instance)


def landing_rows(landing: Path, sql: str, params: list | None = None) -> list[tuple]:
    """Run SQL with bare DuckDB in memory (for reading landing files)."""
    with duckdb.connect() as con:
        return con.execute(sql, params or []).fetchall()


def daily_file(landing: Path, table: str, day: date | str) -> Path:
    """The landing file of ``table`` for ``day``."""
    day = day if isinstance(day, str) else day.isoformat()
    return landing / "tpch" / table / f"{table}_{day}.parquet"


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL 15 server (Debian's binaries) for the session."""
    import pg_server

    server = pg_server.start()
    yield server
    pg_server.stop(server)


def new_lake_catalog(server, template: str | None = None) -> str:
    """A new PostgreSQL database on ``server`` for a DuckLake catalog; its DuckLake name.

    Empty, or a copy of the database ``template`` (which nobody may be connected to).
    """
    import uuid

    name = f"lake_{uuid.uuid4().hex[:12]}"
    conn = server.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f"create database {name}" + (f" template {template}" if template else ""))
    conn.close()
    return f"postgres:dbname={name} host={server.host} port={server.port} user={server.user}"


def database_of(catalog: str) -> str:
    """The PostgreSQL database name in a :func:`new_lake_catalog` name."""
    return catalog.split("dbname=", 1)[1].split()[0]


def by_value(mapping: dict) -> dict:
    """``{partition: v}`` (a load report's, a check's) as ``{partition value: v}``: a date per day, an instant per hour."""
    return {getattr(k, "value", k): v for k, v in mapping.items()}
