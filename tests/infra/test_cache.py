"""The cache and its network: serverless (staging), node-based (prod), none (dev), and standalone."""

from __future__ import annotations

import json
import re
from typing import cast

import pytest
from aws_cdk import App, Duration, Environment, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sns as sns
from aws_cdk.assertions import Template
from fastapi_lambda.constants import (
    CACHE_HOST_VARIABLE,
    CACHE_MODE_VARIABLE,
    CACHE_SECRET_VARIABLE,
)

from cdk_app.cache import ValkeyCache
from cdk_app.compliance import add_compliance_checks
from cdk_app.function import ServiceFunction
from cdk_app.network import Network, services_called
from cdk_app.parameters import AppParameters
from cdk_app.settings import ConfigError, load_settings
from cdk_app.settings.rules import RuleError
from cdk_app.stack import build_stacks
from tests.infra.conftest import API, SKIP_BUNDLING, app_of, make_app, only, template_of

FUNCTIONS = (API, "TasksWorker")


def settings(env_name: str, context=None):
    from cdk_app.settings import read_cdk_json_context

    return load_settings(context or read_cdk_json_context()).environments[env_name]


def functions(template: Template) -> dict[str, dict]:
    """The service's functions (not CDK's own helpers), by logical id prefix."""
    found = template.find_resources("AWS::Lambda::Function")
    return {prefix: next(v["Properties"] for k, v in found.items() if k.startswith(prefix)) for prefix in FUNCTIONS}


def endpoint_services(template: Template) -> dict[str, str]:
    """Each VPC endpoint's service (``sqs``, ``s3``...) and type."""
    return {e["Properties"]["ServiceName"]["Fn::Join"][1][-1].lstrip("."): e["Properties"]["VpcEndpointType"]
            for e in template.find_resources("AWS::EC2::VPCEndpoint").values()}


def expected_endpoints(env_name: str) -> dict[str, str]:
    """What each environment's functions call, from its settings: the endpoints it must have."""
    s = settings(env_name)
    wanted = {"xray": "Interface", "ssm": "Interface"}  # active tracing, and the config path, on every function
    if s.tasks.enabled:
        wanted |= {"sqs": "Interface", "dynamodb": "Gateway"}
    if s.tasks.files.enabled:
        wanted["s3"] = "Gateway"
    if s.cache.kind == "node-based" or s.config.secrets:
        wanted["secretsmanager"] = "Interface"
    if s.cold_start.warmup and s.cold_start.warmup.concurrency > 1:
        wanted["lambda"] = "Interface"
    return wanted


# --- per environment ----------------------------------------------------------------------------

def test_cdk_json_exercises_every_kind():
    assert {name: settings(name).cache.kind for name in ("dev", "staging", "prod")} == {
        "dev": "none", "staging": "serverless", "prod": "node-based"}


def test_no_cache_means_no_network_at_all(synth):
    template = synth.templates["dev"]

    assert not [t for t in json.dumps(template.to_json()).split('"') if t.startswith(("AWS::EC2::", "AWS::ElastiCache"))]
    for properties in functions(template).values():
        assert "VpcConfig" not in properties and CACHE_HOST_VARIABLE not in properties["Environment"]["Variables"]


@pytest.mark.parametrize("env_name", ["staging", "prod"])
def test_functions_join_the_network_and_reach_exactly_what_they_call(synth, env_name):
    template = synth.templates[env_name]
    group = {"Fn::GetAtt": [only(template, "AWS::EC2::SecurityGroup", "NetworkFunctions")[0], "GroupId"]}
    function_subnets = sorted(k for k in template.find_resources("AWS::EC2::Subnet") if "FunctionsSubnet" in k)

    for properties in functions(template).values():
        assert properties["VpcConfig"]["SecurityGroupIds"] == [group]
        assert sorted(s["Ref"] for s in properties["VpcConfig"]["SubnetIds"]) == function_subnets
    assert endpoint_services(template) == expected_endpoints(env_name)
    template.resource_count_is("AWS::EC2::NatGateway", 0)
    template.resource_count_is("AWS::EC2::InternetGateway", 0)
    only(template, "AWS::EC2::FlowLog")
    template.resource_count_is("AWS::EC2::Subnet", 2 * settings(env_name).network.az_count)


