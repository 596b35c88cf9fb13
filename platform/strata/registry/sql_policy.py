"""What SQL from the registry may do: the allowlist a SELECT is judged by, over sqlglot's AST.

SQL written in YAML (a SQL-derived dataset's ``select:``, a ``custom_sql`` check) is untrusted. It
may compute over registered datasets and dbt models and nothing else:

* one query (CTEs, subqueries and set operations allowed); no statement of any other kind anywhere
  inside it (DDL, DML, ``COPY``, ``ATTACH``, ``INSTALL``/``LOAD``, ``SET``, ``PRAGMA`` ...);
* scalar, aggregate and window functions from :data:`strata.registry.allowed_functions.NAMES`
  (DuckDB's built-ins minus those that reveal the session, catalog or host, such as
  ``current_setting``);
* table functions from :data:`TABLE_FUNCTIONS` only (``range``, ``generate_series``, ``unnest``):
  no ``read_csv``, ``read_text``, ``glob``, ``query`` or ``duckdb_settings()``;
* tables named ``schema.table`` or ``table``, never with a catalog (another database), never a
  quoted path (DuckDB's replacement scan reads ``from '/etc/passwd'`` as a file), never the system
  schemas.

The same rules refuse at validation (with the position in the SQL) and at run time
(:func:`strata.registry.sql.sandboxed`), where DuckDB's own sandbox backs them up
(:func:`strata.warehouse.sandbox`). Source of the rules: DuckDB's "Securing DuckDB" guide
(https://duckdb.org/docs/stable/operations_manual/securing_duckdb/overview), which names the
file-reading table functions, extension loading and configuration as what untrusted SQL must not reach.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from strata.registry.allowed_functions import NAMES as ALLOWED_FUNCTIONS

#: Table functions a SELECT may call in FROM: they generate rows from their arguments alone.
TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})

#: SQL forms sqlglot models as functions whose DuckDB spelling is a keyword, not a catalog function.
SQL_FORMS = frozenset(
    {"cast", "try_cast", "extract", "coalesce", "nullif", "if", "ifnull", "interval", "struct_pack", "unnest"}
)

#: DuckDB's window functions (not listed by ``duckdb_functions()``).
WINDOW_FUNCTIONS = frozenset(
    {
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        "fill",
    }
)

#: Schemas that describe the database rather than hold data.
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog", "system", "temp"})

#: Statement kinds refused anywhere inside the query (sqlglot class names; absent ones are skipped).
_STATEMENTS = tuple(
    getattr(exp, name)
    for name in (
        "DDL",
        "DML",
        "Command",
        "Pragma",
        "Set",
        "Copy",
        "Attach",
        "Detach",
        "Use",
        "Transaction",
        "Commit",
        "Rollback",
        "Install",
        "LoadData",
        "Export",
    )
    if hasattr(exp, name)
)

_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def position(node: exp.Expression) -> tuple[int, int]:
    """1-based (line, column) where ``node`` starts in the SQL text: its leftmost named token's."""
    found = []
    for candidate in node.walk():
        meta = candidate.meta if isinstance(candidate, exp.Identifier | exp.Anonymous) else {}
        if meta.get("line"):
            found.append((meta["line"], max(meta.get("col", 1) - len(candidate.name) + 1, 1)))
    return min(found) if found else (1, 1)


def function_name(node: exp.Func) -> str | None:
    """The DuckDB name ``node`` is called by (lower case), or None for forms that are not calls (``[1, 2]``)."""
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    match = _CALL.match(node.sql(dialect="duckdb"))
    return match.group(1).lower() if match else None


def refusals(statement: exp.Expression) -> Iterator[tuple[exp.Expression, str]]:
    """Every node of ``statement`` the rules refuse, with the reason (see the module docstring)."""
    for node in statement.walk():
        if isinstance(node, _STATEMENTS) and node is not statement:
            yield node, f"only a SELECT is allowed, found {type(node).__name__.upper()} inside it"
        elif isinstance(node, exp.Table):
            yield from _table(node)
        elif isinstance(node, exp.Func) and not isinstance(node.parent, exp.Table):
            name = function_name(node)
            if name is not None and name not in ALLOWED_FUNCTIONS | SQL_FORMS | WINDOW_FUNCTIONS:
                yield node, f"function '{name}' is not allowed in registry SQL"


def _table(node: exp.Table) -> Iterator[tuple[exp.Expression, str]]:
    this = node.this
    if isinstance(this, exp.Func):
        name = function_name(this) or type(this).__name__.lower()
        if isinstance(this, exp.GenerateSeries):
            name = "range"
        if name not in TABLE_FUNCTIONS:
            yield this, f"table function '{name}' is not allowed: registry SQL reads registered tables only"
        return
    if not isinstance(this, exp.Identifier):
        if this is not None:
            yield node, "only named tables may be read"
        return
    if node.catalog:
        yield node, f"'{node.catalog}.{node.db}.{node.name}' names another database; read registered tables only"
    elif node.db.lower() in SYSTEM_SCHEMAS:
        yield node, f"the system schema '{node.db}' is not readable from registry SQL"
    elif re.search(r"[/\\:.*?]", node.name):
        yield node, f"'{node.name}' looks like a file path; registry SQL reads registered tables only"
