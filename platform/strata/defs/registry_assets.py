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
from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import lru_cache

import dagster as dg

from strata.checks.specs import check_specs
from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.dataset_metadata import add_column_lineage, check_metadata, declared_schema, materialization_metadata
from strata.defs.openlineage import (
    StepLineage,
    outcome_from_metadata,
    source_datasets,
    upstream_tables,
    warehouse_namespace,
)
from strata.defs.partition_metadata import add_partition_metadata
from strata.defs.partitions import partitions_of, window_of
from strata.defs.quality_gate import downstream_in_run, gate, judge, record_verdict, skipped_error
from strata.defs.resources import LandingZone, Warehouse
from strata.errors import BlockingChecksFailedError, PartitionsSkippedError, StrataError
from strata.registry.issues import RegistryError
from strata.registry.loader import BrokenDataset, Registry
from strata.registry.models import Dataset, duration_seconds
from strata.settings import PROJECT_ROOT, Settings

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


@lru_cache(maxsize=256)
def cron_freshness_policy(cron: str, timezone: str, lower_bound_s: float) -> dg.FreshnessPolicy:
    """Dagster's ``FreshnessPolicy.cron`` for a registry ``freshness`` block, one per distinct block.

    Building one walks 1,000 ticks of the cron (``get_smallest_cron_interval``, about 11 ms);
    datasets that share a deadline share the immutable policy (3.6 s of loading 1,000 datasets
    before, docs/benchmarks.md).
    """
    return dg.FreshnessPolicy.cron(
        deadline_cron=cron, timezone=timezone, lower_bound_delta=timedelta(seconds=lower_bound_s)
    )


