"""Source readers: where a raw dataset's rows come from (landing files, Postgres, HTTP APIs).

Every reader returns an :class:`Extract`: a relation DuckDB can select from, holding the source's
columns verbatim plus one column naming where each row came from (``_source_file``,
``_source_page`` or ``_source_query``). :mod:`strata.loading` types it and writes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

#: The load column giving each row's partition (partitioned raw datasets): its local date (DATE) for
#: days and months, its start instant (TIMESTAMPTZ) for hours (:attr:`strata.partition_window.Partition.value`).
PARTITION_COLUMN = "_partition_date"
#: Every load column a raw table may carry, all prefixed ``_`` (see :mod:`strata.loading`).
LOAD_COLUMNS = ("_source_file", "_source_page", "_source_table", PARTITION_COLUMN, "_loaded_at", "_run_id")
#: Load columns whose values differ between two runs of the same load.
VOLATILE_LOAD_COLUMNS = ("_loaded_at", "_run_id")


@dataclass
class Extract:
    """What a source read.

    Attributes:
        relation: SQL usable after FROM (a parenthesised query or a temporary table).
        params: values for the ``?`` placeholders of ``relation``.
        origin_column: the column of ``relation`` naming each row's origin.
        row_column: the column numbering each row within its origin (1-based).
        partition_column: a column of ``relation`` giving each row's partition (files; its
            :attr:`strata.partition_window.Partition.value`), or None.
        bounds_columns: with ``partition_column``, the columns giving each row's partition as
            instants and as nominal wall-clock times: ``(start, end, wall start, wall end)``
            (TIMESTAMPTZ, TIMESTAMPTZ, TIMESTAMP, TIMESTAMP), and its key (VARCHAR).
        units: how many files, pages or query batches were read.
        metadata: facts worth recording on the materialization (high-water mark, pages ...).
        cleanup: temporary objects to drop afterwards (registered views or temporary tables).
        release: called once the load is over, whatever happened (removes a source's spool files).
        diagnose: called with a reading error; raises a clearer error naming the culprit, if it can.
    """

    relation: str
    origin_column: str
    row_column: str = "_source_row"
    params: list = field(default_factory=list)
    partition_column: str | None = None
    bounds_columns: tuple[str, ...] = ()
    units: int = 0
    metadata: dict = field(default_factory=dict)
    cleanup: list[str] = field(default_factory=list)
    release: Callable[[], None] | None = None
    diagnose: Callable[[Exception], None] | None = None
    #: SQL of lines the reader rejected (wrong column count, bad quoting or encoding), run after
    #: the relation was read, with columns: origin, partition_date, line, reason, text.
    rejects: str | None = None
    #: Rows at the source per partition (None: unpartitioned), counted without the reader: given
    #: what the reader produced per partition (keyed by partition value), returns the source's own count (see
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
