"""dbt models as Dagster assets (dagster-dbt), split by materialization.

* Incremental models are partitioned like the raw data they read and run with a single-run
  backfill policy: a range of days is one ``dbt build`` with the window passed as vars
  ``window_start`` / ``window_end`` (half-open local dates) and ``window_skip`` (the days the
  quality gate holds back, left as they are). Each partition's materialization carries that
  partition's row count.
* Every other model (staging snapshots, dimensions) is unpartitioned and rebuilt fully.

Both steps pass the quality gate first and record their dbt test results for the gates downstream
(:mod:`strata.defs.quality_gate`). The incremental step builds the days whose upstream is complete
and passed its blocking checks, in this run or an earlier one, records a materialization for
exactly those days, and then fails naming the others; the full-refresh step builds only when no
upstream blocking check failed.

dbt sources carry ``meta.dagster.asset_key`` = the raw asset's key, so staging depends on raw.
dbt tests become asset checks; error severity is blocking (dbt skips downstream models).
No ``from __future__ import annotations`` here: Dagster reads the context annotation at runtime.
"""

import json
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliInvocation, DbtCliResource, dbt_assets

from strata.defs.constants import WAREHOUSE_POOL
from strata.defs.dbt_project import dbt_project
from strata.defs.openlineage import StepLineage, outcome_from_metadata, upstream_tables, warehouse_namespace
from strata.defs.partition_metadata import add_partition_metadata
from strata.defs.partitions import window_of
from strata.defs.quality_gate import (
    Verdict,
    gate,
    judge,
    record_check_events,
    record_verdict,
    skipped_error,
    upstream_keys,
)
from strata.defs.resources import Warehouse
from strata.errors import BlockingChecksFailedError, PartitionsSkippedError
from strata.partition_window import PartitionWindow
from strata.settings import Settings

INCREMENTAL = "config.materialized:incremental"
LAYER_GROUPS = {"staging": "staging", "marts": "marts"}


class StrataDbtTranslator(DagsterDbtTranslator):
    """Keys ``<schema>/<model>`` (``staging/stg_tpch__orders``), grouped by schema."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        """Sources use their ``meta.dagster.asset_key``; models ``[schema, name]``."""
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        """The model's schema (``staging`` or ``marts``)."""
        return LAYER_GROUPS.get(dbt_resource_props["config"].get("schema") or "", "dbt")

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> list[str]:
        """Models belong to the analytics-engineering team unless their meta says otherwise."""
        meta = dbt_resource_props.get("config", {}).get("meta") or {}
        return list(meta.get("owners") or ["team:analytics-engineering"])

    def get_metadata(self, dbt_resource_props: Mapping[str, Any]) -> Mapping[str, Any]:
        """dagster-dbt's metadata plus ``window_column`` for window-incremental models."""
        metadata = dict(super().get_metadata(dbt_resource_props))
        window_column = dbt_resource_props.get("config", {}).get("window_column")
        if window_column:
            metadata["window_column"] = window_column
        return metadata


def _run_dbt(invocation: DbtCliInvocation) -> tuple[list, Exception | None]:
    """Run a dbt invocation; return its events and dbt's failure, if any.

    Events carry column metadata. Row counts are Strata's (:func:`_add_row_counts`): dagster-dbt's
    ``fetch_row_counts`` opens the profile's ``path`` read-only, which a lake's in-memory
    profile does not have.

    dagster-dbt reads metadata through an in-process dbt adapter once dbt has exited (DuckDB
    allows one writing process). That adapter keeps its DuckDB connection open (dbt-duckdb's
    ``keep_open``), which would lock the next step out, so it is closed here. The caller yields
    the events before it re-raises the failure, so test results are recorded either way.

    The dbt process is waited for first (``is_successful`` reads its output to the end), and only
    then streamed. dagster-dbt's metadata stream waits for a DuckDB dbt process to exit anyway,
    but in a loop that never sleeps (``dagster._core.utils.imap`` while its queue is empty): two
    such threads took a core from dbt on this 2-core machine, and a one-day build took 25 s for
    4 s of dbt. Waiting first costs nothing, except that dbt's log lines reach the run's logs
    when dbt is done rather than line by line.
    """
    invocation.is_successful()  # blocks until dbt exits; the output is kept for the stream below
    stream = invocation.stream()
    events, error = [], None
    try:
        for event in stream.fetch_column_metadata():
            events.append(event)
    except Exception as err:  # noqa: BLE001 - re-raised below, after the events
        error = err
    finally:
        adapter = invocation.adapter
        if adapter is not None:
            adapter.cleanup_connections()
            close_all = getattr(type(adapter.connections), "close_all_connections", None)
            if close_all is not None:
                close_all()
    return events, error


