"""The TPC-H raw datasets of the demo source, as registry specs.

Column names and types are those of TPC-H 2.18 clause 1.4 as written by tpchgen-cli's Parquet
(identifiers BIGINT, integers INTEGER, decimals DECIMAL(15,2), dates DATE, text VARCHAR).
"""

from __future__ import annotations

from datetime import date

from strata.registry.models import Column, DailyPartitioning, Dataset, FilesSource

_DAILY = DailyPartitioning(column=None, start=date(1992, 1, 1), end=date(1998, 8, 2))
_OWNERS = ["team:data-platform"]

_COLUMNS: dict[str, list[tuple[str, str]]] = {
    "orders": [
        ("o_orderkey", "BIGINT"),
        ("o_custkey", "BIGINT"),
        ("o_orderstatus", "VARCHAR"),
        ("o_totalprice", "DECIMAL(15,2)"),
        ("o_orderdate", "DATE"),
        ("o_orderpriority", "VARCHAR"),
        ("o_clerk", "VARCHAR"),
        ("o_shippriority", "INTEGER"),
        ("o_comment", "VARCHAR"),
    ],
    "lineitem": [
        ("l_orderkey", "BIGINT"),
        ("l_partkey", "BIGINT"),
        ("l_suppkey", "BIGINT"),
        ("l_linenumber", "INTEGER"),
        ("l_quantity", "DECIMAL(15,2)"),
        ("l_extendedprice", "DECIMAL(15,2)"),
        ("l_discount", "DECIMAL(15,2)"),
        ("l_tax", "DECIMAL(15,2)"),
        ("l_returnflag", "VARCHAR"),
        ("l_linestatus", "VARCHAR"),
        ("l_shipdate", "DATE"),
        ("l_commitdate", "DATE"),
        ("l_receiptdate", "DATE"),
        ("l_shipinstruct", "VARCHAR"),
        ("l_shipmode", "VARCHAR"),
        ("l_comment", "VARCHAR"),
    ],
    "customer": [
        ("c_custkey", "BIGINT"),
        ("c_name", "VARCHAR"),
        ("c_address", "VARCHAR"),
        ("c_nationkey", "BIGINT"),
        ("c_phone", "VARCHAR"),
        ("c_acctbal", "DECIMAL(15,2)"),
        ("c_mktsegment", "VARCHAR"),
        ("c_comment", "VARCHAR"),
    ],
    "part": [
        ("p_partkey", "BIGINT"),
        ("p_name", "VARCHAR"),
        ("p_mfgr", "VARCHAR"),
        ("p_brand", "VARCHAR"),
        ("p_type", "VARCHAR"),
        ("p_size", "INTEGER"),
        ("p_container", "VARCHAR"),
        ("p_retailprice", "DECIMAL(15,2)"),
        ("p_comment", "VARCHAR"),
    ],
    "supplier": [
        ("s_suppkey", "BIGINT"),
        ("s_name", "VARCHAR"),
        ("s_address", "VARCHAR"),
        ("s_nationkey", "BIGINT"),
        ("s_phone", "VARCHAR"),
        ("s_acctbal", "DECIMAL(15,2)"),
        ("s_comment", "VARCHAR"),
    ],
    "partsupp": [
        ("ps_partkey", "BIGINT"),
        ("ps_suppkey", "BIGINT"),
        ("ps_availqty", "INTEGER"),
        ("ps_supplycost", "DECIMAL(15,2)"),
        ("ps_comment", "VARCHAR"),
    ],
    "nation": [
        ("n_nationkey", "BIGINT"),
        ("n_name", "VARCHAR"),
        ("n_regionkey", "BIGINT"),
        ("n_comment", "VARCHAR"),
    ],
    "region": [("r_regionkey", "BIGINT"), ("r_name", "VARCHAR"), ("r_comment", "VARCHAR")],
}

_KEYS = {
    "orders": ["o_orderkey"],
    "lineitem": ["l_orderkey", "l_linenumber"],
    "customer": ["c_custkey"],
    "part": ["p_partkey"],
    "supplier": ["s_suppkey"],
    "partsupp": ["ps_partkey", "ps_suppkey"],
    "nation": ["n_nationkey"],
    "region": ["r_regionkey"],
}


def _dataset(table: str) -> Dataset:
    daily = table in ("orders", "lineitem")
    return Dataset(
        name=f"tpch_{table}",
        description=f"TPC-H {table}, verbatim from the landing zone"
        + (" (one file per order date)." if daily else " (full snapshot)."),
        owners=_OWNERS,
        group="raw",
        tags={"source": "tpch"},
        layer="raw",
        source=FilesSource(
            format="parquet",
            path=f"tpch/{table}/{table}_{{date}}.parquet" if daily else f"tpch/{table}/{table}.parquet",
        ),
        partitioning=_DAILY if daily else None,
        load="overwrite_partition" if daily else "replace",
        primary_key=_KEYS[table],
        columns=[Column(name=n, type=t, nullable=False) for n, t in _COLUMNS[table]],
    )


TPCH_DATASETS: list[Dataset] = [
    _dataset(t)
    for t in ("orders", "lineitem", "customer", "part", "supplier", "partsupp", "nation", "region")
]
