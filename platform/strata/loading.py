"""Loading a dataset into the warehouse: read the source, apply the contract, write atomically.

A raw table holds the source's columns verbatim, the declared ones cast to their declared types,
plus load columns prefixed ``_``:

* the origin of each row: ``_source_file`` (files, relative to the landing root),
  ``_source_page`` (HTTP: the page's URL) or ``_source_table`` (Postgres);
* ``_partition_date``: the partition the row was loaded for (partitioned datasets): its local date
  (DATE) for days and months, its start (TIMESTAMPTZ) for hours
  (:attr:`strata.partition_window.Partition.value`);
* ``_loaded_at`` (TIMESTAMP WITH TIME ZONE): when the load transaction ran;
* ``_run_id`` (VARCHAR): the Dagster run (or other caller) that loaded it.

Writes follow the dataset's load strategy (dlt's write dispositions), each in one transaction:
``replace`` (snapshot), ``overwrite_partition`` (the window's rows), ``append`` (a file loaded
again replaces its own rows) and ``merge`` (upsert by primary key; unchanged rows stay as they
are). So every load is idempotent, and a failure leaves the previous state.

SQL-derived datasets (staging, mart) run their SELECT, restricted to the window when partitioned.

Every window is a :class:`strata.partition_window.PartitionWindow`: the partitions as instants in
the partitioning's zone, rendered as SQL by it alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from strata import contract, warehouse
from strata.errors import ContractError, ReservedColumnError, TypeMigrationError
from strata.partition_window import Partition, PartitionWindow, column_kind
from strata.registry.models import Dataset, FilesSource, PostgresSource
from strata.registry.sql import sandboxed
from strata.sources import LOAD_COLUMNS, PARTITION_COLUMN, VOLATILE_LOAD_COLUMNS, Extract
from strata.sources import files as files_source

__all__ = [
    "LoadReport",
    "load_dataset",
    "build_derived",
    "LOAD_COLUMNS",
    "VOLATILE_LOAD_COLUMNS",
]


@dataclass
class LoadReport:
    """What a load did. Counts are rows.

    ``rows_by_partition`` maps each partition of the window to its rows after the load;
    ``read_by_partition`` and ``quarantined_by_partition`` to the rows read and quarantined by this
    load; ``skipped`` lists the partitions a SQL-derived build left as they were (see
    :func:`build_derived`); ``metadata`` carries source facts (files, pages, high-water mark ...).
    """

    dataset: str
    table: str
    rows_read: int
    rows_written: int
    rows_by_partition: dict[Partition, int] = field(default_factory=dict)
    table_rows: int | None = None
    rows_quarantined: int = 0
    rows_passed: int = 0
    read_by_partition: dict[Partition, int] = field(default_factory=dict)
    quarantined_by_partition: dict[Partition, int] = field(default_factory=dict)
    skipped: list[Partition] = field(default_factory=list)
    new_columns: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)


def extract(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    landing_root: Path,
    window: PartitionWindow | None,
    resync: bool = False,
) -> Extract:
    """Read ``dataset``'s source for ``window`` (or whole) into something DuckDB can select from.

    ``resync``: a CDC source reads its table again at a new replication slot (:mod:`strata.sources.cdc`).
    """
    source = dataset.source
    if isinstance(source, FilesSource):
        return files_source.extract(con, dataset, landing_root, window)
    if isinstance(source, PostgresSource):
        if source.mode == "cdc":
            from strata.sources import cdc

            return cdc.extract(con, dataset, window, resync=resync)
        from strata.sources import postgres

        return postgres.extract(con, dataset, window)
    from strata.sources import http

    return http.extract(con, dataset, window)


def load_dataset(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    landing_root: Path,
    run_id: str,
    window: PartitionWindow | None = None,
    resync: bool = False,
) -> LoadReport:
    """Load raw ``dataset`` into ``raw.<name>``: the partitions of ``window``, or all of it.

    Rows that break the contract go to ``quarantine.<name>`` (see :mod:`strata.contract`) in the
    same transaction; per partition, rows read = rows loaded + rows quarantined. A CDC source's
    changes are kept verbatim, whatever they hold: its contract is applied by the current state
    (:mod:`strata.current_state`). ``resync``: see :func:`extract`.

    Raises:
        MissingSourceFileError, CorruptSourceFileError: a landing file is absent or unreadable.
        MalformedSourceError, SourceConfigError: an API or database source failed.
        ContractError: a declared column is missing from the source (nothing is written).
        ValueError: a partitioned dataset was loaded without a window.
    """
    if dataset.partitioning is not None and window is None:
        raise ValueError(f"{dataset.name} is partitioned: a partition window is required")
    ex = extract(con, dataset, landing_root, window, resync)
    try:
        source_types = _source_types(con, dataset, ex)
        missing = [c.name for c in dataset.columns if c.name not in source_types]
        if missing:
            raise ContractError(dataset.name, missing, _origin_text(con, ex))
        _validate(con, dataset, ex, window, source_types)
        if ex.rejects:
            con.execute(f"create or replace temp table {REJECTED} as {ex.rejects}").fetchall()
        params = [datetime.now(UTC), run_id]
        with warehouse.transaction(con):
            written, extra = _write(con, dataset, _raw_select(dataset, ex, window, source_types), params, window, ex)
            if not dataset.is_cdc:  # a change log quarantines nothing (the current state does)
                _write_quarantine(con, dataset, ex, window, source_types, params)
        if ex.after_commit is not None:
            ex.after_commit()
        report = _report(con, dataset, ex, window, written)
    except duckdb.Error as err:
        if ex.diagnose is not None:
            ex.diagnose(err)
        raise
    finally:
        for name in [*ex.cleanup, VALIDATED, REJECTED]:
            _drop(con, name)
        if ex.release is not None:
            ex.release()
    declared = {c.name for c in dataset.columns}
    report.new_columns = [c for c in source_types if declared and c not in declared]
    report.metadata.update(ex.metadata)
    report.metadata.update(extra)
    return report


VALIDATED, REJECTED = "__strata_validated", "__strata_rejected"


def _source_types(con: duckdb.DuckDBPyConnection, dataset: Dataset, ex: Extract) -> dict[str, str]:
    """The source's own columns and types (without the origin, row and partition columns).

    Raises:
        ReservedColumnError: the source has a column named like a load column (``_partition_date``,
            ``_loaded_at`` ...): it would be confused with Strata's own.
    """
    described = con.execute(f"describe select * from {ex.relation}", ex.params).fetchall()
    own = {ex.origin_column, ex.partition_column, ex.row_column, *ex.load_columns, *ex.bounds_columns}
    names = [row[0] for row in described]
    reserved = set(LOAD_COLUMNS) | {ex.row_column}
    # DuckDB renames a duplicate in a subquery (our _partition_date beside the source's becomes
    # _partition_date_1), so a clash with one of our own columns shows as that suffix
    clashes = sorted({n for n in names if n in reserved and n not in own} | {c for c in own if c and f"{c}_1" in names})
    if clashes:
        raise ReservedColumnError(dataset.name, clashes, _origin_with(ex, clashes[0]))
    return {row[0]: row[1] for row in described if row[0] not in own}


def _origin_with(ex: Extract, column: str) -> str:
    """Where a source column comes from: the files (or pages) whose reader gives it."""
    found = ex.origin_of_column(column) if ex.origin_of_column is not None else []
    return ", ".join(found[:3]) or "the source"


def _validate(con, dataset: Dataset, ex: Extract, window: PartitionWindow | None, source_types: dict[str, str]) -> None:
    """Materialize the source with typed copies of the declared columns and each row's rule failures."""
    csv = dataset.source.csv if isinstance(dataset.source, FilesSource) else None
    timezone = dataset.partitioning.timezone if dataset.partitioning else "UTC"
    typed = [
        f"{contract.typed_expr(c, source_types[c.name], csv, timezone)} as {contract.typed_name(c.name)}"
        for c in ([] if dataset.is_cdc else dataset.columns)
    ]
    order = f"{warehouse.quote(ex.origin_column)}, {warehouse.quote(ex.row_column)}"
    # a CDC table has many changes per key: its primary key names the row the changes apply to
    keys = [] if dataset.is_cdc else dataset.primary_key
    rank = f", {contract.duplicate_rank(keys, order)} as {contract.DUPLICATE_RANK}" if keys else ""
    # a change log is kept verbatim: what the current state cannot apply is quarantined there
    rules = [] if dataset.is_cdc else contract.column_rules(dataset)
    column = dataset.partitioning.column if dataset.partitioning else None
    declared = dataset.column(column) if column else None
    if window is not None and declared is not None:
        rules.append(contract.partition_rule(declared.name, declared.sql_type, window, ex.bounds_columns))
    rules += contract.duplicate_rules(keys, _existing_keys(con, dataset, ex, window) if keys else None)
    checks = "list_filter([" + ", ".join(rules) + "], lambda x: x is not null)" if rules else "[]::varchar[]"
    inner = f"select src.*{''.join(', ' + t for t in typed)}{rank} from {ex.relation} as src"
    # a change log, with nothing to judge, is read from its spool files: a view, not a second copy
    kind = "view" if dataset.is_cdc and not (rules or ex.params) else "table"
    con.execute(
        f"create or replace temp {kind} {VALIDATED} as select *, {checks} as __violations from ({inner})",
        ex.params,
    ).fetchall()


