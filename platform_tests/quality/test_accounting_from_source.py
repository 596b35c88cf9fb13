"""Rows read are counted at the source, not from what the reader produced: a reader that drops rows fails.

Real CSV files, a real DuckDB file and the real loader. The "lossy reader" wraps the real files
reader and leaves out one row per file, as a reader bug would; ``row_accounting`` must catch it,
partitioned and unpartitioned.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest
from conftest import by_value

from strata.checks.accounting import row_accounting
from strata.checks.scope import Scope
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset
from strata.sources import files as files_source

DAY1, DAY2 = date(2024, 1, 1), date(2024, 1, 2)
WINDOW = PartitionWindow.from_dates("daily", "UTC", DAY1, date(2024, 1, 3))


def _dataset(partitioned: bool) -> Dataset:
    spec = {
        "name": "events",
        "source": {"type": "files", "format": "csv", "path": "events/{date}.csv" if partitioned else "events/all.csv"},
        "columns": [
            {"name": "id", "type": "BIGINT"},
            {"name": "kind", "type": "VARCHAR"},
            {"name": "note", "type": "VARCHAR"},
            {"name": "amount", "type": "DOUBLE"},
        ],
    }
    if partitioned:
        spec["partitioning"] = {"start": str(DAY1)}
    return Dataset.model_validate(spec)


@pytest.fixture
def landing(tmp_path) -> Path:
    root = tmp_path / "landing"
    (root / "events").mkdir(parents=True)
    header = "id,kind,note,amount\n"
    (root / "events" / f"{DAY1}.csv").write_text(header + "1,a,x,1.5\n2,b,y,2.5\n3,c,z,3.5\n")
    # line 3 lacks three columns: one malformed line, one quarantine row; line 4 has a quoted line break
    (root / "events" / f"{DAY2}.csv").write_text(header + '4,a,x,1\n5\n6,b,"two\nlines",2\n')
    (root / "events" / "all.csv").write_text(header + "1,a,x,1\n2,b,y,2\n3,c,z,3\n")
    return root


def _account(con, dataset, report, window):
    scope = Scope(dataset.table, "_partition_date" if window else None, window)
    return row_accounting(con, scope, dataset, report)


def test_every_line_is_read_loaded_or_quarantined_once(tmp_path, landing):
    ds = _dataset(partitioned=True)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_dataset(con, ds, landing, "r1", WINDOW)
    assert by_value(report.read_by_partition) == {DAY1: 3, DAY2: 3}
    assert by_value(report.quarantined_by_partition) == {DAY1: 0, DAY2: 1}
    assert con.execute("select count(*) from quarantine.events").fetchall() == [(1,)]
    assert _account(con, ds, report, WINDOW).passed


@pytest.mark.parametrize("partitioned", [True, False], ids=["partitioned", "snapshot"])
def test_a_reader_that_drops_rows_fails_row_accounting(tmp_path, landing, monkeypatch, partitioned):
    real = files_source.extract

    def lossy(con, dataset, landing_root, window):
        ex = real(con, dataset, landing_root, window)
        ex.relation = f"(select * from {ex.relation} where _source_row <> 2)"
        return ex

    monkeypatch.setattr(files_source, "extract", lossy)
    ds = _dataset(partitioned)
    window = WINDOW if partitioned else None
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    report = load_dataset(con, ds, landing, "r1", window)
    outcome = _account(con, ds, report, window)
    assert not outcome.passed
    failed = outcome.failed_partitions[0]
    assert "read 3" in failed.detail and "loaded 2" in failed.detail, failed.detail
