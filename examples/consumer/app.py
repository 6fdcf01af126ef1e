#!/usr/bin/env python3
"""A consumer's CDK app: its own package (src/orders) and lock, our constructs.

Two functions share one dependency layer (they use the same capabilities, so they need the same packages): ``Orders`` names its ASGI app and needs no
handler module (``app="orders.main:app"``); ``Admin`` uses its own handler module built
with ``fastapi_lambda.lambda_handler``. Synthesize with ``npx cdk synth`` in this folder
(``-c architecture=x86_64`` to build for x86).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import App, CfnOutput, Duration, RemovalPolicy, Stack
from constructs import Construct

from cdk_app import BundlingTarget, DependenciesLayer, FastApiFunction, FastApiGateway
from cdk_app.cold_start import ColdStart, Warmup
from cdk_app.compliance import add_compliance_checks

SRC = Path(__file__).resolve().parent / "src"


class OrdersStack(Stack):
    def __init__(self, scope: Construct, id: str, *, target: BundlingTarget) -> None:
        super().__init__(scope, id)
        shared = DependenciesLayer(self, "Dependencies", source=SRC, target=target,
                                   removal_policy=RemovalPolicy.DESTROY)
        self.orders = FastApiFunction(
            self, "Orders", source=SRC, app="orders.main:app", target=target, dependencies=shared,
            expected_duration=Duration.seconds(3), removal_policy=RemovalPolicy.DESTROY,
            cold_start=ColdStart.warmup_rule(Warmup(concurrency=2)),
        )
        self.admin = FastApiFunction(
            self, "Admin", source=SRC, handler="orders.handler.handler", target=target, dependencies=shared,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Only /health is public; every other route needs IAM (SigV4) until an authorizer is passed.
        self.api = FastApiGateway(self, "Api", handler=self.orders.alias, public_routes=["GET /health"],
                                  removal_policy=RemovalPolicy.DESTROY)
        CfnOutput(self, "ApiUrl", value=self.api.url)


app = App()
OrdersStack(app, "orders", target=BundlingTarget(architecture=app.node.try_get_context("architecture") or "arm64"))
add_compliance_checks(app)
app.synth()
