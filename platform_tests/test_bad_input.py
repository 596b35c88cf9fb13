"""Missing and corrupt landing files fail the run with the file's name and leave raw untouched.

Through Dagster on both warehouse backends (the DuckDB file and a DuckLake): the partition
replace is one transaction on each, so a failed window leaves the previous rows.
"""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest
from conftest import daily_file, on_both_backends

from strata import warehouse
from strata.errors import CorruptSourceFileError, MissingSourceFileError
from strata.sources import VOLATILE_LOAD_COLUMNS

RAW_ORDERS = dg.AssetKey(["raw", "tpch_orders"])


def raw_fingerprint(platform):
    with warehouse.connect(platform.settings.warehouse, read_only=True) as con:
        return warehouse.fingerprint(con, "raw.tpch_orders", exclude=VOLATILE_LOAD_COLUMNS)


def failure_of(result: dg.ExecuteInProcessResult) -> BaseException:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    return failure.step_failure_data.error


@pytest.fixture
def loaded(damaged_platform):
    """Three days of raw orders loaded, before the damage."""
    assert damaged_platform.materialize([RAW_ORDERS], start="1993-07-01", end="1993-07-03").success
    return damaged_platform


@on_both_backends
def test_missing_file_names_the_expected_path(loaded):
    missing = daily_file(loaded.settings.landing_dir, "orders", "1993-07-02")
    missing.unlink()
    before = raw_fingerprint(loaded)

    result = loaded.materialize([RAW_ORDERS], start="1993-07-01", end="1993-07-03", raise_on_error=False)

    assert not result.success
    error = failure_of(result)
    assert error.cls_name == MissingSourceFileError.__name__ or MissingSourceFileError.__name__ in str(error.cause)
    assert str(missing) in error.to_string()
    assert raw_fingerprint(loaded) == before, "nothing of the window was replaced"


@on_both_backends
@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated"),
        pytest.param(lambda p: p.write_text("o_orderkey,o_custkey\n1,2\n"), id="not-parquet"),
        pytest.param(lambda p: p.write_bytes(b""), id="empty-file"),
    ],
)
def test_corrupt_file_names_the_file(loaded, damage):
    corrupt = daily_file(loaded.settings.landing_dir, "orders", "1993-07-03")
    damage(corrupt)
    before = raw_fingerprint(loaded)

    result = loaded.materialize([RAW_ORDERS], start="1993-07-01", end="1993-07-03", raise_on_error=False)

    assert not result.success
    text = failure_of(result).to_string()
    assert CorruptSourceFileError.__name__ in text and str(corrupt) in text
    assert raw_fingerprint(loaded) == before


def test_direct_load_raises_named_errors(tmp_path, tpch_landing):
    """The loader itself, without Dagster: the same errors, and the table is untouched."""
    from datetime import date

    from strata.loading import load_dataset
    from strata.partition_window import PartitionWindow
    from strata.reconcile.tpch import tpch_datasets

    orders = next(d for d in tpch_datasets() if d.name == "tpch_orders")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    with pytest.raises(MissingSourceFileError) as info:
        load_dataset(
            con,
            orders,
            tpch_landing,
            "r1",
            PartitionWindow.from_dates("daily", "UTC", date(1998, 8, 2), date(1998, 8, 4)),
        )
    assert info.value.paths == [tpch_landing / "tpch/orders/orders_1998-08-03.parquet"]
    assert not warehouse.table_exists(con, "raw.tpch_orders")
