"""Landing-zone files: which files a load needs, and the DuckDB reader that scans them.

A partitioned dataset's ``path`` is a template with ``{date}``, ``{hour}`` or ``{month}`` (and maybe
globs): each partition maps to the files it matches, at least one. A missing file is an error (an
empty day is an empty file, not an absent one). An hour that does not exist (a spring clock change)
has no path; the second of a repeated hour (fall) has its own, its ``{hour}`` carrying the UTC
offset (:attr:`strata.partition_window.Partition.landing_values`). Paths never leave the landing root.
"""

from __future__ import annotations

import csv as csv_module
import glob
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from strata import warehouse
from strata.errors import CorruptSourceFileError, MissingSourceFileError
from strata.partition_window import Partition, PartitionWindow
from strata.registry.models import CsvOptions, Dataset, FilesSource
from strata.sources import Extract

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
        partition: the partition the file's rows belong to (None for snapshots).
    """

    path: Path
    relative: str
    partition: Partition | None = None


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
        if pattern.is_dir():
            raise ValueError(f"{pattern} is a directory, not a file")
        return [SourceFile(pattern, relative)] if pattern.is_file() else None
    root = landing_root.resolve()
    found = sorted(Path(p) for p in glob.glob(str(pattern), recursive=True) if Path(p).is_file())
    for p in found:
        if not p.resolve().is_relative_to(root):
            raise ValueError(f"landing file {p} is a link to {p.resolve()}, outside the landing root {landing_root}")
    return [SourceFile(p, str(p.relative_to(root))) for p in found] or None


def _matches_or_fail(landing_root: Path, relative: str, dataset: str) -> list[SourceFile] | None:
    try:
        return _matches(landing_root, relative)
    except ValueError as err:
        raise CorruptSourceFileError(dataset, landing_root / relative, str(err)) from err


def landing_path(template: str, partition: Partition) -> str:
    """``template`` with its placeholders filled for ``partition``.

    ``{date}`` is ``YYYY-MM-DD``, ``{hour}`` ``HH`` (00-23, hourly partitions; the second of a
    repeated hour ``HH`` and its UTC offset, ``01-0800``) and ``{month}`` ``YYYY-MM``, all local to
    the partitioning's zone.
    """
    return template.format(**partition.landing_values)


def partition_files(
    source: FilesSource, landing_root: Path, partitions: Iterable[Partition], dataset: str
) -> list[SourceFile]:
    """Every file the ``partitions`` need (hours, days or months).

    Raises:
        MissingSourceFileError: naming the expected path of every day that matches no file.
        CorruptSourceFileError: a path is a directory, or a link out of the landing root.
    """
    files, missing = [], []
    for partition in partitions:
        relative = landing_path(source.path, partition)
        found = _matches_or_fail(landing_root, relative, dataset)
        if found is None:
            missing.append(landing_root / relative)
        else:
            files += [SourceFile(f.path, f.relative, partition) for f in found]
    if missing:
        raise MissingSourceFileError(dataset, missing)
    return files


def snapshot_files(source: FilesSource, landing_root: Path, dataset: str) -> list[SourceFile]:
    """The file(s) of an unpartitioned dataset: ``source.path`` (globs allowed).

    Raises:
        MissingSourceFileError: the path matches no file.
    """
    found = _matches_or_fail(landing_root, source.path, dataset)
    if found is None:
        raise MissingSourceFileError(dataset, [landing_root / source.path])
    return found


#: Leading bytes that give a file away as something other than the text it is named as.
_MAGIC = {b"\x1f\x8b": "gzip-compressed (name it .gz)", b"PK\x03\x04": "a zip archive", b"PAR1": "a Parquet file"}
_BOMS = {b"\xff\xfe": "utf-16", b"\xfe\xff": "utf-16"}


def check_file(dataset: Dataset, f: SourceFile) -> None:
    """Refuse a landing file that is not what the dataset declares, naming it and the reason.

    Text formats: compressed or binary content under a plain name, a UTF-16 byte-order mark when
    the dataset says UTF-8 or Latin-1, and UTF-8 text with non-ASCII characters declared Latin-1
    (it would load as mojibake, ``MÃ¼ller``, with every check green). Parquet is checked by its
    reader (:func:`check_parquet_types`).

    Raises:
        CorruptSourceFileError: naming the file and what it really is.
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    if source.format == "parquet" or f.path.suffix in (".gz", ".zst"):
        return
    with f.path.open("rb") as handle:
        head = handle.read(4)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise CorruptSourceFileError(dataset.name, f.path, f"the file is {what}, not {source.format} text")
    encoding = (source.csv or CsvOptions()).encoding if source.format == "csv" else "utf-8"
    for bom, found in _BOMS.items():
        if head.startswith(bom) and encoding != found:
            raise CorruptSourceFileError(
                dataset.name, f.path, f"the file is {found} (byte-order mark) but the dataset declares {encoding}"
            )
    if encoding == "latin-1":
        data = f.path.read_bytes()
        if not data.isascii():
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                return
            raise CorruptSourceFileError(
                dataset.name, f.path, "the file is UTF-8 but the dataset declares latin-1 (it would load as mojibake)"
            )


