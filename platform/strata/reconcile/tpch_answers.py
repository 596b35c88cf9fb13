"""Official TPC-H answers at scale factor 1 for the queries ``strata verify`` runs.

From the TPC-H specification 2.18 answer set (``answers/q1.out``, ``q3.out``, ``q5.out``,
``q6.out``), generated with the validation substitution parameters. Money is rounded to cents
and averages to 2 decimals there; the warehouse's exact values are rounded the same way
(half up) before comparison. tpchgen-cli reproduces dbgen's data, so a warehouse loaded from
SF 1 must give exactly these rows.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

D = Decimal

SF1_ANSWERS: dict[str, list[tuple]] = {
    # l_returnflag, l_linestatus, sum_qty, sum_base_price, sum_disc_price, sum_charge,
    # avg_qty, avg_price, avg_disc, count_order
    "tpch_q1": [
        (
            "A",
            "F",
            D("37734107.00"),
            D("56586554400.73"),
            D("53758257134.87"),
            D("55909065222.83"),
            D("25.52"),
            D("38273.13"),
            D("0.05"),
            1478493,
        ),
        (
            "N",
            "F",
            D("991417.00"),
            D("1487504710.38"),
            D("1413082168.05"),
            D("1469649223.19"),
            D("25.52"),
            D("38284.47"),
            D("0.05"),
            38854,
        ),
        (
            "N",
            "O",
            D("74476040.00"),
            D("111701729697.74"),
            D("106118230307.61"),
            D("110367043872.50"),
            D("25.50"),
            D("38249.12"),
            D("0.05"),
            2920374,
        ),
        (
            "R",
            "F",
            D("37719753.00"),
            D("56568041380.90"),
            D("53741292684.60"),
            D("55889619119.83"),
            D("25.51"),
            D("38250.85"),
            D("0.05"),
            1478870,
        ),
    ],
    # l_orderkey, revenue, o_orderdate, o_shippriority
    "tpch_q3": [
        (2456423, D("406181.01"), date(1995, 3, 5), 0),
        (3459808, D("405838.70"), date(1995, 3, 4), 0),
        (492164, D("390324.06"), date(1995, 2, 19), 0),
        (1188320, D("384537.94"), date(1995, 3, 9), 0),
        (2435712, D("378673.06"), date(1995, 2, 26), 0),
        (4878020, D("378376.80"), date(1995, 3, 12), 0),
        (5521732, D("375153.92"), date(1995, 3, 13), 0),
        (2628192, D("373133.31"), date(1995, 2, 22), 0),
        (993600, D("371407.46"), date(1995, 3, 5), 0),
        (2300070, D("367371.15"), date(1995, 3, 13), 0),
    ],
    # n_name, revenue
    "tpch_q5": [
        ("INDONESIA", D("55502041.17")),
        ("VIETNAM", D("55295087.00")),
        ("CHINA", D("53724494.26")),
        ("INDIA", D("52035512.00")),
        ("JAPAN", D("45410175.70")),
    ],
    # revenue
    "tpch_q6": [(D("123141078.23"),)],
}


def to_answer_precision(row: tuple) -> tuple:
    """Round every decimal or float of ``row`` to 2 decimals, half up, as the answer set does."""
    out = []
    for value in row:
        if isinstance(value, (Decimal, float)):
            out.append(Decimal(str(value)).quantize(Decimal("0.01"), rounding="ROUND_HALF_UP"))
        else:
            out.append(value)
    return tuple(out)
