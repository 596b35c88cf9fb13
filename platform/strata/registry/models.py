"""Typed specs of a registered dataset: the contract between an analyst's YAML and the platform.

These pydantic models are the registry's single source of truth: the loader validates YAML
against them, Dagster definitions are built from them, and ``strata registry schema`` prints
their JSON Schema. Vocabulary follows dlt's write dispositions and SQLMesh's model kinds where
they overlap: ``replace`` (snapshot), ``append``, ``overwrite_partition`` and ``merge`` (upsert
by primary key).

Rules that need more than one field (a partition column that must be declared, a primary key
among the columns ...) live in :mod:`strata.registry.rules`, so that every error of a file is
reported with its own location. This module knows nothing of Dagster or DuckDB; types are parsed
with sqlglot.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

import sqlglot
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from sqlglot import exp
from sqlglot.errors import SqlglotError

#: A SQL identifier Strata accepts for dataset and column names: lower snake_case, at most 63 chars.
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]*$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN, max_length=63)]

#: A reference to an environment variable, the only way to give a connection setting or secret.
ENV_REF_PATTERN = r"^\$\{[A-Z_][A-Z0-9_]*\}$"
EnvRef = Annotated[str, StringConstraints(pattern=ENV_REF_PATTERN)]

#: A duration such as ``90s``, ``15m``, ``2h`` or ``3d``.
DURATION_PATTERN = r"^[0-9]+(s|m|h|d)$"
Duration = Annotated[str, StringConstraints(pattern=DURATION_PATTERN)]

Severity = Literal["error", "warn"]
LoadStrategy = Literal["replace", "append", "overwrite_partition", "merge"]
Layer = Literal["raw", "staging", "mart"]

#: Warehouse schema of each layer (marts are plural, as in the dbt project).
LAYER_SCHEMAS: dict[str, str] = {"raw": "raw", "staging": "staging", "mart": "marts"}


def duration_seconds(value: str) -> int:
    """Seconds in a :data:`Duration` (``"2h"`` -> 7200)."""
    number, unit = int(value[:-1]), value[-1]
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


class StrictModel(BaseModel):
    """Base of every spec: unknown keys are errors, values are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- schema


class Range(StrictModel):
    """Inclusive bounds of a numeric or date column; either may be left out.

    ``max: today`` refuses dates in the future.
    """

    min: float | date | None = None
    max: float | date | Literal["today"] | None = None


def parse_type(text: str) -> str:
    """``text`` parsed as exactly one DuckDB SQL type and written back by sqlglot.

    Every token must belong to the type: ``varchar) || (select ...`` or ``int; drop table x`` is
    refused, never pasted into SQL. User-defined (unknown) type names are refused too.

    Raises:
        ValueError: not exactly one known type.
    """
    try:
        parsed = sqlglot.parse_one(text, read="duckdb", into=exp.DataType)
    except (SqlglotError, RecursionError, ValueError, TypeError) as err:
        raise ValueError(f"not a SQL type: {text!r}") from err
    if not isinstance(parsed, exp.DataType) or any(
        isinstance(node, exp.DataType) and node.this == exp.DataType.Type.USERDEFINED for node in parsed.walk()
    ):
        raise ValueError(f"not a SQL type: {text!r}")
    return parsed.sql(dialect="duckdb")


class Column(StrictModel):
    """One declared column of a dataset's contract.

    ``type`` is a DuckDB SQL type (``BIGINT``, ``VARCHAR``, ``DATE``, ``DECIMAL(15,2)`` ...).
    The other fields are rules the quality checks enforce on every loaded partition.
    """

    name: Identifier
    type: str
    description: str = ""
    nullable: bool = True
    unique: bool = False
    accepted_values: list[str | int | float] | None = None
    range: Range | None = None
    pattern: str | None = Field(
        default=None,
        description="A regular expression (RE2, as DuckDB runs it) that every whole value must match.",
    )

    @property
    def sql_type(self) -> str:
        """The declared type as sqlglot writes it for DuckDB (``varchar`` -> ``TEXT``); the only form put in SQL.

        Raises:
            ValueError: ``type`` is not exactly one SQL type (validation rejects such files first).
        """
        return parse_type(self.type)


# --------------------------------------------------------------------------- sources


