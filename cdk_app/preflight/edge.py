"""API Gateway's edge: which function a path reaches, custom domains, their mappings and certificates, binary bodies.

Several services share one API on path prefixes; API Gateway sends a request to the most
specific route (resource) that matches, so a route another function declares below a service's
prefix silently takes that service's requests. The rest are AWS's own refusals (and one 500 at
run time) for domains, mappings and binary media types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    as_list,
    as_mapping,
    is_array,
    literal_text,
    referenced_ids,
    rule,
    target_id,
)
from cdk_app.settings.rules import BASE_PATH, CERTIFICATE_REGION, under

ROUTE, INTEGRATION = "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration"
METHOD, REST_RESOURCE, REST_API = "AWS::ApiGateway::Method", "AWS::ApiGateway::Resource", "AWS::ApiGateway::RestApi"
HTTP_API = "AWS::ApiGatewayV2::Api"


def _function(value: object) -> str | None:
    """The function (or alias) a Lambda integration URI names, as a comparable key; None if not Lambda."""
    return json.dumps(value, sort_keys=True) if value is not None else None


def _http_routes(api: str, template: Template) -> list[tuple[Resource, str, str, str | None]]:
    """(route, method, path, its function) of every 'METHOD /path' route of an HTTP API."""
    found: list[tuple[Resource, str, str, str | None]] = []
    for route in template.of_type(ROUTE):
        key = route.get("RouteKey")
        if target_id(route.get("ApiId")) != api or not isinstance(key, str) or " " not in key:
            continue
        # The target is "integrations/<id>", built with Fn::Join: the integration is among its references.
        integration = next((template.resources[i] for i in referenced_ids(route.get("Target"))
                            if i in template.resources and template.resources[i].type == INTEGRATION), None)
        method, path = key.split(" ", 1)
        found.append((route, method, path, _function(integration and integration.get("IntegrationUri"))))
    return found


def _rest_path(resource_id: object, template: Template, depth: int = 0) -> str | None:
    """The path of a REST resource ("/billing/{proxy+}"); "/" for the root; None when unknown."""
    resource = template.target(resource_id, REST_RESOURCE)
    if resource is None:
        attribute = as_mapping(resource_id).get("Fn::GetAtt")
        return "/" if is_array(attribute) and attribute[-1] == "RootResourceId" else None
    parent = _rest_path(resource.get("ParentId"), template, depth + 1) if depth < 30 else None
    part = resource.get("PathPart")
    return None if parent is None or not isinstance(part, str) else parent.rstrip("/") + "/" + part


def _rest_methods(api: str, template: Template) -> list[tuple[Resource, str, str, str | None]]:
    """(method, verb, path, its function) of every method of a REST API with a Lambda integration or none."""
    found: list[tuple[Resource, str, str, str | None]] = []
    for method in template.of_type(METHOD):
        if target_id(method.get("RestApiId")) != api:
            continue
        path, verb = _rest_path(method.get("ResourceId"), template), method.get("HttpMethod")
        integration = method.mapping("Integration")
        uri = integration.get("Uri") if integration.get("Type") in ("AWS_PROXY", "AWS") else None
        if path is not None and isinstance(verb, str):
            found.append((method, verb, path, _function(uri)))
    return found


def _prefixes(routes: list[tuple[Resource, str, str, str | None]]) -> dict[str, str]:
    """Each service prefix ("/billing" of "ANY /billing/{proxy+}") and the function it is mounted to."""
    return {path[: -len("/{proxy+}")]: function for _, method, path, function in routes
            if method == "ANY" and path.endswith("/{proxy+}") and path != "/{proxy+}" and function is not None}


@rule("APIGW-ROUTE-CLAIMED-TWICE", ROUTE, METHOD,
      message="API Gateway sends each request to the most specific matching route, so this route takes requests "
              "below a prefix another function is mounted on (and a REST method declared twice is refused: "
              '"ConflictException: Method already exists for this resource")',
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html#http-api-"
             "develop-routes.evaluation; https://docs.aws.amazon.com/apigateway/latest/api/API_PutMethod.html")
def claimed_twice(resource: Resource, template: Template) -> Iterator[Violation]:
    """No route below a service's prefix leads to another function; no REST method is declared twice."""
    api = target_id(resource.get("ApiId") if resource.type == ROUTE else resource.get("RestApiId"))
    if api is None:
        return
    routes = _http_routes(api, template) if resource.type == ROUTE else _rest_methods(api, template)
    mine = next((r for r in routes if r[0].id == resource.id), None)
    if mine is None or mine[1] == "OPTIONS" or mine[3] is None:  # CORS preflight answers are the gateway's own
        return
    _, method, path, function = mine
    for prefix, owner in _prefixes(routes).items():
        if under(path, prefix) and owner != function:
            yield Violation(f"{method} {path} leads to another function than the one mounted on {prefix}",
                            f"declare the route with the service mounted on {prefix} (add_service(..., "
                            f"public_routes=[...]) or services.<name> in cdk.json), or move it out of {prefix}")
            return
    twins = [r[0].id for r in routes if (r[1], r[2]) == (method, path)]
    if resource.type == METHOD and len(twins) > 1 and twins[0] != resource.id:
        yield Violation(f"{method} {path} is also declared by {twins[0]}", "keep one method per resource and verb",
                        message='"ConflictException: Method already exists for this resource"')


@rule("APIGW-DOMAIN-CERTIFICATE", "AWS::ApiGateway::DomainName", "AWS::ApiGatewayV2::DomainName",
      message='"BadRequestException: Certificate ... in account ... not found" / "Invalid certificate ARN": a '
              "regional domain takes a certificate of its own region (RegionalCertificateArn), an edge-optimized one "
              "a certificate of us-east-1 (CertificateArn)",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-regional-api-custom-domain-"
             "create.html; https://docs.aws.amazon.com/apigateway/latest/developerguide/how-to-edge-optimized-"
             "custom-domain-name.html")
