"""The published layer: what readers (dashboards, notebooks) query, swapped in after each update.

During a multi-run backfill (``STRATA_BACKFILL_CHUNK_DAYS``) the marts fill chunk by chunk, so
``marts.*`` can show new numbers for some days of the range and old ones for the rest. Readers
query ``published.<mart>`` instead: the marts are the shadow, and publishing is the swap.

``published/<mart>`` (one per partitioned dbt mart, all in one multi-asset) is **unpartitioned**
and depends on every partition of its mart. So:

* in a backfill, Dagster's backfill daemon starts it only when every targeted partition of the
  marts is materialized, once, after the last chunk (a child whose mapping is not the identity
  never joins its parents' chunk runs); ``platform_tests/e2e/test_production.py`` checks it on a
  real daemon;
* after a scheduled or sensor run, declarative automation publishes (an unpartitioned child of
  partitioned parents; :mod:`strata.defs.automation`).

A publish points each ``published.<mart>`` at the mart as it is now, all marts in one
transaction (:func:`strata.warehouse.publish`): a reader sees the previous version or the new
one, never half. On a DuckDB file that is a full copy (about 2 s per 6 M rows here); on a lake it
is a view of the mart at the lake's current snapshot (time travel), which copies nothing. A mart
that is not built yet is skipped (the materialization says so). It refuses while any partition of
a mart has a failed blocking check (:mod:`strata.defs.quality_gate`).
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from strata import warehouse as wh
from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.openlineage import Outcome, StepLineage, warehouse_namespace
from strata.defs.quality_gate import gate
from strata.defs.resources import Warehouse
from strata.settings import Settings

PUBLISHED_SCHEMA = "published"


def partitioned_marts(assets: list[dg.AssetsDefinition]) -> list[dg.AssetKey]:
    """The keys of every partitioned asset in the ``marts`` schema (dbt marts and SQL-derived registry marts).

    Judged by the key's schema, not the Dagster group: an analyst's mart may sit in its own group.
    """
    return [
        spec.key
        for assets_def in assets
        if assets_def.partitions_def is not None
        for spec in assets_def.specs
        if spec.key.path[0] == "marts"
    ]


def published_key(mart: dg.AssetKey) -> dg.AssetKey:
    """``published/<name>`` for ``marts/<name>``."""
    return dg.AssetKey([PUBLISHED_SCHEMA, mart.path[-1]])


def build_publish_asset(marts: list[dg.AssetKey], pool: str = WAREHOUSE_POOL) -> dg.AssetsDefinition:
    """``published/<name>`` for each key in ``marts``: one unpartitioned multi-asset.

    Each run points ``published.<name>`` at ``<mart>`` as it is now, for every selected mart, in
    one transaction (:func:`strata.warehouse.publish`); its steps are in ``pool``.
    Metadata: ``dagster/row_count`` (rows published).

    Raises:
        BlockedByChecksError: a mart failed a blocking check on some partition (nothing is published).
    """
    specs = [
        dg.AssetSpec(
            published_key(key),
            deps=[key],
            group_name=PUBLISHED_SCHEMA,
            description=f"{key.to_user_string()} as readers see it: swapped in after each completed run or backfill.",
            kinds={"duckdb"},
            metadata={"dagster/table_name": f"warehouse.{PUBLISHED_SCHEMA}.{key.path[-1]}"},
        )
        for key in marts
    ]

    @dg.multi_asset(name="publish_marts", specs=specs, pool=pool, can_subset=True)
    def publish_marts(context: dg.AssetExecutionContext, warehouse: Warehouse):
        selected = [k for k in marts if published_key(k) in context.selected_asset_keys]
        namespace = warehouse_namespace(warehouse.location)
        lineage = StepLineage(
            context,
            Settings.from_env(),
            [published_key(k) for k in selected],
            {published_key(k): [(namespace, f"{k.path[0]}.{k.path[-1]}")] for k in selected},
            None,
            warehouse.location,
        )
        lineage.start()
        try:
            with warehouse.connect() as con:
                gate(con, [k.to_user_string() for k in selected], None)
                sources = {}
                for key in selected:
                    source = f"{key.path[0]}.{key.path[-1]}"
                    if wh.table_exists(con, source):
                        sources[key.path[-1]] = source
                    else:
                        context.log.warning(f"{source} is not built yet: nothing to publish")
                published = wh.retrying_conflicts("publishing")(wh.publish)(con, PUBLISHED_SCHEMA, sources)
                schemas = {
                    key: wh.columns(con, f"{PUBLISHED_SCHEMA}.{key.path[-1]}")
                    for key in selected
                    if key.path[-1] in published
                }
        except Exception as err:
            lineage.fail(err)
            raise
        counts = {key: published[key.path[-1]] for key in selected if key.path[-1] in published}
        for key in selected:
            metadata = (
                {"dagster/row_count": counts[key]}
                if key in counts
                else {"dagster/row_count": 0, "note": f"{key.to_user_string()} is not built yet: nothing published"}
            )
            if key in counts:
                # a published table is its mart: each column comes from the mart's column of the same name
                lineage.complete(
                    published_key(key),
                    Outcome(
                        rows=counts[key],
                        table_rows=counts[key],
                        schema=schemas[key],
                        column_lineage={c: [(f"{key.path[0]}.{key.path[-1]}", c)] for c, _ in schemas[key]},
                    ),
                )
            yield dg.MaterializeResult(asset_key=published_key(key), metadata=metadata)
        lineage.finish()

    return publish_marts
