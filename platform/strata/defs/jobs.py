"""The jobs that schedules and sensors launch: one per registry group and partitioning.

For each group of raw datasets (the registry's ``group``, default ``raw``):

* ``daily_<group>``: its daily-partitioned datasets and everything downstream with the same
  partitions (staging, marts, published), so that one run takes a day "through the marts";
* ``snapshots_<group>``: its unpartitioned datasets and everything unpartitioned downstream.

An unpartitioned asset downstream of a partitioned one (a whole-history summary, say) is in
neither job: declarative automation refreshes it (:mod:`strata.defs.automation`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

from strata.defs.registry_assets import dataset_key
from strata.registry.models import Dataset, Partitioning


@dataclass
class GroupJob:
    """A job over one group's raw datasets and their downstream assets.

    Attributes:
        job: the asset job (``daily_<group>`` or ``snapshots_<group>``).
        roots: ``{dataset name: asset key}`` of the group's raw datasets in the job.
        with_downstream: ``{root key: keys}``: the root and the job's assets downstream of it, what a
            run for a changed root selects.
        partitions_def: the job's daily partitions; None for a snapshot job.
        lookback: the largest lookback of the roots, in partitions (0 for snapshots).
        partitioning: the roots' partitioning spec (the first's; they share one definition), or None.
    """

    job: dg.UnresolvedAssetJobDefinition
    roots: dict[str, dg.AssetKey]
    with_downstream: dict[dg.AssetKey, list[dg.AssetKey]] = field(default_factory=dict)
    partitions_def: dg.PartitionsDefinition | None = None
    lookback: int = 0
    partitioning: Partitioning | None = None

    def selection_for(self, roots: Sequence[dg.AssetKey]) -> list[dg.AssetKey]:
        """The keys a run for the changed ``roots`` materializes (sorted, no duplicates)."""
        return sorted({k for r in roots for k in self.with_downstream[r]}, key=lambda k: k.to_user_string())


def partitions_by_key(assets: Sequence[dg.AssetsDefinition]) -> dict[dg.AssetKey, dg.PartitionsDefinition | None]:
    """``{asset key: its partitions definition}`` for every asset key of ``assets``."""
    return {key: a.partitions_def for a in assets for key in a.keys}


def build_group_jobs(datasets: Mapping[str, Dataset], assets: Sequence[dg.AssetsDefinition]) -> list[GroupJob]:
    """One :class:`GroupJob` per (group, partitioning) of the raw datasets in ``datasets``.

    Raw datasets of one group whose partitionings differ (different start dates, say) get one
    job each, suffixed ``_2``, ``_3``: Dagster runs one partitions definition per job.
    """
    parts = partitions_by_key(assets)
    # one asset graph for every root: resolving a selection against the list of assets rebuilds the
    # graph each time (quadratic: 66 of 80 s of loading 1,000 datasets, dagster#16129)
    graph = AssetGraph.from_assets(assets)
    by_group: dict[tuple[str, object], list[Dataset]] = {}
    for ds in datasets.values():
        if ds.layer == "raw":
            by_group.setdefault((ds.group_name, parts.get(dataset_key(ds))), []).append(ds)
    jobs, taken = [], set()
    for (group, partitions_def), members in sorted(by_group.items(), key=lambda kv: (kv[0][0], kv[0][1] is None)):
        grain = members[0].partitioning.type if partitions_def is not None and members[0].partitioning else None
        base = f"{grain or 'snapshots'}_{group}"
        name, n = base, 1
        while name in taken:
            n += 1
            name = f"{base}_{n}"
        taken.add(name)
        roots = {ds.name: dataset_key(ds) for ds in sorted(members, key=lambda d: d.name)}
        with_downstream = {}
        for key in roots.values():
            below = dg.AssetSelection.assets(key).downstream().resolve(graph)
            with_downstream[key] = sorted((k for k in below if parts.get(k) == partitions_def), key=str)
        selection = sorted({k for keys in with_downstream.values() for k in keys}, key=str)
        job = dg.define_asset_job(
            name,
            selection=dg.AssetSelection.assets(*selection),
            description=(
                f"The {group} group's {f'{grain} partitions' if partitions_def else 'snapshots'} "
                "and everything downstream of them with the same partitioning."
            ),
            tags={"strata/group": group},
        )
        lookback = max((ds.partitioning.lookback_partitions for ds in members if ds.partitioning), default=0)
        jobs.append(GroupJob(job, roots, with_downstream, partitions_def, lookback, members[0].partitioning))
    return jobs
