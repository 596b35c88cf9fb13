"""A dataset's column contract as SQL: typed expressions, and the row-level rules a row must pass.

Row-level rules (each gives ``rule|column|detail`` for a failing row, else NULL):

* ``cast``: a declared column's value does not convert to its type (strict for integers read as
  text: ``1e3`` or ``1.7`` are not integers; thousands separators only with the CSV option);
* ``not_null``: a missing value in a column declared ``nullable: false`` or in the primary key;
* ``range``, ``accepted_values``, ``pattern``: the column's declared rules;
* ``partition``: the partition column falls outside the run's window (for files: outside the
  partition of the file the row came from). A TIMESTAMPTZ is an instant; a TIMESTAMP is wall-clock
  time in the partitioning's zone, so a time of a repeated hour (a fall clock change) belongs to
  either of its files, and one in a skipped hour (spring) to none (:mod:`strata.partition_window`);
* ``duplicate_key``: the primary key appears earlier in the batch (the first occurrence, by origin
  and row number, is kept) or already belongs to rows outside the part being replaced.

Rows failing any rule go to quarantine, never to the raw table. Pure SQL building; no connection.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date

from strata.partition_window import PartitionWindow, column_kind
from strata.registry.models import Column, CsvOptions, Dataset
from strata.warehouse import literal, quote

INTEGER_TYPES = {
    "TINYINT",
    "SMALLINT",
    "INTEGER",
    "INT",
    "BIGINT",
    "HUGEINT",
    "UTINYINT",
    "USMALLINT",
    "UINTEGER",
    "UBIGINT",
    "INT4",
    "INT8",
    "INT2",
    "INT128",
    "UINT128",
    "UINT",
}
NUMERIC_PREFIXES = ("DECIMAL", "NUMERIC", "DOUBLE", "FLOAT", "REAL")
TYPED_PREFIX = "__typed_"


def typed_name(column: str) -> str:
    """Name of the typed copy of ``column`` in the validated relation."""
    return quote(TYPED_PREFIX + column)


#: Text that ends in a UTC offset after a time of day (``2010-03-14T03:00:00-07:00``, ``...Z``).
OFFSET_PATTERN = r"[0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]+)?)?\s*([zZ]|[+-][0-9]{2}(:?[0-9]{2})?)\s*$"


def typed_expr(column: Column, source_type: str, csv: CsvOptions | None, timezone: str = "UTC") -> str:
    """SQL converting the source value of ``column`` to its declared type; NULL when it does not convert.

    A ``TIMESTAMP`` is wall-clock time in ``timezone`` (the partitioning's): a text value written with
    a UTC offset (``2010-03-14T03:00:00-07:00``) is converted to that wall clock, where DuckDB's cast
    would keep the written clock and drop the offset. A ``TIMESTAMPTZ`` text without an offset is read
    in the connection's ``TimeZone``, which the load sets to ``timezone``.
    """
    col = quote(column.name)
    kind = column.sql_type
    text_source = source_type.upper() == "VARCHAR"
    value = col
    if (
        text_source
        and csv is not None
        and csv.thousands
        and (kind in INTEGER_TYPES or kind.startswith(NUMERIC_PREFIXES))
    ):
        value = f"replace({col}, {literal(csv.thousands)}, '')"
    if csv is not None and csv.date_format and kind == "DATE":
        return f"try_strptime({value}, {literal(csv.date_format)})::date"
    if csv is not None and csv.timestamp_format and kind.startswith("TIMESTAMP"):
        return f"try_cast(try_strptime({value}, {literal(csv.timestamp_format)}) as {column.sql_type})"
    cast = f"try_cast({value} as {column.sql_type})"
    if text_source and kind in INTEGER_TYPES:
        return f"case when regexp_full_match(trim({value}), '[+-]?[0-9]+') then {cast} end"
    if text_source and _is_wall_clock(kind):
        instant = f"try_cast({value} as timestamptz)"
        return (
            f"case when regexp_matches({value}, {literal(OFFSET_PATTERN)}) "
            f"then try_cast(timezone({literal(timezone)}, {instant}) as {column.sql_type}) else {cast} end"
        )
    return cast


def _is_wall_clock(sql_type: str) -> bool:
    try:
        return column_kind(sql_type) == "timestamp"
    except ValueError:
        return False


def _sql_value(value: object) -> str:
    if value == "today":
        return "current_date"
    if isinstance(value, date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, str):
        return literal(value)
    return repr(value)


#: Separates rule, column and detail in a rule's result (a character data does not contain).
SEP = "\x1f"


def quarantine_columns(columns: Sequence[str], violations: str = "__violations") -> str:
    """SQL of a quarantined row's ``_rule``, ``_column``, ``_reason`` (VARCHAR) and ``_payload`` (JSON text).

    ``violations`` is the row's list of failures (:func:`column_rules` and the others); ``_rule``
    and ``_column`` are the first one's, ``_reason`` lists them all (``rule on column: detail``,
    separated by ``; ``), and ``_payload`` holds ``columns`` as they were read.
    """
    sep = f"chr({ord(SEP)})"
    payload = "to_json(struct_pack(" + ", ".join(f"{quote(c)} := {quote(c)}" for c in columns) + "))"
    return (
        f"split_part({violations}[1], {sep}, 1) as _rule, split_part({violations}[1], {sep}, 2) as _column, "
        f"array_to_string(list_transform({violations}, lambda v: split_part(v, {sep}, 1) || ' on ' || "
        f"split_part(v, {sep}, 2) || ': ' || split_part(v, {sep}, 3)), '; ') as _reason, "
        f"{payload}::varchar as _payload"
    )


def _failure(rule: str, column: str, condition: str, detail_sql: str) -> str:
    return f"case when {condition} then {literal(rule + SEP + column + SEP)} || ({detail_sql}) end"


def column_rules(dataset: Dataset, typed: Callable[[str], str] = typed_name) -> list[str]:
    """The row-level rule expressions of the declared columns (see the module docstring).

    ``typed`` names a column's typed value: the typed copy while loading (then a value that did
    not convert breaks ``cast``), or the column itself when judging a loaded table.
    """
    rules = []
    keys = set(dataset.primary_key)
    for col in dataset.columns:
        raw, value = quote(col.name), typed(col.name)
        shown = f"left({raw}::varchar, 80)"
        if value != raw:
            rules.append(
                _failure(
                    "cast",
                    col.name,
                    f"{raw} is not null and {value} is null",
                    f"{shown} || {literal(' is not ' + col.type)}",
                )
            )
        if not col.nullable or col.name in keys:
            rules.append(_failure("not_null", col.name, f"{raw} is null", "'missing value'"))
        bounds = col.range
        for bound, op in ((bounds.min if bounds else None, "<"), (bounds.max if bounds else None, ">")):
            if bound is not None:
                rules.append(
                    _failure(
                        "range",
                        col.name,
                        f"{value} {op} {_sql_value(bound)}",
                        f"{value}::varchar || ' {op} {bound}'",
                    )
                )
        if col.accepted_values is not None:
            values = ", ".join(_sql_value(v) for v in col.accepted_values)
            rules.append(
                _failure(
                    "accepted_values",
                    col.name,
                    f"{value} not in ({values})",
                    f"{value}::varchar || ' is not accepted'",
                )
            )
        if col.pattern is not None:
            rules.append(
                _failure(
                    "pattern",
                    col.name,
                    f"not regexp_full_match({value}::varchar, {literal(col.pattern)})",
                    f"{shown} || ' does not match the pattern'",
                )
            )
    return rules


def partition_rule(column: str, sql_type: str, window: PartitionWindow, bounds: tuple[str, ...] = ()) -> str:
    """Rows whose partition column (declared ``sql_type``) is outside the window, or outside their file's partition.

    ``bounds`` (files) are the row's columns ``(start, end, wall start, wall end, key)`` of its file's
    partition (:attr:`strata.sources.Extract.bounds_columns`): a TIMESTAMPTZ must fall in
    ``[start, end)``, a TIMESTAMP or DATE in the nominal wall-clock ``[wall start, wall end)``.
    Without them, the value must fall in ``window`` (:meth:`PartitionWindow.predicate`).
    """
    kind = column_kind(sql_type)
    value = typed_name(column)
    if bounds:
        start, end, wall_start, wall_end, key = bounds
        if kind == "timestamptz":
            outside = f"{value} < {start} or {value} >= {end}"
        elif kind == "timestamp":
            outside = f"{value} < {wall_start} or {value} >= {wall_end}"
        else:
            outside = f"{value} < cast({wall_start} as date) or {value} >= cast({wall_end} as date)"
        detail = f"{value}::varchar || ' is outside its file''s partition ' || {key}"
    else:
        outside = f"not ({window.predicate(value, kind)})"
        detail = f"{value}::varchar || {literal(' is outside the partitions ' + window.describe())}"
    return _failure("partition", column, f"{quote(column)} is not null and ({outside})", detail)


DUPLICATE_RANK = "__duplicate_rank"


def duplicate_rank(keys: Sequence[str], order: str) -> str:
    """Window expression numbering the rows of each primary key (1 = the row that is kept)."""
    typed_keys = [typed_name(k) for k in keys]
    return f"row_number() over (partition by {', '.join(typed_keys)} order by {order})"


def duplicate_rules(keys: Sequence[str], existing: str | None) -> list[str]:
    """Rows repeating an earlier row's primary key, or a key already loaded elsewhere.

    The batch rule needs :data:`DUPLICATE_RANK`; ``existing`` is a relation of the keys loaded
    outside the part being replaced, or None.
    """
    if not keys:
        return []
    typed_keys = [typed_name(k) for k in keys]
    not_null = " and ".join(f"{k} is not null" for k in typed_keys)
    shown = " || ',' || ".join(f"{k}::varchar" for k in typed_keys)
    label = ",".join(keys)
    rules = [
        _failure(
            "duplicate_key",
            label,
            f"{not_null} and {DUPLICATE_RANK} > 1",
            f"{shown} || ' repeats an earlier row'",
        )
    ]
    if existing is not None:
        match = " and ".join(f"x.{quote(k)} = {typed_name(k)}" for k in keys)
        rules.append(
            _failure(
                "duplicate_key",
                label,
                f"exists (select 1 from {existing} x where {match})",
                f"{shown} || ' is already loaded'",
            )
        )
    return rules
