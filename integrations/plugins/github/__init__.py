"""The GitHub plugin: commits, pull requests, deployments, releases and workflow runs."""

from integrations.plugins.github._plugin import GitHubPlugin, GitHubSettings

__all__ = ["GitHubPlugin", "GitHubSettings"]