def parquet_footers(dataset: Dataset, files: Sequence[SourceFile]) -> dict[Path, pq.FileMetaData]:
    """Each Parquet file's footer (schema and row count), read once per load.

    Raises:
        CorruptSourceFileError: a file whose footer cannot be read.
    """
    footers = {}
    for f in files:
        try:
            footers[f.path] = pq.read_metadata(f.path)
        except (OSError, pa.ArrowInvalid) as err:
            raise CorruptSourceFileError(dataset.name, f.path, f"not a readable Parquet file: {err}") from err
    return footers


def check_parquet_types(dataset: Dataset, files: Sequence[SourceFile], footers: dict[Path, pq.FileMetaData]) -> None:
    """Every Parquet file gives each declared column the same type as the first file that has it.

    Raises:
        CorruptSourceFileError: naming the first file whose column type differs, and both types.
    """
    first: dict[str, tuple[str, Path]] = {}
    declared = {c.name for c in dataset.columns}
    for f in files:
        for field in footers[f.path].schema.to_arrow_schema():
            if field.name not in declared:
                continue
            seen = first.setdefault(field.name, (str(field.type), f.path))
            if seen[0] != str(field.type):
                raise CorruptSourceFileError(
                    dataset.name,
                    f.path,
                    f"column {field.name} is {field.type} here but {seen[0]} in {seen[1].name}",
                )


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


def csv_line_bound(path: Path) -> int:
    """The ``max_line_size`` and ``buffer_size`` (bytes) of one CSV file's scan.

    No line is longer than its file, so the bound is the file's size (plus one), at most
    :data:`MAX_LINE_BYTES`; compressed files (``.gz``, ``.zst``) always get the maximum.
    DuckDB 1.5 otherwise gives each scan a buffer of 16 times the line bound (1 GiB for 64 MiB)
    and keeps every sniffed file's buffer until the query ends: a 365-day window of a daily CSV
    feed, one scan per file, ran out of memory at 18 GiB (bench/many_datasets.py, 2026-11-30).
    With this bound, the same window reads in 73 MiB.
    """
    if path.suffix in (".gz", ".zst"):
        return MAX_LINE_BYTES
    try:
        size = path.stat().st_size
    except OSError:
        return MAX_LINE_BYTES  # the scan reports the file itself
    return max(1, min(size + 1, MAX_LINE_BYTES))


def _csv_scan(dataset: Dataset, path: Path, common: str) -> str:
    """``read_csv`` of one file, its dialect sniffed from that file; malformed lines to the rejects tables."""
    csv = dataset.source.csv or CsvOptions()  # type: ignore[union-attr]
    line_bound = csv_line_bound(path)
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
        f"max_line_size = {line_bound}, buffer_size = {line_bound}",
        f"store_rejects = true, rejects_table = '{_REJECTS}', rejects_scan = '{_REJECT_SCANS}'",
        "ignore_errors = true",
    ]
    if not csv.header and dataset.columns:
        options.append("names = [" + ", ".join(warehouse.literal(c.name) for c in dataset.columns) + "]")
    return f"read_csv([{warehouse.literal(str(path))}], {common}, {', '.join(options)})"


