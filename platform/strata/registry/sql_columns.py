"""Column references in a registry SELECT, resolved against the columns the tables it reads declare.

sqlglot's qualifier (``sqlglot.optimizer.qualify``) binds every column of the SELECT to a table,
expands ``*`` and names the output columns, given the columns of each table read: a registered
dataset's declared columns (raw ones also carry the load columns) and a dbt model's documented
columns (``manifest.json``). A table whose columns are unknown (none declared or documented)
turns the check off for that SELECT rather than guessing.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp
from sqlglot.errors import OptimizeError, SqlglotError
from sqlglot.optimizer.qualify import qualify

from strata.registry.sql import SqlProblem, TableRef
from strata.registry.sql_policy import position


@dataclass(frozen=True)
class Resolved:
    """The SELECT's output column names, or the first column that does not resolve."""

    outputs: list[str]
    problem: SqlProblem | None = None


def resolve(
    statement: exp.Expression, tables: Sequence[tuple[TableRef, str]], columns: Mapping[str, Sequence[str]]
) -> Resolved | None:
    """Bind the columns of ``statement`` (which reads ``tables``: each ref and its ``schema.table``).

    ``columns`` gives each ``schema.table``'s column names. Returns None when a table's columns
    are unknown, or the qualifier cannot judge the statement (it is then left to the run).
    """
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for _, relation in tables:
        names = columns.get(relation)
        if not names:
            return None
        db, name = relation.split(".", 1)
        schema.setdefault(db, {})[name] = {c: "UNKNOWN" for c in names}
    # unqualified references resolve to their registered table: qualify them the same way
    tree = statement.copy()
    by_name = {(ref.schema, ref.name): relation for ref, relation in tables}
    for table in tree.find_all(exp.Table):
        relation = by_name.get((table.db, table.name))
        if relation and not table.db:
            table.set("db", exp.to_identifier(relation.split(".", 1)[0]))
    try:
        qualified = qualify(tree, schema=schema, dialect="duckdb", validate_qualify_columns=True, identify=False)
    except OptimizeError as err:
        return Resolved(
            [], _problem(statement, str(err), [c for rel in schema.values() for t in rel.values() for c in t])
        )
    except (SqlglotError, RecursionError, KeyError, ValueError, AttributeError):
        return None
    return Resolved(list(qualified.named_selects))


def _problem(statement: exp.Expression, message: str, known: list[str]) -> SqlProblem:
    match = re.search(r"(?:Unknown column: |Column ')([^']+?)'?(?: could not be resolved|$)", message.split(".")[0])
    name = match.group(1).strip('"') if match else ""
    node = next((c for c in statement.find_all(exp.Column) if c.name == name), None)
    line, column = position(node) if node is not None else (1, 1)
    near = difflib.get_close_matches(name, sorted(set(known)), n=1, cutoff=0.6)
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return SqlProblem(line, column, f"unknown column '{name}'{hint}" if name else f"columns: {message}")


def column_lineage(
    statement: exp.Expression, columns: Mapping[str, Sequence[str]]
) -> dict[str, list[tuple[str, str]]] | None:
    """The source columns of each output column of a SELECT: ``{output: [(schema.table, column), ...]}``.

    ``columns`` gives the columns of every ``schema.table`` the SELECT reads (as the warehouse
    has them). sqlglot's ``lineage`` walks each output back through CTEs and subqueries to the
    tables' columns. None when the statement cannot be resolved (an unknown table or column).
    """
    from sqlglot.lineage import lineage

    schema: dict[str, dict[str, dict[str, str]]] = {}
    for relation, names in columns.items():
        db, name = relation.split(".", 1)
        schema.setdefault(db, {})[name] = {c: "UNKNOWN" for c in names}
    try:
        qualified = qualify(statement.copy(), schema=schema, dialect="duckdb", identify=False)
        result: dict[str, list[tuple[str, str]]] = {}
        for output in qualified.named_selects:
            node = lineage(output, qualified, schema=schema, dialect="duckdb")
            found = []
            for leaf in node.walk():
                if leaf.downstream or not isinstance(leaf.source, exp.Table) or not leaf.source.db:
                    continue
                pair = (f"{leaf.source.db}.{leaf.source.name}", leaf.name.split(".")[-1].strip('"'))
                if pair not in found:
                    found.append(pair)
            result[output] = found
        return result
    except (SqlglotError, RecursionError, KeyError, ValueError, AttributeError):
        return None
