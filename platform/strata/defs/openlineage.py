"""OpenLineage run events for every materialization: registry datasets, dbt models, published marts.

Each asset a step materializes is one OpenLineage run (job ``<namespace>/<schema>.<name>``):
``START`` when the step begins, then ``COMPLETE`` with what was written or ``FAIL`` with the error
(OpenLineage spec 2-0-2, built and sent with ``openlineage-python``). Facets:

* run: ``nominalTime`` (the partition window ``[start, end)``), ``parent`` (the Dagster run and
  job), ``errorMessage`` on FAIL;
* job: ``jobType`` (BATCH, integration STRATA, ASSET);
* output: ``schema`` (the table's columns and types), ``columnLineage`` (dbt models: the
  ``dagster/column_lineage`` dagster-dbt derives from the manifest's compiled SQL; SQL datasets:
  sqlglot's parse of their SELECT), ``dataQualityAssertions`` (the step's checks, one assertion
  each), ``outputStatistics`` (``rowCount``: the rows this run wrote, as the spec defines it) and
  ``strata_table`` (``rowCount``: the rows in the whole table after the run; a custom facet);
* inputs: the upstream tables, or a raw dataset's source (landing files, a PostgreSQL table, an
  HTTP API) named as the OpenLineage naming spec says (``postgres://host:port`` + ``db.schema.table``).

Warehouse tables are in namespace ``duckdb://<warehouse file>`` or ``ducklake://<catalog>``.

Where events go comes from :class:`strata.settings.Settings` (``STRATA_LINEAGE_*``): a JSON-lines
file (default), an HTTP endpoint (Marquez's ``/api/v1/lineage``), the log, or nowhere. Emission
never fails a run: an error is logged and counted (the materialization's ``openlineage_errors``).
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from urllib.parse import urlsplit

import dagster as dg

from strata.partition_window import PartitionWindow
from strata.registry.models import Dataset, FilesSource, HttpSource, PostgresSource
from strata.settings import LakeLocation, Settings

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/strata-data/strata/tree/main/platform/strata/defs/openlineage.py"

#: The key of Strata's custom dataset facet: the table's size after the run (``outputStatistics``
#: holds what the run wrote). Custom facet keys are prefixed with the producer's name (spec 2-0-2).
TABLE_FACET = "strata_table"


@lru_cache(maxsize=1)
def _table_facet_class():
    """The ``strata_table`` facet class, on the client's ``DatasetFacet`` (imported when first needed)."""
    import attr
    from openlineage.client.generated.base import DatasetFacet

    @attr.define
    class StrataTableDatasetFacet(DatasetFacet):
        """``rowCount``: the rows in the table after the run."""

        rowCount: int  # noqa: N815 - the facet's field name, as the spec's own facets spell theirs

        @staticmethod
        def _get_schema() -> str:
            return "https://github.com/strata-data/strata/tree/main/docs/lineage/StrataTableDatasetFacet.json"

    return StrataTableDatasetFacet


def table_facet(rows: int):
    """A ``strata_table`` dataset facet: ``rows`` in the table after the run."""
    return _table_facet_class()(rowCount=rows)


@lru_cache(maxsize=8)
def _client(transport: str, target: str, endpoint: str, api_key: str | None):
    """The OpenLineage client for a transport, one per process and configuration."""
    from openlineage.client import OpenLineageClient
    from openlineage.client.transport.console import ConsoleConfig, ConsoleTransport
    from openlineage.client.transport.file import FileConfig, FileTransport
    from openlineage.client.transport.http import ApiKeyTokenProvider, HttpConfig, HttpTransport, TokenProvider

    if transport == "file":
        os.makedirs(os.path.dirname(target), exist_ok=True)
        chosen = FileTransport(FileConfig(log_file_path=target, append=True))
    elif transport == "http":
        auth = ApiKeyTokenProvider({"apiKey": api_key}) if api_key else TokenProvider({})
        # a lineage server that is down must not hold a run up: two quick retries, 5 s timeout
        retry = {"total": 2, "read": 2, "connect": 2, "backoff_factor": 0.2, "status_forcelist": [500, 502, 503, 504]}
        chosen = HttpTransport(HttpConfig(url=target, endpoint=endpoint, timeout=5.0, auth=auth, retry=retry))
    else:
        chosen = ConsoleTransport(ConsoleConfig())
    return OpenLineageClient(transport=chosen)


def client_for(settings: Settings):
    """The client ``settings`` configure, or None (``STRATA_LINEAGE_TRANSPORT=none``, or http without a URL)."""
    if settings.lineage_transport == "none":
        return None
    if settings.lineage_transport == "http":
        if not settings.lineage_url:
            log.warning("STRATA_LINEAGE_TRANSPORT=http without STRATA_LINEAGE_URL: no lineage is sent")
            return None
        return _client(
            "http", settings.lineage_url, settings.lineage_endpoint, os.environ.get("STRATA_LINEAGE_API_KEY")
        )
    return _client(settings.lineage_transport, str(settings.lineage_file), "", None)


