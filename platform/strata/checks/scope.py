"""The table, partition column and window a check judges."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

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

    def where(self, lookback_days: int = 0, alias: str = "") -> str:
        """SQL predicate selecting the window (extended ``lookback_days`` before its start)."""
        if not self.partitioned:
            return "true"
        start = self.window.start - timedelta(days=lookback_days)  # type: ignore[union-attr]
        column = f"{alias}{quote(self.partition_column)}"  # type: ignore[arg-type]
        return f"{column} >= date '{start}' and {column} < date '{self.window.end}'"  # type: ignore[union-attr]

    def partition_sql(self, alias: str = "") -> str:
        """SQL of each row's partition (NULL when unpartitioned)."""
        return f"cast({alias}{quote(self.partition_column)} as date)" if self.partitioned else "null::date"  # type: ignore[arg-type]

    @property
    def sql_table(self) -> str:
        """The quoted table name."""
        return qualified(self.table)
