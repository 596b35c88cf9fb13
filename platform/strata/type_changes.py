"""Declared column types against the warehouse: which changes a load will migrate, and rebuilding.

Changing a column's declared type is a migration. At the next load of a raw dataset the table's
column takes the new type when every value it holds converts (:func:`strata.warehouse.migrate_column`,
in the load's transaction, reported as the materialization's ``schema_changes``). When some value
does not convert, the load fails and nothing is written; :func:`planned` finds such changes before
any run (``strata registry validate``), and :func:`archive` is ``strata rebuild``: the table and its
quarantine move aside into the ``archive`` schema, nothing is deleted, and the dataset loads anew.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from strata import warehouse
from strata.registry.models import Dataset

#: Where :func:`archive` moves a dataset's tables.
ARCHIVE_SCHEMA = "archive"


@dataclass(frozen=True)
class TypeChange:
    """A declared column whose type differs from its table's.

    Attributes:
        dataset: the dataset's name; ``index``: the column's position among the declared columns.
        column, old, new: the column, its type in the table and its declared type (DuckDB's names).
        failing: existing values that do not convert, or not without loss (0: the next load migrates
            the column).
        example: one of them, as text.
    """

    dataset: str
    index: int
    column: str
    old: str
    new: str
    failing: int
    example: str | None

    @property
    def compatible(self) -> bool:
        """Whether every existing value converts (the next load applies it)."""
        return self.failing == 0

    def describe(self) -> str:
        """One line: what changes, and whether the next load applies it."""
        if self.compatible:
            return f"{self.column}: {self.old} -> {self.new}, applied to the existing rows at the next load"
        return (
            f"{self.column} is {self.old} in the warehouse and {self.failing:,} of its values do not convert "
            f"to {self.new} without loss (e.g. {self.example!r})"
        )


def planned(con: duckdb.DuckDBPyConnection, datasets: Iterable[Dataset]) -> list[TypeChange]:
    """Every declared column of the raw ``datasets`` whose type differs from its existing table's."""
    found = []
    for ds in datasets:
        if ds.layer != "raw" or not ds.columns or not warehouse.table_exists(con, ds.table):
            continue
        have = dict(warehouse.columns(con, ds.table))
        for i, col in enumerate(ds.columns):
            new = con.execute(f"select typeof(null::{col.sql_type})").fetchall()[0][0]
            old = have.get(col.name)
            if old is None or old == new:
                continue
            table = warehouse.qualified(ds.table)
            failing, example = con.execute(
                f"select count(*), any_value({warehouse.quote(col.name)}::varchar) from {table} "
                f"where {warehouse.lossy_conversion(col.name, old, new)}"
            ).fetchall()[0]
            found.append(TypeChange(ds.name, i, col.name, old, new, int(failing), example))
    return found


def archive(con: duckdb.DuckDBPyConnection, dataset: Dataset, now: datetime | None = None) -> list[str]:
    """Move ``dataset``'s table and its quarantine into :data:`ARCHIVE_SCHEMA`, in one transaction.

    Each becomes ``archive.<schema>__<name>__<YYYYMMDDHHMMSS>`` (UTC); its next materialization
    creates the table with the declared types. Returns the archived tables' new names.
    """
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")
    moved = []
    with warehouse.transaction(con):
        con.execute(f"create schema if not exists {ARCHIVE_SCHEMA}").fetchall()
        for table in (dataset.table, f"quarantine.{dataset.name}"):
            if not warehouse.table_exists(con, table):
                continue
            schema, _, name = table.partition(".")
            target = f"{ARCHIVE_SCHEMA}.{schema}__{name}__{stamp}"
            con.execute(
                f"create table {warehouse.qualified(target)} as select * from {warehouse.qualified(table)}"
            ).fetchall()
            con.execute(f"drop table {warehouse.qualified(table)}").fetchall()
            moved.append(target)
    return moved
