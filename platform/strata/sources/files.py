"""Landing-zone files: which files a load needs, and the DuckDB reader that scans them.

A partitioned dataset's ``path`` is a template with ``{date}`` (and maybe globs): each partition
date maps to the files it matches, at least one. A missing file is an error (an empty day is an
empty file, not an absent one). Paths never leave the landing root.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa

from strata import warehouse
from strata.errors import CorruptSourceFileError, MissingSourceFileError
from strata.registry.models import CsvOptions, Dataset, FilesSource
from strata.sources import DateWindow, Extract

#: Name of the column DuckDB's readers add with each row's file path.
FILENAME_COLUMN = "__strata_source_path"
_MANIFEST = "__strata_files"
REJECTS_TABLE, REJECT_SCANS_TABLE = "__strata_rejects", "__strata_reject_scans"
_REJECTS, _REJECT_SCANS = REJECTS_TABLE, REJECT_SCANS_TABLE
#: Longest CSV line read (bytes): large enough for huge text fields (DuckDB's default is 2 MB).
MAX_LINE_BYTES = 64 * 1024 * 1024


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
    root = landing_root.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise ValueError(f"source path {relative!r} escapes the landing root {landing_root}")
    return path


def _matches(landing_root: Path, relative: str) -> list[SourceFile] | None:
    """The files a (possibly globbed) relative path matches; None when it matches nothing."""
    pattern = _under_root(landing_root, relative)
    if not glob.has_magic(relative):
        return [SourceFile(pattern, relative)] if pattern.is_file() else None
    root = landing_root.resolve()
    found = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
    return [SourceFile(p, str(p.relative_to(root))) for p in found if p.resolve().is_relative_to(root)] or None


def partition_files(source: FilesSource, landing_root: Path, days: Iterable[date], dataset: str) -> list[SourceFile]:
    """Every file the partition ``days`` need.

    Raises:
        MissingSourceFileError: naming the expected path of every day that matches no file.
    """
    files, missing = [], []
    for day in days:
        relative = source.path.format(date=day.isoformat())
        found = _matches(landing_root, relative)
        if found is None:
            missing.append(landing_root / relative)
        else:
            files += [SourceFile(f.path, f.relative, day) for f in found]
    if missing:
        raise MissingSourceFileError(dataset, missing)
    return files


def snapshot_files(source: FilesSource, landing_root: Path, dataset: str) -> list[SourceFile]:
    """The file(s) of an unpartitioned dataset: ``source.path`` (globs allowed).

    Raises:
        MissingSourceFileError: the path matches no file.
    """
    found = _matches(landing_root, source.path)
    if found is None:
        raise MissingSourceFileError(dataset, [landing_root / source.path])
    return found


def reader_sql(dataset: Dataset, paths: Sequence[Path], numbered: bool = False) -> str:
    """A relation (SQL after FROM) that reads ``paths`` with the source's format and options.

    CSV is read as text (``all_varchar``): the dataset's declared types are applied afterwards,
    so that a value that does not convert is reported with its column. Malformed CSV lines (wrong
    column count, bad quoting, invalid encoding) are set aside in DuckDB's rejects tables
    (``store_rejects``) with their line numbers, never dropped. Each CSV file is sniffed and read
    on its own and the files are unioned by name: DuckDB 1.5 applies the first file's dialect to
    every file of one scan, so a feed whose files end lines with LF on some days and CRLF on
    others failed, and it refuses ``union_by_name`` beside a rejects table. With
    ``numbered``, each CSV row carries ``_source_row``, its 1-based row in its file. Parquet rows
    carry ``file_row_number``. The result has the files' columns (unioned by name) plus
    :data:`FILENAME_COLUMN`.
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    common = f"filename = '{FILENAME_COLUMN}'"
    if source.hive_partitioning:
        common += ", hive_partitioning = true"
    if source.format == "csv":
        row = ", row_number() over () as _source_row" if numbered else ""
        scans = [f"select *{row} from {_csv_scan(dataset, path, common)}" for path in paths]
        return "(" + " union all by name ".join(scans) + ")"
    listing = "[" + ", ".join(warehouse.literal(str(p)) for p in paths) + "]"
    common += ", union_by_name = true"
    if source.format == "parquet":
        return f"read_parquet({listing}, {common}, file_row_number = true)"
    kind = "array" if source.format == "json" else "newline_delimited"
    return f"read_json({listing}, {common}, format = '{kind}')"


