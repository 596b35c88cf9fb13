"""The rules a valid dataset must follow beyond its schema, checked one file at a time.

Each rule returns :class:`Issue` objects placed on the offending key, so an analyst sees every
problem of a file at once. Rules that need the other files (duplicate names, references to
other datasets and dbt models) are in :mod:`strata.registry.loader`.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterator
from datetime import date, datetime
from functools import cache
from pathlib import PurePosixPath
from zoneinfo import available_timezones

import yaml
from cronsim import CronSim, CronSimError

from strata.clock import irregular_clock_change
from strata.partition_window import column_kind
from strata.registry.issues import Issue
from strata.registry.models import (
    CDC_COLUMNS,
    CustomSqlCheck,
    Dataset,
    DistributionCheck,
    FilesSource,
    HttpSource,
    PostgresSource,
    ReconciliationCheck,
    VolumeCheck,
    check_name,
    duration_seconds,
    parse_type,
)
from strata.registry.sql import SqlProblem, parse_select, with_placeholders
from strata.registry.yaml_doc import YamlDocument
from strata.sources import LOAD_COLUMNS

COMMON_TYPES = [
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "DOUBLE",
    "DECIMAL(18,2)",
    "VARCHAR",
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "TIME",
    "UUID",
    "JSON",
    "BLOB",
]
WINDOW_PLACEHOLDERS = {"date", "start", "end"}
#: Column names Strata's loads add (:data:`strata.sources.LOAD_COLUMNS`, and the row number).
RESERVED_COLUMNS = frozenset(LOAD_COLUMNS) | {"_source_row", "_complete"} | frozenset(CDC_COLUMNS)
#: Columns the SCD Type 2 history adds or uses (:func:`strata.registry.models.scd2_sql`).
HISTORY_COLUMNS = frozenset(
    {"version", "valid_from", "valid_to", "is_current", "snapshot_day", "previous_day", "next_day", "opens"}
)
#: Partition dates Strata accepts: Dagster's partition arithmetic overflows near year 9999.
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)


def check_dataset(doc: YamlDocument, ds: Dataset) -> list[Issue]:
    """Every single-file rule violation of ``ds`` (declared in ``doc``)."""
    rules = (_columns, _layer, _partitioning, _load, _source, _select, _checks, _freshness, _history)
    return [issue for rule in rules for issue in rule(doc, ds)]


def check_sql_text(doc: YamlDocument) -> list[Issue]:
    """The SQL rules on a document that did not fit the schema: its ``select`` and ``custom_sql`` texts.

    So a file with a misspelt key and a refused SELECT shows both in one run.
    """
    data = doc.data if isinstance(doc.data, dict) else {}
    found = []
    if isinstance(data.get("select"), str):
        _, problem = parse_select(data["select"])
        if problem:
            found.append(_sql_issue(doc, ("select",), problem))
    for i, check in enumerate(data.get("checks") if isinstance(data.get("checks"), list) else []):
        if isinstance(check, dict) and check.get("type") == "custom_sql" and isinstance(check.get("sql"), str):
            _, problem = parse_select(with_placeholders(check["sql"]))
            if problem:
                found.append(_sql_issue(doc, ("checks", i, "sql"), problem))
    return found


def _near(word: str, options: list[str]) -> str:
    found = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{found[0]}'?" if found else ""


def _columns(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    seen: set[str] = set()
    for i, col in enumerate(ds.columns):
        if col.name in seen:
            yield doc.issue(("columns", i, "name"), f"column '{col.name}' is declared twice")
        if col.name in RESERVED_COLUMNS:
            yield doc.issue(
                ("columns", i, "name"),
                f"column '{col.name}' is reserved for load metadata",
                "rename it (Strata adds " + ", ".join(sorted(RESERVED_COLUMNS)) + " itself)",
            )
        seen.add(col.name)
        if not valid_type(col.type):
            yield doc.issue(
                ("columns", i, "type"),
                f"column '{col.name}': unknown type '{col.type}'",
                _near(col.type.upper(), COMMON_TYPES) or "a DuckDB type: " + ", ".join(COMMON_TYPES[:8]),
            )
        values = doc.node_at(("columns", i, "accepted_values"))
        for j, node in enumerate(values.value if isinstance(values, yaml.SequenceNode) else []):
            if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":bool") and not node.style:
                yield doc.issue(
                    ("columns", i, "accepted_values", j),
                    f"'{node.value}' is read as a boolean (YAML 1.1), not the text '{node.value}'",
                    f"quote it: '{node.value}'",
                )
        if col.pattern is not None:
            problem = regex_problem(col.pattern)
            if problem:
                yield doc.issue(("columns", i, "pattern"), f"pattern: DuckDB cannot run it: {problem}")
    names = [c.name for c in ds.columns]
    for i, key in enumerate(ds.primary_key):
        if names and key not in names:
            yield doc.issue(
                ("primary_key", i),
                f"primary key column '{key}' is not among the declared columns",
                _near(key, names),
            )


@cache
def valid_type(type_sql: str) -> bool:
    """Whether ``type_sql`` is exactly one SQL type DuckDB knows (:func:`strata.registry.models.parse_type`)."""
    try:
        parse_type(type_sql)
    except ValueError:
        return False
    return True


@cache
def regex_problem(pattern: str) -> str:
    """Why DuckDB's regular-expression engine (RE2) refuses ``pattern``, or "" if it accepts it.

    Python's ``re`` accepts look-arounds and back-references that RE2 does not; the load and the
    schema check run the pattern in DuckDB, so DuckDB judges it.
    """
    import duckdb

    try:
        duckdb.connect().execute("select regexp_full_match('', ?)", [pattern]).fetchall()
    except duckdb.Error as err:
        return str(err).splitlines()[0].removeprefix("Invalid Input Error: ")
    return ""


def _layer(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    if ds.layer == "raw":
        if ds.source is None:
            yield doc.issue(
                ("layer",),
                "a raw dataset needs a 'source' (files, postgres or http)",
                "or declare a SQL-derived dataset with layer: staging or mart and a 'select'",
            )
        if ds.select is not None:
            yield doc.issue(("select",), "'select' belongs to staging and mart datasets, not raw ones")
    else:
        if ds.apply_changes is not None and ds.layer != "staging":
            yield doc.issue(("apply_changes",), "the current state of a CDC dataset is a staging dataset")
        if ds.apply_changes is not None and isinstance(doc.data, dict) and "select" in doc.data:
            yield doc.issue(("select",), "apply_changes writes the select: give one or the other")
        if ds.apply_changes is not None and not ds.primary_key:
            yield doc.issue(("apply_changes",), "applying changes needs the primary_key they apply to")
        elif ds.select is None:
            yield doc.issue(("layer",), f"a {ds.layer} dataset needs a 'select' over other datasets or dbt models")
        if ds.source is not None:
            yield doc.issue(("source",), f"a {ds.layer} dataset is SQL-derived: use 'select', not 'source'")


def _partitioning(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    p = ds.partitioning
    if p is None:
        return
    for key in ("start", "end"):
        value = getattr(p, key)
        if value is not None and not (EARLIEST <= value <= LATEST):
            yield doc.issue(("partitioning", key), f"{key} {value} is outside {EARLIEST} .. {LATEST}")
    if p.end is not None and p.end < p.start:
        yield doc.issue(("partitioning", "end"), f"end {p.end} is before start {p.start}")
    if p.lookback_days and p.type != "daily":
        yield doc.issue(
            ("partitioning", "lookback_days"),
            f"lookback_days counts days; {_kind(p.type)} partitioning counts partitions",
            f"lookback: {p.lookback_days}",
        )
    if p.type == "monthly" and duration_seconds(p.grace) >= 86400:
        yield doc.issue(("partitioning", "grace"), "a monthly run starts on the 1st: grace must be under a day")
    if p.lookback_days and p.lookback is not None:
        yield doc.issue(("partitioning", "lookback_days"), "give lookback or lookback_days, not both")
    if p.timezone not in _TIMEZONES:
        yield doc.issue(
            ("partitioning", "timezone"),
            f"unknown timezone '{p.timezone}'",
            _near(p.timezone, sorted(_TIMEZONES)) or "an IANA name such as UTC or Europe/Amsterdam",
        )
    if p.timezone in _TIMEZONES:
        last = p.end or date(date.today().year + 10, 12, 31)
        irregular = irregular_clock_change(p.timezone, max(p.start, EARLIEST), min(last, LATEST), p.type)
        if irregular:
            need = "clock changes of whole hours at whole hours" if p.type == "hourly" else "no skipped or repeated day"
            yield doc.issue(
                ("partitioning", "timezone"),
                f"{p.type} partitions in {p.timezone} need {need}, but {irregular}",
                "use daily partitions, or timezone: UTC (event times with a UTC offset still land in their hour)"
                if p.type == "hourly"
                else "start the partitions after that day, or use timezone: UTC",
            )
    if p.incomplete == "publish" and ds.layer == "raw":
        yield doc.issue(
            ("partitioning", "incomplete"),
            "incomplete applies to SQL-derived datasets built from finer upstream partitions",
            "remove it from a raw dataset",
        )
    names = [c.name for c in ds.columns]
    if p.column is None and not isinstance(ds.source, FilesSource):
        yield doc.issue(("partitioning",), "partitioning needs a 'column': the date column that places each row")
    elif p.column is not None and names and p.column not in names:
        yield doc.issue(
            ("partitioning", "column"),
            f"partition column '{p.column}' is not among the declared columns",
            _near(p.column, names) or "declare it under columns:",
        )
    declared = ds.column(p.column) if p.column else None
    if declared is not None and valid_type(declared.type):
        try:
            kind = column_kind(declared.sql_type)
        except ValueError:
            kind = None
        index = names.index(declared.name)
        if kind is None:
            yield doc.issue(
                ("columns", index, "type"),
                f"partition column '{declared.name}' is {declared.type}: it must be a DATE, TIMESTAMP or TIMESTAMPTZ",
            )
        elif kind == "date" and p.type == "hourly":
            yield doc.issue(
                ("columns", index, "type"),
                f"partition column '{declared.name}' is a DATE: it cannot place a row in an hour",
                "declare it TIMESTAMPTZ (an instant) or TIMESTAMP (wall-clock time in the partitioning's timezone)",
            )


def _load(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    strategy, loc = ds.load_strategy, ("load",)
    if strategy == "overwrite_partition" and ds.partitioning is None:
        yield doc.issue(loc, "overwrite_partition needs partitioning", "add partitioning:, or use load: replace")
    if strategy == "replace" and ds.partitioning is not None:
        yield doc.issue(
            loc,
            "replace rewrites the whole table; a partitioned dataset cannot use it",
            "use overwrite_partition (or merge)",
        )
    if strategy == "merge" and not ds.primary_key and not ds.is_cdc:
        yield doc.issue(loc, "merge (upsert) needs a primary_key", "add primary_key: [id]")
    if strategy == "append" and not isinstance(ds.source, FilesSource):
        yield doc.issue(
            loc,
            "append is only idempotent for files (a file loaded again replaces its rows)",
            "use merge with a primary_key",
        )


def _source(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    src = ds.source
    if isinstance(src, FilesSource):
        yield from _files(doc, ds, src)
    elif isinstance(src, PostgresSource):
        yield from _postgres(doc, ds, src)
    elif isinstance(src, HttpSource):
        yield from _http(doc, ds, src)


def _placeholders(template: str) -> set[str]:
    """Placeholder names in ``template``; one with a format spec or conversion (``{date:%Y}``) is named as written."""
    try:
        return {
            name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "")
            for _, name, spec, conv in string.Formatter().parse(template)
            if name is not None
        }
    except ValueError:
        return {"<unbalanced braces>"}


def _kind(grain: str) -> str:
    """``a partitioned`` (daily, the default), ``an hourly``, ``a monthly``: how messages name a grain."""
    return {"hourly": "an hourly", "monthly": "a monthly"}.get(grain, "a partitioned")


def _files(doc: YamlDocument, ds: Dataset, src: FilesSource) -> Iterator[Issue]:
    loc = ("source", "path")
    path = PurePosixPath(src.path)
    if path.is_absolute() or src.path.startswith("~") or re.match(r"^[A-Za-z]:", src.path):
        yield doc.issue(loc, "the path must be relative to the landing root", "e.g. sales/{date}.csv")
    if ".." in path.parts:
        yield doc.issue(loc, "the path must not leave the landing root ('..')")
    names = _placeholders(src.path)
    grain = ds.partitioning.type if ds.partitioning is not None else None
    allowed = {"hourly": {"date", "hour"}, "daily": {"date"}, "monthly": {"month"}}.get(grain or "", set())
    if names - {"date", "hour", "month"}:
        yield doc.issue(
            loc,
            f"unknown placeholder(s) in path: {', '.join(sorted(names - {'date', 'hour', 'month'}))}",
            "{date} (YYYY-MM-DD), {hour} (HH, hourly partitions) and {month} (YYYY-MM, monthly) are filled in",
        )
    example = {"hourly": "events/{date}/{hour}.csv", "daily": "sales/{date}.csv", "monthly": "bills/{month}.csv"}
    if not names - {"date", "hour", "month"} and grain is not None and names - allowed:
        extra = ", ".join("{" + n + "}" for n in sorted(names - allowed))
        yield doc.issue(loc, f"{extra} cannot place a file in {_kind(grain)} partition", f"e.g. {example[grain]}")
    needed = {"hourly": {"date", "hour"}, "daily": {"date"}, "monthly": {"month"}}.get(grain or "", set())
    if grain is not None and needed - names:
        yield doc.issue(
            loc,
            f"{_kind(grain)} files dataset needs {' and '.join('{' + n + '}' for n in sorted(needed))} in its path",
            f"e.g. {example[grain]}",
        )
    if ds.partitioning is None and names:
        yield doc.issue(loc, f"{{{sorted(names)[0]}}} in the path needs partitioning", "add partitioning: {start: ...}")
    if src.csv is not None and src.format != "csv":
        yield doc.issue(("source", "csv"), f"csv options given for a {src.format} source")


def _postgres(doc: YamlDocument, ds: Dataset, src: PostgresSource) -> Iterator[Issue]:
    if (src.table is None) == (src.query is None):
        yield doc.issue(("source",), "give exactly one of 'table' or 'query'")
    if src.table is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?", src.table):
        yield doc.issue(("source", "table"), f"'{src.table}' is not a table name", "schema.table, e.g. public.orders")
    if src.query is not None:
        _, problem = parse_select(src.query, dialect="postgres")
        if problem:
            yield _sql_issue(doc, ("source", "query"), problem)
    if src.mode == "cdc":
        yield from _cdc(doc, ds, src)
    if src.incremental is not None:
        names = [c.name for c in ds.columns]
        if names and src.incremental.cursor not in names:
            yield doc.issue(
                ("source", "incremental", "cursor"),
                f"cursor column '{src.incremental.cursor}' is not among the declared columns",
                _near(src.incremental.cursor, names),
            )
        if ds.partitioning is not None:
            yield doc.issue(("source", "incremental"), "choose incremental (high-water mark) or partitioning, not both")
        if ds.load_strategy != "merge":
            yield doc.issue(("load",), "an incremental source is loaded with merge", "load: merge, with a primary_key")


def _history(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    """SCD Type 2 history is kept from the snapshots a raw dataset keeps (:class:`History`)."""
    h = ds.history
    if h is None:
        return
    if ds.layer != "raw":
        yield doc.issue(("history",), "history is kept for a raw snapshot dataset")
    if ds.load_strategy == "replace":
        yield doc.issue(
            ("load",),
            "history needs every snapshot, and replace keeps only the last",
            "drop one file per snapshot day and use load: append (or partition by day)",
        )
    names = [c.name for c in ds.columns]
    if not names:
        yield doc.issue(("history",), "history needs the declared columns", "declare them under columns:")
        return
    for i, column in enumerate(ds.columns):
        if column.name in HISTORY_COLUMNS:
            yield doc.issue(
                ("columns", i, "name"),
                f"'{column.name}' is a column the history adds",
                f"rename it: {', '.join(sorted(HISTORY_COLUMNS))} are taken",
            )
    for field, wanted in (("key", h.key), ("track", h.track)):
        for i, column in enumerate(wanted):
            if column not in names:
                yield doc.issue(
                    ("history", field, i), f"'{column}' is not among the declared columns", _near(column, names)
                )
    day = ds.column(h.snapshot_column)
    if day is None:
        yield doc.issue(
            ("history", "snapshot_column"),
            f"'{h.snapshot_column}' is not among the declared columns",
            _near(h.snapshot_column, names) or "declare the DATE column giving each row's snapshot day",
        )
    elif ds.primary_key and h.snapshot_column not in ds.primary_key:
        yield doc.issue(
            ("primary_key",),
            "a key repeats in every snapshot: the primary key of a snapshot dataset includes its snapshot column",
            f"primary_key: [{', '.join([*h.key, h.snapshot_column])}]",
        )


def _cdc(doc: YamlDocument, ds: Dataset, src: PostgresSource) -> Iterator[Issue]:
    """Change data capture reads one table's log: a table, a key, no window (:mod:`strata.sources.cdc`)."""
    if src.table is None:
        yield doc.issue(("source", "mode"), "change data capture reads a table, not a query", "give 'table'")
    if src.incremental is not None:
        yield doc.issue(
            ("source", "incremental"), "a CDC source reads the log, not a cursor column: drop 'incremental'"
        )
    if ds.partitioning is not None:
        yield doc.issue(("partitioning",), "a CDC source is not partitioned: each run reads the changes since the last")
    if ds.load is not None and ds.load != "merge":
        yield doc.issue(("load",), "a CDC source is merged by change (log position)", "leave out 'load'")


