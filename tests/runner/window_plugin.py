"""A polling plugin for the partition tests: records spread over days, fetched by time window or by cursor.

Importable by name (`tests.runner.window_plugin`) so pool processes and Dask workers can unpickle it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from integrations.plugins import AuthResult, HealthStatus, IntegrationPlugin, Page

START = datetime(2024, 5, 1, tzinfo=timezone.utc)
RECORDS = [{"id": i, "at": (START + timedelta(hours=7 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")} for i in range(20)]

MAPPING = """plugin: window
source: items
outputs:
  - kind: item
    event_type: system
    fields:
      external_id: to_string(id)
      occurred_at: at
      title: "format('item {}', id)"
"""


class WindowPlugin(IntegrationPlugin):
    """Pages of five records; honours `since`/`until`, and the `last` cursor when it has one."""

    name = "window"
    version = "1.0.0"
    supported_events = ("item",)
    sources = ("items",)
    fail_on_or_after: datetime | None = None  # a window starting here raises (a broken API)

    async def initialize(self, config):
        return None

    async def authenticate(self, credentials):
        return AuthResult(ok=True)

    async def fetch_data(self, request):
        if self.fail_on_or_after is not None and request.since is not None and request.since >= self.fail_on_or_after:
            raise ConnectionError("the API fell over")
        last = request.watermarks.get("last")
        chosen = [r for r in RECORDS
                  if (request.since is None or r["at"] >= request.since.strftime("%Y-%m-%dT%H:%M:%SZ"))
                  and (request.until is None or r["at"] < request.until.strftime("%Y-%m-%dT%H:%M:%SZ"))
                  and (last is None or r["at"] > last)]
        for i in range(0, len(chosen), 5):
            page = chosen[i:i + 5]
            yield Page(source=request.source, records=page, watermarks={"last": page[-1]["at"]})

    async def health_check(self):
        return HealthStatus(healthy=True)

    async def shutdown(self):
        return None


class BrokenAfterMay3(WindowPlugin):
    fail_on_or_after = START + timedelta(days=2)
