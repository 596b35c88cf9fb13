"""The demo source: TPC-H laid out as an operational system would drop it in a landing zone.

``tpchgen-cli`` (https://github.com/clflushopt/tpchgen-rs, byte-compatible with the TPC-H ``dbgen``)
writes one Parquet file per table. This module splits the two event tables by order date and
copies the six reference tables as snapshots::

    <landing>/tpch/orders/orders_YYYY-MM-DD.parquet      one file per order date (columns o_*)
    <landing>/tpch/lineitem/lineitem_YYYY-MM-DD.parquet  the line items of that day's orders (l_*)
    <landing>/tpch/<table>/<table>.parquet               customer, part, supplier, partsupp,
                                                         nation, region (full snapshots)
    <landing>/tpch/customer_snapshots/snapshot_date=YYYY-MM-DD/customer.parquet
                                                         the customer table as the source showed it
                                                         on each of the last 28 order dates
    <landing>/tpch/_manifest.json                        scale factor, generator, layout, file count

Every day from 1992-01-01 to 1998-08-02 gets a file, an empty one (with the schema) when no order
falls on it: an empty day is data, a missing file is an error. The order-date range comes from the
TPC-H specification 2.18, clause 4.2.3 (O_ORDERDATE is uniform in [STARTDATE, ENDDATE - 151 days],
STARTDATE = 1992-01-01, ENDDATE = 1998-12-31).

The daily customer snapshots feed the SCD Type 2 history (``tpch_customer_snapshots``): a seeded
3% of customers (:func:`customer_snapshot_sql`) had another market segment, or an account balance
250.00 lower, before a day of their own within the window; from that day on they show TPC-H's
values. The last snapshot is TPC-H's customer table exactly, so the official answers still hold.

Generation is idempotent: when the manifest names the requested scale factor and the current
layout version (:data:`LAYOUT`), nothing is done.
Otherwise the new layout is built in a temporary folder beside the target and swapped in with
renames, so a crash leaves either the old or the new layout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

FIRST_ORDER_DATE = date(1992, 1, 1)
LAST_ORDER_DATE = date(1998, 8, 2)
DAILY_TABLES = ("orders", "lineitem")
SNAPSHOT_TABLES = ("customer", "part", "supplier", "partsupp", "nation", "region")
MANIFEST = "_manifest.json"
#: The landing layout's version; an older layout is generated again (2: customer snapshots).
LAYOUT = 2
#: The customer snapshots: one per order date, for the last ``CUSTOMER_SNAPSHOT_DAYS`` order dates.
CUSTOMER_SNAPSHOT_DAYS = 28
MARKET_SEGMENTS = ("AUTOMOBILE", "BUILDING", "FURNITURE", "HOUSEHOLD", "MACHINERY")


def customer_snapshot_days() -> list[date]:
    """The days with a customer snapshot: the last :data:`CUSTOMER_SNAPSHOT_DAYS` order dates."""
    return order_dates()[-CUSTOMER_SNAPSHOT_DAYS:]


def customer_snapshot_file(root: Path, day: date) -> Path:
    """Path of the customer snapshot of ``day`` (a hive layout: the folder names the day)."""
    return root / "customer_snapshots" / f"snapshot_date={day.isoformat()}" / "customer.parquet"


def customer_snapshot_sql(customer_parquet: Path, index: int) -> str:
    """SELECT of the customer table as the source showed it on snapshot day ``index`` (0 = first).

    The seeded changes: customer ``k`` changes when ``k * 2654435761 % 100 < 3`` (Knuth's
    multiplicative hash: about 3%), on snapshot day ``1 + k * 40503 % (days - 1)``. Before that day
    an even ``k`` had the next market segment (in :data:`MARKET_SEGMENTS` order), an odd one an
    account balance 250.00 lower. The last day (index ``days - 1``) is TPC-H's table itself.
    """
    segments = "[" + ", ".join(f"'{s}'" for s in MARKET_SEGMENTS) + "]"
    before = f"(c_custkey * 2654435761 % 100 < 3 and {index} < 1 + c_custkey * 40503 % {CUSTOMER_SNAPSHOT_DAYS - 1})"
    return (
        f"select * replace ("
        f"case when {before} and c_custkey % 2 = 0 "
        f"then {segments}[list_position({segments}, c_mktsegment) % {len(MARKET_SEGMENTS)} + 1] "
        f"else c_mktsegment end as c_mktsegment, "
        f"case when {before} and c_custkey % 2 = 1 then c_acctbal - 250.00 else c_acctbal end as c_acctbal) "
        f"from read_parquet('{customer_parquet}') order by c_custkey"
    )


def order_dates() -> list[date]:
    """Every TPC-H order date, 1992-01-01 to 1998-08-02 inclusive (2,406 days)."""
    days = (LAST_ORDER_DATE - FIRST_ORDER_DATE).days + 1
    return [FIRST_ORDER_DATE + timedelta(days=i) for i in range(days)]


def daily_file(root: Path, table: str, day: date) -> Path:
    """Path of ``table``'s drop for ``day`` under the TPC-H landing folder ``root``."""
    return root / table / f"{table}_{day.isoformat()}.parquet"


