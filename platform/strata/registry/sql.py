"""SQL in the registry: a SQL-derived dataset's single SELECT, parsed with sqlglot (DuckDB dialect)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError


@dataclass(frozen=True)
class SqlProblem:
    """A problem at ``line``/``column`` (1-based) inside the SQL text."""

    line: int
    column: int
    message: str


@dataclass(frozen=True)
class TableRef:
    """A table the SELECT reads: ``schema`` may be empty; ``line``/``column`` locate it in the SQL."""

    schema: str
    name: str
    line: int
    column: int

    @property
    def qualified(self) -> str:
        """``schema.name``, or ``name`` when unqualified."""
        return f"{self.schema}.{self.name}" if self.schema else self.name


@lru_cache(maxsize=4096)
def parse_select(sql: str, dialect: str = "duckdb") -> tuple[exp.Expression | None, SqlProblem | None]:
    """Parse ``sql``; it must be exactly one SELECT (CTEs and set operations allowed), no DDL or DML.

    Cached: the rules and the cross-file checks both parse each SELECT; callers must not modify
    the returned expression.
    """
    try:
        statements = [s for s in sqlglot.parse(sql, dialect=dialect) if s is not None]
    except ParseError as err:
        first = err.errors[0] if err.errors else {}
        return None, SqlProblem(
            first.get("line") or 1,
            first.get("col") or 1,
            f"SQL syntax error: {first.get('description') or err}",
        )
    if len(statements) != 1:
        return None, SqlProblem(1, 1, f"expected one SELECT statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        kind = type(statement).__name__.upper()
        return None, SqlProblem(1, 1, f"only a SELECT is allowed, found {kind}")
    for node in statement.walk():
        if isinstance(node, exp.DDL | exp.DML) and node is not statement:
            return None, SqlProblem(1, 1, f"only a SELECT is allowed, found {type(node).__name__.upper()} inside it")
    return statement, None


def tables_read(statement: exp.Expression) -> list[TableRef]:
    """The tables a SELECT reads, without its own CTE names, in order of appearance."""
    ctes = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    refs = []
    for table in statement.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        meta = table.this.meta if isinstance(table.this, exp.Identifier) else {}
        first = table.args.get("db").meta if table.args.get("db") is not None else meta
        col = first.get("col", 1) - len(table.db or table.name) + 1 if first else 1
        refs.append(TableRef(table.db, table.name, meta.get("line", 1), max(col, 1)))
    return refs
