"""Fine-grained assertions on every environment's synthesized template."""

from __future__ import annotations

import json
from typing import cast

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template

from cdk_app.function import VPC_NETWORK_ACTIONS, FastApiFunction
from cdk_app.settings import load_settings, read_cdk_json_context
from cdk_app.stack import build_stacks
from tests.infra.conftest import API, SKIP_BUNDLING, alias_logical_id, make_app, only

SETTINGS = load_settings(read_cdk_json_context()).environments


def test_one_stack_per_environment(synth):
    assert sorted(synth.stacks) == ["dev", "prod", "staging"]
    assert {s.stack_name for s in synth.stacks.values()} == {
        "fastapi-lambda-dev", "fastapi-lambda-staging", "fastapi-lambda-prod"}


def test_function_runtime_memory_timeout_and_tracing(template, env_name):
    function = SETTINGS[env_name].function
    template.has_resource_properties("AWS::Lambda::Function", {
        "Runtime": f"python{function.python_version}",
        "Architectures": [function.architecture],
        "Handler": "service.handler.handler",
        "MemorySize": function.memory_mb,
        "Timeout": function.timeout_seconds,
        "TracingConfig": {"Mode": "Active"},
        "Layers": [{"Ref": Match.string_like_regexp("DependenciesLayer")}],
        "LoggingConfig": Match.object_like({"LogFormat": "JSON", "LogGroup": {"Ref": Match.any_value()}}),
        "Environment": {"Variables": {"APP_ENVIRONMENT": env_name}},
    })
    assert "ReservedConcurrentExecutions" not in only(template, "AWS::Lambda::Function", API)[1]["Properties"]


def test_timeout_is_120_percent_of_expected_duration(template):
    # cdk.json: expected_duration_seconds 10 everywhere -> 12 s.
    assert only(template, "AWS::Lambda::Function", API)[1]["Properties"]["Timeout"] == 12


@pytest.mark.parametrize("function", [API, "TasksWorker"])
def test_each_function_has_a_live_alias_on_a_published_version(template, function):
    _, alias = only(template, "AWS::Lambda::Alias", function)
    version_id = alias["Properties"]["FunctionVersion"]["Fn::GetAtt"][0]
    assert alias["Properties"]["Name"] == "live" and version_id.startswith(f"{function}FunctionCurrentVersion")
    assert only(template, "AWS::Lambda::Version", function)[0] == version_id


def test_gateway_invokes_the_alias_never_latest(template):
    aliases = set(template.find_resources("AWS::Lambda::Alias"))  # the API function's and each service's
    permissions = template.find_resources("AWS::Lambda::Permission")
    assert permissions, "the gateway needs permission to invoke the function"
    for permission in permissions.values():  # the gateway's, and the warmup rule's where there is one
        assert permission["Properties"]["FunctionName"]["Ref"] in aliases
    assert any(p["Properties"]["Principal"] == "apigateway.amazonaws.com" for p in permissions.values())


def test_function_role_writes_only_its_own_log_group(template):
    lambda_roles = template.find_resources("AWS::IAM::Role", {"Properties": {"AssumeRolePolicyDocument": {
        "Statement": [Match.object_like({"Principal": {"Service": "lambda.amazonaws.com"}})], "Version": Match.any_value()}}})
    api_role = [name for name in lambda_roles if name.startswith(API)]
    assert len(api_role) == 1
    # No managed policy: where the function joins the cache's network, its NetworkPolicy (below) has the
    # network-interface actions Lambda attaches it with, and no logs:* on every log group.
    in_vpc = "VpcConfig" in only(template, "AWS::Lambda::Function", API)[1]["Properties"]
    assert "ManagedPolicyArns" not in lambda_roles[api_role[0]]["Properties"]
    role = {"Ref": api_role[0]}
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"Roles": [role]}})
    statements = {name: p["Properties"]["PolicyDocument"]["Statement"] for name, p in policies.items()}
    default = next(s for name, s in statements.items() if "DefaultPolicy" in name)
    assert [(st["Action"], st["Resource"]["Fn::GetAtt"][0][:7]) for st in default
            if str(st["Action"]).startswith("['logs")] == [(["logs:CreateLogStream", "logs:PutLogEvents"], "ApiLogs")]
    # Nothing else but what the tasks' producer and the cache's token need (test_tasks.py, test_cache.py check those).
    assert {str(st["Action"])[:6] for st in default} <= {"['logs", "['sqs:", "['dyna", "['secr"}
    # X-Ray's unavoidable '*' lives in a policy of its own, so nothing else can hide behind its acknowledgement.
    tracing = next(s for name, s in statements.items() if "TracingPolicy" in name)
    assert tracing == [{"Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"], "Effect": "Allow",
                        "Resource": "*"}]
    network = [s for name, s in statements.items() if "NetworkPolicy" in name]
    assert [[(set(st["Action"]), st["Resource"]) for st in policy] for policy in network] == (
        [[(set(VPC_NETWORK_ACTIONS), "*")]] if in_vpc else [])


