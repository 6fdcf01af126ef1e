"""FastApiGateway: public only where declared, IAM (or the given authorizer) everywhere else.

The cdk-nag tests prove the acknowledgements are narrow: a public route added from
outside the construct must still fail synth.
"""

from __future__ import annotations

import json
import re

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from cdk_app.api import FastApiGateway
from cdk_app.compliance import add_compliance_checks
from cdk_app.settings import load_settings, read_cdk_json_context
from cdk_app.settings.choices import ApiType
from cdk_app.settings.schema import CorsSettings
from tests.infra.conftest import SKIP_BUNDLING, alias_logical_id, app_of, only, template_of

SETTINGS = load_settings(read_cdk_json_context()).environments
API_TYPES: tuple[ApiType, ...] = ("http", "rest")


def routes_of(template: Template) -> dict[str, dict]:
    """Every route as "METHOD /path" (HTTP ``$default`` as is) -> its Route or Method properties."""
    resources = template.to_json()["Resources"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in resources.values()
              if r["Type"] == "AWS::ApiGatewayV2::Route"}

    def path_of(reference: dict) -> str:
        if "Fn::GetAtt" in reference:  # the RestApi's RootResourceId
            return ""
        resource = resources[reference["Ref"]]["Properties"]
        return f"{path_of(resource['ParentId'])}/{resource['PathPart']}"

    for method in (r["Properties"] for r in resources.values() if r["Type"] == "AWS::ApiGateway::Method"):
        routes[f"{method['HttpMethod']} {path_of(method['ResourceId']) or '/'}"] = method
    return routes


def integrates_the_alias(route: dict, template: Template) -> bool:
    """Whether the route reaches the stack's one function alias (the session's stacks: the API's)."""
    aliases = template.find_resources("AWS::Lambda::Alias")
    alias = next(iter(aliases)) if len(aliases) == 1 else alias_logical_id(template)
    if "Integration" in route:  # REST: the method holds its integration
        return f'"Ref": "{alias}"' in json.dumps(route["Integration"]["Uri"])
    integration_id = route["Target"]["Fn::Join"][1][1]["Ref"]
    return template.to_json()["Resources"][integration_id]["Properties"]["IntegrationUri"] == {"Ref": alias}


def new_stack(tmp_path=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False,
              outdir=str(tmp_path) if tmp_path else None)
    return Stack(app, "Gateway")


def nag_findings(stack: Stack, outdir) -> list[tuple[str, str]]:
    """cdk-nag over the stack's app: (rule, construct path) for each finding; [] when synth passes."""
    add_compliance_checks(app_of(stack))
    try:
        app_of(stack).synth()
    except RuntimeError as error:
        assert "ValidationFailed" in str(error)
        report = json.loads((outdir / "validation-report.json").read_text())
        return [(violation["ruleName"], construct["constructPath"])
                for plugin in report["pluginReports"] for violation in plugin["violations"]
                for construct in violation["violatingConstructs"]]
    return []


def test_declared_routes_are_public_and_everything_else_needs_iam_or_a_token(template, env_name):
    api = SETTINGS[env_name].api
    protected = ({"http": "JWT", "rest": "COGNITO_USER_POOLS"}[api.type] if SETTINGS[env_name].auth.enabled
                 else "AWS_IAM")
    routes = routes_of(template)
    catch_alls = ["$default"] if api.type == "http" else ["ANY /", "ANY /{proxy+}"]
    services = SETTINGS[env_name].services.values()  # their routes reach their own aliases: test_services.py
    public = {*api.public_routes, *(route for service in services for route in service.public_routes)}

    assert set(api.public_routes) | set(catch_alls) <= set(routes)
    for key, route in routes.items():
        preflight = key.startswith("OPTIONS ") and api.cors is not None  # browsers cannot sign these
        expected = "NONE" if key in public or preflight else protected
        assert route["AuthorizationType"] == expected, key
        if any(key.split(" ")[-1].startswith(service.prefix) for service in services):
            continue
        if not (preflight and api.type == "rest"):  # REST preflight is a mock answered by API Gateway
            assert integrates_the_alias(route, template), key


