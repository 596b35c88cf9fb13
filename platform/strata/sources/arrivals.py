"""Landing-zone arrivals: which files of which datasets are new or changed since the last look.

A file's identity is ``(path relative to the landing root, size in bytes, mtime in ns)``: a file
that is replaced (new content, or merely re-written) gets a new identity, an untouched file keeps
it. :func:`scan` lists the identity and partition of every file the registry's files sources
match; :func:`changes` compares two listings. The listing is kept between looks as a compact
cursor (:func:`encode` / :func:`decode`: JSON, zlib, base64; about 15 bytes per file).

A partitioned dataset's path must contain ``{date}`` (``tpch/orders/orders_{date}.parquet``,
``events/dt={date}/*.parquet``): the date in the matched path is the file's partition. Files
whose date lies outside the dataset's partitions are listed with ``partition=None`` and
``in_range=False`` so that the caller can report them.

This module knows nothing of Dagster.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from strata.registry.models import Dataset, FilesSource

_DATE = r"(?P<date>\d{4}-\d{2}-\d{2})"


@dataclass(frozen=True)
class LandedFile:
    """One file in the landing zone, as a files source of ``dataset`` sees it.

    Attributes:
        dataset: the registry name of the dataset whose source matches the file.
        relative: the path relative to the landing root (``/``-separated).
        size: bytes.
        mtime_ns: modification time, nanoseconds since the epoch.
        partition: the day the file belongs to; None for an unpartitioned dataset (or out of range).
        in_range: False when the file's date is outside the dataset's partitions.
    """

    dataset: str
    relative: str
    size: int
    mtime_ns: int
    partition: date | None = None
    in_range: bool = True

    @property
    def key(self) -> str:
        """``dataset/relative``: how the cursor names the file."""
        return f"{self.dataset}/{self.relative}"

    @property
    def identity(self) -> str:
        """``size:mtime_ns``: what changes when the file is replaced."""
        return f"{self.size}:{self.mtime_ns}"


def path_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression of a source path: ``{date}`` captured, globs (``*``, ``**``, ``?``) as in ``glob``."""
    parts = []
    for piece in re.split(r"(\{date\}|\*\*/?|\*|\?)", pattern):
        if piece == "{date}":
            parts.append(_DATE)
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
    fixed = re.split(r"\{date\}|[*?\[]", pattern, maxsplit=1)[0]
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
        first = ds.partitioning.start if ds.partitioning else None
        last = ds.partitioning.end if ds.partitioning else None
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
                day, in_range = None, True
                if ds.partitioning is not None and "date" in match.groupdict():
                    try:
                        day = date.fromisoformat(match.group("date"))
                    except ValueError:
                        day, in_range = None, False
                    else:
                        in_range = day >= first and (last is None or day <= last)
                        day = day if in_range else None
                found.append(LandedFile(ds.name, relative, stat.st_size, stat.st_mtime_ns, day, in_range))
    return found


def listing(files: Iterable[LandedFile]) -> dict[str, str]:
    """``{dataset/relative: identity}``: what the cursor remembers."""
    return {f.key: f.identity for f in files}


def changes(previous: Mapping[str, str], files: Iterable[LandedFile]) -> list[LandedFile]:
    """The files that are new or whose identity differs from ``previous`` (a :func:`listing`)."""
    return [f for f in files if previous.get(f.key) != f.identity]


def encode(seen: Mapping[str, str]) -> str:
    """A listing as a compact cursor string (JSON, zlib level 9, URL-safe base64)."""
    raw = json.dumps(dict(sorted(seen.items())), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode()


def decode(cursor: str | None) -> dict[str, str] | None:
    """The listing in ``cursor``; None when there is no cursor yet (the first look).

    Raises:
        ValueError: the cursor is not one :func:`encode` wrote.
    """
    if not cursor:
        return None
    try:
        return json.loads(zlib.decompress(base64.urlsafe_b64decode(cursor.encode())))
    except (zlib.error, json.JSONDecodeError, ValueError) as err:
        raise ValueError(f"not a landing-zone cursor: {err}") from err
