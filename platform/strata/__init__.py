"""Strata: a data platform on Dagster software-defined assets, dbt (dbt-duckdb) and DuckDB.

Data flows one way: registry (YAML -> typed specs) -> definitions (Dagster) -> execution
(loaders, dbt) -> warehouse (DuckDB). See README.md for the layout.
"""
