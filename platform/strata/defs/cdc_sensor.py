"""The ``cdc_changes`` sensor: every change data capture dataset runs by itself, through what is downstream.

Each tick (every ``STRATA_SENSOR_INTERVAL_SECONDS``, at least 30 s) requests a run for each CDC
dataset whose ``cdc.interval`` has passed since its last request, selecting the dataset and what
is downstream of it in its group's job (the current state, ...). One run per dataset at a time: a
dataset with a run queued or in progress (tag ``strata/cdc``) is not requested again, so two runs
never read one replication slot at once. The cursor is the time of each dataset's last request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import dagster as dg

from strata.defs.jobs import GroupJob
from strata.defs.registry_assets import dataset_key
from strata.registry.models import Dataset, PostgresSource, duration_seconds

#: The tag naming the CDC dataset a run reads.
CDC_TAG = "strata/cdc"
_ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def interval_of(dataset: Dataset) -> int:
    """Seconds between two runs of a CDC dataset (``cdc.interval``)."""
    source: PostgresSource = dataset.source  # type: ignore[assignment]
    return duration_seconds(source.cdc.interval)


def build_cdc_sensor(
    datasets: Sequence[Dataset], group_jobs: Sequence[GroupJob], interval_seconds: int
) -> dg.SensorDefinition | None:
    """``cdc_changes`` over the CDC datasets among ``datasets`` (on by default), or None if there are none."""
    job_of = {name: gj for gj in group_jobs for name in gj.roots}
    captured = [d for d in datasets if d.is_cdc and d.name in job_of]
    if not captured:
        return None
    jobs = {job_of[d.name].job.name: job_of[d.name].job for d in captured}

    @dg.sensor(
        name="cdc_changes",
        jobs=list(jobs.values()),
        minimum_interval_seconds=max(30, interval_seconds),
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs each change data capture dataset every cdc.interval, one run at a time, through what "
        "is downstream of it.",
    )
    def cdc_changes(context: dg.SensorEvaluationContext):
        last = json.loads(context.cursor) if context.cursor else {}
        now = time.time()
        requests = []
        for dataset in captured:
            if now - last.get(dataset.name, 0) < interval_of(dataset):
                continue
            active = context.instance.get_run_records(
                filters=dg.RunsFilter(tags={CDC_TAG: dataset.name}, statuses=_ACTIVE), limit=1
            )
            if active:
                continue
            gj = job_of[dataset.name]
            requests.append(
                dg.RunRequest(
                    run_key=f"cdc:{dataset.name}:{int(now)}",
                    job_name=gj.job.name,
                    asset_selection=gj.selection_for([dataset_key(dataset)]),
                    tags={"strata/trigger": "cdc", CDC_TAG: dataset.name},
                )
            )
            last[dataset.name] = now
        context.update_cursor(json.dumps(last, sort_keys=True))
        return requests or dg.SkipReason("no CDC dataset is due, or each has a run in progress")

    return cdc_changes
