"""Files sources against a real DuckDB file: CSV quirks, hive layouts, JSON, and contract errors."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import by_value

from strata.errors import ContractError, MissingSourceFileError
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

QUIRKY_CSV = (
    "\ufefforder_id,order_date,customer,amount,note\r\n"  # BOM, Windows line endings
    '1,01/03/2024,"Smith, Jane",19.90,"said ""hi"""\r\n'  # quoted delimiter, escaped quotes
    "2,01/03/2024,NA,NA,\r\n"  # NA and empty as nulls
    "3,01/03/2024,Müller,7.5,ünïcødé\r\n"
)


def dataset(**overrides) -> Dataset:
    spec = {
        "name": "shop_orders",
        "source": {
            "type": "files",
            "format": "csv",
            "path": "shop/{date}.csv",
            "csv": {"null_strings": ["", "NA"], "date_format": "%d/%m/%Y"},
        },
        "partitioning": {"column": "order_date", "start": "2024-03-01"},
        "primary_key": ["order_id"],
        "columns": [
            {"name": "order_id", "type": "BIGINT", "nullable": False},
            {"name": "order_date", "type": "DATE"},
            {"name": "customer", "type": "VARCHAR"},
            {"name": "amount", "type": "DECIMAL(10,2)"},
        ],
    }
    for key, value in overrides.items():
        spec[key] = value
    return Dataset.model_validate(spec)


DAY = PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 1), date(2024, 3, 2))


@pytest.fixture
def landing(tmp_path):
    root = tmp_path / "landing"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "2024-03-01.csv").write_bytes(QUIRKY_CSV.encode("utf-8"))
    return root


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as c:
        yield c


def test_csv_quirks_are_read_faithfully(con, landing):
    report = load_dataset(con, dataset(), landing, "run-1", DAY)
    assert (report.rows_read, report.rows_written, by_value(report.rows_by_partition)) == (3, 3, {date(2024, 3, 1): 3})
    rows = con.execute(
        "select order_id, order_date, customer, amount, note, _source_file, _partition_date "
        "from raw.shop_orders order by 1"
    ).fetchall()
    assert rows == [
        (
            1,
            date(2024, 3, 1),
            "Smith, Jane",
            Decimal("19.90"),
            'said "hi"',
            "shop/2024-03-01.csv",
            date(2024, 3, 1),
        ),
        (2, date(2024, 3, 1), None, None, None, "shop/2024-03-01.csv", date(2024, 3, 1)),
        (3, date(2024, 3, 1), "Müller", Decimal("7.50"), "ünïcødé", "shop/2024-03-01.csv", date(2024, 3, 1)),
    ]
    types = dict(
        con.execute(
            "select column_name, data_type from information_schema.columns where table_name = 'shop_orders'"
        ).fetchall()
    )
    assert types["order_date"] == "DATE" and types["amount"] == "DECIMAL(10,2)" and types["note"] == "VARCHAR"


def test_latin1_and_headerless_csv(con, landing):
    (landing / "shop" / "2024-03-01.csv").write_bytes("7;01/03/2024;Gärtner;3.5\n".encode("latin-1"))
    ds = dataset(
        source={
            "type": "files",
            "format": "csv",
            "path": "shop/{date}.csv",
            "csv": {"delimiter": ";", "header": False, "encoding": "latin-1", "date_format": "%d/%m/%Y"},
        }
    )
    load_dataset(con, ds, landing, "run-1", DAY)
    assert con.execute("select order_id, customer from raw.shop_orders").fetchall() == [(7, "Gärtner")]


def test_rerun_replaces_the_partition(con, landing):
    load_dataset(con, dataset(), landing, "run-1", DAY)
    (landing / "shop" / "2024-03-01.csv").write_text("order_id,order_date,customer,amount\n9,01/03/2024,X,1\n")
    load_dataset(con, dataset(), landing, "run-2", DAY)
    assert con.execute("select order_id, _run_id from raw.shop_orders").fetchall() == [(9, "run-2")]


