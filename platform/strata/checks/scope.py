"""The table, partition column and window a check judges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from strata.sources import DateWindow
from strata.warehouse import qualified, quote


@dataclass(frozen=True)
class Scope:
    """What a check judges: ``table``'s rows in ``window`` by ``partition_column`` (both None: the whole table)."""

    table: str
    partition_column: str | None = None
    window: DateWindow | None = None

    @property
    def partitioned(self) -> bool:
        """Whether the check works per partition."""
        return self.window is not None and self.partition_column is not None

    def days(self) -> list[date | None]:
        """The partitions covered (``[None]`` when unpartitioned)."""
        return list(self.window.days()) if self.partitioned else [None]  # type: ignore[union-attr]

    def where(self, lookback: int = 0, alias: str = "") -> str:
        """SQL predicate selecting the window (extended ``lookback`` partitions before its start)."""
        if not self.partitioned:
            return "true"
        window = self.window
        start = window.shift(window.start, -lookback)  # type: ignore[union-attr]
        column = f"{alias}{quote(self.partition_column)}"  # type: ignore[arg-type]
        return f"{column} >= {window.literal(start)} and {column} < {window.literal(window.end)}"  # type: ignore[union-attr]

    def partition_sql(self, alias: str = "") -> str:
        """SQL of each row's partition start (NULL when unpartitioned)."""
        if not self.partitioned:
            return "null::date"
        return self.window.partition_sql(f"{alias}{quote(self.partition_column)}")  # type: ignore[union-attr,arg-type]

    def shift(self, partition: date, partitions: int) -> date:
        """The partition ``partitions`` after (negative: before) ``partition``."""
        return self.window.shift(partition, partitions)  # type: ignore[union-attr]

    @property
    def sql_table(self) -> str:
        """The quoted table name."""
        return qualified(self.table)
