"""The GitHub plugin: commits, pull requests, deployments, releases and workflow runs."""

from integrations.plugins.github._client import GitHubClient, GitHubPage, RateLimitState
from integrations.plugins.github._plugin import GitHubPlugin, GitHubSettings, RepositorySettings, web_root
from integrations.plugins.github._polling import POLLED_SOURCES, Poller
from integrations.plugins.github._reconcile import ReconcileReport, delivery_failed, redeliver_failed

__all__ = [
    "POLLED_SOURCES",
    "GitHubClient",
    "GitHubPage",
    "GitHubPlugin",
    "GitHubSettings",
    "Poller",
    "RateLimitState",
    "ReconcileReport",
    "RepositorySettings",
    "delivery_failed",
    "redeliver_failed",
    "web_root",
]
