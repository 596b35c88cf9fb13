"""Per-partition, per-column fingerprints of two relations, and where they first differ.

A fingerprint of a column over a set of rows is ``(row count, sum of hash(value))``: order-free,
and it changes when any value changes (a row count check misses a changed price; a sum misses a
changed key or text). Both sides are cast to the warehouse column's type before hashing, so the
source side (landing files) and the warehouse side hash the same values the same way.

This module knows nothing of TPC-H or Dagster: :mod:`strata.reconcile.tpch` says which source
query stands for which warehouse table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb

from strata.warehouse import quote


@dataclass(frozen=True)
class FingerprintDiff:
    """Where a warehouse table differs from what its source says it should hold.

    Attributes:
        table: the warehouse table (``raw.tpch_lineitem``).
        first_day: the first partition that differs (None for an unpartitioned table).
        columns: the columns that differ on that day (``row count`` when the counts differ).
        days: how many partitions differ in all.
    """

    table: str
    first_day: date | None
    columns: tuple[str, ...]
    days: int

    def __str__(self) -> str:
        where = (
            f"first differing day {self.first_day} ({self.days:,} day(s) differ)" if self.first_day else "whole table"
        )
        return f"{self.table}: {where}, column(s) {', '.join(self.columns)}"


def fingerprints(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    columns: Sequence[tuple[str, str]],
    day_column: str | None,
    where: str = "true",
) -> dict[date | None, tuple]:
    """``{day: (rows, hash sum of each column)}`` of ``relation`` (SQL after FROM).

    ``columns`` are ``(name, type)``: each value is cast to the type, then hashed. Without a
    ``day_column`` the whole relation is one entry, keyed None.
    """
    sums = ", ".join(f"coalesce(sum(hash(cast({quote(c)} as {t}))::hugeint), 0)" for c, t in columns)
    day = f"cast({quote(day_column)} as date)" if day_column else "null::date"
    rows = con.execute(f"select {day} as __day, count(*), {sums} from {relation} where {where} group by 1").fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def first_difference(
    table: str, columns: Sequence[str], expected: dict[date | None, tuple], actual: dict[date | None, tuple]
) -> FingerprintDiff | None:
    """The first day (and its columns) where ``actual`` differs from ``expected``; None if equal."""
    names = ("row count", *columns)
    differing = sorted((d for d in set(expected) | set(actual) if expected.get(d) != actual.get(d)), key=str)
    if not differing:
        return None
    first = differing[0]
    exp, act = expected.get(first), actual.get(first)
    if exp is None or act is None:
        cols: tuple[str, ...] = ("row count",)
    else:
        cols = tuple(n for n, a, b in zip(names, exp, act, strict=True) if a != b)
    return FingerprintDiff(table, first, cols, len(differing))
