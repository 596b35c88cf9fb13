"""Quality checks: pure functions over the warehouse, each judging the partitions of a window.

Every check returns a :class:`CheckOutcome` naming the partitions it covered and the ones that
failed, with metadata a person can act on (samples of failing rows, counts, bounds). Severity is
``error`` (blocking: what is downstream does not run) or ``warn``. No check scans a whole table to
judge one partition: each reads the window's rows (and, where a rule says so, a trailing window
or a referenced table). The Dagster edge (``strata.defs``) turns outcomes into asset checks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from strata.partition_window import Partition


@dataclass
class PartitionResult:
    """The outcome for one partition (``partition`` is None for an unpartitioned dataset)."""

    partition: Partition | None
    passed: bool
    detail: str = ""


@dataclass
class CheckOutcome:
    """One check's result over a window.

    Attributes:
        name: the asset check's name (``schema``, ``volume``, ``referential_o_custkey`` ...).
        severity: ``error`` (blocking) or ``warn``.
        partitions: one result per partition covered.
        metadata: plain values (str, int, float, list of dict rows) for the UI.
    """

    name: str
    severity: str
    partitions: list[PartitionResult]
    description: str = ""
    metadata: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """True when every covered partition passed."""
        return all(p.passed for p in self.partitions)

    @property
    def failed_partitions(self) -> list[PartitionResult]:
        """The partitions that failed, in order."""
        return [p for p in self.partitions if not p.passed]

    @property
    def blocking(self) -> bool:
        """Error severity blocks what is downstream."""
        return self.severity == "error"

    def restricted(self, partitions: Iterable[Partition]) -> CheckOutcome:
        """The outcome for ``partitions`` only (a build that skipped the others judged only these)."""
        keep = set(partitions)
        return replace(self, partitions=[p for p in self.partitions if p.partition is None or p.partition in keep])

    def failure_line(self) -> str:
        """One line a person can act on: ``row_accounting failed on 2,406 days, first 1992-01-01: <detail>``.

        An unpartitioned check: ``<name> failed: <detail>``. Empty when the check passed.
        """
        failed = self.failed_partitions
        if not failed:
            return ""
        first = failed[0]
        if first.partition is None:
            return f"{self.name} failed: {first.detail}"
        unit = {"hourly": "hour", "daily": "day", "monthly": "month"}[first.partition.grain]
        days = f"{len(failed):,} {unit}{'s' if len(failed) > 1 else ''}"
        return f"{self.name} failed on {days}, first {first.partition}: {first.detail}"

    def summary(self) -> dict:
        """Metadata naming the partitions covered and failed, plus the check's own metadata."""
        covered = [p.partition for p in self.partitions if p.partition is not None]
        out = {"partitions_covered": _span(covered) if covered else "the whole table"}
        failed = self.failed_partitions
        if failed:
            out["partitions_failed"] = len(failed)
            out["failures"] = [{"partition": str(p.partition or "-"), "detail": p.detail} for p in failed[:20]]
        return {**out, **self.metadata}


def _span(days: list[Partition]) -> str:
    return f"{days[0]}" if len(days) == 1 else f"{days[0]} .. {days[-1]} ({len(days)} partitions)"
