"""The Dagster edge: asset, check, schedule and sensor definitions built from specs and the dbt project."""
