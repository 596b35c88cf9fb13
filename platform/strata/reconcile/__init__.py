"""Reconciliation: recompute numbers from the source with bare DuckDB and compare with the warehouse."""
