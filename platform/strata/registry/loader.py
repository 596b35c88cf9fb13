"""Loading the registry: every dataset file, validated on its own and against the others.

A broken file never hides the others: it becomes a :class:`BrokenDataset` with all its issues,
and the valid datasets load as usual. Rules across files:

* dataset names are unique;
* a SQL-derived dataset reads only registered datasets and dbt models (dependencies are inferred
  from its SELECT) and no dependency cycle exists;
* a referential check points at a registered dataset and one of its declared columns; the dataset
  then depends on the one it references (its check reads it), so it is loaded after it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from strata.registry.issues import Issue
from strata.registry.models import IDENTIFIER_PATTERN, LAYER_SCHEMAS, Dataset, ReferentialCheck
from strata.registry.sql import parse_select, tables_read
from strata.registry.validation import validate_document
from strata.registry.yaml_doc import YamlDocument, read_yaml

SUFFIXES = (".yaml", ".yml")


@dataclass
class BrokenDataset:
    """A dataset file with errors: what could be read of its identity, and every issue."""

    path: Path
    issues: list[Issue]
    name: str
    layer: str = "raw"
    group: str | None = None

    @property
    def schema_name(self) -> str:
        """The warehouse schema of the declared layer (raw if unreadable)."""
        return LAYER_SCHEMAS.get(self.layer, "raw")


@dataclass
class Registry:
    """Valid datasets by name (with the file each came from), broken files, and dependencies.

    ``dependencies[name]`` lists the ``schema.table`` relations a dataset reads: the tables of a
    SQL-derived dataset's SELECT, and the datasets its referential checks reference.
    """

    datasets: dict[str, Dataset] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    broken: list[BrokenDataset] = field(default_factory=list)
    dependencies: dict[str, list[str]] = field(default_factory=dict)

    @property
    def issues(self) -> list[Issue]:
        """Every issue of every file, in file and line order."""
        return sorted(issue for b in self.broken for issue in b.issues)

    @property
    def ok(self) -> bool:
        """True when every file is valid."""
        return not self.broken


def discover(paths: Iterable[Path]) -> list[Path]:
    """The dataset files under ``paths`` (folders are searched recursively; hidden files skipped)."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found |= {p for p in path.rglob("*") if p.suffix in SUFFIXES and not _hidden(p, path)}
        elif path.exists():
            found.add(path)
    return sorted(found)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def load_registry(paths: Iterable[Path], external_tables: Iterable[str] = ()) -> Registry:
    """Read, validate and cross-check every dataset file under ``paths``.

    ``external_tables`` are the ``schema.table`` relations SQL-derived datasets may read besides
    registered datasets (the dbt models).
    """
    registry = Registry()
    docs: dict[str, YamlDocument] = {}
    roots = list(paths)
    for path in discover(roots):
        doc, issues = read_yaml(path)
        dataset = None
        if doc is not None:
            dataset, more = validate_document(doc)
            issues = issues + more
        if dataset is None or issues:
            registry.broken.append(_broken(path, doc, issues))
            continue
        if dataset.name in registry.datasets:
            first = registry.files[dataset.name]
            issue = doc.issue(
                ("name",),
                f"dataset '{dataset.name}' is already declared in {_shown(first, roots)}",
                "dataset names are unique across files",
            )
            registry.broken.append(_broken(path, doc, [issue], unique=False))
            continue
        registry.datasets[dataset.name] = dataset
        registry.files[dataset.name] = path
        docs[dataset.name] = doc
    _cross_check(registry, docs, set(external_tables))
    return registry


def _shown(path: Path, roots: list[Path]) -> str:
    """``path`` relative to the folder it was found in (absolute if it was named directly)."""
    for root in roots:
        if root.is_dir() and path.is_relative_to(root):
            return str(path.relative_to(root))
    return str(path)


