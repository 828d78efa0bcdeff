"""The plugin registry: plugins found through the `integrations.plugins` entry-point group.

Built-in plugins register the same way, in our own pyproject.toml, so a plugin from another
distribution needs no change to core code. A plugin that fails to import, does not implement the
interface, or has an unmet or conflicting dependency is refused with a message naming it and the
problem; the others still load (pluggy's `_verify_hook`, datasette's `get_plugins`).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, ConfigDict

from integrations.errors import PluginError
from integrations.plugins._interface import REQUIRED_ATTRIBUTES, IntegrationPlugin, PluginSettings

ENTRY_POINT_GROUP = "integrations.plugins"
log = logging.getLogger(__name__)


class PluginRegistryEntry(BaseModel):
    """The seed's PluginRegistryEntry."""

    model_config = ConfigDict(frozen=True)
    name: str
    version: str
    description: str
    author: str
    supported_events: list[str]
    sources: list[str]
    required_credentials: list[str]
    configuration_schema: dict[str, Any]
    dependencies: list[str]
    status: Literal["active", "inactive", "deprecated"]
    distribution: str | None = None
    entry_point: str | None = None


@dataclass
class LoadProblem:
    """A plugin that was refused, and why."""

    entry_point: str
    distribution: str | None
    message: str


def check_plugin_class(obj: Any, where: str) -> type[IntegrationPlugin]:
    """The class if it implements the interface, else a PluginError naming what is missing."""
    if not inspect.isclass(obj) or not issubclass(obj, IntegrationPlugin):
        raise PluginError(f"{where}: {obj!r} is not a subclass of IntegrationPlugin",
                          hint="plugins subclass integrations.plugins.IntegrationPlugin")
    name = getattr(obj, "name", None) or obj.__name__
    missing_attrs = [a for a in REQUIRED_ATTRIBUTES if not hasattr(obj, a)]
    if missing_attrs:
        raise PluginError(f"plugin '{name}' ({where}) lacks the attribute(s) {', '.join(missing_attrs)}")
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        raise PluginError(f"plugin '{name}' ({where}) does not implement: {', '.join(f'{m}()' for m in missing)}",
                          hint="every plugin implements initialize, authenticate, fetch_data, health_check, shutdown")
    for method in ("initialize", "authenticate", "transform_data", "health_check", "shutdown"):
        if not inspect.iscoroutinefunction(getattr(obj, method)):
            raise PluginError(f"plugin '{name}' ({where}): {method}() must be 'async def'")
    fetch = getattr(obj, "fetch_data")
    if not (inspect.isasyncgenfunction(fetch) or inspect.iscoroutinefunction(fetch) or callable(fetch)):
        raise PluginError(f"plugin '{name}' ({where}): fetch_data() must be an async generator")
    if not inspect.isasyncgenfunction(fetch):
        raise PluginError(f"plugin '{name}' ({where}): fetch_data() must be an async generator (async def with yield)")
    try:
        Version(str(obj.version))
    except InvalidVersion:
        raise PluginError(f"plugin '{name}' ({where}): version {obj.version!r} is not a PEP 440 version") from None
    settings = getattr(obj, "settings_model", PluginSettings)
    if not (inspect.isclass(settings) and issubclass(settings, BaseModel)):
        raise PluginError(f"plugin '{name}' ({where}): settings_model must be a pydantic model")
    return obj


def entry_for(cls: type[IntegrationPlugin], distribution: str | None = None, entry_point: str | None = None) -> PluginRegistryEntry:
    return PluginRegistryEntry(
        name=cls.name, version=str(cls.version), description=cls.description or (inspect.getdoc(cls) or "").split("\n")[0],
        author=cls.author, supported_events=list(cls.supported_events), sources=list(cls.sources),
        required_credentials=list(cls.required_credentials),
        configuration_schema=cls.settings_model.model_json_schema(), dependencies=list(cls.dependencies),
        status=cls.status, distribution=distribution, entry_point=entry_point)


