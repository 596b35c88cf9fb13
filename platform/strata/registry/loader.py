"""Loading the registry: every dataset file, validated on its own and against the others.

A broken file never hides the others: it becomes a :class:`BrokenDataset` with all its issues,
and the valid datasets load as usual. Nothing a file holds can raise out of :func:`load_registry`
(any error reading one file is an issue of that file). Validation is one pass: a file with its
own errors is still checked against the others, so every mistake shows in one run. Rules across
files:

* dataset names are unique, and no dataset has the table of a dbt model (same asset key);
* a SQL-derived dataset reads only registered datasets and dbt models (dependencies are inferred
  from its SELECT), every column it names exists in them (:mod:`strata.registry.sql_columns`),
  its partition column is one of its outputs, and no dependency cycle exists;
* a ``custom_sql`` check reads only its own table, registered datasets and dbt models;
* a referential check points at a registered dataset and one of its declared columns; the dataset
  then depends on the one it references (its check reads it), so it is loaded after it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from strata.registry.issues import Issue
from strata.registry.models import (
    CDC_COLUMNS,
    IDENTIFIER_PATTERN,
    LAYER_SCHEMAS,
    CustomSqlCheck,
    Dataset,
    ReferentialCheck,
    history_name,
    scd2_sql,
)
from strata.registry.sql import CHECK_PLACEHOLDERS, TableRef, parse_select, tables_read, with_placeholders
from strata.registry.sql_columns import resolve
from strata.registry.validation import validate_document
from strata.registry.yaml_doc import YamlDocument, read_yaml
from strata.sources import LOAD_COLUMNS

SUFFIXES = (".yaml", ".yml")

#: Tables outside the registry a SELECT may read (the dbt models), each with its known column names.
Relations = Mapping[str, Sequence[str]]


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


def load_registry(paths: Iterable[Path], external_tables: Iterable[str] | Relations = ()) -> Registry:
    """Read, validate and cross-check every dataset file under ``paths``.

    ``external_tables`` are the ``schema.table`` relations SQL-derived datasets may read besides
    registered datasets (the dbt models).
    """
    registry = Registry()
    docs: dict[str, YamlDocument] = {}
    roots = list(paths)
    external: dict[str, list[str]] = (
        {k: list(v) for k, v in external_tables.items()}
        if isinstance(external_tables, Mapping)
        else dict.fromkeys(external_tables, [])
    )
    partial: list[tuple[Path, YamlDocument, Dataset, list[Issue], bool]] = []
    for path in discover(roots):
        doc, dataset, issues = _read(path)
        if dataset is None or doc is None:
            registry.broken.append(_broken(path, doc, issues))
            continue
        unique = True
        seen_in = registry.files.get(dataset.name) or next(
            (p for p, _, d, _, _ in partial if d.name == dataset.name), None
        )
        if seen_in is not None:
            unique = False
            issues = issues + [
                doc.issue(
                    ("name",),
                    f"dataset '{dataset.name}' is already declared in {_shown(seen_in, roots)}",
                    "dataset names are unique across files",
                )
            ]
        if dataset.table in external:
            unique = False
            issues = issues + [
                doc.issue(
                    ("name",),
                    f"'{dataset.table}' is a dbt model; a dataset cannot have the same table",
                    "choose another name, or another layer",
                )
            ]
        if issues:
            partial.append((path, doc, dataset, issues, unique))
            continue
        registry.datasets[dataset.name] = dataset
        registry.files[dataset.name] = path
        docs[dataset.name] = doc
    for dataset in list(registry.datasets.values()):
        if dataset.history is not None:
            _add_history(registry, docs, dataset, external)
    broken_names = {b.name for b in registry.broken} | {d.name for _, _, d, _, _ in partial}
    _cross_check(registry, docs, external, broken_names)
    _inherit_change_contracts(registry)
    # files with their own errors are still checked against the others: every error in one run
    readable = _known(registry, external)
    for path, doc, dataset, issues, unique in partial:
        more = _cross_issues(dataset.name, dataset, doc, registry, external, broken_names, Registry(), readable)
        registry.broken.append(_broken(path, doc, sorted(set(issues + more)), unique=unique))
    return registry


def _inherit_change_contracts(registry: Registry) -> None:
    """The current state of a CDC dataset that declares no columns takes the CDC dataset's (its contract).

    Raw keeps a change log verbatim (text); the declared columns type and check the current state
    (:mod:`strata.current_state`).
    """
    for name, dataset in list(registry.datasets.items()):
        changes = registry.datasets.get(dataset.apply_changes or "")
        if changes is not None and changes.is_cdc and not dataset.columns and changes.columns:
            registry.datasets[name] = dataset.model_copy(update={"columns": changes.columns})


def _add_history(registry: Registry, docs: dict[str, YamlDocument], snapshots: Dataset, external: Relations) -> None:
    """Register ``staging.<name>_history``, the SCD Type 2 history a snapshot dataset declares.

    A SQL-derived dataset whose SELECT Strata writes (:func:`strata.registry.models.scd2_sql`),
    declared by the snapshot's file (issues about it point there); unique by key and ``valid_from``.
    """
    history = snapshots.history
    assert history is not None
    name = history_name(snapshots.name)
    doc = docs[snapshots.name]
    if name in registry.datasets or f"staging.{name}" in external:
        taken = registry.files.get(name)
        registry.broken.append(
            _broken(
                registry.files[snapshots.name],
                doc,
                [
                    doc.issue(
                        ("history",), f"its history would be '{name}', which {taken or 'a dbt model'} already declares"
                    )
                ],
            )
        )
        registry.datasets.pop(snapshots.name)
        registry.files.pop(snapshots.name)
        return
    dataset = Dataset(
        name=name,
        description=f"SCD Type 2 history of {snapshots.name}: one row per version of "
        f"{', '.join(history.key)}; a change of {', '.join(history.track)} opens a new version.",
        owners=snapshots.owners,
        group=snapshots.group,
        tags=snapshots.tags,
        layer="staging",
        select=scd2_sql(snapshots.name, history, [c.name for c in snapshots.columns]),
        primary_key=[*history.key, "valid_from"],
    )
    registry.datasets[name] = dataset
    registry.files[name] = registry.files[snapshots.name]
    docs[name] = doc


def _read(path: Path) -> tuple[YamlDocument | None, Dataset | None, list[Issue]]:
    """One file's document, dataset and issues; any error while reading it is an issue of that file."""
    doc = None
    try:
        doc, issues = read_yaml(path)
        if doc is None:
            return None, None, issues
        dataset, more = validate_document(doc)
        return doc, dataset, issues + more
    except Exception as err:  # noqa: BLE001 - a broken file must never hide the others
        return doc, None, [Issue(path, 1, 1, f"cannot read the file: {type(err).__name__}: {err}")]


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


