"""Reconciling webhook deliveries: ask GitHub to redeliver what the receiver missed.

GitHub does not retry a failed webhook delivery by itself. For a GitHub App, the deliveries of
the app's webhook are listed at `GET /app/hook/deliveries` (newest first, paginated with a
`cursor` in the `Link` header, authenticated with the app's JWT), and a delivery is sent again
with `POST /app/hook/deliveries/{id}/attempts` (202 Accepted).

`redeliver_failed()` walks the list back to the start of the window, groups attempts by `guid`
(a redelivery keeps the guid of the original), and asks once for a new attempt of every guid
whose attempts all failed (`status` other than "OK", or a `status_code` of 0 or >= 400). Only the
deliveries of the tenant's own installation are touched (the app may be installed by other
tenants too). The redelivered payloads arrive at the receiver like any delivery and are drained
by the next run; polling fills any gap meanwhile, so the store converges on what happened even
when the receiver was down. GitHub only redelivers deliveries of the last 3 days: older failures
are reported as errors, not retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.health import RequestFailedError
from integrations.plugins.github._client import AuthHeaders, GitHubClient
from integrations.plugins.github._polling import parse_time


@dataclass
class ReconcileReport:
    """What one reconciliation saw and did (ids only: no payloads, no secrets)."""

    since: str
    listed: int = 0                                   # deliveries read in the window
    failed_guids: int = 0                             # deliveries whose every attempt failed
    redelivered: list[int] = field(default_factory=list)   # delivery ids asked for again
    errors: list[str] = field(default_factory=list)   # redeliveries GitHub refused

    def as_dict(self) -> dict[str, Any]:
        return {"since": self.since, "listed": self.listed, "failed_guids": self.failed_guids,
                "redelivered": list(self.redelivered), "errors": list(self.errors)}


def delivery_failed(delivery: dict[str, Any]) -> bool:
    """A delivery that did not reach the receiver, or that the receiver refused."""
    code = delivery.get("status_code")
    status = str(delivery.get("status") or "")
    return status.upper() != "OK" or not isinstance(code, int) or code == 0 or code >= 400


async def redeliver_failed(client: GitHubClient, *, app_auth: AuthHeaders, since: datetime,
                           installation_id: int | None = None, per_page: int = 100) -> ReconcileReport:
    """List the app's deliveries since `since` and redeliver the failed ones (see the module docstring)."""
    report = ReconcileReport(since=since.isoformat())
    attempts: dict[str, list[dict[str, Any]]] = {}
    url: str | None = "app/hook/deliveries"
    query: dict[str, Any] | None = {"per_page": per_page}
    while url is not None:
        page = await client.get_page(url, query, auth=app_auth)
        assert page is not None
        reached_start = False
        for delivery in page.items if isinstance(page.items, list) else []:
            delivered = parse_time(delivery.get("delivered_at"))
            if delivered is not None and delivered < since:
                reached_start = True
                continue
            if installation_id is not None and delivery.get("installation_id") not in (None, installation_id):
                continue
            report.listed += 1
            attempts.setdefault(str(delivery.get("guid") or delivery.get("id")), []).append(delivery)
        url, query = (None, None) if reached_start else (page.next_url, None)
    for guid, tries in attempts.items():
        if not all(delivery_failed(d) for d in tries):
            continue
        report.failed_guids += 1
        latest = max(tries, key=lambda d: (str(d.get("delivered_at") or ""), int(d.get("id") or 0)))
        delivery_id = latest.get("id")
        try:
            await client.request("POST", f"app/hook/deliveries/{delivery_id}/attempts", auth=app_auth)
        except RequestFailedError as err:  # 422 for deliveries too old to redeliver, 404 ...
            report.errors.append(f"delivery {delivery_id} ({guid}): {err.cause_message}")
            continue
        report.redelivered.append(int(delivery_id))
    return report