def count_records(dataset: Dataset, path: Path) -> int:
    """Records in one landing file, counted without DuckDB's reader (the accounting's "rows read").

    CSV: Python's ``csv`` module with the declared delimiter, quote, escape and encoding (quoted
    line breaks stay inside their record, RFC 4180), after ``skip_rows`` and the header; blank
    lines are not records unless the file has one column (DuckDB reads those as NULL rows).
    Parquet: the row count in the file's footer (pyarrow). NDJSON: non-blank lines. JSON: the
    length of the top-level array (1 for an object).

    Raises:
        OSError, ValueError: the file cannot be read or decoded (the load fails on it first).
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    if source.format == "parquet":
        return pq.ParquetFile(path).metadata.num_rows
    if path.stat().st_size == 0:
        return 0
    if source.format == "ndjson":
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    if source.format == "json":
        body = json.loads(path.read_text(encoding="utf-8"))
        return len(body) if isinstance(body, list) else 1
    opts = source.csv or CsvOptions()
    encoding = {"utf-8": "utf-8-sig", "latin-1": "latin-1", "utf-16": "utf-16"}[opts.encoding]
    with path.open(encoding=encoding, newline="", errors="replace") as f:
        for _ in range(opts.skip_rows):
            f.readline()
        reader = csv_module.reader(
            f,
            delimiter=opts.delimiter,
            quotechar=opts.quote,
            doublequote=opts.escape == opts.quote,
            escapechar=None if opts.escape == opts.quote else opts.escape,
        )
        rows = list(reader)
    if opts.header and rows:
        header, rows = rows[0], rows[1:]
    else:
        header = rows[0] if rows else []
    single = len(header) <= 1 and len(dataset.columns) <= 1
    return sum(1 for r in rows if single or any(v != "" for v in r) or len(r) > 1)


def _quick_csv_count(path: Path, opts: CsvOptions) -> int | None:
    """Non-blank lines after ``skip_rows`` and the header, by counting line ends; None for UTF-16."""
    if opts.encoding == "utf-16":
        return None
    data = path.read_bytes()
    lines = data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)
    blank = data.count(b"\n\n") + data.count(b"\n\r\n") + (1 if data.startswith((b"\n", b"\r\n")) else 0)
    return lines - blank - opts.skip_rows - (1 if opts.header and data else 0)


def _source_counter(
    dataset: Dataset,
    files: Sequence[SourceFile],
    footers: dict[Path, pq.FileMetaData],
    window: PartitionWindow | None,
):
    """The :attr:`Extract.count_source` of a files load: per partition, the files' own record counts.

    Parquet: the footers' row counts (``footers``, already read). Text: counting line ends is the
    fast path; a partition whose count differs from the reader's is recounted exactly
    (:func:`count_records`), and that count stands. The reader's counts come keyed by partition
    value (as SQL returns them); the result is keyed by :class:`Partition` (None: unpartitioned).
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    opts = source.csv or CsvOptions()

    def count(reader: dict) -> dict:
        by_reader = {}
        for value, n in reader.items():
            partition = window.partition_of_value(value) if window is not None and value is not None else None
            by_reader[partition] = by_reader.get(partition, 0) + n
        by_partition: dict = {}
        for f in files:
            by_partition.setdefault(f.partition, []).append(f.path)
        result = {}
        for partition, paths in by_partition.items():
            if source.format == "parquet":
                result[partition] = sum(footers[p].num_rows for p in paths)
                continue
            quick = None
            if source.format == "csv":
                quick_counts = [_quick_csv_count(p, opts) if p.stat().st_size else 0 for p in paths]
                quick = None if None in quick_counts else sum(quick_counts)  # type: ignore[arg-type]
            if quick is not None and quick == by_reader.get(partition, 0):
                result[partition] = quick
            else:
                result[partition] = sum(count_records(dataset, p) for p in paths)
        return result

    return count


