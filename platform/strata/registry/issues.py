"""Registry problems, each with the file, line and column it is about."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in a dataset file. ``line`` and ``column`` are 1-based."""

    path: Path
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.column}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class RegistryError(Exception):
    """A dataset file that cannot be used; carries every :class:`Issue` found in it."""

    def __init__(self, issues: list[Issue]):
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))