def test_http_cors_preflight_routes_are_open_where_cors_is_on(synth):
    assert {"OPTIONS /", "OPTIONS /{proxy+}"} <= set(routes_of(synth.templates["dev"]))  # dev has CORS
    assert not any(key.startswith("OPTIONS") for key in routes_of(synth.templates["staging"]))


def declared_gateway(stack: Stack, api_type: ApiType) -> FastApiGateway:
    """One declared public route, with CORS (whose preflight routes/methods must pass cdk-nag too)."""
    return FastApiGateway(stack, "Gateway", api_type=api_type, public_routes=["GET /health"],
                          cors=CorsSettings(allow_origins=["https://app.example.com"]))


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_public_route_added_from_outside_is_reported(tmp_path, api_type):
    stack = new_stack(tmp_path)
    gateway = declared_gateway(stack, api_type)
    if api_type == "http":
        assert gateway.http_api is not None
        gateway.http_api.add_routes(path="/orders/{id}", methods=[apigwv2.HttpMethod.POST],
                                    integration=integrations.HttpLambdaIntegration("Orders", gateway.handler),
                                    authorizer=apigwv2.HttpNoneAuthorizer())
        added = "Gateway/Gateway/HttpApi/POST--orders--{id}/Resource"
    else:
        assert gateway.rest_api is not None
        gateway.rest_api.root.resource_for_path("/orders/{id}").add_method(
            "POST", authorization_type=apigw.AuthorizationType.NONE)
        added = "Gateway/Gateway/RestApi/Default/orders/{id}/POST/Resource"

    findings = nag_findings(stack, tmp_path)

    assert ("AwsSolutions-APIG4", added) in findings
    assert {path for _, path in findings} == {added}, "only the added route may be reported"


@pytest.mark.parametrize("api_type", API_TYPES)
def test_the_same_gateway_without_the_added_route_passes(tmp_path, api_type):
    stack = new_stack(tmp_path)
    declared_gateway(stack, api_type)

    assert nag_findings(stack, tmp_path) == []


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_route_added_later_without_options_is_protected(api_type):
    stack = new_stack()
    gateway = FastApiGateway(stack, "Gateway", api_type=api_type)
    if api_type == "http":
        assert gateway.http_api is not None
        gateway.http_api.add_routes(path="/orders", methods=[apigwv2.HttpMethod.POST],
                                    integration=integrations.HttpLambdaIntegration("Orders", gateway.handler))
    else:
        assert gateway.rest_api is not None
        gateway.rest_api.root.add_resource("orders").add_method("POST")

    assert routes_of(template_of(stack))["POST /orders"]["AuthorizationType"] == "AWS_IAM"


@pytest.mark.parametrize("api_type", API_TYPES)
def test_no_props_creates_its_own_function_and_passes_cdk_nag(tmp_path, api_type):
    stack = new_stack(tmp_path)
    gateway = FastApiGateway(stack, "Gateway", api_type=api_type)
    template = template_of(stack)

    assert gateway.function is not None and gateway.handler is gateway.function.alias
    timeout = only(template, "AWS::Lambda::Function")[1]["Properties"]["Timeout"]
    assert timeout <= FastApiGateway.max_integration_timeout(api_type).to_seconds()
    routes = routes_of(template)
    assert {route["AuthorizationType"] for route in routes.values()} == {"AWS_IAM"}  # nothing declared public
    assert all(integrates_the_alias(route, template) for route in routes.values())
    assert (gateway.http_stage if api_type == "http" else gateway.rest_stage) is not None
    assert nag_findings(stack, tmp_path) == []


def test_a_given_handler_is_used_and_no_function_created():
    stack = new_stack()
    handler = lambda_.Function(stack, "Mine", runtime=lambda_.Runtime.PYTHON_3_13, handler="app.handler",
                               code=lambda_.Code.from_inline("def handler(event, context): ..."))
    gateway = FastApiGateway(stack, "Gateway", handler=handler)

    assert gateway.function is None and gateway.handler is handler
    template_of(stack).resource_count_is("AWS::Lambda::Function", 1)


