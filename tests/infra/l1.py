"""The few raw (L1) resources the preflight's violating stacks are built from, shared by
tests/infra/test_preflight.py and the edge's cases (tests/infra/edge_preflight.py)."""

from __future__ import annotations

from aws_cdk import CfnResource, Stack


def cfn(stack: Stack, id: str, type: str, **props) -> CfnResource:
    return CfnResource(stack, id, type=type, properties=props)


def function(stack: Stack, id: str = "Fn", **props) -> CfnResource:
    return cfn(stack, id, "AWS::Lambda::Function", **{
        "Runtime": "python3.13", "Handler": "index.handler", "Role": "arn:aws:iam::123456789012:role/r",
        "Code": {"ZipFile": "def handler(e, c): pass"}, **props})


def http_api(stack: Stack) -> CfnResource:
    return cfn(stack, "Api", "AWS::ApiGatewayV2::Api", Name="api", ProtocolType="HTTP")


def route(stack: Stack, api: CfnResource, id: str, key: str, **props) -> CfnResource:
    return cfn(stack, id, "AWS::ApiGatewayV2::Route", ApiId=api.ref, RouteKey=key, **props)


def rest_api(stack: Stack, **props: object) -> CfnResource:
    return cfn(stack, "Rest", "AWS::ApiGateway::RestApi", Name="rest", **props)
