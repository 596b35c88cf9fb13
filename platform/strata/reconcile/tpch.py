"""``strata verify`` for TPC-H: the landing files against the warehouse, with bare DuckDB.

Checks (each a query pair, source side over the landing files, warehouse side over the tables):

* rows per table: every raw table, staging model, ``fct_order_lines`` and the dimensions;
* revenue per day: ``mart_revenue_daily`` row by row (revenue, orders, customers, lines, AOV);
* TPC-H Q1, Q3, Q5 and Q6 (TPC-H 2.18 clause 2.4, validation substitution parameters) over the
  source tables, and rewritten over the marts;
* at scale factor 1 over the whole range, the marts' answers against the official TPC-H answer
  set (:mod:`strata.reconcile.tpch_answers`);
* values, not only counts: every column of every raw, staging and mart table, fingerprinted per
  partition (:mod:`strata.reconcile.fingerprint`) against the same columns recomputed from the
  landing files (:data:`LAYERS`); a mismatch names the first differing day and column.

The source side never touches the warehouse: it reads the Parquet drops, so a loading or
transformation bug cannot hide on both sides. With a window ``[start, end)`` both sides are
restricted to the orders of those days (and their line items); snapshots are compared whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from strata import warehouse as wh
from strata.partition_window import PartitionWindow
from strata.reconcile.compare import Mismatch, compare_keyed, compare_rows
from strata.reconcile.fingerprint import fingerprints, first_difference
from strata.reconcile.tpch_answers import SF1_ANSWERS, to_answer_precision
from strata.registry.issues import RegistryError
from strata.registry.loader import load_registry
from strata.registry.models import Dataset
from strata.settings import ASSETS_CONFIG_DIR
from strata.sources.files import landing_path

# (name, source SQL over tables named like TPC-H, warehouse SQL over the marts, key width)
QUERIES: list[tuple[str, str, str, int]] = [
    (
        "tpch_q1",
        """select l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice),
                  sum(l_extendedprice * (1 - l_discount)),
                  sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)),
                  avg(l_quantity), avg(l_extendedprice), avg(l_discount), count(*)
           from lineitem where l_shipdate <= date '1998-12-01' - interval 90 day
           group by 1, 2 order by 1, 2""",
        """select return_flag, line_status, sum(quantity), sum(extended_price),
                  sum(net_revenue), sum(net_revenue * (1 + tax)),
                  avg(quantity), avg(extended_price), avg(discount), count(*)
           from fct_order_lines where ship_date <= date '1998-12-01' - interval 90 day
           group by 1, 2 order by 1, 2""",
        2,
    ),
    (
        "tpch_q3",
        """select l_orderkey, sum(l_extendedprice * (1 - l_discount)) as revenue, o_orderdate, o_shippriority
           from customer, orders, lineitem
           where c_mktsegment = 'BUILDING' and c_custkey = o_custkey and l_orderkey = o_orderkey
             and o_orderdate < date '1995-03-15' and l_shipdate > date '1995-03-15'
           group by l_orderkey, o_orderdate, o_shippriority
           order by revenue desc, o_orderdate, l_orderkey limit 10""",
        """select f.order_key, sum(f.net_revenue) as revenue, f.order_date, f.ship_priority
           from fct_order_lines f join dim_customer c on f.customer_key = c.customer_key
           where c.market_segment = 'BUILDING'
             and f.order_date < date '1995-03-15' and f.ship_date > date '1995-03-15'
           group by f.order_key, f.order_date, f.ship_priority
           order by revenue desc, f.order_date, f.order_key limit 10""",
        1,
    ),
    (
        "tpch_q5",
        """select n_name, sum(l_extendedprice * (1 - l_discount)) as revenue
           from customer, orders, lineitem, supplier, nation, region
           where c_custkey = o_custkey and l_orderkey = o_orderkey and l_suppkey = s_suppkey
             and c_nationkey = s_nationkey and s_nationkey = n_nationkey and n_regionkey = r_regionkey
             and r_name = 'ASIA' and o_orderdate >= date '1994-01-01' and o_orderdate < date '1995-01-01'
           group by n_name order by revenue desc, n_name""",
        """select s.nation_name, sum(f.net_revenue) as revenue
           from fct_order_lines f
           join dim_customer c on f.customer_key = c.customer_key
           join dim_supplier s on f.supplier_key = s.supplier_key
           where c.nation_key = s.nation_key and s.region_name = 'ASIA'
             and f.order_date >= date '1994-01-01' and f.order_date < date '1995-01-01'
           group by s.nation_name order by revenue desc, s.nation_name""",
        1,
    ),
    (
        "tpch_q6",
        """select sum(l_extendedprice * l_discount) as revenue from lineitem
           where l_shipdate >= date '1994-01-01' and l_shipdate < date '1995-01-01'
             and l_discount between 0.05 and 0.07 and l_quantity < 24""",
        """select sum(extended_price * discount) as revenue from fct_order_lines
           where ship_date >= date '1994-01-01' and ship_date < date '1995-01-01'
             and discount between 0.05 and 0.07 and quantity < 24""",
        0,
    ),
]

REVENUE_SOURCE = """
    select o_orderdate, sum(l_extendedprice * (1 - l_discount)), count(distinct o_orderkey),
           count(distinct o_custkey), count(*),
           cast(sum(l_extendedprice * (1 - l_discount)) / count(distinct o_orderkey) as decimal(18, 4))
    from lineitem join orders on l_orderkey = o_orderkey group by 1"""
REVENUE_WAREHOUSE = """
    select order_date, revenue, order_count, customer_count, line_count, average_order_value
    from mart_revenue_daily"""

_TABLES = ("orders", "lineitem", "customer", "part", "supplier", "partsupp", "nation", "region")
# warehouse table -> (source table whose row count it must have, its partition column or None)
ROW_COUNTS: dict[str, tuple[str, str | None]] = {
    **{f"raw.tpch_{t}": (t, "_partition_date" if t in ("orders", "lineitem") else None) for t in _TABLES},
    **{f"staging.stg_tpch__{t}": (t, "order_date" if t in ("orders", "lineitem") else None) for t in _TABLES},
    "marts.fct_order_lines": ("lineitem", "order_date"),
    "marts.dim_customer": ("customer", None),
    "marts.dim_supplier": ("supplier", None),
    "marts.dim_part": ("part", None),
}
MART_VIEWS = {  # the marts the queries read, and their partition column
    "fct_order_lines": "order_date",
    "mart_revenue_daily": "order_date",
    "dim_customer": None,
    "dim_supplier": None,
}


#: Every warehouse table, as the landing files say it must be: (a query over the landing views with
#: the warehouse table's column names, the table's partition column or None). Partitioned landing
#: views carry ``__day``, the date of the file a row came from; both sides are grouped by it.
LAYERS: dict[str, tuple[str, str | None]] = {
    **{f"raw.tpch_{t}": (f"select * from {t}", "_partition_date") for t in ("orders", "lineitem")},
    **{
        f"raw.tpch_{t}": (f"select * from {t}", None)
        for t in ("customer", "part", "supplier", "partsupp", "nation", "region")
    },
    "staging.stg_tpch__orders": (
        """select o_orderkey as order_key, o_custkey as customer_key, o_orderstatus as order_status,
                  o_totalprice as total_price, __day as order_date, o_orderpriority as order_priority,
                  o_clerk as clerk, o_shippriority as ship_priority, o_comment as comment, __day
           from orders""",
        "order_date",
    ),
    "staging.stg_tpch__lineitem": (
        """select l_orderkey as order_key, l_linenumber as line_number, __day as order_date,
                  l_partkey as part_key, l_suppkey as supplier_key, l_quantity as quantity,
                  l_extendedprice as extended_price, l_discount as discount, l_tax as tax,
                  l_returnflag as return_flag, l_linestatus as line_status, l_shipdate as ship_date,
                  l_commitdate as commit_date, l_receiptdate as receipt_date,
                  l_shipinstruct as ship_instructions, l_shipmode as ship_mode, l_comment as comment, __day
           from lineitem""",
        "order_date",
    ),
    "staging.stg_tpch__customer": (
        """select c_custkey as customer_key, c_name as name, c_address as address, c_nationkey as nation_key,
                  c_phone as phone, c_acctbal as account_balance, c_mktsegment as market_segment,
                  c_comment as comment
           from customer""",
        None,
    ),
    "staging.stg_tpch__part": (
        """select p_partkey as part_key, p_name as name, p_mfgr as manufacturer, p_brand as brand, p_type as type,
                  p_size as size, p_container as container, p_retailprice as retail_price, p_comment as comment
           from part""",
        None,
    ),
    "staging.stg_tpch__supplier": (
        """select s_suppkey as supplier_key, s_name as name, s_address as address, s_nationkey as nation_key,
                  s_phone as phone, s_acctbal as account_balance, s_comment as comment
           from supplier""",
        None,
    ),
    "staging.stg_tpch__partsupp": (
        """select ps_partkey as part_key, ps_suppkey as supplier_key, ps_availqty as available_quantity,
                  ps_supplycost as supply_cost, ps_comment as comment
           from partsupp""",
        None,
    ),
    "staging.stg_tpch__nation": (
        "select n_nationkey as nation_key, n_name as name, n_regionkey as region_key, n_comment as comment from nation",
        None,
    ),
    "staging.stg_tpch__region": (
        "select r_regionkey as region_key, r_name as name, r_comment as comment from region",
        None,
    ),
    "marts.fct_order_lines": (
        """select l_orderkey as order_key, l_linenumber as line_number, l.__day as order_date,
                  o_custkey as customer_key, l_partkey as part_key, l_suppkey as supplier_key,
                  l_quantity as quantity, l_extendedprice as extended_price, l_discount as discount,
                  l_tax as tax, l_returnflag as return_flag, l_linestatus as line_status,
                  l_shipdate as ship_date, l_commitdate as commit_date, l_receiptdate as receipt_date,
                  l_shipmode as ship_mode, o_orderpriority as order_priority, o_orderstatus as order_status,
                  o_shippriority as ship_priority, l_extendedprice * (1 - l_discount) as net_revenue,
                  -- the segment of the order date's snapshot, or of the first one for earlier orders
                  (select s.c_mktsegment from customer_snapshots s
                   where s.c_custkey = o.o_custkey
                     and s.snapshot_date = greatest(l.__day, (select min(snapshot_date) from customer_snapshots))
                  ) as customer_market_segment_at_order,
                  l.__day
           from lineitem l left join orders o on l_orderkey = o_orderkey""",
        "order_date",
    ),
    "marts.dim_customer": (
        """select c_custkey as customer_key, c_name as name, c_mktsegment as market_segment,
                  c_nationkey as nation_key, n_name as nation_name, r_name as region_name,
                  c_acctbal as account_balance
           from customer left join nation on c_nationkey = n_nationkey
           left join region on n_regionkey = r_regionkey""",
        None,
    ),
    "marts.dim_supplier": (
        """select s_suppkey as supplier_key, s_name as name, s_nationkey as nation_key,
                  n_name as nation_name, r_name as region_name
           from supplier left join nation on s_nationkey = n_nationkey
           left join region on n_regionkey = r_regionkey""",
        None,
    ),
    "marts.dim_part": (
        """select p_partkey as part_key, p_name as name, p_brand as brand, p_type as type, p_size as size,
                  p_container as container, p_retailprice as retail_price
           from part""",
        None,
    ),
}


def tpch_datasets(config_dirs: list[Path] | None = None) -> list[Dataset]:
    """The registered raw datasets of the eight TPC-H tables and the demo's customer snapshots.

    ``tpch_<table>`` in ``assets_config/``; not the snapshots' history (a derived dataset).

    Raises:
        RegistryError: a TPC-H dataset file has errors.
    """
    registry = load_registry(config_dirs or [ASSETS_CONFIG_DIR])
    broken = [b for b in registry.broken if b.name.startswith("tpch_") or "tpch" in b.path.parts]
    if broken:
        raise RegistryError([i for b in broken for i in b.issues])
    wanted = (*_TABLES, "customer_snapshots")  # the snapshots: for the point-in-time segment of each order
    return [ds for name, ds in sorted(registry.datasets.items()) if name.removeprefix("tpch_") in wanted]


@dataclass
class VerifyReport:
    """The outcome of :func:`verify`: checks run and every mismatch found."""

    checks: list[str]
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        """True when no check found a difference."""
        return not self.mismatches


def _window_sql(column: str, window: PartitionWindow | None) -> str:
    return "true" if window is None else window.predicate(column, "date")


def source_views(
    con: duckdb.DuckDBPyConnection, datasets: Sequence[Dataset], landing_dir: Path, window: PartitionWindow | None
) -> None:
    """Create one view per TPC-H table (``orders``, ``lineitem`` ...) over its landing files.

    With a window, daily tables read only the window's files.
    """
    for ds in datasets:
        table = ds.name.removeprefix("tpch_")
        if ds.partitioning and window is not None:
            paths = [str(landing_dir / landing_path(ds.source.path, p)) for p in window.partitions]
        else:
            paths = [str(landing_dir / ds.source.path.replace("{date}", "*"))]
        listing = ", ".join(wh.literal(p) for p in paths)
        if ds.partitioning:  # the file's own date: the partition its rows belong to
            con.execute(
                f"create or replace temp view {table} as select * exclude (filename), "
                f"regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1)::date as __day "
                f"from read_parquet([{listing}], filename = true)"
            )
        else:
            con.execute(f"create or replace temp view {table} as select * from read_parquet([{listing}])")


def _compare_values(
    con: duckdb.DuckDBPyConnection, table: str, source_sql: str, column: str | None, window: PartitionWindow | None
) -> list[Mismatch]:
    """Per-partition, per-column fingerprints of ``wh.<table>`` against ``source_sql``."""
    schema, name = table.split(".")
    columns = [(c, t) for c, t in wh.columns(con, table, catalog="wh") if not c.startswith("_")]
    if not columns:
        return []  # a missing table is reported by its row count
    expected = fingerprints(
        con,
        f"({source_sql}) as s",
        columns,
        "__day" if column else None,
        _window_sql("__day", window) if column else "true",
    )
    actual = fingerprints(
        con,
        f"wh.{wh.quote(schema)}.{wh.quote(name)}",
        columns,
        column,
        _window_sql(column, window) if column else "true",
    )
    diff = first_difference(table, [c for c, _ in columns], expected, actual)
    if diff is None:
        return []
    where = f"first differing day {diff.first_day}, {diff.days:,} day(s) in all" if diff.first_day else "whole table"
    return [
        Mismatch(f"values:{table}", where, "the values of the landing files", f"different {', '.join(diff.columns)}")
    ]


def warehouse_views(con: duckdb.DuckDBPyConnection, window: PartitionWindow | None) -> None:
    """Create views named like the marts over the attached warehouse ``wh``, restricted to the window."""
    for name, column in MART_VIEWS.items():
        where = _window_sql(column, window) if column else "true"
        con.execute(f"create or replace temp view {name} as select * from wh.marts.{name} where {where}")


def verify(
    datasets: Sequence[Dataset],
    landing_dir: Path,
    warehouse_path: wh.Location,
    window: PartitionWindow | None = None,
    scale_factor: float | None = None,
) -> VerifyReport:
    """Recompute every check from ``landing_dir`` and compare with the warehouse.

    ``warehouse_path`` is a DuckDB file, or a lake (``Settings.warehouse``).

    The warehouse is attached read-only. ``window`` restricts both sides to those order dates.
    With ``scale_factor`` 1 and no window, the official TPC-H answers are checked too.

    Raises:
        duckdb.IOException: the warehouse file is missing or locked by a writer.
    """
    con = duckdb.connect()
    wh.attach(con, warehouse_path, "wh", read_only=True)
    source_views(con, datasets, landing_dir, window)
    checks, mismatches = [], []

    for table, (source, column) in ROW_COUNTS.items():
        name = f"rows:{table}"
        checks.append(name)
        expected = con.execute(f"select count(*) from {source}").fetchall()[0]
        where = _window_sql(column, window) if column else "true"
        try:
            actual = con.execute(f"select count(*) from wh.{table} where {where}").fetchall()[0]
        except duckdb.CatalogException:
            actual = ("missing table",)
        mismatches += compare_rows(name, [expected], [actual], key_width=0)

    try:
        warehouse_views(con, window)
    except duckdb.CatalogException as err:
        con.close()
        return VerifyReport(checks, [*mismatches, Mismatch("marts", "tables", "present", str(err).splitlines()[0])])

    checks.append("revenue_per_day")
    expected = {r[0]: r[1:] for r in con.execute(REVENUE_SOURCE).fetchall()}
    actual = {r[0]: r[1:] for r in con.execute(REVENUE_WAREHOUSE).fetchall()}
    mismatches += compare_keyed("revenue_per_day", expected, actual)

    for table, (source_sql, column) in LAYERS.items():
        checks.append(f"values:{table}")
        mismatches += _compare_values(con, table, source_sql, column, window)

    official = SF1_ANSWERS if scale_factor == 1 and window is None else {}
    for name, source_sql, mart_sql, key_width in QUERIES:
        checks.append(name)
        mart_rows = con.execute(mart_sql).fetchall()
        mismatches += compare_rows(name, con.execute(source_sql).fetchall(), mart_rows, key_width)
        if name in official:
            checks.append(f"{name}:official_sf1")
            rounded = [to_answer_precision(r) for r in mart_rows]
            mismatches += compare_rows(f"{name}:official_sf1", official[name], rounded, key_width)
    con.close()
    return VerifyReport(checks, mismatches)