def _csv_scan(dataset: Dataset, path: Path, common: str) -> str:
    """``read_csv`` of one file, its dialect sniffed from that file; malformed lines to the rejects tables."""
    csv = dataset.source.csv or CsvOptions()  # type: ignore[union-attr]
    options = [
        f"delim = {warehouse.literal(csv.delimiter)}",
        f"header = {str(csv.header).lower()}",
        f"quote = {warehouse.literal(csv.quote)}",
        f"escape = {warehouse.literal(csv.escape)}",
        "nullstr = [" + ", ".join(warehouse.literal(s) for s in csv.null_strings) + "]",
        f"encoding = {warehouse.literal(csv.encoding)}",
        f"skip = {csv.skip_rows}",
        "all_varchar = true",
        "auto_detect = true",
        "parallel = false",  # a sequential scan keeps file order for row numbers
        f"max_line_size = {MAX_LINE_BYTES}",
        f"store_rejects = true, rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'",
        "ignore_errors = true",
    ]
    if not csv.header and dataset.columns:
        options.append("names = [" + ", ".join(warehouse.literal(c.name) for c in dataset.columns) + "]")
    return f"read_csv([{warehouse.literal(str(path))}], {common}, {', '.join(options)})"


def extract(con: duckdb.DuckDBPyConnection, dataset: Dataset, landing_root: Path, window: DateWindow | None) -> Extract:
    """Plan and describe the read of ``dataset``'s files for ``window`` (or its snapshot).

    Raises:
        MissingSourceFileError: an expected file is absent.
        CorruptSourceFileError: a file cannot be read (its name and the reader's message).
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    if window is not None:
        files = partition_files(source, landing_root, window.days(), dataset.name)
    else:
        files = snapshot_files(source, landing_root, dataset.name)
    manifest = pa.table(
        {
            "path": [str(f.path) for f in files],
            "relative": [f.relative for f in files],
            "partition_date": pa.array([f.partition for f in files], pa.date32()),
        }
    )
    con.register(_MANIFEST, manifest)
    # A 0-byte text file is an empty day (0 rows, which the volume check judges), not an error.
    readable = [f for f in files if source.format == "parquet" or f.path.stat().st_size > 0]
    partition = ", f.partition_date as _partition_date" if window is not None else ""
    if not readable:
        text_columns = ", ".join(f"null::varchar as {warehouse.quote(c.name)}" for c in dataset.columns)
        numbered = (
            f"select {text_columns + ', ' if text_columns else ''}null::varchar as {FILENAME_COLUMN}, "
            "null::bigint as _source_row where false"
        )
    elif source.format == "parquet":
        reader = reader_sql(dataset, [f.path for f in readable])
        numbered = f"select * exclude (file_row_number), file_row_number + 1 as _source_row from {reader}"
    elif source.format == "csv":
        numbered = f"select * from {reader_sql(dataset, [f.path for f in readable], numbered=True)}"
    else:
        reader = reader_sql(dataset, [f.path for f in readable])
        numbered = f"select *, row_number() over (partition by {FILENAME_COLUMN}) as _source_row from {reader}"
    relation = (
        f"(select src.* exclude ({FILENAME_COLUMN}), f.relative as _source_file{partition} "
        f"from ({numbered}) as src join {_MANIFEST} as f on src.{FILENAME_COLUMN} = f.path)"
    )
    rejects = None
    if source.format == "csv" and readable:
        rejects = (
            f"select f.relative as origin, f.partition_date, r.line, "
            "r.error_type || coalesce(' (' || r.column_name || ')', '') || ': ' || r.error_message "
            "as reason, "
            f"r.csv_line as text from {_REJECTS} r join {_REJECT_SCANS} s using (scan_id, file_id) "
            f"join {_MANIFEST} f on s.file_path = f.path"
        )
    return Extract(
        relation=relation,
        origin_column="_source_file",
        partition_column="_partition_date" if window is not None else None,
        units=len(files),
        metadata={"files_read": len(files)},
        cleanup=[_MANIFEST, _REJECTS, _REJECT_SCANS] if rejects else [_MANIFEST],
        rejects=rejects,
        diagnose=lambda err: raise_unreadable(con, dataset, files, err),
    )


def raise_unreadable(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, files: Sequence[SourceFile], err: Exception
) -> None:
    """Name the first unreadable file, if ``err`` came from one; otherwise return."""
    message = str(err)
    for f in files:
        if str(f.path) in message:
            raise CorruptSourceFileError(dataset.name, f.path, message) from err
    for f in files:
        try:
            con.execute(f"select count(*) from {reader_sql(dataset, [f.path])}").fetchall()[0]
        except duckdb.Error as probe_err:
            raise CorruptSourceFileError(dataset.name, f.path, str(probe_err)) from err
