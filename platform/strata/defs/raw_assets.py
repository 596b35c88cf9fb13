"""Raw assets: one Dagster asset per registered raw dataset, loading it into ``raw.<name>``.

No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import dagster as dg

from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.partitions import daily_partitions, window_of
from strata.defs.resources import LandingZone, Warehouse
from strata.loading import LOAD_COLUMNS, load_dataset
from strata.registry.models import Dataset


def raw_asset_key(dataset: Dataset) -> dg.AssetKey:
    """``raw/<name>``: the key of a raw dataset's asset, also used by dbt sources."""
    return dg.AssetKey(["raw", dataset.name])


def build_raw_asset(dataset: Dataset) -> dg.AssetsDefinition:
    """The asset that loads ``dataset`` from its source into the warehouse.

    Partitioned datasets get a single-run backfill policy: a range of N days is one run and one
    transaction. Every step opens the warehouse, so every step is in the warehouse pool.
    """
    partitions_def = daily_partitions(dataset.partitioning) if dataset.partitioning else None
    schema = dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=c.description) for c in dataset.columns]
        + [
            dg.TableColumn(c, "load metadata")
            for c in LOAD_COLUMNS
            if partitions_def or c != "_partition_date"
        ]
    )

    @dg.asset(
        key=raw_asset_key(dataset),
        description=dataset.description or None,
        group_name=dataset.group,
        owners=dataset.owners or None,
        tags=dataset.tags or None,
        kinds={"duckdb", dataset.source.format},
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        pool=WAREHOUSE_POOL,
        metadata={
            "dagster/table_name": f"warehouse.{dataset.table}",
            "dagster/column_schema": schema,
            "source": dg.MetadataValue.text(f"{dataset.source.format}: {dataset.source.path}"),
            "load_strategy": dataset.load,
        },
    )
    def _raw(
        context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        window = window_of(context) if partitions_def else None
        with warehouse.connect() as con:
            report = load_dataset(con, dataset, landing.path, context.run_id, window)
        for day, rows in report.rows_by_partition.items():
            context.add_asset_metadata({"dagster/row_count": rows}, partition_key=day.isoformat())
        metadata: dict[str, object] = {"files_read": report.files, "rows_loaded_in_run": report.rows_loaded}
        if partitions_def is None:
            metadata["dagster/row_count"] = report.rows_loaded
        return dg.MaterializeResult(metadata=metadata)

    return _raw
