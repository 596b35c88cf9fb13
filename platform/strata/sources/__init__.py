"""Source readers: where a raw dataset's rows come from (landing files, Postgres, HTTP APIs).

Every reader returns an :class:`Extract`: a relation DuckDB can select from, holding the source's
columns verbatim plus one column naming where each row came from (``_source_file``,
``_source_page`` or ``_source_query``). :mod:`strata.loading` types it and writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

#: The load column giving each row's partition date (partitioned raw datasets).
PARTITION_COLUMN = "_partition_date"
#: Every load column a raw table may carry, all prefixed ``_`` (see :mod:`strata.loading`).
LOAD_COLUMNS = ("_source_file", "_source_page", "_source_table", PARTITION_COLUMN, "_loaded_at", "_run_id")
#: Load columns whose values differ between two runs of the same load.
VOLATILE_LOAD_COLUMNS = ("_loaded_at", "_run_id")


#: Partition grains: an hour, a day or a calendar month.
GRAINS = ("hourly", "daily", "monthly")


@dataclass(frozen=True)
class DateWindow:
    """A half-open window of partitions ``[start, end)`` at a grain.

    Daily and monthly windows are dates (a month from its first day to the next month's first);
    hourly windows are naive datetimes, wall-clock time in the partitioning's timezone. Each
    partition is named by its start, which is what ``_partition_date`` holds for its rows (a DATE,
    or a TIMESTAMP for hourly partitions).
    """

    start: date
    end: date
    grain: str = "daily"

    def days(self) -> list[date]:
        """Every partition's start in the window, in order (dates; datetimes when hourly)."""
        if self.grain == "hourly":
            hours = int((self.end - self.start).total_seconds() // 3600)  # type: ignore[operator]
            return [self.start + timedelta(hours=i) for i in range(hours)]
        if self.grain == "monthly":
            months, current = [], self.start
            while current < self.end:
                months.append(current)
                current = next_month(current)
            return months
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    @property
    def sql_type(self) -> str:
        """The SQL type of a partition's start: ``timestamp`` (hourly) or ``date``."""
        return "timestamp" if self.grain == "hourly" else "date"

    def literal(self, moment: date) -> str:
        """A partition start as a SQL literal (``timestamp '2024-05-01 13:00:00'``, ``date '2024-05-01'``)."""
        text = moment.isoformat(sep=" ") if isinstance(moment, datetime) else moment.isoformat()
        return f"{self.sql_type} '{text}'"

    def shift(self, moment: date, partitions: int) -> date:
        """The start of the partition ``partitions`` after (negative: before) the one starting at ``moment``."""
        if self.grain == "hourly":
            return moment + timedelta(hours=partitions)
        if self.grain == "monthly":
            current = moment
            for _ in range(abs(partitions)):
                current = next_month(current) if partitions > 0 else (current - timedelta(days=1)).replace(day=1)
            return current
        return moment + timedelta(days=partitions)

    def key(self, moment: date) -> str:
        """Dagster's key of the partition starting at ``moment``: ``2024-05-07-13:00`` (hourly), ``2024-05-07``."""
        return moment.strftime("%Y-%m-%d-%H:%M") if self.grain == "hourly" else moment.isoformat()

    def partition_sql(self, column: str) -> str:
        """SQL giving the start of the partition a row's ``column`` (a date or time) falls in."""
        if self.grain == "hourly":
            return f"date_trunc('hour', {column})::timestamp"
        if self.grain == "monthly":
            return f"date_trunc('month', {column})::date"
        return f"cast({column} as date)"


def next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


@dataclass
class Extract:
    """What a source read.

    Attributes:
        relation: SQL usable after FROM (a parenthesised query or a temporary table).
        params: values for the ``?`` placeholders of ``relation``.
        origin_column: the column of ``relation`` naming each row's origin.
        row_column: the column numbering each row within its origin (1-based).
        partition_column: a DATE column of ``relation`` giving each row's partition (files), or None.
        units: how many files, pages or query batches were read.
        metadata: facts worth recording on the materialization (high-water mark, pages ...).
        cleanup: temporary objects to drop afterwards (registered views or temporary tables).
        diagnose: called with a reading error; raises a clearer error naming the culprit, if it can.
    """

    relation: str
    origin_column: str
    row_column: str = "_source_row"
    params: list = field(default_factory=list)
    partition_column: str | None = None
    units: int = 0
    metadata: dict = field(default_factory=dict)
    cleanup: list[str] = field(default_factory=list)
    diagnose: Callable[[Exception], None] | None = None
    #: SQL of lines the reader rejected (wrong column count, bad quoting or encoding), run after
    #: the relation was read, with columns: origin, partition_date, line, reason, text.
    rejects: str | None = None
    #: Rows at the source per partition (None: unpartitioned), counted without the reader: given
    #: what the reader produced per partition, returns the source's own count (see
    #: :func:`strata.sources.files.count_records`). None: the reader's count is the source's.
    count_source: Callable[[dict], dict] | None = None
    #: The origins (files) whose own columns include the given one; for error messages.
    origin_of_column: Callable[[str], list[str]] | None = None
    #: Load columns the reader fills itself (CDC: :data:`strata.registry.models.CDC_COLUMNS`),
    #: written to raw as they are, never typed or checked as source columns.
    load_columns: tuple[str, ...] = ()
    #: Called once the raw write has committed (CDC: advance the replication slot); may add to
    #: ``metadata``. Not called when the write failed, so the source is read again next time.
    after_commit: Callable[[], None] | None = None
