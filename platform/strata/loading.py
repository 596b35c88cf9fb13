"""Loading a dataset into the warehouse: read the source, apply the contract, write atomically.

A raw table holds the source's columns verbatim, the declared ones cast to their declared types,
plus load columns prefixed ``_``:

* the origin of each row: ``_source_file`` (files, relative to the landing root),
  ``_source_page`` (HTTP: the page's URL) or ``_source_table`` (Postgres);
* ``_partition_date`` (DATE): the partition the row was loaded for (partitioned datasets);
* ``_loaded_at`` (TIMESTAMP WITH TIME ZONE): when the load transaction ran;
* ``_run_id`` (VARCHAR): the Dagster run (or other caller) that loaded it.

Writes follow the dataset's load strategy (dlt's write dispositions), each in one transaction:
``replace`` (snapshot), ``overwrite_partition`` (the window's rows), ``append`` (a file loaded
again replaces its own rows) and ``merge`` (upsert by primary key; unchanged rows stay as they
are). So every load is idempotent, and a failure leaves the previous state.

SQL-derived datasets (staging, mart) run their SELECT, restricted to the window when partitioned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from strata import warehouse
from strata.errors import ContractError, RowError
from strata.registry.models import CsvOptions, Dataset, FilesSource, PostgresSource
from strata.sources import LOAD_COLUMNS, PARTITION_COLUMN, VOLATILE_LOAD_COLUMNS, DateWindow, Extract
from strata.sources import files as files_source

__all__ = [
    "DateWindow",
    "LoadReport",
    "load_dataset",
    "build_derived",
    "LOAD_COLUMNS",
    "VOLATILE_LOAD_COLUMNS",
]


@dataclass
class LoadReport:
    """What a load did. Counts are rows.

    ``rows_by_partition`` maps each partition date of the window to its rows after the load;
    ``metadata`` carries source facts (files, pages, high-water mark ...).
    """

    dataset: str
    table: str
    rows_read: int
    rows_written: int
    rows_by_partition: dict[date, int] = field(default_factory=dict)
    table_rows: int | None = None
    metadata: dict = field(default_factory=dict)


def extract(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, landing_root: Path, window: DateWindow | None
) -> Extract:
    """Read ``dataset``'s source for ``window`` (or whole) into something DuckDB can select from."""
    source = dataset.source
    if isinstance(source, FilesSource):
        return files_source.extract(con, dataset, landing_root, window)
    if isinstance(source, PostgresSource):
        from strata.sources import postgres

        return postgres.extract(con, dataset, window)
    from strata.sources import http

    return http.extract(con, dataset, window)


def load_dataset(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    landing_root: Path,
    run_id: str,
    window: DateWindow | None = None,
) -> LoadReport:
    """Load raw ``dataset`` into ``raw.<name>``: the partitions of ``window``, or all of it.

    Raises:
        MissingSourceFileError, CorruptSourceFileError: a landing file is absent or unreadable.
        MalformedSourceError, SourceConfigError: an API or database source failed.
        ContractError: a declared column is missing from the source.
        RowError: a value does not convert to its declared type, or a row falls outside the window.
        ValueError: a partitioned dataset was loaded without a window.
    """
    if dataset.partitioning is not None and window is None:
        raise ValueError(f"{dataset.name} is partitioned: a partition window is required")
    ex = extract(con, dataset, landing_root, window)
    try:
        select_sql = _typed_select(con, dataset, ex, window)
        params = [datetime.now(UTC), run_id]
        rows_read = con.execute(f"select count(*) from {ex.relation}", ex.params).fetchall()[0][0]
        written, extra = _write(con, dataset, select_sql, params, window, ex)
    except duckdb.Error as err:
        if ex.diagnose is not None:
            ex.diagnose(err)
        raise
    finally:
        for name in ex.cleanup:
            _drop(con, name)
    report = LoadReport(
        dataset.name, dataset.table, int(rows_read), written, metadata={**ex.metadata, **extra}
    )
    _count(con, report, PARTITION_COLUMN, window)
    return report


