"""SQL in the registry: a SQL-derived dataset's single SELECT, parsed with sqlglot (DuckDB dialect).

Validation (:func:`parse_select`) and execution (:func:`sandboxed`) share one parse and one policy
(:mod:`strata.registry.sql_policy`): what validates is exactly what runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from strata.errors import StrataError
from strata.registry import sql_policy


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
def parse_select(
    sql: str, dialect: str = "duckdb", policy: bool = True
) -> tuple[exp.Expression | None, SqlProblem | None]:
    """Parse ``sql``; it must be exactly one SELECT (CTEs and set operations allowed), no DDL or DML.

    In the DuckDB dialect (SQL the warehouse runs), the statement must also pass
    :mod:`strata.registry.sql_policy` (unless ``policy`` is False, to list its tables anyway);
    the first refusal is the problem. Never raises: any error
    of the parser (tokenizer errors, nesting too deep) is a problem at its position.
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
    except TokenError:
        line, col = _unclosed(sql)
        return None, SqlProblem(line, col, "SQL syntax error: a quote or comment that opens here is never closed")
    except RecursionError:
        return None, SqlProblem(1, 1, "SQL syntax error: the statement is nested too deeply")
    except Exception as err:  # noqa: BLE001 - a parser bug must not stop validation
        return None, SqlProblem(1, 1, f"SQL syntax error: {type(err).__name__}: {err}")
    if len(statements) != 1:
        return None, SqlProblem(1, 1, f"expected one SELECT statement, found {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        kind = type(statement).__name__.upper()
        return None, SqlProblem(1, 1, f"only a SELECT is allowed, found {kind}")
    for node in statement.walk():
        if isinstance(node, exp.DDL | exp.DML) and node is not statement:
            return None, SqlProblem(1, 1, f"only a SELECT is allowed, found {type(node).__name__.upper()} inside it")
    if dialect == "duckdb" and policy:
        for node, reason in sql_policy.refusals(statement):
            line, column = sql_policy.position(node)
            return None, SqlProblem(line, column, reason)
    return statement, None


def _unclosed(sql: str) -> tuple[int, int]:
    """Line and column of the quote or block comment left open in ``sql`` (1, 1 if none is found)."""
    opened, i = None, 0
    while i < len(sql):
        if opened is None:
            if sql[i] in "'\"":
                opened = (i, sql[i])
            elif sql.startswith("/*", i):
                opened = (i, "*/")
            elif sql.startswith("--", i):
                i = sql.find("\n", i) if "\n" in sql[i:] else len(sql)
        elif sql.startswith(opened[1], i):
            i += len(opened[1]) - 1
            opened = None
        i += 1
    if opened is None:
        return 1, 1
    before = sql[: opened[0]]
    return before.count("\n") + 1, opened[0] - (before.rfind("\n") + 1) + 1


#: Placeholders of a ``custom_sql`` check, and the names they parse as (as long as the placeholder,
#: so positions in the SQL stay right).
CHECK_PLACEHOLDERS = {"{table}": "__tbl__", "{window}": "__wndw__"}


def with_placeholders(sql: str) -> str:
    """A custom check's SQL with ``{table}`` and ``{window}`` as parseable names (see :func:`sandboxed`)."""
    for placeholder, name in CHECK_PLACEHOLDERS.items():
        sql = sql.replace(placeholder, name)
    return sql


class UnsafeSqlError(StrataError):
    """Registry SQL that is not one SELECT within :mod:`strata.registry.sql_policy` (refused at run time)."""


def sandboxed(sql: str, tables: Mapping[str, str] | None = None, predicates: Mapping[str, str] | None = None) -> str:
    """The DuckDB SQL to run for registry SQL ``sql``: the statement sqlglot parsed, never the raw text.

    ``tables`` replaces placeholder table names (``{"__tbl__": '"raw"."orders"'}``) and
    ``predicates`` placeholder columns (``{"__wndw__": "d >= date '2024-01-01'"}``), on the
    parsed tree, so a value can never change the statement's shape.

    Raises:
        UnsafeSqlError: ``sql`` does not parse to one SELECT, or the policy refuses part of it.
    """
    statement, problem = parse_select(sql)
    if problem is not None or statement is None:
        raise UnsafeSqlError(f"registry SQL refused at line {problem.line}, column {problem.column}: {problem.message}")
    tables, predicates = tables or {}, predicates or {}

    def substitute(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name in tables:
            replacement = sqlglot.parse_one(tables[node.name], into=exp.Table, dialect="duckdb")
            if node.alias:
                replacement.set("alias", node.args["alias"].copy())
            return replacement
        if isinstance(node, exp.Column) and not node.table and node.name in predicates:
            return exp.Paren(this=sqlglot.parse_one(predicates[node.name], dialect="duckdb"))
        return node

    return statement.copy().transform(substitute).sql(dialect="duckdb")


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