def test_hive_layout_with_globs(con, tmp_path):
    root = tmp_path / "landing"
    for day, n in (("2024-03-01", 2), ("2024-03-02", 3)):
        folder = root / "events" / f"dt={day}"
        folder.mkdir(parents=True)
        for part in range(2):
            pq.write_table(
                pa.table({"event_id": list(range(n)), "kind": ["click"] * n}), folder / f"part-{part}.parquet"
            )
    ds = Dataset.model_validate(
        {
            "name": "events",
            "source": {
                "type": "files",
                "format": "parquet",
                "path": "events/dt={date}/*.parquet",
                "hive_partitioning": True,
            },
            "partitioning": {"start": "2024-03-01"},
            "columns": [{"name": "event_id", "type": "BIGINT"}],
        }
    )
    report = load_dataset(
        con, ds, root, "r", PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 1), date(2024, 3, 3))
    )
    assert by_value(report.rows_by_partition) == {date(2024, 3, 1): 4, date(2024, 3, 2): 6}
    assert con.execute("select distinct dt::varchar from raw.events order by 1").fetchall() == [
        ("2024-03-01",),
        ("2024-03-02",),
    ]
    assert con.execute("select count(distinct _source_file) from raw.events").fetchone() == (4,)


@pytest.mark.parametrize(
    "fmt, body",
    [
        ("json", '[{"id": 1, "tags": ["a"]}, {"id": 2, "tags": []}]'),
        ("ndjson", '{"id": 1, "tags": ["a"]}\n{"id": 2, "tags": []}\n'),
    ],
)
def test_json_and_ndjson_snapshots(con, tmp_path, fmt, body):
    root = tmp_path / "landing"
    root.mkdir()
    (root / f"items.{fmt}").write_text(body)
    ds = Dataset.model_validate(
        {
            "name": "items",
            "source": {"type": "files", "format": fmt, "path": f"items.{fmt}"},
            "columns": [{"name": "id", "type": "INTEGER"}],
        }
    )
    load_dataset(con, ds, root, "r")
    assert con.execute("select id, len(tags) from raw.items order by 1").fetchall() == [(1, 1), (2, 0)]


def test_append_is_idempotent_per_file(con, tmp_path):
    root = tmp_path / "landing"
    (root / "feed").mkdir(parents=True)
    (root / "feed" / "a.csv").write_text("id\n1\n2\n")
    ds = Dataset.model_validate(
        {
            "name": "feed",
            "source": {"type": "files", "format": "csv", "path": "feed/*.csv"},
            "load": "append",
            "columns": [{"name": "id", "type": "INTEGER"}],
        }
    )
    load_dataset(con, ds, root, "r1")
    (root / "feed" / "b.csv").write_text("id\n3\n")
    load_dataset(con, ds, root, "r2")
    load_dataset(con, ds, root, "r3")
    assert con.execute("select id, _source_file from raw.feed order by 1").fetchall() == [
        (1, "feed/a.csv"),
        (2, "feed/a.csv"),
        (3, "feed/b.csv"),
    ]


def test_merge_upserts_by_primary_key_and_keeps_unchanged_rows(con, tmp_path):
    root = tmp_path / "landing"
    root.mkdir()
    ds = Dataset.model_validate(
        {
            "name": "accounts",
            "source": {"type": "files", "format": "csv", "path": "accounts.csv"},
            "load": "merge",
            "primary_key": ["id"],
            "columns": [{"name": "id", "type": "INTEGER"}, {"name": "plan", "type": "VARCHAR"}],
        }
    )
    (root / "accounts.csv").write_text("id,plan\n1,free\n2,pro\n")
    load_dataset(con, ds, root, "r1")
    (root / "accounts.csv").write_text("id,plan\n2,pro\n1,team\n3,free\n")
    report = load_dataset(con, ds, root, "r2")
    assert (report.metadata["rows_inserted"], report.metadata["rows_updated"]) == (1, 1)
    assert con.execute("select id, plan, _run_id from raw.accounts order by 1").fetchall() == [
        (1, "team", "r2"),
        (2, "pro", "r1"),
        (3, "free", "r2"),
    ]


