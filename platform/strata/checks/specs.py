"""The checks a registered dataset carries (names, severities), known without touching data.

Kept apart from the check implementations so that building Dagster definitions does not import
DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass

from strata.registry.models import Dataset, check_name


@dataclass(frozen=True)
class CheckSpec:
    """A check a dataset carries: its name, severity and what it verifies."""

    name: str
    severity: str
    description: str


def check_specs(dataset: Dataset) -> list[CheckSpec]:
    """Every check ``dataset`` carries, built-in and declared."""
    specs = []
    if dataset.layer == "raw":
        specs += [
            CheckSpec("row_accounting", "error", "Every row read is loaded or quarantined, per partition."),
            CheckSpec(
                "quarantine_threshold",
                "error",
                f"At most {dataset.quarantine.max_pct:g}% of a partition's rows are quarantined.",
            ),
        ]
        if dataset.columns:
            specs.append(CheckSpec("schema_drift", "warn", "The source has no columns beyond the declared ones."))
        if dataset.is_cdc:
            cdc = dataset.source.cdc  # type: ignore[union-attr]
            specs.append(
                CheckSpec(
                    "slot_lag",
                    cdc.lag_severity,
                    f"The replication slot retains at most {cdc.max_lag_bytes:,} bytes of WAL after the load.",
                )
            )
    if dataset.columns and not dataset.is_cdc:
        specs.append(CheckSpec("schema", "error", "Declared types, nullability, uniqueness, values, ranges, patterns."))
    if dataset.apply_changes is not None:
        specs.append(
            CheckSpec("quarantined_changes", "warn", "Every change applies (none has a NULL key or a bad value).")
        )
    if dataset.select is not None and dataset.primary_key:
        specs.append(CheckSpec("primary_key", "error", "No two rows share the primary key, and none lacks it."))
    for check in dataset.checks:
        specs.append(CheckSpec(check_name(check), check.severity, (type(check).__doc__ or "").split("\n")[0]))
    return specs