def _http(doc: YamlDocument, ds: Dataset, src: HttpSource) -> Iterator[Issue]:
    for key, value in src.params.items():
        names = _placeholders(value)
        if names - WINDOW_PLACEHOLDERS:
            yield doc.issue(
                ("source", "params", key),
                f"unknown placeholder(s): {', '.join(sorted(names - WINDOW_PLACEHOLDERS))}",
                "use {date}, {start} or {end}",
            )
        elif names and ds.partitioning is None:
            yield doc.issue(("source", "params", key), "partition placeholders need partitioning")
    pg = src.pagination
    if pg.type == "cursor" and not pg.cursor_path:
        yield doc.issue(("source", "pagination"), "cursor pagination needs cursor_path", "e.g. meta.next_cursor")
    if pg.type == "offset" and not pg.page_size:
        yield doc.issue(("source", "pagination"), "offset pagination needs page_size", "e.g. page_size: 100")


def _select(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    if ds.select is not None:
        _, problem = parse_select(ds.select)
        if problem:
            yield _sql_issue(doc, ("select",), problem)


def _sql_issue(doc: YamlDocument, loc: tuple, problem: SqlProblem) -> Issue:
    """Place a problem inside a SQL string on the file's line and column."""
    return doc.issue_in(loc, problem.line, problem.column, problem.message)


def _checks(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    names = [c.name for c in ds.columns]
    custom_names: set[str] = set()
    seen: set[str] = set()
    for i, check in enumerate(ds.checks):
        label = check_name(check)
        if label in seen:
            yield doc.issue(
                ("checks", i), f"a second check named '{label}'", "each check of a dataset has its own name"
            )
        seen.add(label)
        if isinstance(check, ReconciliationCheck) and not isinstance(ds.source, FilesSource):
            yield doc.issue(
                ("checks", i, "type"),
                "reconciliation against the source needs a files source",
                "it recounts the landing files of each partition",
            )
        column = getattr(check, "column", None)
        if column and names and column not in names:
            yield doc.issue(
                ("checks", i, "column"),
                f"{check.type} check: column '{column}' is not declared",
                _near(column, names),
            )
        if isinstance(check, VolumeCheck) and None not in (check.min_rows, check.max_rows):
            if check.min_rows > check.max_rows:
                yield doc.issue(("checks", i, "min_rows"), "min_rows is larger than max_rows")
        if isinstance(check, DistributionCheck):
            if (check.statistic == "quantile") != (check.quantile is not None):
                yield doc.issue(("checks", i, "statistic"), "a quantile statistic needs 'quantile' (and only it does)")
            if check.min is None and check.max is None and check.max_sigma is None:
                yield doc.issue(("checks", i), "a distribution check needs min, max or max_sigma")
        if isinstance(check, CustomSqlCheck):
            if check.name in custom_names:
                yield doc.issue(("checks", i, "name"), f"two custom_sql checks are named '{check.name}'")
            custom_names.add(check.name)
            _, problem = parse_select(with_placeholders(check.sql))
            if problem:
                yield _sql_issue(doc, ("checks", i, "sql"), problem)


def _freshness(doc: YamlDocument, ds: Dataset) -> Iterator[Issue]:
    f = ds.freshness
    if f is None:
        return
    try:
        if len(f.cron.split()) != 5:
            raise CronSimError(f"{len(f.cron.split())} fields")
        CronSim(f.cron, datetime(2024, 1, 1))
    except CronSimError as err:
        yield doc.issue(
            ("freshness", "cron"),
            f"invalid cron expression '{f.cron}': {err}",
            "five fields: minute hour day-of-month month day-of-week, e.g. '0 9 * * *'",
        )
    else:
        interval = smallest_cron_interval(f.cron)
        if duration_seconds(f.lower_bound) > interval:
            yield doc.issue(
                ("freshness", "lower_bound"),
                f"lower_bound {f.lower_bound} is longer than the {interval:,} s between two ticks of '{f.cron}'",
                f"at most {interval // 3600}h" if interval >= 3600 else f"at most {interval // 60}m",
            )
    if f.timezone not in _TIMEZONES:
        yield doc.issue(
            ("freshness", "timezone"),
            f"unknown timezone '{f.timezone}'",
            _near(f.timezone, sorted(_TIMEZONES)),
        )


@cache
def smallest_cron_interval(cron: str) -> int:
    """The shortest time between two ticks of ``cron`` over a year of ticks (seconds), as Dagster measures it.

    Dagster's ``FreshnessPolicy.cron`` refuses a ``lower_bound_delta`` longer than this, at load.
    """
    ticks = CronSim(cron, datetime(2024, 1, 1))
    previous, smallest = next(ticks), None
    for _ in range(1000):
        tick = next(ticks)
        gap = int((tick - previous).total_seconds())
        smallest = gap if smallest is None else min(smallest, gap)
        previous = tick
        if tick.year > 2024:
            break
    return smallest or 0


_TIMEZONES = available_timezones() | {"UTC"}
