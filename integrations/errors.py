"""The one exception hierarchy of the project.

    IntegrationsError                 (every error a user may see)
    ├── MappingError                  (a mapping file or one of its expressions is wrong)
    ├── RecordError                   (one record could not be mapped; the batch goes on)
    ├── ConfigError                   (tenant, runner or CLI configuration is wrong)
    ├── StoreError                    (the event store could not be opened or written)
    ├── PluginError                   (a plugin could not be loaded, or failed at run time)
    └── CredentialError               (a credential is missing, malformed or refused)

Every error carries the place it is about (`file`, `line`, `col`, `field`, `expression`,
`record_index`) so that the message a user reads points at it. Outer layers add what they know
on the way out with `error_context()`, the way jmespath's parser adds the expression to a lexer
error and httpx attaches the request. Errors stay picklable so they can cross process pools.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_PLACE = ("file", "line", "col", "field", "expression", "record_index")


class IntegrationsError(Exception):
    """Base of every error the project raises on purpose."""

    exit_code = 1
    hint: str | None = None

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        col: int | None = None,
        field: str | None = None,
        expression: str | None = None,
        record_index: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.col = col
        self.field = field
        self.expression = expression
        self.record_index = record_index
        if hint is not None:
            self.hint = hint

    def attrs(self) -> dict[str, Any]:
        """The public fields, for logs, JSON output and dead letters."""
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        for name in _PLACE:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.hint:
            out["hint"] = self.hint
        return out

    @property
    def location(self) -> str:
        """`file:line:col` as far as it is known (empty when nothing is)."""
        parts = [p for p in (self.file, self.line, self.col) if p is not None]
        return ":".join(str(p) for p in parts)

    def __str__(self) -> str:
        prefix = f"{self.location}: " if self.location else ""
        where = []
        if self.field is not None:
            where.append(f"field '{self.field}'")
        if self.record_index is not None:
            where.append(f"record {self.record_index}")
        middle = f"{' '.join(where)}: " if where else ""
        return f"{prefix}{middle}{self.message}"

    def render(self) -> str:
        """A multi-line rendering with a caret under the expression column."""
        text = str(self)
        if self.expression is not None:
            text += f"\n    {self.expression}"
            if self.col is not None and self._expression_col is not None:
                text += "\n    " + " " * self._expression_col + "^"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    # Column of the fault inside the expression itself (set by the mapping compiler).
    _expression_col: int | None = None

    def __reduce__(self):  # keep every field across pickling (process pools, Dask)
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[IntegrationsError], message: str, state: dict[str, Any]) -> IntegrationsError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.message = message
    for key, value in state.items():
        setattr(err, key, value)
    return err


class MappingError(IntegrationsError):
    """A mapping file or one of its expressions is wrong; found at load or validate time."""


class RecordError(IntegrationsError):
    """One record could not be mapped; it is rejected and the batch goes on."""

    output: str | None = None  # the mapping output whose event failed


class ConfigError(IntegrationsError):
    """Tenant, runner or command-line configuration is wrong."""


class StoreError(IntegrationsError):
    """The event store could not be opened, migrated or written."""


class PluginError(IntegrationsError):
    """A plugin could not be loaded, does not implement the interface, or failed at run time."""


class CredentialError(IntegrationsError):
    """A credential is missing, malformed, undecryptable or refused by the service."""


class UsageError(IntegrationsError):
    """The command line was used wrongly."""

    exit_code = 2


@contextlib.contextmanager
def error_context(**place: Any) -> Iterator[None]:
    """Fill in the place of any IntegrationsError that passes through, without overwriting."""
    try:
        yield
    except IntegrationsError as err:
        for key, value in place.items():
            if value is not None and getattr(err, key, None) is None:
                setattr(err, key, value)
        raise
