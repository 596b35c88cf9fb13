"""Per-partition materialization metadata for a range run, recorded in one update.

A range run (single-run backfill policy) emits one ``ASSET_MATERIALIZATION`` per partition, and
Strata gives each its own figures (``rows_in_partition``, ``rows_quarantined``). Dagster's public
way, ``context.add_asset_metadata(md, asset_key=k, partition_key=p)`` once per partition, is
quadratic in the days of the range: each call lists every partition key of the run's range to
check ``p``, and copies every metadata entry recorded so far (``OutputMetadataAccumulator`` is
immutable). At SF 1 (2,406 days) that was about 24 s of each dbt step after dbt had finished, and
most of the raw loads' step time beyond DuckDB's (docs/benchmarks.md, 2026-11-30).

``add_partition_metadata`` makes the same checks once and adds a whole range in one copy. It
writes the step context's metadata accumulator, which is Dagster-internal (1.13): a test
(``platform_tests/test_partition_metadata.py``) checks each partition's event carries its own
figures, so an upgrade that changes the internals fails there, not silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator


def add_partition_metadata(
    context: dg.AssetExecutionContext, asset_key: dg.AssetKey, by_partition: Mapping[str, Mapping[str, Any]]
) -> None:
    """Add ``by_partition[p]`` to the materialization event of partition ``p`` of ``asset_key``.

    Same result as ``context.add_asset_metadata(md, asset_key=asset_key, partition_key=p)`` for each
    item, in time linear in the number of partitions.

    Raises:
        dagster.DagsterInvariantViolationError: ``asset_key`` is not materialized by this step, or
            a partition key is not in the run's range.
    """
    if asset_key not in context.assets_def.keys:
        raise dg.DagsterInvariantViolationError(
            f"asset '{asset_key.to_user_string()}' is not materialized by this step"
        )
    targeted = set(context.partition_keys)
    outside = sorted(set(by_partition) - targeted)
    if outside:
        raise dg.DagsterInvariantViolationError(
            f"partition '{outside[0]}' of '{asset_key.to_user_string()}' is not in this run's range"
        )
    step = context.op_execution_context._step_execution_context  # noqa: SLF001 (see module docstring)
    merged = dict(step._metadata_accumulator.per_output_metadata)  # noqa: SLF001
    for partition_key, metadata in by_partition.items():
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=partition_key)
        merged[handle] = {**merged.get(handle, {}), **metadata}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=merged)  # noqa: SLF001