def release_hooks(settings) -> int:
    """The smoke-test hook functions (each with its own log group): pre- and post-traffic, for every function."""
    release = settings.release
    return (1 + settings.tasks.enabled + len(settings.services)) * (release.smoke_test is not None) * (1 + release.post_traffic_test)


def test_log_groups_follow_the_environment(template, env_name):
    settings = SETTINGS[env_name]
    deletion = "Retain" if settings.removal_policy == "retain" else "Delete"
    groups = template.find_resources("AWS::Logs::LogGroup")
    # The API function's, each service's and the worker's logs, the access logs, the flow logs where a cache needs
    # a network, the web ACL's where there is one, and the release hooks'.
    assert len(groups) == 3 + len(settings.services) + (settings.cache.kind != "none") + settings.api.waf.enabled \
        + release_hooks(settings)
    for group in groups.values():
        assert group["Properties"]["RetentionInDays"] == settings.log_retention_days
        assert group["DeletionPolicy"] == deletion


def tags_of(resource: dict) -> dict[str, str]:
    """CloudFormation tags as a dict (HTTP APIs take a map, the rest a list of Key/Value)."""
    tags = resource["Properties"].get("Tags", {})
    return tags if isinstance(tags, dict) else {tag["Key"]: tag["Value"] for tag in tags}


def test_function_logs_and_api_carry_the_service_and_environment_tags(template, env_name):
    assert SETTINGS[env_name].tags, "cdk.json sets tags in every environment"
    expected = {"service": f"fastapi-lambda-{env_name}", **SETTINGS[env_name].tags}
    api = {"http": "AWS::ApiGatewayV2::Api", "rest": "AWS::ApiGateway::RestApi"}[SETTINGS[env_name].api.type]
    # CDK's own custom resource providers (e.g. the one restricting the VPC's default security group) take no tags.
    tagged = {kind: [tags_of(r) for name, r in template.find_resources(kind).items() if not name.startswith("Custom")]
              for kind in ("AWS::Lambda::Function", "AWS::Logs::LogGroup", api)}

    assert {kind: all(tags == expected for tags in found) and len(found) for kind, found in tagged.items()} == {
        # API, services, worker, bucket notifications, release hooks
        "AWS::Lambda::Function": 2 + len(SETTINGS[env_name].services) + SETTINGS[env_name].tasks.files.enabled
        + release_hooks(SETTINGS[env_name]),
        "AWS::Logs::LogGroup": 3 + len(SETTINGS[env_name].services) + (SETTINGS[env_name].cache.kind != "none")
        + SETTINGS[env_name].api.waf.enabled + release_hooks(SETTINGS[env_name]),
        api: 1}


def test_prod_retains_and_protects_dev_does_not(synth):
    assert synth.stacks["prod"].termination_protection is True
    assert synth.stacks["dev"].termination_protection is False
    for env, expected in (("prod", "Retain"), ("dev", "Delete")):
        layers = synth.templates[env].find_resources("AWS::Lambda::LayerVersion")
        assert [layer["DeletionPolicy"] for layer in layers.values()] == [expected]


def test_layer_is_built_for_the_target(template, env_name):
    function = SETTINGS[env_name].function
    template.has_resource_properties("AWS::Lambda::LayerVersion", {
        "CompatibleRuntimes": [f"python{function.python_version}"],
        "CompatibleArchitectures": [function.architecture],
    })


def test_api_url_is_an_output(template):
    outputs = template.find_outputs("ApiUrl")
    assert len(outputs) == 1


@pytest.mark.parametrize("env_name", ["dev", "staging"])
def test_http_api_stage_throttling_and_json_access_logs(synth, env_name):
    template, api = synth.templates[env_name], SETTINGS[env_name].api
    template.resource_count_is("AWS::ApiGatewayV2::Api", 1)
    template.resource_count_is("AWS::ApiGateway::RestApi", 0)
    _, stage = only(template, "AWS::ApiGatewayV2::Stage")
    properties = stage["Properties"]
    assert properties["StageName"] == "$default" and properties["AutoDeploy"] is True
    assert properties["DefaultRouteSettings"] == {
        "ThrottlingRateLimit": api.throttle_rate_limit, "ThrottlingBurstLimit": api.throttle_burst_limit}
    access_format = json.loads(properties["AccessLogSettings"]["Format"])
    assert access_format["requestId"] == "$context.requestId"
    assert access_format["status"] == "$context.status"
    template.has_resource_properties("AWS::ApiGatewayV2::Integration", {
        "IntegrationType": "AWS_PROXY", "PayloadFormatVersion": "2.0",
        "IntegrationUri": {"Ref": alias_logical_id(template)},
    })


def test_cors_only_where_configured(synth):
    dev_api = only(synth.templates["dev"], "AWS::ApiGatewayV2::Api")[1]["Properties"]
    assert dev_api["CorsConfiguration"]["AllowOrigins"] == ["http://localhost:3000"]
    assert "CorsConfiguration" not in only(synth.templates["staging"], "AWS::ApiGatewayV2::Api")[1]["Properties"]


