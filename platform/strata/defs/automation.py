"""Declarative automation, retries and the run-failure alert.

* **Downstream propagation.** Every asset below raw gets an ``AutomationCondition``, evaluated
  by the ``strata_automation`` sensor (on by default: Dagster's own default sensor starts
  stopped). A partitioned asset uses ``eager()``: when a partition of its parents updates, it
  updates that partition. An unpartitioned asset with a partitioned parent uses
  ``any_deps_updated().since_last_handled()`` without ``eager()``'s "no parent partition
  missing" clause, which with the default all-partitions mapping would keep it from ever
  firing while any historical day is missing (the trap in Dagster's docs; notes section 5).
  Neither fires while a parent's latest blocking check result is a failure (and the quality
  gate refuses a run over a failed upstream partition whoever launches it).
  ``eager()`` looks at the latest day only; older days go through the landing sensor and the
  schedule's lookback, which run their whole path through the marts. A partitioned asset built
  from finer partitions (a daily mart over an hourly feed: in no job with its hours) uses eager()
  without the latest-day clause: whenever an hour of any day updates, that day is requested once
  all its hours are in, so a late hour rebuilds its day (and the publish after it).
* **Retries.** Raw datasets read from Postgres or HTTP get a ``RetryPolicy`` with exponential
  backoff and jitter, for transient source errors; a :class:`~strata.errors.StrataError`
  (a contract broken, a missing file) is raised as ``dg.Failure(allow_retries=False)`` by the
  asset and is not retried. Crashed runs are retried by the instance (``run_retries`` in
  ``dagster.yaml``).
* **Alerts.** ``run_failure_alert`` writes every failed run to the alert log, or posts it to
  ``$STRATA_ALERT_WEBHOOK_URL`` (:mod:`strata.alerting`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from strata import alerting
from strata.defs.jobs import partitions_by_key

#: For raw datasets with a network source: 1 s, 2 s, 4 s (each ± up to that much), then fail.
SOURCE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3, delay=1, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
)


def condition_for(partitioned: bool, parents_partitioned: bool, coarser: bool = False) -> dg.AutomationCondition:
    """The automation condition of an asset below raw (see the module docstring).

    ``coarser``: the asset's partitions are built from finer ones upstream (a day from hours).
    """
    condition = dg.AutomationCondition
    # not all_deps_blocking_checks_passed(): a parent requested in the same tick has no check
    # result yet, which would stop eager()'s chaining through staging to the marts in one tick
    checks_passed = ~condition.any_deps_match(condition.any_checks_match(condition.check_failed(), blocking_only=True))
    if coarser:
        # eager() without its latest-window clause: a late hour of any day rebuilds that day, once
        # every hour of it is in (no upstream partition missing)
        return (
            condition.any_deps_updated().since_last_handled()
            & ~condition.any_deps_missing()
            & ~condition.any_deps_in_progress()
            & ~condition.in_progress()
            & checks_passed
        ).with_label("any upstream partition of it updated, none missing, no upstream blocking check failed")
    if partitioned or not parents_partitioned:
        return (condition.eager() & checks_passed).with_label("eager, no upstream blocking check failed")
    return (
        condition.any_deps_updated().since_last_handled()
        & ~condition.any_deps_in_progress()
        & ~condition.in_progress()
        & checks_passed
    ).with_label("any upstream partition updated, no upstream blocking check failed")


def with_automation(assets: Sequence[dg.AssetsDefinition], raw_keys: set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """``assets`` with an automation condition on every asset that is not in ``raw_keys``."""
    partitions = partitions_by_key(assets)

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key in raw_keys:
            return spec
        parents = [partitions.get(dep.asset_key) for dep in spec.deps]
        coarser = any(is_coarser(spec.partitions_def, p) for p in parents)
        condition = condition_for(spec.partitions_def is not None, any(p is not None for p in parents), coarser)
        return spec.replace_attributes(automation_condition=condition)

    return [a.map_asset_specs(apply) for a in assets]


def is_coarser(child: dg.PartitionsDefinition | None, parent: dg.PartitionsDefinition | None) -> bool:
    """Whether each of ``child``'s time partitions is built from several of ``parent``'s (days from hours)."""
    from strata.defs.partitions import grain_of
    from strata.defs.quality_gate import finer

    if not isinstance(child, dg.TimeWindowPartitionsDefinition) or not isinstance(
        parent, dg.TimeWindowPartitionsDefinition
    ):
        return False
    return finer(parent, grain_of(child))


def build_automation_sensor(interval_seconds: int) -> dg.AutomationConditionSensorDefinition:
    """``strata_automation``: evaluates every asset's condition; RUNNING by default."""
    return dg.AutomationConditionSensorDefinition(
        "strata_automation",
        target=dg.AssetSelection.all(),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=interval_seconds,
        description="Marts follow their upstream partitions (declarative automation).",
    )


def _cause(error) -> str:
    """The message of the exception the step raised (not Dagster's wrapper around it)."""
    return (error.cause or error).message.strip()


def build_failure_alert_sensor(alert_log: Path) -> dg.SensorDefinition:
    """``run_failure_alert``: one alert per failed run (job, partition(s), error, run id)."""

    @dg.run_failure_sensor(
        name="run_failure_alert",
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Failed runs are written to {alert_log}, or posted to ${alerting.WEBHOOK_ENV} when set.",
    )
    def run_failure_alert(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        tags = run.tags
        partition = tags.get("dagster/partition") or (
            f"{tags['dagster/asset_partition_range_start']}..{tags['dagster/asset_partition_range_end']}"
            if "dagster/asset_partition_range_start" in tags
            else None
        )
        failures = context.get_step_failure_events()
        steps = [e.step_key for e in failures if e.step_key]
        errors = [_cause(e.event_specific_data.error) for e in failures if e.event_specific_data.error]
        error = "\n".join(errors) or context.failure_event.message or ""
        where = alerting.send(
            f"Strata run failed: {run.job_name}"
            + (f" [{partition}]" if partition else "")
            + f": {error.splitlines()[0] if error else 'see the run'}",
            {
                "run_id": run.run_id,
                "job": run.job_name,
                "partition": partition,
                "failed_steps": steps,
                "error": error,
                "backfill": tags.get("dagster/backfill"),
                "trigger": tags.get("strata/trigger")
                or tags.get("dagster/schedule_name")
                or tags.get("dagster/sensor_name"),
            },
            alert_log,
        )
        context.log.info(f"alert for run {run.run_id} sent to {where}")

    return run_failure_alert
