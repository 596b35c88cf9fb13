"""Building the dbt project's manifest (``dbt parse``), which Dagster's dbt assets are loaded from."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from strata.settings import DBT_PROJECT_DIR


def dbt_executable() -> str:
    """The ``dbt`` of this interpreter's environment (a virtualenv need not be on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


#: What ``dbt parse`` reads: files with these suffixes under the project, outside these folders.
PARSED_SUFFIXES = frozenset({".sql", ".yml", ".yaml", ".csv", ".md", ".py", ".jinja"})
NOT_PARSED_DIRS = frozenset({"target", "logs", "dbt_packages", "dbt_internal_packages"})


#: What a parse leaves in ``target/`` for others: the manifest (dagster-dbt's assets) and dbt's
#: partial-parse state (copied by dagster-dbt into each dbt build's own target folder).
PUBLISHED_PARSE_FILES = ("manifest.json", "partial_parse.msgpack")


def parse_project(only_if_stale: bool = False) -> Path:
    """Run ``dbt parse`` on the project; return the manifest's path. dbt parse opens no database.

    Holds an exclusive file lock (``target/.parse.lock``) while dbt parses, so that processes
    starting together (run workers, test workers) never parse at once. With ``only_if_stale``, a
    manifest that is current once the lock is held (another process has just parsed) is kept.

    dbt writes into ``target/.parse/``; ``manifest.json`` and ``partial_parse.msgpack`` then
    replace the ones in ``target/`` by a rename. Readers take no lock (dagster-dbt reads the
    manifest when the definitions load, dbt builds copy the partial parse), so they must never
    see a file dbt is still writing: dbt truncates, then writes, and a reader in between gets an
    empty manifest (``test_readers_never_see_half_a_manifest_while_the_project_is_parsed``).

    Raises:
        subprocess.CalledProcessError: the project does not parse (dbt prints why).
    """
    target = DBT_PROJECT_DIR / "target"
    staging = target / ".parse"
    staging.mkdir(parents=True, exist_ok=True)
    with (target / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if only_if_stale and manifest_is_current(target / "manifest.json"):
            return target / "manifest.json"
        subprocess.run(
            [
                dbt_executable(),
                "parse",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(staging),
                "--quiet",
            ],
            check=True,
        )
        for name in PUBLISHED_PARSE_FILES:
            if (staging / name).exists():
                partial = target / f".{name}.partial"
                shutil.copyfile(staging / name, partial)  # the staging copy stays for the next partial parse
                os.replace(partial, target / name)
    return target / "manifest.json"


def manifest_is_current(manifest: Path, project_dir: Path = DBT_PROJECT_DIR) -> bool:
    """True when ``manifest`` exists and is newer (mtime, ns) than every file dbt parses.

    The files are those under ``project_dir`` with a suffix in ``PARSED_SUFFIXES`` outside the
    ``NOT_PARSED_DIRS`` folders (dbt's outputs, logs and installed packages).
    """
    try:
        built = manifest.stat().st_mtime_ns
    except FileNotFoundError:
        return False
    for folder, dirs, files in os.walk(project_dir):
        dirs[:] = [d for d in dirs if d not in NOT_PARSED_DIRS and not d.startswith(".")]
        for name in files:
            path = Path(folder, name)
            if path.suffix in PARSED_SUFFIXES and path.stat().st_mtime_ns > built:
                return False
    return True


def ensure_manifest(manifest: Path) -> Path:
    """``manifest``, parsed again only if it is missing or older than the project's files.

    This replaces dagster-dbt's ``prepare_if_dev``, which runs ``dbt parse`` in every process that
    ``dagster dev`` starts, each run worker included (about 11 s of every run's start-up here,
    docs/benchmarks.md). Editing a model still re-parses on the next definitions load.
    """
    if not manifest_is_current(manifest):
        parse_project(only_if_stale=True)
    return manifest


def load_manifest(path: Path | None = None) -> dict:
    """The parsed ``manifest.json`` (parsing the project first if it has never been parsed)."""
    path = path or DBT_PROJECT_DIR / "target" / "manifest.json"
    if not path.exists():
        parse_project()
    return json.loads(path.read_text())


def model_relations(manifest: dict) -> dict[str, list[str]]:
    """``schema.name`` of every dbt model, with its documented column names.

    These are the tables a SQL-derived registry dataset may read; a model whose schema file
    documents no columns maps to an empty list (its columns are then not checked).
    """
    return {
        f"{node['schema']}.{node.get('alias') or node['name']}": list(node.get("columns") or {})
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model"
    }


def daily_partitions_of_models(manifest: dict) -> tuple[str, str | None]:
    """``(start, end)`` of the incremental models' daily partitions, from their ``meta.strata``.

    Raises:
        ValueError: incremental models disagree, or none declares its partitions.
    """
    found = {
        (p["start"], p.get("end"))
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("materialized") == "incremental"
        for p in [(node["config"].get("meta") or {}).get("strata", {}).get("daily_partitions")]
        if p
    }
    if len(found) != 1:
        raise ValueError(f"incremental dbt models must declare one meta.strata.daily_partitions, found {found}")
    return found.pop()