def test_prod_rest_api_is_regional_traced_throttled_and_logged(synth):
    template, api = synth.templates["prod"], SETTINGS["prod"].api
    template.resource_count_is("AWS::ApiGatewayV2::Api", 0)
    template.has_resource_properties("AWS::ApiGateway::RestApi", {
        "EndpointConfiguration": {"Types": ["REGIONAL"]}})
    template.has_resource_properties("AWS::ApiGateway::Stage", {
        "TracingEnabled": True,
        "AccessLogSetting": {"DestinationArn": Match.any_value(), "Format": Match.string_like_regexp("requestId")},
        "MethodSettings": Match.array_with([Match.object_like({
            "ResourcePath": "/*", "HttpMethod": "*",
            "ThrottlingRateLimit": api.throttle_rate_limit,
            "ThrottlingBurstLimit": api.throttle_burst_limit,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
        })]),
    })
    aliases = set(template.find_resources("AWS::Lambda::Alias"))  # the API function's and each service's
    for method in template.find_resources("AWS::ApiGateway::Method", {"Properties": {"HttpMethod": "ANY"}}).values():
        uri = json.dumps(method["Properties"]["Integration"]["Uri"])
        assert any(f'"Ref": "{alias}"' in uri for alias in aliases), "REST methods must integrate a live alias"


def test_stacks_are_environment_agnostic_by_default(synth):
    for stack in synth.stacks.values():
        assert stack.account.startswith("${Token[") and stack.region.startswith("${Token[")


def test_rest_api_cors_preflight(context):
    context["environments"]["prod"]["api"]["cors"] = {"allow_origins": ["https://app.example.com"],
                                                      "allow_methods": ["GET", "POST"]}
    template = Template.from_stack(build_stacks(make_app({**context, "env": "prod"}))["prod"])

    options = template.find_resources("AWS::ApiGateway::Method", {"Properties": {"HttpMethod": "OPTIONS"}})
    assert options, "expected preflight methods"
    headers = json.dumps(next(iter(options.values()))["Properties"]["Integration"]["IntegrationResponses"])
    assert "https://app.example.com" in headers and "GET,POST" in headers


def test_dev_switched_to_a_rest_api_synthesizes_without_cdk_warnings(context, tmp_path):
    # CDK warned once per open method (the CORS ones too) that default scopes do not apply there.
    context["environments"]["dev"]["api"]["type"] = "rest"
    app = make_app({**context, "env": "dev"}, outdir=tmp_path)
    build_stacks(app)

    stack = app.synth().get_stack_by_name("fastapi-lambda-dev")
    assert [m.entry.data for m in stack.messages if m.level.value == "warning"] == []


def test_every_non_retained_environment_is_deleted_whole(synth, env_name):
    # cdk destroy: nothing kept, nothing protected from deletion (the preflight refuses the latter).
    resources = synth.templates[env_name].to_json()["Resources"]
    kept = sorted(name for name, r in resources.items() if r.get("DeletionPolicy") in ("Retain", "Snapshot"))
    if SETTINGS[env_name].removal_policy == "retain":
        assert kept and synth.stacks[env_name].termination_protection
    else:
        assert kept == []
        protected = [name for name, r in resources.items()
                     if r.get("Properties", {}).get("DeletionProtection") == "ACTIVE"
                     or r.get("Properties", {}).get("DeletionProtectionEnabled") is True]
        assert protected == []


def test_grants_and_metrics_target_the_alias_and_a_role_can_be_brought():
    stack = Stack(App(context=SKIP_BUNDLING), "Grants")
    # Casts: jsii's principals miss IPrincipal for pyright (parameter names, aws/jsii#4541).
    own_role = iam.Role(stack, "TeamRole", assumed_by=cast(iam.IPrincipal, iam.ServicePrincipal("lambda.amazonaws.com")))
    function = FastApiFunction(stack, "Api", role=own_role)
    caller = iam.Role(stack, "Caller", assumed_by=cast(iam.IPrincipal, iam.AccountRootPrincipal()))
    function.grant_invoke(caller)
    template = Template.from_stack(stack)

    template.has_resource_properties("AWS::Lambda::Function", {"Role": {"Fn::GetAtt": [
        Match.string_like_regexp("TeamRole"), "Arn"]}})
    template.resource_count_is("AWS::IAM::Role", 2)  # the team's and the caller's: none created
    template.has_resource_properties("AWS::IAM::Policy", {
        "Roles": [{"Ref": Match.string_like_regexp("Caller")}],
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Action": "lambda:InvokeFunction", "Resource": {"Ref": Match.string_like_regexp("ApiAlias")}})])},
    })
    dimensions = function.metric_errors().dimensions or {}
    assert set(dimensions) == {"FunctionName", "Resource"}
