"""The CloudWatch plugin: metrics, logs (with CloudTrail records) and alarms."""

from integrations.plugins.cloudwatch._plugin import CloudWatchPlugin
from integrations.plugins.cloudwatch._settings import CloudWatchSettings, LogGroup, MetricQuery

__all__ = ["CloudWatchPlugin", "CloudWatchSettings", "LogGroup", "MetricQuery"]
