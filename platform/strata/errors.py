"""The few named errors Strata raises. Each says what is wrong, where, and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class StrataError(Exception):
    """Base class of every error Strata raises on purpose."""


class MissingSourceFileError(StrataError):
    """Landing files that a requested partition needs are not there.

    Attributes:
        paths: the expected paths that do not exist (absolute).
    """

    def __init__(self, dataset: str, paths: Sequence[Path]):
        self.dataset = dataset
        self.paths = list(paths)
        shown = "\n  ".join(str(p) for p in self.paths[:20])
        more = f"\n  ... and {len(self.paths) - 20} more" if len(self.paths) > 20 else ""
        super().__init__(
            f"{dataset}: {len(self.paths)} expected landing file(s) missing; nothing was loaded:\n"
            f"  {shown}{more}\n"
            "Drop the file(s) in the landing zone, or exclude those partitions from the run."
        )


class CorruptSourceFileError(StrataError):
    """A landing file exists but cannot be read (truncated, not the declared format, bad encoding).

    Attributes:
        path: the unreadable file (absolute).
        reason: the reader's message.
    """

    def __init__(self, dataset: str, path: Path, reason: str):
        self.dataset = dataset
        self.path = path
        self.reason = reason
        super().__init__(
            f"{dataset}: cannot read landing file {path}: {reason.strip().splitlines()[0]}\n"
            "Nothing was loaded for this run. Replace the file with a valid one and re-run the partition."
        )


class SourceConfigError(StrataError):
    """A source cannot be reached as configured (an environment variable is missing, say)."""


class MalformedSourceError(StrataError):
    """A source answered with data Strata cannot read (an API page that is not JSON, say)."""

    def __init__(self, dataset: str, detail: str):
        self.dataset = dataset
        super().__init__(f"{dataset}: {detail}. Nothing was loaded.")


class ReservedColumnError(StrataError):
    """A source column is named like one of Strata's load columns (``_partition_date``, ``_loaded_at`` ...).

    Attributes:
        columns: the clashing column names.
    """

    def __init__(self, dataset: str, columns: list[str], origin: str):
        self.dataset = dataset
        self.columns = columns
        super().__init__(
            f"{dataset}: source column(s) {', '.join(columns)} in {origin} use names reserved for load metadata. "
            "Nothing was loaded. Rename them in the source (or in the query)."
        )


class ContractError(StrataError):
    """The source no longer matches the dataset's declared columns (a column is missing).

    Attributes:
        columns: the declared columns the source lacks.
    """

    def __init__(self, dataset: str, columns: list[str], origin: str):
        self.dataset = dataset
        self.columns = columns
        super().__init__(
            f"{dataset}: declared column(s) {', '.join(columns)} missing from {origin}. "
            "Nothing was loaded. If the source renamed or dropped them, update the dataset's columns."
        )


class BlockedByChecksError(StrataError):
    """An asset was asked to build on partitions whose upstream failed a blocking check.

    Attributes:
        failures: ``(asset, check, partition, detail)`` of each failed upstream check.
    """

    def __init__(self, failures: list[tuple]):
        self.failures = failures
        shown = "\n  ".join(f"{a} {c} [{p or 'all'}]: {d}" for a, c, p, d in failures[:20])
        super().__init__(
            f"not built: {len(failures)} blocking check(s) failed upstream for this window:\n  {shown}\n"
            "Fix the upstream data and re-materialize it; this asset will then build."
        )


class BlockingChecksFailedError(StrataError):
    """Blocking checks failed on what a step just wrote: nothing downstream runs on those partitions.

    Attributes:
        asset: the asset key the checks judge (``raw/tpch_orders``).
        lines: one line per failed check, naming it, how many partitions failed, the first one and
            its detail (:meth:`strata.checks.CheckOutcome.failure_line`).
    """

    def __init__(self, asset: str, lines: Sequence[str], where: str = ""):
        self.asset = asset
        self.lines = list(lines)
        shown = "\n  ".join(self.lines)
        super().__init__(
            f"{asset}: {len(self.lines)} blocking check(s) failed:\n  {shown}\n"
            + (where or "The check's metadata in the UI lists the failing partitions (up to 20) with details.")
        )


class PartitionsSkippedError(StrataError):
    """A step built part of its window and left the other partitions as they were.

    Raised after the built partitions are recorded, so that the run fails and names what is left:
    partitions whose upstream partitions are not all materialized (an hour of the day missing) or
    failed a blocking check.

    Attributes:
        asset: the asset key (``marts/temps_daily``).
        reasons: ``{partition key: why it was skipped}``.
    """

    def __init__(self, asset: str, built: int, total: int, reasons: dict[str, str]):
        self.asset = asset
        self.reasons = dict(reasons)
        shown = "\n  ".join(f"{key}: {why}" for key, why in list(self.reasons.items())[:20])
        more = f"\n  ... and {len(self.reasons) - 20} more" if len(self.reasons) > 20 else ""
        super().__init__(
            f"{asset}: built {built} of {total} partition(s); {len(self.reasons)} skipped, left as they were:\n"
            f"  {shown}{more}\n"
            "Materialize (or fix) the upstream partitions named; each skipped partition builds once they are in "
            "and pass their checks (automation rebuilds it, or re-run it)."
        )


class TypeMigrationError(StrataError):
    """A declared column's type changed to one the values already in the table cannot take.

    Attributes:
        dataset: the dataset's name.
        column: the column.
    """

    def __init__(self, dataset: str, cause: Exception):
        self.dataset = dataset
        self.column = getattr(cause, "column", "?")
        super().__init__(
            f"{dataset}: cannot change the column's type: {cause}. Nothing was loaded.\n"
            f"Rebuild the dataset with the new type: `strata rebuild {dataset}` moves its table (and quarantine) "
            "aside into the archive schema, then materialize its partitions again; or declare a type its values "
            "convert to."
        )


class CdcPositionLostError(StrataError):
    """A CDC dataset's replication slot is gone or invalidated: changes since the last one read may be lost.

    Attributes:
        dataset: the dataset's name.
        slot: the replication slot.
    """

    def __init__(self, dataset: str, slot: str, what: str, last_lsn: str):
        self.dataset, self.slot = dataset, slot
        super().__init__(
            f"{dataset}: replication slot {slot} {what}. Changes committed after LSN {last_lsn} (the last one in "
            f"raw.{dataset}) may be lost. Nothing was loaded. Run `strata cdc resync {dataset}`: it re-reads the "
            "table at a new slot and the current state is exact again; the changes already captured stay in raw."
        )
