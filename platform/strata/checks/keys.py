"""Primary key: no two rows of a SQL-derived dataset share their ``primary_key`` (and none is NULL).

Raw loads enforce the key row by row (duplicates go to quarantine, :mod:`strata.contract`); a
SELECT has no quarantine, so its result is judged here, over the window's partitions (whole
table when unpartitioned), as dbt's ``unique`` and ``not_null`` tests judge a dbt model.
"""

from __future__ import annotations

import duckdb

from strata.checks import CheckOutcome, PartitionResult
from strata.checks.scope import Scope
from strata.registry.models import Dataset
from strata.warehouse import quote

NAME = "primary_key"


def evaluate(con: duckdb.DuckDBPyConnection, scope: Scope, dataset: Dataset) -> CheckOutcome:
    """Per partition: keys that repeat or are NULL (counted as rows beyond the first, and NULL keys)."""
    keys = ", ".join(quote(k) for k in dataset.primary_key)
    null = " or ".join(f"{quote(k)} is null" for k in dataset.primary_key)
    rows = con.execute(
        f"select {scope.partition_sql()} as p, count(*) - count(distinct ({keys})) "
        f"+ count(*) filter (where {null}) as bad, "
        f"any_value(({keys})::varchar) filter (where ({keys}) in (select ({keys}) from {scope.sql_table} "
        f"where {scope.where()} group by all having count(*) > 1)) as example "
        f"from {scope.sql_table} where {scope.where()} group by 1"
    ).fetchall()
    found = {p: (int(bad), example) for p, (bad, example) in scope.by_partition(rows).items()}
    results = []
    for day in scope.days():
        bad, example = found.get(day, (0, None))
        detail = f"{bad} row(s) repeat or lack the key" + (f", e.g. {example}" if example else "") if bad else "unique"
        results.append(PartitionResult(day, bad == 0, detail))
    return CheckOutcome(NAME, "error", results, metadata={"primary_key": ", ".join(dataset.primary_key)})
