"""Names shared across Dagster definitions."""

#: The one pool every step that opens the DuckDB warehouse uses. Its limit is 1 (dagster.yaml:
#: ``concurrency.pools.default_limit``): DuckDB allows one process per database file.
WAREHOUSE_POOL = "duckdb_writer"
