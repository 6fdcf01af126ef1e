"""The deploy preflight: every rule refuses a small stack that breaks it; our stacks and a consumer's pass.

Each case builds the few CloudFormation resources that break one rule (L1, so the case is
exactly what AWS would receive) in an app of its own, synthesizes it with the preflight as
its only plugin (no bundling, no built-in validation: a few tens of milliseconds each) and
reads the validation report: the rule must name the case's resource, and an error must fail
synth while a warning must not.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest
from aws_cdk import Acknowledgment, App, CfnResource, Duration, Fn, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs

from cdk_app import FastApiFunction, FastApiGateway
from cdk_app.compliance import add_compliance_checks
from cdk_app.preflight import RULES, Preflight, check_template
from cdk_app.preflight.engine import STACK, literal_text, shape
from cdk_app.settings.limits import NAME_PROPERTIES, region_problem
from tests.infra.conftest import ENVIRONMENTS, SKIP_BUNDLING
from tests.infra.edge_preflight import PREFLIGHT_CASES as EDGE_PREFLIGHT_CASES
from tests.infra.l1 import cfn, function, http_api, rest_api, route

LAMBDA_SRC = Path(__file__).resolve().parents[2] / "lambda_src"


@dataclass
class Report:
    failed: bool
    violations: list[dict]  # {"rule", "path", "description", "severity"}
    built: object = None  # what the case's build returned (the id of the resource it breaks a rule with)

    def of(self, rule_id: str) -> list[dict]:
        return [v for v in self.violations if v["rule"] == rule_id]


def run_preflight(build: Callable[[Stack], object], outdir: Path, **stack_props) -> Report:
    """Synthesize one stack built by ``build`` with the preflight; what it reported and whether synth failed."""
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(outdir))
    built = build(Stack(app, "Case", **stack_props))
    Validations.of(app).add_plugins(Preflight())
    try:
        app.synth()
        failed = False
    except RuntimeError as error:
        assert "Validation" in str(error), error
        failed = True
    report = json.loads((outdir / "validation-report.json").read_text())
    violations = [{"rule": v["ruleName"].removeprefix("Preflight::"), "severity": v.get("severity"),
                   "description": v["description"],
                   "path": ",".join(c.get("constructPath", "").removesuffix("/Resource")
                                    for c in v.get("violatingConstructs", []))}
                  for plugin in report["pluginReports"] if plugin["pluginName"] == "Preflight"
                  for v in plugin["violations"]]
    return Report(failed, violations, built)


# --- one violating case per rule: build(stack) -> the construct id that must be named ----------

def alias(stack: Stack, fn: CfnResource, id: str = "Alias", **props) -> CfnResource:
    version = cfn(stack, f"{id}Version", "AWS::Lambda::Version", FunctionName=fn.ref)
    return cfn(stack, id, "AWS::Lambda::Alias", FunctionName=fn.ref, FunctionVersion=version.get_att("Version"),
               Name="live", **props)


def method(stack: Stack, api: CfnResource, id: str = "Method", **props) -> CfnResource:
    return cfn(stack, id, "AWS::ApiGateway::Method", RestApiId=api.ref, ResourceId=api.get_att("RootResourceId"),
               HttpMethod="GET", **{"AuthorizationType": "NONE", "Integration": {"Type": "MOCK"}, **props})


def rest_stage(stack: Stack, **props) -> CfnResource:
    api = rest_api(stack)
    get = method(stack, api)
    deployment = cfn(stack, "Deployment", "AWS::ApiGateway::Deployment", RestApiId=api.ref)
    deployment.node.add_dependency(get)
    return cfn(stack, "Stage", "AWS::ApiGateway::Stage", RestApiId=api.ref, DeploymentId=deployment.ref,
               StageName="api", **props)


def queue(stack: Stack, id: str = "Queue", **props) -> CfnResource:
    return cfn(stack, id, "AWS::SQS::Queue", **props)


def pool(stack: Stack, **props) -> CfnResource:
    return cfn(stack, "Pool", "AWS::Cognito::UserPool", **props)


def client(stack: Stack, user_pool: CfnResource, id: str = "Client", **props) -> CfnResource:
    return cfn(stack, id, "AWS::Cognito::UserPoolClient", UserPoolId=user_pool.ref, **props)


def alarm(stack: Stack, id: str = "Alarm", **props) -> CfnResource:
    return cfn(stack, id, "AWS::CloudWatch::Alarm", **{
        "MetricName": "Errors", "Namespace": "AWS/Lambda", "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1,
        "Threshold": 1, "ComparisonOperator": "GreaterThanThreshold", **props})


def topic_alarmed(stack: Stack, **topic_props) -> CfnResource:
    topic = cfn(stack, "Topic", "AWS::SNS::Topic", **topic_props)
    alarm(stack, AlarmActions=[topic.ref])
    return topic


def scaling_target(stack: Stack, **props) -> CfnResource:
    return cfn(stack, "Target", "AWS::ApplicationAutoScaling::ScalableTarget", **{
        "ServiceNamespace": "lambda", "ScalableDimension": "lambda:function:ProvisionedConcurrency",
        "ResourceId": "function:orders:live", "MinCapacity": 1, "MaxCapacity": 2, **props})


def vpc(stack: Stack, **props) -> CfnResource:
    return cfn(stack, "Vpc", "AWS::EC2::VPC", CidrBlock="10.0.0.0/16", **props)


def endpoint(stack: Stack, network: CfnResource, id: str = "Endpoint", **props) -> CfnResource:
    return cfn(stack, id, "AWS::EC2::VPCEndpoint", VpcId=network.ref, **{
        "ServiceName": "com.amazonaws.eu-west-1.sqs", "VpcEndpointType": "Interface", **props})


def notifications(stack: Stack, **configuration) -> CfnResource:
    bucket = cfn(stack, "Bucket", "AWS::S3::Bucket")
    bucket.apply_removal_policy(RemovalPolicy.RETAIN)
    return cfn(stack, "Notifications", "Custom::S3BucketNotifications", ServiceToken="arn:aws:lambda:x",
               BucketName=bucket.ref, NotificationConfiguration=configuration)


def _duplicate_route(stack: Stack) -> str:
    api = http_api(stack)
    route(stack, api, "First", "GET /x")
    route(stack, api, "Second", "GET /x")
    return "Second"


def _stage_route_settings(stack: Stack) -> str:
    api = http_api(stack)
    route(stack, api, "Orders", "POST /orders")
    cfn(stack, "Stage", "AWS::ApiGatewayV2::Stage", ApiId=api.ref, StageName="$default",
        RouteSettings={"POST /orders": {"ThrottlingRateLimit": 5}})
    return "Stage"


def _deployment(stack: Stack) -> str:
    api = rest_api(stack)
    method(stack, api)
    cfn(stack, "Deployment", "AWS::ApiGateway::Deployment", RestApiId=api.ref)
    return "Deployment"


def _account_order(stack: Stack) -> str:
    cfn(stack, "Account", "AWS::ApiGateway::Account", CloudWatchRoleArn="arn:aws:iam::123456789012:role/apigw")
    rest_stage(stack, MethodSettings=[{"HttpMethod": "*", "ResourcePath": "/*", "LoggingLevel": "ERROR"}])
    return "Stage"


def _alias_order(stack: Stack) -> str:
    fn = function(stack)
    alias(stack, fn)
    cfn(stack, "AsyncConfig", "AWS::Lambda::EventInvokeConfig", FunctionName=fn.ref, Qualifier="live",
        MaximumRetryAttempts=0)
    return "AsyncConfig"


def _alias_version(stack: Stack) -> str:
    fn, other = function(stack), function(stack, "Other")
    version = cfn(stack, "OtherVersion", "AWS::Lambda::Version", FunctionName=other.ref)
    cfn(stack, "Alias", "AWS::Lambda::Alias", FunctionName=fn.ref, FunctionVersion=version.get_att("Version"),
        Name="live")
    return "Alias"


def _sqs_mapping(stack: Stack, queue_props: dict | None = None, **mapping) -> str:
    fn = function(stack, Timeout=60)
    source = queue(stack, **(queue_props or {"VisibilityTimeout": 360}))
    cfn(stack, "Mapping", "AWS::Lambda::EventSourceMapping", FunctionName=fn.ref,
        EventSourceArn=source.get_att("Arn"), **mapping)
    return "Mapping"


def _subscription_dlq(stack: Stack) -> str:
    topic = cfn(stack, "Topic", "AWS::SNS::Topic")
    dead = queue(stack, "Dead")
    cfn(stack, "Subscription", "AWS::SNS::Subscription", TopicArn=topic.ref, Protocol="email",
        Endpoint="ops@example.com", RedrivePolicy={"deadLetterTargetArn": dead.get_att("Arn")})
    return "Subscription"


def _client_scopes(stack: Stack) -> str:
    user_pool = pool(stack)
    server = cfn(stack, "Server", "AWS::Cognito::UserPoolResourceServer", UserPoolId=user_pool.ref, Identifier="api",
                 Name="api", Scopes=[{"ScopeName": "read", "ScopeDescription": "read"}])
    client(stack, user_pool, AllowedOAuthScopes=[Fn.join("", [server.ref, "/write"])])
    return "Client"


def _waf_order(stack: Stack) -> str:
    api = rest_api(stack)
    method(stack, api)
    stage = cfn(stack, "Stage", "AWS::ApiGateway::Stage", RestApiId=api.ref, StageName="api", DeploymentId="d")
    acl = cfn(stack, "Acl", "AWS::WAFv2::WebACL", Scope="REGIONAL", DefaultAction={"Allow": {}},
              VisibilityConfig={"MetricName": "acl", "CloudWatchMetricsEnabled": True,
                                "SampledRequestsEnabled": True})
    cfn(stack, "Association", "AWS::WAFv2::WebACLAssociation", WebACLArn=acl.get_att("Arn"),
        ResourceArn=Fn.join("", ["arn:aws:apigateway:eu-west-1::/restapis/", api.ref, "/stages/api"]))
    assert stage.logical_id  # the stage exists, yet nothing orders the association after it
    return "Association"


def _notification_destination(stack: Stack) -> str:
    target = queue(stack)
    notifications(stack, QueueConfigurations=[{"Events": ["s3:ObjectCreated:*"], "QueueArn": target.get_att("Arn")}])
    return "Notifications"


def _snapstart_provisioned(stack: Stack) -> str:
    fn = function(stack, SnapStart={"ApplyOn": "PublishedVersions"})
    alias(stack, fn, ProvisionedConcurrencyConfig={"ProvisionedConcurrentExecutions": 2})
    return "Fn"


def _provisioned_reserved(stack: Stack) -> str:
    fn = function(stack, ReservedConcurrentExecutions=1)
    alias(stack, fn, ProvisionedConcurrencyConfig={"ProvisionedConcurrentExecutions": 2})
    return "Fn"


def _duplicate_dns(stack: Stack) -> str:
    network = vpc(stack, EnableDnsSupport=True, EnableDnsHostnames=True)
    endpoint(stack, network, "First", PrivateDnsEnabled=True)
    endpoint(stack, network, "Second", PrivateDnsEnabled=True)
    return "Second"


def _endpoint_subnets(stack: Stack) -> str:
    network = vpc(stack)
    zone = {"Fn::Select": [0, {"Fn::GetAZs": ""}]}
    subnets = [cfn(stack, f"Subnet{i}", "AWS::EC2::Subnet", VpcId=network.ref, CidrBlock=f"10.0.{i}.0/24",
                   AvailabilityZone=zone) for i in (1, 2)]
    endpoint(stack, network, SubnetIds=[s.ref for s in subnets])
    return "Endpoint"


def _dashboard(stack: Stack) -> str:
    body = {"widgets": [{"type": "text", "width": 30, "height": 2, "properties": {"markdown": "x"}}]}
    cfn(stack, "Dashboard", "AWS::CloudWatch::Dashboard", DashboardBody=json.dumps(body))
    return "Dashboard"


def _with_key(stack: Stack) -> str:
    key = cfn(stack, "Key", "AWS::KMS::Key", KeyPolicy={"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*",
         "Resource": "*"}]})
    topic_alarmed(stack, KmsMasterKeyId=key.get_att("Arn"))
    return "Topic"



def _hooked_alias(stack: Stack, *, hook_statements: list | None = None, group_statements: list | None = None,
                  **alias_props) -> str:
    """A function whose alias CodeDeploy releases, with a pre-traffic hook; its roles get only the statements given."""
    def role(id: str, principal: str, statements: list | None) -> CfnResource:
        made = cfn(stack, id, "AWS::IAM::Role", AssumeRolePolicyDocument={"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": principal}, "Action": "sts:AssumeRole"}]})
        if statements:
            cfn(stack, f"{id}Policy", "AWS::IAM::Policy", PolicyName=f"{id}Policy", Roles=[made.ref],
                PolicyDocument={"Version": "2012-10-17", "Statement": statements})
        return made

    hook = function(stack, "Hook", Role=role("HookRole", "lambda.amazonaws.com", hook_statements).get_att("Arn"))
    group = cfn(stack, "Group", "AWS::CodeDeploy::DeploymentGroup", ApplicationName="app",
                ServiceRoleArn=role("GroupRole", "codedeploy.amazonaws.com", group_statements).get_att("Arn"))
    released = alias(stack, function(stack), **alias_props)
    released.add_override("UpdatePolicy", {"CodeDeployLambdaAliasUpdate": {
        "ApplicationName": "app", "DeploymentGroupName": group.ref, "BeforeAllowTrafficHook": hook.ref}})
    return "Alias"


_REPORTS = [{"Effect": "Allow", "Action": "codedeploy:PutLifecycleEventHookExecutionStatus", "Resource": "*"}]


def _scaled_release(stack: Stack) -> str:
    _hooked_alias(stack, hook_statements=_REPORTS, group_statements=[
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}],
        ProvisionedConcurrencyConfig={"ProvisionedConcurrentExecutions": 2})
    scaling_target(stack, ResourceId=Fn.join("", ["function:", Fn.ref("Fn"), ":live"]))
    return "Alias"

CASES: dict[str, Callable[[Stack], str]] = {
    "APIGW-SCOPES-NEED-TOKEN": lambda s: route(s, http_api(s), "Open", "GET /health", AuthorizationType="NONE",
                                               AuthorizationScopes=["openid"]) and "Open",
    "APIGW-AUTHORIZER-ID": lambda s: route(s, http_api(s), "Jwt", "GET /me", AuthorizationType="JWT") and "Jwt",
    "HTTPAPI-ROUTE-KEY": lambda s: route(s, http_api(s), "Bad", "get /orders/") and "Bad",
    "HTTPAPI-ROUTE-DUPLICATE": _duplicate_route,
    "HTTPAPI-STAGE-ROUTE-SETTINGS": _stage_route_settings,
    "APIGW-ACCESS-LOG-FORMAT": lambda s: cfn(s, "Stage", "AWS::ApiGatewayV2::Stage", ApiId="a", StageName="s",
                                             AccessLogSettings={"DestinationArn": "arn:aws:logs:x",
                                                                "Format": '{"ip": "$context.identity.sourceIp"}'}
                                             ) and "Stage",
    "RESTAPI-LOGGING-ROLE": lambda s: rest_stage(s, AccessLogSetting={"DestinationArn": "arn:aws:logs:x",
                                                                      "Format": "$context.requestId"}) and "Stage",
    "RESTAPI-ACCOUNT-ORDER": _account_order,
    "RESTAPI-DEPLOYMENT-METHODS": _deployment,
    "RESTAPI-LAMBDA-POST": lambda s: method(s, rest_api(s), Integration={
        "Type": "AWS_PROXY", "IntegrationHttpMethod": "GET",
        "Uri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:x/invocations"}
    ) and "Method",
    "HTTPAPI-INTEGRATION": lambda s: cfn(s, "Integration", "AWS::ApiGatewayV2::Integration", ApiId="a",
                                         IntegrationType="AWS_PROXY", IntegrationUri="arn:aws:lambda:x",
                                         TimeoutInMillis=60000, PayloadFormatVersion="2.0") and "Integration",
    "HTTPAPI-CORS": lambda s: cfn(s, "Api", "AWS::ApiGatewayV2::Api", Name="a", ProtocolType="HTTP",
                                  CorsConfiguration={"AllowOrigins": ["*"], "AllowCredentials": True}) and "Api",
    "HTTPAPI-JWT-AUTHORIZER": lambda s: cfn(s, "Authorizer", "AWS::ApiGatewayV2::Authorizer", ApiId="a", Name="j",
                                            AuthorizerType="JWT", IdentitySource=["$request.header.Authorization"],
                                            JwtConfiguration={"Issuer": "http://issuer", "Audience": ["c"]}
                                            ) and "Authorizer",
    "RESTAPI-AUTHORIZER": lambda s: cfn(s, "Authorizer", "AWS::ApiGateway::Authorizer", RestApiId="r", Name="c",
                                        Type="COGNITO_USER_POOLS", IdentitySource="method.request.header.Authorization"
                                        ) and "Authorizer",
    "APIGW-THROTTLE-QUOTA": lambda s: cfn(s, "Stage", "AWS::ApiGatewayV2::Stage", ApiId="a", StageName="s",
                                          DefaultRouteSettings={"ThrottlingRateLimit": 20000}) and "Stage",
    "APIGW-THROTTLE-ZERO": lambda s: cfn(s, "Stage", "AWS::ApiGatewayV2::Stage", ApiId="a", StageName="s",
                                         RouteSettings={"POST /orders": {"ThrottlingRateLimit": 0,
                                                                         "ThrottlingBurstLimit": 10}}) and "Stage",
    "RESTAPI-METHOD-LOGGING-LEVEL": lambda s: rest_stage(s, MethodSettings=[
        {"HttpMethod": "*", "ResourcePath": "/*", "LoggingLevel": "DEBUG"}]) and "Stage",
    "RESTAPI-COMPRESSION-SIZE": lambda s: rest_api(s, MinimumCompressionSize=10_485_761) and "Rest",
    "HTTPAPI-STAGE-EXECUTION-LOGS": lambda s: cfn(s, "Stage", "AWS::ApiGatewayV2::Stage", ApiId=http_api(s).ref,
                                                  StageName="$default", DefaultRouteSettings={
                                                      "LoggingLevel": "ERROR", "ThrottlingRateLimit": 20,
                                                      "ThrottlingBurstLimit": 40}) and "Stage",
    "LAMBDA-RESERVED-VARIABLE": lambda s: function(s, Environment={"Variables": {"AWS_REGION": "eu-west-1"}})
    and "Fn",
    "LAMBDA-VARIABLE-NAMES": lambda s: function(s, Environment={"Variables": {"my-setting": "1"}}) and "Fn",
    "LAMBDA-ENVIRONMENT-SIZE": lambda s: function(s, Environment={"Variables": {"BIG": "x" * 5000}}) and "Fn",
    "LAMBDA-LOG-LEVELS-NEED-JSON": lambda s: function(s, LoggingConfig={"LogFormat": "Text",
                                                                        "ApplicationLogLevel": "INFO"}) and "Fn",
    "LAMBDA-LAYERS": lambda s: function(s, Layers=[f"arn:aws:lambda:eu-west-1:1:layer:l{i}:1" for i in range(6)])
    and "Fn",
    "LAMBDA-SNAPSTART-RUNTIME": lambda s: function(s, Runtime="python3.11", SnapStart={"ApplyOn": "PublishedVersions"})
    and "Fn",
    "LAMBDA-SNAPSTART-STORAGE": lambda s: function(s, SnapStart={"ApplyOn": "PublishedVersions"},
                                                   EphemeralStorage={"Size": 1024}) and "Fn",
    "LAMBDA-SNAPSTART-PROVISIONED": _snapstart_provisioned,
    "LAMBDA-PROVISIONED-LATEST": lambda s: cfn(s, "Alias", "AWS::Lambda::Alias", FunctionName=function(s).ref,
                                               FunctionVersion="$LATEST", Name="live",
                                               ProvisionedConcurrencyConfig={"ProvisionedConcurrentExecutions": 1}
                                               ) and "Alias",
    "LAMBDA-PROVISIONED-RESERVED": _provisioned_reserved,
    "LAMBDA-CONCURRENCY-QUOTA": lambda s: function(s, ReservedConcurrentExecutions=50) and "Fn",
    "LAMBDA-SQS-VISIBILITY": lambda s: _sqs_mapping(s, {"VisibilityTimeout": 30}),
    "LAMBDA-SQS-BATCHING": lambda s: _sqs_mapping(s, BatchSize=100),
    "LAMBDA-SQS-DESTINATION": lambda s: _sqs_mapping(s, DestinationConfig={"OnFailure": {"Destination": "arn:x"}}),
    "LAMBDA-SQS-CONCURRENCY": lambda s: _sqs_mapping(s, ScalingConfig={"MaximumConcurrency": 1}),
    "LAMBDA-ASYNC-CONFIG": lambda s: cfn(s, "AsyncConfig", "AWS::Lambda::EventInvokeConfig", FunctionName="f",
                                         Qualifier="$LATEST", MaximumRetryAttempts=3) and "AsyncConfig",
    "LAMBDA-ALIAS-ORDER": _alias_order,
    "LAMBDA-ALIAS-VERSION": _alias_version,
    "LAMBDA-FUNCTION-DESCRIPTION": lambda s: function(s, Description="d" * 300) and "Fn",
    "SQS-ENCRYPTION-ONE-KIND": lambda s: queue(s, SqsManagedSseEnabled=True, KmsMasterKeyId="alias/orders")
    and "Queue",
    "SQS-ATTRIBUTES": lambda s: queue(s, MessageRetentionPeriod=30) and "Queue",
    "SQS-FIFO-NAME": lambda s: queue(s, QueueName="orders", FifoQueue=True) and "Queue",
    "SQS-REDRIVE": lambda s: queue(s, RedrivePolicy={"deadLetterTargetArn": queue(s, "Dead", FifoQueue=True).get_att(
        "Arn"), "maxReceiveCount": 5}) and "Case/Queue",
    "SNS-PUBLISHER-KMS": lambda s: topic_alarmed(s, KmsMasterKeyId="alias/aws/sns") and "Topic",
    "SNS-PUBLISHER-POLICY": lambda s: cfn(s, "Policy", "AWS::SNS::TopicPolicy", Topics=[topic_alarmed(s).ref],
                                          PolicyDocument={"Statement": [{"Effect": "Deny", "Principal": "*",
                                                                         "Action": "sns:Publish", "Resource": "*"}]}
                                          ) and "Topic",
    "SNS-SUBSCRIPTION-DLQ": _subscription_dlq,
    "SNS-SUBSCRIPTION-ENDPOINT": lambda s: cfn(s, "Subscription", "AWS::SNS::Subscription", TopicArn="arn:t",
                                               Protocol="email", Endpoint="ops at example") and "Subscription",
    "KMS-POLICY-LOCKOUT": lambda s: cfn(s, "Key", "AWS::KMS::Key", KeyPolicy={"Statement": [{
        "Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}, "Action": "kms:*", "Resource": "*"}]}
    ) and "Key",
    "KMS-PENDING-WINDOW": lambda s: cfn(s, "Key", "AWS::KMS::Key", PendingWindowInDays=3) and "Key",
    "DYNAMODB-KEY-ATTRIBUTES": lambda s: cfn(s, "Table", "AWS::DynamoDB::Table", BillingMode="PAY_PER_REQUEST",
                                             KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                             AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"},
                                                                   {"AttributeName": "status", "AttributeType": "S"}]
                                             ) and "Table",
    "DYNAMODB-BILLING": lambda s: cfn(s, "Table", "AWS::DynamoDB::Table", BillingMode="PAY_PER_REQUEST",
                                      KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                      AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                      ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}
                                      ) and "Table",
    "DYNAMODB-GLOBAL-REPLICAS": lambda s: cfn(s, "Table", "AWS::DynamoDB::GlobalTable", BillingMode="PAY_PER_REQUEST",
                                              KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                                              AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
                                              Replicas=[{"Region": "eu-west-1"}, {"Region": "us-east-1"}]) and "Table",
    "S3-NOTIFICATION-FILTERS": lambda s: notifications(s, QueueConfigurations=[
        {"Events": ["s3:ObjectCreated:*"], "QueueArn": "arn:aws:sqs:eu-west-1:1:a",
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}},
        {"Events": ["s3:ObjectCreated:Put"], "QueueArn": "arn:aws:sqs:eu-west-1:1:b",
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/images/"}]}}}]) and "Notifications",
    "S3-NOTIFICATION-DESTINATION": _notification_destination,
    "DESTROY-DELETION-PROTECTION": lambda s: pool(s, DeletionProtection="ACTIVE") and "Pool",
    "DESTROY-BUCKET-NOT-EMPTY": lambda s: cfn(s, "Bucket", "AWS::S3::Bucket") and "Bucket",
    "ELASTICACHE-AUTH-TOKEN": lambda s: cfn(s, "Cache", "AWS::ElastiCache::ReplicationGroup",
                                            ReplicationGroupDescription="c", AuthToken="{{resolve:secretsmanager:t}}",
                                            TransitEncryptionEnabled=False) and "Cache",
    "ELASTICACHE-FAILOVER": lambda s: cfn(s, "Cache", "AWS::ElastiCache::ReplicationGroup",
                                          ReplicationGroupDescription="c", NumCacheClusters=1,
                                          AutomaticFailoverEnabled=True) and "Cache",
    "ELASTICACHE-WINDOWS": lambda s: cfn(s, "Cache", "AWS::ElastiCache::ReplicationGroup",
                                         ReplicationGroupDescription="c", SnapshotWindow="05:00-06:00",
                                         PreferredMaintenanceWindow="sun:05:30-sun:06:30") and "Cache",
    "ELASTICACHE-SERVERLESS-LIMITS": lambda s: cfn(s, "Cache", "AWS::ElastiCache::ServerlessCache",
                                                   ServerlessCacheName="c", Engine="valkey", CacheUsageLimits={
                                                       "DataStorage": {"Maximum": 6000, "Unit": "GB"}}) and "Cache",
    "COGNITO-OAUTH-NEEDS-DOMAIN": lambda s: client(s, pool(s), AllowedOAuthFlows=["code"],
                                                   AllowedOAuthFlowsUserPoolClient=True, AllowedOAuthScopes=["openid"],
                                                   CallbackURLs=["https://app.example.com/cb"]) and "Client",
    "COGNITO-DOMAIN": lambda s: cfn(s, "Domain", "AWS::Cognito::UserPoolDomain", UserPoolId=pool(s).ref,
                                    Domain=Fn.join("", ["aws-orders-", Stack.of(s).account])) and "Domain",
    "COGNITO-CLIENT-FLOWS": lambda s: client(s, pool(s), AllowedOAuthFlows=["client_credentials"],
                                             AllowedOAuthFlowsUserPoolClient=True, AllowedOAuthScopes=["api/read"],
                                             GenerateSecret=False) and "Client",
    "COGNITO-REDIRECT-URLS": lambda s: client(s, pool(s), CallbackURLs=["http://app.example.com/cb"]) and "Client",
    "COGNITO-TOKEN-VALIDITY": lambda s: client(s, pool(s), AccessTokenValidity=2,
                                               TokenValidityUnits={"AccessToken": "minutes"}) and "Client",
    "COGNITO-CLIENT-SCOPES": _client_scopes,
    "COGNITO-FEATURE-PLAN": lambda s: pool(s, UserPoolTier="ESSENTIALS",
                                           UserPoolAddOns={"AdvancedSecurityMode": "ENFORCED"}) and "Pool",
    "COGNITO-MFA": lambda s: pool(s, MfaConfiguration="ON", EnabledMfas=["SMS_MFA"]) and "Pool",
    "WAF-ASSOCIATION-TARGET": lambda s: cfn(s, "Association", "AWS::WAFv2::WebACLAssociation", WebACLArn="arn:acl",
                                            ResourceArn=Fn.join("", ["arn:aws:apigateway:eu-west-1::/apis/",
                                                                     http_api(s).ref, "/stages/$default"])
                                            ) and "Association",
    "WAF-ASSOCIATION-ORDER": _waf_order,
    "WAF-RULES": lambda s: cfn(s, "Acl", "AWS::WAFv2::WebACL", Scope="REGIONAL", DefaultAction={"Allow": {}},
                               VisibilityConfig={"MetricName": "acl", "CloudWatchMetricsEnabled": True,
                                                 "SampledRequestsEnabled": True},
                               Rules=[{"Name": "rate", "Priority": 0, "Action": {"Block": {}},
                                       "Statement": {"RateBasedStatement": {"Limit": 5, "AggregateKeyType": "IP"}},
                                       "VisibilityConfig": {"MetricName": "rate", "CloudWatchMetricsEnabled": True,
                                                            "SampledRequestsEnabled": True}}]) and "Acl",
    "WAF-LOGGING-DESTINATION": lambda s: cfn(s, "Logging", "AWS::WAFv2::LoggingConfiguration", ResourceArn="arn:acl",
                                             LogDestinationConfigs=[cfn(s, "Logs", "AWS::Logs::LogGroup",
                                                                        LogGroupName="waf").get_att("Arn")]
                                             ) and "Logging",
    "CLOUDWATCH-ALARM-PERIOD": lambda s: alarm(s, Period=90) and "Alarm",
    "CLOUDWATCH-ALARM-WINDOW": lambda s: alarm(s, Period=300, EvaluationPeriods=300) and "Alarm",
    "CLOUDWATCH-ALARM-METRIC": lambda s: alarm(s, ExtendedStatistic="p99") and "Alarm",
    "CLOUDWATCH-ALARM-ACTIONS": lambda s: alarm(s, AlarmActions=[f"arn:aws:sns:eu-west-1:1:t{i}" for i in range(6)])
    and "Alarm",
    "CLOUDWATCH-DASHBOARD": _dashboard,
    "AUTOSCALING-CAPACITY": lambda s: scaling_target(s, MinCapacity=5, MaxCapacity=2) and "Target",
    "AUTOSCALING-LAMBDA-TARGET": lambda s: scaling_target(s, ResourceId="function:orders:$LATEST") and "Target",
    "AUTOSCALING-SCHEDULE": lambda s: scaling_target(s, ScheduledActions=[{
        "ScheduledActionName": "business", "Schedule": "cron(0 8 * * MON-FRI)", "Timezone": "Mars/Olympus",
        "ScalableTargetAction": {"MinCapacity": 1, "MaxCapacity": 2}}]) and "Target",
    "VPC-ENDPOINT-PRIVATE-DNS": lambda s: endpoint(s, vpc(s), PrivateDnsEnabled=True) and "Endpoint",
    "VPC-ENDPOINT-TYPE": lambda s: endpoint(s, vpc(s), VpcEndpointType="Gateway", SubnetIds=["subnet-1"])
    and "Endpoint",
    "VPC-ENDPOINT-DUPLICATE-DNS": _duplicate_dns,
    "VPC-ENDPOINT-SUBNETS": _endpoint_subnets,
    "TAGS": lambda s: queue(s, Tags=[{"Key": "aws:owner", "Value": "me"}]) and "Queue",
    "CODEDEPLOY-ALARMS": lambda s: cfn(s, "Group", "AWS::CodeDeploy::DeploymentGroup", ApplicationName="app",
                                       ServiceRoleArn="arn:aws:iam::123456789012:role/cd", AlarmConfiguration={
                                           "Enabled": True, "Alarms": [{"Name": f"a{i}"} for i in range(11)]})
    and "Group",
    "CODEDEPLOY-HOOK-STATUS": lambda s: _hooked_alias(s, group_statements=[
        {"Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": "*"}]),
    "CODEDEPLOY-HOOK-INVOKE": lambda s: _hooked_alias(s, hook_statements=_REPORTS),
    "CODEDEPLOY-PROVISIONED-SCALING": _scaled_release,
    "LAMBDA-IMAGE-PACKAGE": lambda s: function(s, PackageType="Image", Code={
        "ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/orders:1"}) and "Fn",
    "LAMBDA-IMAGE-SNAPSTART": lambda s: cfn(s, "Fn", "AWS::Lambda::Function", PackageType="Image",
                                            Role="arn:aws:iam::123456789012:role/r",
                                            Code={"ImageUri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/o:1"},
                                            SnapStart={"ApplyOn": "PublishedVersions"}) and "Fn",
}
# A KMS key the alarm's topic uses but whose policy forgets CloudWatch is the same rule's other face.
CASES_MORE = {"SNS-PUBLISHER-KMS": _with_key}

#: A bad value for each kind of name (see limits.NAMES), and the one the checker must let pass.
BAD_NAMES = {
    "lambda-function": "orders.api", "lambda-alias": "123", "iam-role": "r" * 65, "iam-policy": "p o",
    "log-group": "logs:x", "ssm-parameter": "/aws/orders/x", "secret": "orders secret", "sqs-queue": "q" * 81,
    "sns-topic": "alarms!", "dynamodb-table": "ab", "s3-bucket": "Orders_Bucket", "events-rule": "rule one",
    "alarm": "a" * 256, "dashboard": "ops board", "http-api": "a" * 129, "http-stage": "v1.0", "rest-stage": "v1.0",
    "cognito-pool": "pool#1", "cognito-client": "web/app", "resource-server": "api server",
    "oauth-scope": "tasks/write", "elasticache-id": "orders--cache", "waf-name": "acl one", "waf-metric": "acl one",
    "kms-alias": "alias/aws/orders", "scaling-policy": "policy:1", "scheduled-action": "daily|1",
}


def _name_case(kind: str) -> Callable[[Stack], str]:
    resource_type, path = next((t, p) for t, p, k in NAME_PROPERTIES if k == kind)

    def build(stack: Stack) -> str:
        value: object = BAD_NAMES[kind]
        for key in reversed(path[1:]):
            value = [value] if key == "*" else {key: value}
        cfn(stack, "Named", resource_type, **{path[0]: value})
        return "Named"

    return build


for _kind in BAD_NAMES:
    CASES[f"NAME-{_kind.upper()}"] = _name_case(_kind)
CASES.update(EDGE_PREFLIGHT_CASES)  # the edge's rules (cdk_app/preflight/edge.py), built in their own module


def test_every_rule_has_a_violating_case():
    # A rule without a case would be a rule nobody has seen refuse anything. NAME-STACK: CDK itself
    # refuses bad stack names, so it is shown through check_template (the config checks the same limit).
    assert set(CASES) | {"NAME-STACK"} == set(RULES)


@pytest.mark.parametrize("rule_id", sorted(CASES))
def test_each_rule_refuses_its_violating_stack(rule_id, tmp_path):
    report = run_preflight(CASES[rule_id], tmp_path)
    culprit = report.built
    assert isinstance(culprit, str), culprit

    found = report.of(rule_id)
    assert found, f"{rule_id} did not fire: {report.violations}"
    assert all(culprit in v["path"] for v in found), found
    assert report.failed == (RULES[rule_id].severity == "error")
    # One line: rule, construct path, the value, AWS's words, the fix.
    line = found[0]["description"]
    assert "\n" not in line and line.startswith(f"[{rule_id}] Case/{culprit.removeprefix('Case/')}")
    assert ". AWS: " in line and ". Fix: " in line


@pytest.mark.parametrize("rule_id", sorted(CASES_MORE))
def test_rules_with_a_second_face(rule_id, tmp_path):
    report = run_preflight(CASES_MORE[rule_id], tmp_path)
    assert report.of(rule_id) and report.failed


def test_a_stack_name_aws_refuses_is_named():
    (finding,) = [f for f in check_template({"Resources": {}}, name="orders_api") if f.rule.id == "NAME-STACK"]
    assert "orders_api" in finding.line() and "letters, digits and hyphens" in finding.line()


@pytest.mark.parametrize("build", [
    # Near misses the rules must let through (no false alarms).
    lambda s: _sqs_mapping(s, {"VisibilityTimeout": 60}),
    lambda s: _sqs_mapping(s, BatchSize=100, MaximumBatchingWindowInSeconds=1),
    lambda s: cfn(s, "Cache", "AWS::ElastiCache::ReplicationGroup", ReplicationGroupDescription="c",
                  SnapshotWindow="03:00-04:00", PreferredMaintenanceWindow="sun:05:00-sun:06:00",
                  TransitEncryptionEnabled=True, AuthToken="{{resolve:secretsmanager:t}}"),
    lambda s: notifications(s, QueueConfigurations=[
        {"Events": ["s3:ObjectCreated:*"], "QueueArn": "arn:aws:sqs:eu-west-1:1:a",
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}},
        {"Events": ["s3:ObjectRemoved:*"], "QueueArn": "arn:aws:sqs:eu-west-1:1:b",
         "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "in/"}]}}}]),
    lambda s: cfn(s, "Domain", "AWS::Cognito::UserPoolDomain", UserPoolId="p",
                  Domain=Fn.join("", ["orders-dev-", Stack.of(s).account])),
    lambda s: route(s, http_api(s), "Jwt", "GET /me", AuthorizationType="JWT", AuthorizerId="a",
                    AuthorizationScopes=["openid"]),
], ids=["visibility", "batch-window", "windows", "disjoint-events", "domain", "jwt-scopes"])
def test_near_misses_pass(build, tmp_path):
    report = run_preflight(build, tmp_path)
    assert not report.failed and not report.violations, report.violations


@pytest.mark.parametrize(("size", "refused"), [(0, False), (10_485_760, False), (-1, True), (10_485_761, True)])
def test_rest_compression_size_bounds(size, refused, tmp_path):
    # API Gateway's bounds, both ends: 0 compresses every answer, 10,485,760 bytes (10M) is the largest size.
    report = run_preflight(lambda s: rest_api(s, MinimumCompressionSize=size), tmp_path)
    assert bool(report.of("RESTAPI-COMPRESSION-SIZE")) == refused and report.failed == refused, report.violations
    assert report.violations == [] or refused


def test_compression_size_in_an_imported_openapi_definition_is_read_too():
    api = {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Body": {
        "openapi": "3.0.1", "paths": {}, "x-amazon-apigateway-minimum-compression-size": 20_000_000}}}
    (finding,) = [f for f in check_template({"Resources": {"Rest": api}}) if f.rule.id == "RESTAPI-COMPRESSION-SIZE"]
    assert "Body/x-amazon-apigateway-minimum-compression-size=20000000" in finding.line()


def test_a_compression_size_passed_to_the_gateway_fails_synth(tmp_path):
    # The settings bound it; a consumer passing the prop to FastApiGateway directly is caught at synth.
    def build(stack: Stack) -> None:
        orders = FastApiFunction(stack, "Orders", source=LAMBDA_SRC, expected_duration=Duration.seconds(10))
        FastApiGateway(stack, "Api", handler=orders.alias, api_type="rest", compression_min_bytes=10_485_761)

    report = run_preflight(build, tmp_path)
    assert report.failed
    assert [v["path"] for v in report.of("RESTAPI-COMPRESSION-SIZE")] == ["Case/Api/RestApi"]


def test_throttling_of_zero_is_named_where_it_is_and_just_above_zero_passes():
    def findings(**props: object) -> list[str]:
        stage = {"Type": "AWS::ApiGateway::Stage", "Properties": {"RestApiId": "r", "StageName": "api", **props}}
        return [f.line() for f in check_template({"Resources": {"Stage": stage}}) if f.rule.id == "APIGW-THROTTLE-ZERO"]

    (line,) = findings(MethodSettings=[{"HttpMethod": "*", "ResourcePath": "/*", "ThrottlingRateLimit": 10},
                                       {"HttpMethod": "GET", "ResourcePath": "/~1x", "ThrottlingBurstLimit": 0}])
    assert "MethodSettings/1 sets ThrottlingBurstLimit to 0" in line
    assert findings(MethodSettings=[{"HttpMethod": "*", "ResourcePath": "/*", "ThrottlingRateLimit": 0.5,
                                     "ThrottlingBurstLimit": 1}]) == []


def test_execution_logs_stay_on_websocket_stages(tmp_path):
    # Near miss: LoggingLevel is a route setting WebSocket APIs do have.
    def build(stack: Stack) -> None:
        api = cfn(stack, "Ws", "AWS::ApiGatewayV2::Api", Name="ws", ProtocolType="WEBSOCKET",
                  RouteSelectionExpression="$request.body.action")
        cfn(stack, "Stage", "AWS::ApiGatewayV2::Stage", ApiId=api.ref, StageName="live",
            DefaultRouteSettings={"LoggingLevel": "ERROR", "DataTraceEnabled": True})

    assert run_preflight(build, tmp_path).of("HTTPAPI-STAGE-EXECUTION-LOGS") == []


def test_the_three_environments_pass(synth):
    # The session's app carries cdk-nag and the preflight (add_compliance_checks): synth raises on an error.
    synth.app.synth()
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    preflight = [v for p in report["pluginReports"] if p["pluginName"] == "Preflight" for v in p["violations"]]
    # Nothing left: prod's concurrency-quota warning is acknowledged by the stack with its reason, as strict
    # synth (CI) fails on any warning.
    assert preflight == []
    assert {s.stack_name for s in synth.app.synth().stacks} == {f"fastapi-lambda-{e}" for e in ENVIRONMENTS}


def test_a_consumer_stack_with_resources_aws_would_reject_fails_naming_each(tmp_path):
    # The constructs are fine; the consumer's own additions are not, and each one is named.
    def build(stack: Stack) -> None:
        orders = FastApiFunction(stack, "Orders", source=LAMBDA_SRC, expected_duration=Duration.seconds(10))
        gateway = FastApiGateway(stack, "Api", handler=orders.alias, public_routes=["GET /health"])
        assert gateway.http_api is not None  # the default api_type is an HTTP API
        apigwv2.CfnRoute(stack, "OpenReport", api_id=gateway.http_api.api_id, route_key="GET /report",
                         authorization_type="NONE", authorization_scopes=["reports"])
        jobs = sqs.Queue(stack, "Jobs", visibility_timeout=Duration.seconds(5))
        # cast: jsii's Python binding types Function so that it does not match its own IFunction protocol.
        lambda_.EventSourceMapping(stack, "JobsMapping", target=cast(lambda_.IFunction, orders.function),
                                   event_source_arn=jobs.queue_arn)
        # CDK refuses AWS_REGION in add_environment; an override reaches the template, as AWS would see it.
        # cast: default_child is typed IConstruct | None; a Function's is its CfnFunction.
        cast(lambda_.CfnFunction, orders.function.node.default_child).add_property_override(
            "Environment.Variables.AWS_LAMBDA_FUNCTION_NAME", "orders")

    report = run_preflight(build, tmp_path)

    assert report.failed
    assert {(v["rule"], v["path"]) for v in report.violations if v["severity"] == "error"} == {
        ("APIGW-SCOPES-NEED-TOKEN", "Case/OpenReport"),
        ("LAMBDA-SQS-VISIBILITY", "Case/JobsMapping"),
        ("LAMBDA-RESERVED-VARIABLE", "Case/Orders/Function"),
    }


def test_a_deliberate_finding_is_acknowledged_with_its_reason(tmp_path):
    def build(stack: Stack) -> None:
        fn = function(stack, ReservedConcurrentExecutions=5)
        Validations.of(fn).acknowledge(Acknowledgment(
            id="Preflight::LAMBDA-CONCURRENCY-QUOTA", reason="The account's quota was raised to 3000."))

    assert run_preflight(build, tmp_path).of("LAMBDA-CONCURRENCY-QUOTA") == []


def test_compliance_checks_add_the_preflight(tmp_path):
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    queue(Stack(app, "Case"), SqsManagedSseEnabled=True, KmsMasterKeyId="alias/orders")
    add_compliance_checks(app)

    with pytest.raises(RuntimeError, match=r"SQS-ENCRYPTION-ONE-KIND\] Case/Queue"):
        app.synth()


def test_every_rule_names_its_source_and_the_message_it_prevents():
    for rule in RULES.values():
        assert rule.source.startswith("https://"), rule.id
        assert len(rule.message) > 20 and rule.summary, rule.id


def test_shapes_of_intrinsics():
    join = {"Fn::Join": ["", ["orders-", {"Ref": "AWS::AccountId"}]]}
    assert literal_text(join) == "orders-123456789012"
    assert (shape({"Fn::Join": [":", [{"Ref": "Fn"}, "live"]]}) or "").endswith(":live")
    assert literal_text({"Fn::GetAtt": ["Fn", "Arn"]}) is None
    assert region_problem("eu-west-1") is None and "did you mean 'eu-west-1'" in (region_problem("eu-wset-1") or "")


def test_rules_skip_what_only_deploy_time_knows():
    # A visibility timeout from a parameter is unknown at synth: no guess, no finding.
    template = {"Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Timeout": 60}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": {"Ref": "Visibility"}}},
        "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": {
            "FunctionName": {"Ref": "Fn"}, "EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}}}}}
    assert [f.rule.id for f in check_template(template)] == []


def test_the_stack_pseudo_resource_is_only_for_stack_rules():
    assert all(STACK not in r.types or r.id == "NAME-STACK" for r in RULES.values())