def _count(
    con: duckdb.DuckDBPyConnection, report: LoadReport, column: str, window: DateWindow | None
) -> None:
    """Fill in the rows per partition of the window, or the table's row count."""
    if window is not None:
        counts = warehouse.rows_per_partition(con, report.table, column, window.start, window.end)
        report.rows_by_partition = {day: counts.get(day, 0) for day in window.days()}
    else:
        report.table_rows = con.execute(
            f"select count(*) from {warehouse.qualified(report.table)}"
        ).fetchall()[0][0]


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.unregister(name)
    except duckdb.Error:
        pass
    con.execute(f"drop table if exists {warehouse.quote(name)}")


def _typed_select(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, ex: Extract, window: DateWindow | None
) -> str:
    """SELECT of the source columns (declared ones cast) plus load columns; ``?`` = (loaded_at, run_id)."""
    described = con.execute(f"describe select * from {ex.relation}", ex.params).fetchall()
    source_cols = [row[0] for row in described if row[0] not in (ex.origin_column, ex.partition_column)]
    missing = [c.name for c in dataset.columns if c.name not in source_cols]
    if missing:
        raise ContractError(dataset.name, missing, _origin_text(con, ex))
    csv = dataset.source.csv if isinstance(dataset.source, FilesSource) else None
    exprs = []
    for name in source_cols:
        declared = dataset.column(name)
        exprs.append(
            f"{cast_expr(name, declared.type, csv)} as {warehouse.quote(name)}"
            if declared
            else warehouse.quote(name)
        )
    _check_casts(con, dataset, ex, csv)
    partition = ""
    if window is not None:
        column = dataset.partitioning.column  # type: ignore[union-attr]
        if ex.partition_column:
            partition = f", {ex.partition_column}::date as {PARTITION_COLUMN}"
        else:
            partition = f", cast({warehouse.quote(column)} as date) as {PARTITION_COLUMN}"
        if column:
            _check_window(con, dataset, ex, column, window, csv)
    return (
        f"select {', '.join(exprs)}, {warehouse.quote(ex.origin_column)}{partition}, "
        f"?::timestamptz as _loaded_at, ?::varchar as _run_id from {ex.relation}"
    )


def cast_expr(column: str, type_sql: str, csv: CsvOptions | None, strict: bool = True) -> str:
    """SQL converting ``column`` to ``type_sql`` (CSV date formats applied); ``try_`` if not ``strict``."""
    col = warehouse.quote(column)
    fn = "" if strict else "try_"
    kind = type_sql.strip().upper()
    if csv is not None and csv.date_format and kind == "DATE":
        return f"{fn}strptime({col}, {warehouse.literal(csv.date_format)})::date"
    if csv is not None and csv.timestamp_format and kind.startswith("TIMESTAMP"):
        return f"{fn}strptime({col}, {warehouse.literal(csv.timestamp_format)})::{type_sql}"
    return f"{fn}cast({col} as {type_sql})"


def _origin_text(con: duckdb.DuckDBPyConnection, ex: Extract) -> str:
    rows = con.execute(
        f"select distinct {warehouse.quote(ex.origin_column)} from {ex.relation} limit 3", ex.params
    ).fetchall()
    return ", ".join(str(r[0]) for r in rows) or "the source"


def _check_casts(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, ex: Extract, csv: CsvOptions | None
) -> None:
    """Raise :class:`RowError` with examples when a declared column's value does not convert."""
    examples = []
    for col in dataset.columns:
        name = warehouse.quote(col.name)
        converted = cast_expr(col.name, col.type, csv, strict=False)
        rows = con.execute(
            f"select {warehouse.quote(ex.origin_column)}, {name}::varchar from {ex.relation} "
            f"where {name} is not null and {converted} is null limit 3",
            ex.params,
        ).fetchall()
        examples += [f"column {col.name}: {value!r} is not {col.type} ({origin})" for origin, value in rows]
    if examples:
        raise RowError(dataset.name, "values that do not convert to their declared types", examples)


