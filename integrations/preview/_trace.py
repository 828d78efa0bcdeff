"""Per-field traces: for one record, each expression, the value it gave, or why it is null.

"Why" walks the expression the way JMESPath evaluates it and stops at the first step that gave
null: `key 'name' missing at record.pusher.name`, `record.repository is a string, not an object`,
`every alternative is null (...)`. Errors (a function given the wrong type...) are shown as
the reference engine reports them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from jmespath import exceptions as jmes_exc
from jmespath.visitor import TreeInterpreter

from integrations.errors import IntegrationsError
from integrations.mapping import CompiledExpression, CompiledMapping, is_truthy
from integrations.mapping.functions import OPTIONS

_INTERPRETER = TreeInterpreter(OPTIONS)


@dataclass
class TraceRow:
    """One expression of one output on one record (or one element of its for_each)."""

    output: str
    event: int | None  # which event of the output (for_each element), None for when/for_each
    field: str
    expression: str
    value: Any
    why: str  # why the value is null, the error, or "" when there is a value

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "event": self.event, "field": self.field, "expression": self.expression,
                "value": _show(self.value), "why": self.why}


def _show(value: Any) -> str:
    if value is None:
        return "null"
    return json.dumps(value, ensure_ascii=False, default=str)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _visit(node: dict[str, Any], data: Any) -> Any:
    return _INTERPRETER.visit(node, data)


def _label(node: dict[str, Any]) -> str | None:
    """How a path step reads in a location (`name`, `[0]`), or None when it is not a plain step."""
    kind = node.get("type")
    if kind == "field":
        return node["value"]
    if kind == "index":
        return f"[{node['value']}]"
    return None


def why_null(node: dict[str, Any], data: Any, where: str) -> str:
    """Why evaluating `node` on `data` (found at `where`) gives null."""
    kind = node.get("type")
    children = node.get("children", [])
    if kind == "field":
        key = node["value"]
        if data is None:
            return f"{where or 'the value'} is null, so {_join(where, key)} is null"
        if not isinstance(data, dict):
            return f"{where or 'the value'} is {_type_name(data)}, not an object"
        if key not in data:
            return f"key '{key}' missing at {_join(where, key)}"
        return f"{_join(where, key)} is null in the record"
    if kind in ("subexpression", "pipe", "index_expression"):
        current, place = data, where
        for child in children:
            value = _visit(child, current)
            if value is None:
                return why_null(child, current, place)
            step = _label(child)
            place = (place + step if step and step.startswith("[") else _join(place, step)) if step else f"({place})"
            current = value
        return "the expression gave null"
    if kind == "index":
        if not isinstance(data, list):
            return f"{where or 'the value'} is {'null' if data is None else _type_name(data)}, not a list"
        return f"{where}[{node['value']}] is out of range ({len(data)} element(s))"
    if kind == "or_expression":
        parts = [why_null(child, data, where) for child in children]
        return "every alternative is null: " + "; ".join(parts)
    if kind == "and_expression":
        left = _visit(children[0], data)
        if not is_truthy(left):
            return "the left side of && is falsy" + (f" ({why_null(children[0], data, where)})" if left is None else "")
        return why_null(children[1], data, where)
    if kind == "function_expression":
        for child in children:
            if child.get("type") in ("field", "subexpression", "index_expression") and _visit(child, data) is None:
                return f"{node['value']}() gave null; its argument is null: {why_null(child, data, where)}"
        return f"{node['value']}() gave null"
    if kind == "literal":
        return "the literal is null"
    if kind in ("projection", "filter_projection", "flatten", "value_projection"):
        return "the projection's source is not a list (or object)"
    if kind == "current":
        return f"{where or 'the value'} is null"
    return "the expression gave null"


def _evaluate(expr: CompiledExpression, scope: Any, root: str) -> tuple[Any, str]:
    try:
        value = expr.search(scope)
    except IntegrationsError as err:
        return None, f"error: {err.message}"
    except jmes_exc.JMESPathError as err:
        return None, "error: " + str(err).replace("\n", " ")
    except (TypeError, ValueError, OverflowError, RecursionError) as err:
        return None, f"error: {type(err).__name__}: {err}"
    if value is not None:
        return value, ""
    try:
        return None, why_null(expr.parsed.parsed, scope, root)
    except Exception:  # noqa: BLE001 - explaining must never break the trace
        return None, "the expression gave null"


def trace_record(mapping: CompiledMapping, record: Any) -> list[TraceRow]:
    """Every expression of every output on one record, with value or reason."""
    rows: list[TraceRow] = []
    for out in mapping.outputs:
        name = out.name
        if out.when is not None:
            value, why = _evaluate(out.when, record, "record")
            if why.startswith("error"):
                rows.append(TraceRow(name, None, "when", out.when.text, None, why))
                continue
            if not is_truthy(value):
                rows.append(TraceRow(name, None, "when", out.when.text, value,
                                     (why + "; " if why else "") + "falsy: this output makes no event from the record"))
                continue
            rows.append(TraceRow(name, None, "when", out.when.text, value, ""))
        scopes: list[Any] = [record]
        root = "record"
        if out.for_each is not None:
            items, why = _evaluate(out.for_each, record, "record")
            if why.startswith("error") or items is None or not isinstance(items, list):
                note = why or f"for_each gave {_type_name(items)}, not a list"
                rows.append(TraceRow(name, None, "for_each", out.for_each.text, items, note + "; no event"))
                continue
            rows.append(TraceRow(name, None, "for_each", out.for_each.text, f"{len(items)} element(s)",
                                 "" if items else "an empty list: no event"))
            scopes = [{"item": item, "record": record} for item in items]
            root = ""
        for position, scope in enumerate(scopes):
            for field, expr in out.expressions():
                if field in ("when", "for_each"):
                    continue
                value, why = _evaluate(expr, scope, root)
                rows.append(TraceRow(name, position, field, expr.text, value, why))
    return rows


def evaluate(expression: str, data: Any) -> tuple[Any, str]:
    """The scratchpad: (value, "") or (None, why it is null or what is wrong, with the column)."""
    import jmespath

    from integrations.mapping.functions import ALL_FUNCTION_NAMES

    if not expression.strip():
        return None, ""
    try:
        parsed = jmespath.compile(expression)
    except jmes_exc.ParseError as err:
        pos = err.lex_position or 0
        return None, f"syntax error at column {pos + 1}: {err.msg.splitlines()[0] if err.msg else 'invalid'}"
    except jmes_exc.LexerError as err:
        return None, f"syntax error at column {(err.lex_position or 0) + 1}: {err.msg}"
    except jmes_exc.JMESPathError as err:
        return None, f"error: {err}"
    unknown = _unknown_functions(parsed.parsed, ALL_FUNCTION_NAMES)
    if unknown:
        return None, f"unknown function '{unknown}()'"
    expr = CompiledExpression(text=expression, parsed=parsed, where="scratchpad")
    return _evaluate(expr, data, "")


def _unknown_functions(node: Any, known: Any) -> str | None:
    if not isinstance(node, dict):
        return None
    if node.get("type") == "function_expression" and node["value"] not in known:
        return node["value"]
    for child in node.get("children", []):
        found = _unknown_functions(child, known)
        if found:
            return found
    return None


__all__ = ["TraceRow", "evaluate", "trace_record", "why_null"]
