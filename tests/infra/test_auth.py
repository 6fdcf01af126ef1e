"""The user pool, its clients, the gateway's token authorizers, per-route limits and the WAF."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk.assertions import Template
from fastapi_lambda.constants import AUTH_CLIENT_IDS_VARIABLE, AUTH_ISSUER_VARIABLE, AUTH_VERIFY_VARIABLE

from cdk_app.api import FastApiGateway
from cdk_app.auth import UserPool, WebFirewall
from cdk_app.compliance import add_compliance_checks
from cdk_app.report import acknowledgements
from cdk_app.settings import ConfigError, load_settings, read_cdk_json_context
from cdk_app.settings.limits import name_problem
from cdk_app.settings.rules import domain_prefix_stem
from tests.infra.conftest import API, SKIP_BUNDLING, app_of, only, template_of

SETTINGS = load_settings(read_cdk_json_context()).environments
#: Any access token of the pool carries one of these; an ID token none.
ACCESS_SCOPES = ["openid", "aws.cognito.signin.user.admin", "api/tasks.write"]


def pool(template: Template) -> dict:
    return only(template, "AWS::Cognito::UserPool")[1]


def clients(template: Template) -> dict[str, dict]:
    return {name: c["Properties"] for name, c in template.find_resources("AWS::Cognito::UserPoolClient").items()}


def test_user_pool_signs_in_by_email_with_a_strong_password_policy(template, env_name):
    auth = SETTINGS[env_name].auth
    properties = pool(template)["Properties"]

    assert properties["UsernameAttributes"] == ["email"] and properties["AutoVerifiedAttributes"] == ["email"]
    assert properties["Policies"]["PasswordPolicy"] == {
        "MinimumLength": auth.password_min_length, "RequireLowercase": True, "RequireUppercase": True,
        "RequireNumbers": True, "RequireSymbols": True, "TemporaryPasswordValidityDays": 3}
    assert properties["AccountRecoverySetting"] == {"RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]}
    assert properties["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is not auth.self_sign_up
    assert properties["MfaConfiguration"] == {"off": "OFF", "optional": "OPTIONAL", "required": "ON"}[auth.mfa]


def test_prod_requires_mfa_enforces_threat_protection_and_protects_the_pool(synth):
    prod, dev = pool(synth.templates["prod"]), pool(synth.templates["dev"])

    assert prod["Properties"]["MfaConfiguration"] == "ON"
    assert prod["Properties"]["UserPoolTier"] == "PLUS"
    assert prod["Properties"]["UserPoolAddOns"] == {"AdvancedSecurityMode": "ENFORCED"} or \
        "FULL_FUNCTION" in json.dumps(prod["Properties"])
    assert prod["Properties"]["DeletionProtection"] == "ACTIVE" and prod["DeletionPolicy"] == "Retain"
    assert dev["Properties"]["UserPoolTier"] == "ESSENTIALS" and dev["DeletionPolicy"] == "Delete"


def test_the_browser_client_has_no_secret_and_uses_the_code_flow(template, env_name):
    auth = SETTINGS[env_name].auth
    web = next(c for name, c in clients(template).items() if "WebClient" in name)

    assert web["GenerateSecret"] is False and web["AllowedOAuthFlows"] == ["code"]
    assert web["AllowedOAuthScopes"][:2] == ["openid", "email"]
    assert web["AllowedOAuthScopes"][2]["Fn::Join"][1][1] == "/tasks.write"  # <resource server>/tasks.write
    assert web["PreventUserExistenceErrors"] == "ENABLED" and web["EnableTokenRevocation"] is True
    assert (web["AccessTokenValidity"], web["IdTokenValidity"], web["RefreshTokenValidity"]) == (
        auth.access_token_minutes, auth.id_token_minutes, auth.refresh_token_days * 24 * 60)
    assert web["CallbackURLs"] == auth.callback_urls


def test_only_prod_has_a_machine_client_with_the_resource_servers_scopes(synth):
    prod = clients(synth.templates["prod"])
    machine = next(c for name, c in prod.items() if "MachineClient" in name)

    assert machine["GenerateSecret"] is True and machine["AllowedOAuthFlows"] == ["client_credentials"]
    assert [s["Fn::Join"][1][1] for s in machine["AllowedOAuthScopes"]] == ["/tasks.write"]
    assert len(clients(synth.templates["dev"])) == 1
    server = only(synth.templates["prod"], "AWS::Cognito::UserPoolResourceServer")[1]["Properties"]
    assert server["Identifier"] == "api" and [s["ScopeName"] for s in server["Scopes"]] == ["tasks.write"]


@pytest.mark.parametrize("env_name", ["dev", "staging"])
def test_http_api_checks_tokens_on_every_non_public_route_and_scopes_where_configured(synth, env_name):
    template = synth.templates[env_name]
    authorizer = only(template, "AWS::ApiGatewayV2::Authorizer")[1]["Properties"]
    routes = {r["Properties"]["RouteKey"]: r["Properties"] for r in template.find_resources(
        "AWS::ApiGatewayV2::Route").values()}

    assert authorizer["AuthorizerType"] == "JWT"
    assert only(template, "AWS::Cognito::UserPool")[0] in json.dumps(authorizer["JwtConfiguration"]["Issuer"])
    assert len(authorizer["JwtConfiguration"]["Audience"]) == len(clients(template))
    assert routes["$default"]["AuthorizationType"] == "JWT"
    assert routes["$default"]["AuthorizationScopes"] == ACCESS_SCOPES  # access tokens only
    assert routes["POST /tasks"]["AuthorizationType"] == "JWT"
    assert routes["POST /tasks"]["AuthorizationScopes"] == ["api/tasks.write"]
    # Open routes carry no scopes: AWS refuses scopes on a route without a token authorizer (aws-cdk PR #27576).
    open_routes = {key: route for key, route in routes.items() if route["AuthorizationType"] == "NONE"}
    assert {"GET /", "GET /health"} <= set(open_routes)
    assert all("AuthorizationScopes" not in route for route in open_routes.values())


def test_rest_api_uses_the_cognito_authorizer_with_scopes(synth):
    template = synth.templates["prod"]
    methods = template.find_resources("AWS::ApiGateway::Method")
    authorizer_id = only(template, "AWS::ApiGateway::Authorizer")[0]
    scoped = [m["Properties"] for m in methods.values() if m["Properties"].get("AuthorizationScopes") == [
        "api/tasks.write"]]

    assert only(template, "AWS::ApiGateway::Authorizer")[1]["Properties"]["Type"] == "COGNITO_USER_POOLS"
    assert [m["HttpMethod"] for m in scoped] == ["POST"]
    for method in methods.values():
        properties = method["Properties"]
        if properties["AuthorizationType"] == "COGNITO_USER_POOLS":
            assert properties["AuthorizerId"] == {"Ref": authorizer_id}
            # With scopes, the Cognito authorizer takes access tokens only (without, it takes ID tokens).
            assert properties["AuthorizationScopes"] in (ACCESS_SCOPES, ["api/tasks.write"])
    assert {m["Properties"]["AuthorizationType"] for m in methods.values()} <= {"NONE", "COGNITO_USER_POOLS"}


def test_every_oauth_flow_has_the_pools_domain_named_per_environment_and_account(template, env_name):
    # The code and client-credentials flows exist only on a domain; a prefix is unique across all accounts.
    domain = only(template, "AWS::Cognito::UserPoolDomain")[1]["Properties"]

    assert domain["UserPoolId"] == {"Ref": only(template, "AWS::Cognito::UserPool")[0]}
    assert domain["Domain"] == {"Fn::Join": ["", [f"fastapi-lambda-{env_name}-", {"Ref": "AWS::AccountId"}]]}


@pytest.mark.parametrize(("stack_name", "stem"), [
    ("fastapi-lambda-dev", "fastapi-lambda-dev"), ("My_AWS_App-Prod", "my-app-prod"),
    ("cognito-amazon", "auth"), ("x" * 70, "x" * 50)])
def test_a_derived_domain_prefix_avoids_what_cognito_refuses(stack_name, stem):
    assert domain_prefix_stem(stack_name) == stem
    assert name_problem("cognito-domain-prefix", f"{stem}-123456789012") is None


def test_a_custom_domain_replaces_the_prefix(tmp_path):
    stack = new_stack(tmp_path)
    certificate = "arn:aws:acm:us-east-1:123456789012:certificate/abc"
    users = UserPool(stack, "Users", custom_domain=cognito.CustomDomainOptions(
        domain_name="auth.example.com", certificate=acm.Certificate.from_certificate_arn(stack, "Cert", certificate)))

    domain = only(template_of(stack), "AWS::Cognito::UserPoolDomain")[1]["Properties"]
    assert domain["Domain"] == "auth.example.com"
    assert domain["CustomDomainConfig"] == {"CertificateArn": certificate}
    assert users.domain is not None


def test_the_function_gets_the_names_to_verify_tokens_itself(template, env_name):
    variables = only(template, "AWS::Lambda::Function", API)[1]["Properties"]["Environment"]["Variables"]

    assert only(template, "AWS::Cognito::UserPool")[0] in json.dumps(variables[AUTH_ISSUER_VARIABLE])
    assert AUTH_CLIENT_IDS_VARIABLE in variables
    assert variables[AUTH_VERIFY_VARIABLE] == str(SETTINGS[env_name].auth.verify_in_function).lower()


def test_per_route_throttles(synth):
    stage = only(synth.templates["dev"], "AWS::ApiGatewayV2::Stage")[1]
    route = [name for name, r in synth.templates["dev"].find_resources("AWS::ApiGatewayV2::Route").items()
             if r["Properties"]["RouteKey"] == "POST /tasks"]
    assert stage["Properties"]["RouteSettings"] == {"POST /tasks": {"ThrottlingBurstLimit": 10,
                                                                     "ThrottlingRateLimit": 5}}
    assert set(route) <= set(stage["DependsOn"])  # "Unable to find Route by key" otherwise
    rest_stage = only(synth.templates["prod"], "AWS::ApiGateway::Stage")[1]["Properties"]
    assert {"ResourcePath": "/~1tasks", "HttpMethod": "POST", "ThrottlingRateLimit": 50,
            "ThrottlingBurstLimit": 100} in [{k: s[k] for k in ("ResourcePath", "HttpMethod", "ThrottlingRateLimit",
                                                                  "ThrottlingBurstLimit") if k in s}
                                             for s in rest_stage["MethodSettings"]]


def test_prod_waf_protects_the_stage_and_the_user_pool(synth):
    template = synth.templates["prod"]
    acl = only(template, "AWS::WAFv2::WebACL")[1]["Properties"]
    associations = [a["Properties"]["ResourceArn"] for a in template.find_resources(
        "AWS::WAFv2::WebACLAssociation").values()]

    assert acl["Scope"] == "REGIONAL" and acl["DefaultAction"] == {"Allow": {}}
    assert [r["Name"] for r in acl["Rules"]] == ["AWSManagedRulesCommonRuleSet",
                                                 "AWSManagedRulesKnownBadInputsRuleSet", "RateLimitPerIp"]
    assert acl["Rules"][2]["Statement"]["RateBasedStatement"] == {"Limit": 2000, "AggregateKeyType": "IP"}
    assert len(associations) == 2
    assert any(only(template, "AWS::Cognito::UserPool")[0] in json.dumps(a) for a in associations)
    for env in ("dev", "staging"):
        synth.templates[env].resource_count_is("AWS::WAFv2::WebACL", 0)


def test_apig3_is_acknowledged_only_where_there_is_no_waf(synth):
    synth.app.synth()

    def rules(stack: str) -> set[str]:
        return {rule.removeprefix("Annotation::") for rule in acknowledgements(synth.outdir, stack)}

    assert not {"AwsSolutions-APIG3", "AwsSolutions-COG2", "AwsSolutions-COG8"} & rules("fastapi-lambda-prod")
    assert {"AwsSolutions-COG2", "AwsSolutions-COG8"} <= rules("fastapi-lambda-dev")


# --- the rules -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "change", "message"), [
    ("dev", {"api": {"waf": {"enabled": True}}}, "api.waf.enabled needs a REST API (api.type is 'http')"),
    ("dev", {"auth": {"enabled": True, "route_scopes": {"GET /health": ["x"]}}},
     "auth.route_scopes names GET /health, which api.public_routes makes public"),
    ("dev", {"auth": {"enabled": False, "route_scopes": {"POST /tasks": ["x"]}}},
     "auth.route_scopes is set but auth.enabled is false"),
    ("prod", {"auth": {"enabled": True, "password_min_length": 6}}, "auth.password_min_length: 6 is not allowed"),
])
def test_edge_settings_that_cannot_work_are_refused(context, env, change, message):
    for key, value in change.items():
        context["environments"][env][key] = {**context["environments"][env].get(key, {}), **value}

    with pytest.raises(ConfigError) as caught:
        load_settings(context)
    assert message in str(caught.value)


def new_stack(outdir=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(outdir) if outdir else None)
    return Stack(app, "Lib")


def test_a_user_pool_with_no_props_and_a_gateway_using_it_pass_cdk_nag(tmp_path):
    stack = new_stack(tmp_path)
    users = UserPool(stack, "Users", mfa="required", threat_protection="enforced")
    FastApiGateway(stack, "Api", authorizer=users.http_authorizer(), public_routes=["GET /health"])
    add_compliance_checks(app_of(stack))

    app_of(stack).synth()  # raises on any finding


def test_bring_your_own_pool_and_clients():
    stack = new_stack()
    existing = cognito.UserPool.from_user_pool_id(stack, "Existing", "eu-west-1_abc123")
    client = cognito.UserPoolClient.from_user_pool_client_id(stack, "ExistingClient", "client123")
    users = UserPool(stack, "Users", user_pool=existing, clients=[client])
    FastApiGateway(stack, "Api", authorizer=users.http_authorizer())
    template = template_of(stack)

    template.resource_count_is("AWS::Cognito::UserPool", 0)
    authorizer = only(template, "AWS::ApiGatewayV2::Authorizer")[1]["Properties"]
    assert authorizer["JwtConfiguration"]["Audience"] == ["client123"]
    with pytest.raises(ValueError, match="user_pool is given without clients"):
        UserPool(stack, "NoClients", user_pool=existing)


def test_a_machine_client_needs_scopes_and_a_firewall_a_sane_limit():
    with pytest.raises(ValueError, match="machine_client=True needs scopes"):
        UserPool(new_stack(), "Users", machine_client=True)
    with pytest.raises(ValueError, match="rate_limit=10 must be from 100 to 2000000000"):
        WebFirewall(new_stack(), "Firewall", protect=[], rate_limit=10)