def _broken(path: Path, doc: YamlDocument | None, issues: list[Issue], unique: bool = True) -> BrokenDataset:
    data = doc.data if doc is not None and isinstance(doc.data, dict) else {}
    name = data.get("name")
    if not (isinstance(name, str) and re.fullmatch(IDENTIFIER_PATTERN, name)) or not unique:
        name = re.sub(r"[^a-z0-9_]", "_", path.stem.lower()).strip("_") or "dataset"
        name = f"invalid_{name}"
    layer = data.get("layer") if data.get("layer") in LAYER_SCHEMAS else "raw"
    group = (
        data.get("group")
        if isinstance(data.get("group"), str) and re.fullmatch(IDENTIFIER_PATTERN, data["group"])
        else None
    )
    return BrokenDataset(path, sorted(issues), name, layer, group)


def _cross_check(registry: Registry, docs: dict[str, YamlDocument], external: set[str]) -> None:
    tables = {ds.table: name for name, ds in registry.datasets.items()}
    broken_names = {b.name for b in registry.broken}
    known = sorted(set(tables) | external)
    problems: dict[str, list[Issue]] = {}

    for name, ds in registry.datasets.items():
        doc = docs[name]
        found: list[Issue] = []
        if ds.select is not None:
            statement, _ = parse_select(ds.select)
            deps: list[str] = []
            for ref in tables_read(statement) if statement is not None else []:
                relation = _resolve(ref.schema, ref.name, tables, external, registry)
                if relation is None:
                    hint = difflib.get_close_matches(ref.qualified, known, n=1, cutoff=0.5)
                    gone = f"; '{ref.name}' has errors" if ref.name in broken_names else ""
                    found.append(
                        doc.issue_in(
                            ("select",),
                            ref.line,
                            ref.column,
                            f"select reads unknown table '{ref.qualified}'{gone}",
                            f"did you mean '{hint[0]}'?" if hint else "registered datasets and dbt models",
                        )
                    )
                elif relation == ds.table:
                    found.append(doc.issue_in(("select",), ref.line, ref.column, "a dataset cannot read itself"))
                elif relation not in deps:
                    deps.append(relation)
            registry.dependencies[name] = deps
        for i, check in enumerate(ds.checks):
            if isinstance(check, ReferentialCheck):
                target_name, _, column = check.references.partition(".")
                target = registry.datasets.get(target_name)
                if target is None:
                    near = difflib.get_close_matches(target_name, list(registry.datasets), n=1)
                    found.append(
                        doc.issue(
                            ("checks", i, "references"),
                            f"unknown dataset '{target_name}'",
                            f"did you mean '{near[0]}'?" if near else "",
                        )
                    )
                elif target.columns and target.column(column) is None:
                    near = difflib.get_close_matches(column, [c.name for c in target.columns], n=1)
                    found.append(
                        doc.issue(
                            ("checks", i, "references"),
                            f"dataset '{target_name}' declares no column '{column}'",
                            f"did you mean '{near[0]}'?" if near else "",
                        )
                    )
                elif target.name != name and target.table not in registry.dependencies.setdefault(name, []):
                    # the check reads the referenced dataset: load it first
                    registry.dependencies[name].append(target.table)
        if found:
            problems[name] = found

    for name in _in_cycles(registry, tables):
        problems.setdefault(name, []).append(
            docs[name].issue(("select",), "dependency cycle between SQL-derived datasets")
        )

    for name, issues in problems.items():
        ds = registry.datasets.pop(name)
        registry.broken.append(BrokenDataset(registry.files.pop(name), sorted(issues), name, ds.layer, ds.group))
        registry.dependencies.pop(name, None)


def _resolve(schema: str, name: str, tables: Mapping[str, str], external: set[str], registry: Registry) -> str | None:
    if schema:
        relation = f"{schema}.{name}"
        return relation if relation in tables or relation in external else None
    if name in registry.datasets:
        return registry.datasets[name].table
    matches = [rel for rel in external if rel.split(".", 1)[1] == name]
    return matches[0] if len(matches) == 1 else None


def _in_cycles(registry: Registry, tables: Mapping[str, str]) -> set[str]:
    graph = {name: [tables[d] for d in deps if d in tables] for name, deps in registry.dependencies.items()}
    cyclic: set[str] = set()
    for start in graph:
        stack, seen = list(graph[start]), set()
        while stack:
            node = stack.pop()
            if node == start:
                cyclic.add(start)
                break
            if node not in seen:
                seen.add(node)
                stack.extend(graph.get(node, []))
    return cyclic
