"""Building the dbt project's manifest (``dbt parse``), which Dagster's dbt assets are loaded from."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from strata.settings import DBT_PROJECT_DIR


def dbt_executable() -> str:
    """The ``dbt`` of this interpreter's environment (a virtualenv need not be on PATH)."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else shutil.which("dbt") or "dbt"


def parse_project() -> Path:
    """Run ``dbt parse`` on the project; return the manifest's path. dbt parse opens no database.

    Raises:
        subprocess.CalledProcessError: the project does not parse (dbt prints why).
    """
    subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--quiet",
        ],
        check=True,
    )
    return DBT_PROJECT_DIR / "target" / "manifest.json"


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
