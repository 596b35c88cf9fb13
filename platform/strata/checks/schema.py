"""Schema: a pandera schema from the declared columns, validated in DuckDB against the window.

pandera's ibis backend runs the validation as SQL where the data is.

Types, nullability, uniqueness (within the window), accepted values, ranges and patterns. On
failure the metadata lists each failing rule with its count and example values, and the failing
partitions with a sample of failing rows (found with the same rules as SQL, see
:mod:`strata.contract`).
"""

from __future__ import annotations

from datetime import date

import duckdb
import ibis
import pandera.errors as pe
import pandera.ibis as pa
from ibis.backends.sql.datatypes import DuckDBType

from strata import contract
from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import Column, Dataset
from strata.warehouse import quote


def pandera_schema(columns: list[Column]) -> pa.DataFrameSchema:
    """The pandera (ibis) schema of the declared columns; extra columns are allowed."""
    fields = {}
    for col in columns:
        checks = []
        if col.accepted_values is not None:
            checks.append(pa.Check.isin(col.accepted_values))
        if col.range is not None:
            if col.range.min is not None:
                checks.append(pa.Check.ge(col.range.min))
            if col.range.max is not None:
                checks.append(pa.Check.le(date.today() if col.range.max == "today" else col.range.max))
        if col.pattern is not None:
            checks.append(pa.Check.str_matches(col.pattern))
        fields[col.name] = pa.Column(
            DuckDBType.from_string(col.type), checks=checks, nullable=col.nullable, unique=col.unique
        )
    return pa.DataFrameSchema(fields, strict=False)


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset) -> CheckOutcome:
    """Validate the window's rows against the declared columns."""
    schema_name, table_name = dataset.table.split(".", 1)
    table = ibis.duckdb.from_connection(con).table(table_name, database=schema_name)
    if scope.partitioned:
        column = table[scope.partition_column]
        table = table.filter((column >= scope.window.start) & (column < scope.window.end))  # type: ignore[union-attr]
    try:
        pandera_schema(dataset.columns).validate(table, lazy=True)
    except pe.SchemaErrors as err:
        return _failed(con, scope, dataset, err)
    return CheckOutcome(
        "schema",
        "error",
        [PartitionResult(d, True, "valid") for d in scope.days()],
        metadata={"columns_checked": len(dataset.columns)},
    )


def _failed(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset, err: pe.SchemaErrors) -> CheckOutcome:
    cases = err.failure_cases
    rules = []
    for check, group in cases.groupby("check", sort=True):
        examples = [str(v) for v in group["failure_case"].head(3)]
        rules.append({"rule": str(check), "failures": len(group), "examples": "; ".join(examples)})
    schema_level = any(str(c).startswith(("dtype", "column_in_dataframe")) for c in cases["check"])
    found = _violations_by_partition(con, scope, dataset)
    results = []
    for day in scope.days():
        n, example = found.get(day, (0, ""))
        bad = schema_level or n > 0
        detail = (
            f"{n} row(s) break the contract, e.g. {example}"
            if n
            else ("column types differ" if schema_level else "valid")
        )
        results.append(PartitionResult(day, not bad, detail))
    sample = con.execute(
        f"select * from ({_violations_sql(scope, dataset)}) where len(__violations) > 0 limit 5"
    ).fetchall()
    return CheckOutcome(
        "schema",
        "error",
        results,
        metadata={
            "failing_rules": rules,
            "sample_failing_rows": [{"row": str(r[:-1])[:300], "violations": "; ".join(r[-1])} for r in sample],
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
    return {p: (int(n), (example or "").replace(contract.SEP, ": ")) for p, n, example in rows}
