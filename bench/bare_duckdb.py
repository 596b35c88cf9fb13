"""Baseline (b): the spine's loads and transforms in one bare DuckDB process, no Dagster, no dbt.

    python bench/bare_duckdb.py LANDING_DIR WAREHOUSE_FILE

Same inputs, same outputs as the platform (raw tables with load columns, typed and deduplicated
staging, fct_order_lines, mart_revenue_daily and the dimensions); no tests, no metadata.
Prints the elapsed seconds.
"""

import sys
import time

import duckdb

SNAPSHOTS = {
    "customer": "c_custkey",
    "part": "p_partkey",
    "supplier": "s_suppkey",
    "partsupp": "ps_partkey, ps_suppkey",
    "nation": "n_nationkey",
    "region": "r_regionkey",
}


def main(landing: str, path: str) -> float:
    start = time.perf_counter()
    con = duckdb.connect(path)
    root = f"{landing}/tpch"
    con.execute("create schema raw; create schema staging; create schema marts")
    for table in ("orders", "lineitem"):
        con.execute(
            f"""create table raw.tpch_{table} as
                select * exclude (filename), filename as _source_file,
                       cast(regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})') as date)
                           as _partition_date,
                       now() as _loaded_at, 'bare' as _run_id
                from read_parquet('{root}/{table}/*.parquet', filename = true)"""
        )
    for table, key in SNAPSHOTS.items():
        con.execute(
            f"""create table raw.tpch_{table} as
                select *, '{table}.parquet' as _source_file, now() as _loaded_at, 'bare' as _run_id
                from read_parquet('{root}/{table}/{table}.parquet')"""
        )
        con.execute(
            f"""create table staging.stg_tpch__{table} as select * from raw.tpch_{table}
                qualify row_number() over (partition by {key} order by _loaded_at desc) = 1"""
        )
    con.execute(
        """create table staging.stg_tpch__orders as
           select o_orderkey as order_key, o_custkey as customer_key, o_orderstatus as order_status,
                  o_totalprice as total_price, _partition_date as order_date,
                  o_orderpriority as order_priority,
                  o_clerk as clerk, o_shippriority as ship_priority, o_comment as comment
           from raw.tpch_orders
           qualify row_number() over (
               partition by o_orderkey order by _loaded_at desc, _source_file desc) = 1"""
    )
    con.execute(
        """create table staging.stg_tpch__lineitem as
           select l_orderkey as order_key, l_linenumber as line_number, _partition_date as order_date,
                  l_partkey as part_key, l_suppkey as supplier_key, l_quantity as quantity,
                  l_extendedprice as extended_price, l_discount as discount, l_tax as tax,
                  l_returnflag as return_flag, l_linestatus as line_status, l_shipdate as ship_date,
                  l_commitdate as commit_date, l_receiptdate as receipt_date,
                  l_shipinstruct as ship_instructions, l_shipmode as ship_mode, l_comment as comment
           from raw.tpch_lineitem
           qualify row_number() over (
               partition by l_orderkey, l_linenumber order by _loaded_at desc, _source_file desc) = 1"""
    )
    con.execute(
        """create table marts.dim_customer as
           select c.c_custkey as customer_key, c.c_name as name, c.c_mktsegment as market_segment,
                  c.c_nationkey as nation_key, n.n_name as nation_name, r.r_name as region_name,
                  c.c_acctbal as account_balance
           from staging.stg_tpch__customer c
           left join staging.stg_tpch__nation n on c.c_nationkey = n.n_nationkey
           left join staging.stg_tpch__region r on n.n_regionkey = r.r_regionkey"""
    )
    con.execute(
        """create table marts.dim_supplier as
           select s.s_suppkey as supplier_key, s.s_name as name, s.s_nationkey as nation_key,
                  n.n_name as nation_name, r.r_name as region_name
           from staging.stg_tpch__supplier s
           left join staging.stg_tpch__nation n on s.s_nationkey = n.n_nationkey
           left join staging.stg_tpch__region r on n.n_regionkey = r.r_regionkey"""
    )
    con.execute(
        """create table marts.dim_part as
           select p_partkey as part_key, p_name as name, p_brand as brand, p_type as type, p_size as size,
                  p_container as container, p_retailprice as retail_price
           from staging.stg_tpch__part"""
    )
    con.execute(
        """create table marts.fct_order_lines as
           select l.order_key, l.line_number, l.order_date, o.customer_key, l.part_key, l.supplier_key,
                  l.quantity, l.extended_price, l.discount, l.tax, l.return_flag, l.line_status, l.ship_date,
                  l.commit_date, l.receipt_date, l.ship_mode, o.order_priority, o.order_status,
                  o.ship_priority, l.extended_price * (1 - l.discount) as net_revenue
           from staging.stg_tpch__lineitem l
           left join staging.stg_tpch__orders o on l.order_key = o.order_key"""
    )
    con.execute(
        """create table marts.mart_revenue_daily as
           select order_date, sum(net_revenue) as revenue, count(distinct order_key) as order_count,
                  count(distinct customer_key) as customer_count, count(*) as line_count,
                  cast(sum(net_revenue) / count(distinct order_key) as decimal(18, 4))
                      as average_order_value
           from marts.fct_order_lines group by order_date"""
    )
    con.close()
    return time.perf_counter() - start


if __name__ == "__main__":
    print(f"{main(sys.argv[1], sys.argv[2]):.3f}")
