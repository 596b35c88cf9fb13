"""SQLite event-log storage that writes a batch of asset events in one transaction per database.

Dagster's embedded default (``SqliteEventLogStorage``) opens a new SQLite engine and commits once
per event, and it writes each asset event twice (the run's database and the cross-run index
database). A range run of N days emits N ``ASSET_MATERIALIZATION`` events per asset, one per
partition: 2,406 days of one asset cost about 2 minutes here, 7 to 45 ms an event.

Dagster already groups those events: with ``DAGSTER_EVENT_BATCH_SIZE`` > 0 a step's partition
materializations reach ``store_event_batch`` together, but only ``PostgresEventLogStorage``
implements it (the base class loops over ``store_event``). This class implements it for SQLite:
one insert transaction into the run's database, one into the index database (the event rows, their
tags, and the latest event per asset in the asset table), as ``PostgresEventLogStorage`` does.
Everything else (other event types, mixed batches) is Dagster's own code path.

It also stores one ``PLANNED`` row per planned asset check instead of one per partition of the
run. Dagster 1.13 gives an *unpartitioned* check's planned event the run's whole partition subset
(``DagsterRun.get_resolved_partitions_subset_for_events`` returns ``run.partitions_subset`` without
looking at the check's partitions), so a 2,406-day run wrote 2,406 rows per check, each with the
serialized event (about 3 s per check), and left them ``PLANNED`` forever: the unpartitioned
evaluation that follows updates the row whose partition is NULL. Every Strata check is
unpartitioned (it judges the run's window and names the partitions in its metadata). A
partitioned evaluation still gets its own row: Dagster inserts one when no planned row matches.

Configure it in ``dagster.yaml`` (Dagster's documented extension point for storages)::

    event_log_storage:
      module: strata.dagster_instance.sqlite_event_log
      class: BatchedSqliteEventLogStorage

``base_dir`` defaults to ``$DAGSTER_HOME/history/runs``, where Dagster keeps SQLite event logs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from dagster import DagsterEventType, Field, StringSource
from dagster._core.events import AssetCheckEvaluationPlanned
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log import SqliteEventLogStorage
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._serdes import ConfigurableClassData
from dagster_shared.record import copy

#: The event types written in one transaction; others take Dagster's per-event path.
BATCHED_EVENT_TYPES = frozenset({DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION})


def default_base_dir() -> str:
    """``$DAGSTER_HOME/history/runs``: Dagster's own location for SQLite event logs.

    Raises:
        ValueError: ``DAGSTER_HOME`` is not set and no ``base_dir`` was configured.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        raise ValueError("BatchedSqliteEventLogStorage needs DAGSTER_HOME, or base_dir in dagster.yaml")
    return os.path.join(home, "history", "runs")


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with a real ``store_event_batch`` (see the module docstring)."""

    def __init__(self, base_dir: str | None = None, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir or default_base_dir(), inst_data=inst_data)

    @classmethod
    def config_type(cls):
        """``base_dir`` (optional, default ``$DAGSTER_HOME/history/runs``)."""
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> BatchedSqliteEventLogStorage:
        """Build from the instance's config block."""
        return cls(inst_data=inst_data, **config_value)

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """Store a batch of asset materializations or observations of one run in two transactions.

        Each event gets the same rows as :meth:`store_event` would give it: one in the run's
        database, one in the index database with its indexed tags, and the asset table keeps the
        latest event of each asset. Any other batch goes through Dagster's per-event path.
        """
        if not self._batchable(events):
            super().store_event_batch(events)
            return
        rows = [self._event_to_row(event) for event in events]
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(SqlEventLogStorageTable.insert(), rows)
        with self.index_transaction() as conn:
            insert = SqlEventLogStorageTable.insert()
            ids = [int(conn.execute(insert, row).inserted_primary_key[0]) for row in rows]
            self._store_asset_event_tags(conn, events, ids)
            latest = {}
            for event, event_id in zip(events, ids, strict=True):
                latest[event.get_dagster_event().asset_key] = (event, event_id)
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)

    @staticmethod
    def _batchable(events: Sequence[EventLogEntry]) -> bool:
        return (
            len(events) > 1
            and len({e.run_id for e in events}) == 1
            and all(
                e.is_dagster_event
                and e.get_dagster_event().event_type in BATCHED_EVENT_TYPES
                and e.get_dagster_event().asset_key is not None
                for e in events
            )
        )

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """One ``PLANNED`` row for the check (partition NULL), whatever the run's partitions."""
        planned = event.get_dagster_event().event_specific_data
        if isinstance(planned, AssetCheckEvaluationPlanned) and planned.partitions_subset is not None:
            event = event._replace(
                dagster_event=event.get_dagster_event()._replace(
                    event_specific_data=copy(planned, partitions_subset=None)
                )
            )
        super()._store_asset_check_evaluation_planned(event, event_id)