#: The manifest's columns giving each file's partition as instants, wall-clock times and key
#: (:attr:`strata.sources.Extract.bounds_columns`).
BOUNDS_COLUMNS = (
    "__strata_p_start",
    "__strata_p_end",
    "__strata_p_wall_start",
    "__strata_p_wall_end",
    "__strata_p_key",
)


def _manifest(files: Sequence[SourceFile], window: PartitionWindow | None) -> pa.Table:
    """One row per file: its path, relative path, partition value and (partitioned) the partition's bounds."""
    columns: dict = {"path": [str(f.path) for f in files], "relative": [f.relative for f in files]}
    if window is None:
        columns["partition_date"] = pa.array([None] * len(files), pa.date32())
        return pa.table(columns)
    parts = [f.partition for f in files]
    instant = pa.timestamp("us", tz="UTC")
    columns["partition_date"] = pa.array(
        [p.value for p in parts], instant if window.value_type == "timestamptz" else pa.date32()
    )
    start, end, wall_start, wall_end, key = BOUNDS_COLUMNS
    columns[start] = pa.array([p.start for p in parts], instant)
    columns[end] = pa.array([p.end for p in parts], instant)
    columns[wall_start] = pa.array([p.wall_start for p in parts], pa.timestamp("us"))
    columns[wall_end] = pa.array([p.wall_end for p in parts], pa.timestamp("us"))
    columns[key] = [p.key for p in parts]
    return pa.table(columns)


def extract(
    con: duckdb.DuckDBPyConnection, dataset: Dataset, landing_root: Path, window: PartitionWindow | None
) -> Extract:
    """Plan and describe the read of ``dataset``'s files for ``window`` (or its snapshot).

    Raises:
        MissingSourceFileError: an expected file is absent.
        CorruptSourceFileError: a file cannot be read (its name and the reader's message).
    """
    source: FilesSource = dataset.source  # type: ignore[assignment]
    if window is not None:
        files = partition_files(source, landing_root, window.partitions, dataset.name)
    else:
        files = snapshot_files(source, landing_root, dataset.name)
    manifest = _manifest(files, window)
    for f in files:
        check_file(dataset, f)
    footers = parquet_footers(dataset, files) if source.format == "parquet" else {}
    if footers:
        check_parquet_types(dataset, files, footers)
    con.register(_MANIFEST, manifest)
    # A 0-byte text file is an empty day (0 rows, which the volume check judges), not an error.
    readable = [f for f in files if source.format == "parquet" or f.path.stat().st_size > 0]
    partition = (
        ", f.partition_date as _partition_date, " + ", ".join(f"f.{c} as {c}" for c in BOUNDS_COLUMNS)
        if window is not None
        else ""
    )
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
        # one row per malformed line, however many errors DuckDB reports on it
        rejects = (
            f"select f.relative as origin, f.partition_date, r.line, "
            "string_agg(r.error_type || coalesce(' (' || r.column_name || ')', '') || ': ' || r.error_message, "
            "'; ' order by r.column_idx) as reason, "
            f"any_value(r.csv_line) as text from {_REJECTS} r join {_REJECT_SCANS} s using (scan_id, file_id) "
            f"join {_MANIFEST} f on s.file_path = f.path group by f.relative, f.partition_date, r.line"
        )
    return Extract(
        relation=relation,
        origin_column="_source_file",
        partition_column="_partition_date" if window is not None else None,
        bounds_columns=BOUNDS_COLUMNS if window is not None else (),
        units=len(files),
        metadata={"files_read": len(files)},
        cleanup=[_MANIFEST, _REJECTS, _REJECT_SCANS] if rejects else [_MANIFEST],
        rejects=rejects,
        diagnose=lambda err: raise_unreadable(con, dataset, files, err),
        count_source=_source_counter(dataset, files, footers, window),
        origin_of_column=lambda column: [
            f.relative
            for f in readable
            if column
            in {r[0] for r in con.execute(f"describe select * from {reader_sql(dataset, [f.path])}").fetchall()}
        ],
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