def _existing_keys(con, dataset: Dataset, ex: Extract, window: PartitionWindow | None) -> str | None:
    """Primary keys already loaded outside the part this load replaces (overwrite and append only)."""
    if not dataset.primary_key or not warehouse.table_exists(con, dataset.table):
        return None
    keys = ", ".join(warehouse.quote(k) for k in dataset.primary_key)
    table = warehouse.qualified(dataset.table)
    if dataset.load_strategy == "overwrite_partition" and window is not None:
        return f"(select {keys} from {table} where not ({_window_predicate(con, dataset.table, window)}))"
    if dataset.load_strategy == "append":
        origin = warehouse.quote(ex.origin_column)
        return f"(select {keys} from {table} where {origin} not in (select {origin} from {ex.relation}))"
    return None


def _window_predicate(con, table: str, window: PartitionWindow) -> str:
    """The window over ``table``'s ``_partition_date``, read as the type the table has it in."""
    return window.predicate(PARTITION_COLUMN, warehouse.column_kind_of(con, table, PARTITION_COLUMN))


def _partition_sql(dataset: Dataset, ex: Extract, window: PartitionWindow | None) -> str:
    """Each row's :attr:`Partition.value`: its file's, or its partition column's."""
    if window is None:
        return "null::date"
    if ex.partition_column:
        return f"{ex.partition_column}::{window.value_type}"
    column = dataset.column(dataset.partitioning.column)  # type: ignore[union-attr,arg-type]
    return window.partition_sql(contract.typed_name(column.name), column_kind(column.sql_type))  # type: ignore[union-attr]


