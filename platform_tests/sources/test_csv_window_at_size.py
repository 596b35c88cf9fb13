"""A year of a daily CSV feed in one window: more than one row group, in bounded memory.

Each CSV file is sniffed and scanned on its own (``strata.sources.files.reader_sql``). With a
64 MiB line bound, DuckDB 1.5 gave every scan a 1 GiB buffer and kept them all: a 365-day window
ran out of memory at 18 GiB. The line bound is now each file's own size.
"""

from __future__ import annotations

from datetime import date, timedelta

import duckdb

from strata.checks import accounting
from strata.checks.scope import Scope
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

DAYS, ROWS_A_DAY = 365, 400  # 146,000 rows: more than one DuckDB row group (122,880)
START = date(2023, 1, 1)


def test_a_year_of_daily_csv_files_loads_in_one_window_within_2_gib(tmp_path):
    dataset = Dataset.model_validate(
        {
            "name": "feed",
            "source": {"type": "files", "format": "csv", "path": "feed/{date}.csv"},
            "partitioning": {"column": "day", "start": str(START)},
            "primary_key": ["id"],
            "columns": [
                {"name": "id", "type": "BIGINT", "nullable": False},
                {"name": "day", "type": "DATE", "nullable": False},
                {"name": "amount", "type": "DECIMAL(18,2)"},
            ],
        }
    )
    folder = tmp_path / "landing" / "feed"
    folder.mkdir(parents=True)
    for d in range(DAYS):
        day = START + timedelta(days=d)
        rows = "".join(f"{d * ROWS_A_DAY + r},{day},{r % 97}.{r % 100:02d}\n" for r in range(ROWS_A_DAY))
        (folder / f"{day}.csv").write_text("id,day,amount\n" + rows)
    window = PartitionWindow.from_dates("daily", "UTC", START, START + timedelta(days=DAYS))

    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("set memory_limit = '2GB'")
        report = load_dataset(con, dataset, tmp_path / "landing", "run", window)
        outcome = accounting.row_accounting(con, Scope(dataset.table, "_partition_date", window), dataset, report)
        assert outcome.passed, outcome.summary()
        per_day = con.execute(f"select day, count(*) from {dataset.table} group by 1").fetchall()
    assert report.rows_written == DAYS * ROWS_A_DAY
    assert len(per_day) == DAYS and {n for _, n in per_day} == {ROWS_A_DAY}
