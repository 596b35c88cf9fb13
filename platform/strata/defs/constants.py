"""Names shared across Dagster definitions."""

#: The pool every step that opens a DuckDB-file warehouse uses. Its limit is 1 (dagster.yaml:
#: ``concurrency.pools.default_limit``): DuckDB allows one process per database file. A lake has
#: a pool per table (:func:`strata.warehouse.writer_pool`); the builders take the pool as an argument.
WAREHOUSE_POOL = "duckdb_writer"
