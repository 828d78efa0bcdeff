"""Delivery figures in the DORA style, read from the event store.

The definitions (the notebook `notebooks/correlations.ipynb` and the README repeat them):

- a *deployment* is a deployment status in state `success` in a production environment (by
  default the environment named `production`; `production_environments` changes the list). A
  deployment with several success statuses counts once, at its first.
- its *lead time* runs from the earliest commit it shipped to the deployment. The commits it
  shipped are found through SHAs: the deployed SHA, the commits of the push that moved the branch
  to it, then, following each push's `before`, the pushes before it until a SHA that an earlier
  production deployment of the same repository shipped; for a pull request merged into one of
  those SHAs (`merge_commit_sha`: squash and merge commits alike), the commits pushed to its head
  branch and its head SHA. Commits an earlier deployment already shipped do not count again.
- the *change failure rate* is the share of deployments followed, within `window_minutes`, by a
  failed deployment status (`failure` or `error`, production environment) or an alarm going to
  `ALARM`, on the same service.
- *time to restore* runs from an alarm going to `ALARM` to the next `OK` of the same alarm (a
  repeated ALARM before that OK is the same incident); an ALARM with no OK yet is an open incident.

Only the store is read (read-only, closed before returning); the `correlations` table is reported
when it has rows but no figure depends on it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from integrations.errors import StoreError

FAILED_STATES = ("failure", "error")

_EVENTS_SQL = """
SELECT event_id, kind, occurred_at, source,
       coalesce(attributes->>'service',
                replace(list_filter(hint_values, lambda h: starts_with(h, 'service:'))[1], 'service:', '')) AS service,
       attributes->>'repository' AS repository,
       attributes->>'environment' AS environment,
       attributes->>'state' AS state,
       attributes->>'deployment_id' AS deployment_id,
       attributes->>'sha' AS sha,
       attributes->>'after' AS after_sha,
       attributes->>'before' AS before_sha,
       attributes->>'branch' AS branch,
       attributes->>'merged' AS merged,
       attributes->>'merge_commit_sha' AS merge_commit_sha,
       attributes->>'head_ref' AS head_ref,
       attributes->>'head_sha' AS head_sha,
       attributes->>'number' AS number,
       attributes->>'alarm_name' AS alarm_name,
       attributes->>'new_state' AS new_state,
       title
FROM events
WHERE tenant_id = ? AND kind IN ('deployment_status', 'commit', 'pull_request', 'alarm')
ORDER BY occurred_at, event_id
"""


@dataclass(frozen=True)
class DeliveryOptions:
    """What to measure: one tenant, an optional time range of deployments, the failure window."""

    tenant: str = "demo"
    window_minutes: float = 60
    since: datetime | None = None
    until: datetime | None = None
    production_environments: tuple[str, ...] = ("production",)

    @classmethod
    def of(cls, tenant: str = "demo", window_minutes: float = 60, since: Any = None, until: Any = None,
           production_environments: Any = ("production",)) -> "DeliveryOptions":
        """From notebook parameters: times as ISO text (naive is UTC) or None/'', environments as a list or 'a,b'."""
        if isinstance(production_environments, str):
            production_environments = [e for e in production_environments.split(",") if e.strip()]
        return cls(tenant, float(window_minutes), parse_moment(since), parse_moment(until),
                   tuple(e.strip().lower() for e in production_environments))


def parse_moment(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def load_events(store: str | Path, tenant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events of the kinds the figures need, correlations) of one tenant, read-only."""
    path = Path(store)
    if not path.exists():
        raise StoreError(f"no event store at {path}", hint="build one with `integrations run` (or `make run`)")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        events = con.execute(_EVENTS_SQL, [tenant]).df()
        tables = {row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "correlations" in tables:
            correlations = con.execute(
                "SELECT event_id, related_event_id, rule, confidence, delta_seconds FROM correlations "
                "WHERE tenant_id = ?", [tenant]).df()
        else:
            correlations = pd.DataFrame(columns=["event_id", "related_event_id", "rule", "confidence", "delta_seconds"])
    finally:
        con.close()
    events["occurred_at"] = pd.to_datetime(events["occurred_at"], utc=True)
    return events, correlations


@dataclass
class DeliveryFigures:
    """The figures and the tables behind them (DataFrames the notebook plots)."""

    options: DeliveryOptions
    deployments: pd.DataFrame
    failed_statuses: pd.DataFrame
    alarms: pd.DataFrame
    incidents: pd.DataFrame
    deployment_alarms: pd.DataFrame
    correlations: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def lead_times(self) -> list[float]:
        return [float(v) for v in self.deployments["lead_time_s"].dropna()]

    @property
    def change_failure_rate(self) -> float | None:
        n = len(self.deployments)
        return float(self.deployments["failed"].sum()) / n if n else None

    @property
    def restore_times(self) -> list[float]:
        done = self.incidents.dropna(subset=["restore_s"])
        return [float(v) for v in done["restore_s"]]

    def summary(self) -> dict[str, Any]:
        """The machine-readable summary (JSON-ready) the notebook writes next to itself."""
        o = self.options
        d = self.deployments
        lead = self.lead_times
        restore = self.restore_times
        return {
            "tenant": o.tenant,
            "since": o.since.isoformat() if o.since else None,
            "until": o.until.isoformat() if o.until else None,
            "window_minutes": o.window_minutes,
            "production_environments": list(o.production_environments),
            "deployments": int(len(d)),
            "deployments_by_service": {str(k): int(v) for k, v in d.groupby("service").size().items()},
            "lead_time_seconds": _stats(lead) | {
                "by_deployment": {str(r.deployment_id): (None if pd.isna(r.lead_time_s) else float(r.lead_time_s))
                                  for r in d.itertuples()}},
            "change_failure_rate": self.change_failure_rate,
            "failed_deployments": sorted(str(x) for x in d.loc[d["failed"], "deployment_id"]),
            "time_to_restore_seconds": _stats(restore),
            "open_incidents": int(self.incidents["restored_at"].isna().sum()),
            "deployments_followed_by_alarm": sorted({str(x) for x in self.deployment_alarms["deployment_id"]}),
            "correlations": int(len(self.correlations)),
        }


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"count": 0, "median": None, "mean": None, "min": None, "max": None}
    return {"count": len(values), "median": float(statistics.median(values)), "mean": float(statistics.fmean(values)),
            "min": float(min(values)), "max": float(max(values))}