@pytest.mark.parametrize("env_name", ["staging", "prod"])
def test_the_cache_admits_only_the_functions_on_its_port(synth, env_name):
    template = synth.templates[env_name]
    cache_group = only(template, "AWS::EC2::SecurityGroup", "CacheSecurityGroup")
    functions_group = only(template, "AWS::EC2::SecurityGroup", "NetworkFunctions")[0]
    ingress = [r["Properties"] for r in template.find_resources("AWS::EC2::SecurityGroupIngress").values()
               if r["Properties"]["GroupId"] == {"Fn::GetAtt": [cache_group[0], "GroupId"]}]

    assert [(r["SourceSecurityGroupId"], r["FromPort"], r["ToPort"], r["IpProtocol"]) for r in ingress] == [
        ({"Fn::GetAtt": [functions_group, "GroupId"]}, settings(env_name).cache.port, settings(env_name).cache.port,
         "tcp")]
    assert "SecurityGroupIngress" not in cache_group[1]["Properties"]  # no inline (CIDR) rules either
    # No way out: CDK's placeholder rule that matches no traffic.
    assert cache_group[1]["Properties"]["SecurityGroupEgress"] == [{
        "CidrIp": "255.255.255.255/32", "Description": "Disallow all traffic", "FromPort": 252, "IpProtocol": "icmp",
        "ToPort": 86}]
    for ingress in template.find_resources("AWS::EC2::SecurityGroupIngress").values():
        assert "CidrIp" not in ingress["Properties"]  # endpoints, too, admit the functions' group only


def test_serverless_valkey_in_the_isolated_cache_subnets_with_its_limits(synth):
    template = synth.templates["staging"]
    cache = only(template, "AWS::ElastiCache::ServerlessCache")[1]["Properties"]
    limits = settings("staging").cache

    assert (cache["Engine"], cache["MajorEngineVersion"]) == ("valkey", "8")
    assert cache["CacheUsageLimits"] == {"DataStorage": {"Maximum": limits.max_data_storage_gb, "Unit": "GB"},
                                         "ECPUPerSecond": {"Maximum": limits.max_ecpu_per_second}}
    assert sorted(s["Ref"] for s in cache["SubnetIds"]) == sorted(
        k for k in template.find_resources("AWS::EC2::Subnet") if "CacheSubnet" in k)
    assert re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", cache["ServerlessCacheName"])
    assert len(cache["ServerlessCacheName"]) <= 40
    for properties in functions(template).values():  # serverless: the cluster protocol, no token
        assert properties["Environment"]["Variables"][CACHE_MODE_VARIABLE] == "cluster"
        assert CACHE_SECRET_VARIABLE not in properties["Environment"]["Variables"]


def test_replication_group_encrypts_fails_over_and_takes_its_token_by_reference(synth):
    template = synth.templates["prod"]
    group = only(template, "AWS::ElastiCache::ReplicationGroup")[1]["Properties"]
    secret_id = only(template, "AWS::SecretsManager::Secret", "CacheAuthToken")[0]
    c = settings("prod").cache

    assert group["TransitEncryptionEnabled"] is True and group["TransitEncryptionMode"] == "required"
    assert group["AtRestEncryptionEnabled"] is True
    assert (group["Engine"], group["CacheNodeType"], group["NumCacheClusters"]) == ("valkey", c.node_type, 1 + c.replicas)
    assert group["MultiAZEnabled"] is True and group["AutomaticFailoverEnabled"] is True
    assert (group["SnapshotRetentionLimit"], group["SnapshotWindow"], group["PreferredMaintenanceWindow"]) == (
        7, "03:00-04:00", "sun:05:00-sun:06:00")
    assert group["AuthToken"] == {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id},
                                                    ":SecretString:::}}"]]}
    for prefix, properties in functions(template).items():
        assert properties["Environment"]["Variables"][CACHE_SECRET_VARIABLE] == {"Ref": secret_id}
        statements = only(template, "AWS::IAM::Policy", f"{prefix}RoleDefaultPolicy")[1]["Properties"][
            "PolicyDocument"]["Statement"]
        assert {"Action": ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"], "Effect": "Allow",
                "Resource": {"Ref": secret_id}} in statements


def test_no_token_in_plain_text_in_any_template(synth):
    for name, template in synth.templates.items():
        text = json.dumps(template.to_json())
        for match in re.finditer(r'"(AuthToken|Password|AuthenticationMode|Passwords)": ', text):
            value = text[match.end():match.end() + 200]
            assert value.startswith('{"Fn::Join": ["", ["{{resolve:secretsmanager:'), (name, value)
        for resource in template.find_resources("AWS::SecretsManager::Secret").values():
            assert "SecretString" not in resource["Properties"]  # generated by Secrets Manager, never in the template


