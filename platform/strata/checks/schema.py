"""Schema: the declared columns' types, and the contract's row rules, judged on the loaded window.

One implementation of the contract: the row rules are :func:`strata.contract.column_rules`, the
SQL the load quarantines by, so a row the load would quarantine can never pass this check and a
row it keeps can never fail it (a ``pattern`` is a full match in both). Beyond the load's rules:
``unique`` columns are judged within the window, and every declared column must exist with the
type DuckDB gives the declared one (``typeof(NULL::<type>)``). On failure the metadata lists each
failing rule with its count and example values, and a sample of failing rows.
"""

from __future__ import annotations

import duckdb

from strata import contract, warehouse
from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import Dataset
from strata.warehouse import quote


def type_problems(con: duckdb.DuckDBPyConnection, dataset: Dataset) -> list[str]:
    """Declared columns missing from the table or of another type, as messages.

    For example ``amount is BIGINT, declared DOUBLE``.
    """
    actual = dict(warehouse.columns(con, dataset.table))
    problems = []
    for col in dataset.columns:
        declared = con.execute(f"select typeof(null::{col.sql_type})").fetchall()[0][0]
        if col.name not in actual:
            problems.append(f"{col.name} is missing, declared {declared}")
        elif actual[col.name] != declared:
            problems.append(f"{col.name} is {actual[col.name]}, declared {declared}")
    return problems


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset) -> CheckOutcome:
    """Judge the window's rows against the declared columns, per partition."""
    types = type_problems(con, dataset)
    found = _violations_by_partition(con, scope, dataset) if not types else {}
    results = []
    for day in scope.days():
        n, example = found.get(day, (0, ""))
        if types:
            results.append(PartitionResult(day, False, "column types differ: " + "; ".join(types)))
        else:
            results.append(
                PartitionResult(day, n == 0, f"{n} row(s) break the contract, e.g. {example}" if n else "valid")
            )
    if all(r.passed for r in results):
        return CheckOutcome("schema", "error", results, metadata={"columns_checked": len(dataset.columns)})
    rules = [{"rule": f"dtype: {p}", "failures": 1, "examples": ""} for p in types]
    sample = []
    if not types:
        rules += [
            {"rule": f"{rule}: {column}", "failures": int(n), "examples": "; ".join(examples)}
            for rule, column, n, examples in con.execute(
                f"select split_part(v, {warehouse.literal(contract.SEP)}, 1), split_part(v, "
                f"{warehouse.literal(contract.SEP)}, 2), count(*), list(split_part(v, "
                f"{warehouse.literal(contract.SEP)}, 3))[1:3] from (select unnest(__violations) as v "
                f"from ({_violations_sql(scope, dataset)})) group by 1, 2 order by 1, 2"
            ).fetchall()
        ]
        sample = con.execute(
            f"select * from ({_violations_sql(scope, dataset)}) where len(__violations) > 0 limit 5"
        ).fetchall()
    return CheckOutcome(
        "schema",
        "error",
        results,
        metadata={
            "failing_rules": rules,
            "sample_failing_rows": [
                {"row": str(r[:-1])[:300], "violations": "; ".join(v.replace(contract.SEP, ": ") for v in r[-1])}
                for r in sample
            ],
        },
    )


def _violations_sql(scope: Scope, dataset: Dataset) -> str:
    """The window's rows with the list of contract rules each breaks (uniqueness within the window)."""
    rules = contract.column_rules(dataset, typed=quote)
    for col in dataset.columns:
        if col.unique:
            c = quote(col.name)
            rules.append(
                f"case when count(*) over (partition by {c}) > 1 and {c} is not null "
                f"then 'unique{contract.SEP}{col.name}{contract.SEP}' || {c}::varchar || ' repeats' end"
            )
    checks = "list_filter([" + ", ".join(rules) + "], lambda x: x is not null)" if rules else "[]::varchar[]"
    return f"select *, {checks} as __violations from {scope.sql_table} where {scope.where()}"


def _violations_by_partition(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset) -> dict:
    rows = con.execute(
        f"select {scope.partition_sql()}, count(*), min(__violations[1]) from ({_violations_sql(scope, dataset)}) "
        "where len(__violations) > 0 group by 1"
    ).fetchall()
    return {
        p: (int(n), (example or "").replace(contract.SEP, ": ")) for p, (n, example) in scope.by_partition(rows).items()
    }
