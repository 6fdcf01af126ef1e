"""The settings' words and numbers as the CDK values that construct props take.

The constructs use these for their defaults (``removal_policy: RemovalPolicy =
removal_policy(DEFAULTS.removal_policy)``) and :mod:`cdk_app.props` for every environment's
settings, so a construct used alone and a stack built from ``cdk.json`` translate alike.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs

from cdk_app.settings.choices import LOG_RETENTION_DAYS, RemovalPolicyName, Tracing


def removal_policy(name: RemovalPolicyName) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if name == "retain" else RemovalPolicy.DESTROY


def log_retention(days: int) -> logs.RetentionDays:
    # RetentionDays lists the supported day counts in the same order, then INFINITE.
    finite = [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[days]


def tracing(mode: Tracing) -> lambda_.Tracing:
    """Lambda's tracing for a mode: active for the X-Ray SDK and for OpenTelemetry (ADOT), off otherwise."""
    return lambda_.Tracing.DISABLED if mode == "off" else lambda_.Tracing.ACTIVE