def snapshot_file(root: Path, table: str) -> Path:
    """Path of ``table``'s snapshot under the TPC-H landing folder ``root``."""
    return root / table / f"{table}.parquet"


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` did: the folder, the scale factor, and whether it wrote anything."""

    root: Path
    scale_factor: float
    generated: bool
    files: int


def read_manifest(root: Path) -> dict | None:
    """The manifest of a complete landing layout under ``root``, or None if there is none."""
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def generate(landing_dir: Path, scale_factor: float, force: bool = False) -> GenerateResult:
    """Generate the TPC-H landing layout under ``landing_dir/tpch`` at ``scale_factor``.

    Args:
        landing_dir: the landing zone root.
        scale_factor: TPC-H scale factor (1 = about 6 M line items, 345 MiB of Parquet).
        force: regenerate even if a complete layout for this scale factor exists.

    Raises:
        subprocess.CalledProcessError: tpchgen-cli failed.
    """
    root = landing_dir / "tpch"
    manifest = read_manifest(root)
    if manifest and manifest.get("scale_factor") == scale_factor and manifest.get("layout") == LAYOUT and not force:
        return GenerateResult(root, scale_factor, False, manifest["files"])

    landing_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".tpch-", dir=landing_dir) as tmp:
        tmp_path = Path(tmp)
        raw = tmp_path / "tpchgen"
        out = tmp_path / "tpch"
        _run_tpchgen(raw, scale_factor)
        files = _lay_out(raw, out)
        manifest = {
            "scale_factor": scale_factor,
            "generator": "tpchgen-cli",
            "layout": LAYOUT,
            "first_order_date": FIRST_ORDER_DATE.isoformat(),
            "last_order_date": LAST_ORDER_DATE.isoformat(),
            "files": files,
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        old = tmp_path / "previous"
        if root.exists():
            root.rename(old)
        out.rename(root)
    return GenerateResult(root, scale_factor, True, files)


def _run_tpchgen(out: Path, scale_factor: float) -> None:
    exe = Path(sys.executable).parent / "tpchgen-cli"
    cmd = [str(exe) if exe.exists() else "tpchgen-cli", "parquet", "-s", str(scale_factor), "-o", str(out)]
    subprocess.run(cmd, check=True, capture_output=True)


def _lay_out(raw: Path, out: Path) -> int:
    """Split the generated tables into the landing layout; return the number of files written."""
    con = duckdb.connect()
    # One file per day: DuckDB closes and later re-opens a partition's file (a second part) once
    # more than `partitioned_write_max_open_files` partitions are open (100 by default, 1.5).
    con.execute(f"set partitioned_write_max_open_files = {len(order_dates()) + 1}")
    split = out.parent / "split"
    split.mkdir(parents=True, exist_ok=True)
    count = 0
    queries = {
        "orders": f"select *, o_orderdate as __day from read_parquet('{raw / 'orders.parquet'}')",
        "lineitem": (
            f"select l.*, o.o_orderdate as __day from read_parquet('{raw / 'lineitem.parquet'}') l "
            f"join read_parquet('{raw / 'orders.parquet'}') o on l.l_orderkey = o.o_orderkey"
        ),
    }
    for table, query in queries.items():
        con.execute(
            f"copy ({query} order by all) to '{split / table}' "
            "(format parquet, partition_by (__day), write_partition_columns false, "
            "filename_pattern 'part_{i}')"
        )
        empty = f"select * exclude (__day) from ({query}) limit 0"
        for day in order_dates():
            target = daily_file(out, table, day)
            target.parent.mkdir(parents=True, exist_ok=True)
            produced = sorted((split / table / f"__day={day.isoformat()}").glob("*.parquet"))
            if len(produced) > 1:
                raise RuntimeError(f"expected one file per day, got {produced}")
            if produced:
                produced[0].rename(target)
            else:
                con.execute(f"copy ({empty}) to '{target}' (format parquet)")
            count += 1
    for table in SNAPSHOT_TABLES:
        target = snapshot_file(out, table)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(raw / f"{table}.parquet", target)
        count += 1
    for index, day in enumerate(customer_snapshot_days()):
        target = customer_snapshot_file(out, day)
        target.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"copy ({customer_snapshot_sql(raw / 'customer.parquet', index)}) to '{target}' (format parquet)")
        count += 1
    con.close()
    return count
