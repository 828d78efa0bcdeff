"""Load, validate and compile a mapping file: YAML with line marks -> model -> compiled expressions.

Every expression is compiled once here (`jmespath.compile`) and reused for every record, so a bad
expression fails at `integrations validate`, not on record 10,000. Validation collects every
error it can find, each with `file:line:col`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jmespath
from jmespath import exceptions as jmes_exc
from jmespath.lexer import Lexer
from jmespath.parser import ParsedResult
from pydantic import ValidationError

from integrations.errors import IntegrationsError, MappingError
from integrations.mapping._model import (
    ALWAYS_REQUIRED,
    CORE_FIELDS,
    Mapping,
    Output,
    is_known_field,
)
from integrations.located_yaml import LocatedDocument, Mark, load_located
from integrations.mapping.functions import ALL_FUNCTION_NAMES, OPTIONS, function_arity


@dataclass(frozen=True)
class CompiledExpression:
    """One JMESPath expression, compiled, with where it stands in the file."""

    text: str
    parsed: ParsedResult
    where: str  # the mapping path of the expression, e.g. "outputs[0].fields.title"
    line: int | None = None
    col: int | None = None

    def search(self, data: Any) -> Any:
        return self.parsed.search(data, options=OPTIONS)


@dataclass
class CompiledOutput:
    spec: Output
    index: int
    when: CompiledExpression | None
    for_each: CompiledExpression | None
    fields: dict[str, CompiledExpression]
    severity: list[tuple[CompiledExpression | None, str]]
    hints: list[tuple[str, CompiledExpression, float]]
    links: list[tuple[str, CompiledExpression, CompiledExpression | None, dict[str, CompiledExpression]]]

    @property
    def name(self) -> str:
        return self.spec.name or self.spec.kind

    def expressions(self) -> list[tuple[str, CompiledExpression]]:
        """Every expression of this output with the output field it feeds (for traces and SQL)."""
        out: list[tuple[str, CompiledExpression]] = []
        if self.when is not None:
            out.append(("when", self.when))
        if self.for_each is not None:
            out.append(("for_each", self.for_each))
        out.extend(self.fields.items())
        for i, (cond, _level) in enumerate(self.severity):
            if cond is not None:
                out.append((f"severity[{i}].when", cond))
        for i, (_t, value, _c) in enumerate(self.hints):
            out.append((f"correlation_hints[{i}].value", value))
        for i, (_t, url, desc, meta) in enumerate(self.links):
            out.append((f"evidence_links[{i}].url", url))
            if desc is not None:
                out.append((f"evidence_links[{i}].description", desc))
            for key, expr in meta.items():
                out.append((f"evidence_links[{i}].metadata.{key}", expr))
        return out


@dataclass
class CompiledMapping:
    """A validated mapping ready to run: the model, its compiled outputs and its source."""

    spec: Mapping
    outputs: list[CompiledOutput]
    file: str | None = None
    text: str = ""
    document: LocatedDocument | None = field(default=None, repr=False)

    @property
    def plugin(self) -> str:
        return self.spec.plugin

    @property
    def source(self) -> str:
        return self.spec.source


def _suggest(name: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _where(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class _Collector:
    """Gathers errors with their place, so `validate` reports all of them at once."""

    def __init__(self, doc: LocatedDocument, file: str | None) -> None:
        self.doc = doc
        self.file = file
        self.errors: list[MappingError] = []

    def add(self, message: str, path: tuple[Any, ...], *, key: bool = False, col_offset: int | None = None,
            field: str | None = None, expression: str | None = None, hint: str | None = None,
            expression_col: int | None = None) -> None:
        mark: Mark | None = self.doc.key_marks.get(tuple(path)) if key else None
        if mark is None:
            mark = self.doc.mark(path)
        line = mark.line if mark else None
        col = mark.value_col if mark else None
        if mark is not None and col_offset is not None and mark.single_line:
            col = mark.value_col + col_offset
        err = MappingError(message, file=self.file, line=line, col=col, field=field,
                           expression=expression, hint=hint)
        err._expression_col = expression_col
        self.errors.append(err)


def _function_calls(text: str) -> list[tuple[str, int]]:
    """(name, position) of each function call in an expression, found by re-lexing it."""
    tokens = list(Lexer().tokenize(text))
    calls = []
    for tok, nxt in zip(tokens, tokens[1:]):
        if tok["type"] == "unquoted_identifier" and nxt["type"] == "lparen":
            calls.append((tok["value"], tok["start"]))
    return calls


def _check_calls(node: dict[str, Any], found: list[tuple[str, int]]) -> None:
    """Collect (name, number of arguments) for every function node of the AST."""
    if not isinstance(node, dict):
        return
    if node.get("type") == "function_expression":
        found.append((node["value"], len(node["children"])))
    for child in node.get("children", []):
        _check_calls(child, found)


def _compile_expression(text: Any, path: tuple[Any, ...], errors: _Collector,
                        field: str | None) -> CompiledExpression | None:
    if not isinstance(text, str):
        errors.add(f"expected a JMESPath expression (a string), got {type(text).__name__}", path, field=field)
        return None
    try:
        parsed = jmespath.compile(text)
    except jmes_exc.LexerError as err:
        pos = err.lex_position or 0
        errors.add(f"JMESPath syntax error: {err.msg}", path, col_offset=pos, field=field,
                   expression=text, expression_col=pos)
        return None
    except jmes_exc.ParseError as err:
        pos = err.lex_position or 0
        token = err.token_value if err.token_value not in (None, "") else err.token_type
        errors.add(f"JMESPath syntax error: {err.msg.splitlines()[0] if err.msg else 'invalid'} near '{token}'",
                   path, col_offset=pos, field=field, expression=text, expression_col=pos)
        return None
    except jmes_exc.JMESPathError as err:
        errors.add(f"JMESPath error: {err}", path, field=field, expression=text)
        return None
    ok = True
    calls: list[tuple[str, int]] = []
    _check_calls(parsed.parsed, calls)
    positions = dict(_function_calls(text))
    for name, nargs in calls:
        pos = positions.get(name, 0)
        if name not in ALL_FUNCTION_NAMES:
            errors.add(f"unknown function '{name}()'{_suggest(name, ALL_FUNCTION_NAMES)}", path, col_offset=pos,
                       field=field, expression=text, expression_col=pos,
                       hint="functions: " + ", ".join(ALL_FUNCTION_NAMES))
            ok = False
            continue
        declared, variadic = function_arity(name)
        if (variadic and nargs < declared - 1) or (not variadic and nargs != declared):
            want = f"at least {declared - 1}" if variadic else str(declared)
            errors.add(f"function '{name}()' takes {want} argument(s), got {nargs}", path, col_offset=pos,
                       field=field, expression=text, expression_col=pos)
            ok = False
    if not ok:
        return None
    mark = errors.doc.mark(path)
    return CompiledExpression(text=text, parsed=parsed, where=_where(path),
                              line=mark.line if mark else None, col=mark.value_col if mark else None)


def _pydantic_errors(err: ValidationError, errors: _Collector) -> None:
    items = err.errors()
    # A misspelt key shows up twice (unknown 'event_typ', missing 'event_type'): report it once.
    extras = {(tuple(i["loc"][:-1]), str(i["loc"][-1])) for i in items if i["type"] == "extra_forbidden"}
    for item in items:
        loc = tuple(item["loc"])
        kind = item["type"]
        if kind == "missing" and any(parent == loc[:-1] and difflib.get_close_matches(str(loc[-1]), [key], cutoff=0.6)
                                     for parent, key in extras):
            continue
        if kind == "extra_forbidden":
            parent = loc[:-1]
            model = _model_at(parent)
            known = sorted(model.model_fields) if model else []
            key = str(loc[-1])
            errors.add(f"unknown key '{key}'{_suggest(key, known)}", loc, key=True,
                       hint=("valid keys here: " + ", ".join(known)) if known else None)
        elif kind == "missing":
            errors.add(f"missing required key '{loc[-1]}'", loc[:-1])
        else:
            value = item.get("input")
            shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
            errors.add(f"'{_where(loc)}': {item['msg']} (got {shown})", loc)


def _model_at(loc: tuple[Any, ...]):
    """The pydantic model class that a location in the mapping document refers to."""
    from integrations.mapping import _model as m

    shapes = {(): m.Mapping, ("outputs", int): m.Output, ("outputs", int, "severity", int): m.SeverityRule,
              ("outputs", int, "correlation_hints", int): m.HintTemplate,
              ("outputs", int, "evidence_links", int): m.LinkTemplate}
    key = tuple(int if isinstance(p, int) else p for p in loc)
    return shapes.get(key)


def _compile_output(spec: Output, index: int, errors: _Collector) -> CompiledOutput | None:
    base = ("outputs", index)
    start = len(errors.errors)

    def expr(text: Any, path: tuple[Any, ...], field: str | None = None) -> CompiledExpression | None:
        return _compile_expression(text, base + path, errors, field)

    when = expr(spec.when, ("when",), "when") if spec.when is not None else None
    for_each = expr(spec.for_each, ("for_each",), "for_each") if spec.for_each is not None else None
    fields: dict[str, CompiledExpression] = {}
    for name, text in spec.fields.items():
        if not is_known_field(name):
            errors.add(f"unknown field '{name}'{_suggest(name, CORE_FIELDS)}", base + ("fields", name), key=True,
                       field=name, hint="fields are " + ", ".join(CORE_FIELDS) + " or attributes.<name>")
            continue
        compiled = expr(text, ("fields", name), name)
        if compiled is not None:
            fields[name] = compiled
    for name in ALWAYS_REQUIRED:
        if name not in spec.fields:
            errors.add(f"output '{spec.name}' never sets '{name}', which every event needs", base + ("fields",),
                       key=True, field=name)
    for i, name in enumerate(spec.required):
        covered = name in spec.fields or (name.startswith("attributes.") and "attributes" in spec.fields)
        if not is_known_field(name):
            errors.add(f"required field '{name}' is not a field{_suggest(name, list(spec.fields))}",
                       base + ("required", i), field=name)
        elif not covered:
            errors.add(f"required field '{name}' is never set by 'fields'{_suggest(name, list(spec.fields))}",
                       base + ("required", i), field=name)
    severity = []
    for i, rule in enumerate(spec.severity):
        cond = expr(rule.when, ("severity", i, "when"), "severity") if rule.when is not None else None
        severity.append((cond, rule.level))
    hints = []
    for i, hint in enumerate(spec.correlation_hints):
        value = expr(hint.value, ("correlation_hints", i, "value"), "correlation_hints")
        if value is not None:
            hints.append((hint.type, value, hint.confidence))
    links = []
    for i, link in enumerate(spec.evidence_links):
        url = expr(link.url, ("evidence_links", i, "url"), "evidence_links")
        desc = (expr(link.description, ("evidence_links", i, "description"), "evidence_links")
                if link.description is not None else None)
        meta = {}
        for key, text in link.metadata.items():
            compiled = expr(text, ("evidence_links", i, "metadata", key), "evidence_links")
            if compiled is not None:
                meta[key] = compiled
        if url is not None:
            links.append((link.type, url, desc, meta))
    if len(errors.errors) > start:
        return None
    return CompiledOutput(spec=spec, index=index, when=when, for_each=for_each, fields=fields,
                          severity=severity, hints=hints, links=links)


def compile_mapping_text(text: str, file: str | None = None) -> tuple[CompiledMapping | None, list[MappingError]]:
    """Compile YAML text; returns the mapping (None if any error) and every error found."""
    try:
        doc = load_located(text, file)
    except MappingError as err:
        return None, [err]
    errors = _Collector(doc, file)
    if not isinstance(doc.data, dict):
        errors.add("a mapping file must be a YAML mapping with plugin, source and outputs", ())
        return None, errors.errors
    try:
        spec = Mapping.model_validate(doc.data)
    except ValidationError as err:
        _pydantic_errors(err, errors)
        return None, errors.errors
    outputs = [_compile_output(out, i, errors) for i, out in enumerate(spec.outputs)]
    names = [o.name for o in spec.outputs]
    for i, name in enumerate(names):
        if names.index(name) != i:
            errors.add(f"two outputs are named '{name}'; give one a distinct 'name'", ("outputs", i))
    if errors.errors:
        return None, errors.errors
    compiled = CompiledMapping(spec=spec, outputs=[o for o in outputs if o is not None], file=file, text=text,
                               document=doc)
    return compiled, []


def validate_mapping(path_or_text: str | Path, *, file: str | None = None) -> list[MappingError]:
    """Every error of a mapping file (or YAML text), each with its place. Empty when valid."""
    text, file = _read(path_or_text, file)
    _mapping, errors = compile_mapping_text(text, file)
    return errors


def load_mapping(path_or_text: str | Path, *, file: str | None = None) -> CompiledMapping:
    """A compiled mapping, or the first MappingError (all errors are in `validate_mapping`)."""
    text, file = _read(path_or_text, file)
    mapping, errors = compile_mapping_text(text, file)
    if errors:
        first = errors[0]
        if len(errors) > 1:
            first.hint = (first.hint + "; " if first.hint else "") + f"{len(errors) - 1} more error(s): run `integrations validate`"
        raise first
    assert mapping is not None
    return mapping


def _read(path_or_text: str | Path, file: str | None) -> tuple[str, str | None]:
    if isinstance(path_or_text, Path) or ("\n" not in str(path_or_text) and str(path_or_text).endswith((".yaml", ".yml"))):
        path = Path(path_or_text)
        try:
            return path.read_text(encoding="utf-8"), file or str(path)
        except OSError as err:
            raise MappingError(f"cannot read mapping file: {err.strerror}", file=str(path)) from None
    return str(path_or_text), file


__all__ = [
    "CompiledExpression",
    "CompiledMapping",
    "CompiledOutput",
    "IntegrationsError",
    "compile_mapping_text",
    "load_mapping",
    "validate_mapping",
]
