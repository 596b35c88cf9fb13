"""Typed specs of a registered dataset: the contract between an analyst's YAML and the platform.

These pydantic models are the registry's single source of truth: the loader validates YAML against
them, Dagster definitions are built from them, and ``strata registry schema`` prints their JSON
Schema. Vocabulary follows dlt's write dispositions and SQLMesh's model kinds where they overlap:
``replace`` (snapshot), ``append``, ``overwrite_partition`` and ``merge`` (upsert by primary key).

This module knows nothing of Dagster or DuckDB.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

#: A SQL identifier Strata accepts for dataset and column names: lower snake_case, at most 63 chars.
Identifier = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]*$", max_length=63)]


class StrictModel(BaseModel):
    """Base of every spec: unknown keys are errors, values are immutable after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Column(StrictModel):
    """One declared column of a dataset's contract.

    ``type`` is a DuckDB SQL type (``BIGINT``, ``VARCHAR``, ``DATE``, ``DECIMAL(15,2)`` ...).
    """

    name: Identifier
    type: str
    nullable: bool = True
    description: str = ""


class FilesSource(StrictModel):
    """Files dropped in the landing zone.

    ``path`` is relative to the landing root. For partitioned datasets it is a template in which
    ``{date}`` stands for the partition date (ISO ``YYYY-MM-DD``).
    """

    type: Literal["files"] = "files"
    format: Literal["csv", "parquet", "json", "ndjson"]
    path: str


class DailyPartitioning(StrictModel):
    """Daily partitions from ``start`` to ``end`` (both inclusive; no ``end`` means up to today)."""

    type: Literal["daily"] = "daily"
    column: Identifier | None = None
    start: date
    end: date | None = None
    timezone: str = "UTC"
    lookback_days: int = Field(default=0, ge=0)


LoadStrategy = Literal["replace", "append", "overwrite_partition", "merge"]
Layer = Literal["raw", "staging", "mart"]


class Dataset(StrictModel):
    """A registered dataset: identity, source, partitioning, load strategy and schema contract."""

    name: Identifier
    description: str = ""
    owners: list[str] = Field(default_factory=list)
    group: Identifier = "raw"
    tags: dict[str, str] = Field(default_factory=dict)
    layer: Layer = "raw"
    source: FilesSource
    partitioning: DailyPartitioning | None = None
    load: LoadStrategy = "replace"
    primary_key: list[Identifier] = Field(default_factory=list)
    columns: list[Column] = Field(default_factory=list)

    @property
    def table(self) -> str:
        """The warehouse table, ``<layer>.<name>``."""
        return f"{self.layer}.{self.name}"
