"""Declarative JMESPath mappings: the file model, loading with positions, functions and engines."""

from integrations.mapping._compile import (
    CompiledExpression,
    CompiledMapping,
    CompiledOutput,
    compile_mapping_text,
    load_mapping,
    validate_mapping,
)
from integrations.mapping._engine import MappingEngine, MapResult, PythonEngine, Rejection, map_record, output_scopes
from integrations.mapping._model import Mapping, Output, mapping_json_schema
from integrations.mapping._values import is_truthy, parse_timestamp

__all__ = [
    "CompiledExpression",
    "CompiledMapping",
    "CompiledOutput",
    "MapResult",
    "Mapping",
    "MappingEngine",
    "Output",
    "PythonEngine",
    "Rejection",
    "compile_mapping_text",
    "is_truthy",
    "load_mapping",
    "map_record",
    "mapping_json_schema",
    "output_scopes",
    "parse_timestamp",
    "validate_mapping",
]

from integrations.mapping._unmapped import read_paths, unmapped_fields  # noqa: E402

ENGINES: dict[str, type] = {"python": PythonEngine}


def get_engine(name: str = "auto") -> MappingEngine:
    """An engine by name; `auto` is the fastest one available (the compiled SQL engine when present)."""
    from integrations.errors import UsageError

    if name == "auto":
        name = "sql" if "sql" in ENGINES else "python"
    if name not in ENGINES:
        raise UsageError(f"unknown engine '{name}'", hint="engines: auto, " + ", ".join(sorted(ENGINES)))
    return ENGINES[name]()


__all__ += ["ENGINES", "get_engine", "read_paths", "unmapped_fields"]
ENGINES["sql"] = __import__("integrations.mapping._sql", fromlist=["SqlEngine"]).SqlEngine  # the compiled engine
