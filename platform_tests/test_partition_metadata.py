"""Per-partition metadata of a range run, recorded in one update (strata.defs.partition_metadata)."""

import dagster as dg
import pytest

from strata.defs.partition_metadata import add_partition_metadata

DAYS = dg.DailyPartitionsDefinition(start_date="2024-01-01", end_date="2024-03-01")
KEYS = DAYS.get_partition_keys()


def _range_run(asset: dg.AssetsDefinition, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [asset],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": KEYS[0],
            "dagster/asset_partition_range_end": KEYS[-1],
        },
        raise_on_error=False,
    )


def _metadata_by_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dict]:
    records = instance.fetch_materializations(key, limit=1000).records
    return {r.partition_key: {k: v.value for k, v in r.asset_materialization.metadata.items()} for r in records}


def test_each_partition_of_a_range_run_gets_its_own_figures():
    @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
    def daily(context: dg.AssetExecutionContext) -> None:
        context.add_asset_metadata({"run_total": len(context.partition_keys)})
        add_partition_metadata(context, context.assets_def.key, {k: {"n": i} for i, k in enumerate(KEYS)})
        add_partition_metadata(context, context.assets_def.key, {KEYS[0]: {"first": True}})

    with dg.instance_for_test() as instance:
        assert _range_run(daily, instance).success
        got = _metadata_by_partition(instance, daily.key)
    assert sorted(got) == KEYS  # one event per partition (60 days)
    for i, k in enumerate(KEYS):
        assert got[k]["n"] == i, k
        assert got[k]["run_total"] == len(KEYS)
    assert got[KEYS[0]]["first"] is True and "first" not in got[KEYS[1]]


def test_the_same_figures_as_dagsters_one_call_per_partition():
    def build(name: str, bulk: bool) -> dg.AssetsDefinition:
        @dg.asset(name=name, partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
        def asset(context: dg.AssetExecutionContext) -> None:
            figures = {k: {"n": i, "day": k} for i, k in enumerate(KEYS)}
            if bulk:
                add_partition_metadata(context, context.assets_def.key, figures)
            else:
                for k, md in figures.items():
                    context.add_asset_metadata(md, partition_key=k)

        return asset

    with dg.instance_for_test() as instance:
        bulk, public = build("bulk", True), build("public", False)
        assert _range_run(bulk, instance).success and _range_run(public, instance).success
        assert _metadata_by_partition(instance, bulk.key) == _metadata_by_partition(instance, public.key)


def test_a_partition_outside_the_run_or_a_foreign_asset_is_refused():
    seen: list[str] = []

    @dg.asset(partitions_def=DAYS, backfill_policy=dg.BackfillPolicy.single_run())
    def daily(context: dg.AssetExecutionContext) -> None:
        for key, figures in ((context.assets_def.key, {"2025-01-01": {"n": 1}}), (dg.AssetKey("other"), {})):
            with pytest.raises(dg.DagsterInvariantViolationError) as err:
                add_partition_metadata(context, key, figures)
            seen.append(str(err.value))

    with dg.instance_for_test() as instance:
        assert _range_run(daily, instance).success
    assert "2025-01-01" in seen[0] and "not in this run's range" in seen[0]
    assert "other" in seen[1]
