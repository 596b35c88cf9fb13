"""Comparing two query results row by row, exactly for exact types.

A result is a list of tuples. Rows are matched by position (queries order their output);
integers, decimals, dates and strings must be equal; floats (DuckDB's ``avg``) may differ by a
relative 1e-9, the rounding of a different summation order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FLOAT_RELATIVE_TOLERANCE = 1e-9


@dataclass(frozen=True)
class Mismatch:
    """One difference: which check, which row (its key) and the two values."""

    check: str
    row: str
    expected: object
    actual: object

    def __str__(self) -> str:
        return f"{self.check} [{self.row}]: expected {self.expected!r}, warehouse has {self.actual!r}"


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(float(a), float(b), rel_tol=FLOAT_RELATIVE_TOLERANCE, abs_tol=1e-12)
    return a == b


def compare_rows(check: str, expected: Sequence[tuple], actual: Sequence[tuple], key_width: int = 1) -> list[Mismatch]:
    """Every difference between ``expected`` and ``actual``; the first ``key_width`` columns name a row."""
    mismatches = []
    if len(expected) != len(actual):
        mismatches.append(Mismatch(check, "row count", len(expected), len(actual)))
    for exp, act in zip(expected, actual, strict=False):
        key = ", ".join(str(v) for v in exp[:key_width])
        if len(exp) != len(act) or not all(_same(a, b) for a, b in zip(exp, act, strict=True)):
            mismatches.append(Mismatch(check, key, exp, act))
    return mismatches


def compare_keyed(check: str, expected: dict, actual: dict) -> list[Mismatch]:
    """Every difference between two ``{key: row}`` maps, including keys present on one side only."""
    mismatches = []
    for key in sorted(set(expected) | set(actual), key=str):
        exp, act = expected.get(key), actual.get(key)
        if exp is None or act is None or not all(_same(a, b) for a, b in zip(exp, act, strict=True)):
            mismatches.append(Mismatch(check, str(key), exp, act))
    return mismatches