def _raw_select(dataset: Dataset, ex: Extract, window: PartitionWindow | None, source_types: dict[str, str]) -> str:
    """SELECT of the rows that pass every rule: source columns (declared ones typed) and load columns."""
    exprs = [
        f"{contract.typed_name(c)} as {warehouse.quote(c)}"
        if dataset.column(c) and not dataset.is_cdc
        else warehouse.quote(c)
        for c in source_types
    ]
    exprs += [warehouse.quote(c) for c in ex.load_columns]
    partition = f", {_partition_sql(dataset, ex, window)} as {PARTITION_COLUMN}" if window is not None else ""
    return (
        f"select {', '.join(exprs)}, {warehouse.quote(ex.origin_column)}{partition}, "
        f"?::timestamptz as _loaded_at, ?::varchar as _run_id from {VALIDATED} where len(__violations) = 0"
    )


QUARANTINE_COLUMNS = (
    "_partition_date",
    "_source",
    "_source_row",
    "_rule",
    "_column",
    "_reason",
    "_payload",
    "_loaded_at",
    "_run_id",
)


def _write_quarantine(con, dataset: Dataset, ex: Extract, window, source_types: dict[str, str], params) -> None:
    """Replace this load's part of ``quarantine.<name>`` with the rows that failed a rule."""
    table = f"quarantine.{dataset.name}"
    select = (
        f"select {_partition_sql(dataset, ex, window)} as _partition_date, "
        f"{warehouse.quote(ex.origin_column)}::varchar as _source, "
        f"{warehouse.quote(ex.row_column)}::bigint as _source_row, {contract.quarantine_columns(list(source_types))}, "
        f"?::timestamptz as _loaded_at, ?::varchar as _run_id from {VALIDATED} where len(__violations) > 0"
    )
    all_params = list(params)
    if ex.rejects:
        select += (
            " union all select partition_date, origin, line, 'malformed_line', null, reason, "
            "to_json({'line': text})::varchar, ?::timestamptz, ?::varchar from " + REJECTED
        )
        all_params += params
    _evolve(dataset, table, lambda: warehouse.create_like(con, table, select, all_params))
    strategy = dataset.load_strategy
    if strategy == "overwrite_partition" and window is not None:
        warehouse.delete_where(con, table, _window_predicate(con, table, window))
    elif strategy == "replace":
        warehouse.delete_where(con, table, "true")
    elif strategy == "append":
        warehouse.delete_where(con, table, f"_source in (select {warehouse.quote(ex.origin_column)} from {VALIDATED})")
    else:  # merge: the same bad row read again replaces itself
        warehouse.delete_where(con, table, f"_payload in (select _payload from ({select}))", all_params)
    warehouse.insert_by_name(con, table, select, all_params)


