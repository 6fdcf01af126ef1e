"""FastApiGateway on its own: its own function when given none, and cdk-nag clean."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_

from cdk_app.api import FastApiGateway
from cdk_app.compliance import add_compliance_checks
from tests.infra.conftest import SKIP_BUNDLING, alias_logical_id, only, template_of

API_TYPES = ("http", "rest")


def new_stack(tmp_path=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False,
              outdir=str(tmp_path) if tmp_path else None)
    return Stack(app, "Gateway")


def nag_findings(stack: Stack, outdir) -> list[tuple[str, str]]:
    """cdk-nag over the stack's app: (rule, construct path) for each finding; [] when synth passes."""
    add_compliance_checks(stack.node.root)
    try:
        stack.node.root.synth()
    except RuntimeError as error:
        assert "ValidationFailed" in str(error)
        report = json.loads((outdir / "validation-report.json").read_text())
        return [(violation["ruleName"], construct["constructPath"])
                for plugin in report["pluginReports"] for violation in plugin["violations"]
                for construct in violation["violatingConstructs"]]
    return []


@pytest.mark.parametrize("api_type", API_TYPES)
def test_no_props_creates_its_own_function_and_passes_cdk_nag(tmp_path, api_type):
    stack = new_stack(tmp_path)
    gateway = FastApiGateway(stack, "Gateway", api_type=api_type)
    template = template_of(stack)

    assert gateway.function is not None and gateway.handler is gateway.function.alias
    timeout = only(template, "AWS::Lambda::Function")[1]["Properties"]["Timeout"]
    assert timeout <= FastApiGateway.max_integration_timeout(api_type).to_seconds()
    permissions = template.find_resources("AWS::Lambda::Permission").values()
    assert permissions and all(p["Properties"]["FunctionName"] == {"Ref": alias_logical_id(template)}
                               for p in permissions)
    assert (gateway.http_stage if api_type == "http" else gateway.rest_stage) is not None
    assert nag_findings(stack, tmp_path) == []


def test_a_given_handler_is_used_and_no_function_created():
    stack = new_stack()
    handler = lambda_.Function(stack, "Mine", runtime=lambda_.Runtime.PYTHON_3_13, handler="app.handler",
                               code=lambda_.Code.from_inline("def handler(event, context): ..."))
    gateway = FastApiGateway(stack, "Gateway", handler=handler)

    assert gateway.function is None and gateway.handler is handler
    template_of(stack).resource_count_is("AWS::Lambda::Function", 1)
