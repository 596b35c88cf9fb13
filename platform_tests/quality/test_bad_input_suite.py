"""The bad-input suite: each kind of bad input, its expected outcome, and no row ever lost.

Every case either fails with a clear error naming the file, line or column (and writes nothing),
or loads what is good and quarantines the rest with its reason, so that per partition
rows read = rows loaded + rows quarantined.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import by_value

from strata import warehouse
from strata.checks import accounting
from strata.checks.scope import Scope
from strata.errors import ContractError, CorruptSourceFileError, MissingSourceFileError
from strata.loading import LoadReport, load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

DAY = PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 1), date(2024, 3, 2))
HEADER = "order_id,order_date,customer,quantity,note\n"


def shop(**overrides) -> Dataset:
    spec = {
        "name": "shop_orders",
        "source": {"type": "files", "format": "csv", "path": "shop/{date}*.csv", "csv": {"null_strings": ["", "NA"]}},
        "partitioning": {"column": "order_date", "start": "2024-03-01"},
        "primary_key": ["order_id"],
        "columns": [
            {"name": "order_id", "type": "BIGINT", "nullable": False},
            {"name": "order_date", "type": "DATE", "nullable": False, "range": {"max": "today"}},
            {"name": "customer", "type": "VARCHAR"},
            {"name": "quantity", "type": "INTEGER", "range": {"min": 0}},
        ],
    }
    spec.update(overrides)
    return Dataset.model_validate(spec)


@pytest.fixture
def landing(tmp_path) -> Path:
    (tmp_path / "landing" / "shop").mkdir(parents=True)
    return tmp_path / "landing"


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as c:
        yield c


def drop(landing: Path, content: str | bytes, name: str = "2024-03-01.csv") -> Path:
    path = landing / "shop" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def load(con, landing, dataset: Dataset | None = None, window: PartitionWindow = DAY) -> LoadReport:
    report = load_dataset(con, dataset or shop(), landing, "run", window)
    # no row lost: read = loaded + quarantined, per partition, recounted from the tables
    outcome = accounting.row_accounting(
        con, Scope((dataset or shop()).table, "_partition_date", window), dataset or shop(), report
    )
    assert outcome.passed, outcome.summary()
    return report


def quarantined(con) -> list[tuple]:
    if not warehouse.table_exists(con, "quarantine.shop_orders"):
        return []
    return con.execute("select _source_row, _rule, _column, _reason from quarantine.shop_orders order by 1").fetchall()


def raw_ids(con) -> list[int]:
    return [r[0] for r in con.execute("select order_id from raw.shop_orders order by 1").fetchall()]


# --------------------------------------------------------------------------- files and structure


def test_empty_file_is_an_empty_day(con, landing):
    drop(landing, "")
    report = load(con, landing)
    assert (report.rows_read, report.rows_written) == (0, 0) and by_value(report.rows_by_partition) == {
        date(2024, 3, 1): 0
    }


def test_header_only(con, landing):
    drop(landing, HEADER)
    assert load(con, landing).rows_read == 0


def test_truncated_parquet_names_the_file(con, landing):
    path = landing / "shop" / "2024-03-01.parquet"
    pq.write_table(pa.table({"order_id": [1, 2], "order_date": [date(2024, 3, 1)] * 2}), path)
    path.write_bytes(path.read_bytes()[:-20])
    ds = shop(
        source={"type": "files", "format": "parquet", "path": "shop/{date}.parquet"},
        columns=[{"name": "order_id", "type": "BIGINT"}, {"name": "order_date", "type": "DATE"}],
    )
    with pytest.raises(CorruptSourceFileError) as info:
        load_dataset(con, ds, landing, "run", DAY)
    assert info.value.path == path and not warehouse.table_exists(con, "raw.shop_orders")


def test_missing_file_names_the_expected_path(con, landing):
    with pytest.raises(MissingSourceFileError, match=r"shop/2024-03-01\*\.csv"):
        load_dataset(con, shop(), landing, "run", DAY)


def test_wrong_delimiter_names_the_missing_columns_and_the_file(con, landing):
    drop(landing, HEADER.replace(",", ";") + "1;01/03/2024;x;1;\n")
    with pytest.raises(ContractError) as info:
        load_dataset(con, shop(), landing, "run", DAY)
    assert info.value.columns == ["order_id", "order_date", "customer", "quantity"]
    assert "shop/2024-03-01.csv" in str(info.value)


def test_unescaped_quote_inside_a_field_is_kept_as_written(con, landing):
    drop(landing, HEADER + '1,2024-03-01,Smith "the hammer" Jones,2,ok\n2,2024-03-01,Lee,3,ok\n')
    load(con, landing)
    assert con.execute("select customer from raw.shop_orders order by order_id").fetchall() == [
        ('Smith "the hammer" Jones',),
        ("Lee",),
    ]


def test_unterminated_quote_names_the_file(con, landing):
    path = drop(landing, HEADER + '1,2024-03-01,"Smith,2,ok\n2,2024-03-01,Lee,3,ok\n')
    with pytest.raises(CorruptSourceFileError) as info:
        load_dataset(con, shop(), landing, "run", DAY)
    assert info.value.path == path and not warehouse.table_exists(con, "raw.shop_orders")


def test_wrong_column_count_quarantines_the_line_with_its_number(con, landing):
    drop(landing, HEADER + "1,2024-03-01,a,1,x\n2,2024-03-01,b,1,x,EXTRA\n3,2024-03-01,c,1,x\n")
    report = load(con, landing)
    assert raw_ids(con) == [1, 3] and report.rows_quarantined == 1
    [(line, rule, _, reason)] = quarantined(con)
    assert (line, rule) == (3, "malformed_line") and "TOO MANY COLUMNS" in reason


def test_non_utf8_bytes_quarantine_the_line(con, landing):
    drop(landing, HEADER.encode() + b"1,2024-03-01,caf\xe9,1,x\n2,2024-03-01,ok,1,x\n")
    report = load(con, landing)
    assert raw_ids(con) == [2] and report.rows_quarantined == 1
    assert "INVALID ENCODING" in quarantined(con)[0][3]


def test_mixed_encodings_across_files(con, landing):
    drop(landing, (HEADER + "1,2024-03-01,Müller,1,x\n").encode("utf-8"), "2024-03-01-a.csv")
    drop(landing, (HEADER + "2,2024-03-01,Gärtner,1,x\n").encode("latin-1"), "2024-03-01-b.csv")
    report = load(con, landing)
    assert raw_ids(con) == [1] and report.rows_quarantined == 1


def test_byte_order_mark_is_read(con, landing):
    drop(landing, "\ufeff" + HEADER + "1,2024-03-01,x,1,\n")
    load(con, landing)
    assert raw_ids(con) == [1] and quarantined(con) == []


def test_huge_text_field_is_loaded_whole(con, landing):
    big = "x" * 5_000_000
    drop(landing, HEADER + f"1,2024-03-01,big,1,{big}\n")
    load(con, landing)
    assert con.execute("select length(note) from raw.shop_orders").fetchall() == [(5_000_000,)]


# --------------------------------------------------------------------------- keys


def test_duplicate_key_within_a_file(con, landing):
    drop(landing, HEADER + "1,2024-03-01,first,1,\n1,2024-03-01,second,2,\n")
    load(con, landing)
    assert con.execute("select customer from raw.shop_orders").fetchall() == [("first",)]
    assert [r[1:3] for r in quarantined(con)] == [("duplicate_key", "order_id")]


def test_duplicate_key_across_files(con, landing):
    drop(landing, HEADER + "1,2024-03-01,a,1,\n", "2024-03-01-a.csv")
    drop(landing, HEADER + "1,2024-03-01,b,1,\n", "2024-03-01-b.csv")
    report = load(con, landing)
    assert raw_ids(con) == [1] and report.rows_quarantined == 1


def test_key_already_loaded_in_another_partition(con, landing):
    drop(landing, HEADER + "1,2024-03-01,a,1,\n")
    load(con, landing)
    drop(landing, HEADER + "1,2024-03-02,again,1,\n", "2024-03-02.csv")
    report = load(con, landing, window=PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 2), date(2024, 3, 3)))
    assert report.rows_quarantined == 1 and "is already loaded" in quarantined(con)[0][3]


def test_null_key(con, landing):
    drop(landing, HEADER + ",2024-03-01,a,1,\nNA,2024-03-01,b,1,\n2,2024-03-01,c,1,\n")
    load(con, landing)
    assert raw_ids(con) == [2] and [r[1:3] for r in quarantined(con)] == [("not_null", "order_id")] * 2


def test_scientific_notation_in_a_key(con, landing):
    drop(landing, HEADER + "1e3,2024-03-01,a,1,\n2,2024-03-01,b,1,\n")
    load(con, landing)
    assert raw_ids(con) == [2] and quarantined(con)[0][1:3] == ("cast", "order_id")


# --------------------------------------------------------------------------- values


def test_dates_in_the_future(con, landing):
    ds = shop(partitioning=None, load="replace", source={"type": "files", "format": "csv", "path": "shop/all.csv"})
    drop(landing, HEADER + "1,2099-01-01,a,1,\n2,2024-03-01,b,1,\n", "all.csv")
    report = load_dataset(con, ds, landing, "run")
    assert (report.rows_read, report.rows_passed, report.rows_quarantined) == (2, 1, 1)
    assert quarantined(con)[0][1:3] == ("range", "order_date")


def test_dates_outside_the_partition(con, landing):
    drop(landing, HEADER + "1,2024-03-05,a,1,\n2,2024-03-01,b,1,\n")
    load(con, landing)
    assert raw_ids(con) == [2] and quarantined(con)[0][1:3] == ("partition", "order_date")


def test_unparseable_date(con, landing):
    drop(landing, HEADER + "1,31/02/2024,a,1,\n2,2024-03-01,b,1,\n")
    load(con, landing)
    assert raw_ids(con) == [2] and quarantined(con)[0][1:3] == ("cast", "order_date")


def test_thousands_separators_quarantine_unless_declared(con, landing):
    drop(landing, HEADER + '1,2024-03-01,a,"1,234",\n')
    load(con, landing)
    assert quarantined(con)[0][1:3] == ("cast", "quantity")
    ds = shop(source={"type": "files", "format": "csv", "path": "shop/{date}*.csv", "csv": {"thousands": ","}})
    load(con, landing, ds)
    assert con.execute("select quantity from raw.shop_orders").fetchall() == [(1234,)] and quarantined(con) == []


def test_negative_quantity(con, landing):
    drop(landing, HEADER + "1,2024-03-01,a,-3,\n2,2024-03-01,b,3,\n")
    load(con, landing)
    assert raw_ids(con) == [2] and "-3 < 0" in quarantined(con)[0][3]


# --------------------------------------------------------------------------- schema changes


def test_extra_column_is_kept_and_reported_as_drift(con, landing):
    drop(landing, HEADER.strip() + ",coupon\n1,2024-03-01,a,1,,SPRING\n")
    report = load(con, landing)
    assert con.execute("select coupon from raw.shop_orders").fetchall() == [("SPRING",)]
    assert report.new_columns == ["note", "coupon"]
    drift = accounting.schema_drift(Scope("raw.shop_orders", "_partition_date", DAY), report)
    assert not drift.passed and drift.severity == "warn" and "coupon" in drift.partitions[0].detail


def test_missing_column_names_the_column_and_file(con, landing):
    drop(landing, "order_id,order_date,customer\n1,2024-03-01,a\n")
    with pytest.raises(ContractError, match=r"declared column\(s\) quantity missing from shop/2024-03-01.csv"):
        load_dataset(con, shop(), landing, "run", DAY)
    assert not warehouse.table_exists(con, "raw.shop_orders")


def test_renamed_column_names_the_column(con, landing):
    drop(landing, "order_id,order_date,client,quantity\n1,2024-03-01,a,1\n")
    with pytest.raises(ContractError) as info:
        load_dataset(con, shop(), landing, "run", DAY)
    assert info.value.columns == ["customer"]


def test_type_change_quarantines_and_trips_the_threshold(con, landing):
    drop(landing, HEADER + "".join(f"{i},2024-03-01,a,{'lots' if i % 2 else i},\n" for i in range(1, 41)))
    report = load(con, landing)
    assert report.rows_quarantined == 20
    threshold = accounting.quarantine_threshold(Scope("raw.shop_orders", "_partition_date", DAY), shop(), report)
    assert not threshold.passed and threshold.blocking and "50.0%" in threshold.partitions[0].detail


def test_a_tiny_partition_is_not_judged_by_percentage(con, landing):
    """One bad row of a two-row file is 50 %: under quarantine.min_rows (20) it passes while a row loads, and
    fails when none does; min_rows: 0 judges it by max_pct again."""
    threshold = lambda report, ds: accounting.quarantine_threshold(  # noqa: E731
        Scope("raw.shop_orders", "_partition_date", DAY), ds, report
    )
    drop(landing, HEADER + "1,2024-03-01,a,1,\n2,2024-03-01,a,lots,\n")
    result = threshold(load(con, landing), shop())
    assert result.passed and "1 of 2 rows quarantined (under min_rows 20: fails only if none loaded)" in (
        result.partitions[0].detail
    )
    strict = shop(quarantine={"max_pct": 5, "min_rows": 0})
    assert not threshold(load(con, landing, strict), strict).passed
    drop(landing, HEADER + "1,2024-03-01,a,many,\n2,2024-03-01,a,lots,\n")
    assert not threshold(load(con, landing), shop()).passed


def test_json_array_where_an_object_was_expected(con, landing):
    ds = shop(source={"type": "files", "format": "ndjson", "path": "shop/{date}.ndjson"})
    (landing / "shop" / "2024-03-01.ndjson").write_text('{"order_id": 1}\n[1, "2024-03-01"]\n')
    with pytest.raises(ContractError, match="shop/2024-03-01.ndjson"):
        load_dataset(con, ds, landing, "run", DAY)


def test_file_replaced_after_it_was_loaded(con, landing):
    drop(landing, HEADER + "1,2024-03-01,a,1,\n2,2024-03-01,b,-1,\n")
    load(con, landing)
    assert raw_ids(con) == [1] and len(quarantined(con)) == 1
    drop(landing, HEADER + "1,2024-03-01,a,1,\n2,2024-03-01,b,2,\n3,2024-03-01,c,3,\n")
    load(con, landing)
    assert raw_ids(con) == [1, 2, 3] and quarantined(con) == []


# --------------------------------------------------------------------------- HTTP and Postgres


def test_http_500_mid_pagination_fails_and_writes_nothing(con, tmp_path, monkeypatch):
    from sources.test_http_source import Api, dataset

    api = Api()
    monkeypatch.setenv("SHOP_API_TOKEN", api.token)
    try:
        api.faults = {("page", 3): [500] * 10}
        with pytest.raises(Exception, match="HTTP 500"):
            load_dataset(con, dataset(api, "page"), None, "run")
    finally:
        api.close()
    assert not warehouse.table_exists(con, "raw.readings")


def test_postgres_row_updated_twice_within_the_lag(con, postgres, monkeypatch):
    """One row, updated twice between two loads (inside the lag window): loaded once, latest values."""
    from datetime import datetime, timedelta

    from sources.test_postgres_source import T0, incremental

    for key, value in postgres.env("SHOP").items():
        monkeypatch.setenv(key, value)
    conn = postgres.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("drop table if exists orders_twice")
        cur.execute(
            "create table orders_twice (id int primary key, amount numeric(10,2), status text, "
            "updated_at timestamp not null, order_day date not null)"
        )
        cur.execute("insert into orders_twice values (1, 1, 'open', %s, %s)", (T0, date(2024, 5, 1)))
    load_dataset(con, incremental("orders_twice"), None, "run-1")
    with conn.cursor() as cur:
        for minutes, status in ((5, "paid"), (6, "shipped")):
            cur.execute(
                "update orders_twice set status = %s, updated_at = %s", (status, T0 + timedelta(minutes=minutes))
            )
    report = load_dataset(con, incremental("orders_twice"), None, "run-2")
    conn.close()
    assert (report.rows_read, report.metadata["rows_updated"]) == (1, 1)
    assert con.execute("select status, updated_at from raw.shop_orders").fetchall() == [
        ("shipped", datetime(2024, 5, 1, 12, 6))
    ]