class CsvOptions(StrictModel):
    """How to read CSV files (DuckDB ``read_csv`` options)."""

    delimiter: str = ","
    header: bool = True
    quote: str = '"'
    escape: str = '"'
    null_strings: list[str] = Field(default_factory=lambda: [""])
    encoding: Literal["utf-8", "utf-16", "latin-1"] = "utf-8"
    date_format: str | None = Field(default=None, description="strftime format of DATE columns, e.g. %d/%m/%Y")
    timestamp_format: str | None = None
    skip_rows: int = Field(default=0, ge=0)
    thousands: str | None = Field(default=None, description="Thousands separator of numbers, e.g. ','.")


class FilesSource(StrictModel):
    """Files dropped in the landing zone.

    ``path`` is relative to the landing root and may contain globs. For partitioned datasets it
    is a template in which ``{date}`` stands for the partition date (``YYYY-MM-DD``), as in
    ``sales/{date}.csv`` or a hive layout ``sales/dt={date}/*.parquet``.
    """

    type: Literal["files"]
    format: Literal["csv", "parquet", "json", "ndjson"]
    path: str
    hive_partitioning: bool = Field(default=False, description="Read key=value folders as columns.")
    csv: CsvOptions | None = None


class PostgresConnection(StrictModel):
    """Connection settings: environment variable references only (``${NAME}``)."""

    host: EnvRef
    port: EnvRef | None = None
    database: EnvRef
    user: EnvRef
    password: EnvRef | None = None


class Incremental(StrictModel):
    """Incremental extraction by a cursor column: rows with ``cursor > high-water mark - lag``.

    The high-water mark is the largest cursor value already loaded (read from the raw table).
    ``lag`` re-reads a window before it, to catch rows that arrive late.
    """

    cursor: Identifier
    lag: Duration = "0s"
    initial_value: str | None = Field(default=None, description="Lower bound of the first load.")


class ChangeCapture(StrictModel):
    """Change data capture settings of a ``mode: cdc`` PostgreSQL source (:mod:`strata.sources.cdc`).

    ``slot`` is the logical replication slot (default ``strata_<dataset>``); Strata creates it
    with the ``wal2json`` plugin on the first load. ``max_lag_bytes`` is the WAL the slot may
    retain before the ``slot_lag`` check fails (an abandoned slot fills the source's disk).
    A run reads at most about ``max_changes`` changes (whole transactions); the next run goes on.
    The ``cdc_changes`` sensor runs the dataset every ``interval``, one run at a time.
    """

    slot: Identifier | None = None
    max_lag_bytes: int = Field(default=1_073_741_824, gt=0, description="Bytes of WAL (default 1 GiB).")
    lag_severity: Severity = "warn"
    max_changes: int = Field(default=1_000_000, gt=0)
    insert_only: bool = Field(
        default=False,
        description="The table only ever gets inserts (a log): REPLICA IDENTITY FULL is not needed; "
        "an update or delete stops the load.",
    )
    interval: Duration = Field(default="5m", description="How often the cdc sensor runs the dataset.")


class PostgresSource(StrictModel):
    """A PostgreSQL table or query; incremental by a cursor, partitioned by a date column, or a snapshot.

    ``mode: cdc`` reads the table's changes from the database's write-ahead log instead
    (change data capture, :class:`ChangeCapture`).
    """

    type: Literal["postgres"]
    connection: PostgresConnection
    table: str | None = Field(default=None, description="schema.table")
    query: str | None = None
    incremental: Incremental | None = None
    batch_rows: int = Field(default=50_000, gt=0)
    mode: Literal["query", "cdc"] = "query"
    cdc: ChangeCapture = Field(default_factory=ChangeCapture)


class Auth(StrictModel):
    """Authentication from an environment variable: a bearer token or a named header."""

    type: Literal["bearer", "header"]
    token: EnvRef
    header: str = "Authorization"


class Pagination(StrictModel):
    """How to walk an API's pages.

    * ``page``: ``page_param`` = start, start + 1, ... until a page has no records;
    * ``offset``: ``offset_param`` = 0, limit, 2 x limit, ...;
    * ``cursor``: the next request sends ``cursor_param`` = the value at ``cursor_path``;
    * ``next_link``: follow the URL at ``next_link_path`` (or the ``Link: rel=next`` header).
    """

    type: Literal["none", "page", "offset", "cursor", "next_link"] = "none"
    page_param: str = "page"
    start_page: int = 1
    size_param: str | None = None
    page_size: int | None = Field(default=None, gt=0)
    offset_param: str = "offset"
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    cursor_path: str | None = None
    next_link_path: str | None = None
    max_pages: int = Field(default=10_000, gt=0)