def _cross_check(
    registry: Registry, docs: dict[str, YamlDocument], external: Relations, broken_names: set[str]
) -> None:
    readable = _known(registry, external)
    tables = readable[0]
    problems: dict[str, list[Issue]] = {}
    for name, ds in registry.datasets.items():
        found = _cross_issues(name, ds, docs[name], registry, external, broken_names, registry, readable)
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


def _cross_issues(
    name: str,
    ds: Dataset,
    doc: YamlDocument,
    registry: Registry,
    external: Relations,
    broken_names: set[str],
    record: Registry,
    readable: tuple[dict[str, str], list[str]],
) -> list[Issue]:
    """The cross-file issues of ``ds`` against the valid datasets of ``registry``; dependencies go to ``record``."""
    tables, known = readable
    found: list[Issue] = []
    if ds.apply_changes is not None:
        changes = registry.datasets.get(ds.apply_changes)
        if changes is None or not changes.is_cdc:
            found.append(
                doc.issue(
                    ("apply_changes",),
                    f"'{ds.apply_changes}' is not a registered CDC dataset",
                    "name a raw dataset whose postgres source has mode: cdc",
                )
            )
            return found
    if ds.select is not None:
        deps: list[str] = []
        resolved: list[tuple[TableRef, str]] = []
        for ref, relation in _tables_of(ds.select, tables, external, registry):
            if relation is None:
                found.append(_unknown_table(doc, ("select",), ref, known, broken_names))
            elif relation == ds.table:
                found.append(doc.issue_in(("select",), ref.line, ref.column, "a dataset cannot read itself"))
            else:
                resolved.append((ref, relation))
                if relation not in deps:
                    deps.append(relation)
        record.dependencies[name] = deps
        if not found:
            found += _column_issues(doc, ds, resolved, registry, external, tables)
    for i, check in enumerate(ds.checks):
        if isinstance(check, CustomSqlCheck):
            for ref, relation in _tables_of(with_placeholders(check.sql), tables, external, registry):
                if relation is None and ref.qualified != CHECK_PLACEHOLDERS["{table}"]:
                    found.append(_unknown_table(doc, ("checks", i, "sql"), ref, known, broken_names))
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
            elif target.name != name and target.table not in record.dependencies.setdefault(name, []):
                # the check reads the referenced dataset: load it first
                record.dependencies[name].append(target.table)
    return found


