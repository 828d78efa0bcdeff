"""YAML loading that remembers where every node was, so errors can name `file:line:col`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from integrations.errors import IntegrationsError, MappingError

Path_ = tuple[Any, ...]


@dataclass(frozen=True)
class Mark:
    """1-based line and column of a node; `value_col` is where a scalar's text starts."""

    line: int
    col: int
    value_col: int
    single_line: bool = True


@dataclass
class LocatedDocument:
    """The plain data of a YAML document and the mark of every node in it, keyed by path."""

    data: Any
    marks: dict[Path_, Mark] = field(default_factory=dict)
    key_marks: dict[Path_, Mark] = field(default_factory=dict)

    def mark(self, path: Path_) -> Mark | None:
        """The mark of the node at `path`, or of its nearest ancestor."""
        path = tuple(path)
        while True:
            if path in self.marks:
                return self.marks[path]
            if not path:
                return None
            path = path[:-1]


def _mark_of(node: yaml.Node) -> Mark:
    line = node.start_mark.line + 1
    col = node.start_mark.column + 1
    value_col = col
    single_line = node.start_mark.line == node.end_mark.line
    if isinstance(node, yaml.ScalarNode) and node.style in ("'", '"'):
        value_col = col + 1
    if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">"):
        single_line = False
    return Mark(line=line, col=col, value_col=value_col, single_line=single_line)


def _construct(node: yaml.Node, path: Path_, doc: LocatedDocument, file: str | None,
               error: type[IntegrationsError] = MappingError) -> Any:
    doc.marks[path] = _mark_of(node)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise error("mapping keys must be plain strings", file=file,
                                   line=key_node.start_mark.line + 1, col=key_node.start_mark.column + 1)
            key = key_node.value
            if key in out:
                raise error(f"duplicate key '{key}'", file=file,
                                   line=key_node.start_mark.line + 1, col=key_node.start_mark.column + 1)
            doc.key_marks[path + (key,)] = _mark_of(key_node)
            out[key] = _construct(value_node, path + (key,), doc, file, error)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, path + (i,), doc, file, error) for i, item in enumerate(node.value)]
    # Scalars: resolve with the safe loader's own rules (ints, floats, bools, null, strings).
    return yaml.SafeLoader(yaml.serialize(node)).get_single_data() if node.tag != "tag:yaml.org,2002:str" else node.value


def load_located(text: str, file: str | None = None, error: type[IntegrationsError] = MappingError) -> LocatedDocument:
    """Parse one YAML document, keeping marks; syntax errors name the line and column."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise error(
            f"YAML syntax error: {err.problem or err.context}",
            file=file,
            line=mark.line + 1 if mark else None,
            col=mark.column + 1 if mark else None,
        ) from None
    doc = LocatedDocument(data=None)
    if node is None:
        raise error("the file is empty", file=file, line=1, col=1)
    doc.data = _construct(node, (), doc, file, error)
    return doc


def located_validation_errors(err: Any, doc: LocatedDocument, file: str | None,
                              error: type[IntegrationsError]) -> list[IntegrationsError]:
    """A pydantic ValidationError as errors that name the YAML line of each bad node."""
    import difflib

    out: list[IntegrationsError] = []
    items = err.errors()
    # A misspelt key shows up twice (unknown 'cronn', missing 'cron'): report it once, as the unknown key.
    extras = {(tuple(i["loc"][:-1]), str(i["loc"][-1])) for i in items if i["type"] == "extra_forbidden"}
    for item in items:
        loc = tuple(item["loc"])
        where = ".".join(str(p) for p in loc)
        if item["type"] == "missing" and any(parent == loc[:-1] and difflib.get_close_matches(str(loc[-1]), [key], cutoff=0.6)
                                             for parent, key in extras):
            continue
        if item["type"] == "extra_forbidden":
            mark = doc.key_marks.get(loc) or doc.mark(loc)
            siblings = [k for (parent, k) in extras if parent == loc[:-1]]
            missing = [str(i["loc"][-1]) for i in items if i["type"] == "missing" and tuple(i["loc"][:-1]) == loc[:-1]]
            close = difflib.get_close_matches(str(loc[-1]), missing, n=1, cutoff=0.6)
            message = f"unknown key '{loc[-1]}'" + (f"; did you mean '{close[0]}'?" if close else "")
            del siblings
        elif item["type"] == "missing":
            mark = doc.mark(loc[:-1])
            message = f"missing required key '{loc[-1]}'" + (f" in '{'.'.join(str(p) for p in loc[:-1])}'" if loc[:-1] else "")
        else:
            mark = doc.mark(loc)
            message = f"'{where}': {item['msg']}"
        out.append(error(message, file=file, line=mark.line if mark else None, col=mark.value_col if mark else None,
                         field=where or None))
    return out