@pytest.mark.parametrize("route", ["get /health", "GET health", "GET /health/", "GET  /health", "$default",
                                   "GET /{proxy+}/more", "FETCH /x", ""])
def test_a_malformed_public_route_is_a_clear_error(route):
    with pytest.raises(ValueError, match=rf"public_routes: {re.escape(repr(route))} is not a route; "
                                         r"write 'METHOD /path'.*e\.g\. 'GET /health'"):
        FastApiGateway(new_stack(), "Gateway", public_routes=["GET /", route])


def test_public_routes_as_one_string_is_a_clear_error():
    with pytest.raises(ValueError, match=r"public_routes='GET /health' is one string; pass a list"):
        FastApiGateway(new_stack(), "Gateway", public_routes="GET /health")


@pytest.mark.parametrize(("api_type", "wrong"), [("http", "rest"), ("rest", "http")])
def test_an_authorizer_for_the_other_api_type_is_a_clear_error(api_type, wrong):
    stack = new_stack()
    authorizer = authorizers.HttpIamAuthorizer() if wrong == "http" else apigw.CognitoUserPoolsAuthorizer(
        stack, "Authorizer", cognito_user_pools=[cognito.UserPool(stack, "Users")])

    expected = "aws_apigatewayv2 route authorizer" if api_type == "http" else "aws_apigateway authorizer"

    with pytest.raises(TypeError, match=rf"authorizer={type(authorizer).__name__} does not fit "
                                        rf"api_type='{api_type}'; pass an {expected}"):
        FastApiGateway(stack, "Gateway", api_type=api_type, authorizer=authorizer)


def jwt_authorizer() -> authorizers.HttpJwtAuthorizer:
    return authorizers.HttpJwtAuthorizer("Jwt", "https://issuer.example.com", jwt_audience=["client-id"])


def test_an_http_authorizer_replaces_iam_on_the_protected_routes_and_demands_access_tokens():
    stack = new_stack()
    FastApiGateway(stack, "Gateway", public_routes=["GET /health"], authorizer=jwt_authorizer(),
                   authorization_scopes=["orders/read"], cors=CorsSettings(allow_origins=["https://app.example.com"]))
    template = template_of(stack)

    routes = routes_of(template)
    assert routes["$default"]["AuthorizationType"] == "JWT"
    assert routes["$default"]["AuthorizerId"] == {"Ref": only(template, "AWS::ApiGatewayV2::Authorizer")[0]}
    assert routes["$default"]["AuthorizationScopes"] == ["orders/read"]
    # Open routes carry no scopes: AWS refuses scopes without a token authorizer (aws-cdk PR #27576).
    for key in ("GET /health", "OPTIONS /", "OPTIONS /{proxy+}"):
        assert routes[key]["AuthorizationType"] == "NONE" and "AuthorizationScopes" not in routes[key], key


def test_a_rest_authorizer_replaces_iam_on_the_protected_methods_and_demands_access_tokens():
    stack = new_stack()
    users = apigw.CognitoUserPoolsAuthorizer(stack, "Authorizer", cognito_user_pools=[cognito.UserPool(stack, "Users")])
    FastApiGateway(stack, "Gateway", api_type="rest", public_routes=["GET /health"], authorizer=users,
                   authorization_scopes=["openid"], cors=CorsSettings(allow_origins=["https://app.example.com"]))
    template = template_of(stack)

    routes = routes_of(template)
    authorizer_ref = {"Ref": only(template, "AWS::ApiGateway::Authorizer")[0]}
    for key in ("ANY /", "ANY /{proxy+}", "ANY /health"):
        assert routes[key]["AuthorizationType"] == "COGNITO_USER_POOLS", key
        assert routes[key]["AuthorizerId"] == authorizer_ref, key
        assert routes[key]["AuthorizationScopes"] == ["openid"], key
    for key in ("GET /health", "OPTIONS /health", "OPTIONS /{proxy+}"):
        assert routes[key]["AuthorizationType"] == "NONE" and "AuthorizationScopes" not in routes[key], key
    # CDK warns about scopes on open methods; there are none, so nothing to warn about.
    warnings = [m for m in app_of(stack).synth().get_stack_by_name(stack.stack_name).messages
                if m.level.value == "warning"]
    assert warnings == []


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_token_authorizer_without_scopes_is_refused_unless_id_tokens_are_wanted(api_type):
    stack = new_stack()
    authorizer = jwt_authorizer() if api_type == "http" else apigw.CognitoUserPoolsAuthorizer(
        stack, "Authorizer", cognito_user_pools=[cognito.UserPool(stack, "Users")])

    with pytest.raises(ValueError, match="without authorization_scopes would let ID tokens through.*"
                                         "accept_id_tokens=True"):
        FastApiGateway(stack, "Refused", api_type=api_type, authorizer=authorizer)
    FastApiGateway(stack, "Gateway", api_type=api_type, authorizer=authorizer, accept_id_tokens=True)

    protected = [r for key, r in routes_of(template_of(stack)).items() if r["AuthorizationType"] != "NONE"]
    assert protected and all("AuthorizationScopes" not in r for r in protected)


