#!/usr/bin/env python3
"""An app of your own that reuses the constructs differently.

Two FastAPI functions (an HTTP API with two public routes and an internal REST API
that only IAM-signed callers reach) on x86_64 and Python 3.12 share one dependency
layer, and an alarm watches the public one.
Synthesize it with ``npx cdk synth --app ".venv/bin/python examples/two_apis_app.py"``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from constructs import Construct

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from cdk_app import BundlingTarget, DependenciesLayer, FastApiFunction, FastApiGateway  # noqa: E402
from cdk_app.compliance import add_compliance_checks  # noqa: E402


class TwoApisStack(Stack):
    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        target = BundlingTarget(python_version="3.12", architecture="x86_64")
        shared = DependenciesLayer(self, "SharedDependencies", target=target, removal_policy=RemovalPolicy.DESTROY)

        public = FastApiFunction(self, "Public", target=target, dependencies=shared,
                                 expected_duration=Duration.seconds(3), memory_size=2048,
                                 environment={"APP_ENVIRONMENT": "public"}, removal_policy=RemovalPolicy.DESTROY)
        internal = FastApiFunction(self, "Internal", target=target, dependencies=shared,
                                   expected_duration=Duration.seconds(20), reserved_concurrency=5,
                                   environment={"APP_ENVIRONMENT": "internal"}, removal_policy=RemovalPolicy.DESTROY)

        public_api = FastApiGateway(self, "PublicApi", handler=public.alias, api_type="http",
                                    public_routes=["GET /", "GET /health"], removal_policy=RemovalPolicy.DESTROY)
        internal_api = FastApiGateway(self, "InternalApi", handler=internal.alias, api_type="rest",
                                      throttle_rate_limit=10, throttle_burst_limit=20,
                                      removal_policy=RemovalPolicy.DESTROY)

        cloudwatch.Alarm(self, "PublicErrors", metric=public.metric_errors(period=Duration.minutes(1)),
                         threshold=1, evaluation_periods=3,
                         treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
        CfnOutput(self, "PublicUrl", value=public_api.url)
        CfnOutput(self, "InternalUrl", value=internal_api.url)


def build(app: App) -> TwoApisStack:
    stack = TwoApisStack(app, "TwoApisExample")
    add_compliance_checks(app)
    return stack


if __name__ == "__main__":
    application = App()
    build(application)
    application.synth()