def warehouse_namespace(location) -> str:
    """The OpenLineage namespace of the warehouse's tables: the DuckDB file, or the lake's catalog."""
    if isinstance(location, LakeLocation):
        return f"ducklake://{location.catalog.removeprefix('postgres:')}"
    return f"duckdb://{location}"


def source_datasets(dataset: Dataset, landing_root) -> list[tuple[str, str]]:
    """``(namespace, name)`` of a raw dataset's source, by the OpenLineage naming spec.

    Files: ``file://<landing root>`` and the path pattern; PostgreSQL: ``postgres://host:port`` and
    ``database.schema.table`` (host, port and database from the environment the connection names;
    never a password); HTTP: ``scheme://host`` and the path.
    """
    source = dataset.source
    if isinstance(source, FilesSource):
        return [(f"file://{landing_root}", source.path)]
    if isinstance(source, PostgresSource):
        from strata.sources.postgres import resolve_env

        try:
            host = resolve_env(source.connection.host, dataset.name)
            port = resolve_env(source.connection.port, dataset.name) or "5432"
            database = resolve_env(source.connection.database, dataset.name)
        except Exception:  # noqa: BLE001 - the load reports a missing variable; lineage names it unknown
            host, port, database = "unknown", "5432", "unknown"
        table = source.table if source.table and "." in source.table else f"public.{source.table or dataset.name}"
        return [(f"postgres://{host}:{port}", f"{database}.{table}")]
    if isinstance(source, HttpSource):
        url = urlsplit(source.url)
        return [(f"{url.scheme}://{url.netloc}", url.path or "/")]
    return []


@dataclass
class Outcome:
    """What a step wrote to one asset: rows, columns, column lineage, checks."""

    #: rows this run wrote (the spec's outputStatistics.rowCount)
    rows: int | None = None
    #: rows in the whole table after the run
    table_rows: int | None = None
    schema: Sequence[tuple[str, str]] = ()
    #: output column -> [(schema.table, column)] it is computed from
    column_lineage: Mapping[str, Sequence[tuple[str, str]]] = field(default_factory=dict)
    #: (check name, passed, severity)
    checks: Sequence[tuple[str, bool, str]] = ()


def outcome_from_metadata(
    metadata: Mapping, checks: Iterable[tuple[str, bool, str]] = (), rows_written: int | None = None
) -> Outcome:
    """An :class:`Outcome` from a materialization's metadata, as dagster-dbt and Strata record it.

    Reads ``dagster/row_count`` (the table's rows), ``dagster/column_schema`` and
    ``dagster/column_lineage``; ``rows_written`` (default: Strata's ``rows_written_in_run``) is
    what the run wrote.
    """

    def value(name):
        item = metadata.get(name)
        return getattr(item, "value", item)

    schema = value("dagster/column_schema")
    lineage = value("dagster/column_lineage")
    rows = value("dagster/row_count")
    written = rows_written if rows_written is not None else value("rows_written_in_run")
    return Outcome(
        rows=int(written) if written is not None else None,
        table_rows=int(rows) if rows is not None else None,
        schema=[(c.name, c.type) for c in schema.columns] if schema is not None else (),
        column_lineage={
            column: [(".".join(d.asset_key.path[-2:]), d.column_name) for d in deps]
            for column, deps in lineage.deps_by_column.items()
        }
        if lineage is not None
        else {},
        checks=list(checks),
    )