def _report(con, dataset: Dataset, ex: Extract, window: PartitionWindow | None, written: int) -> LoadReport:
    """Rows read, loaded and quarantined, per partition of the window (or in total)."""
    partition = _partition_sql(dataset, ex, window)
    rows = con.execute(
        f"select {partition}, count(*) filter (where len(__violations) = 0), "
        f"count(*) filter (where len(__violations) > 0) from {VALIDATED} group by 1"
    ).fetchall()
    loaded: dict = {p: int(ok) for p, ok, _ in rows}
    quarantined: dict = {p: int(bad) for p, _, bad in rows}
    if ex.rejects:
        for p, n in con.execute(f"select partition_date, count(*) from {REJECTED} group by 1").fetchall():
            quarantined[p] = quarantined.get(p, 0) + int(n)
    reader = {p: loaded.get(p, 0) + quarantined.get(p, 0) for p in set(loaded) | set(quarantined)}
    if window is None:
        reader = {None: sum(reader.values())}
    # rows read are the source's own count, so a reader that drops rows fails row_accounting
    read = ex.count_source(reader) if ex.count_source is not None else reader
    report = LoadReport(dataset.name, dataset.table, sum(read.values()), written)
    report.rows_quarantined = sum(quarantined.values())
    report.rows_passed = sum(loaded.values())
    if window is not None:
        report.quarantined_by_partition = _by_partition(window, quarantined)
        report.read_by_partition = _by_partition(window, read)
    _count(con, report, PARTITION_COLUMN, window)
    return report


def _by_partition(window: PartitionWindow, by_value: dict) -> dict[Partition, int]:
    """``{partition value: n}`` (as SQL returns values) as ``{partition: n}`` for every partition of ``window``."""
    out = dict.fromkeys(window.partitions, 0)
    for value, n in by_value.items():
        partition = value if isinstance(value, Partition) else window.partition_of_value(value)
        if partition is not None:
            out[partition] += n
    return out