def test_missing_declared_column_names_the_column_and_file(con, landing):
    (landing / "shop" / "2024-03-01.csv").write_text("order_id,order_date,client,amount\n1,01/03/2024,x,1\n")
    with pytest.raises(ContractError) as info:
        load_dataset(con, dataset(), landing, "r", DAY)
    assert info.value.columns == ["customer"] and "shop/2024-03-01.csv" in str(info.value)


def quarantine(con) -> list[tuple]:
    return con.execute(
        "select _partition_date, _source, _source_row, _rule, _column, _reason, _payload from quarantine.shop_orders "
        "order by _source, _source_row"
    ).fetchall()


def test_value_that_does_not_convert_is_quarantined_with_file_row_and_column(con, landing):
    (landing / "shop" / "2024-03-01.csv").write_text(
        "order_id,order_date,customer,amount\n1,01/03/2024,x,abc\n2,01/03/2024,y,2.5\n"
    )
    report = load_dataset(con, dataset(), landing, "r", DAY)
    assert (report.rows_read, report.rows_written, report.rows_quarantined) == (2, 1, 1)
    assert by_value(report.read_by_partition) == {date(2024, 3, 1): 2} and by_value(
        report.quarantined_by_partition
    ) == {date(2024, 3, 1): 1}
    [(day, source, row, rule, column, reason, payload)] = quarantine(con)
    assert (day, source, row, rule, column) == (date(2024, 3, 1), "shop/2024-03-01.csv", 1, "cast", "amount")
    assert reason == "cast on amount: abc is not DECIMAL(10,2)"
    assert '"amount":"abc"' in payload and '"customer":"x"' in payload
    assert con.execute("select order_id from raw.shop_orders").fetchall() == [(2,)]


def test_row_outside_its_partition_is_quarantined(con, landing):
    (landing / "shop" / "2024-03-01.csv").write_text("order_id,order_date,customer,amount\n1,02/03/2024,x,1\n")
    report = load_dataset(con, dataset(), landing, "r", DAY)
    assert (report.rows_written, report.rows_quarantined) == (0, 1)
    [(_, _, _, rule, column, reason, _)] = quarantine(con)
    assert (rule, column, reason) == (
        "partition",
        "order_date",
        "partition on order_date: 2024-03-02 is outside its file's partition 2024-03-01",
    )


def test_rerun_replaces_the_quarantine_of_the_partition(con, landing):
    (landing / "shop" / "2024-03-01.csv").write_text("order_id,order_date,customer,amount\n1,01/03/2024,x,abc\n")
    load_dataset(con, dataset(), landing, "r1", DAY)
    load_dataset(con, dataset(), landing, "r2", DAY)
    assert [r[:5] for r in quarantine(con)] == [(date(2024, 3, 1), "shop/2024-03-01.csv", 1, "cast", "amount")]
    (landing / "shop" / "2024-03-01.csv").write_text("order_id,order_date,customer,amount\n1,01/03/2024,x,1\n")
    load_dataset(con, dataset(), landing, "r3", DAY)
    assert quarantine(con) == []


def test_missing_day_names_the_expected_path(con, landing):
    with pytest.raises(MissingSourceFileError) as info:
        load_dataset(
            con, dataset(), landing, "r", PartitionWindow.from_dates("daily", "UTC", date(2024, 3, 1), date(2024, 3, 3))
        )
    assert info.value.paths == [landing / "shop" / "2024-03-02.csv"]


def test_registry_yaml_round_trip(tmp_path):
    """The models accept what the analyst writes in YAML (dates as text)."""
    text = yaml.safe_dump({"name": "x", "source": {"type": "files", "format": "csv", "path": "x.csv"}})
    assert Dataset.model_validate(yaml.safe_load(text)).load_strategy == "replace"
