"""The tenant's CloudWatch settings, the botocore configuration they give, and what the plugin refuses."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from integrations.credentials import parse_credential
from integrations.errors import PluginError
from integrations.plugins import DataRequest, PluginConfiguration, PluginCredentials, PluginInstance
from integrations.plugins.cloudwatch import CloudWatchPlugin, CloudWatchSettings, MetricQuery
from integrations.plugins.cloudwatch._api import client_config


def test_log_groups_may_be_names_and_the_cloudtrail_ones_feed_the_cloudtrail_source():
    conf = CloudWatchSettings(log_groups=["/aws/lambda/app", {"name": "CloudTrail/Main", "cloudtrail": True},
                                          {"name": "/aws/lambda/app", "filter_pattern": "ERROR"}])
    assert [g.name for g in conf.log_groups_for("log_events")] == ["/aws/lambda/app", "/aws/lambda/app"]
    assert [g.name for g in conf.log_groups_for("cloudtrail")] == ["CloudTrail/Main"]
    assert [g.cursor_key for g in conf.log_groups] == ["log_group:/aws/lambda/app", "log_group:CloudTrail/Main",
                                                       "log_group:/aws/lambda/app|filter=ERROR"]


def test_a_metric_query_becomes_the_api_query_and_the_envelope_query():
    query = MetricQuery(id="errors", namespace="AWS/Lambda", metric="Errors", dimensions={"FunctionName": "app"},
                        stat="Sum", period=300, unit="Count")
    assert query.as_api_query() == {
        "Id": "errors", "ReturnData": True,
        "MetricStat": {"Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors",
                                  "Dimensions": [{"Name": "FunctionName", "Value": "app"}]},
                       "Period": 300, "Stat": "Sum", "Unit": "Count"}}
    assert query.as_envelope_query() == {"id": "errors", "namespace": "AWS/Lambda", "metric_name": "Errors",
                                         "dimensions": [{"Name": "FunctionName", "Value": "app"}], "stat": "Sum",
                                         "period": 300, "unit": "Count"}
    math = MetricQuery(id="rate", expression="errors/calls*100", label="error rate", period=300)
    assert math.as_api_query() == {"Id": "rate", "ReturnData": True, "Expression": "errors/calls*100",
                                   "Period": 300, "Label": "error rate"}


@pytest.mark.parametrize("bad, message", [
    ({"metric_queries": [{"id": "m1", "namespace": "AWS/EC2"}]}, "needs namespace and metric, or an expression"),
    ({"metric_queries": [{"id": "m1", "expression": "m2*2", "namespace": "AWS/EC2"}]}, "leave out namespace"),
    ({"metric_queries": [{"id": "m1", "namespace": "A", "metric": "B", "period": 45}]}, "multiple of 60"),
    ({"metric_queries": [{"id": "M1", "namespace": "A", "metric": "B"}]}, "should match pattern"),
    ({"metric_queries": [{"id": "m1", "namespace": "A", "metric": "B"}] * 2}, "ids must be unique: m1"),
    ({"log_groups": ["/a", "/a"]}, "listed twice"),
    ({"log_groups": ["bad group!"]}, "should match pattern"),
    ({"region": "Europe"}, "should match pattern"),
    ({"regoin": "eu-west-1"}, "Extra inputs are not permitted"),
])
def test_settings_that_cannot_work_are_refused(bad, message):
    with pytest.raises(ValidationError, match=message):
        CloudWatchSettings(**bad)


def test_botocore_retries_are_off_so_the_health_policy_is_the_only_one():
    config = client_config(CloudWatchSettings(region="eu-west-1", connect_timeout=2, read_timeout=9))
    assert config.retries == {"total_max_attempts": 1, "mode": "standard"}
    assert (config.region_name, config.connect_timeout, config.read_timeout) == ("eu-west-1", 2, 9)


def run(coro):
    return asyncio.run(coro)


def config(settings: dict) -> PluginConfiguration:
    return PluginConfiguration(tenant_id="acme", plugin_name="cloudwatch", settings=settings)


def test_bad_settings_fail_the_integration_at_initialize_naming_the_field():
    instance = PluginInstance("acme", CloudWatchPlugin())
    with pytest.raises(PluginError, match=r"settings.metric_queries.0.period") as caught:
        run(instance.initialize(config({"metric_queries": [{"id": "m", "namespace": "A", "metric": "B",
                                                            "period": 7}]})))
    assert caught.value.field == "settings" and instance.state.value == "failed"


def test_without_an_aws_credential_the_plugin_asks_for_one():
    plugin = CloudWatchPlugin()
    instance = PluginInstance("acme", plugin)
    run(instance.initialize(config({})))
    webhook = parse_credential("webhook_secret", {"secret": "s" * 32})
    result = run(instance.authenticate(PluginCredentials("acme", {"hook": webhook})))
    assert not result.ok and result.needs_credentials and "aws_access_keys or aws_assume_role" in result.message
    assert instance.state.value == "needs_credentials"


def test_pushed_and_unknown_sources_are_not_polled():
    plugin = CloudWatchPlugin()
    run(PluginInstance("acme", plugin).initialize(config({})))

    async def first(source: str):
        async for page in plugin.fetch_data(DataRequest(tenant_id="acme", source=source)):
            return page

    with pytest.raises(PluginError, match="pushed by AWS") as caught:
        run(first("alarm_state_change"))
    assert "poll alarm_history" in caught.value.hint
    with pytest.raises(PluginError, match="no source 'metrics'"):
        run(first("metrics"))
    with pytest.raises(PluginError, match="not authenticated"):
        run(first("metric_data"))
