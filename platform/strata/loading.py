"""Loading a raw dataset from its source into the warehouse: plan the files, read, write atomically.

The raw table holds the source's columns verbatim plus load columns, all prefixed ``_``:

* ``_source_file`` (VARCHAR): the file, relative to the landing root;
* ``_partition_date`` (DATE): the partition the row was loaded for (partitioned datasets only);
* ``_loaded_at`` (TIMESTAMP WITH TIME ZONE): when the load transaction ran;
* ``_run_id`` (VARCHAR): the Dagster run (or other caller) that loaded it.

Loads are idempotent: a partitioned load replaces exactly the rows of its partition window, a
snapshot load replaces the table. Both run in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from strata import warehouse
from strata.errors import CorruptSourceFileError
from strata.registry.models import Dataset
from strata.sources import files as file_source

LOAD_COLUMNS = ("_source_file", "_partition_date", "_loaded_at", "_run_id")
#: Load columns whose values differ between two runs of the same load.
VOLATILE_LOAD_COLUMNS = ("_loaded_at", "_run_id")
PARTITION_COLUMN = "_partition_date"


@dataclass(frozen=True)
class DateWindow:
    """A half-open window of partition dates ``[start, end)``."""

    start: date
    end: date

    def days(self) -> list[date]:
        """Every date in the window, in order."""
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]


@dataclass
class LoadReport:
    """What a load did. Counts are rows; ``rows_by_partition`` maps each partition date to its rows."""

    dataset: str
    table: str
    files: int
    rows_read: int
    rows_loaded: int
    rows_by_partition: dict[date, int] = field(default_factory=dict)


def load_dataset(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    landing_root: Path,
    run_id: str,
    window: DateWindow | None = None,
) -> LoadReport:
    """Load ``dataset`` into ``raw.<name>``: the partitions in ``window``, or the whole snapshot.

    Raises:
        MissingSourceFileError: a file the window needs is absent (nothing is written).
        CorruptSourceFileError: a file cannot be read (nothing is written).
        ValueError: a partitioned dataset was loaded without a window.
    """
    if dataset.partitioning is not None:
        if window is None:
            raise ValueError(f"{dataset.name} is partitioned: a partition window is required")
        files = file_source.partition_files(dataset.source, landing_root, window.days())
    else:
        files = file_source.snapshot_files(dataset.source, landing_root)
    file_source.require_present(dataset.name, files)

    loaded_at = datetime.now(UTC)
    select_sql = _select_sql(con, dataset, files)
    params = [loaded_at, run_id]
    try:
        if window is not None:
            rows = warehouse.replace_window(
                con, dataset.table, select_sql, PARTITION_COLUMN, window.start, window.end, params
            )
        else:
            rows = warehouse.replace_table(con, dataset.table, select_sql, params)
    except duckdb.Error as err:
        _raise_for_unreadable(con, dataset, files, err)
        raise
    finally:
        con.unregister("__strata_files")

    by_partition: dict[date, int] = {}
    if window is not None:
        counts = dict(
            con.execute(
                f"select {PARTITION_COLUMN}, count(*) from {warehouse.qualified(dataset.table)} "
                f"where {PARTITION_COLUMN} >= ? and {PARTITION_COLUMN} < ? group by 1",
                [window.start, window.end],
            ).fetchall()
        )
        by_partition = {day: int(counts.get(day, 0)) for day in window.days()}
    return LoadReport(dataset.name, dataset.table, len(files), rows, rows, by_partition)


def _select_sql(con: duckdb.DuckDBPyConnection, dataset: Dataset, files: list[file_source.SourceFile]) -> str:
    """SELECT of the source columns plus load columns; binds ``?`` to (loaded_at, run_id)."""
    manifest = pa.table(
        {
            "path": [str(f.path) for f in files],
            "relative": [f.relative for f in files],
            "partition_date": pa.array([f.partition for f in files], pa.date32()),
        }
    )
    con.register("__strata_files", manifest)
    reader = file_source.reader_sql(dataset.source, [f.path for f in files])
    fn = file_source.FILENAME_COLUMN
    partition = f", f.partition_date as {PARTITION_COLUMN}" if dataset.partitioning else ""
    return (
        f"select src.* exclude ({fn}), f.relative as _source_file{partition}, "
        "?::timestamptz as _loaded_at, ?::varchar as _run_id "
        f"from {reader} as src join __strata_files as f on src.{fn} = f.path"
    )


def _raise_for_unreadable(con, dataset: Dataset, files, err: duckdb.Error) -> None:
    """Name the first unreadable file, if the error came from one; otherwise return."""
    message = str(err)
    for f in files:
        if str(f.path) in message:
            raise CorruptSourceFileError(dataset.name, f.path, message) from err
    for f in files:
        try:
            con.execute(f"select count(*) from {file_source.reader_sql(dataset.source, [f.path])}").fetchone()
        except duckdb.Error as probe_err:
            raise CorruptSourceFileError(dataset.name, f.path, str(probe_err)) from err
