"""cdk-nag (AWS Solutions rules) on every stack, and every acknowledgement with its reason.

cdk-nag 3.x is a CDK validation plugin: findings fail ``cdk synth`` and are written to
``cdk.out/validation-report.json``. Each acknowledgement lives here, next to its
reason, and is applied by the construct that causes it to the narrowest scope, so
the constructs stay clean when imported into other apps too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Annotations, App, CfnResource, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks
from constructs import IConstruct
from fastapi_lambda.constants import FILES_INCOMING_PREFIX, FILES_RESULTS_PREFIX

from cdk_app.preflight.plugin import Preflight

if TYPE_CHECKING:
    from cdk_app.api import FastApiGateway
    from cdk_app.app_config import AppConfig
    from cdk_app.auth import UserPool
    from cdk_app.cache import Cache
    from cdk_app.function import ServiceFunction
    from cdk_app.network import Network
    from cdk_app.tasks import FileIntake, TaskQueue

#: The newest Python runtime cdk-nag's AwsSolutions-L1 expects.
LATEST_PYTHON = lambda_.Runtime.PYTHON_3_14.name


#: The only actions any policy of ours may allow on Resource '*', each because AWS documents no
#: resource-level permissions for it (or scopes it by a condition instead).
WILDCARD_RESOURCE_ACTIONS = frozenset({
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray: no resource-level permissions
    "kms:Decrypt",  # SecureString reads, limited by kms:ViaService to SSM (AppConfig)
    "s3:PutBucketNotification",  # aws-cdk-lib's bucket-notifications handler
    "ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",  # CDK's default-security-group restriction
})


def add_compliance_checks(app: App) -> None:
    """Run the AWS Solutions rule pack and the deploy preflight on every stack of ``app`` at synth."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    Validations.of(app).add_plugins(Preflight())


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=f"AwsSolutions-{rule}", reason=reason))


#: The managed policy CDK attaches to a function's own role when it joins a VPC.
VPC_ACCESS_POLICY = "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"


def acknowledge_function(construct: ServiceFunction) -> None:
    # Only the construct's own policy holding X-Ray's statement: a '*' grant a user adds to
    # the role (its default policy) is still reported.
    if construct.tracing_policy is not None:
        acknowledge(
            construct.tracing_policy, "IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions "
            "(AWS documents Resource '*'); this policy holds only that statement.",
        )
    if construct.function.is_bound_to_vpc and construct.owns_role:
        acknowledge(
            construct.role.node.default_child, f"IAM4[{VPC_ACCESS_POLICY}]",
            "Lambda needs the EC2 network-interface permissions of this AWS-maintained policy to attach the "
            "function to its VPC subnets; they cannot be scoped to resources that do not exist yet.",
        )
    if construct.cold_start.plan.strategy == "snapstart":
        Annotations.of(construct.function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish",
            "The construct always publishes a version (current_version) and the live alias points at it, "
            "which is where SnapStart applies.",
        )
    if construct.target.runtime.name != LATEST_PYTHON:
        acknowledge(
            construct.function, "L1",
            f"The runtime is chosen per environment (function.python_version, default 3.13) because the "
            f"dependency layer and its .pyc are built for that exact version; {LATEST_PYTHON} is one setting away.",
        )


_PUBLIC_ROUTE = (
    "This route is declared public (public_routes) because it serves callers without an identity by design; "
    "every route not declared there requires IAM (SigV4) or the authorizer the gateway was given."
)


def acknowledge_gateway(gateway: FastApiGateway, *, public: Sequence[CfnResource], preflight: Sequence[CfnResource],
                        iam_protected: Sequence[CfnResource]) -> None:
    """Each route or method the gateway created, one by one: a route added later is still reported."""
    for route in public:
        acknowledge(route, "APIG4", _PUBLIC_ROUTE)
        if gateway.rest_api is not None:
            acknowledge(route, "COG4", _PUBLIC_ROUTE)
    for route in preflight:
        acknowledge(
            route, "APIG4",
            "Browsers send CORS preflight requests without credentials, so these OPTIONS routes cannot require "
            "authorization; API Gateway answers them from the API's CORS configuration.",
        )
    for method in iam_protected:
        acknowledge(
            method, "COG4",
            "This method requires IAM (SigV4) authorization, the construct's default until an authorizer is "
            "passed; a Cognito user pool authorizer is one option, not the only safe one.",
        )
    if gateway.rest_api is None:
        return
    acknowledge(
        gateway.rest_api.node.default_child, "APIG2",
        "Requests are validated by FastAPI (pydantic models, 422 with the field and reason) inside the proxy "
        "integration; a gateway request model would duplicate that schema and drift from it.",
    )
    if gateway.firewall is None:
        acknowledge(
            gateway.rest_stage.node.default_child, "APIG3",
            "A WAF web ACL is a choice of rules and cost per environment; this gateway was built without one "
            "(waf_rate_limit / api.waf.enabled add it).",
        )
    cloud_watch_role = gateway.rest_api.node.try_find_child("CloudWatchRole")
    if cloud_watch_role is not None:
        acknowledge(
            cloud_watch_role.node.default_child,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]",
            "API Gateway's account-level logging role needs exactly this AWS-maintained policy: it writes the "
            "REST API's execution logs to log groups API Gateway itself names and creates.",
        )