def _count(con: duckdb.DuckDBPyConnection, report: LoadReport, column: str, window: PartitionWindow | None) -> None:
    """Fill in the rows per partition of the window, or the table's row count."""
    if window is not None:
        counts = warehouse.rows_per_partition(con, report.table, column, window)
        report.rows_by_partition = {p: counts.get(p, 0) for p in window.partitions}
    else:
        report.table_rows = con.execute(f"select count(*) from {warehouse.qualified(report.table)}").fetchall()[0][0]


def _evolve(dataset: Dataset, table: str, change):
    """Run ``change``, a write that may migrate ``table``'s column types.

    Raises:
        TypeMigrationError: a column's values do not convert to its new type; names the dataset
            and how to rebuild it.
    """
    try:
        return change()
    except warehouse.IncompatibleTypeError as err:
        raise TypeMigrationError(dataset.name, err) from err


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    try:
        con.unregister(name)
    except duckdb.Error:
        pass
    for kind in ("table", "view"):  # "drop table" of a view is an error, and the other way round
        try:
            con.execute(f"drop {kind} if exists {warehouse.quote(name)}").fetchall()
        except duckdb.CatalogException:
            pass


def _origin_text(con: duckdb.DuckDBPyConnection, ex: Extract) -> str:
    rows = con.execute(
        f"select distinct {warehouse.quote(ex.origin_column)} from {ex.relation} limit 3", ex.params
    ).fetchall()
    return ", ".join(str(r[0]) for r in rows) or "the source"


def _write(
    con, dataset: Dataset, select_sql: str, params: list, window: PartitionWindow | None, ex: Extract
) -> tuple[int, dict]:
    """Write the passing rows by the dataset's load strategy (inside the caller's transaction)."""
    strategy, table = dataset.load_strategy, dataset.table
    if strategy == "replace":
        return warehouse.create_or_replace(con, table, select_sql, params), {}
    changes = _evolve(dataset, table, lambda: warehouse.create_like(con, table, select_sql, params))
    changed = {"schema_changes": "; ".join(changes)} if changes else {}
    if strategy == "overwrite_partition":
        assert window is not None
        warehouse.delete_where(con, table, _window_predicate(con, table, window))
        return warehouse.insert_by_name(con, table, select_sql, params), changed
    if strategy == "append":
        origin = warehouse.quote(ex.origin_column)
        warehouse.delete_where(con, table, f"{origin} in (select {origin} from {VALIDATED})")
        return warehouse.insert_by_name(con, table, select_sql, params), changed
    if dataset.is_cdc:
        return _write_changes(con, table, select_sql, params, changed)
    order = None
    source = dataset.source
    if isinstance(source, PostgresSource) and source.incremental is not None:
        order = f"{warehouse.quote(source.incremental.cursor)} desc nulls last"
    inserted, updated = warehouse.merge_by_key(
        con, table, select_sql, dataset.write_key, params, order_by=order, ignore=VOLATILE_LOAD_COLUMNS
    )
    extra = {"rows_inserted": inserted, "rows_updated": updated, **changed}
    if isinstance(source, PostgresSource) and source.incremental is not None:
        hwm = con.execute(
            f"select max({warehouse.quote(source.incremental.cursor)}) from {warehouse.qualified(table)}"
        ).fetchall()[0][0]
        extra["high_water_mark"] = str(hwm)
    return inserted + updated, extra


def _write_changes(con, table: str, select_sql: str, params: list, changed: dict) -> tuple[int, dict]:
    """Append a CDC load's changes, replacing any it read before (inside the caller's transaction).

    A load reads whole transactions in commit order from the slot's confirmed position, so the
    changes it may share with raw (read again after a crash between the raw commit and the slot's
    advance) are exactly raw's rows whose commit LSN falls in the batch's range: they are deleted
    and written again, identical. Cheaper than a merge by ``(commit LSN, LSN, seq)``, same table.
    """
    low, high = con.execute(
        f"select min(_cdc_commit_lsn), max(_cdc_commit_lsn) from {VALIDATED} where len(__violations) = 0"
    ).fetchall()[0]
    again = 0
    if low is not None:
        again = con.execute(
            f"select count(*) from {warehouse.qualified(table)} where _cdc_commit_lsn between ? and ?", [low, high]
        ).fetchall()[0][0]
        warehouse.delete_where(con, table, "_cdc_commit_lsn between ? and ?", [low, high])
    written = warehouse.insert_by_name(con, table, select_sql, params)
    return written, {"rows_inserted": written - int(again), "rows_updated": 0, "rows_read_again": int(again), **changed}


