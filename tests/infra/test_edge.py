"""The HTTP edge: binary bodies, compression, a custom domain per environment, large uploads, and their preflight.

What only a deploy can show (a certificate validated, the domain answering, the execute-api URL
refusing) is listed in docs/http-edge.md; here, the templates say what AWS will be asked.
"""

from __future__ import annotations

import json

import pytest
from aws_cdk import Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_route53 as route53
from aws_cdk.assertions import Match, Template

from cdk_app.api import CustomDomain, FastApiGateway
from cdk_app.function import FastApiFunction
from cdk_app.settings import ConfigError, load_settings
from cdk_app.settings.choices import ApiType
from cdk_app.settings.schema import CorsSettings
from cdk_app.stack import build_stacks
from tests.infra.conftest import make_app, only
from tests.infra.edge_preflight import (
    CERTIFICATE,
    EDGE_MORE,
    _binary_mock,
    _disabled_endpoint,
    _domain_v2,
    _mapping_before_stage,
    _rest_domain,
)
from tests.infra.test_gateway import new_stack
from tests.infra.test_preflight import run_preflight


def gateway(api_type: ApiType, **props) -> tuple[Stack, FastApiGateway, FastApiFunction]:
    stack = new_stack()
    function = FastApiFunction(stack, "Main", app="service.main:create_app")
    return stack, FastApiGateway(stack, "Gateway", handler=function, api_type=api_type, **props), function


def variables(template: Template, prefix: str = "Main") -> dict:
    return only(template, "AWS::Lambda::Function", prefix)[1]["Properties"]["Environment"]["Variables"]


# --- binary bodies and compression ----------------------------------------------------------------

def test_a_rest_api_passes_every_body_as_bytes_and_compresses_at_the_gateway():
    stack, _, _ = gateway("rest")
    template = Template.from_stack(stack)

    template.has_resource_properties("AWS::ApiGateway::RestApi", {
        "BinaryMediaTypes": ["*/*"], "MinimumCompressionSize": 1024})
    assert "FASTAPI_LAMBDA_GZIP_MIN_BYTES" not in variables(template)  # the gateway compresses, not the app


def test_a_configured_list_of_binary_types_and_no_compression():
    stack, _, _ = gateway("rest", binary_media_types=["image/png", "multipart/form-data"], compression_min_bytes=None)
    body = only(Template.from_stack(stack), "AWS::ApiGateway::RestApi")[1]["Properties"]

    assert body["BinaryMediaTypes"] == ["image/png", "multipart/form-data"] and "MinimumCompressionSize" not in body


def test_an_http_api_compresses_in_the_function():
    stack, _, _ = gateway("http", compression_min_bytes=2048)

    assert variables(Template.from_stack(stack))["FASTAPI_LAMBDA_GZIP_MIN_BYTES"] == "2048"


def test_cors_preflight_methods_answer_text_when_every_body_is_binary():
    stack, _, _ = gateway("rest", cors=CorsSettings(allow_origins=["https://app.example.com"]))
    options = Template.from_stack(stack).find_resources("AWS::ApiGateway::Method", {"Properties": {
        "HttpMethod": "OPTIONS"}})

    assert options and all(m["Properties"]["Integration"]["ContentHandling"] == "CONVERT_TO_TEXT"
                           for m in options.values())


def test_a_media_type_that_is_not_one_is_refused():
    with pytest.raises(ValueError, match="'type/subtype'"):
        gateway("rest", binary_media_types=["png"])


# --- the custom domain ----------------------------------------------------------------------------

def zone(stack: Stack) -> route53.IHostedZone:
    return route53.HostedZone.from_hosted_zone_attributes(stack, "Zone", hosted_zone_id="Z0123456789ABCDEFGHIJ",
                                                          zone_name="example.com")


