"""Reconciliation of raw against its source: rows per partition, recounted from the landing files.

Parquet row counts come from the files' own metadata (``parquet_file_metadata``), independent of
the load; CSV and JSON files are re-read. Per partition, source rows must equal the raw rows plus
the quarantined rows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from strata import warehouse
from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import Dataset, ReconciliationCheck
from strata.sources import files as file_source


def raw_vs_source(
    con: duckdb.DuckDBPyConnection,
    scope: Scope,
    dataset: Dataset,
    check: ReconciliationCheck,
    landing_root: Path,
) -> CheckOutcome:
    """Source rows per partition = raw rows + quarantined rows."""
    window = scope.window if scope.partitioned else None
    if window is not None:
        files = file_source.partition_files(dataset.source, landing_root, window.partitions, dataset.name)  # type: ignore[arg-type]
    else:
        files = file_source.snapshot_files(dataset.source, landing_root, dataset.name)  # type: ignore[arg-type]
    keys = [f.partition.key if f.partition is not None else None for f in files]
    con.register(
        "__strata_recount", pa.table({"path": [str(f.path) for f in files], "day": pa.array(keys, pa.string())})
    )
    try:
        listing = "[" + ", ".join(warehouse.literal(str(f.path)) for f in files) + "]"
        if dataset.source.format == "parquet":  # type: ignore[union-attr]
            per_file = f"select file_name as path, num_rows as n from parquet_file_metadata({listing})"
        else:
            reader = file_source.reader_sql(dataset, [f.path for f in files])
            con.execute(
                f"create or replace temp table __strata_counts as select {file_source.FILENAME_COLUMN} as path, "
                f"count(*) as n from {reader} group by 1"
            ).fetchall()
            per_file = "select * from __strata_counts"
            if warehouse.temp_table_exists(con, file_source.REJECTS_TABLE):  # malformed lines count as read
                per_file += (
                    f" union all select s.file_path, count(*) from {file_source.REJECTS_TABLE} r join "
                    f"{file_source.REJECT_SCANS_TABLE} s using (scan_id, file_id) group by 1"
                )
        by_key = dict(
            con.execute(
                f"select m.day, sum(coalesce(c.n, 0))::bigint from __strata_recount m "
                f"left join ({per_file}) c using (path) group by 1"
            ).fetchall()
        )
        source = {f.partition: by_key.get(f.partition.key if f.partition else None, 0) for f in files}
    finally:
        con.unregister("__strata_recount")
        for table in ("__strata_counts", file_source.REJECTS_TABLE, file_source.REJECT_SCANS_TABLE):
            con.execute(f"drop table if exists {table}").fetchall()
    quarantine = f"quarantine.{dataset.name}"
    if window is not None:
        raw = warehouse.rows_per_partition(con, dataset.table, "_partition_date", window)
        held = (
            warehouse.rows_per_partition(con, quarantine, "_partition_date", window)
            if warehouse.table_exists(con, quarantine)
            else {}
        )
    else:
        raw = {None: con.execute(f"select count(*) from {scope.sql_table}").fetchall()[0][0]}
        held = (
            {None: con.execute(f"select count(*) from {warehouse.qualified(quarantine)}").fetchall()[0][0]}
            if warehouse.table_exists(con, quarantine)
            else {}
        )
    results = []
    for day in scope.days():
        src, ok, bad = int(source.get(day, 0)), raw.get(day, 0), held.get(day, 0)
        results.append(PartitionResult(day, src == ok + bad, f"source {src} rows, raw {ok} + quarantined {bad}"))
    return CheckOutcome("reconciliation", check.severity, results, metadata={"files": len(files)})