@dataclass
class PluginRegistry:
    """Plugins by (name, version), with the entries refused and why."""

    plugins: dict[tuple[str, str], type[IntegrationPlugin]] = field(default_factory=dict)
    entries: dict[tuple[str, str], PluginRegistryEntry] = field(default_factory=dict)
    problems: list[LoadProblem] = field(default_factory=list)

    def register(self, cls: Any, *, distribution: str | None = None, entry_point: str | None = None) -> PluginRegistryEntry:
        """Check and add one plugin class; a PluginError says why it was refused."""
        where = entry_point or getattr(cls, "__qualname__", repr(cls))
        cls = check_plugin_class(cls, where)
        key = (cls.name, str(Version(str(cls.version))))
        if key in self.plugins and self.plugins[key] is not cls:
            other = self.entries[key].distribution or "another distribution"
            raise PluginError(f"plugin '{cls.name}' {cls.version} from {distribution or where} conflicts with the "
                              f"same name and version from {other}", hint="give one of them another version")
        entry = entry_for(cls, distribution, entry_point)
        self.plugins[key] = cls
        self.entries[key] = entry
        return entry

    def unregister(self, name: str, version: str | None = None) -> None:
        for key in [k for k in self.plugins if k[0] == name and (version is None or k[1] == version)]:
            del self.plugins[key]
            del self.entries[key]

    def check_dependencies(self) -> None:
        """Refuse (and drop) plugins whose dependencies are unmet, repeating until stable."""
        changed = True
        while changed:
            changed = False
            for key, cls in list(self.plugins.items()):
                problem = self._unmet(cls)
                if problem:
                    entry = self.entries[key]
                    self.problems.append(LoadProblem(entry.entry_point or cls.__qualname__, entry.distribution,
                                                     f"plugin '{cls.name}' {cls.version}: {problem}"))
                    log.warning("plugin %s %s refused: %s", cls.name, cls.version, problem)
                    del self.plugins[key]
                    del self.entries[key]
                    changed = True

    def _unmet(self, cls: type[IntegrationPlugin]) -> str | None:
        for text in cls.dependencies:
            try:
                req = Requirement(text)
            except InvalidRequirement as err:
                return f"dependency {text!r} is not a valid requirement ({err})"
            plugin_versions = [Version(v) for (n, v) in self.plugins if n == req.name]
            if plugin_versions:
                if not any(req.specifier.contains(v, prereleases=True) for v in plugin_versions):
                    have = ", ".join(str(v) for v in sorted(plugin_versions))
                    return f"needs plugin {text} but the registry has {req.name} {have}"
                continue
            try:
                installed = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                return f"needs {text}, which is neither a registered plugin nor an installed distribution"
            if not req.specifier.contains(installed, prereleases=True):
                return f"needs {text} but {req.name} {installed} is installed"
        return None

    def versions(self, name: str) -> list[str]:
        return sorted((v for (n, v) in self.plugins if n == name), key=Version)

    def resolve(self, name: str, specifier: str = "") -> type[IntegrationPlugin]:
        """The highest active version of `name` that satisfies the specifier."""
        try:
            spec = SpecifierSet(specifier or "")
        except InvalidSpecifier:
            raise PluginError(f"'{specifier}' is not a version specifier", field="version",
                              hint="e.g. '>=0.1,<1'") from None
        candidates = [Version(v) for (n, v) in self.plugins if n == name and self.entries[(n, v)].status != "inactive"]
        if not candidates:
            known = sorted({n for n, _v in self.plugins})
            raise PluginError(f"no plugin named '{name}' is registered", hint="registered: " + (", ".join(known) or "none"))
        matching = [v for v in candidates if spec.contains(v, prereleases=True)]
        if not matching:
            raise PluginError(f"no version of plugin '{name}' satisfies '{specifier}'",
                              hint="available: " + ", ".join(str(v) for v in sorted(candidates)))
        best = max(matching)
        return self.plugins[(name, str(best))]

    def list_entries(self) -> list[PluginRegistryEntry]:
        return [self.entries[k] for k in sorted(self.entries, key=lambda k: (k[0], Version(k[1])))]


def load_registry(group: str = ENTRY_POINT_GROUP) -> PluginRegistry:
    """Every plugin installed in this environment; the refused ones are in `problems`."""
    registry = PluginRegistry()
    for ep in metadata.entry_points(group=group):
        dist = ep.dist.name if ep.dist is not None else None
        label = f"{ep.name} = {ep.value}"
        try:
            cls = ep.load()
        except Exception as err:  # a plugin that fails to import must not stop the others
            registry.problems.append(LoadProblem(label, dist, f"failed to import: {type(err).__name__}: {err}"))
            log.warning("plugin entry point %s failed to import: %s", label, err)
            continue
        try:
            registry.register(cls, distribution=dist, entry_point=label)
        except PluginError as err:
            registry.problems.append(LoadProblem(label, dist, str(err)))
            log.warning("plugin entry point %s refused: %s", label, err)
    registry.check_dependencies()
    return registry