def _add_row_counts(
    context: dg.AssetExecutionContext, db: Warehouse, events: list, verdict: Verdict | None = None
) -> tuple[dict[dg.AssetKey, int], dict[dg.AssetKey, int], list]:
    """Attach row counts to every model that was materialized; return each one's total and rows written.

    ``dagster/row_count`` (the UI's "Row count") is always the table's total. For a partitioned
    build (``verdict`` given) each day built also gets ``rows_in_partition``, the rows of that day
    (column ``window_column``), so that a day's count never reads as the size of the table. When the
    gate held days back, each model's output becomes one materialization per day built (the third
    value: the events to yield instead of ``events``).
    """
    from strata import warehouse

    built = {e.output_name for e in events if isinstance(e, dg.Output)}
    totals: dict[dg.AssetKey, int] = {}
    written: dict[dg.AssetKey, int] = {}
    per_partition: dict[str, dict] = {}
    with db.connect() as con:
        for output_name, key in context.assets_def.keys_by_output_name.items():
            if output_name not in built:
                continue
            spec = context.assets_def.specs_by_key[key]
            table = ".".join(str(spec.metadata["dagster/table_name"]).split(".")[-2:])
            total = int(con.execute(f"select count(*) from {warehouse.qualified(table)}").fetchall()[0][0])
            totals[key] = total
            if verdict is None:
                written[key] = total
                context.add_output_metadata({"dagster/row_count": total}, output_name=output_name)
                continue
            counts = warehouse.rows_per_partition(con, table, spec.metadata["window_column"], verdict.window)
            written[key] = sum(counts.get(p, 0) for p in verdict.build)
            per_partition[output_name] = {
                p.key: {"rows_in_partition": counts.get(p, 0), "dagster/row_count": total} for p in verdict.build
            }
            if not verdict.skip:
                add_partition_metadata(context, key, per_partition[output_name])
    if verdict is None or not verdict.skip:
        return totals, written, events
    keys = context.assets_def.keys_by_output_name
    out = []
    for event in events:
        if isinstance(event, dg.Output):
            for partition_key, own in per_partition.get(event.output_name, {}).items():
                out.append(
                    dg.AssetMaterialization(
                        asset_key=keys[event.output_name],
                        partition=partition_key,
                        metadata={**(event.metadata or {}), **own},
                    )
                )
        else:
            out.append(event)
    return totals, written, out


def failed_tests_error(events: list, window: PartitionWindow | None, error: Exception) -> dg.Failure:
    """The step's failure: every failed blocking dbt test, with the window and its failing rows.

    dagster-dbt's own error says only that ``dbt build`` exited non-zero; this names each test,
    the model it judges, how many rows failed and the days the run covered.
    """
    span = window.describe() if window is not None else "the whole table"
    lines = []
    for e in events:
        if isinstance(e, dg.AssetCheckResult | dg.AssetCheckEvaluation) and not e.passed:
            if e.severity == dg.AssetCheckSeverity.WARN:
                continue
            rows = e.metadata.get("dagster_dbt/failed_row_count")
            count = f"{rows.value:,} failing row(s)" if rows is not None else "failed"
            lines.append(f"{e.asset_key.to_user_string()} {e.check_name}: {count} in {span}")
    if not lines:
        return dg.Failure(f"dbt build failed ({span}): {str(error).strip()[:2000]}", allow_retries=False)
    message = BlockingChecksFailedError(
        "dbt", lines, "Query the test's SQL in dbt/target/run for the failing rows; nothing downstream was built."
    )
    return dg.Failure(str(message), allow_retries=False)


