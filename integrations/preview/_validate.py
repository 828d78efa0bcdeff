"""Validation and saving of mapping text: errors at `line:col`, and saves that are checked and audited."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

from integrations.errors import MappingError
from integrations.mapping import CompiledMapping, compile_mapping_text
from integrations.store import EventStore, default_store_path


@dataclass(frozen=True)
class ValidationIssue:
    """One error of a mapping text, where it is (1-based line and column) and what to do."""

    line: int | None
    col: int | None
    message: str
    field: str | None = None
    expression: str | None = None
    hint: str | None = None

    @property
    def place(self) -> str:
        if self.line is None:
            return ""
        return f"{self.line}:{self.col}" if self.col is not None else f"{self.line}"

    def __str__(self) -> str:
        where = f"line {self.place}: " if self.place else ""
        field = f"field '{self.field}': " if self.field else ""
        hint = f" (hint: {self.hint})" if self.hint else ""
        return f"{where}{field}{self.message}{hint}"

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "col": self.col, "message": self.message, "field": self.field,
                "expression": self.expression, "hint": self.hint}


def _issue(err: MappingError) -> ValidationIssue:
    return ValidationIssue(err.line, err.col, err.message, err.field, err.expression, err.hint)


def compile_text(yaml_text: str, file: str | None = None) -> tuple[CompiledMapping | None, list[ValidationIssue]]:
    """The compiled mapping (None when invalid) and every issue."""
    mapping, errors = compile_mapping_text(yaml_text, file)
    return mapping, [_issue(e) for e in errors]


def validate(yaml_text: str, file: str | None = None) -> list[ValidationIssue]:
    """Every error of a mapping text, each at its line and column; empty when it is valid."""
    return compile_text(yaml_text, file)[1]


@dataclass(frozen=True)
class SaveResult:
    """What a save did: the file, the diff that was audited, and whether anything changed."""

    path: Path
    diff: str
    changed: bool
    actor: str
    tenant: str


def text_diff(before: str, after: str, name: str = "mapping") -> str:
    """A unified diff of two mapping texts (what the audit keeps, and what the workbench shows)."""
    return "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), f"{name} (saved)",
                                          f"{name} (edited)", lineterm=""))


def save(path: str | Path, yaml_text: str, *, tenant: str, actor: str | None = None,
         store: EventStore | None = None, tenants_root: Path | None = None) -> SaveResult:
    """Write a mapping file only when it validates and the actor may (`mappings.write`), then audit it.

    The permission is checked before anything is written; the audit record (`mapping.save`, with
    the diff) is written in the saver's tenant. If auditing fails, the old file is put back.
    """
    from integrations.tenants import TenantAdmin, current_actor, require

    path = Path(path)
    mapping, issues = compile_text(yaml_text, str(path))
    if issues:
        first = issues[0]
        more = f"; {len(issues) - 1} more error(s)" if len(issues) > 1 else ""
        raise MappingError(f"not saved: {first.message}{more}", file=str(path), line=first.line, col=first.col,
                           field=first.field, hint=first.hint)
    assert mapping is not None
    if path.parent.name != mapping.plugin or path.stem != mapping.source:
        raise MappingError(f"not saved: the mapping is for {mapping.plugin}/{mapping.source} but the file is "
                           f"{path.parent.name}/{path.stem}", file=str(path),
                           hint=f"save it as mappings/{mapping.plugin}/{mapping.source}.yaml, or change plugin/source")
    actor = current_actor(actor)
    admin = TenantAdmin(store or EventStore(default_store_path()), tenants_root)
    require(admin.load(tenant), actor, "mappings.write")
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    diff = text_diff(before, yaml_text, str(path))
    if before == yaml_text:
        return SaveResult(path, "", False, actor, tenant)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(yaml_text, encoding="utf-8")
    tmp.replace(path)
    try:
        admin.record_mapping_save(tenant, actor, str(path), diff)
    except BaseException:
        if before:
            path.write_text(before, encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
        raise
    return SaveResult(path, diff, True, actor, tenant)


__all__ = ["SaveResult", "ValidationIssue", "compile_text", "save", "text_diff", "validate"]
