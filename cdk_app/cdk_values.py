"""The settings' words and numbers as the CDK values that construct props take.

The constructs use these for their defaults (``removal_policy: RemovalPolicy =
removal_policy(DEFAULTS.removal_policy)``) and :mod:`cdk_app.props` for every environment's
settings, so a construct used alone and a stack built from ``cdk.json`` translate alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypedDict

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from cdk_app.settings.choices import LOG_RETENTION_DAYS, RemovalPolicyName, Tracing


def removal_policy(name: RemovalPolicyName) -> RemovalPolicy:
    """The removal policy a settings name means: ``"retain"`` keeps the resource, ``"destroy"`` deletes it."""
    return RemovalPolicy.RETAIN if name == "retain" else RemovalPolicy.DESTROY


def log_retention(days: int) -> logs.RetentionDays:
    """CDK's retention for a number of days CloudWatch Logs supports (1, 3, 5, 7, 14, 30, ...)."""
    # RetentionDays lists the supported day counts in the same order, then INFINITE.
    finite = [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE]
    by_days: dict[int, logs.RetentionDays] = dict(zip(LOG_RETENTION_DAYS, finite, strict=True))
    return by_days[days]


def tracing(mode: Tracing) -> lambda_.Tracing:
    """Lambda's tracing for a mode: active for the X-Ray SDK and for OpenTelemetry (ADOT), off otherwise."""
    return lambda_.Tracing.DISABLED if mode == "off" else lambda_.Tracing.ACTIVE


class MetricOptions(TypedDict, total=False):
    """The keyword arguments of every ``metric_*`` method (CDK's ``aws_cloudwatch.MetricOptions``), all optional.

    Typed, so ``construct.metric_errors(period=Duration.minutes(5), statistic="Sum")`` is checked like CDK's own.
    """

    account: str
    color: str
    dimensions_map: Mapping[str, str]
    id: str
    label: str
    period: Duration
    region: str
    stack_account: str
    stack_region: str
    statistic: str
    unit: cloudwatch.Unit
    visible: bool