def build_dataset_asset(
    dataset: Dataset,
    deps: Iterable[dg.AssetKey] = (),
    path=None,
    datasets: Mapping[str, Dataset] | None = None,
    backfill_policy: dg.BackfillPolicy | None = None,
    retry_policy: dg.RetryPolicy | None = None,
    pool: str = WAREHOUSE_POOL,
) -> dg.AssetsDefinition:
    """The asset that loads (raw) or derives (staging, mart) ``dataset`` into the warehouse.

    Partitioned datasets get ``backfill_policy`` (default single-run: a range of N days is one run
    and one transaction). ``retry_policy``, if given, retries the step; a
    :class:`~strata.errors.StrataError` (broken contract, missing file, blocked by checks) is
    raised as ``dg.Failure(allow_retries=False)``: retrying cannot fix it.

    Every step opens the warehouse, so every step is in the warehouse's writer ``pool``
    (:func:`strata.warehouse.writer_pool`), with the connection's ``TimeZone`` set to the
    partitioning's. A write that lost a conflict with another writer of a lake is run again
    (:func:`strata.warehouse.retrying_conflicts`). Registry SQL (a SELECT, ``custom_sql`` checks)
    runs only on a connection confined by :func:`strata.warehouse.sandbox`: after the raw load,
    before anything for a SQL-derived one. The dataset's checks (:mod:`strata.checks.runner`) run
    in the same step after the write; error ones are blocking.

    A partitioned SQL-derived dataset builds only the partitions the quality gate allows
    (:func:`strata.defs.quality_gate.judge`: upstream complete and not failed), records a
    materialization for exactly those, and then fails naming the others (each skipped partition
    is recorded as a failed ``upstream_complete`` result, so that what is downstream holds it back
    in later runs too). When a blocking check fails on some partitions of a range run but not all,
    and the run has a step downstream of this one, the check's result is a warning naming them and
    the other partitions go on: that next step holds the failed ones back, builds the rest and fails
    naming them (Dagster then skips the steps after it). A run with nothing downstream fails here.
    """
    key = dataset_key(dataset)
    deps = list(deps)
    datasets = datasets or {dataset.name: dataset}
    partitions_def = partitions_of(dataset.partitioning) if dataset.partitioning else None
    timezone = dataset.partitioning.timezone if dataset.partitioning else "UTC"
    spec_json = dataset.model_dump_json()
    metadata = {
        "dagster/table_name": f"warehouse.{dataset.table}",
        "dagster/column_schema": declared_schema(dataset),
        "load_strategy": dataset.load_strategy,
        "primary_key": ", ".join(dataset.primary_key) or "none",
    }
    if path is not None:
        metadata["registry_file"] = _display(path)
    if dataset.source is not None:
        metadata["source"] = dg.MetadataValue.json(dataset.source.model_dump(mode="json"))
    if dataset.select is not None:
        metadata["select"] = dg.MetadataValue.md(f"```sql\n{dataset.select.strip()}\n```")
    specs = [
        dg.AssetCheckSpec(s.name, asset=key, blocking=s.severity == "error", description=s.description)
        for s in check_specs(dataset)
    ]
    freshness = None
    if dataset.freshness is not None:
        freshness = cron_freshness_policy(
            dataset.freshness.cron, dataset.freshness.timezone, duration_seconds(dataset.freshness.lower_bound)
        )

    @dg.asset(
        key=key,
        deps=deps,
        description=dataset.description or None,
        group_name=dataset.group_name,
        owners=dataset.owners or None,
        tags=dataset.tags or None,
        kinds=_kinds(dataset),
        partitions_def=partitions_def,
        backfill_policy=(backfill_policy or dg.BackfillPolicy.single_run()) if partitions_def else None,
        retry_policy=retry_policy,
        pool=pool,
        code_version=hashlib.sha256(spec_json.encode()).hexdigest()[:16],
        metadata=metadata,
        check_specs=specs,
        freshness_policy=freshness,
        # a build that skips partitions records a materialization per partition built, not the output
        output_required=False,
    )
    def _dataset(context: dg.AssetExecutionContext, landing: LandingZone, warehouse: Warehouse):
        window = window_of(context) if partitions_def else None
        inputs = (
            source_datasets(dataset, landing.path)
            if dataset.layer == "raw"
            else upstream_tables(context.assets_def, warehouse_namespace(warehouse.location))[key]
        )
        lineage = StepLineage(context, Settings.from_env(), [key], {key: inputs}, window, warehouse.location)
        lineage.start()
        try:
            yield from _run(context, landing, warehouse, window, lineage)
        except Exception as err:
            lineage.fail(err)
            raise

    def _run(context, landing: LandingZone, warehouse: Warehouse, window, lineage: StepLineage):
        from strata.checks import results, runner  # DuckDB: at run time only
        from strata.loading import build_derived, load_dataset
        from strata.warehouse import retrying_conflicts, sandbox, set_timezone

        verdict = None
        with warehouse.connect() as con:
            set_timezone(con, timezone)
            try:
                if dataset.layer == "raw":
                    load = retrying_conflicts(f"loading {dataset.table}")(load_dataset)
                    report = load(con, dataset, landing.path, context.run_id, window)
                    # from here on, registry SQL (custom_sql checks) may run
                    sandbox(con, readable=[landing.path])
                else:
                    sandbox(con, readable=[landing.path])
                    build = retrying_conflicts(f"building {dataset.table}")(build_derived)
                    if window is None:
                        gate(con, [k.to_user_string() for k in deps], None)
                        report = build(con, dataset)
                    else:
                        publish = dataset.partitioning.incomplete == "publish"  # type: ignore[union-attr]
                        verdict = judge(context, con, deps, window, publish)
                        record_verdict(con, [key.to_user_string()], verdict, context.run_id)
                        if not verdict.build:
                            raise PartitionsSkippedError(key.to_user_string(), 0, len(window), verdict.reasons())
                        report = build(con, dataset, window, verdict.skip, verdict.incomplete)
            except StrataError as err:
                if retry_policy is None:
                    raise
                raise dg.Failure(str(err), allow_retries=False) from err
            outcomes = runner.evaluate(con, dataset, window, datasets, report, landing.path)
            if verdict is not None and verdict.skip:
                outcomes = [o.restricted(verdict.build) for o in outcomes]
            results.record(con, key.to_user_string(), outcomes, context.run_id)
            incomplete = verdict.missing if verdict is not None and verdict.publish_incomplete else None
            metadata, by_partition = materialization_metadata(con, dataset, report, window, incomplete)
            if dataset.select is not None:
                add_column_lineage(con, dataset, metadata)
        outcome = outcome_from_metadata(
            metadata, [(o.name, o.passed, "error" if o.blocking else "warn") for o in outcomes]
        )
        failing = [o for o in outcomes if o.blocking and not o.passed]
        judged = {r.partition for o in outcomes for r in o.partitions}
        failed_partitions = {r.partition for o in failing for r in o.failed_partitions}
        # some partitions of a range failed, not all, and a step of this run comes after: the others
        # go on (that step's gate holds these back and fails naming them)
        partial = (
            bool(failing)
            and None not in judged
            and len(failed_partitions) < len(judged)
            and downstream_in_run(context, key)
        )
        if not failing or partial:
            lineage.complete(key, outcome)
        if lineage.errors:
            metadata["openlineage_errors"] = lineage.errors
        if verdict is not None and verdict.skip:
            for partition in verdict.build:
                yield dg.AssetMaterialization(
                    asset_key=key, partition=partition.key, metadata={**metadata, **by_partition.get(partition.key, {})}
                )
        else:
            if by_partition:
                add_partition_metadata(context, key, by_partition)
            yield dg.MaterializeResult(metadata=metadata)
        for check in outcomes:
            held_back = partial and check.blocking and not check.passed
            description = check.failure_line() or None
            if held_back:
                description = (
                    f"Blocking on {len(check.failed_partitions)} of {len(check.partitions)} partitions "
                    f"({description}). The quality gate keeps them out of everything downstream; "
                    "the other partitions went on."
                )
            yield dg.AssetCheckResult(
                check_name=check.name,
                passed=check.passed,
                metadata=check_metadata(check.summary()),
                severity=dg.AssetCheckSeverity.ERROR
                if check.blocking and not held_back
                else dg.AssetCheckSeverity.WARN,
                description=description,
            )
        if failing:
            where = (
                f"Rows that broke the contract are in quarantine.{dataset.name} with the rule and reason."
                if dataset.layer == "raw"
                else ""
            )
            error = BlockingChecksFailedError(key.to_user_string(), [o.failure_line() for o in failing], where)
            if not partial:
                lineage.fail(error, {key: outcome})
                raise dg.Failure(str(error), allow_retries=False)
            context.log.warning(
                f"{error} The other partitions go on downstream in this run; "
                "its next steps skip these and fail naming them."
            )
        if verdict is not None and verdict.skip:
            raise skipped_error(key.to_user_string(), verdict)

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
            return dg.SkipReason("registry errors already reported" if evaluations else "every dataset file is valid")
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
