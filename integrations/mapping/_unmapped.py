"""Which source fields does a mapping read? Used for `validate --unmapped` and the workbench.

Paths are written like `commits[].author.name`. A source leaf counts as read when the mapping
reads it or one of its ancestors as a value (reading `repository` whole reads all of it; walking
through `repository` to reach `repository.name` reads only that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from integrations.mapping._compile import CompiledMapping, CompiledOutput

Path_ = tuple[str, ...]
LIST = "[]"


def _walk(node: dict[str, Any], ctx: Path_ | None, reads: set[Path_]) -> Path_ | None:
    """Returns the path the node's value comes from (None when derived); adds consumed paths to reads."""
    kind = node.get("type")
    children = node.get("children", [])

    def consume(child: dict[str, Any], base: Path_ | None) -> None:
        result = _walk(child, base, reads)
        if result is not None:
            reads.add(result)

    if kind == "field":
        return None if ctx is None else ctx + (node["value"],)
    if kind in ("current", "identity"):
        return ctx
    if kind == "literal":
        return None
    if kind in ("subexpression", "pipe"):  # n-ary: a.b.c is one subexpression of three fields
        current = ctx
        for child in children:
            current = _walk(child, current, reads)
        return current
    if kind == "index_expression":
        left = _walk(children[0], ctx, reads)
        return None if left is None else left + (LIST,)
    if kind == "flatten":
        inner = _walk(children[0], ctx, reads)
        if inner is None:
            return None
        return inner if inner and inner[-1] == LIST else inner + (LIST,)
    if kind in ("projection", "value_projection"):
        left = _walk(children[0], ctx, reads)
        base = None if left is None else (left if left and left[-1] == LIST else left + (LIST,))
        return _walk(children[1], base, reads)
    if kind == "filter_projection":
        left = _walk(children[0], ctx, reads)
        base = None if left is None else (left if left and left[-1] == LIST else left + (LIST,))
        consume(children[2], base)
        return _walk(children[1], base, reads)
    # Everything else consumes its children as values and gives a derived value.
    for child in children:
        if isinstance(child, dict):
            consume(child, ctx)
    return None


def _rebase(path: Path_, for_each: Path_ | None) -> Path_ | None:
    if for_each is None:
        return path
    if path[:1] == ("record",):
        return path[1:]
    if path[:1] == ("item",):
        return for_each + (LIST,) + path[1:]
    return None


def read_paths(mapping: CompiledMapping) -> set[Path_]:
    """Every source path a mapping reads as a value."""
    out: set[Path_] = set()
    for output in mapping.outputs:
        out |= _output_reads(output)
    return out


def _output_reads(output: CompiledOutput) -> set[Path_]:
    for_each: Path_ | None = None
    reads: set[Path_] = set()
    if output.for_each is not None:
        fe = _walk(output.for_each.parsed.parsed, (), reads)
        for_each = tuple(p for p in fe if p != LIST) if fe is not None else None
        if for_each is not None:
            reads.discard(fe)
    for name, expr in output.expressions():
        if name == "for_each":
            continue
        local: set[Path_] = set()
        result = _walk(expr.parsed.parsed, (), local)
        if result is not None:
            local.add(result)
        for path in local:
            rebased = _rebase(path, for_each)
            if rebased:
                reads.add(rebased)
    return {tuple(p for p in path) for path in reads}


def leaf_paths(record: Any, prefix: Path_ = ()) -> Iterable[Path_]:
    """Every leaf path of a JSON value (lists as `[]`)."""
    if isinstance(record, dict) and record:
        for key, value in record.items():
            yield from leaf_paths(value, prefix + (str(key),))
    elif isinstance(record, list) and record:
        seen: set[Path_] = set()
        for value in record:
            for path in leaf_paths(value, prefix + (LIST,)):
                if path not in seen:
                    seen.add(path)
                    yield path
    else:
        yield prefix


def format_path(path: Path_) -> str:
    text = ""
    for part in path:
        text += LIST if part == LIST else (f".{part}" if text else part)
    return text


def unmapped_fields(mapping: CompiledMapping, records: Iterable[Any]) -> list[tuple[str, int]]:
    """(path, number of records that have it) for each source leaf no expression reads."""
    reads = read_paths(mapping)
    counts: Counter[Path_] = Counter()
    for record in records:
        counts.update(set(leaf_paths(record)))

    def is_read(path: Path_) -> bool:
        return any(path[: len(r)] == r for r in reads)

    return sorted((format_path(p), n) for p, n in counts.items() if p and not is_read(p))
