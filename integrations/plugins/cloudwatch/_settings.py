"""What a tenant configures for CloudWatch: region, endpoint, metric queries, log groups, alarms.

    integrations:
      cloudwatch:
        settings:
          region: eu-west-1
          metric_queries:
            - {id: errors, namespace: AWS/Lambda, metric: Errors, dimensions: {FunctionName: checkout-api},
               stat: Sum, period: 300}
          log_groups:
            - /aws/lambda/checkout-api                         # every event
            - {name: /ecs/payments, filter_pattern: "?ERROR ?WARN"}
            - {name: CloudTrail/DefaultLogGroup, cloudtrail: true}
          alarm_name_prefixes: [checkout-, payments-]

A log group marked `cloudtrail: true` feeds the `cloudtrail` source (its messages are CloudTrail
records); the others feed `log_events`. Settings are checked when the plugin initializes, so a
typo fails the run of this integration at once, naming the field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from integrations.plugins._interface import PluginSettings

_HIGH_RESOLUTION_PERIODS = (1, 5, 10, 30)


class MetricQuery(BaseModel):
    """One GetMetricData query: a metric with its statistic, or a metric-math expression over others."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-zA-Z0-9_]*$", max_length=255,
                    description="the query id: a lower-case letter, then letters, digits and '_'")
    namespace: str | None = Field(default=None, description="e.g. AWS/Lambda")
    metric: str | None = Field(default=None, description="the metric name, e.g. Errors")
    dimensions: dict[str, str] = Field(default_factory=dict, description="dimension name -> value")
    stat: str = Field(default="Average", description="Average, Sum, Maximum, Minimum, SampleCount, p99, ...")
    period: int = Field(default=300, ge=1, description="seconds: 1, 5, 10, 30 or a multiple of 60")
    unit: str | None = None
    expression: str | None = Field(default=None, description="metric math over other query ids, e.g. 'm1/m2*100'")
    label: str | None = None
    return_data: bool = Field(default=True, description="false for queries only an expression uses")

    @field_validator("period")
    @classmethod
    def _period(cls, value: int) -> int:
        if value not in _HIGH_RESOLUTION_PERIODS and value % 60:
            raise ValueError("must be 1, 5, 10, 30 or a multiple of 60 seconds")
        return value

    @model_validator(mode="after")
    def _metric_or_expression(self) -> "MetricQuery":
        if self.expression is None and not (self.namespace and self.metric):
            raise ValueError(f"query '{self.id}' needs namespace and metric, or an expression")
        if self.expression is not None and (self.namespace or self.metric or self.dimensions):
            raise ValueError(f"query '{self.id}' has an expression: leave out namespace, metric and dimensions")
        return self

    def as_api_query(self) -> dict[str, Any]:
        """The MetricDataQueries entry GetMetricData takes."""
        query: dict[str, Any] = {"Id": self.id, "ReturnData": self.return_data}
        if self.expression is not None:
            query.update(Expression=self.expression, Period=self.period)
        else:
            stat: dict[str, Any] = {
                "Metric": {"Namespace": self.namespace, "MetricName": self.metric,
                           "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()]},
                "Period": self.period, "Stat": self.stat}
            if self.unit:
                stat["Unit"] = self.unit
            query["MetricStat"] = stat
        if self.label:
            query["Label"] = self.label
        return query

    def as_envelope_query(self) -> dict[str, Any]:
        """The `query` of a metric_data record (docs/envelopes.md): what was asked, flattened."""
        if self.expression is not None:
            out: dict[str, Any] = {"id": self.id, "expression": self.expression, "period": self.period}
        else:
            out = {"id": self.id, "namespace": self.namespace, "metric_name": self.metric,
                   "dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions.items()],
                   "stat": self.stat, "period": self.period}
            if self.unit:
                out["unit"] = self.unit
        if self.label:
            out["label"] = self.label
        return out


class LogGroup(BaseModel):
    """A log group to read with FilterLogEvents, and what to filter."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=512, pattern=r"^[\.\-_/#A-Za-z0-9]+$")
    filter_pattern: str = Field(default="", description="CloudWatch Logs filter pattern; empty: every event")
    log_stream_prefix: str | None = None
    cloudtrail: bool = Field(default=False, description="the messages are CloudTrail records (source cloudtrail)")

    @property
    def cursor_key(self) -> str:
        """The watermark key: one cursor per log group and filter."""
        key = f"log_group:{self.name}"
        if self.log_stream_prefix:
            key += f"|stream_prefix={self.log_stream_prefix}"
        if self.filter_pattern:
            key += f"|filter={self.filter_pattern}"
        return key


class CloudWatchSettings(PluginSettings):
    """A tenant's CloudWatch settings; see the module docstring for an example."""

    region: str = Field(default="us-east-1", pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$")
    endpoint_url: str | None = Field(default=None, description="for emulators (moto, LocalStack) and VPC endpoints")
    metric_queries: list[MetricQuery] = Field(default_factory=list)
    log_groups: list[LogGroup] = Field(default_factory=list)
    alarm_name_prefixes: list[str] = Field(default_factory=list, description="empty: every alarm of the region")
    lookback_minutes: int = Field(default=60, ge=1, le=14 * 24 * 60,
                                  description="how far back the first run reads, when no watermark exists yet")
    metric_settle_seconds: int = Field(default=60, ge=0,
                                       description="datapoints of periods that ended less than this ago wait "
                                                   "for the next run (CloudWatch still fills them)")
    log_page_size: int = Field(default=1000, ge=1, le=10_000)
    max_pages_per_run: int = Field(default=200, ge=1, description="per log group, metric request or alarm")
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)

    @field_validator("log_groups", mode="before")
    @classmethod
    def _names_as_groups(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _unique(self) -> "CloudWatchSettings":
        ids = [q.id for q in self.metric_queries]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"metric query ids must be unique: {', '.join(duplicates)}")
        keys = [g.cursor_key for g in self.log_groups]
        if len(keys) != len(set(keys)):
            raise ValueError("a log group is listed twice with the same filter")
        return self

    def log_groups_for(self, source: str) -> list[LogGroup]:
        """The log groups that feed `source` (cloudtrail or log_events)."""
        return [g for g in self.log_groups if g.cloudtrail == (source == "cloudtrail")]
