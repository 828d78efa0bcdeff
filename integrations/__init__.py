"""Integrations workbench: turn data from external services into canonical events.

The public API is small on purpose; everything else lives in the sub-packages.
"""

from integrations.errors import IntegrationsError, MappingError, RecordError
from integrations.events import CanonicalEvent
from integrations.mapping import MappingEngine, MapResult, PythonEngine, get_engine, load_mapping, validate_mapping
from integrations.store import EventStore

__all__ = [
    "CanonicalEvent",
    "EventStore",
    "IntegrationsError",
    "MapResult",
    "MappingEngine",
    "MappingError",
    "PythonEngine",
    "RecordError",
    "get_engine",
    "load_mapping",
    "validate_mapping",
]
