"""Landing-zone arrivals: which files of which datasets are new or changed since the last look.

A file's identity is ``(path relative to the landing root, size in bytes, mtime, ctime)``, both
times in ns. The inode change time (ctime) is set by the kernel whenever a file is written,
renamed into place or has its metadata changed, and no program can set it back: a file replaced
by one of the same size and mtime (a corrected re-delivery, ``cp -p``, ``rsync -t``) still gets a
new ctime.

What a look has seen is kept per dataset as a high-water mark (:class:`Seen`): the largest ctime
seen, and the files whose ctime equals it (a coarse clock gives several files one ctime). A file
is new when its ctime is above the mark, or equal to it and not among those files. The cursor
(:func:`encode` / :func:`decode`, plain JSON) is a few dozen bytes per dataset, whatever the
number of files. A dataset that is not scanned in a look (its registry file is broken, say) keeps
its mark, so that its files are neither lost nor all new once it is back; a dataset the cursor
does not know yet (new, or restored) has every file new.

A partitioned dataset's path must contain ``{date}`` (``tpch/orders/orders_{date}.parquet``,
``events/dt={date}/*.parquet``), with ``{hour}`` for hours, or ``{month}``: what the matched path
names is the file's partition (:func:`strata.partition_window.partition_of_key`). An ``{hour}`` is
``HH``, or ``HH`` and a UTC offset for the second of a repeated hour (``01-0800``). Files that name
no partition of the dataset (outside its range, or an hour the clocks skip) are listed with
``partition=None``, ``in_range=False`` and the ``problem``, so that the caller can report them.

This module knows nothing of Dagster.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path

from strata.clock import earliest
from strata.partition_window import Partition, partition_of_key
from strata.registry.models import Dataset, FilesSource, Partitioning

_DATE = r"(?P<date>\d{4}-\d{2}-\d{2})"
_PLACEHOLDERS = {
    "{date}": _DATE,
    "{hour}": r"(?P<hour>\d{2}(?:[+-]\d{4})?)",
    "{month}": r"(?P<month>\d{4}-\d{2})",
}


@dataclass(frozen=True)
class LandedFile:
    """One file in the landing zone, as a files source of ``dataset`` sees it.

    Attributes:
        dataset: the registry name of the dataset whose source matches the file.
        relative: the path relative to the landing root (``/``-separated).
        size: bytes.
        mtime_ns: modification time, nanoseconds since the epoch.
        ctime_ns: inode change time, nanoseconds since the epoch (write, rename, metadata change).
        partition: the partition the file belongs to; None for an unpartitioned dataset (or none).
        in_range: False when the file names no partition of the dataset.
        problem: why it names none (outside the range, an hour that does not exist), or None.
    """

    dataset: str
    relative: str
    size: int
    mtime_ns: int
    ctime_ns: int
    partition: Partition | None = None
    in_range: bool = True
    problem: str | None = None

    @property
    def key(self) -> str:
        """``dataset/relative``: how the cursor names the file."""
        return f"{self.dataset}/{self.relative}"

    @property
    def identity(self) -> str:
        """``size:mtime_ns:ctime_ns``: what changes when the file is replaced or touched."""
        return f"{self.size}:{self.mtime_ns}:{self.ctime_ns}"


def path_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a source path: ``{date}`` captured, globs (``*``, ``**``, ``?``) as in ``glob``."""
    parts = []
    for piece in re.split(r"(\{date\}|\{hour\}|\{month\}|\*\*/?|\*|\?)", pattern):
        if piece in _PLACEHOLDERS:
            parts.append(_PLACEHOLDERS[piece])
        elif piece in ("**", "**/"):
            parts.append(r"(?:.*/)?" if piece == "**/" else r".*")
        elif piece == "*":
            parts.append(r"[^/]*")
        elif piece == "?":
            parts.append(r"[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts) + r"\Z")


def _walk_root(pattern: str) -> str:
    """The longest folder prefix of ``pattern`` without ``{date}`` or glob characters."""
    fixed = re.split(r"\{date\}|\{hour\}|\{month\}|[*?\[]", pattern, maxsplit=1)[0]
    return fixed.rsplit("/", 1)[0] if "/" in fixed else ""


def scan(datasets: Iterable[Dataset], landing_root: Path) -> list[LandedFile]:
    """Every landing file that a files source of ``datasets`` matches, with its identity.

    Datasets with another kind of source are ignored. A missing landing root or folder is an
    empty listing, not an error.
    """
    root = landing_root.resolve()
    found: list[LandedFile] = []
    for ds in datasets:
        if not isinstance(ds.source, FilesSource):
            continue
        regex = path_regex(ds.source.path)
        top = root / _walk_root(ds.source.path)
        if not top.is_dir():
            continue
        for folder, _dirs, names in os.walk(top):
            for name in names:
                path = Path(folder) / name
                relative = path.relative_to(root).as_posix()
                match = regex.match(relative)
                if not match:
                    continue
                try:
                    stat = path.stat()
                except FileNotFoundError:  # removed while we looked
                    continue
                partition, problem = None, None
                if ds.partitioning is not None:
                    partition, problem = _partition_of(match.groupdict(), ds.partitioning)
                found.append(
                    LandedFile(
                        ds.name,
                        relative,
                        stat.st_size,
                        stat.st_mtime_ns,
                        stat.st_ctime_ns,
                        partition,
                        problem is None,
                        problem,
                    )
                )
    return found


def _partition_of(groups: Mapping[str, str | None], spec: Partitioning) -> tuple[Partition | None, str | None]:
    """The partition a matched path names, or None and why it names none."""
    try:
        if spec.type == "monthly":
            key = f"{groups.get('month') or ''}-01"
        elif spec.type == "hourly":
            hour = groups.get("hour") or ""
            key = f"{groups.get('date')}-{hour[:2]}:00{hour[2:]}"
        else:
            key = groups.get("date") or ""
        partition = partition_of_key(spec.type, spec.timezone, key)
    except ValueError as err:
        return None, str(err)
    start, end = _range(spec)
    if not start <= partition.start < end:
        return None, f"{partition.key} is outside the dataset's partitions ({spec.start} .. {spec.end or 'now'})"
    return partition, None


@lru_cache(maxsize=256)
def _range(spec: Partitioning) -> tuple[datetime, datetime]:
    """The instants ``[start, end)`` of ``spec``'s partitions (end: year 9998 when it has none).

    Computed from the first and last days alone: listing an open-ended partitioning's partitions
    would take minutes.
    """
    first = spec.start.replace(day=1) if spec.type == "monthly" else spec.start
    last = spec.end + timedelta(days=1) if spec.end else date(9998, 1, 1)
    start = earliest(datetime.combine(first, time()), spec.timezone)
    end = earliest(datetime.combine(last, time()), spec.timezone)
    if spec.type == "monthly" and spec.end is not None:  # the month holding the last day, whole
        end = earliest(
            datetime.combine((spec.end.replace(day=28) + timedelta(days=4)).replace(day=1), time()), spec.timezone
        )
    return start, end


@dataclass(frozen=True)
class Seen:
    """One dataset's high-water mark: the largest ctime seen (ns) and the files that have it.

    Attributes:
        ctime_ns: the largest inode change time among the files seen.
        at_mark: paths (relative to the landing root) of the seen files whose ctime is ``ctime_ns``.
    """

    ctime_ns: int
    at_mark: frozenset[str]

    def is_new(self, f: LandedFile) -> bool:
        """Whether ``f`` arrived (or changed) after this mark."""
        return f.ctime_ns > self.ctime_ns or (f.ctime_ns == self.ctime_ns and f.relative not in self.at_mark)


def mark(files: Iterable[LandedFile]) -> dict[str, Seen]:
    """``{dataset: Seen}`` after looking at ``files`` (datasets without files are absent)."""
    by_dataset: dict[str, list[LandedFile]] = {}
    for f in files:
        by_dataset.setdefault(f.dataset, []).append(f)
    out = {}
    for name, group in by_dataset.items():
        top = max(f.ctime_ns for f in group)
        out[name] = Seen(top, frozenset(f.relative for f in group if f.ctime_ns == top))
    return out


def changes(previous: Mapping[str, Seen], files: Iterable[LandedFile]) -> list[LandedFile]:
    """The files that are new since ``previous``: above a dataset's mark, or of a dataset it lacks."""
    return [f for f in files if f.dataset not in previous or previous[f.dataset].is_new(f)]


def advance(previous: Mapping[str, Seen], files: Iterable[LandedFile]) -> dict[str, Seen]:
    """The marks after a look at ``files``.

    A dataset's mark never goes back. A dataset the cursor knows but that has no files in this
    look (not in the registry right now, or its folder emptied) keeps its mark.
    """
    out = dict(previous)
    for name, seen in mark(files).items():
        old = previous.get(name)
        if old is None or seen.ctime_ns > old.ctime_ns:
            out[name] = seen
        elif seen.ctime_ns == old.ctime_ns:
            out[name] = Seen(old.ctime_ns, old.at_mark | seen.at_mark)
    return out


#: The cursor format's version, first in the JSON; any other cursor is treated as absent.
CURSOR_VERSION = 2


def encode(marks: Mapping[str, Seen]) -> str:
    """The marks as a cursor: ``{"v": 2, "marks": {dataset: [ctime_ns, [paths at the mark]]}}``."""
    body = {name: [seen.ctime_ns, sorted(seen.at_mark)] for name, seen in sorted(marks.items())}
    return json.dumps({"v": CURSOR_VERSION, "marks": body}, separators=(",", ":"))


def decode(cursor: str | None) -> dict[str, Seen] | None:
    """The marks in ``cursor``; None when there is none yet, or it is of another format (a baseline).

    A cursor written by an earlier version (a full listing) is not read: the sensor takes a new
    baseline rather than treating every file as new.
    """
    if not cursor:
        return None
    try:
        data = json.loads(cursor)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION:
        return None
    return {name: Seen(int(top), frozenset(paths)) for name, (top, paths) in data["marks"].items()}
