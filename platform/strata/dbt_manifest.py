"""Building the dbt project's manifest (``dbt parse``), which Dagster's dbt assets are loaded from."""

from __future__ import annotations

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
