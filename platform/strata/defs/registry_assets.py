"""Registry assets: one Dagster asset per registered dataset, and a visible placeholder per broken file.

* Raw datasets load their source into ``raw.<name>`` (:func:`strata.loading.load_dataset`).
* SQL-derived datasets (staging, mart) materialize their SELECT (:func:`strata.loading.build_derived`);
  their dependencies are the tables the SELECT reads.
* A broken dataset file becomes an asset whose description lists every issue, with a blocking
  ``registry_valid`` check that fails (reported by a sensor, and by any attempt to materialize).

Keys are ``<schema>/<name>`` (``raw/tpch_orders``, ``marts/daily_segment_revenue``), the same form
as dbt models', so a SELECT's tables map straight onto asset keys.
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import hashlib
import json
from collections.abc import Iterable

import dagster as dg

from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.partitions import daily_partitions, window_of
from strata.defs.resources import LandingZone, Warehouse
from strata.registry.issues import RegistryError
from strata.registry.loader import BrokenDataset, Registry
from strata.registry.models import Dataset
from strata.settings import PROJECT_ROOT
from strata.sources import LOAD_COLUMNS

REGISTRY_CHECK = "registry_valid"


def dataset_key(dataset: Dataset) -> dg.AssetKey:
    """``<schema>/<name>``: the asset key of a registered dataset."""
    return dg.AssetKey([dataset.schema_name, dataset.name])


def relation_key(relation: str) -> dg.AssetKey:
    """The asset key of a ``schema.table`` relation (a registered dataset or a dbt model)."""
    return dg.AssetKey(relation.split(".", 1))


def _display(path) -> str:
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _kinds(dataset: Dataset) -> set[str]:
    if dataset.source is None:
        return {"duckdb", "sql"}
    kind = dataset.source.format if dataset.source.type == "files" else dataset.source.type
    return {"duckdb", kind}


def _schema(dataset: Dataset) -> dg.TableSchema:
    columns = [
        dg.TableColumn(
            c.name,
            c.type,
            description=c.description or None,
            constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=c.unique),
        )
        for c in dataset.columns
    ]
    if dataset.layer == "raw":
        columns += [dg.TableColumn(c, "load metadata") for c in LOAD_COLUMNS]
    return dg.TableSchema(columns=columns)


def _report_metadata(context: dg.AssetExecutionContext, key: dg.AssetKey, report) -> dict:
    for day, rows in report.rows_by_partition.items():
        context.add_asset_metadata({"dagster/row_count": rows}, asset_key=key, partition_key=day.isoformat())
    metadata = {
        "rows_read_in_run": report.rows_read,
        "rows_written_in_run": report.rows_written,
        **report.metadata,
    }
    if report.table_rows is not None:
        metadata["dagster/row_count"] = report.table_rows
    return metadata


def build_dataset_asset(dataset: Dataset, deps: Iterable[dg.AssetKey] = (), path=None) -> dg.AssetsDefinition:
    """The asset that loads (raw) or derives (staging, mart) ``dataset`` into the warehouse.

    Partitioned datasets get a single-run backfill policy: a range of N days is one run and one
    transaction. Every step opens the warehouse, so every step is in the warehouse pool.
    """
    key = dataset_key(dataset)
    partitions_def = daily_partitions(dataset.partitioning) if dataset.partitioning else None
    spec_json = dataset.model_dump_json()
    metadata = {
        "dagster/table_name": f"warehouse.{dataset.table}",
        "dagster/column_schema": _schema(dataset),
        "load_strategy": dataset.load_strategy,
        "primary_key": ", ".join(dataset.primary_key) or "none",
    }
    if path is not None:
        metadata["registry_file"] = _display(path)
    if dataset.source is not None:
        metadata["source"] = dg.MetadataValue.json(dataset.source.model_dump(mode="json"))
    if dataset.select is not None:
        metadata["select"] = dg.MetadataValue.md(f"```sql\n{dataset.select.strip()}\n```")

    @dg.asset(
        key=key,
        deps=list(deps),
        description=dataset.description or None,
        group_name=dataset.group_name,
        owners=dataset.owners or None,
        tags=dataset.tags or None,
        kinds=_kinds(dataset),
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run() if partitions_def else None,
        pool=WAREHOUSE_POOL,
        code_version=hashlib.sha256(spec_json.encode()).hexdigest()[:16],
        metadata=metadata,
    )
    def _dataset(
        context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        from strata.loading import build_derived, load_dataset  # DuckDB and readers: at run time only

        window = window_of(context) if partitions_def else None
        with warehouse.connect() as con:
            if dataset.layer == "raw":
                report = load_dataset(con, dataset, landing.path, context.run_id, window)
            else:
                report = build_derived(con, dataset, window)
        return dg.MaterializeResult(metadata=_report_metadata(context, key, report))

    return _dataset


def build_broken_asset(broken: BrokenDataset, key: dg.AssetKey) -> dg.AssetsDefinition:
    """A placeholder that carries a broken file's issues into the UI.

    Its description lists them, and its blocking ``registry_valid`` check fails whenever it is
    evaluated (materializing it fails with the same issues).
    """
    issues = "\n".join(
        f"- `{_display(i.path)}:{i.line}:{i.column}`: {i.message}" + (f" ({i.hint})" if i.hint else "")
        for i in broken.issues
    )
    description = (
        f"**This dataset file has errors and was not loaded.** Fix `{_display(broken.path)}` and "
        f"reload the code location (`strata registry validate` lists the same errors).\n\n{issues}"
    )

    @dg.asset(
        key=key,
        description=description,
        group_name=broken.group or broken.schema_name,
        kinds={"yaml"},
        tags={"strata/registry": "invalid"},
        metadata={"registry_file": _display(broken.path), "registry_errors": dg.MetadataValue.md(issues)},
        check_specs=[
            dg.AssetCheckSpec(
                REGISTRY_CHECK,
                asset=key,
                blocking=True,
                description="The dataset file is valid (strata registry validate).",
            )
        ],
    )
    def _broken(context: dg.AssetExecutionContext):
        yield dg.AssetCheckResult(
            check_name=REGISTRY_CHECK, passed=False, metadata={"errors": dg.MetadataValue.md(issues)}
        )
        raise RegistryError(broken.issues)

    return _broken


def broken_keys(registry: Registry, taken: set[dg.AssetKey]) -> dict[str, dg.AssetKey]:
    """A key for each broken file: its ``<schema>/<name>``, or ``registry_errors/<name>`` if taken."""
    keys = {}
    for broken in registry.broken:
        key = dg.AssetKey([broken.schema_name, broken.name])
        if key in taken:
            key = dg.AssetKey(["registry_errors", broken.name])
        while key in taken:
            key = dg.AssetKey([*key.path[:-1], key.path[-1] + "_"])
        taken.add(key)
        keys[str(broken.path)] = key
    return keys


def build_registry_errors_sensor(registry: Registry, keys: dict[str, dg.AssetKey]) -> dg.SensorDefinition:
    """A sensor, on by default, that reports a failed ``registry_valid`` check per broken file.

    The failure shows in the UI without anyone running anything; it is reported again only when
    the errors change.
    """
    evaluations = {
        keys[str(b.path)]: [f"{_display(i.path)}:{i.line}:{i.column}: {i.message}" for i in b.issues]
        for b in registry.broken
    }
    digest = hashlib.sha256(
        json.dumps({k.to_user_string(): v for k, v in evaluations.items()}, sort_keys=True).encode()
    )

    @dg.sensor(
        name="registry_errors",
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=30,
        description="Reports a failed registry_valid check for every dataset file with errors.",
    )
    def _sensor(context: dg.SensorEvaluationContext):
        if context.cursor == digest.hexdigest() or not evaluations:
            return dg.SkipReason(
                "registry errors already reported" if evaluations else "every dataset file is valid"
            )
        events = [
            dg.AssetCheckEvaluation(
                asset_key=key,
                check_name=REGISTRY_CHECK,
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"errors": dg.MetadataValue.md("\n".join(f"- {e}" for e in errs))},
            )
            for key, errs in evaluations.items()
        ]
        return dg.SensorResult(asset_events=events, cursor=digest.hexdigest())

    return _sensor