# --- other settings, one synth each -------------------------------------------------------------

def synth_dev(context, **cache_and_network) -> Template:
    context["environments"]["dev"].update(cache_and_network)
    return template_of(build_stacks(make_app({**context, "env": "dev"}))["dev"])


def test_nat_egress_routes_interface_services_and_keeps_the_free_gateways(context):
    context["environments"]["dev"]["cold_start"]["warmup"]["concurrency"] = 3
    template = synth_dev(context, cache={"kind": "serverless"},
                         network={"egress": "nat", "az_count": 3, "nat_gateways": 2})

    assert endpoint_services(template) == {"dynamodb": "Gateway", "s3": "Gateway"}
    template.resource_count_is("AWS::EC2::NatGateway", 2)
    template.resource_count_is("AWS::EC2::Subnet", 9)  # public, functions (with egress), cache: in 3 zones


def test_warmup_fan_out_from_inside_the_network_gets_its_lambda_endpoint(context):
    context["environments"]["dev"]["cold_start"]["warmup"]["concurrency"] = 3
    template = synth_dev(context, cache={"kind": "node-based", "replicas": 0, "multi_az": False, "port": 6380},
                         network={"availability_zones": ["eu-west-1a"], "flow_logs": False})

    assert endpoint_services(template)["lambda"] == "Interface"
    assert {s["Properties"]["AvailabilityZone"] for s in template.find_resources("AWS::EC2::Subnet").values()} == {
        "eu-west-1a"}
    group = only(template, "AWS::ElastiCache::ReplicationGroup")[1]["Properties"]
    assert (group["NumCacheClusters"], group["AutomaticFailoverEnabled"], group["Port"]) == (1, False, 6380)
    template.resource_count_is("AWS::EC2::FlowLog", 0)


def test_a_fixed_account_and_region_still_synthesizes_offline(context, tmp_path):
    context["environments"]["prod"].update(account="123456789012", region="eu-west-1")
    app = make_app({**context, "env": "prod"}, outdir=tmp_path)
    build_stacks(app)
    app.synth()

    assert "missing" not in json.loads((tmp_path / "manifest.json").read_text())  # no lookup (zones) was needed


@pytest.mark.parametrize(("cache", "network", "message"), [
    ({"kind": "node-based", "replicas": 0}, {},
     "environments.prod: cache.multi_az=true needs cache.replicas of 1 or more"),
    ({"kind": "node-based"}, {"az_count": 1},
     "cache.multi_az=true needs 2 or more zones, but network.az_count (or network.availability_zones) gives 1"),
    ({"kind": "serverless", "port": 6380}, {}, "cache.port=6380 cannot be set for cache.kind 'serverless'"),
    ({"kind": "serverless"}, {"egress": "nat", "nat_gateways": 3},
     "network.nat_gateways=3 is more than network.az_count (or network.availability_zones) (2)"),
    ({"kind": "memcached"}, {}, 'cache.kind: "memcached" is not allowed (allowed: "none", "serverless", "node-based")'),
    ({"kind": "cluster"}, {}, "cache.kind: \"cluster\" is not allowed: 'cluster' is now called 'node-based'"),
])
def test_cache_settings_that_cannot_work_are_refused(context, cache, network, message):
    context["environments"]["prod"].update(cache=cache, network=network)

    with pytest.raises(ConfigError) as caught:
        load_settings(context)
    assert message in str(caught.value)


# --- the constructs on their own ----------------------------------------------------------------

def new_stack(outdir=None, env=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(outdir) if outdir else None)
    return Stack(app, "Lib", env=env)


def test_with_no_props_it_builds_its_network_and_passes_cdk_nag(tmp_path):
    stack = new_stack(tmp_path)
    cache = ValkeyCache(stack, "Cache")
    assert cache.network is not None
    function = ServiceFunction(stack, "Fn", **cache.network.placement())
    cache.grant_connect(function)
    cache.network.add_endpoints_for(function)
    add_compliance_checks(app_of(stack))

    app_of(stack).synth()  # raises on any cdk-nag finding
    assert cache.kind == "serverless" and cache.mode == "cluster"
    assert set(endpoint_services(Template.from_stack(stack))) == {"xray"}


