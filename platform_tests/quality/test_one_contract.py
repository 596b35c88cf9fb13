"""One contract, one implementation: a row the load quarantines fails the schema check, and a row it keeps passes.

Real CSV, real DuckDB, the real loader and the real schema check. The rows that broke the
contract are put into the raw table by hand (as an old load, or a bug, might have left them), and
the schema check must flag exactly those, naming the same rules the load named.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from strata.checks import schema
from strata.checks.scope import Scope
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

DAY = date(2024, 1, 1)
WINDOW = PartitionWindow.from_dates("daily", "UTC", DAY, date(2024, 1, 2))

ROWS = {
    # id: (code, score, status) -> the rule the row breaks, or None
    1: ("AB-123", "5", "open", None),
    2: ("AB-123x", "5", "open", "pattern"),  # pandera's str_matches (a prefix match) let this pass
    3: ("xAB-1", "5", "open", "pattern"),
    4: ("AB-7", "11", "open", "range"),
    5: ("AB-8", "-1", "open", "range"),
    6: ("AB-9", "5", "Open", "accepted_values"),
    7: ("AB-10", "5", "closed", None),
}


@pytest.fixture
def dataset() -> Dataset:
    return Dataset.model_validate(
        {
            "name": "tickets",
            "source": {"type": "files", "format": "csv", "path": "tickets/{date}.csv"},
            "partitioning": {"start": str(DAY)},
            "columns": [
                {"name": "id", "type": "BIGINT"},
                {"name": "code", "type": "VARCHAR", "pattern": "AB-[0-9]+"},
                {"name": "score", "type": "INTEGER", "range": {"min": 0, "max": 10}},
                {"name": "status", "type": "VARCHAR", "accepted_values": ["open", "closed"]},
            ],
        }
    )


def test_the_load_and_the_schema_check_agree_row_for_row(tmp_path, dataset):
    landing = tmp_path / "landing" / "tickets"
    landing.mkdir(parents=True)
    lines = ["id,code,score,status"] + [f"{i},{c},{s},{st}" for i, (c, s, st, _) in ROWS.items()]
    (landing / f"{DAY}.csv").write_text("\n".join(lines) + "\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))

    load_dataset(con, dataset, tmp_path / "landing", "r1", WINDOW)
    quarantined = dict(con.execute("select _source_row, _rule from quarantine.tickets").fetchall())
    expected = {i: rule for i, (_, _, _, rule) in ROWS.items() if rule}
    assert quarantined == expected  # _source_row is the data line, here equal to the id

    scope = Scope(dataset.table, "_partition_date", WINDOW)
    assert schema.evaluate(con, scope, dataset).passed, "the rows the load kept pass the check"

    # put the quarantined rows into raw, as typed values, and the check must catch each of them
    con.execute(
        "insert into raw.tickets by name select id::bigint as id, code, score::integer as score, status, "
        f"date '{DAY}' as _partition_date from (values "
        + ", ".join(f"({i}, '{ROWS[i][0]}', '{ROWS[i][1]}', '{ROWS[i][2]}')" for i in expected)
        + ") as t(id, code, score, status)"
    ).fetchall()
    outcome = schema.evaluate(con, scope, dataset)
    assert not outcome.passed
    rules = {r["rule"]: r["failures"] for r in outcome.metadata["failing_rules"]}
    assert rules == {"pattern: code": 2, "range: score": 2, "accepted_values: status": 1}
    assert outcome.failed_partitions[0].detail.startswith(f"{len(expected)} row(s) break the contract")
