"""Violating stacks (and near misses) for the edge's preflight rules (cdk_app/preflight/edge.py).

Each builds the few L1 resources that break one rule, as tests/infra/test_preflight.py's cases
do; that file runs :data:`PREFLIGHT_CASES` with every other rule's, test_services.py and
test_edge.py run the rest. The L1 helpers are tests/infra/l1.py's, as there.
"""

from __future__ import annotations

from collections.abc import Callable

from aws_cdk import CfnResource, Stack

from tests.infra.l1 import cfn, function, http_api, rest_api, route

CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"


# --- a raw route below a service's prefix that leads elsewhere --------------------------------------

def _integration(stack: Stack, id: str, fn) -> CfnResource:
    return cfn(stack, id, "AWS::ApiGatewayV2::Integration", ApiId={"Ref": "Api"}, IntegrationType="AWS_PROXY",
               IntegrationUri=fn.get_att("Arn"), PayloadFormatVersion="2.0")


def _http_claim(stack: Stack, *, same_function: bool = False) -> str:
    api = http_api(stack)
    main, billing = function(stack, "Main"), function(stack, "Billing")
    to_billing = _integration(stack, "ToBilling", billing)
    to_main = to_billing if same_function else _integration(stack, "ToMain", main)
    route(stack, api, "Mount", "ANY /billing/{proxy+}", Target={"Fn::Join": ["", ["integrations/", to_billing.ref]]})
    route(stack, api, "Stray", "GET /billing/report", Target={"Fn::Join": ["", ["integrations/", to_main.ref]]})
    return "Stray"


def _rest_method(stack: Stack, api, id: str, resource, verb: str, fn) -> object:
    return cfn(stack, id, "AWS::ApiGateway::Method", RestApiId=api.ref, ResourceId=resource.ref, HttpMethod=verb,
               AuthorizationType="AWS_IAM", Integration={"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST", "Uri": {
                   "Fn::Join": ["", ["arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/",
                                     fn.get_att("Arn"), "/invocations"]]}})


def _rest_claim(stack: Stack, *, twice: bool = False) -> str:
    api = rest_api(stack)
    main, billing = function(stack, "Main"), function(stack, "Billing")
    prefix = cfn(stack, "BillingPath", "AWS::ApiGateway::Resource", RestApiId=api.ref, PathPart="billing",
                 ParentId=api.get_att("RootResourceId"))
    proxy = cfn(stack, "BillingProxy", "AWS::ApiGateway::Resource", RestApiId=api.ref, PathPart="{proxy+}",
                ParentId=prefix.ref)
    report = cfn(stack, "Report", "AWS::ApiGateway::Resource", RestApiId=api.ref, PathPart="report",
                 ParentId=prefix.ref)
    _rest_method(stack, api, "Mount", proxy, "ANY", billing)
    _rest_method(stack, api, "Stray", report, "GET", billing if twice else main)
    if twice:
        _rest_method(stack, api, "Twin", report, "GET", billing)
        return "Twin"
    return "Stray"


CLAIM_CASES = {"rest-stray": _rest_claim, "rest-twice": lambda s: _rest_claim(s, twice=True)}


# --- what AWS refuses at the edge -------------------------------------------------------------------

def _domain_v2(stack: Stack, **configuration) -> object:
    return cfn(stack, "Domain", "AWS::ApiGatewayV2::DomainName", DomainName="api.example.com",
               DomainNameConfigurations=[{"EndpointType": "REGIONAL", "CertificateArn": CERTIFICATE, **configuration}])


def _mapping_before_stage(stack: Stack, *, ordered: bool = False) -> str:
    api = http_api(stack)
    stage = cfn(stack, "Stage", "AWS::ApiGatewayV2::Stage", ApiId=api.ref, StageName="$default")
    mapping = cfn(stack, "Mapping", "AWS::ApiGatewayV2::ApiMapping", ApiId=api.ref, DomainName="api.example.com",
                  Stage="$default")
    if ordered:
        mapping.node.add_dependency(stage)
    return "Mapping"


def _rest_domain(stack: Stack, **props) -> str:
    cfn(stack, "Domain", "AWS::ApiGateway::DomainName", DomainName="api.example.com", **props)
    return "Domain"


def _disabled_endpoint(stack: Stack, *, mapped: bool = False) -> str:
    api = cfn(stack, "Api", "AWS::ApiGatewayV2::Api", Name="api", ProtocolType="HTTP", DisableExecuteApiEndpoint=True)
    if mapped:
        cfn(stack, "Mapping", "AWS::ApiGatewayV2::ApiMapping", ApiId=api.ref, DomainName="api.example.com",
            Stage="$default")
    return "Api"


def _binary_mock(stack: Stack, *, text: bool = False) -> str:
    api = rest_api(stack)
    api.add_property_override("BinaryMediaTypes", ["*/*"])
    cfn(stack, "Options", "AWS::ApiGateway::Method", RestApiId=api.ref, ResourceId=api.get_att("RootResourceId"),
        HttpMethod="OPTIONS", AuthorizationType="NONE",
        Integration={"Type": "MOCK", **({"ContentHandling": "CONVERT_TO_TEXT"} if text else {})})
    return "Options"


EDGE_CASES = {
    # An edge-optimized domain takes us-east-1's certificates only, whatever the stack's region.
    "APIGW-DOMAIN-CERTIFICATE": lambda s: _rest_domain(s, CertificateArn=CERTIFICATE),
    "APIGW-MAPPING": _mapping_before_stage,
    "APIGW-DEFAULT-ENDPOINT-ONLY-WAY": _disabled_endpoint,
    "RESTAPI-BINARY-MOCK": _binary_mock,
}
#: The stacks above are checked in region ap-southeast-5 (the preflight's stand-in) unless they fix one.
EDGE_MORE = {
    "rest-edge-property": lambda s: _rest_domain(s, EndpointConfiguration={"Types": ["REGIONAL"]},
                                                 CertificateArn=CERTIFICATE),
    "http-region": lambda s: _domain_v2(s) and "Domain",
    "mapping-key": lambda s: cfn(s, "Mapping", "AWS::ApiGatewayV2::ApiMapping", ApiId="a", DomainName="d",
                                 Stage="s", ApiMappingKey="v1/beta") and "Mapping",
}


#: One violating case per rule (test_preflight.py runs them with all the others).
PREFLIGHT_CASES: dict[str, Callable[[Stack], str]] = {"APIGW-ROUTE-CLAIMED-TWICE": _http_claim, **EDGE_CASES}