def test_routes_added_later_with_a_token_authorizer_get_the_access_token_scopes():
    stack = new_stack()
    gateway = FastApiGateway(stack, "Gateway", authorizer=jwt_authorizer(), authorization_scopes=["openid"])
    other = authorizers.HttpJwtAuthorizer("Other", "https://other.example.com", jwt_audience=["x"])
    assert gateway.http_api is not None
    gateway.http_api.add_routes(path="/admin", methods=[apigwv2.HttpMethod.GET], authorizer=other,
                                integration=integrations.HttpLambdaIntegration("Admin", gateway.handler))
    gateway.http_api.add_routes(path="/reports", methods=[apigwv2.HttpMethod.GET], authorization_scopes=["reports"],
                                integration=integrations.HttpLambdaIntegration("Reports", gateway.handler))

    routes = routes_of(template_of(stack))
    assert routes["GET /admin"]["AuthorizationScopes"] == ["openid"]
    assert routes["GET /reports"]["AuthorizationScopes"] == ["reports"]  # a route's own scopes stay its own


def test_a_throttled_route_is_created_before_the_stage_that_names_it():
    # CloudFormation may create the stage first otherwise: "Unable to find Route by key" (aws-sam-cli #2479).
    stack = new_stack()
    FastApiGateway(stack, "Gateway", public_routes=["GET /health"],
                   route_throttles={"GET /health": (5, 10), "POST /orders": (1, 2)})
    template = template_of(stack)

    stage = only(template, "AWS::ApiGatewayV2::Stage")[1]
    routes = {r["Properties"]["RouteKey"]: name for name, r in template.find_resources(
        "AWS::ApiGatewayV2::Route").items()}
    assert set(stage["Properties"]["RouteSettings"]) == {"GET /health", "POST /orders"}
    assert {routes["GET /health"], routes["POST /orders"]} <= set(stage["DependsOn"])


def test_rest_public_route_resources_keep_their_other_methods_protected():
    # API Gateway matches the resource first: /orders and /orders/{id} need their own catch-alls.
    stack = new_stack()
    FastApiGateway(stack, "Gateway", api_type="rest", public_routes=["GET /orders/{id}", "ANY /status"])

    routes = routes_of(template_of(stack))
    assert {key: route["AuthorizationType"] for key, route in routes.items()} == {
        "GET /orders/{id}": "NONE", "ANY /status": "NONE",
        "ANY /": "AWS_IAM", "ANY /{proxy+}": "AWS_IAM", "ANY /orders": "AWS_IAM", "ANY /orders/{id}": "AWS_IAM",
    }


def test_http_cors_allow_methods_wildcard():
    stack = new_stack()
    FastApiGateway(stack, "Gateway", cors=CorsSettings(allow_origins=["https://app.example.com"], allow_methods=["*"]))

    cors = only(template_of(stack), "AWS::ApiGatewayV2::Api")[1]["Properties"]["CorsConfiguration"]
    assert cors["AllowMethods"] == ["*"]