def _in_range(moment: pd.Timestamp, options: DeliveryOptions) -> bool:
    if options.since is not None and moment < options.since:
        return False
    return options.until is None or moment < options.until


def _all_deployments(events: pd.DataFrame, options: DeliveryOptions) -> pd.DataFrame:
    statuses = events[events["kind"] == "deployment_status"]
    prod = statuses["environment"].fillna("").str.lower().isin(options.production_environments)
    success = statuses[prod & (statuses["state"] == "success")]
    first = success.sort_values(["occurred_at", "event_id"]).drop_duplicates("deployment_id", keep="first")
    out = first.rename(columns={"occurred_at": "deployed_at"})[
        ["deployment_id", "deployed_at", "service", "repository", "environment", "sha", "event_id"]]
    return out.sort_values(["deployed_at", "deployment_id"]).reset_index(drop=True)


def shipped_commits(deployments: pd.DataFrame, commits: pd.DataFrame, pulls: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per deployment id: the commit events it shipped (see the module docstring), in time order."""
    shipped: dict[str, pd.DataFrame] = {}
    done_heads: dict[str, set[str]] = {}
    done_commits: dict[str, set[str]] = {}
    for dep in deployments.itertuples():
        repo = dep.repository
        repo_commits = commits[commits["repository"] == repo]
        repo_pulls = pulls[pulls["repository"] == repo]
        earlier_heads = done_heads.setdefault(repo, set())
        seen_before = done_commits.setdefault(repo, set())
        found: set[str] = set()
        frontier, visited = [dep.sha], set()
        while frontier:
            head = frontier.pop()
            if not head or head in visited or head in earlier_heads:
                continue
            visited.add(head)
            pushed = repo_commits[(repo_commits["sha"] == head) | (repo_commits["after_sha"] == head)]
            found.update(pushed["sha"])
            frontier.extend(b for b in pushed.loc[pushed["after_sha"] == head, "before_sha"].dropna().unique())
            for pr in repo_pulls[repo_pulls["merge_commit_sha"] == head].itertuples():
                branch = repo_commits[(repo_commits["branch"] == pr.head_ref) | (repo_commits["sha"] == pr.head_sha)]
                found.update(branch["sha"])
        new = found - seen_before
        shipped[str(dep.deployment_id)] = repo_commits[repo_commits["sha"].isin(new)].drop_duplicates("sha") \
            .sort_values("occurred_at")
        seen_before.update(found)
        earlier_heads.add(dep.sha)
    return shipped


def delivery_figures(events: pd.DataFrame, options: DeliveryOptions,
                     correlations: pd.DataFrame | None = None) -> DeliveryFigures:
    """Deployments with lead time and failure, incidents with time to restore, alarms after deployments."""
    window = timedelta(minutes=options.window_minutes)
    commits = events[events["kind"] == "commit"]
    pulls = events[(events["kind"] == "pull_request") & (events["merged"] == "true")
                   & events["merge_commit_sha"].notna()].drop_duplicates(["repository", "number"])
    all_deps = _all_deployments(events, options)
    shipped = shipped_commits(all_deps, commits, pulls)
    all_deps["commits"] = [len(shipped[str(i)]) for i in all_deps["deployment_id"]]
    all_deps["first_commit_at"] = [shipped[str(i)]["occurred_at"].min() if len(shipped[str(i)]) else pd.NaT
                                   for i in all_deps["deployment_id"]]
    all_deps["lead_time_s"] = (all_deps["deployed_at"] - pd.to_datetime(all_deps["first_commit_at"], utc=True)) \
        .dt.total_seconds()
    deployments = all_deps[[_in_range(t, options) for t in all_deps["deployed_at"]]].reset_index(drop=True)

    statuses = events[events["kind"] == "deployment_status"]
    failed_statuses = statuses[statuses["state"].isin(FAILED_STATES)
                               & statuses["environment"].fillna("").str.lower().isin(options.production_environments)]
    alarms = events[events["kind"] == "alarm"][["event_id", "occurred_at", "service", "alarm_name", "new_state",
                                                "title"]].reset_index(drop=True)
    firing = alarms[alarms["new_state"] == "ALARM"]

    rows, failed = [], []
    for dep in deployments.itertuples():
        end = dep.deployed_at + window
        after = (firing["service"] == dep.service) & (firing["occurred_at"] > dep.deployed_at) \
            & (firing["occurred_at"] <= end)
        for alarm in firing[after].itertuples():
            rows.append({"deployment_id": dep.deployment_id, "service": dep.service, "deployed_at": dep.deployed_at,
                         "alarm_name": alarm.alarm_name, "alarm_at": alarm.occurred_at,
                         "minutes_after": (alarm.occurred_at - dep.deployed_at).total_seconds() / 60,
                         "alarm_event_id": alarm.event_id})
        bad = (failed_statuses["service"] == dep.service) & (failed_statuses["occurred_at"] > dep.deployed_at) \
            & (failed_statuses["occurred_at"] <= end)
        failed.append(bool(after.any() or bad.any()))
    deployments["failed"] = pd.Series(failed, dtype=bool)
    deployment_alarms = pd.DataFrame(rows, columns=["deployment_id", "service", "deployed_at", "alarm_name",
                                                    "alarm_at", "minutes_after", "alarm_event_id"])

    incidents = _incidents(alarms)
    incidents = incidents[[_in_range(t, options) for t in incidents["alarm_at"]]].reset_index(drop=True)
    return DeliveryFigures(options, deployments, failed_statuses.reset_index(drop=True), alarms, incidents,
                           deployment_alarms, correlations if correlations is not None else pd.DataFrame())


def _incidents(alarms: pd.DataFrame) -> pd.DataFrame:
    """One row per (alarm, next OK): from the first ALARM before that OK to the OK."""
    rows = []
    for name, group in alarms.sort_values("occurred_at").groupby("alarm_name", sort=True):
        start = None
        service = None
        for a in group.itertuples():
            if a.new_state == "ALARM" and start is None:
                start, service = a.occurred_at, a.service
            elif a.new_state == "OK" and start is not None:
                rows.append({"alarm_name": name, "service": service, "alarm_at": start, "restored_at": a.occurred_at,
                             "restore_s": (a.occurred_at - start).total_seconds()})
                start = None
        if start is not None:
            rows.append({"alarm_name": name, "service": service, "alarm_at": start, "restored_at": pd.NaT,
                         "restore_s": float("nan")})
    frame = pd.DataFrame(rows, columns=["alarm_name", "service", "alarm_at", "restored_at", "restore_s"])
    return frame.sort_values("alarm_at").reset_index(drop=True)


def delivery_from_store(store: str | Path, options: DeliveryOptions) -> DeliveryFigures:
    """Load one tenant's events read-only and compute its figures."""
    events, correlations = load_events(store, options.tenant)
    return delivery_figures(events, options, correlations)


__all__ = ["DeliveryFigures", "DeliveryOptions", "delivery_figures", "delivery_from_store", "load_events",
           "parse_moment", "shipped_commits"]