def acknowledge_task_queue(tasks: TaskQueue, *, point_in_time_recovery: bool) -> None:
    table = tasks.table.node.default_child
    if not point_in_time_recovery and table is not None:
        acknowledge(
            table, "DDB3",
            "The table holds short-lived task statuses (they expire by TTL after days) in an environment whose "
            "settings turn point-in-time recovery off; tasks.point_in_time_recovery turns it on (prod does).",
        )


#: CDK's singleton Lambda that applies bucket notification configurations (one per stack).
BUCKET_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


def acknowledge_file_intake(intake: FileIntake, stack: Stack) -> None:
    handler = stack.node.try_find_child(BUCKET_NOTIFICATIONS_HANDLER)
    if handler is not None:
        acknowledge(
            handler.node.find_child("Role").node.default_child,
            "IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "This is aws-cdk-lib's own deploy-time handler that writes bucket notification configurations; CDK "
            "gives it the basic execution role for its logs and offers no way to replace it.",
        )
    if intake.access_log_bucket is not None:
        acknowledge(
            intake.access_log_bucket.node.default_child, "S1",
            "This is the access-log bucket of the file intake; logging a log bucket to itself would loop and "
            "to another bucket would only move the same finding there.",
        )
    for prefix in (FILES_INCOMING_PREFIX, FILES_RESULTS_PREFIX):
        acknowledge(
            intake.worker_policy.node.default_child,
            f"IAM5[Resource::<{stack.get_logical_id(intake.bucket.node.default_child)}.Arn>/{prefix}*]",
            f"The worker reads any new object under {FILES_INCOMING_PREFIX} and writes its result under "
            f"{FILES_RESULTS_PREFIX}: object keys are chosen by uploaders, so the prefix is the narrowest scope.",
        )


def acknowledge_user_pool(pool: UserPool, *, threat_protection: str, mfa: str) -> None:
    resource = pool.user_pool.node.default_child
    if mfa != "required":
        acknowledge(
            resource, "COG2",
            f"MFA is '{mfa}' in this environment by its settings (auth.mfa): users may enrol a TOTP factor; "
            "production requires it.",
        )
    if threat_protection == "off":
        acknowledge(
            resource, "COG8",
            "The Plus feature plan (threat protection) is billed per active user; this environment's settings "
            "(auth.threat_protection) leave it off, production turns it on.",
        )


def acknowledge_app_config(config: AppConfig) -> None:
    for secret in config.secrets.values():
        acknowledge(
            secret.node.default_child, "SMG4",
            "The secret is generated and rotation-ready; rotating it needs a rotation function that knows the "
            "system the secret unlocks, which the application owner adds with secret.add_rotation_schedule.",
        )


def _as_finding(stack: Stack, value: str) -> str:
    """How cdk-nag writes a (possibly tokenized) ARN in a finding id: pseudo parameters as <AWS::Region>."""
    resolved = stack.resolve(value)
    if isinstance(resolved, str):
        return resolved
    return "".join(part if isinstance(part, str) else f"<{part['Ref']}>" for part in resolved["Fn::Join"][1])


def acknowledge_config_reader(config: AppConfig, policy: IConstruct) -> None:
    stack = Stack.of(config)
    acknowledge(
        policy.node.default_child,
        f"IAM5[Resource::{_as_finding(stack, config.parameter_arn(config.path + '*'))}]",
        f"The function reads every parameter under its own path {config.path} (read by path, cached); "
        "the path is the narrowest scope that lets parameters be added without a deploy.",
    )
    if config.secure_parameters:
        acknowledge(
            policy.node.default_child, "IAM5[Resource::*]",
            f"kms:Decrypt is limited by kms:ViaService to SSM in {stack.region}: it decrypts only the SecureString "
            "parameters this policy may read, with whichever key encrypted them.",
        )


def acknowledge_network(network: Network, *, flow_logs: bool) -> None:
    if not flow_logs and isinstance(network.vpc.node.default_child, CfnResource):
        acknowledge(
            network.vpc.node.default_child, "VPC7",
            "Flow logs are turned off by this environment's settings (network.flow_logs, default on); the VPC "
            "holds only the service's functions, their endpoints and its cache.",
        )


def acknowledge_cache(cache: Cache, *, multi_az: bool) -> None:
    if cache.kind == "cluster" and not multi_az:
        acknowledge(
            cache.resource, "AEC4",
            "This environment's settings run the cache in one zone (cache.multi_az=false, default true): it holds "
            "copies of data whose source stays available, and the app answers from the source while the cache is down.",
        )
    if cache.secret is not None:
        acknowledge(
            cache.secret.node.default_child, "SMG4",
            "Rotating an ElastiCache AUTH token takes a rotation function that calls ModifyReplicationGroup "
            "(strategy ROTATE, then SET), which is not shipped yet. The token reaches CloudFormation only as a dynamic "
            "reference, only the functions granted the cache may read it, and the app reads the secret again after "
            "an authentication failure, so a ROTATE-then-SET rotation is picked up without a deploy.",
        )
