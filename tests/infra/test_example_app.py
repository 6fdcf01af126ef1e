"""The constructs compose into a different app than ours (examples/two_apis_app.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from aws_cdk import App
from aws_cdk.assertions import Match

from tests.infra.conftest import SKIP_BUNDLING, template_of

EXAMPLE = Path(__file__).parents[2] / "examples" / "two_apis_app.py"


def load_example():
    spec = importlib.util.spec_from_file_location("two_apis_app", EXAMPLE)
    assert spec is not None and spec.loader is not None, EXAMPLE  # a .py file has a source loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_app_synthesizes_with_a_shared_layer(tmp_path):
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    stack = load_example().build(app)
    template = template_of(stack)

    template.resource_count_is("AWS::Lambda::LayerVersion", 1)
    layer_id = next(iter(template.find_resources("AWS::Lambda::LayerVersion")))
    functions = template.find_resources("AWS::Lambda::Function")
    assert len(functions) == 2
    for function in functions.values():
        assert function["Properties"]["Runtime"] == "python3.12"
        assert function["Properties"]["Architectures"] == ["x86_64"]
        assert function["Properties"]["Layers"] == [{"Ref": layer_id}]
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    template.resource_count_is("AWS::ApiGateway::RestApi", 1)
    template.has_resource_properties("AWS::ApiGatewayV2::Route", {"RouteKey": "GET /health", "AuthorizationType": "NONE"})
    methods = template.find_resources("AWS::ApiGateway::Method").values()
    assert {m["Properties"]["AuthorizationType"] for m in methods} == {"AWS_IAM"}  # the internal API
    template.has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": 5, "Timeout": 24})
    template.has_resource_properties("AWS::CloudWatch::Alarm", {
        "MetricName": "Errors", "Dimensions": Match.array_with([{"Name": "Resource", "Value": Match.any_value()}])})

    app.synth()  # cdk-nag runs here too and raises on any finding
