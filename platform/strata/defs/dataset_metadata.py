"""What a registry dataset's asset shows in the UI: its declared schema, materialization and check metadata.

Rendering only: the asset factory (:mod:`strata.defs.registry_assets`) calls these after the load
or build, with the warehouse connection it already has.
No ``from __future__ import annotations`` here: Dagster reads annotations at runtime.
"""

import dagster as dg

from strata.partition_window import Partition, PartitionWindow
from strata.registry.models import CDC_COLUMNS, Dataset
from strata.sources import LOAD_COLUMNS

#: Longest window (partitions) whose materializations carry a preview of rows (a range run copies
#: its metadata onto every partition's event).
PREVIEW_MAX_PARTITIONS = 31


def declared_schema(dataset: Dataset) -> dg.TableSchema:
    """The declared columns (and, for raw, the load columns) as the asset's ``dagster/column_schema``."""
    columns = [
        dg.TableColumn(
            c.name,
            c.type,
            description=c.description or None,
            constraints=dg.TableColumnConstraints(nullable=c.nullable, unique=c.unique),
        )
        for c in dataset.columns
    ]
    if dataset.layer == "raw":
        columns += [dg.TableColumn(c, "load metadata") for c in LOAD_COLUMNS]
        if dataset.is_cdc:
            columns += [dg.TableColumn(c, "change metadata") for c in CDC_COLUMNS]
    return dg.TableSchema(columns=columns)


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "(none)"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r.get(h, "")).replace("|", "\\|") for h in head) + " |" for r in rows]
    return "\n".join(lines)


def check_metadata(values: dict) -> dict:
    """Check outcome metadata for the UI: tables of rows as markdown, mappings as JSON."""
    out = {}
    for key, value in values.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            out[key] = dg.MetadataValue.md(_markdown_table(value))
        elif isinstance(value, dict | list):
            out[key] = dg.MetadataValue.json(value)
        else:
            out[key] = value
    return out


def materialization_metadata(
    con, dataset: Dataset, report, window: PartitionWindow | None, incomplete: dict[Partition, list[str]] | None = None
) -> tuple[dict, dict[str, dict]]:
    """The materialization's metadata, and each partition's own (``{partition key: metadata}``).

    The run's: ``rows_read_in_run``, ``rows_written_in_run`` (rows), ``rows_quarantined_in_run``
    (raw), the source's facts, ``dagster/row_count`` (the table's rows, the UI's "Row count"),
    ``dagster/column_schema`` and a ``preview`` of up to 5 rows (windows of at most
    :data:`PREVIEW_MAX_PARTITIONS`). Each partition's: ``rows_in_partition``, ``rows_quarantined``
    (raw), and for a partition built while incomplete ``complete: false`` with what was missing.
    """
    from strata import warehouse

    by_partition: dict[str, dict] = {}
    for partition, rows in report.rows_by_partition.items():
        own: dict = {"rows_in_partition": rows}
        if dataset.layer == "raw":
            own["rows_quarantined"] = report.quarantined_by_partition.get(partition, 0)
        if incomplete is not None:
            missing = incomplete.get(partition)
            own["complete"] = not missing
            if missing:
                own["missing_upstream"] = "; ".join(missing)
        by_partition[partition.key] = own
    metadata: dict = {
        "rows_read_in_run": report.rows_read,
        "rows_written_in_run": report.rows_written,
        **{k: v for k, v in report.metadata.items() if isinstance(v, str | int | float)},
    }
    if dataset.layer == "raw":
        metadata["rows_quarantined_in_run"] = report.rows_quarantined
    metadata["dagster/row_count"] = (
        report.table_rows
        if report.table_rows is not None
        else con.execute(f"select count(*) from {warehouse.qualified(dataset.table)}").fetchall()[0][0]
    )
    columns = warehouse.columns(con, dataset.table)
    metadata["dagster/column_schema"] = dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns])
    if window is None or len(window) <= PREVIEW_MAX_PARTITIONS:
        where = ""
        if window is not None:
            column = "_partition_date" if dataset.layer == "raw" else dataset.partitioning.column  # type: ignore[union-attr]
            kind = warehouse.column_kind_of(con, dataset.table, column)  # type: ignore[arg-type]
            where = f" where {window.predicate(warehouse.quote(column), kind)}"  # type: ignore[arg-type]
        rows = con.execute(f"select * from {warehouse.qualified(dataset.table)}{where} limit 5").fetchall()
        names = [n for n, _ in columns]
        metadata["preview"] = dg.MetadataValue.table(
            records=[
                dg.TableRecord(
                    {
                        n: (v if isinstance(v, int | float | bool) or v is None else str(v))
                        for n, v in zip(names, r, strict=True)
                    }
                )
                for r in rows
            ],
            schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns]),
        )
    return metadata, by_partition


def add_column_lineage(con, dataset: Dataset, metadata: dict) -> None:
    """Add ``dagster/column_lineage`` for a SQL-derived dataset to ``metadata``.

    sqlglot's lineage of its SELECT (:func:`strata.registry.sql_columns.column_lineage`), over the
    columns its tables have now.
    """
    from strata import warehouse
    from strata.registry.sql import parse_select, tables_read
    from strata.registry.sql_columns import column_lineage

    statement, problem = parse_select(dataset.select or "")
    if statement is None or problem is not None:
        return
    columns = {}
    for ref in tables_read(statement):
        relation = ref.qualified if ref.schema else f"raw.{ref.name}"
        if warehouse.table_exists(con, relation):
            columns[relation] = [c for c, _ in warehouse.columns(con, relation)]
    found = column_lineage(statement, columns)
    if found:
        metadata["dagster/column_lineage"] = dg.TableColumnLineage(
            {
                output: [
                    dg.TableColumnDep(asset_key=dg.AssetKey(table.split(".", 1)), column_name=column)
                    for table, column in deps
                ]
                for output, deps in found.items()
                if deps
            }
        )
