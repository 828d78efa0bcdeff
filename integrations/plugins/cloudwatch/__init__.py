"""The CloudWatch plugin: metrics, logs (with CloudTrail records) and alarms."""

from integrations.plugins.cloudwatch._plugin import CloudWatchPlugin, CloudWatchSettings

__all__ = ["CloudWatchPlugin", "CloudWatchSettings"]