@pytest.mark.parametrize("api_type", ["http", "rest"])
def test_a_domain_gets_a_dns_validated_certificate_a_mapping_and_an_alias_record(api_type):
    stack = new_stack()
    function = FastApiFunction(stack, "Main", app="service.main:create_app")
    api = FastApiGateway(stack, "Gateway", handler=function, api_type=api_type,
                         domain=CustomDomain("api.example.com", hosted_zone=zone(stack), base_path="v1"))
    template = Template.from_stack(stack)
    v2 = api_type == "http"

    template.has_resource_properties("AWS::CertificateManager::Certificate", {
        "DomainName": "api.example.com", "ValidationMethod": "DNS",
        "DomainValidationOptions": [{"DomainName": "api.example.com", "HostedZoneId": "Z0123456789ABCDEFGHIJ"}]})
    if v2:
        template.has_resource_properties("AWS::ApiGatewayV2::DomainName", {"DomainName": "api.example.com",
            "DomainNameConfigurations": [Match.object_like({"EndpointType": "REGIONAL", "SecurityPolicy": "TLS_1_2"})]})
        template.has_resource_properties("AWS::ApiGatewayV2::ApiMapping", {"ApiMappingKey": "v1"})
    else:
        template.has_resource_properties("AWS::ApiGateway::DomainName", {
            "DomainName": "api.example.com", "EndpointConfiguration": {"Types": ["REGIONAL"]},
            "SecurityPolicy": "TLS_1_2", "RegionalCertificateArn": Match.any_value()})
        template.has_resource_properties("AWS::ApiGateway::BasePathMapping", {"BasePath": "v1"})
    template.has_resource_properties("AWS::ApiGatewayV2::Api" if v2 else "AWS::ApiGateway::RestApi",
                                     {"DisableExecuteApiEndpoint": True})
    template.has_resource_properties("AWS::Route53::RecordSet", {"Name": "api.example.com.", "Type": "A",
                                                                 "AliasTarget": Match.any_value()})
    assert api.url == "https://api.example.com/v1/"
    assert variables(template)["FASTAPI_LAMBDA_ROOT_PATH"] == "/v1"  # the base path reaches the app


def test_an_existing_certificate_and_no_zone_make_no_certificate_and_no_record():
    stack = new_stack()
    certificate = acm.Certificate.from_certificate_arn(stack, "Cert", CERTIFICATE)
    FastApiGateway(stack, "Gateway", handler=FastApiFunction(stack, "Main", app="service.main:create_app"),
                   domain=CustomDomain("api.example.com", certificate=certificate, disable_default_endpoint=False))
    template = Template.from_stack(stack)

    template.resource_count_is("AWS::CertificateManager::Certificate", 0)
    template.resource_count_is("AWS::Route53::RecordSet", 0)
    template.has_resource_properties("AWS::ApiGatewayV2::DomainName", {
        "DomainNameConfigurations": [Match.object_like({"CertificateArn": CERTIFICATE})]})
    template.has_resource_properties("AWS::ApiGatewayV2::Api", {"DisableExecuteApiEndpoint": False})


def test_disabling_the_rest_endpoint_redeploys_the_stage():
    def deployment(disable: bool) -> str:
        stack = new_stack()
        FastApiGateway(stack, "Gateway", handler=FastApiFunction(stack, "Main", app="service.main:create_app"),
                       api_type="rest", domain=CustomDomain("api.example.com", disable_default_endpoint=disable))
        return only(Template.from_stack(stack), "AWS::ApiGateway::Deployment")[0]

    # The setting takes effect with a new deployment only: a new logical id makes CloudFormation create one.
    assert deployment(True) != deployment(False)


def domain_context(context: dict, env: str, **domain) -> dict:
    context["environments"][env]["api"]["domain"] = {"name": "api.example.com", **domain}
    return context


def test_a_domain_per_environment_in_cdk_json_reaches_every_app(context):
    context = domain_context(context, "prod", base_path="v1", hosted_zone_id="Z0123456789ABCDEFGHIJ",
                             hosted_zone_name="example.com")
    template = Template.from_stack(build_stacks(make_app({**context, "env": "prod"}))["prod"])

    assert variables(template, "ApiFunction")["FASTAPI_LAMBDA_ROOT_PATH"] == "/v1"
    assert variables(template, "BillingServiceFunction")["FASTAPI_LAMBDA_ROOT_PATH"] == "/v1/billing"
    template.has_resource_properties("AWS::ApiGateway::BasePathMapping", {"BasePath": "v1"})
    outputs = template.to_json()["Outputs"]
    assert outputs["ApiUrl"]["Value"] == "https://api.example.com/v1/"


