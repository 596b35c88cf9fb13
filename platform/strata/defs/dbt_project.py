"""The dbt project handle. Kept alone so that ``dagster-dbt project prepare-and-package`` can import it."""

from dagster_dbt import DbtProject

from strata.settings import DBT_PROJECT_DIR

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
