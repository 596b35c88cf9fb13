"""Validating one dataset file: the pydantic models, then the rules, every error with its location.

Pydantic reports every schema error of a document at once (not just the first); each is placed
on its key or value with :meth:`YamlDocument.issue` and given a hint (the nearest valid key or
value, or the expected form).
"""

from __future__ import annotations

import difflib
import re
import typing
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from strata.registry import rules
from strata.registry.issues import Issue
from strata.registry.models import (
    DURATION_PATTERN,
    ENV_REF_PATTERN,
    IDENTIFIER_PATTERN,
    Dataset,
)
from strata.registry.yaml_doc import YamlDocument

#: Keys whose values are credentials: only ``${ENV_VAR}`` references are accepted.
SECRET_KEY = re.compile(r"(password|passwd|secret|token|api[_-]?key|authorization|credential)", re.IGNORECASE)

_PATTERN_MESSAGES = {
    IDENTIFIER_PATTERN: (
        "must be a lower snake_case identifier (a-z, 0-9 and _, not starting with a digit)",
        "for example sales_orders",
    ),
    ENV_REF_PATTERN: (
        "must be an environment variable reference",
        "write ${NAME}, e.g. ${ORDERS_PG_HOST}; set the variable where Dagster runs",
    ),
    DURATION_PATTERN: ("must be a duration", "a number and a unit: 90s, 15m, 2h or 3d"),
}


def validate_document(doc: YamlDocument) -> tuple[Dataset | None, list[Issue]]:
    """The dataset a document declares, and every problem found in it.

    The dataset is None when the document does not fit the schema; with rule violations it is
    returned with them, so the loader can also check it against the other files (one pass).
    """
    if not isinstance(doc.data, dict):
        return None, [
            doc.issue(
                (),
                "a dataset file must be a mapping of keys (name, layer, source ...)",
                f"it is a {type(doc.data).__name__}",
            )
        ]
    issues = list(_literal_secrets(doc, doc.data, ()))
    try:
        dataset = Dataset.model_validate(doc.data)
    except ValidationError as err:
        issues += [_issue_for(doc, error) for error in err.errors(include_url=False)]
        issues += rules.check_sql_text(doc)
        return None, sorted(set(issues))
    issues += rules.check_dataset(doc, dataset)
    return dataset, sorted(set(issues))


def _literal_secrets(doc: YamlDocument, data: Any, loc: tuple) -> Iterator[Issue]:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and SECRET_KEY.search(key) and isinstance(value, str | int):
                if not re.fullmatch(ENV_REF_PATTERN, str(value)) and not str(value).startswith("Bearer ${"):
                    yield doc.issue(
                        (*loc, key),
                        f"'{key}' holds a literal secret; secrets must not be written in YAML",
                        "reference an environment variable: ${NAME}",
                    )
            yield from _literal_secrets(doc, value, (*loc, key))
    elif isinstance(data, list):
        for i, item in enumerate(data):
            yield from _literal_secrets(doc, item, (*loc, i))


def _issue_for(doc: YamlDocument, error: dict) -> Issue:
    loc: tuple = error["loc"]
    kind = error["type"]
    field = next((p for p in reversed(loc) if isinstance(p, str)), "value")
    ctx = error.get("ctx") or {}
    given = error.get("input")
    if kind == "extra_forbidden":
        if re.search(r"\)\s*$", str(loc[-1])):
            return doc.issue(
                loc,
                f"unknown key '{loc[-1]}': a comma inside a {{...}} value splits it",
                'quote the value, e.g. type: "DECIMAL(15,2)"',
                key=True,
            )
        allowed = _fields_at(loc[:-1])
        near = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
        hint = f"did you mean '{near[0]}'?" if near else ("valid keys: " + ", ".join(allowed) if allowed else "")
        return doc.issue(loc, f"unknown key '{loc[-1]}'", hint, key=True)
    if kind == "missing":
        return doc.issue(loc[:-1], f"missing required key '{loc[-1]}'")
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        options = re.findall(r"'([^']*)'", expected)
        near = difflib.get_close_matches(str(given), options, n=1, cutoff=0.5)
        return doc.issue(
            loc, f"{field}: '{given}' is not one of {expected}", f"did you mean '{near[0]}'?" if near else ""
        )
    if kind == "union_tag_invalid":
        options = re.findall(r"'([^']*)'", ctx.get("expected_tags", ""))
        near = difflib.get_close_matches(str(ctx.get("tag")), options, n=1, cutoff=0.5)
        return doc.issue(
            (*loc, "type"),
            f"unknown type '{ctx.get('tag')}'; expected one of {', '.join(options)}",
            f"did you mean '{near[0]}'?" if near else "",
        )
    if kind == "union_tag_not_found":
        return doc.issue(loc, f"{field}: missing key 'type'", "every source and check names its type")
    if kind == "string_pattern_mismatch":
        message, hint = _PATTERN_MESSAGES.get(ctx.get("pattern", ""), (f"does not match {ctx.get('pattern')}", ""))
        return doc.issue(loc, f"{field}: '{given}' {message}", hint)
    if kind.startswith("date"):
        return doc.issue(loc, f"{field}: '{given}' is not a valid date", "write YYYY-MM-DD, e.g. 2024-01-31")
    return doc.issue(loc, f"{field}: {error['msg']}" + (f" (got {given!r})" if _short(given) else ""))


def _short(value: Any) -> bool:
    return isinstance(value, str | int | float | bool) and len(str(value)) < 60


def _fields_at(loc: Sequence[str | int]) -> list[str]:
    """The keys valid at ``loc`` (which may include union tags such as 'files' or 'volume')."""
    model: type[BaseModel] | None = Dataset
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            model = _TAGGED.get(part)
        elif part in model.model_fields:
            model = _model_in(model.model_fields[part].annotation)
        else:
            model = _TAGGED.get(part)
            if model is None:
                return []
    return list(model.model_fields) if model else []


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _model_in(annotation: Any) -> type[BaseModel] | None:
    models = _models_in(annotation)
    return models[0] if len(models) == 1 else None


def _tags() -> dict[str, type[BaseModel]]:
    tagged: dict[str, type[BaseModel]] = {}
    todo, seen = [Dataset], set()
    while todo:
        model = todo.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            found = _models_in(info.annotation)
            todo += found
            if name == "type" and typing.get_origin(info.annotation) is typing.Literal:
                for tag in typing.get_args(info.annotation):
                    tagged.setdefault(tag, model)
    return tagged


_TAGGED = _tags()
