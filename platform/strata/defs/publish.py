"""The published layer: what readers (dashboards, notebooks) query, swapped in after a backfill.

During a multi-run backfill (``STRATA_BACKFILL_CHUNK_DAYS``) the marts fill chunk by chunk, so
``marts.*`` can show new numbers for some days of the range and old ones for the rest. Readers
query ``published.<mart>`` instead. One asset, ``published/<mart>`` for every partitioned dbt
mart, copies the run's window from ``marts`` to ``published``, all marts in one transaction.

It has a single-run backfill policy while the marts may be chunked, and Dagster's backfill
daemon starts a single-run asset only when every partition of its parents in the backfill is
done (verified in ``platform_tests/test_automation.py``). So a backfill of N chunks publishes its
whole range once, at the end, atomically: a reader sees the old range or the new one, never half.
Scheduled and sensor runs publish their day right after the marts, in the same run.
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from strata import warehouse as wh
from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.partitions import window_of
from strata.defs.quality_gate import gate
from strata.defs.resources import Warehouse

PUBLISHED_SCHEMA = "published"


def partitioned_marts(assets: list[dg.AssetsDefinition]) -> dict[dg.AssetKey, str]:
    """``{mart key: window column}`` for every partitioned asset in the ``marts`` group with a window column."""
    found = {}
    for assets_def in assets:
        if assets_def.partitions_def is None:
            continue
        for spec in assets_def.specs:
            column = (spec.metadata or {}).get("window_column")
            if spec.group_name == "marts" and column:
                found[spec.key] = column
    return found


def build_publish_asset(marts: dict[dg.AssetKey, str], partitions_def: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """``published/<name>`` for each mart in ``marts`` (``{key: window column}``), one multi-asset.

    Each run replaces the window's rows of ``published.<name>`` (same columns as the mart) with
    the mart's, for every mart in one transaction. Row counts per published table are metadata
    (``dagster/row_count``: rows of the window, not the table).

    Raises:
        BlockedByChecksError: a mart failed a blocking check on a day of the window.
    """
    specs = [
        dg.AssetSpec(
            dg.AssetKey([PUBLISHED_SCHEMA, key.path[-1]]),
            deps=[key],
            group_name=PUBLISHED_SCHEMA,
            description=f"{key.to_user_string()} as readers see it: replaced after each completed run or backfill.",
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"warehouse.{PUBLISHED_SCHEMA}.{key.path[-1]}", "window_column": column},
        )
        for key, column in marts.items()
    ]

    @dg.multi_asset(
        name="publish_marts",
        specs=specs,
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool=WAREHOUSE_POOL,
        can_subset=True,
    )
    def publish_marts(context: dg.AssetExecutionContext, warehouse: Warehouse):
        window = window_of(context)
        selected = [k for k in marts if dg.AssetKey([PUBLISHED_SCHEMA, k.path[-1]]) in context.selected_asset_keys]
        with warehouse.connect() as con:
            gate(con, [k.to_user_string() for k in selected], window)
            counts = {}
            with wh.transaction(con):
                for key in selected:
                    column = marts[key]
                    source = f"{key.path[0]}.{key.path[-1]}"
                    target = f"{PUBLISHED_SCHEMA}.{key.path[-1]}"
                    select = f"select * from {source} where {wh.window_predicate(column)}"
                    params = [window.start, window.end]
                    wh.create_like(con, target, select, params)
                    wh.delete_where(con, target, wh.window_predicate(column), params)
                    counts[key] = wh.insert_by_name(con, target, select, params)
        for key, rows in counts.items():
            yield dg.MaterializeResult(
                asset_key=dg.AssetKey([PUBLISHED_SCHEMA, key.path[-1]]),
                metadata={"dagster/row_count": rows, "window": f"[{window.start}, {window.end})"},
            )

    return publish_marts