class Retries(StrictModel):
    """Retries on 429, 5xx and timeouts, with exponential backoff (seconds)."""

    attempts: int = Field(default=5, ge=1, le=20)
    backoff_seconds: float = Field(default=0.5, gt=0)
    max_backoff_seconds: float = Field(default=30, gt=0)


class HttpSource(StrictModel):
    """A JSON API. ``params`` values may contain ``{date}``, ``{start}`` and ``{end}`` (partition window)."""

    type: Literal["http"]
    url: str = Field(pattern=r"^https?://")
    params: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: Auth | None = None
    records_path: str = Field(default="", description="Dotted path to the list of records ('' = the body).")
    pagination: Pagination = Field(default_factory=Pagination)
    rate_limit_per_second: float | None = Field(default=None, gt=0)
    retries: Retries = Field(default_factory=Retries)
    timeout_seconds: float = Field(default=30, gt=0)


Source = Annotated[FilesSource | PostgresSource | HttpSource, Field(discriminator="type")]


# --------------------------------------------------------------------------- partitioning


class Partitioning(StrictModel):
    """Time partitions from ``start`` to ``end`` (both inclusive days; no ``end`` means up to now).

    ``type`` is the grain: ``hourly``, ``daily`` (default) or ``monthly``. Partitions are periods of
    ``timezone``'s clock: an hour starts at each local ``HH:00`` that exists (a spring clock change
    skips one, a fall one repeats one), a day at local midnight, a month on its 1st
    (:mod:`strata.partition_window`). ``column`` is the event time (or date) that places a row
    in its partition; files sources may leave it out (the file's ``{date}``/``{hour}``/``{month}``
    decides). A ``TIMESTAMPTZ`` column is an instant; a ``TIMESTAMP`` one is wall-clock time in
    ``timezone``. ``lookback`` is how many earlier partitions the scheduled run re-materializes,
    for late data (``lookback_days``: the older spelling, for daily partitions). The schedule
    runs each partition ``grace`` after it ends (hourly, monthly; daily ones run at
    ``STRATA_DAILY_SCHEDULE_AT``). A SQL-derived dataset whose partitions are built from finer
    ones upstream (a day from hours) builds a partition only when all of them are materialized
    and passed their blocking checks; with ``incomplete: publish`` it builds it anyway and flags
    its rows ``_complete = false``.
    """

    type: Literal["hourly", "daily", "monthly"] = "daily"
    column: Identifier | None = None
    start: date
    end: date | None = None
    timezone: str = "UTC"
    lookback: int | None = Field(
        default=None, ge=0, le=10_000, description="Earlier partitions a scheduled run re-reads."
    )
    lookback_days: int = Field(default=0, ge=0, le=365)
    grace: Duration = Field(default="15m", description="How long after a partition ends its scheduled run starts.")
    incomplete: Literal["skip", "publish"] = Field(
        default="skip",
        description="A partition whose upstream partitions are not all in: skip it (default), or build it "
        "with _complete = false on its rows.",
    )

    @property
    def lookback_partitions(self) -> int:
        """Partitions before the scheduled one that its run re-materializes."""
        return self.lookback if self.lookback is not None else self.lookback_days


# --------------------------------------------------------------------------- checks, freshness


class VolumeCheck(StrictModel):
    """Rows per partition within bounds, and within ``max_change_pct`` of the trailing median."""

    type: Literal["volume"]
    severity: Severity = "error"
    min_rows: int | None = Field(default=None, ge=0)
    max_rows: int | None = Field(default=None, ge=0)
    max_change_pct: float | None = Field(default=None, gt=0)
    trailing_partitions: int = Field(default=7, ge=1)


