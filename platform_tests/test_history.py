"""SCD Type 2 history of a snapshot dataset (``history: scd2``): real files, real DuckDB.

A change of a tracked column opens a version whose validity starts where the previous one ends;
an untracked change does not; a key missing from a snapshot is closed, not deleted; a day loaded
again, or the days loaded in another order, give the same history.
"""

from __future__ import annotations

import textwrap
from datetime import date
from pathlib import Path

import duckdb
import pytest

from strata import warehouse
from strata.loading import build_derived, load_dataset
from strata.registry.loader import load_registry

SNAPSHOTS = """
name: accounts
source:
  type: files
  format: csv
  path: accounts/snapshot_date=*/accounts.csv
  hive_partitioning: true
load: append
primary_key: [id, snapshot_date]
columns:
  - {name: id, type: BIGINT, nullable: false}
  - {name: name, type: VARCHAR}
  - {name: segment, type: VARCHAR}
  - {name: snapshot_date, type: DATE}
history:
  type: scd2
  key: [id]
  track: [segment]
  snapshot_column: snapshot_date
"""

DAYS = {
    "2024-01-01": "id,name,segment\n1,ann,RETAIL\n2,bob,RETAIL\n3,cy,BANK\n",
    "2024-01-02": "id,name,segment\n1,ann,RETAIL\n2,bob,BANK\n3,cy,BANK\n",  # 2 changes segment
    "2024-01-03": "id,name,segment\n1,annie,RETAIL\n2,bob,BANK\n",  # 1 renamed (untracked), 3 gone
}


@pytest.fixture
def registry(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "accounts.yaml").write_text(textwrap.dedent(SNAPSHOTS))
    registry = load_registry([config])
    assert registry.ok, registry.issues
    return registry


def land(root: Path, day: str, text: str) -> None:
    folder = root / "accounts" / f"snapshot_date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.csv").write_text(text)


def history(con) -> list[tuple]:
    return con.execute(
        "select id, version, name, segment, valid_from, valid_to, is_current "
        "from staging.accounts_history order by id, version"
    ).fetchall()


def build(con, registry, landing: Path) -> None:
    load_dataset(con, registry.datasets["accounts"], landing, "run")
    build_derived(con, registry.datasets["accounts_history"])


def test_versions_are_adjacent_and_a_vanished_key_is_closed(registry, tmp_path):
    assert registry.dependencies["accounts_history"] == ["raw.accounts"]
    landing = tmp_path / "landing"
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        for day, text in DAYS.items():
            land(landing, day, text)
            build(con, registry, landing)
        assert history(con) == [
            (1, 1, "annie", "RETAIL", date(2024, 1, 1), None, True),
            (2, 1, "bob", "RETAIL", date(2024, 1, 1), date(2024, 1, 2), False),
            (2, 2, "bob", "BANK", date(2024, 1, 2), None, True),
            (3, 1, "cy", "BANK", date(2024, 1, 1), date(2024, 1, 3), False),
        ]
        before = warehouse.fingerprint(con, "staging.accounts_history")
        # the same day dropped again and re-run: nothing changes
        land(landing, "2024-01-02", DAYS["2024-01-02"])
        build(con, registry, landing)
        assert warehouse.fingerprint(con, "staging.accounts_history") == before
        # the key comes back: a new version, the gap stays a gap
        land(landing, "2024-01-04", "id,name,segment\n1,annie,RETAIL\n2,bob,BANK\n3,cy,BANK\n")
        build(con, registry, landing)
        assert history(con)[-2:] == [
            (3, 1, "cy", "BANK", date(2024, 1, 1), date(2024, 1, 3), False),
            (3, 2, "cy", "BANK", date(2024, 1, 4), None, True),
        ]


def test_the_days_loaded_in_another_order_give_the_same_history(registry, tmp_path):
    in_order, reversed_order = tmp_path / "a", tmp_path / "b"
    with duckdb.connect(str(tmp_path / "a.duckdb")) as a, duckdb.connect(str(tmp_path / "b.duckdb")) as b:
        for day, text in DAYS.items():
            land(in_order, day, text)
        build(a, registry, in_order)
        for day, text in reversed(DAYS.items()):
            land(reversed_order, day, text)
            build(b, registry, reversed_order)
        assert history(a) == history(b)


def test_history_is_declared_with_the_snapshots_columns(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    broken = SNAPSHOTS.replace("track: [segment]", "track: [segmnt]").replace("load: append", "load: replace")
    broken = broken.replace("primary_key: [id, snapshot_date]", "primary_key: [id]")
    (config / "accounts.yaml").write_text(textwrap.dedent(broken))
    messages = " | ".join(i.message for i in load_registry([config]).issues)
    assert "'segmnt' is not among the declared columns" in messages
    assert "replace keeps only the last" in messages
    assert "includes its snapshot column" in messages


def test_history_refuses_columns_it_adds(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "accounts.yaml").write_text(
        textwrap.dedent(SNAPSHOTS).replace("  - {name: name, type: VARCHAR}", "  - {name: version, type: VARCHAR}")
    )
    messages = " | ".join(i.message for i in load_registry([config]).issues)
    assert "'version' is a column the history adds" in messages
