"""The quality gate: no build over failed upstream checks, and every check result recorded.

Results of Python checks and dbt tests are recorded for the gates downstream.

Dagster already skips downstream steps in the run where a blocking check fails. The gate closes
the rest of the gap (dagster-io/dagster#25112): a later run, of dbt models or of a SQL-derived
dataset, does not build on partitions whose upstream failed a blocking check, whoever launches
it. It reads :mod:`strata.checks.results`.
"""

from collections.abc import Iterable

import dagster as dg

from strata.errors import BlockedByChecksError
from strata.sources import DateWindow


def gate(con, upstream: list[str], window: DateWindow | None) -> None:
    """Raise :class:`BlockedByChecksError` if a blocking check on ``upstream`` failed in ``window``."""
    from strata.checks import results

    failures = results.blocking_failures(
        con, upstream, window.start if window else None, window.end if window else None
    )
    if failures:
        raise BlockedByChecksError(failures)


def upstream_keys(assets_def: dg.AssetsDefinition) -> list[str]:
    """The keys an asset (or dbt multi-asset) reads that it does not produce itself."""
    own = set(assets_def.keys)
    return sorted(k.to_user_string() for k in assets_def.dependency_keys if k not in own)


def record_check_events(con, events: Iterable, window: DateWindow | None, run_id: str) -> None:
    """Store the results of the asset check events (dbt tests) for the partitions of ``window``."""
    from strata.checks import CheckOutcome, PartitionResult, results

    days = window.days() if window is not None else [None]
    by_asset: dict[str, list[CheckOutcome]] = {}
    for event in events:
        if isinstance(event, dg.AssetCheckResult | dg.AssetCheckEvaluation) and event.asset_key is not None:
            severity = "warn" if event.severity == dg.AssetCheckSeverity.WARN else "error"
            detail = "dbt test passed" if event.passed else "dbt test failed"
            outcome = CheckOutcome(event.check_name, severity, [PartitionResult(d, event.passed, detail) for d in days])
            by_asset.setdefault(event.asset_key.to_user_string(), []).append(outcome)
    for asset, outcomes in by_asset.items():
        results.record(con, asset, outcomes, run_id)


def run_window(run_tags: dict, partitions_def: dg.PartitionsDefinition) -> DateWindow | None:
    """The window of a run from its partition tags (a single key or a range), or None."""
    start = run_tags.get("dagster/asset_partition_range_start") or run_tags.get("dagster/partition")
    end = run_tags.get("dagster/asset_partition_range_end") or run_tags.get("dagster/partition")
    if not start or not end:
        return None
    from strata.defs.partitions import grain_of

    first = partitions_def.time_window_for_partition_key(start)
    last = partitions_def.time_window_for_partition_key(end)
    grain = grain_of(partitions_def)
    if grain == "hourly":
        return DateWindow(first.start.replace(tzinfo=None), last.end.replace(tzinfo=None), grain)
    return DateWindow(first.start.date(), last.end.date(), grain)
