"""The dbt project handle. Kept alone so that ``dagster-dbt project prepare-and-package`` can import it."""

from dagster_dbt import DbtProject

from strata.dbt_manifest import ensure_manifest
from strata.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
# not prepare_if_dev(): under `dagster dev` it re-parses in every run worker (strata.dbt_manifest)
ensure_manifest(dbt_project.manifest_path)