#: The column a dataset that builds incomplete partitions (``partitioning.incomplete: publish``)
#: adds: false on the rows of a partition built while some of its upstream partitions were missing.
COMPLETE_COLUMN = "_complete"


def build_derived(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    window: PartitionWindow | None = None,
    skip: Sequence[Partition] = (),
    incomplete: Sequence[Partition] = (),
) -> LoadReport:
    """Materialize SQL-derived ``dataset`` (its SELECT) into ``<schema>.<name>``.

    The current state of a CDC dataset (``apply_changes``) is built by :mod:`strata.current_state`
    (typed, with its quarantine). Partitioned datasets replace the window's rows (placed by their
    partition column, read by its type: :meth:`PartitionWindow.predicate`) except those of the
    partitions in ``skip``, which stay
    as they were; others replace the table, or merge by primary key. With
    ``partitioning.incomplete: publish`` the table has a BOOLEAN column :data:`COMPLETE_COLUMN`,
    false on the rows of the partitions in ``incomplete``.

    The SELECT runs as sqlglot parsed it, after :mod:`strata.registry.sql_policy` accepted it
    (:func:`strata.registry.sql.sandboxed`); run it on a sandboxed connection
    (:func:`strata.warehouse.sandbox`).

    Raises:
        UnsafeSqlError: the policy refuses the SELECT (nothing ran).
        duckdb.Error: the SELECT failed (the table is unchanged).
    """
    if dataset.apply_changes is not None:
        from strata import current_state

        rows, held = current_state.build(con, dataset)
        report = LoadReport(dataset.name, dataset.table, rows, rows, rows_quarantined=held, table_rows=rows)
        report.metadata["changes_quarantined"] = held
        return report
    select_sql = f"select * from ({sandboxed(dataset.select)}) as q"  # type: ignore[arg-type]
    strategy = dataset.load_strategy
    if window is None:
        if strategy == "merge":
            inserted, updated = warehouse.merge(con, dataset.table, select_sql, dataset.primary_key)
            rows = inserted + updated
        else:
            rows = warehouse.replace_table(con, dataset.table, select_sql)
        report = LoadReport(dataset.name, dataset.table, rows, rows)
        _count(con, report, "", None)
        return report
    spec = dataset.partitioning
    assert spec is not None and spec.column is not None, "a partitioned SQL dataset has a partition column"
    column = warehouse.quote(spec.column)
    described = dict((r[0], r[1]) for r in con.execute(f"describe {select_sql}").fetchall())
    kind = column_kind(described[spec.column])

    def within(partitions: Sequence[Partition]) -> str:
        return " or ".join(f"({p.window().predicate(column, kind)})" for p in partitions)

    selected = window.predicate(column, kind) + "".join(
        f" and not ({p.window().predicate(column, kind)})" for p in skip
    )
    if spec.incomplete == "publish":
        flag = f"not ({within(incomplete)})" if incomplete else "true"
        select_sql = f"select *, ({flag}) as {COMPLETE_COLUMN} from ({select_sql}) as built"
    select_sql = f"select * from ({select_sql}) as windowed where {selected}"
    changes: list[str] = []
    if strategy == "merge":
        inserted, updated = warehouse.merge(con, dataset.table, select_sql, dataset.primary_key)
        rows = inserted + updated
    else:
        rows, changes = _evolve(
            dataset, dataset.table, lambda: warehouse.replace_window(con, dataset.table, select_sql, selected)
        )
    report = LoadReport(dataset.name, dataset.table, rows, rows)
    if changes:
        report.metadata["schema_changes"] = "; ".join(changes)
    report.skipped = sorted(skip)
    _count(con, report, spec.column, window)
    return report