class ReferentialCheck(StrictModel):
    """Every non-null ``column`` value exists in ``references`` (``dataset.column``)."""

    type: Literal["referential"]
    severity: Severity = "error"
    column: Identifier
    references: str = Field(pattern=r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$")


class DistributionCheck(StrictModel):
    """A statistic of ``column`` within bounds, or within ``max_sigma`` of its trailing values."""

    type: Literal["distribution"]
    severity: Severity = "warn"
    column: Identifier
    statistic: Literal["mean", "stddev", "quantile"] = "mean"
    quantile: float | None = Field(default=None, gt=0, lt=1)
    min: float | None = None
    max: float | None = None
    max_sigma: float | None = Field(default=None, gt=0)
    trailing_partitions: int = Field(default=14, ge=2)


class ReconciliationCheck(StrictModel):
    """Rows per partition equal the source's (``against: source``)."""

    type: Literal["reconciliation"]
    severity: Severity = "error"
    against: Literal["source"] = "source"


class CustomSqlCheck(StrictModel):
    """A query returning the failing rows; zero rows passes.

    ``{table}`` stands for the dataset's table, ``{window}`` for the partition window's predicate.
    """

    type: Literal["custom_sql"]
    name: Identifier
    severity: Severity = "error"
    sql: str


Check = Annotated[
    VolumeCheck | ReferentialCheck | DistributionCheck | ReconciliationCheck | CustomSqlCheck,
    Field(discriminator="type"),
]


def check_name(check: Check) -> str:
    """The name a declared check goes by (unique within its dataset; the asset check's name)."""
    if isinstance(check, VolumeCheck):
        return "volume"
    if isinstance(check, ReferentialCheck):
        return f"referential_{check.column}"
    if isinstance(check, DistributionCheck):
        return f"distribution_{check.column}_{check.statistic}"
    if isinstance(check, ReconciliationCheck):
        return "reconciliation"
    return check.name


class Freshness(StrictModel):
    """New data is due by each tick of ``cron`` (in ``timezone``).

    A partition for day D is due by the first tick after D ends. ``lower_bound`` is how far
    before a tick a materialization still counts (Dagster's ``FreshnessPolicy.cron``).
    """

    cron: str
    timezone: str = "UTC"
    lower_bound: Duration = "1d"
    severity: Severity = "warn"


class Quarantine(StrictModel):
    """Row-level failures go to ``quarantine.<name>``; above ``max_pct`` of a partition's rows read, the load fails.

    A partition with fewer than ``min_rows`` rows read is not judged by percentage (one bad row of
    a two-row hourly file is 50 %): it fails only when none of its rows loaded.
    """

    max_pct: float = Field(default=5.0, ge=0, le=100)
    min_rows: int = Field(
        default=20, ge=0, description="Rows read below which max_pct does not apply (0: always applies)."
    )


# --------------------------------------------------------------------------- change data capture

#: The columns a CDC raw table adds to each change (besides the row image, and the load columns):
#: ``_cdc_op`` (VARCHAR: ``s`` a snapshot starts, ``r`` a snapshot row, ``c`` insert, ``u`` update,
#: ``d`` delete, ``t`` truncate; Debezium's letters and the snapshot marker), ``_cdc_commit_lsn``
#: and ``_cdc_lsn`` (BIGINT: the commit's and the change's log sequence numbers), ``_cdc_seq``
#: (INTEGER: order among the rows of one transaction) and ``_cdc_committed_at`` (TIMESTAMPTZ).
CDC_COLUMNS = ("_cdc_op", "_cdc_commit_lsn", "_cdc_lsn", "_cdc_seq", "_cdc_committed_at")
#: One row per change: re-reading a change (after a crash) merges onto itself.
CDC_KEY = ("_cdc_commit_lsn", "_cdc_lsn", "_cdc_seq")


#: The change operations after which a CDC state starts again empty: an ``s`` snapshot marker (its
#: ``r`` rows follow) and a ``t`` (``TRUNCATE``).
RESET_OPS = ("s", "t")


def last_reset_sql(relation: str) -> str:
    """SQL of the log position ``[_cdc_commit_lsn, _cdc_lsn, _cdc_seq]`` of ``relation``'s last reset.

    A reset is a change in :data:`RESET_OPS`; ``[-1, -1, -1]`` if there is none.
    """
    ops = ", ".join(f"'{op}'" for op in RESET_OPS)
    position = '["_cdc_commit_lsn", "_cdc_lsn", "_cdc_seq"]'
    return f'coalesce((select max({position}) from {relation} as resets where "_cdc_op" in ({ops})), [-1, -1, -1])'


def current_state_sql(changes: str, keys: list[str], relation: str | None = None) -> str:
    """The SELECT of a CDC dataset's current state: per key the last change in log order, unless a delete.

    Reads ``raw.<changes>`` (or ``relation``, the same columns). Log order is commit order, then
    order within the transaction: ``(_cdc_commit_lsn, _cdc_lsn, _cdc_seq)``. Only changes after the
    last reset count (:func:`last_reset_sql`): an ``s`` marker (a snapshot, whose ``r`` rows follow
    it) or a ``t`` (``TRUNCATE``) empties the state. A primary-key update is recorded as a delete of the old key
    and an insert of the new one (Debezium does the same), so the old key disappears. Columns: the
    row image's and ``_cdc_lsn``, ``_cdc_committed_at`` of the change that set the row.
    """
    source = relation or f"raw.{changes}"
    key = ", ".join(f'"{k}"' for k in keys)
    dropped = ", ".join(
        f'"{c}"'
        for c in ("_cdc_rank", "_cdc_op", "_cdc_commit_lsn", "_cdc_seq", "_source_table", "_loaded_at", "_run_id")
    )
    position = '["_cdc_commit_lsn", "_cdc_lsn", "_cdc_seq"]'
    return (
        f"select * exclude ({dropped})\n"
        "from (\n"
        f"    select *, row_number() over (partition by {key}\n"
        '        order by "_cdc_commit_lsn" desc, "_cdc_lsn" desc, "_cdc_seq" desc) as "_cdc_rank"\n'
        f"    from {source} as changes\n"
        "    where \"_cdc_op\" in ('r', 'c', 'u', 'd')\n"
        f"        and {position} > {last_reset_sql(source)}\n"
        ") as changes\n"
        'where "_cdc_rank" = 1 and "_cdc_op" <> \'d\'\n'
    )


# --------------------------------------------------------------------------- SCD Type 2 history


class History(StrictModel):
    """Keep every version of each key of a snapshot dataset (slowly changing dimension, Type 2).

    The dataset is a series of full snapshots, each row carrying its snapshot's day in
    ``snapshot_column``. Strata keeps ``staging.<name>_history`` (:func:`scd2_sql`): one row per
    version of each ``key``, a new version whenever a ``track`` column changes between snapshots,
    with ``valid_from``, ``valid_to`` (exclusive; NULL while current), ``is_current`` and
    ``version`` (1, 2 ... per key). A key missing from a later snapshot is closed at that
    snapshot's day, not deleted.
    """

    type: Literal["scd2"]
    key: list[Identifier] = Field(min_length=1)
    track: list[Identifier] = Field(min_length=1, description="Columns whose change opens a new version.")
    snapshot_column: Identifier = Field(description="The DATE column giving each row's snapshot day.")


def history_name(dataset: str) -> str:
    """The staging dataset keeping the history of snapshot dataset ``dataset``."""
    return f"{dataset}_history"


def scd2_sql(snapshots: str, history: History, columns: list[str]) -> str:
    """The SELECT of the SCD Type 2 history of raw dataset ``snapshots`` (every snapshot it holds).

    Columns: ``key``, then the other ``columns`` (each version's values on its last snapshot day),
    ``valid_from`` (DATE: the first snapshot day of the version), ``valid_to`` (DATE: the first
    snapshot day it no longer held, changed or absent; NULL if it holds in the latest snapshot),
    ``is_current`` (BOOLEAN) and ``version`` (BIGINT, from 1). Versions of a key are adjacent
    (``valid_to`` = the next ``valid_from``) unless the key was absent in between.

    The whole history is computed from all snapshots: the same snapshots give the same table, in
    whatever order they were loaded (kimball "Type 2: add new row"; dbt's ``check`` snapshot
    strategy, with the business day instead of the run time).
    """

    def q(name: str) -> str:
        return f'"{name}"'

    key = ", ".join(q(k) for k in history.key)
    by_key = f"over (partition by {key} order by snapshot_day)"
    changed = " or ".join(f"{q(c)} is distinct from lag({q(c)}) {by_key}" for c in history.track)
    others = [c for c in columns if c not in history.key and c != history.snapshot_column]
    values = "".join(f",\n    arg_max_null({q(c)}, snapshot_day) as {q(c)}" for c in others)
    return (
        "with days as (\n"
        "    select snapshot_day,\n"
        "        lag(snapshot_day) over (order by snapshot_day) as previous_day,\n"
        "        lead(snapshot_day) over (order by snapshot_day) as next_day\n"
        f"    from (select distinct {q(history.snapshot_column)} as snapshot_day from raw.{snapshots}) as d\n"
        "),\n"
        "snapshots as (\n"
        f"    select s.*, d.snapshot_day, d.previous_day, d.next_day\n"
        f"    from raw.{snapshots} as s join days as d on s.{q(history.snapshot_column)} = d.snapshot_day\n"
        "),\n"
        "marked as (\n"
        "    select *,\n"
        f"        case when lag(snapshot_day) {by_key} is distinct from previous_day\n"
        f"            or lag(snapshot_day) {by_key} is null\n"
        f"            or {changed} then 1 else 0 end as opens\n"
        "    from snapshots\n"
        "),\n"
        "versioned as (\n"
        f"    select *, sum(opens) {by_key} as version from marked\n"
        ")\n"
        f"select {key}{values},\n"
        "    min(snapshot_day) as valid_from,\n"
        "    case when bool_or(next_day is null) then null else max(next_day) end as valid_to,\n"
        "    bool_or(next_day is null) as is_current,\n"
        "    version::bigint as version\n"
        "from versioned\n"
        f"group by {key}, version\n"
    )


# --------------------------------------------------------------------------- the dataset


class Dataset(StrictModel):
    """A registered dataset: identity, source (or SQL), partitioning, load strategy, contract.

    A raw dataset has a ``source``; a staging or mart dataset has a ``select`` over registered
    datasets and dbt models.
    """

    name: Identifier
    description: str = ""
    owners: list[Annotated[str, StringConstraints(pattern=r"^(team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+)$")]] = (
        Field(default_factory=list, description="Emails or team:<name>.")
    )
    group: Identifier | None = Field(default=None, description="Dagster group (the domain); default: the layer.")
    tags: dict[str, str] = Field(default_factory=dict)
    layer: Layer = "raw"
    source: Source | None = None
    select: str | None = Field(default=None, description="SQL-derived datasets: one SELECT statement.")
    history: History | None = None
    apply_changes: Identifier | None = Field(
        default=None,
        description="A staging dataset holding the current state of a CDC raw dataset (its name): "
        "its changes applied in log order by primary_key, deletes honoured. Strata writes the SELECT.",
    )
    partitioning: Partitioning | None = None
    load: LoadStrategy | None = Field(
        default=None, description="Default: overwrite_partition when partitioned, else replace."
    )
    primary_key: list[Identifier] = Field(default_factory=list)
    columns: list[Column] = Field(default_factory=list)
    checks: list[Check] = Field(default_factory=list)
    freshness: Freshness | None = None
    quarantine: Quarantine = Field(default_factory=Quarantine)

    @model_validator(mode="before")
    @classmethod
    def _changes_applied(cls, data: object) -> object:
        """``apply_changes``: the SELECT is :func:`current_state_sql` (unless one was given, an error)."""
        if isinstance(data, dict) and data.get("apply_changes") and "select" not in data:
            keys = data.get("primary_key")
            if (
                isinstance(keys, list)
                and keys
                and all(isinstance(k, str) and re.fullmatch(IDENTIFIER_PATTERN, k) for k in keys)
            ):
                source = data["apply_changes"]
                if isinstance(source, str) and re.fullmatch(IDENTIFIER_PATTERN, source):
                    data = {**data, "select": current_state_sql(source, keys)}
        return data

    @property
    def is_cdc(self) -> bool:
        """A raw dataset read by change data capture (a PostgreSQL source with ``mode: cdc``)."""
        return isinstance(self.source, PostgresSource) and self.source.mode == "cdc"

    @property
    def schema_name(self) -> str:
        """The warehouse schema of the dataset's layer (``raw``, ``staging``, ``marts``)."""
        return LAYER_SCHEMAS[self.layer]

    @property
    def table(self) -> str:
        """The warehouse table, ``<schema>.<name>``."""
        return f"{self.schema_name}.{self.name}"

    @property
    def group_name(self) -> str:
        """The Dagster group: ``group``, or the layer's schema."""
        return self.group or self.schema_name

    @property
    def load_strategy(self) -> str:
        """The declared load strategy, or the default: merge for CDC (by :data:`CDC_KEY`), else by partitioning."""
        if self.load is None and self.is_cdc:
            return "merge"
        return self.load or ("overwrite_partition" if self.partitioning else "replace")

    @property
    def write_key(self) -> list[str]:
        """The columns a merge matches rows on: :data:`CDC_KEY` for CDC (one row per change), else the primary key."""
        return list(CDC_KEY) if self.is_cdc else list(self.primary_key)

    def column(self, name: str) -> Column | None:
        """The declared column called ``name``, if any."""
        return next((c for c in self.columns if c.name == name), None)
