"""Load accounting: every row read is loaded or quarantined, and quarantine stays under a threshold.

* ``row_accounting`` (error): per partition, the rows the load read equal the rows now in the
  raw table plus the rows in its quarantine, recounted from the tables.
* ``quarantine_threshold`` (error): per partition, quarantined / read stays at or under the
  dataset's ``quarantine.max_pct``, so a broken feed cannot pass quietly.
* ``schema_drift`` (warn): source columns the contract does not declare (kept in raw).
* ``slot_lag`` (CDC) and ``quarantined_changes`` (the current state of a CDC dataset).
"""

from __future__ import annotations

import duckdb

from strata import warehouse
from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.loading import LoadReport
from strata.registry.models import Dataset


def row_accounting(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset, report: LoadReport) -> CheckOutcome:
    """Rows read = rows loaded + rows quarantined, per partition (recounted from the tables)."""
    quarantine = f"quarantine.{dataset.name}"
    if scope.partitioned:
        loaded = warehouse.rows_per_partition(con, dataset.table, scope.partition_column, scope.window)  # type: ignore[arg-type]
        held = (
            warehouse.rows_per_partition(con, quarantine, "_partition_date", scope.window)  # type: ignore[arg-type]
            if warehouse.table_exists(con, quarantine)
            else {}
        )
        results = []
        for day in scope.days():
            read, ok, bad = report.read_by_partition.get(day, 0), loaded.get(day, 0), held.get(day, 0)
            results.append(
                PartitionResult(
                    day,
                    read == ok + bad,
                    f"read {read} = loaded {ok} + quarantined {bad}"
                    if read == ok + bad
                    else f"read {read} != loaded {ok} + quarantined {bad}",
                )
            )
    else:
        read, ok, bad = report.rows_read, report.rows_passed, report.rows_quarantined
        results = [PartitionResult(None, read == ok + bad, f"read {read}, loaded {ok}, quarantined {bad}")]
    return CheckOutcome(
        "row_accounting",
        "error",
        results,
        metadata={"rows_read": report.rows_read, "rows_quarantined": report.rows_quarantined},
    )


def quarantine_threshold(scope: Scope, dataset: Dataset, report: LoadReport) -> CheckOutcome:
    """Quarantined / read per partition at or under ``quarantine.max_pct`` percent.

    A partition with fewer than ``quarantine.min_rows`` rows read is too small for a percentage (one
    bad row of a two-row file is 50 %): it fails only when every row it read was quarantined.
    """
    limit, small = dataset.quarantine.max_pct, dataset.quarantine.min_rows
    if scope.partitioned:
        pairs = [
            (p, report.quarantined_by_partition.get(p, 0), report.read_by_partition.get(p, 0)) for p in scope.days()
        ]
    else:
        pairs = [(None, report.rows_quarantined, report.rows_read)]
    results = []
    for partition, bad, read in pairs:
        pct = 100 * bad / read if read else 0.0
        if read < small:
            passed = bad < read or read == 0
            detail = f"{bad} of {read} rows quarantined (under min_rows {small}: fails only if none loaded)"
        else:
            passed = pct <= limit
            detail = f"{bad} of {read} rows quarantined ({pct:.1f}%, max {limit:g}%)"
        results.append(PartitionResult(partition, passed, detail))
    return CheckOutcome(
        "quarantine_threshold",
        "error",
        results,
        metadata={"max_pct": limit, "min_rows": small, "quarantine_table": f"quarantine.{dataset.name}"},
    )


def quarantined_changes(dataset: Dataset, report: LoadReport) -> CheckOutcome:
    """The changes of a CDC dataset its current state cannot apply (NULL key, a value of the wrong type), warn.

    They stay in raw and apply once valid (:mod:`strata.current_state`); until then the key keeps
    its earlier state.
    """
    held = report.rows_quarantined
    detail = (
        f"{held:,} change(s) cannot be applied: see quarantine.{dataset.name} for each and why"
        if held
        else "every change applies"
    )
    return CheckOutcome(
        "quarantined_changes",
        "warn",
        [PartitionResult(None, held == 0, detail)],
        metadata={"changes_quarantined": held, "quarantine_table": f"quarantine.{dataset.name}"},
    )


def slot_lag(dataset: Dataset, report: LoadReport) -> CheckOutcome:
    """The WAL bytes a CDC source's replication slot retains after the load, at most ``max_lag_bytes``.

    An abandoned or slow slot keeps every WAL segment since its ``restart_lsn`` and fills the
    source's disk (PostgreSQL docs, "Replication Slots"). Measured by :mod:`strata.sources.cdc`
    after the slot advanced: ``pg_current_wal_lsn() - restart_lsn``.
    """
    cdc = dataset.source.cdc  # type: ignore[union-attr]
    lag = int(report.metadata.get("slot_lag_bytes", 0))
    detail = f"slot {report.metadata.get('slot')} holds back {lag:,} bytes of WAL (max {cdc.max_lag_bytes:,})"
    return CheckOutcome(
        "slot_lag",
        cdc.lag_severity,
        [PartitionResult(None, lag <= cdc.max_lag_bytes, detail)],
        metadata={"slot_lag_bytes": lag, "max_lag_bytes": cdc.max_lag_bytes},
    )


def schema_drift(scope: Scope, report: LoadReport) -> CheckOutcome:
    """Source columns the contract does not declare; kept in raw, listed here (warn)."""
    new = report.new_columns
    detail = f"new source column(s): {', '.join(new)}" if new else "the source matches the declared columns"
    return CheckOutcome(
        "schema_drift",
        "warn",
        [PartitionResult(d, not new, detail) for d in scope.days()],
        metadata={"new_columns": new},
    )
