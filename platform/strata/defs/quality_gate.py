"""The quality gate: which partitions a step may build, and every check result recorded.

Results of Python checks and dbt tests are recorded per partition (:mod:`strata.checks.results`)
for the gates downstream.

Dagster already skips downstream steps in the run where a blocking check fails. The gate closes
the rest of the gap (dagster-io/dagster#25112), partition by partition, whoever launches the run
(automation, a schedule, a UI backfill, a range run, the CLI): before a dbt build or a SQL-derived
dataset writes a partition, :func:`judge` finds

* the partitions whose upstream partitions failed a blocking check (**blocked**), and
* the partitions whose upstream partitions are not all materialized (**incomplete**): a day built
  from hours needs every hour of that day that exists (23, 24 or 25), a month every day.

The step builds the rest, leaves those as they were (or, for a dataset that publishes incomplete
partitions, builds them flagged), records a materialization only for what it built, and then
fails naming each skipped partition and why (:func:`skipped_error`). So one failing hour of a
60-day range costs one day, not sixty, and the run still fails for someone to look at.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from strata.defs.partitions import grain_of
from strata.errors import BlockedByChecksError, PartitionsSkippedError
from strata.partition_window import Partition, PartitionWindow


def gate(con, upstream: list[str], window: PartitionWindow | None) -> None:
    """Raise :class:`BlockedByChecksError` if a blocking check on ``upstream`` failed (in ``window``).

    For a step that builds all or nothing (unpartitioned: the publish, full-refresh dbt models).
    """
    from strata.checks import results

    failures = results.blocking_failures(con, upstream, window)
    if failures:
        raise BlockedByChecksError(failures)


@dataclass
class Verdict:
    """What a partitioned step may build of its ``window``.

    Attributes:
        blocked: partitions whose upstream failed a blocking check, with the failures.
        missing: partitions whose upstream partitions are not all materialized, with what is missing
            (``raw/temps: 2010-03-20-05:00, 2010-03-20-06:00``).
        publish_incomplete: whether incomplete partitions are built anyway (flagged).
    """

    window: PartitionWindow
    blocked: dict[Partition, list[str]] = field(default_factory=dict)
    missing: dict[Partition, list[str]] = field(default_factory=dict)
    publish_incomplete: bool = False

    @property
    def skip(self) -> list[Partition]:
        """The partitions not built: blocked, and incomplete unless those are published."""
        out = set(self.blocked) | (set() if self.publish_incomplete else set(self.missing))
        return sorted(out)

    @property
    def incomplete(self) -> list[Partition]:
        """The partitions built although incomplete (``publish_incomplete``)."""
        return sorted(set(self.missing) - set(self.blocked)) if self.publish_incomplete else []

    @property
    def build(self) -> list[Partition]:
        """The partitions the step builds."""
        skipped = set(self.skip)
        return [p for p in self.window.partitions if p not in skipped]

    def reasons(self) -> dict[str, str]:
        """``{partition key: why it was skipped}`` for every skipped partition."""
        out = {}
        for p in self.skip:
            why = [f"missing {m}" for m in self.missing.get(p, [])] + self.blocked.get(p, [])
            out[p.key] = "; ".join(why)
        return out


def judge(
    context: dg.AssetExecutionContext | dg.OpExecutionContext,
    con,
    upstream: Iterable[dg.AssetKey],
    window: PartitionWindow,
    publish_incomplete: bool = False,
) -> Verdict:
    """Which partitions of ``window`` the step may build, given its ``upstream`` assets (see the module docstring).

    Completeness is asked of upstream assets of a finer grain (the hours of a day, the days of a
    month): their partitions come from :meth:`PartitionWindow.members` (the parent's grain and zone,
    within its partitions' range), and whether each is materialized from the Dagster instance.
    Upstream assets of the same grain, and unpartitioned ones, count through their blocking checks
    only (Dagster's backfills and jobs run a day's parents before it).
    """
    from strata.checks import results

    keys = sorted(set(upstream), key=lambda k: k.path)
    verdict = Verdict(window, publish_incomplete=publish_incomplete)
    verdict.blocked = results.blocked_partitions(con, [k.to_user_string() for k in keys], window)
    graph = context.job_def.asset_layer
    now = datetime.now(UTC)
    for key in keys:
        if not graph.has(key):
            continue
        parent = graph.get(key).partitions_def
        if not isinstance(parent, dg.TimeWindowPartitionsDefinition) or not finer(parent, window.grain):
            continue
        members = window.members(grain_of(parent), parent.timezone)
        first = parent.start.astimezone(UTC)
        last = min(parent.end.astimezone(UTC), now) if parent.end is not None else now
        done = context.instance.get_materialized_partitions(key)
        for p, parts in members.items():
            wanted = [f for f in parts if f.start >= first and f.end <= last]
            absent = [f.key for f in wanted if f.key not in done]
            if absent:
                shown = ", ".join(absent[:6]) + (f" and {len(absent) - 6} more" if len(absent) > 6 else "")
                verdict.missing.setdefault(p, []).append(f"{key.to_user_string()} {shown}")
    return verdict


def finer(parent: dg.TimeWindowPartitionsDefinition, grain: str) -> bool:
    """Whether ``parent``'s partitions are of a finer grain than ``grain`` (hours under days, days under months)."""
    order = {"hourly": 0, "daily": 1, "monthly": 2}
    return order[grain_of(parent)] < order[grain]


#: The result, in ``quality.check_results``, of each partition a gated step judged: failed (blocking)
#: for a partition it left as it was, so that a later run of something downstream holds it back too.
GATE_CHECK = "upstream_complete"


def record_verdict(con, assets: Iterable[str], verdict: Verdict, run_id: str) -> None:
    """Store :data:`GATE_CHECK` for every partition of the verdict's window, for each of ``assets``.

    A skipped partition fails it (its reasons as the detail); a built one passes, replacing an
    earlier failure.
    """
    from strata.checks import CheckOutcome, PartitionResult, results

    reasons = verdict.reasons()
    outcome = CheckOutcome(
        GATE_CHECK,
        "error",
        [PartitionResult(p, p.key not in reasons, reasons.get(p.key, "built")) for p in verdict.window.partitions],
    )
    for asset in assets:
        results.record(con, asset, [outcome], run_id)


def skipped_error(asset: str, verdict: Verdict) -> dg.Failure:
    """The step's failure after it built what it could: each skipped partition and why."""
    error = PartitionsSkippedError(asset, len(verdict.build), len(verdict.window), verdict.reasons())
    return dg.Failure(str(error), allow_retries=False)


def upstream_keys(assets_def: dg.AssetsDefinition) -> list[dg.AssetKey]:
    """The keys an asset (or dbt multi-asset) reads that it does not produce itself."""
    own = set(assets_def.keys)
    return sorted((k for k in assets_def.dependency_keys if k not in own), key=lambda k: k.path)


def downstream_in_run(context: dg.AssetExecutionContext, key: dg.AssetKey) -> bool:
    """Whether this run also materializes an asset downstream of ``key`` (whose step judges after it)."""
    layer = context.job_def.asset_layer
    children = layer.get(key).child_keys
    selected = context.dagster_run.asset_selection or layer.executable_asset_keys
    return bool(set(children) & set(selected))


def record_check_events(con, events: Iterable, partitions: Iterable[Partition] | None, run_id: str) -> None:
    """Store the results of the asset check events (dbt tests) for ``partitions`` (None: unpartitioned)."""
    from strata.checks import CheckOutcome, PartitionResult, results

    covered = list(partitions) if partitions is not None else [None]
    by_asset: dict[str, list[CheckOutcome]] = {}
    for event in events:
        if isinstance(event, dg.AssetCheckResult | dg.AssetCheckEvaluation) and event.asset_key is not None:
            severity = "warn" if event.severity == dg.AssetCheckSeverity.WARN else "error"
            detail = "dbt test passed" if event.passed else "dbt test failed"
            outcome = CheckOutcome(
                event.check_name, severity, [PartitionResult(p, event.passed, detail) for p in covered]
            )
            by_asset.setdefault(event.asset_key.to_user_string(), []).append(outcome)
    for asset, outcomes in by_asset.items():
        results.record(con, asset, outcomes, run_id)


def run_window(run_tags: Mapping[str, str], partitions_def: dg.PartitionsDefinition) -> PartitionWindow | None:
    """The window of a run from its partition tags (a single key or a range), or None."""
    start = run_tags.get("dagster/asset_partition_range_start") or run_tags.get("dagster/partition")
    end = run_tags.get("dagster/asset_partition_range_end") or run_tags.get("dagster/partition")
    if not start or not end:
        return None
    from strata.defs.partitions import window_of_partitions

    return window_of_partitions(partitions_def, start, end)
