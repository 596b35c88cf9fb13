"""The landing-zone sensor: a new or replaced file runs exactly its partition, through the marts.

Each tick lists the files every files source matches (:mod:`strata.sources.arrivals`) and
compares them with the listing kept in the sensor's cursor. Changed files are grouped by job
and partition; each group is one run of the group's job (:mod:`strata.defs.jobs`) for that day,
selecting the changed datasets and what is downstream of them. A snapshot file runs its dataset.

* ``run_key`` is a hash of the group's file identities (path, size, mtime): Dagster never starts
  two runs with one run key for a sensor, so an unchanged file never re-triggers, a replaced file
  does, and a tick that is evaluated again after a daemon restart (its cursor not yet saved)
  requests the same keys and starts nothing twice.
* The first tick records the landing zone as it is (a baseline) and requests nothing: files
  that were there before the sensor ran are the backfill's job, not the sensor's.
* Producers should write a file under another name and rename it into place, so that the
  sensor never sees half a file. A half-written file fails its load cleanly and the finished
  file triggers again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from strata.defs.jobs import GroupJob
from strata.registry.models import Dataset
from strata.sources import arrivals

#: How many changed partitions one tick requests at most; the rest wait for the next tick.
MAX_RUNS_PER_TICK = 100


def plan_runs(
    changed: Sequence[arrivals.LandedFile], group_jobs: Sequence[GroupJob]
) -> tuple[list[tuple[dg.RunRequest, list[arrivals.LandedFile]]], list[arrivals.LandedFile]]:
    """The runs for ``changed`` files, each with its files; and the files no run covers.

    A file no run covers is out of its dataset's partitions, or its dataset is in no job.

    One run per (job, partition): ``job_name``, ``partition_key`` (None for snapshots),
    ``asset_selection`` (changed roots and their downstream in the job), ``run_key`` (hash of the
    files' identities) and tags ``strata/trigger=landing`` and ``strata/files`` (the paths).
    """
    job_of = {name: gj for gj in group_jobs for name in gj.roots}
    groups: dict[tuple[str, str], list[arrivals.LandedFile]] = {}
    ignored = []
    for f in changed:
        gj = job_of.get(f.dataset)
        if gj is None or not f.in_range or (gj.partitions_def is not None and f.partition is None):
            ignored.append(f)
            continue
        groups.setdefault((gj.job.name, f.partition.isoformat() if f.partition else ""), []).append(f)
    planned = []
    for (job_name, partition), files in sorted(groups.items()):
        gj = job_of[files[0].dataset]
        identity = "\n".join(sorted(f"{f.key}:{f.identity}" for f in files))
        request = dg.RunRequest(
            run_key=f"{job_name}:{partition or 'snapshot'}:{hashlib.sha256(identity.encode()).hexdigest()[:20]}",
            job_name=job_name,
            partition_key=partition or None,
            asset_selection=gj.selection_for(sorted({gj.roots[f.dataset] for f in files}, key=str)),
            tags={"strata/trigger": "landing", "strata/files": ", ".join(sorted(f.relative for f in files))[:1000]},
        )
        planned.append((request, files))
    return planned, ignored


def build_landing_sensor(
    datasets: Sequence[Dataset], group_jobs: Sequence[GroupJob], landing_root: Path, interval_seconds: int
) -> dg.SensorDefinition:
    """The ``landing_files`` sensor over the files sources among ``datasets`` (on by default)."""
    names = {d.name for d in datasets}
    files_jobs = [gj for gj in group_jobs if names & set(gj.roots)]

    @dg.sensor(
        name="landing_files",
        jobs=[gj.job for gj in files_jobs],
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="New or replaced landing files run their partitions through the marts.",
    )
    def landing_files(context: dg.SensorEvaluationContext):
        files = arrivals.scan(datasets, landing_root)
        previous = arrivals.decode(context.cursor)
        if previous is None:
            context.update_cursor(arrivals.encode(arrivals.listing(files)))
            return dg.SkipReason(f"baseline: {len(files)} landing files recorded; later changes will run")
        changed = arrivals.changes(previous, files)
        planned, ignored = plan_runs(changed, group_jobs)
        for f in ignored:
            context.log.warning(f"{f.relative}: no partition of {f.dataset} to load it into; not run")
        # remember the landing zone as it is, except the files whose run waits for the next tick
        seen = arrivals.listing(files)
        for _request, waiting in planned[MAX_RUNS_PER_TICK:]:
            for f in waiting:
                if f.key in previous:
                    seen[f.key] = previous[f.key]
                else:
                    del seen[f.key]
        context.update_cursor(arrivals.encode(seen))
        if not planned:
            return dg.SkipReason("no new or replaced landing files")
        return [request for request, _files in planned[:MAX_RUNS_PER_TICK]]

    return landing_files