class StepLineage:
    """The OpenLineage runs of one Dagster step, one per asset key it materializes.

    Call :meth:`start` first, then :meth:`complete` per asset written, and :meth:`fail` (for the
    rest) if the step fails; :meth:`finish` ends what is still open as failed or not materialized.
    """

    def __init__(
        self,
        context: dg.AssetExecutionContext | dg.OpExecutionContext,
        settings: Settings,
        keys: Iterable[dg.AssetKey],
        inputs: Mapping[dg.AssetKey, Sequence[tuple[str, str]]],
        window: PartitionWindow | None,
        warehouse_location,
    ):
        from openlineage.client.uuid import generate_new_uuid

        self.context, self.settings, self.window = context, settings, window
        self.client = client_for(settings)
        self.namespace = warehouse_namespace(warehouse_location)
        self.keys = list(keys)
        self.inputs = inputs
        self.run_ids = {key: str(generate_new_uuid()) for key in self.keys}
        self.open = set(self.keys)
        self.errors = 0

    # ------------------------------------------------------------------ events

    def _run(self, key: dg.AssetKey, error: BaseException | None = None):
        from openlineage.client.event_v2 import Run
        from openlineage.client.facet_v2 import error_message_run, nominal_time_run, parent_run

        facets: dict = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self.context.run_id),
                job=parent_run.Job(namespace=self.settings.lineage_namespace, name=self.context.job_name),
            )
        }
        if self.window is not None:
            facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_utc_iso(self.window.start),
                nominalEndTime=_utc_iso(self.window.end),
            )
        if error is not None:
            facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=str(error)[:20_000],
                programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error))[-20_000:],
            )
        return Run(runId=self.run_ids[key], facets=facets)

    def _job(self, key: dg.AssetKey):
        from openlineage.client.event_v2 import Job
        from openlineage.client.facet_v2 import job_type_job

        return Job(
            namespace=self.settings.lineage_namespace,
            name=".".join(key.path),
            facets={
                "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="STRATA", jobType="ASSET")
            },
        )

    def _inputs(self, key: dg.AssetKey):
        from openlineage.client.event_v2 import InputDataset

        return [InputDataset(namespace=ns, name=name) for ns, name in self.inputs.get(key, ())]

    def _output(self, key: dg.AssetKey, outcome: Outcome | None):
        from openlineage.client.event_v2 import OutputDataset
        from openlineage.client.facet_v2 import (
            column_lineage_dataset,
            data_quality_assertions_dataset,
            output_statistics_output_dataset,
            schema_dataset,
        )

        facets: dict = {}
        output_facets: dict = {}
        if outcome is not None:
            if outcome.schema:
                facets["schema"] = schema_dataset.SchemaDatasetFacet(
                    fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in outcome.schema]
                )
            if outcome.column_lineage:
                facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
                    fields={
                        column: column_lineage_dataset.Fields(
                            inputFields=[
                                column_lineage_dataset.InputField(namespace=self.namespace, name=table, field=source)
                                for table, source in deps
                            ],
                            transformationDescription="",
                            transformationType="",
                        )
                        for column, deps in outcome.column_lineage.items()
                        if deps
                    }
                )
            if outcome.checks:
                facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[
                        data_quality_assertions_dataset.Assertion(assertion=name, success=passed, severity=severity)
                        for name, passed, severity in outcome.checks
                    ]
                )
            if outcome.rows is not None:
                output_facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                    rowCount=outcome.rows
                )
            if outcome.table_rows is not None:
                facets[TABLE_FACET] = table_facet(outcome.table_rows)
        return OutputDataset(
            namespace=self.namespace, name=".".join(key.path), facets=facets, outputFacets=output_facets
        )

    def _emit(self, state: str, key: dg.AssetKey, outcome: Outcome | None = None, error: BaseException | None = None):
        if self.client is None:
            return
        try:
            from openlineage.client.event_v2 import RunEvent, RunState

            event = RunEvent(
                eventType=getattr(RunState, state),
                eventTime=datetime.now(UTC).isoformat(),
                run=self._run(key, error),
                job=self._job(key),
                inputs=self._inputs(key),
                outputs=[self._output(key, outcome)],
                producer=PRODUCER,
            )
            self.client.emit(event)
        except Exception as err:  # noqa: BLE001 - lineage never fails a run
            self.errors += 1
            self.context.log.warning(f"OpenLineage {state} event for {key.to_user_string()} not sent: {err}")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """START for every asset of the step."""
        for key in self.keys:
            self._emit("START", key)

    def complete(self, key: dg.AssetKey, outcome: Outcome) -> None:
        """COMPLETE for ``key`` with what was written."""
        if key in self.open:
            self.open.discard(key)
            self._emit("COMPLETE", key, outcome)

    def fail(self, error: BaseException, outcomes: Mapping[dg.AssetKey, Outcome] | None = None) -> None:
        """FAIL with ``error`` for every asset not yet completed (with what it wrote, if anything)."""
        for key in [k for k in self.keys if k in self.open]:
            self.open.discard(key)
            self._emit("FAIL", key, (outcomes or {}).get(key), error)

    def finish(self) -> None:
        """ABORT for every asset the step did not materialize (dbt skipped it)."""
        for key in [k for k in self.keys if k in self.open]:
            self.open.discard(key)
            self._emit("ABORT", key)


def _utc_iso(moment: datetime) -> str:
    """An instant as ISO 8601 in UTC (``2010-03-14T09:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upstream_tables(assets_def: dg.AssetsDefinition, namespace: str) -> dict[dg.AssetKey, list[tuple[str, str]]]:
    """Each asset's upstream warehouse tables as ``(namespace, schema.table)`` (keys are ``schema/name``)."""
    return {
        key: [(namespace, ".".join(dep.path[-2:])) for dep in sorted(deps, key=lambda k: k.path)]
        for key, deps in assets_def.asset_deps.items()
    }