def _column_issues(
    doc: YamlDocument,
    ds: Dataset,
    tables: list[tuple[TableRef, str]],
    registry: Registry,
    external: Relations,
    by_table: Mapping[str, str],
) -> list[Issue]:
    """A column the SELECT names that its tables do not have; a partition column it does not produce."""
    statement, problem = parse_select(ds.select or "")
    if statement is None or problem is not None:
        return []
    # only the relations this SELECT reads: looking at every dataset for each SELECT was
    # quadratic (1.2 s of loading 1,000 datasets, docs/benchmarks.md)
    columns: dict[str, list[str]] = {}
    for _, relation in tables:
        d = registry.datasets.get(by_table.get(relation, ""))
        if d is not None:
            declared = [c.name for c in d.columns]
            load = list(LOAD_COLUMNS) + (list(CDC_COLUMNS) if d.is_cdc else [])
            columns[relation] = declared + load if declared and d.layer == "raw" else declared
        elif relation in external:
            columns[relation] = list(external[relation])
    result = resolve(statement, tables, columns)
    if result is None:
        return []
    if result.problem is not None:
        return [doc.issue_in(("select",), result.problem.line, result.problem.column, result.problem.message)]
    if ds.partitioning is not None and ds.partitioning.column and ds.partitioning.column not in result.outputs:
        near = difflib.get_close_matches(ds.partitioning.column, result.outputs, n=1)
        return [
            doc.issue(
                ("partitioning", "column"),
                f"partition column '{ds.partitioning.column}' is not a column of the select",
                f"did you mean '{near[0]}'?" if near else "the select gives: " + ", ".join(result.outputs[:12]),
            )
        ]
    return []


def _known(registry: Registry, external: Relations) -> tuple[dict[str, str], list[str]]:
    """Valid datasets by table, and every readable table (with the dbt models), sorted."""
    tables = {d.table: n for n, d in registry.datasets.items()}
    return tables, sorted(set(tables) | set(external))


def _tables_of(
    sql: str, tables: Mapping[str, str], external: Relations, registry: Registry
) -> list[tuple[TableRef, str | None]]:
    """Each table ``sql`` reads, with the ``schema.table`` it resolves to (None: not registered, not a dbt model)."""
    statement, _ = parse_select(sql, policy=False)
    refs = tables_read(statement) if statement is not None else []
    return [(ref, _resolve(ref.schema, ref.name, tables, external, registry)) for ref in refs]


def _unknown_table(doc: YamlDocument, loc: tuple, ref: TableRef, known: list[str], broken_names: set[str]) -> Issue:
    hint = difflib.get_close_matches(ref.qualified, known, n=1, cutoff=0.5)
    gone = f"; '{ref.name}' has errors" if ref.name in broken_names else ""
    return doc.issue_in(
        loc,
        ref.line,
        ref.column,
        f"{'select' if loc == ('select',) else 'sql'} reads unknown table '{ref.qualified}'{gone}",
        f"did you mean '{hint[0]}'?" if hint else "registered datasets and dbt models",
    )


def _resolve(schema: str, name: str, tables: Mapping[str, str], external: Relations, registry: Registry) -> str | None:
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
