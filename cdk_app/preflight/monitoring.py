"""CloudWatch alarms and dashboards."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator

from cdk_app.preflight.engine import (
    UNKNOWN,
    Resource,
    Template,
    Violation,
    as_list,
    as_mapping,
    mappings,
    number,
    rule,
    shape,
)

ALARM = "AWS::CloudWatch::Alarm"
_PUT_ALARM = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html"


def _periods(resource: Resource) -> list[float]:
    found = [number(resource.get("Period"))]
    for query in resource.mappings("Metrics"):
        found += [number(query.get("Period")), number(as_mapping(query.get("MetricStat")).get("Period"))]
    return [p for p in found if p is not None]


@rule("CLOUDWATCH-ALARM-PERIOD", ALARM, message='"The parameter Period must be 10, 20, 30 or a multiple of 60"',
      source="https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-cloudwatch-alarm.html"
             "#cfn-cloudwatch-alarm-period; https://github.com/aws-cloudformation/cfn-lint/issues/3553")
def alarm_period(resource: Resource, template: Template) -> Iterator[Violation]:
    """Alarm periods are 10, 20, 30 seconds or a multiple of 60."""
    for period in _periods(resource):
        if period not in (10, 20, 30) and (period <= 0 or period % 60):
            yield Violation(f"Period={period:g}", "use 10, 20, 30 or a multiple of 60 seconds")


@rule("CLOUDWATCH-ALARM-WINDOW", ALARM,
      message="ValidationError: EvaluationPeriods x Period is at most one day (seven days for periods of an hour or "
              "more), and DatapointsToAlarm at most EvaluationPeriods",
      source=f"{_PUT_ALARM}#ACW-PutMetricAlarm-request-EvaluationPeriods")
def alarm_window(resource: Resource, template: Template) -> Iterator[Violation]:
    """An alarm evaluates at most a day of data (a week for hourly periods); M of N datapoints with M <= N."""
    evaluations, datapoints = number(resource.get("EvaluationPeriods")), number(resource.get("DatapointsToAlarm"))
    periods = _periods(resource)
    if evaluations is not None and periods:
        window, limit = evaluations * max(periods), 604800 if max(periods) >= 3600 else 86400
        if window > limit:
            yield Violation(f"{evaluations:g} x {max(periods):g}s = {window:g}s", f"evaluate at most {limit} seconds")
    if evaluations is not None and datapoints is not None and datapoints > evaluations:
        yield Violation(f"DatapointsToAlarm {datapoints:g} > EvaluationPeriods {evaluations:g}", "lower "
                        "DatapointsToAlarm")


@rule("CLOUDWATCH-ALARM-METRIC", ALARM,
      message="ValidationError: an alarm has one metric or one math expression returning data, ids that start with a "
              "lower-case letter, and Statistic or ExtendedStatistic (not both)",
      source="https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html")
def alarm_metric(resource: Resource, template: Template) -> Iterator[Violation]:
    """An alarm's metric is well formed."""
    queries = resource.mappings("Metrics")
    if resource.get("Statistic") and resource.get("ExtendedStatistic"):
        yield Violation("Statistic and ExtendedStatistic", "keep one")
    if queries and resource.get("MetricName"):
        yield Violation("MetricName and Metrics", "use one: a metric, or metric queries")
    if not queries:
        return
    returning = [q for q in queries if q.get("ReturnData", True) is True]
    if len(returning) != 1:
        yield Violation(f"{len(returning)} metric queries return data", "set ReturnData false on all but one")
    ids = [q.get("Id") for q in queries]
    if bad := [i for i in ids if not (isinstance(i, str) and re.fullmatch(r"[a-z][a-zA-Z0-9_]*", i))]:
        yield Violation(f"metric query ids {bad}", "start ids with a lower-case letter; letters, digits and _ only")
    if repeated := [i for i, n in Counter(ids).items() if n > 1]:
        yield Violation(f"metric query ids {repeated} repeat", "give each query its own id")


@rule("CLOUDWATCH-ALARM-ACTIONS", ALARM, message="ValidationError: each alarm state has at most 5 actions",
      source=f"{_PUT_ALARM}#ACW-PutMetricAlarm-request-AlarmActions")
def alarm_actions(resource: Resource, template: Template) -> Iterator[Violation]:
    """At most five actions per alarm state."""
    for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
        if len(actions := as_list(resource.get(key))) > 5:
            yield Violation(f"{key} has {len(actions)} actions", "notify one SNS topic and fan out from it")


@rule("CLOUDWATCH-DASHBOARD", "AWS::CloudWatch::Dashboard",
      message="InvalidParameterInput: a dashboard holds at most 500 widgets, each 1-24 units wide",
      source="https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html")
def dashboard(resource: Resource, template: Template) -> Iterator[Violation]:
    """Dashboard body: at most 500 widgets of width 1 to 24."""
    text = shape(resource.get("DashboardBody"))
    if text is None:
        return
    try:  # unknown parts sit inside JSON strings (ARNs, names): a placeholder keeps the body parseable
        body = json.loads(text.replace(UNKNOWN, "x"))
    except ValueError:
        return
    widgets = mappings(as_mapping(body).get("widgets"))
    if len(widgets) > 500:
        yield Violation(f"{len(widgets)} widgets", "split the dashboard")
    if bad := [w.get("width") for w in widgets if not 1 <= (number(w.get("width")) or 6) <= 24]:
        yield Violation(f"widget widths {bad}", "use widths of 1 to 24")
