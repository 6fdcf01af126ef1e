"""The function building block used directly, as a library user would, with every override."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Match, Template

from cdk_app.bundling import LAMBDA_SRC, BundlingError
from cdk_app.compliance import add_compliance_checks
from cdk_app.function import VPC_NETWORK_ACTIONS, FastApiFunction, ServiceFunction
from tests.infra.conftest import SKIP_BUNDLING, app_of, only


def stack(name: str = "Lib", outdir=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False,
              outdir=str(outdir) if outdir else None)
    return Stack(app, name)


def function_properties(template: Template) -> dict:
    return only(template, "AWS::Lambda::Function")[1]["Properties"]


def test_every_construct_works_with_no_props():
    scope = stack()
    FastApiFunction(scope, "Api")  # ./lambda_src of the app being synthesized: this repository's

    properties = function_properties(Template.from_stack(scope))
    assert properties["Handler"] == "service.handler.handler" and properties["Timeout"] == 6
    assert properties["TracingConfig"] == {"Mode": "Active"}


def test_app_reference_uses_the_generic_entry_point():
    scope = stack()
    FastApiFunction(scope, "Api", source=LAMBDA_SRC, app="service.handler:app")

    properties = function_properties(Template.from_stack(scope))
    assert properties["Handler"] == "fastapi_lambda.entry.handler"
    assert properties["Environment"]["Variables"]["FASTAPI_LAMBDA_APP"] == "service.handler:app"


@pytest.mark.parametrize(("props", "message"), [
    ({"app": "orders.main:app"}, r"app='orders.main:app': module 'orders.main' is not in the code asset"),
    ({"handler": "orders.handler.handler"}, r"module 'orders.handler' is not in the code asset"),
    ({"app": "service.main"}, r"must look like 'package.module:attribute'"),
    ({"app": "service.main:app", "handler": "service.handler.handler"}, "are both set; pass one"),
    ({"timeout": Duration.seconds(3), "expected_duration": Duration.seconds(2)}, "are both set; pass one"),
    ({"timeout": Duration.seconds(40)}, r"timeout=40s is above the 29s the API gateway \(max_timeout\) allows"),
    ({"function_props": {"timeout": Duration.seconds(3)}}, r"function_props\['timeout'\] is set by the construct; "
                                                           r"use its timeout prop"),
    ({"function_props": {"timout": 3}}, r"function_props\['timout'\] is not a lambda Function prop"),
    ({"security_groups": []}, None),
])
def test_wrong_props_are_clear_errors_naming_the_prop(props, message):
    if message is None:  # an empty list is no security group at all: accepted
        FastApiFunction(stack(), "Api", **props)
        return
    with pytest.raises((ValueError, BundlingError), match=message):
        FastApiFunction(stack(), "Api", **props)


def test_a_consumer_source_needs_its_own_module(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi==0.163.2\n")

    with pytest.raises(BundlingError, match=r"handler='service.handler.handler' \(the default; pass "
                                            r"app='package.module:app' for your own app\)"):
        FastApiFunction(stack(), "Api", source=tmp_path)


def test_source_defaults_to_the_apps_own_lambda_src(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a consumer's project without lambda_src/: never this repository's lock

    with pytest.raises(BundlingError, match=r"source= was not given and .*lambda_src does not exist"):
        ServiceFunction(stack(), "Worker")


def test_a_shadowing_runtime_package_in_the_source_is_refused(tmp_path):
    (tmp_path / "requirements.txt").write_text("fastapi==0.163.2\n")
    (tmp_path / "fastapi_lambda").mkdir()

    with pytest.raises(BundlingError, match="has its own fastapi_lambda/ folder"):
        ServiceFunction(stack(), "Worker", source=tmp_path)


def test_overrides_reach_the_function():
    scope = stack()
    extra_layer = lambda_.LayerVersion.from_layer_version_arn(
        scope, "Extension", "arn:aws:lambda:us-east-1:123456789012:layer:extension:3")
    log_group = logs.LogGroup(scope, "TeamLogs")
    statement = iam.PolicyStatement(actions=["ssm:GetParameter"],
                                    resources=["arn:aws:ssm:us-east-1:123456789012:parameter/orders/*"])
    function = ServiceFunction(
        scope, "Worker", timeout=Duration.seconds(120), layers=[extra_layer], log_group=log_group,
        initial_policy=[statement], tracing=lambda_.Tracing.PASS_THROUGH, memory_size=512,
        function_props={"ephemeral_storage_size": None, "max_event_age": None, "dead_letter_queue_enabled": True},
    ).add_environment("ORDERS_TABLE", "orders")
    template = Template.from_stack(scope)

    properties = function_properties(template)
    assert properties["Timeout"] == 120 and properties["MemorySize"] == 512  # no gateway cap on a worker
    assert properties["Layers"][1] == "arn:aws:lambda:us-east-1:123456789012:layer:extension:3"
    assert properties["TracingConfig"] == {"Mode": "PassThrough"}
    assert properties["Environment"]["Variables"]["ORDERS_TABLE"] == "orders"
    assert properties["LoggingConfig"]["LogGroup"] == {"Ref": only(template, "AWS::Logs::LogGroup")[0]}
    assert "DeadLetterConfig" in properties
    assert function.tracing_policy is None
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": "ssm:GetParameter"})])}})
    assert "xray:" not in json.dumps(template.find_resources("AWS::IAM::Policy"))


def test_grantable_and_connectable_in_a_vpc():
    scope = stack()
    vpc = ec2.Vpc(scope, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    function = ServiceFunction(scope, "Worker", vpc=vpc)
    queue = sqs.Queue(scope, "Queue")
    queue.grant_send_messages(function)  # the construct itself is IGrantable
    cache = ec2.SecurityGroup(scope, "Cache", vpc=vpc)
    cache.connections.allow_from(function, ec2.Port.tcp(6379))  # and IConnectable
    template = Template.from_stack(scope)

    assert "SecurityGroupIds" in function_properties(template)["VpcConfig"]
    # Only the network-interface actions, in a policy of their own that exists before the function.
    assert "ManagedPolicyArns" not in only(template, "AWS::IAM::Role")[1]["Properties"]
    name, network = only(template, "AWS::IAM::Policy", "WorkerNetworkPolicy")
    (statement,) = network["Properties"]["PolicyDocument"]["Statement"]
    assert (set(statement["Action"]), statement["Resource"]) == (set(VPC_NETWORK_ACTIONS), "*")
    assert name in only(template, "AWS::Lambda::Function")[1]["DependsOn"]
    template.has_resource_properties("AWS::EC2::SecurityGroupIngress", {"FromPort": 6379, "ToPort": 6379})
    template.has_resource_properties("AWS::IAM::Policy", {"PolicyDocument": {"Statement": Match.array_with([
        Match.object_like({"Action": Match.array_with(["sqs:SendMessage"])})])}})


def test_connections_outside_a_vpc_is_a_clear_error():
    with pytest.raises(ValueError, match="is not in a VPC, so it has no connections; pass vpc="):
        _ = ServiceFunction(stack(), "Worker").connections


def test_all_four_metrics_name_the_alias():
    function = FastApiFunction(stack(), "Api")
    metrics = {"Errors": function.metric_errors(), "Throttles": function.metric_throttles(),
               "Duration": function.metric_duration(), "Invocations": function.metric_invocations()}

    for name, metric in metrics.items():
        assert metric.metric_name == name and metric.namespace == "AWS/Lambda"
        assert set(metric.dimensions or {}) == {"FunctionName", "Resource"}


# --- findings about the user's own additions stay visible ----------------------------------

def validation_failure(scope: Stack, outdir) -> str:
    add_compliance_checks(app_of(scope))
    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app_of(scope).synth()
    return (outdir / "validation-report.json").read_text()


def test_a_users_wildcard_grant_is_still_reported(tmp_path):
    scope = stack("Grants", outdir=tmp_path)
    function = FastApiFunction(scope, "Api")
    function.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=["*"]))

    report = validation_failure(scope, tmp_path)

    assert "AwsSolutions-IAM5[Resource::*]" in report and "Grants/Api/Role/DefaultPolicy/Resource" in report
    assert "TracingPolicy" not in report  # X-Ray's own '*' stays acknowledged


def test_a_users_wildcard_grant_in_a_vpc_is_still_reported(tmp_path):
    # The network policy's '*' is acknowledged on that policy alone, never on the role or its default policy.
    scope = stack("VpcGrants", outdir=tmp_path)
    vpc = ec2.Vpc(scope, "Vpc", max_azs=2, nat_gateways=0, restrict_default_security_group=False,
                  subnet_configuration=[ec2.SubnetConfiguration(name="private",
                                                                subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    function = ServiceFunction(scope, "Worker", vpc=vpc)
    function.add_to_role_policy(iam.PolicyStatement(actions=["ec2:DescribeInstances"], resources=["*"]))

    report = validation_failure(scope, tmp_path)

    assert "AwsSolutions-IAM5[Resource::*]" in report and "VpcGrants/Worker/Role/DefaultPolicy/Resource" in report
    assert "NetworkPolicy" not in report


def test_without_the_users_grant_the_function_is_clean(tmp_path):
    scope = stack("Clean", outdir=tmp_path)
    FastApiFunction(scope, "Api")
    add_compliance_checks(app_of(scope))

    app_of(scope).synth()  # raises on any finding


def test_a_function_in_a_vpc_adds_no_finding_of_its_own(tmp_path):
    scope = stack("InVpc", outdir=tmp_path)
    vpc = ec2.Vpc(scope, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    ServiceFunction(scope, "Worker", vpc=vpc)
    add_compliance_checks(app_of(scope))
    try:
        app_of(scope).synth()
    except RuntimeError:  # the bare test VPC has findings of its own (no flow logs): not ours to hide
        pass
    report = json.loads((tmp_path / "validation-report.json").read_text())
    paths = [c["constructPath"] for r in report["pluginReports"] for v in r.get("violations", [])
             for c in v["violatingConstructs"]]

    assert not [p for p in paths if p.startswith("InVpc/Worker")], paths
