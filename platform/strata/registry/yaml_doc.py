"""Reading a YAML file while keeping the line and column of every key and value.

PyYAML composes the file into a node tree (with libyaml when available) whose nodes carry marks;
the data is constructed from the same tree, so every value can be traced back to its position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from strata.registry.issues import Issue

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[valid-type,misc]
    """YAML's safe loader (libyaml when available) that leaves dates as strings.

    PyYAML would turn ``2024-13-01`` into a timestamp and fail without a position; as a string
    it reaches pydantic, which rejects it with its location.
    """

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _Base.yaml_implicit_resolvers.items()
    }


@dataclass
class YamlDocument:
    """A parsed YAML file: its data and the node tree it was built from."""

    path: Path
    data: Any
    root: yaml.Node

    def node_at(self, loc: Sequence[str | int], key: bool = False) -> yaml.Node:
        """The deepest node along ``loc`` (mapping keys and list indexes; unknown parts are skipped).

        With ``key``, a final mapping key's own node rather than its value.
        """
        node = self.root
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == part:
                        node = k if (key and last) else v
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
                node = node.value[part]
        return node

    def position_in(self, loc: Sequence[str | int], line: int, column: int) -> tuple[int, int]:
        """File line and column of (``line``, ``column``), 1-based, inside the string value at ``loc``.

        Block scalars (``|``, ``>``) start on the line after their key; quoted ones one column in.
        """
        node = self.node_at(loc)
        mark = node.start_mark
        style = getattr(node, "style", None)
        if style in ("|", ">"):
            file_line = mark.line + 1 + line
            text = self.path.read_text(encoding="utf-8").splitlines()
            row = text[file_line - 1] if file_line - 1 < len(text) else ""
            return file_line, len(row) - len(row.lstrip()) + column
        offset = 1 if style in ('"', "'") else 0
        return mark.line + line, mark.column + offset + column

    def issue_in(self, loc: Sequence[str | int], line: int, column: int, message: str, hint: str = "") -> Issue:
        """An :class:`Issue` at a position inside the string value at ``loc`` (see :meth:`position_in`)."""
        file_line, file_column = self.position_in(loc, line, column)
        return Issue(self.path, file_line, file_column, message, hint)

    def issue(self, loc: Sequence[str | int], message: str, hint: str = "", key: bool = False) -> Issue:
        """An :class:`Issue` placed at ``loc``."""
        mark = self.node_at(loc, key=key).start_mark
        return Issue(self.path, mark.line + 1, mark.column + 1, message, hint)


def read_yaml(path: Path, text: str | None = None) -> tuple[YamlDocument | None, list[Issue]]:
    """Parse ``path``; return the document and its syntax problems (then the document is None)."""
    text = path.read_text(encoding="utf-8") if text is None else text
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [Issue(path, 1, 1, "the file is empty", "a dataset file is a mapping: name, layer, ...")]
        duplicates = list(_duplicate_keys(path, root))
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        row = text.splitlines()[line - 1] if 0 < line <= len(text.splitlines()) else ""
        hint = 'quote it inside {...}: token: "${NAME}"' if "${" in row and "{" in row.split("${")[0] else ""
        context = ""
        if err.context and err.context_mark and err.context_mark.line + 1 != line:
            context = f" ({err.context} at line {err.context_mark.line + 1}, column {err.context_mark.column + 1})"
        return None, [Issue(path, line, col, f"YAML syntax error: {err.problem or err}{context}", hint)]
    finally:
        loader.dispose()
    return YamlDocument(path, data, root), duplicates


def _duplicate_keys(path: Path, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Node] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value in seen:
                first = seen[k.value].start_mark.line + 1
                yield Issue(
                    path,
                    k.start_mark.line + 1,
                    k.start_mark.column + 1,
                    f"duplicate key '{k.value}' (first at line {first}); the later value would win",
                )
            seen[getattr(k, "value", None)] = k
            yield from _duplicate_keys(path, v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(path, item)
