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


#: Most nodes a dataset file may expand to, counting each alias's target again (an alias bomb of
#: 870 bytes expands to millions), and the deepest nesting. A real dataset file has a few thousand
#: nodes and a depth under 10.
MAX_NODES = 50_000
MAX_DEPTH = 64


def read_yaml(path: Path, text: str | None = None) -> tuple[YamlDocument | None, list[Issue]]:
    """Parse ``path``; return the document and its syntax problems (then the document is None).

    Never raises for the file's content: bytes that are not UTF-8, YAML errors, keys that are not
    plain scalars, alias expansion beyond :data:`MAX_NODES` and nesting beyond :data:`MAX_DEPTH`
    each become an :class:`Issue` at their position.

    Raises:
        OSError: the file cannot be read.
    """
    if text is None:
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            line = raw[: err.start].count(b"\n") + 1
            column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
            return None, [
                Issue(
                    path,
                    line,
                    column,
                    f"the file is not UTF-8 (byte 0x{raw[err.start]:02x})",
                    "save it as UTF-8",
                )
            ]
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, [Issue(path, 1, 1, "the file is empty", "a dataset file is a mapping: name, layer, ...")]
        shape = _shape_problem(path, root)
        if shape is not None:
            return None, [shape]
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
    except (yaml.YAMLError, RecursionError, MemoryError, ValueError, TypeError) as err:
        return None, [Issue(path, 1, 1, f"YAML error: {type(err).__name__}: {err}")]
    finally:
        loader.dispose()
    return YamlDocument(path, data, root), duplicates


def _shape_problem(path: Path, root: yaml.Node) -> Issue | None:
    """The first key that is not a scalar, or the point where nesting or alias expansion goes too far."""
    stack: list[tuple[yaml.Node, int]] = [(root, 1)]
    visited = 0
    while stack:
        node, depth = stack.pop()
        visited += 1
        mark = node.start_mark
        if visited > MAX_NODES:
            return Issue(
                path,
                mark.line + 1,
                mark.column + 1,
                f"the file expands to more than {MAX_NODES:,} values (aliases repeat their target)",
                "write the values out, or use fewer nested aliases",
            )
        if depth > MAX_DEPTH:
            return Issue(path, mark.line + 1, mark.column + 1, f"nesting deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    return Issue(
                        path,
                        key.start_mark.line + 1,
                        key.start_mark.column + 1,
                        "a key must be a plain name, not a list or mapping ('? ...' complex key)",
                    )
                stack.append((value, depth + 1))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, depth + 1) for item in node.value)
    return None


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
            seen[k.value] = k
            yield from _duplicate_keys(path, v)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(path, item)
