"""The current state of a CDC dataset (``apply_changes``): its changes applied in log order, with a quarantine.

Raw keeps every change verbatim (:mod:`strata.sources.cdc`), so nothing the replication slot
delivered is ever lost. The staging dataset that applies them is rebuilt from all of raw at each
run (:func:`strata.registry.models.current_state_sql`), after the dataset's declared columns are
applied to each change:

* a change whose key is NULL, or whose values break the contract (a value that does not convert
  to its declared type, a NULL in a non-nullable column, a range ...), cannot be applied: it goes to
  ``quarantine.<name>`` with the rule and reason, and the key keeps its state from the change
  before. A delete is judged by its key only;
* because raw still holds it, a quarantined change applies on the first run after it becomes
  valid: a declared type widened, a column made nullable (nothing to re-read). A source that
  fixes the row sends a new change, which applies;
* the quarantine is rebuilt with the state, so it always lists exactly the changes that do not
  apply now.

Both tables are replaced in one transaction.
"""

from __future__ import annotations

import duckdb

from strata import contract, warehouse
from strata.registry.models import Column, Dataset, current_state_sql, last_reset_sql

CHANGES = "__strata_state_changes"


def build(con: duckdb.DuckDBPyConnection, dataset: Dataset, run_id: str = "") -> tuple[int, int]:
    """Replace ``staging.<name>`` with the current state of ``raw.<apply_changes>``, and its quarantine.

    Returns ``(rows in the state, changes quarantined)``. Declared columns are typed; others keep
    raw's text.

    Raises:
        duckdb.Error: the changes table cannot be read (both tables are unchanged).
    """
    source = f"raw.{dataset.apply_changes}"
    declared = {c.name: c for c in dataset.columns}
    have = [name for name, _ in warehouse.columns(con, source)]
    typed = ", ".join(
        f"{contract.typed_expr(declared[c], 'VARCHAR', None)} as {contract.typed_name(c)}"
        for c in have
        if c in declared
    )
    rules = _rules(dataset, [declared[c] for c in have if c in declared])
    violations = "list_filter([" + ", ".join(rules) + "], lambda x: x is not null)" if rules else "[]::varchar[]"
    con.execute(
        f"create or replace temp table {CHANGES} as select *, {violations} as __violations "
        f"from (select *{', ' + typed if typed else ''} from {warehouse.qualified(source)}) as c"
    ).fetchall()
    try:
        image = ", ".join(
            f"{contract.typed_name(c)} as {warehouse.quote(c)}" if c in declared else warehouse.quote(c) for c in have
        )
        valid = f"(select {image} from {CHANGES} where len(__violations) = 0)"
        state = current_state_sql(dataset.apply_changes or "", dataset.primary_key, relation=valid)
        quarantined = (
            f"select {warehouse.literal(source)} as _source, _cdc_commit_lsn, _cdc_lsn, _cdc_seq, _cdc_op, "
            f"{contract.quarantine_columns(have)}, now() as _loaded_at, {warehouse.literal(run_id)} as _run_id "
            f"from {CHANGES} where len(__violations) > 0 "
            f"and [_cdc_commit_lsn, _cdc_lsn, _cdc_seq] > {last_reset_sql(CHANGES)}"
        )
        with warehouse.transaction(con):
            rows = warehouse.create_or_replace(con, dataset.table, state)
            held = warehouse.create_or_replace(con, f"quarantine.{dataset.name}", quarantined)
    finally:
        con.execute(f"drop table if exists {CHANGES}").fetchall()
    return rows, held


def _rules(dataset: Dataset, columns: list[Column]) -> list[str]:
    """The contract's rules on a change: all of them on a row image, the key's alone on a delete; none on a marker."""
    whole = Dataset.model_validate(
        {**dataset.model_dump(exclude={"select"}), "columns": [c.model_dump() for c in columns]}
    )
    keys = set(dataset.primary_key)
    key_only = Dataset.model_validate(
        {**whole.model_dump(exclude={"select"}), "columns": [c.model_dump() for c in columns if c.name in keys]}
    )
    rules = [f"case when _cdc_op in ('r', 'c', 'u') then {rule} end" for rule in contract.column_rules(whole)]
    rules += [f"case when _cdc_op = 'd' then {rule} end" for rule in contract.column_rules(key_only)]
    for key in dataset.primary_key:
        if key not in {c.name for c in columns}:  # an undeclared key column: it must still be there
            rules.append(
                f"case when _cdc_op in ('r', 'c', 'u', 'd') and {warehouse.quote(key)} is null "
                f"then {warehouse.literal('not_null' + contract.SEP + key + contract.SEP)} || 'missing value' end"
            )
    return rules
