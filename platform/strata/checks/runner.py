"""Evaluating a registered dataset's checks after a load or build (see :mod:`strata.checks.specs`).

Every raw dataset: ``row_accounting`` and ``quarantine_threshold`` (error); with declared columns,
``schema`` (error) and ``schema_drift`` (warn). Every SQL-derived dataset with declared columns:
``schema``. Then each declared check: ``volume``, ``referential_<column>``,
``distribution_<column>_<statistic>``, ``reconciliation``, and custom SQL checks by their name.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import duckdb

from strata import warehouse
from strata.checks import CheckOutcome, accounting, custom_sql, distribution, keys, referential, schema, volume
from strata.checks import reconciliation as recon
from strata.checks.scope import Scope
from strata.checks.specs import CheckSpec, check_name, check_specs
from strata.loading import LoadReport
from strata.partition_window import PartitionWindow
from strata.registry.models import (
    CustomSqlCheck,
    Dataset,
    DistributionCheck,
    ReconciliationCheck,
    ReferentialCheck,
    VolumeCheck,
)
from strata.sources import PARTITION_COLUMN


def scope_of(con: duckdb.DuckDBPyConnection, dataset: Dataset, window: PartitionWindow | None) -> Scope:
    """The table, partition column (and its kind, as the table has it) and window a check on ``dataset`` judges."""
    if window is None or dataset.partitioning is None:
        return Scope(dataset.table)
    column = PARTITION_COLUMN if dataset.layer == "raw" else dataset.partitioning.column
    assert column is not None, "a partitioned SQL dataset has a partition column"
    try:
        kind = warehouse.column_kind_of(con, dataset.table, column)
    except KeyError:  # not built yet: judged as the window's own values
        kind = window.value_kind
    return Scope(dataset.table, column, window, kind)


def evaluate(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    window: PartitionWindow | None,
    datasets: Mapping[str, Dataset],
    report: LoadReport | None = None,
    landing_root: Path | None = None,
) -> list[CheckOutcome]:
    """Evaluate every check of ``dataset`` over ``window`` (``report``: the raw load just done)."""
    scope = scope_of(con, dataset, window)
    outcomes: list[CheckOutcome] = []
    if report is not None and dataset.apply_changes is not None:
        outcomes.append(accounting.quarantined_changes(dataset, report))
    if report is not None and dataset.layer == "raw":
        outcomes += [
            accounting.row_accounting(con, scope, dataset, report),
            accounting.quarantine_threshold(scope, dataset, report),
        ]
        if dataset.columns:
            outcomes.append(accounting.schema_drift(scope, report))
        if dataset.is_cdc:
            outcomes.append(accounting.slot_lag(dataset, report))
    if dataset.columns and not dataset.is_cdc:  # a change log is verbatim: its contract is the current state's
        outcomes.append(schema.evaluate(con, scope, dataset))
    if dataset.select is not None and dataset.primary_key:
        outcomes.append(keys.evaluate(con, scope, dataset))
    for check in dataset.checks:
        if isinstance(check, VolumeCheck):
            outcomes.append(volume.evaluate(con, scope, check))
        elif isinstance(check, ReferentialCheck):
            target_name, _, target_column = check.references.partition(".")
            target = datasets[target_name]
            same = target.partitioning is not None and target.partitioning == dataset.partitioning
            outcomes.append(
                referential.evaluate(con, scope, check, scope_of(con, target, window if same else None), target_column)
            )
        elif isinstance(check, DistributionCheck):
            outcomes.append(distribution.evaluate(con, scope, check))
        elif isinstance(check, ReconciliationCheck):
            outcomes.append(recon.raw_vs_source(con, scope, dataset, check, landing_root))  # type: ignore[arg-type]
        elif isinstance(check, CustomSqlCheck):
            outcomes.append(custom_sql.evaluate(con, scope, check))
    return outcomes


__all__ = ["CheckSpec", "check_specs", "check_name", "evaluate", "scope_of", "CheckOutcome"]
