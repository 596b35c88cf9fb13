"""Spool files: what PostgreSQL's ``COPY`` writes, kept on disk for DuckDB to read, and removed after.

A CDC load's change stream is split into files of at most :data:`CHUNK_LINES` lines as ``COPY``
writes it (:class:`LineChunks`), so that DuckDB decodes one chunk at a time: memory holds a
chunk, not the load, whatever the size of a transaction.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

#: Lines (wal2json messages) per chunk of a change stream: about 110 MB of text for a table of
#: pgbench_accounts' width (one ``UPDATE`` message is about 560 bytes with its old row). Chunks of
#: 100,000 decoded a fifth slower (DuckDB's threads have less to share) for 30 % less memory
#: (docs/benchmarks.md, the change-capture section).
CHUNK_LINES = 200_000


class Spool:
    """A private temporary directory for a load's files; :meth:`close` removes it (also on error)."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="strata-cdc-"))
        self._n = 0

    def path(self, suffix: str) -> Path:
        """A new file name in the spool (not created)."""
        self._n += 1
        return self.directory / f"{self._n:06d}{suffix}"

    def close(self) -> None:
        """Remove the directory and every file in it."""
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LineChunks:
    """A file object for ``copy_expert``: writes what it is given to files of at most ``lines`` whole lines.

    ``lines`` defaults to :data:`CHUNK_LINES`. ``on_file`` is called with each file once it is
    complete (the last one on :meth:`close`), so that a reader can start on it while ``COPY`` goes on.

    ``files`` lists them in order. psycopg2 writes ``bytes`` to a binary file object (this one),
    in pieces that may end inside a line: a chunk ends at a line's end only.
    """

    def __init__(
        self, spool: Spool, suffix: str, lines: int | None = None, on_file: Callable[[Path], None] | None = None
    ) -> None:
        lines = CHUNK_LINES if lines is None else lines
        if lines < 1:
            raise ValueError("a chunk holds at least one line")
        self.spool, self.suffix, self.lines, self.on_file = spool, suffix, lines, on_file
        self.files: list[Path] = []
        self._out = None
        self._count = 0

    def _finish(self) -> None:
        assert self._out is not None
        self._out.close()
        self._out = None
        if self.on_file is not None:
            self.on_file(self.files[-1])

    def write(self, data: bytes | str) -> int:
        """Append ``data``, starting a new file after every ``lines`` lines; returns its length.

        psycopg2 calls it once per row ``COPY`` sends: the common case is one count and one write.
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not data:
            return 0
        if self._out is None:
            self._open()
        lines = data.count(b"\n")
        if self._count + lines < self.lines:
            self._out.write(data)  # type: ignore[union-attr]
            self._count += lines
            return len(data)
        rest = data
        while rest:
            if self._out is None:
                self._open()
            need = self.lines - self._count
            if rest.count(b"\n") < need:
                self._out.write(rest)  # type: ignore[union-attr]
                self._count += rest.count(b"\n")
                break
            end = -1
            for _ in range(need):
                end = rest.index(b"\n", end + 1)
            self._out.write(rest[: end + 1])  # type: ignore[union-attr]
            self._finish()
            rest = rest[end + 1 :]
        return len(data)

    def _open(self) -> None:
        self.files.append(self.spool.path(self.suffix))
        self._out = self.files[-1].open("wb")
        self._count = 0

    def close(self) -> None:
        """Close the file being written (the last chunk may hold fewer lines)."""
        if self._out is not None:
            self._finish()

    def __enter__(self) -> LineChunks:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
