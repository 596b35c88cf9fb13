"""Landing-zone files: which files a load needs, and the DuckDB reader that scans them.

A partitioned dataset's ``path`` is a template with ``{date}``; every partition date maps to
exactly one file. A missing file is an error (an empty day is an empty file, not an absent one).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from strata.errors import MissingSourceFileError
from strata.registry.models import FilesSource

#: Name of the column DuckDB's readers add with each row's file path.
FILENAME_COLUMN = "__strata_source_path"


@dataclass(frozen=True)
class SourceFile:
    """One landing file a load reads.

    Attributes:
        path: absolute path.
        relative: path relative to the landing root, as stored in the raw ``_source_file`` column.
        partition: the partition date the file's rows belong to (None for snapshots).
    """

    path: Path
    relative: str
    partition: date | None = None


def _under_root(landing_root: Path, relative: str) -> Path:
    path = (landing_root / relative).resolve()
    if not path.is_relative_to(landing_root.resolve()):
        raise ValueError(f"source path {relative!r} escapes the landing root {landing_root}")
    return path


def partition_files(source: FilesSource, landing_root: Path, days: Iterable[date]) -> list[SourceFile]:
    """The file each partition date needs: ``source.path`` with ``{date}`` filled in."""
    files = []
    for day in days:
        relative = source.path.format(date=day.isoformat())
        files.append(SourceFile(_under_root(landing_root, relative), relative, day))
    return files


def snapshot_files(source: FilesSource, landing_root: Path) -> list[SourceFile]:
    """The file(s) of an unpartitioned dataset: ``source.path`` (no template)."""
    return [SourceFile(_under_root(landing_root, source.path), source.path)]


def require_present(dataset: str, files: Sequence[SourceFile]) -> None:
    """Raise :class:`MissingSourceFileError` naming every expected file that does not exist."""
    missing = [f.path for f in files if not f.path.is_file()]
    if missing:
        raise MissingSourceFileError(dataset, missing)


def reader_sql(source: FilesSource, paths: Sequence[Path]) -> str:
    """A DuckDB table function call that reads ``paths`` with the source's format.

    The result has the files' columns (unioned by name) plus :data:`FILENAME_COLUMN`.
    """
    listing = "[" + ", ".join(_literal(str(p)) for p in paths) + "]"
    common = f"filename = '{FILENAME_COLUMN}', union_by_name = true"
    if source.format == "parquet":
        return f"read_parquet({listing}, {common})"
    if source.format == "csv":
        return f"read_csv({listing}, {common}, header = true, auto_detect = true)"
    if source.format == "json":
        return f"read_json({listing}, {common}, format = 'array')"
    return f"read_json({listing}, {common}, format = 'newline_delimited')"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