def _check_window(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    ex: Extract,
    column: str,
    window: DateWindow,
    csv: CsvOptions | None,
) -> None:
    """Raise :class:`RowError` for rows whose partition column is outside the window.

    For files, a row must also fall on the day of the file it came from.
    """
    declared = dataset.column(column)
    raw = cast_expr(column, declared.type, csv) if declared else warehouse.quote(column)
    value = f"cast({raw} as date)"
    outside = f"{value} < ? or {value} >= ? or {value} is null"
    if ex.partition_column:
        outside += f" or {value} <> {ex.partition_column}"
    rows = con.execute(
        f"select {warehouse.quote(ex.origin_column)}, {warehouse.quote(column)}::varchar from {ex.relation} "
        f"where {outside} limit 5",
        [*ex.params, window.start, window.end],
    ).fetchall()
    if rows:
        raise RowError(
            dataset.name,
            f"rows whose {column} is outside the partition window [{window.start}, {window.end})",
            [f"{column} = {v} ({o})" for o, v in rows],
        )


def _write(
    con, dataset: Dataset, select_sql: str, params: list, window: DateWindow | None, ex: Extract
) -> tuple[int, dict]:
    strategy = dataset.load_strategy
    if strategy == "replace":
        return warehouse.replace_table(con, dataset.table, select_sql, params), {}
    if strategy == "overwrite_partition":
        assert window is not None
        rows = warehouse.replace_window(
            con, dataset.table, select_sql, PARTITION_COLUMN, window.start, window.end, params
        )
        return rows, {}
    if strategy == "append":
        origins = [
            r[0]
            for r in con.execute(
                f"select distinct {ex.origin_column} from {ex.relation}", ex.params
            ).fetchall()
        ]
        return warehouse.replace_origins(
            con, dataset.table, select_sql, ex.origin_column, origins, params
        ), {}
    order = None
    source = dataset.source
    if isinstance(source, PostgresSource) and source.incremental is not None:
        order = f"{warehouse.quote(source.incremental.cursor)} desc nulls last"
    inserted, updated = warehouse.merge(
        con,
        dataset.table,
        select_sql,
        dataset.primary_key,
        params,
        order_by=order,
        ignore=VOLATILE_LOAD_COLUMNS,
    )
    extra = {"rows_inserted": inserted, "rows_updated": updated}
    if isinstance(source, PostgresSource) and source.incremental is not None:
        hwm = con.execute(
            f"select max({warehouse.quote(source.incremental.cursor)}) "
            f"from {warehouse.qualified(dataset.table)}"
        ).fetchall()[0][0]
        extra["high_water_mark"] = str(hwm)
    return inserted + updated, extra


def build_derived(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, window: DateWindow | None = None
) -> LoadReport:
    """Materialize SQL-derived ``dataset`` (its SELECT) into ``<schema>.<name>``.

    Partitioned datasets replace the window's rows (by their partition column); others replace
    the table, or merge by primary key.

    Raises:
        duckdb.Error: the SELECT failed (the table is unchanged).
    """
    select_sql = f"select * from ({dataset.select}) as q"
    if window is not None:
        column = warehouse.quote(dataset.partitioning.column)  # type: ignore[union-attr]
        select_sql += f" where {column} >= ? and {column} < ?"
    params = [window.start, window.end] if window is not None else []
    strategy = dataset.load_strategy
    if strategy == "overwrite_partition" and window is not None:
        rows = warehouse.replace_window(
            con,
            dataset.table,
            select_sql,
            dataset.partitioning.column,  # type: ignore[union-attr]
            window.start,
            window.end,
            params,
        )
    elif strategy == "merge":
        inserted, updated = warehouse.merge(con, dataset.table, select_sql, dataset.primary_key, params)
        rows = inserted + updated
    else:
        rows = warehouse.replace_table(con, dataset.table, select_sql, params)
    report = LoadReport(dataset.name, dataset.table, rows, rows)
    _count(con, report, dataset.partitioning.column if window is not None else "", window)  # type: ignore[union-attr]
    return report