def test_secure_parameters_need_an_ssm_endpoint_but_no_kms_one():
    # SSM decrypts the SecureString for the function (kms:ViaService): the function never calls KMS itself.
    stack = new_stack()
    network = Network(stack, "Network")
    function = ServiceFunction(stack, "Fn", **network.placement())
    AppParameters(stack, "Config", path="/orders/prod/", secure_parameters={"db": "/orders/prod/db"}).grant_read(function)
    network.add_endpoints_for(function)

    assert set(endpoint_services(Template.from_stack(stack))) == {"ssm", "xray"}


def test_a_node_based_cache_with_a_brought_vpc(tmp_path):
    stack = new_stack(tmp_path)
    vpc = ec2.Vpc(stack, "Mine", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="data", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    cache = ValkeyCache(stack, "Cache", kind="node-based", vpc=vpc)
    worker = ServiceFunction(stack, "Worker", vpc=vpc)
    grant = cache.grant_connect(worker)
    cache.configure(worker)
    template = Template.from_stack(stack)

    assert isinstance(grant, iam.Grant) and "secretsmanager:GetSecretValue" in str(
        [s.to_statement_json() for s in grant.principal_statements])
    variables = only(template, "AWS::Lambda::Function", "Worker")[1]["Properties"]["Environment"]["Variables"]
    assert variables[CACHE_MODE_VARIABLE] == cache.mode == "standalone"  # a replication group: no cluster protocol
    assert cache.network is None and cache.secret is not None
    template.resource_count_is("AWS::EC2::VPC", 1)
    assert cache.metric_errors().metric_name == "CacheErrors"
    with pytest.raises(ValueError, match="is not in a VPC, so it cannot reach the cache"):
        cache.grant_connect(ServiceFunction(stack, "Outside"))


def test_the_construct_applies_the_same_rules():
    with pytest.raises(RuleError, match=r"multi_az=true needs replicas of 1 or more"):
        ValkeyCache(new_stack(), "Cache", kind="node-based", replicas=0)
    with pytest.raises(RuleError, match=r"port=6380 cannot be set for kind 'serverless'"):
        ValkeyCache(new_stack(), "Cache", port=6380)
    with pytest.raises(ValueError, match="serverless and has no AUTH token secret"):
        ValkeyCache(new_stack(), "Cache").grant_read(iam.AccountRootPrincipal())


def test_a_call_without_its_endpoint_fails_synth_naming_it():
    stack = new_stack()
    network = Network(stack, "Network")
    function = ServiceFunction(stack, "Api", **network.placement())
    network.add_endpoints_for(function)
    sns.Topic(stack, "Alerts").grant_publish(function)  # granted after the endpoints were added

    with pytest.raises(RuntimeError, match=r"Lib/Api may call sns \(sns:Publish\) but Lib/Network has no sns "
                                           r"endpoint and no NAT gateway"):
        app_of(stack).synth()


def test_behind_a_nat_every_call_is_reachable():
    stack = new_stack(env=Environment(account="123456789012", region="eu-west-1"))
    network = Network(stack, "Network", egress="nat", availability_zones=["eu-west-1a", "eu-west-1b"])
    function = ServiceFunction(stack, "Api", expected_duration=Duration.seconds(2), **network.placement())
    sns.Topic(stack, "Alerts").grant_publish(function)

    app_of(stack).synth()  # placed in the network but never given to add_endpoints_for: still checked, and fine
    assert network.functions() == [function] and network.unreachable(function) == []


def test_inline_policies_of_a_role_brought_by_the_user_count_as_calls():
    stack = new_stack()
    network = Network(stack, "Network")
    # cast: jsii names some implementing methods' parameters differently (_statement, identity), so pyright does not
    # match ServicePrincipal and Role to the IPrincipal and IRole protocols they implement.
    role = iam.Role(stack, "Mine", assumed_by=cast(iam.IPrincipal, iam.ServicePrincipal("lambda.amazonaws.com")),
                    inline_policies={"send": iam.PolicyDocument(statements=[
                        iam.PolicyStatement(actions=["sqs:SendMessage"], resources=["*"])])})
    function = ServiceFunction(stack, "Fn", role=cast(iam.IRole, role), **network.placement())

    assert services_called(function)["sqs"] == ["sqs:SendMessage"]
    network.add_endpoints_for(function)
    assert "sqs" in network.interface_endpoints
