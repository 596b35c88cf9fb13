"""Bad data files: each fails naming the file and the reason, or loads correctly; nothing is lost or misplaced.

Real landing files, a real DuckDB file and the real loader (:func:`strata.loading.load_dataset`).
"""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import by_value

from strata.errors import CorruptSourceFileError, ReservedColumnError
from strata.loading import load_dataset
from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset

DAY1, DAY2 = date(2024, 1, 1), date(2024, 1, 2)
WINDOW = PartitionWindow.from_dates("daily", "UTC", DAY1, date(2024, 1, 3))


def _dataset(fmt: str = "csv", encoding: str = "utf-8", columns=None) -> Dataset:
    source = {"type": "files", "format": fmt, "path": f"people/{{date}}.{fmt}"}
    if fmt == "csv":
        source["csv"] = {"encoding": encoding}
    return Dataset.model_validate(
        {
            "name": "people",
            "source": source,
            "partitioning": {"start": str(DAY1)},
            "columns": columns or [{"name": "id", "type": "BIGINT"}, {"name": "name", "type": "VARCHAR"}],
        }
    )


@pytest.fixture
def landing(tmp_path) -> Path:
    (tmp_path / "landing" / "people").mkdir(parents=True)
    return tmp_path / "landing"


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as c:
        yield c


def _day(landing: Path, day: date, content: str | bytes, fmt: str = "csv") -> Path:
    path = landing / "people" / f"{day}.{fmt}"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("column", ["_partition_date", "_loaded_at", "_source_file"])
def test_a_source_column_named_like_a_load_column_is_refused_naming_the_file(con, landing, column):
    _day(landing, DAY1, "id,name\n1,a\n")
    bad = _day(landing, DAY2, f"id,name,{column}\n2,b,1999-01-01\n")
    with pytest.raises(ReservedColumnError, match=column) as info:
        load_dataset(con, _dataset(), landing, "r1", WINDOW)
    assert bad.name in str(info.value)
    assert con.execute("select count(*) from duckdb_tables() where table_name = 'people'").fetchall() == [(0,)]


def test_a_column_that_comes_and_goes_loads_every_day(con, landing):
    _day(landing, DAY1, "id,name\n1,a\n2,b\n")
    _day(landing, DAY2, "id,name,extra\n3,c,x\n")
    report = load_dataset(con, _dataset(), landing, "r1", WINDOW)
    assert by_value(report.read_by_partition) == {DAY1: 2, DAY2: 1}
    assert by_value(report.rows_by_partition) == {DAY1: 2, DAY2: 1}
    assert report.new_columns == ["extra"]


def test_utf8_declared_latin1_is_refused_instead_of_loading_mojibake(con, landing):
    _day(landing, DAY1, "id,name\n1,a\n")
    bad = _day(landing, DAY2, "id,name\n2,Müller\n".encode())
    with pytest.raises(CorruptSourceFileError, match="mojibake") as info:
        load_dataset(con, _dataset(encoding="latin-1"), landing, "r1", WINDOW)
    assert str(bad) in str(info.value)


def test_real_latin1_still_loads(con, landing):
    _day(landing, DAY1, "id,name\n1,Müller\n".encode("latin-1"))
    _day(landing, DAY2, "id,name\n2,b\n")
    load_dataset(con, _dataset(encoding="latin-1"), landing, "r1", WINDOW)
    assert ("Müller",) in con.execute("select name from raw.people").fetchall()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (gzip.compress(b"id,name\n2,b\n"), "gzip-compressed"),
        ("id,name\n2,b\n".encode("utf-16"), r"utf-16 \(byte-order mark\)"),
        (b"PK\x03\x04rest-of-a-zip", "zip archive"),
    ],
    ids=["gzip_named_csv", "utf16_declared_utf8", "zip_named_csv"],
)
def test_content_that_is_not_the_declared_text_is_named(con, landing, content, reason):
    _day(landing, DAY1, "id,name\n1,a\n")
    bad = _day(landing, DAY2, content)
    with pytest.raises(CorruptSourceFileError, match=reason) as info:
        load_dataset(con, _dataset(), landing, "r1", WINDOW)
    assert str(bad) in str(info.value)


def test_a_directory_named_like_a_day_file_is_named(con, landing):
    _day(landing, DAY1, "id,name\n1,a\n")
    (landing / "people" / f"{DAY2}.csv").mkdir()
    with pytest.raises(CorruptSourceFileError, match="is a directory"):
        load_dataset(con, _dataset(), landing, "r1", WINDOW)


def test_a_symlink_out_of_the_landing_zone_is_refused(con, landing, tmp_path):
    _day(landing, DAY1, "id,name\n1,a\n")
    secret = tmp_path / "secret.csv"
    secret.write_text("id,name\n2,host-secret\n")
    (landing / "people" / f"{DAY2}.csv").symlink_to(secret)
    with pytest.raises(CorruptSourceFileError, match="escapes the landing root"):
        load_dataset(con, _dataset(), landing, "r1", WINDOW)
    assert not con.execute("select count(*) from duckdb_tables() where table_name = 'people'").fetchall()[0][0]


def test_a_parquet_column_whose_type_changed_names_the_file(con, landing):
    pq.write_table(pa.table({"id": pa.array([1], pa.int64()), "name": ["a"]}), landing / "people" / f"{DAY1}.parquet")
    bad = landing / "people" / f"{DAY2}.parquet"
    pq.write_table(pa.table({"id": ["2"], "name": ["b"]}), bad)
    with pytest.raises(CorruptSourceFileError, match="column id is string here but int64") as info:
        load_dataset(con, _dataset("parquet"), landing, "r1", WINDOW)
    assert str(bad) in str(info.value)


def test_invalid_utf8_bytes_are_quarantined_not_loaded(con, landing):
    _day(landing, DAY1, b"id,name\n1,a\n2,caf\xe9\n")
    _day(landing, DAY2, "id,name\n3,c\n")
    report = load_dataset(con, _dataset(), landing, "r1", WINDOW)
    assert by_value(report.read_by_partition)[DAY1] == 2
    assert by_value(report.quarantined_by_partition)[DAY1] == 1
    reason = con.execute("select _reason from quarantine.people").fetchall()[0][0]
    assert "unicode" in reason.lower() or "utf" in reason.lower(), reason
