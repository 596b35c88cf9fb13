"""The table, partition column and window a check judges."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from strata.partition_window import Partition, PartitionWindow
from strata.warehouse import qualified, quote


@dataclass(frozen=True)
class Scope:
    """What a check judges: ``table``'s rows in ``window``, placed by ``partition_column`` (None: the whole table).

    ``kind`` is the partition column's :func:`strata.partition_window.column_kind` (``date``,
    ``timestamp`` or ``timestamptz``).
    """

    table: str
    partition_column: str | None = None
    window: PartitionWindow | None = None
    kind: str = "date"

    @property
    def partitioned(self) -> bool:
        """Whether the check works per partition."""
        return self.window is not None and self.partition_column is not None

    def days(self) -> list[Partition | None]:
        """The partitions covered (``[None]`` when unpartitioned)."""
        return list(self.window.partitions) if self.partitioned else [None]  # type: ignore[union-attr]

    def _reach(self, lookback: int) -> PartitionWindow:
        return self.window.extended(lookback)  # type: ignore[union-attr]

    def where(self, lookback: int = 0, alias: str = "") -> str:
        """SQL predicate selecting the window (extended ``lookback`` partitions before its start)."""
        if not self.partitioned:
            return "true"
        return self._reach(lookback).predicate(f"{alias}{quote(self.partition_column)}", self.kind)  # type: ignore[arg-type]

    def partition_sql(self, alias: str = "") -> str:
        """SQL of each row's partition value (NULL when unpartitioned)."""
        if not self.partitioned:
            return "null::date"
        return self.window.partition_sql(f"{alias}{quote(self.partition_column)}", self.kind)  # type: ignore[union-attr,arg-type]

    def by_partition(self, rows: Iterable[tuple], lookback: int = 0) -> dict:
        """``{partition: rest}`` from SQL rows ``(partition value, *rest)`` (``rest`` alone if one value).

        Unpartitioned, the key is None. Rows outside the window (extended by ``lookback``) are dropped.
        """
        out: dict = {}
        reach = self._reach(lookback) if self.partitioned else None
        for value, *rest in rows:
            partition = reach.partition_of_value(value) if reach is not None else None
            if reach is not None and partition is None:
                continue
            out[partition] = rest[0] if len(rest) == 1 else tuple(rest)
        return out

    def trailing(self, partition: Partition, n: int) -> list[Partition]:
        """The ``n`` partitions before ``partition`` (fewer at the start of time), oldest first."""
        reach = self._reach(n)
        i = reach.index(partition)
        return list(reach.partitions[max(i - n, 0) : i])

    @property
    def sql_table(self) -> str:
        """The quoted table name."""
        return qualified(self.table)
