"""Several services behind one API: FastApiGateway.add_service / services=, cdk.json's services, the preflight.

Each service is a function of its own on a path prefix: its requests reach its alias, its
declared public routes are open, everything else below its prefix needs the gateway's
authorizer (or IAM), and its app learns its prefix (``FASTAPI_LAMBDA_ROOT_PATH``).
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import Stack
from aws_cdk.assertions import Template

from cdk_app.api import FastApiGateway, Service
from cdk_app.function import FastApiFunction
from cdk_app.settings import ConfigError, load_settings
from cdk_app.settings.choices import ApiType
from cdk_app.stack import build_stacks
from tests.infra.conftest import ENVIRONMENTS, make_app, only
from tests.infra.edge_preflight import CLAIM_CASES, _http_claim
from tests.infra.test_gateway import new_stack, routes_of
from tests.infra.test_preflight import run_preflight

API_TYPES = ("http", "rest")


def reaches(route_props: dict, alias_id: str, template: Template) -> bool:
    """Whether a route (HTTP) or method (REST) integrates the alias ``alias_id``."""
    if "Integration" in route_props:
        return f'"Ref": "{alias_id}"' in json.dumps(route_props["Integration"]["Uri"])
    integration_id = route_props["Target"]["Fn::Join"][1][1]["Ref"]
    return template.to_json()["Resources"][integration_id]["Properties"]["IntegrationUri"] == {"Ref": alias_id}


def two_services(api_type: ApiType, *, via_props: bool = False) -> tuple[Stack, FastApiGateway]:
    stack = new_stack()
    main = FastApiFunction(stack, "Main", app="service.main:create_app")
    billing = FastApiFunction(stack, "Billing", app="service.billing:app", memory_size=512)
    services = [Service("/billing", billing, public_routes=["GET /billing/health"])] if via_props else []
    gateway = FastApiGateway(stack, "Gateway", handler=main, api_type=api_type, public_routes=["GET /health"],
                             services=services)
    if not via_props:
        gateway.add_service("/billing", billing, public_routes=["GET /billing/health"])
    return stack, gateway


@pytest.mark.parametrize("api_type", API_TYPES)
@pytest.mark.parametrize("via_props", [False, True], ids=["add_service", "services="])
def test_a_service_gets_every_request_below_its_prefix(api_type, via_props):
    stack, _ = two_services(api_type, via_props=via_props)
    template = Template.from_stack(stack)
    routes = routes_of(template)
    main, billing = (only(template, "AWS::Lambda::Alias", name)[0] for name in ("Main", "Billing"))

    for key in ("ANY /billing", "ANY /billing/{proxy+}", "GET /billing/health"):
        assert reaches(routes[key], billing, template), key
    assert routes["GET /billing/health"]["AuthorizationType"] == "NONE"
    assert routes["ANY /billing/{proxy+}"]["AuthorizationType"] == "AWS_IAM"
    assert reaches(routes["GET /health"], main, template)
    assert not any(reaches(r, billing, template) for key, r in routes.items() if "billing" not in key)


def test_each_function_learns_the_prefix_it_is_served_under():
    stack, _ = two_services("http")
    functions = {name: body["Properties"]["Environment"]["Variables"]
                 for name, body in Template.from_stack(stack).find_resources("AWS::Lambda::Function").items()}
    billing = next(v for k, v in functions.items() if k.startswith("Billing"))
    main = next(v for k, v in functions.items() if k.startswith("Main"))

    assert billing["FASTAPI_LAMBDA_ROOT_PATH"] == "/billing" and billing["FASTAPI_LAMBDA_APP"] == "service.billing:app"
    assert "FASTAPI_LAMBDA_ROOT_PATH" not in main  # served at the root


@pytest.mark.parametrize(("call", "words"), [
    (lambda g, fn: g.add_service("/", fn), "not a service prefix"),
    (lambda g, fn: g.add_service("/orders/{id}", fn), "not a service prefix"),
    (lambda g, fn: g.add_service("/billing/", fn), "not a service prefix"),
    (lambda g, fn: g.add_service("/pay", fn, public_routes=["GET /health"]), "outside its prefix"),
    (lambda g, fn: g.add_service("/billing/admin", fn), "overlap"),
    (lambda g, fn: g.add_service("/billing", fn), "overlap"),
    (lambda g, fn: g.add_service("/status", fn), "two functions would claim it"),
], ids=["root", "parameter", "trailing-slash", "route-outside", "nested", "same-prefix", "main-route-inside"])
def test_no_route_is_claimed_twice(call, words):
    stack = new_stack()
    main = FastApiFunction(stack, "Main", app="service.main:create_app")
    gateway = FastApiGateway(stack, "Gateway", handler=main, public_routes=["GET /status/live"])
    gateway.add_service("/billing", FastApiFunction(stack, "Billing", app="service.billing:app"))

    with pytest.raises(ValueError, match=words):
        call(gateway, FastApiFunction(stack, "Other", app="service.billing:app"))


@pytest.mark.parametrize("api_type", API_TYPES)
def test_a_services_throttles_and_scopes_are_its_own(api_type):
    stack = new_stack()
    gateway = FastApiGateway(stack, "Gateway", handler=FastApiFunction(stack, "Main", app="service.main:create_app"),
                             api_type=api_type)
    gateway.add_service("/billing", FastApiFunction(stack, "Billing", app="service.billing:app"),
                        route_throttles={"GET /billing/invoices": (5, 10)})
    stage = next(iter(Template.from_stack(stack).find_resources(
        "AWS::ApiGatewayV2::Stage" if api_type == "http" else "AWS::ApiGateway::Stage").values()))["Properties"]

    if api_type == "http":
        assert stage["RouteSettings"]["GET /billing/invoices"] == {"ThrottlingRateLimit": 5, "ThrottlingBurstLimit": 10}
    else:
        assert {"HttpMethod": "GET", "ResourcePath": "/~1billing~1invoices", "ThrottlingRateLimit": 5,
                "ThrottlingBurstLimit": 10} in stage["MethodSettings"]


# --- the example stacks: cdk.json's services ------------------------------------------------------

def test_every_environment_mounts_the_billing_service_on_its_own_function(synth, env_name):
    template, settings = synth.templates[env_name], synth.stacks[env_name].settings
    routes = routes_of(template)
    billing = only(template, "AWS::Lambda::Alias", "BillingService")[0]
    (function_id, function), = template.find_resources("AWS::Lambda::Function", {"Properties": {
        "Description": f"billing service ({env_name})"}}).items()
    api_layers = only(template, "AWS::Lambda::Function", "ApiFunction")[1]["Properties"]["Layers"]

    assert reaches(routes["ANY /billing/{proxy+}"], billing, template)
    assert routes["GET /billing/health"]["AuthorizationType"] == "NONE"
    assert function["Properties"]["Layers"] == api_layers  # the shared dependency layer
    assert function["Properties"]["MemorySize"] == settings.services["billing"].memory_mb
    alarms = {name for name, alarm in template.find_resources("AWS::CloudWatch::Alarm").items()
              if {"Name": "FunctionName", "Value": {"Ref": function_id}} in alarm["Properties"].get("Dimensions", [])}
    assert {"Errors", "Throttles", "SlowP99"} <= {a.removeprefix("ObservabilityBillingService")[:-8] for a in alarms}


def test_a_service_can_be_added_in_cdk_json_alone(context):
    context["environments"]["dev"]["services"]["orders"] = {
        "prefix": "/orders", "app": "service.billing:app", "memory_mb": 768, "public_routes": ["GET /orders/health"],
        "cold_start": {"strategy": "warmup"}}
    stack = build_stacks(make_app(context))["dev"]
    template = Template.from_stack(stack)
    routes = routes_of(template)
    orders = only(template, "AWS::Lambda::Alias", "OrdersService")[0]

    assert reaches(routes["ANY /orders/{proxy+}"], orders, template)
    assert routes["GET /orders/health"]["AuthorizationType"] == "NONE"
    assert template.find_resources("AWS::Lambda::Function", {"Properties": {"MemorySize": 768}})
    assert len(template.find_resources("AWS::Events::Rule")) == 2  # dev's API warmup and the new service's


@pytest.mark.parametrize(("service", "words"), [
    ({"prefix": "/", "app": "service.billing:app"}, "not a service prefix"),
    ({"prefix": "/pay", "app": "billing"}, 'services.payments.app: "billing" is not allowed'),
    ({"prefix": "/pay", "app": "service.billing:app", "public_routes": ["GET /health"]},
     "services.payments declares GET /health outside its prefix '/pay'"),
    ({"prefix": "/billing/admin", "app": "service.billing:app"}, "overlap"),
    ({"prefix": "/pay", "app": "service.billing:app", "cold_start": {"strategy": "snapstart"},
      "reserved_concurrency": 0, "expected_duration_seconds": 40}, "services.payments.expected_duration_seconds"),
    ({"prefix": "/pay", "app": "service.billing:app", "route_scopes": {"GET /pay/x": ["pay.read"]}},
     "services.payments.route_scopes needs a token authorizer"),
], ids=["root", "app", "outside", "nested", "timeout", "scopes-without-auth"])
def test_service_settings_are_checked_with_their_cdk_json_names(context, service, words):
    context["environments"]["staging"]["services"]["payments"] = service
    if "route_scopes" in service:
        context["environments"]["staging"]["auth"] = {"enabled": False}
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        load_settings(context)


def test_a_main_route_below_a_service_prefix_is_refused(context):
    context["environments"]["dev"]["api"]["public_routes"] = ["GET /", "GET /billing/status"]
    with pytest.raises(ConfigError, match="GET /billing/status, which is below services.billing's prefix"):
        load_settings(context)


def test_services_are_listed_per_environment(synth):
    assert {env: list(synth.stacks[env].services) for env in ENVIRONMENTS} == {env: ["billing"] for env in ENVIRONMENTS}


# --- the preflight: a raw route below a service's prefix that leads elsewhere ----------------------

@pytest.mark.parametrize("case", sorted(CLAIM_CASES))
def test_the_preflight_refuses_a_route_claimed_twice(case, tmp_path):
    report = run_preflight(CLAIM_CASES[case], tmp_path)
    found = report.of("APIGW-ROUTE-CLAIMED-TWICE")
    assert report.failed and found and all(report.built in v["path"] for v in found), report.violations


@pytest.mark.parametrize("build", [lambda s: _http_claim(s, same_function=True)], ids=["same-function"])
def test_a_services_own_route_below_its_prefix_passes(build, tmp_path):
    report = run_preflight(build, tmp_path)
    assert not report.of("APIGW-ROUTE-CLAIMED-TWICE"), report.violations