def domain_certificate(resource: Resource, template: Template) -> Iterator[Violation]:
    """A domain's certificate is in the region its endpoint type needs, in the property that type reads."""
    if resource.type == "AWS::ApiGatewayV2::DomainName":
        wanted = [(c.get("CertificateArn"), template.region, "DomainNameConfigurations/CertificateArn")
                  for c in resource.mappings("DomainNameConfigurations")]
    else:
        types = as_list(resource.get("EndpointConfiguration", "Types")) or ["EDGE"]
        regional = "REGIONAL" in types
        if regional and resource.get("CertificateArn") and not resource.get("RegionalCertificateArn"):
            yield Violation("a REGIONAL domain with CertificateArn (the edge-optimized property)",
                            "set RegionalCertificateArn instead (CDK's DomainName does, with endpoint_type REGIONAL)")
            return
        wanted = [(resource.get("RegionalCertificateArn"), template.region, "RegionalCertificateArn")] if regional \
            else [(resource.get("CertificateArn"), "us-east-1", "CertificateArn")]
    for arn, region, where in wanted:
        text = literal_text(arn)
        match = CERTIFICATE_REGION.fullmatch(text) if text else None
        if match and region and match.group(1) != region:
            yield Violation(f"{where} is a certificate of {match.group(1)}, the domain needs one of {region}",
                            f"request or import the certificate in {region} (ACM certificates are regional)",
                            location=f"Properties/{where}")


@rule("APIGW-DEFAULT-ENDPOINT-ONLY-WAY", HTTP_API, REST_API, severity="warning",
      message="With DisableExecuteApiEndpoint the execute-api URL answers 403 Forbidden: clients reach the API only "
              "through a custom domain mapped to it",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/rest-api-disable-default-endpoint.html")
def default_endpoint(resource: Resource, template: Template) -> Iterator[Violation]:
    """An API whose default endpoint is disabled has a custom domain mapping in the same template."""
    if resource.get("DisableExecuteApiEndpoint") is not True:
        return
    mappings = template.of_type("AWS::ApiGatewayV2::ApiMapping", "AWS::ApiGateway::BasePathMapping",
                                "AWS::ApiGateway::BasePathMappingV2")
    if not any(resource.id in {target_id(m.get("ApiId")), target_id(m.get("RestApiId"))} for m in mappings):
        yield Violation("the default endpoint is disabled and no domain in this template maps to the API",
                        "map a custom domain to it, or keep the default endpoint (disable_default_endpoint=False) "
                        "until the domain is mapped")


@rule("APIGW-MAPPING", "AWS::ApiGatewayV2::ApiMapping", "AWS::ApiGateway::BasePathMapping",
      message='"BadRequestException: Invalid stage identifier specified" when the mapping is created before its '
              "stage; \"An ApiMapping key may contain only letters, numbers and one of $-_.+!*'(),\"",
      source="https://github.com/aws/aws-cdk/issues/8983; https://docs.aws.amazon.com/apigatewayv2/latest/"
             "api-reference/domainnames-domainname-apimappings.html")
def mapping(resource: Resource, template: Template) -> Iterator[Violation]:
    """A mapping's key is one that API Gateway takes, and the mapping comes after the stage it names."""
    key_name = "ApiMappingKey" if resource.type == "AWS::ApiGatewayV2::ApiMapping" else "BasePath"
    key = resource.get(key_name)
    if isinstance(key, str) and key not in ("", "(none)") and not BASE_PATH.fullmatch(key):
        yield Violation(f"{key_name}={key!r}", "use letters, digits and $-_.+!*'(), only (e.g. 'v1'), no slashes",
                        location=f"Properties/{key_name}")
    api = target_id(resource.get("ApiId") or resource.get("RestApiId"))
    stage_name = resource.get("Stage")
    if api is None or not isinstance(stage_name, str):  # a Ref to the stage orders itself
        return
    for stage in template.of_type("AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Stage"):
        if target_id(stage.get("ApiId") or stage.get("RestApiId")) == api and stage.get("StageName") == stage_name \
                and not template.depends(resource, stage.id):
            yield Violation(f"Stage={stage_name!r} names {stage.id}, which the mapping does not depend on",
                            "add a dependency from the mapping to the stage (mapping.node.add_dependency(stage))")


@rule("RESTAPI-BINARY-MOCK", METHOD,
      message='with "*/*" among the binary media types, a MOCK integration (CORS preflight) answers 500 '
              '"Internal server error" (API_CONFIGURATION_ERROR: "Unable to transform request") unless it '
              "converts the body to text",
      source="https://github.com/aws/chalice/issues/1310; https://github.com/aws/serverless-application-model/"
             "issues/553")
def binary_mock(resource: Resource, template: Template) -> Iterator[Violation]:
    """A MOCK integration of a REST API that treats every body as binary converts it to text."""
    integration = resource.mapping("Integration")
    if integration.get("Type") != "MOCK" or integration.get("ContentHandling") == "CONVERT_TO_TEXT":
        return
    api = template.target(resource.get("RestApiId"), REST_API)
    if api is not None and "*/*" in as_list(api.get("BinaryMediaTypes")):
        yield Violation("a MOCK integration without ContentHandling CONVERT_TO_TEXT on an API whose binary media "
                        "types include */*", "set Integration.ContentHandling to CONVERT_TO_TEXT (FastApiGateway "
                        "does for its CORS methods), or list the binary types instead of */*",
                        location="Properties/Integration/ContentHandling")
