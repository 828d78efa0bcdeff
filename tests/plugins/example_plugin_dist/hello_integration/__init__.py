"""An example plugin from another distribution: it greets, page by page, with a cursor."""

from __future__ import annotations

from pydantic import Field

from integrations.plugins import (
    AuthResult,
    HealthStatus,
    IntegrationPlugin,
    Page,
    PluginSettings,
)


class HelloSettings(PluginSettings):
    names: list[str] = Field(default_factory=lambda: ["ada", "grace"])
    page_size: int = 1


class HelloPlugin(IntegrationPlugin):
    """Says hello to each configured name."""

    name = "hello"
    version = "1.2.0"
    author = "Example Author"
    supported_events = ("greeting",)
    sources = ("greetings",)
    settings_model = HelloSettings

    async def initialize(self, config):
        self.names = list(self.settings.names)

    async def authenticate(self, credentials):
        return AuthResult(ok=True)

    async def fetch_data(self, request):
        start = int(request.watermarks.get("position", "0"))
        size = self.settings.page_size
        for offset in range(start, len(self.names), size):
            chunk = self.names[offset:offset + size]
            records = [{"id": offset + i, "name": n, "at": f"2024-05-01T12:00:0{(offset + i) % 10}Z"}
                       for i, n in enumerate(chunk)]
            yield Page(source=request.source, records=records, watermarks={"position": str(offset + len(chunk))})

    async def health_check(self):
        return HealthStatus(healthy=True)

    async def shutdown(self):
        return None


class HelloLegacyPlugin(HelloPlugin):
    """An older version of the same plugin, registered by the same distribution."""

    version = "0.9.0"


class BrokenPlugin(IntegrationPlugin):
    """Lacks fetch_data and health_check: the registry must refuse it and load the others."""

    name = "broken"
    version = "1.0.0"
    supported_events = ("nothing",)

    async def initialize(self, config):
        return None

    async def authenticate(self, credentials):
        return AuthResult(ok=True)

    async def shutdown(self):
        return None