def _build(
    context: dg.AssetExecutionContext,
    dbt: DbtCliResource,
    warehouse: Warehouse,
    args: list[str],
    window: PartitionWindow | None,
) -> Iterator:
    """One dbt step: the quality gate, ``dbt <args>``, row counts, check results, lineage; its events.

    With a window, the days the gate holds back (:func:`strata.defs.quality_gate.judge`) are passed
    as ``window_skip`` and left as they are; after the rest is built, the step fails naming them.

    Each model is an OpenLineage run (:class:`strata.defs.openlineage.StepLineage`): START before
    dbt, COMPLETE with its columns, column lineage, tests and rows once it is built, FAIL with the
    error if the step fails before or without building it.
    """
    keys = sorted(context.selected_asset_keys, key=lambda k: k.path)
    namespace = warehouse_namespace(warehouse.location)
    lineage = StepLineage(
        context, Settings.from_env(), keys, upstream_tables(context.assets_def, namespace), window, warehouse.location
    )
    lineage.start()
    verdict = None
    try:
        with warehouse.connect() as con:
            if window is None:
                gate(con, [k.to_user_string() for k in upstream_keys(context.assets_def)], None)
            else:
                verdict = judge(context, con, upstream_keys(context.assets_def), window)
                record_verdict(con, [k.to_user_string() for k in keys], verdict, context.run_id)
        if verdict is not None:
            if not verdict.build:
                raise PartitionsSkippedError("dbt", 0, len(window), verdict.reasons())  # type: ignore[arg-type]
            args = [*args, "--vars", json.dumps(window_vars(verdict))]
        events, error = _run_dbt(dbt.cli(args, context=context))
        totals, written, events = _add_row_counts(context, warehouse, events, verdict)
        with warehouse.connect() as con:
            record_check_events(con, events, verdict.build if verdict is not None else None, context.run_id)
    except Exception as err:
        lineage.fail(err)
        raise
    outcomes = _outcomes(context, events, totals, written)
    failure = failed_tests_error(events, window, error) if error is not None else None
    for key, outcome in outcomes.items():
        blocked = any(not passed and severity == "error" for _, passed, severity in outcome.checks)
        if failure is None or not blocked:
            lineage.complete(key, outcome)
    if failure is not None:
        lineage.fail(failure, outcomes)
    lineage.finish()
    yield from events
    if failure is not None:
        raise failure from error
    if verdict is not None and verdict.skip:
        raise skipped_error("dbt models " + ", ".join(k.to_user_string() for k in keys), verdict)


def _outcomes(context: dg.AssetExecutionContext, events: list, totals: dict, written: dict) -> dict:
    """Per model built: its metadata (columns, column lineage), row count and test results."""
    keys = context.assets_def.keys_by_output_name
    metadata: dict = {}
    checks: dict = {}
    for event in events:
        if isinstance(event, dg.Output):
            metadata[keys[event.output_name]] = dict(event.metadata or {})
        elif isinstance(event, dg.AssetMaterialization):
            metadata[event.asset_key] = dict(event.metadata or {})
        elif isinstance(event, dg.AssetCheckResult) and event.asset_key is not None:
            severity = "error" if event.severity == dg.AssetCheckSeverity.ERROR else "warn"
            checks.setdefault(event.asset_key, []).append((event.check_name, bool(event.passed), severity))
    outcomes = {}
    for key, values in metadata.items():
        if key in totals:
            values["dagster/row_count"] = totals[key]
        outcomes[key] = outcome_from_metadata(values, checks.get(key, []), written.get(key))
    return outcomes


def window_vars(verdict: Verdict) -> dict:
    """The dbt vars of a window, read by the ``in_partition_window`` macro.

    ``window_start`` / ``window_end`` (local dates, half-open) and ``window_skip`` (the days held
    back, ``YYYY-MM-DD``).
    """
    low, high = verdict.window.bounds("date")
    return {
        "window_start": low.isoformat(),
        "window_end": high.isoformat(),
        "window_skip": [p.wall_start.date().isoformat() for p in verdict.skip],
    }


def build_dbt_assets(
    daily: dg.PartitionsDefinition, backfill_policy: dg.BackfillPolicy | None = None, pool: str = WAREHOUSE_POOL
) -> list[dg.AssetsDefinition]:
    """The two dbt asset definitions: incremental models partitioned by ``daily``, and the rest.

    ``backfill_policy`` applies to the incremental models (default: single run); both steps are in ``pool``.
    """
    translator = StrataDbtTranslator()

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=INCREMENTAL,
        name="dbt_incremental",
        partitions_def=daily,
        backfill_policy=backfill_policy or dg.BackfillPolicy.single_run(),
        dagster_dbt_translator=translator,
        pool=pool,
    )
    def dbt_incremental(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        yield from _build(context, dbt, warehouse, ["build"], window_of(context))

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        exclude=INCREMENTAL,
        name="dbt_full_refresh",
        dagster_dbt_translator=translator,
        pool=pool,
    )
    def dbt_full_refresh(context: dg.AssetExecutionContext, dbt: DbtCliResource, warehouse: Warehouse):
        yield from _build(context, dbt, warehouse, ["build"], None)

    return [dbt_incremental, dbt_full_refresh]
