"""The landing-zone sensor: new or replaced files run their partitions, through the marts.

Each tick lists the files every files source matches (:mod:`strata.sources.arrivals`) and keeps
those that arrived since the high-water marks in the sensor's cursor. Each file names a real
partition or none (an hour the clocks skip, a day outside the range: logged, not run). Their
partitions are grouped per job (:mod:`strata.defs.jobs`) into runs of **contiguous partitions**:
one new file is a one-day run, a new dataset's two years of history or a restored folder is one
range run per unbroken stretch (the assets' single-run backfill policy makes a range one step per
asset), never one run per file. Each run selects the datasets whose files changed and what is
downstream of them. A snapshot file runs its dataset.

* ``run_key`` is a hash of the run's files' identities (path, size, mtime, ctime): Dagster never
  starts two runs with one run key for a sensor, so a tick that is evaluated again after a daemon
  restart (its cursor not yet saved) requests the same keys and starts nothing twice, and a
  replaced file (new ctime) runs again.
* The first tick records the landing zone as it is (a baseline) and requests nothing: files
  that were there before the sensor ran are the backfill's job, not the sensor's.
* A dataset missing from the registry for a while (its file broken) keeps its mark in the cursor:
  once fixed, only the files that arrived in between run.
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
from strata.partition_window import Partition, contiguous
from strata.registry.models import Dataset
from strata.sources import arrivals

#: Tags naming a range run's first and last partition (Dagster's single-run backfill tags).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def _request(gj: GroupJob, files: list[arrivals.LandedFile], span: tuple[Partition, Partition] | None) -> dg.RunRequest:
    identity = "\n".join(sorted(f"{f.key}:{f.identity}" for f in files))
    label = "snapshot" if span is None else (span[0].key if span[0] == span[1] else f"{span[0].key}...{span[1].key}")
    tags = {"strata/trigger": "landing", "strata/files": ", ".join(sorted(f.relative for f in files))[:1000]}
    partition_key = None
    if span is not None and span[0] == span[1]:
        partition_key = span[0].key
    elif span is not None:
        tags |= {RANGE_START_TAG: span[0].key, RANGE_END_TAG: span[1].key}
    return dg.RunRequest(
        run_key=f"{gj.job.name}:{label}:{hashlib.sha256(identity.encode()).hexdigest()[:20]}",
        job_name=gj.job.name,
        partition_key=partition_key,
        asset_selection=gj.selection_for(sorted({gj.roots[f.dataset] for f in files}, key=str)),
        tags=tags,
    )


def plan_runs(
    changed: Sequence[arrivals.LandedFile], group_jobs: Sequence[GroupJob]
) -> tuple[list[tuple[dg.RunRequest, list[arrivals.LandedFile]]], list[arrivals.LandedFile]]:
    """The runs for ``changed`` files, each with its files; and the files no run covers.

    A file no run covers is out of its dataset's partitions, or its dataset is in no job.

    Per job: one run per stretch of contiguous days, with ``partition_key`` (one day) or the
    range tags (several), or one unpartitioned run for a snapshot job. ``asset_selection`` is the
    changed roots and their downstream in the job; ``run_key`` hashes the files' identities; tags
    ``strata/trigger=landing`` and ``strata/files`` (the paths).
    """
    job_of = {name: gj for gj in group_jobs for name in gj.roots}
    by_job: dict[str, list[arrivals.LandedFile]] = {}
    ignored = []
    for f in changed:
        gj = job_of.get(f.dataset)
        if gj is None or not f.in_range or (gj.partitions_def is not None and f.partition is None):
            ignored.append(f)
            continue
        by_job.setdefault(gj.job.name, []).append(f)
    planned = []
    for files in (by_job[name] for name in sorted(by_job)):
        gj = job_of[files[0].dataset]
        if gj.partitions_def is None:
            planned.append((_request(gj, files, None), files))
            continue
        for first, last in contiguous([f.partition for f in files if f.partition is not None]):
            in_span = [f for f in files if f.partition is not None and first.start <= f.partition.start <= last.start]
            planned.append((_request(gj, in_span, (first, last)), in_span))
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
        description="New or replaced landing files run their days (contiguous ones in one run) through the marts.",
    )
    def landing_files(context: dg.SensorEvaluationContext):
        files = arrivals.scan(datasets, landing_root)
        previous = arrivals.decode(context.cursor)
        if previous is None:
            context.update_cursor(arrivals.encode(arrivals.mark(files)))
            return dg.SkipReason(f"baseline: {len(files)} landing files recorded; later changes will run")
        planned, ignored = plan_runs(arrivals.changes(previous, files), group_jobs)
        for f in ignored:
            why = f" ({f.problem})" if f.problem else ""
            context.log.warning(f"{f.relative}: no partition of {f.dataset} to load it into{why}; not run")
        context.update_cursor(arrivals.encode(arrivals.advance(previous, files)))
        if not planned:
            return dg.SkipReason("no new or replaced landing files")
        return [request for request, _files in planned]

    return landing_files