@pytest.mark.parametrize(("domain", "region", "words"), [
    ({"base_path": "v1/beta"}, None, "api.domain.base_path='v1/beta'"),
    ({"hosted_zone_id": "Z0123456789ABCDEFGHIJ"}, None, "hosted_zone_id and hosted_zone_name go together"),
    ({"hosted_zone_id": "Z0123456789ABCDEFGHIJ", "hosted_zone_name": "example.org"}, None, "not in the hosted zone"),
    ({"certificate_arn": CERTIFICATE}, "eu-central-1", "certificate_arn is in eu-west-1 but the API is in eu-central-1"),
    ({"certificate_arn": "arn:aws:iam::123456789012:server-certificate/x"}, None, "not an ACM certificate ARN"),
], ids=["base-path", "zone-half", "zone-mismatch", "certificate-region", "not-acm"])
def test_domain_settings_aws_would_refuse_are_named(context, domain, region, words):
    context = domain_context(context, "staging", **domain)
    if region:
        context["environments"]["staging"]["region"] = region
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        load_settings(context)


# --- large uploads --------------------------------------------------------------------------------

def test_uploads_may_put_objects_under_incoming_only(synth, env_name):
    template = synth.templates[env_name]
    stack = synth.stacks[env_name]
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"PolicyName": Match.string_like_regexp(
        "UploadsPolicy")}})
    if stack.files is None:
        assert not policies and "UPLOAD_BUCKET" not in variables(template, "ApiFunction")
        return
    (policy,) = policies.values()
    bucket = stack.get_logical_id(stack.files.bucket.node.default_child)

    assert policy["Properties"]["PolicyDocument"]["Statement"] == [{
        "Action": "s3:PutObject", "Effect": "Allow",
        "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/incoming/*"]]}}]
    assert [r["Ref"] for r in policy["Properties"]["Roles"]] == [only(template, "AWS::IAM::Role", "ApiRole")[0]]
    env = variables(template, "ApiFunction")
    assert env["UPLOAD_BUCKET"] == {"Ref": bucket} and env["UPLOAD_PREFIX"] == "incoming/"
    assert env["UPLOAD_MAX_BYTES"] == str(stack.settings.api.upload_max_mb * 1024 * 1024)


# --- the preflight: what AWS refuses at the edge ---------------------------------------------------

@pytest.mark.parametrize("case", sorted(EDGE_MORE))
def test_more_edge_deploy_failures_are_refused(case, tmp_path):
    report = run_preflight(EDGE_MORE[case], tmp_path, env={"region": "eu-central-1"})
    assert report.failed and any(report.built in v["path"] for v in report.violations), report.violations


@pytest.mark.parametrize("build", [
    lambda s: _domain_v2(s),
    lambda s: _mapping_before_stage(s, ordered=True),
    lambda s: _disabled_endpoint(s, mapped=True),
    lambda s: _binary_mock(s, text=True),
    lambda s: _rest_domain(s, EndpointConfiguration={"Types": ["REGIONAL"]}, RegionalCertificateArn=CERTIFICATE),
], ids=["certificate-in-region", "mapping-after-stage", "mapped", "mock-as-text", "rest-regional"])
def test_edge_near_misses_pass(build, tmp_path):
    report = run_preflight(build, tmp_path, env={"region": "eu-west-1"})
    assert not report.failed and not report.violations, report.violations


# --- the main job's summary -----------------------------------------------------------------------

def test_the_summary_names_each_environments_services_and_domain(synth, context):
    from cdk_app.report import edge

    assert edge(synth.templates["dev"].to_json()["Resources"]) == "services /, /billing; domain execute-api URL"
    context = domain_context(context, "prod", base_path="v1")
    template = Template.from_stack(build_stacks(make_app({**context, "env": "prod"}))["prod"])
    assert edge(template.to_json()["Resources"]) == "services /, /billing; domain https://api.example.com/v1"


def test_environments_with_domains_pass_cdk_nag_and_the_preflight(context, tmp_path):
    # cfn-lint and checkov were run on the same templates by hand: clean (see docs/http-edge.md).
    for env, base_path in (("staging", None), ("prod", "v1")):
        domain_context(context, env, base_path=base_path, hosted_zone_id="Z0123456789ABCDEFGHIJ",
                       hosted_zone_name="example.com")
    app = make_app(context, outdir=tmp_path)
    build_stacks(app)  # with cdk-nag and the preflight: synth raises on any error

    app.synth()
    report = json.loads((tmp_path / "validation-report.json").read_text())
    assert [v for p in report["pluginReports"] for v in p["violations"]] == []
