"""The scanners' rules on every stack, and every accepted finding with its reason.

cdk-nag 3.x runs two rule packs, AWS Solutions and Serverless, as CDK validation plugins:
findings fail ``cdk synth`` and are written to ``cdk.out/validation-report.json``.
checkov reads the synthesized templates afterwards (``make synth``, :mod:`cdk_app.report`);
a check accepted on one resource is skipped in that resource's own template metadata
(``Metadata.checkov.skip``, with the reason). Each acknowledgement and skip lives here, next
to its reason, and is applied by the construct that causes it to the narrowest scope (the
resource itself), so the constructs stay clean when imported into other apps too, and a
finding on anything a user adds is still reported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from aws_cdk import Acknowledgment, Annotations, App, CfnResource, Stack, Validations
from aws_cdk import aws_lambda as lambda_
from cdk_nag import AwsSolutionsChecks, ServerlessChecks
from constructs import IConstruct
from fastapi_lambda.constants import FILES_INCOMING_PREFIX, FILES_RESULTS_PREFIX

from cdk_app.preflight.plugin import Preflight
from cdk_app.report import MIN_REASON_WORDS  # the gate that reads the reasons sets how long they must be

if TYPE_CHECKING:
    from cdk_app.api import FastApiGateway
    from cdk_app.app_config import AppConfig
    from cdk_app.auth import UserPool, WebFirewall
    from cdk_app.cache import Cache
    from cdk_app.function import ServiceFunction
    from cdk_app.network import Network
    from cdk_app.observability import Observability
    from cdk_app.tasks import FileIntake, TaskQueue

#: The newest Python runtime cdk-nag's AwsSolutions-L1 and Serverless-LambdaLatestVersion expect.
LATEST_PYTHON = lambda_.Runtime.PYTHON_3_14.name


#: The only actions any policy of ours may allow on Resource '*', each because AWS documents no
#: resource-level permissions for it (or scopes it by a condition instead).
WILDCARD_RESOURCE_ACTIONS = frozenset({
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray: no resource-level permissions
    "kms:Decrypt",  # SecureString reads, limited by kms:ViaService to SSM (AppConfig)
    "s3:PutBucketNotification",  # aws-cdk-lib's bucket-notifications handler
    # Lambda's network interfaces of a VPC function (ServiceFunction's NetworkPolicy)
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",  # CDK's default-security-group restriction
})


#: The cdk-nag packs that run at synth, by the prefix of their rule ids.
NAG_PACKS = {"AwsSolutions": AwsSolutionsChecks, "Serverless": ServerlessChecks}
#: The template metadata key checkov reads skips from.
CHECKOV_METADATA = "checkov"


def add_compliance_checks(app: App) -> None:
    """Run cdk-nag's AWS Solutions and Serverless rule packs and the deploy preflight on every stack of ``app``
    at synth."""
    Validations.of(app).add_plugins(*(pack(app) for pack in NAG_PACKS.values()), Preflight())


def acknowledge(scope: IConstruct, rule: str, reason: str, *, pack: str = "AwsSolutions") -> None:
    """Accept cdk-nag's ``<pack>-<rule>`` on ``scope`` and what it contains: pass the resource itself."""
    Validations.of(scope).acknowledge(Acknowledgment(id=f"{pack}-{rule}", reason=reason))


def acknowledge_serverless(scope: IConstruct, rule: str, reason: str) -> None:
    acknowledge(scope, rule, reason, pack="Serverless")


def skip_checkov(resource: IConstruct, check: str, reason: str) -> None:
    """Accept checkov's ``check`` (``CKV_AWS_…``) on one resource, with the reason, in that resource's own
    template metadata, where checkov reads it. ``resource`` is the CloudFormation resource or an L2
    construct (its default child)."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to carry a checkov skip; pass one")
    if len(reason.split()) < MIN_REASON_WORDS:
        raise ValueError(f"the reason for skipping {check} on {cfn.node.path} is too thin ({reason!r}): say why "
                         "the finding does not apply, in a sentence")
    entry = dict(cfn.get_metadata(CHECKOV_METADATA) or {})
    skips = [s for s in entry.get("skip", []) if s["id"] != check]
    cfn.add_metadata(CHECKOV_METADATA, {**entry, "skip": [*skips, {"id": check, "comment": reason}]})


# --- reasons shared by several resources or scanners ---------------------------------------

LOG_GROUP_KEY = (
    "CloudWatch Logs encrypts every log group at rest with keys it manages; a customer-managed key would add a "
    "key policy to maintain and a cost per request, while who may read the logs is decided by IAM either way."
)
SECRET_KEY = (
    "Secrets Manager encrypts the secret with the account's aws/secretsmanager key; a customer-managed key "
    "matters for sharing a secret across accounts, which this one never is: only the functions granted it read it."
)
SQS_MANAGED_ENCRYPTION = (
    "False positive: the queue is encrypted at rest with SQS-managed keys (SSE-SQS, SqsManagedSseEnabled), which "
    "checkov does not recognise (it looks for KmsMasterKeyId only); SNS, S3 and EventBridge can send to it "
    "without a key policy."
)
CDK_HANDLER = (
    "This is aws-cdk-lib's own deploy-time handler: CloudFormation invokes it only during deploys, synchronously "
    "as a custom resource, with nothing to keep on failure (the deploy fails and rolls back), no VPC resource to "
    "reach and no concurrency worth reserving; CDK offers no way to configure it."
)


def skip_cdk_handler(stack: Stack, handler_id: str) -> None:
    """Skip the function checks on one of aws-cdk-lib's singleton deploy-time handlers (when the stack has it)."""
    handler = stack.node.try_find_child(handler_id)
    if handler is None:
        return
    function = handler.node.default_child or handler.node.try_find_child("Handler")
    for check in ("CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117"):  # concurrency, dead-letter queue, VPC
        skip_checkov(function, check, CDK_HANDLER)


def _managed_policy_finding(name: str) -> str:
    """How cdk-nag's IAM4 names an AWS-managed policy in a finding id."""
    return f"IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/{name}]"


def acknowledge_function(construct: ServiceFunction) -> None:
    # Only the construct's own policy holding X-Ray's statement: a '*' grant a user adds to
    # the role (its default policy) is still reported.
    if construct.tracing_policy is not None:
        acknowledge(
            construct.tracing_policy, "IAM5[Resource::*]",
            "X-Ray's PutTraceSegments and PutTelemetryRecords support no resource-level permissions "
            "(AWS documents Resource '*'); this policy holds only that statement.",
        )
    if construct.network_policy is not None:
        network = (
            "Lambda creates, describes and deletes the function's network interfaces in its VPC subnets with this "
            "role, and checks at CreateFunction that it may; the interfaces do not exist before, and "
            "DescribeNetworkInterfaces and DescribeSubnets support no resource-level permissions (AWS's own "
            "AWSLambdaENIManagementAccess allows them on '*' too). This policy holds only that statement."
        )
        acknowledge(construct.network_policy, "IAM5[Resource::*]", network)
        skip_checkov(construct.network_policy, "CKV_AWS_111", network)
    if construct.cold_start.plan.strategy == "snapstart":
        Annotations.of(construct.function).acknowledge_warning(
            "@aws-cdk/aws-lambda:snapStartRequirePublish",
            "The construct always publishes a version (current_version) and the live alias points at it, "
            "which is where SnapStart applies.",
        )
    function = construct.function.node.default_child
    if construct.target.runtime.name != LATEST_PYTHON:
        runtime = (
            f"The runtime is chosen per environment (function.python_version, default 3.13) because the "
            f"dependency layer and its .pyc are built for that exact version; {LATEST_PYTHON} is one setting away."
        )
        acknowledge(function, "L1", runtime)
        acknowledge_serverless(function, "LambdaLatestVersion", runtime)
    tracing = Stack.of(function).resolve(function.tracing_config) or {}
    if tracing.get("mode") != "Active":
        acknowledge_serverless(function, "LambdaTracing", (
            f"X-Ray tracing is {tracing.get('mode', 'off')} by this function's tracing= prop (observability.tracing in "
            "the settings): an environment may leave traces out for their cost, logs and metrics still flow."))
    if function.dead_letter_config is None:
        no_dead_letters = (
            "Nothing invokes this function asynchronously with data to keep: API Gateway and the SQS event source "
            "invoke it synchronously (the queue's own dead-letter queue keeps failed tasks) and warmup pings are "
            "disposable. An asynchronous invoker of your own wants function_props={'dead_letter_queue': ...}."
        )
        acknowledge_serverless(function, "LambdaDLQ", no_dead_letters)
        skip_checkov(function, "CKV_AWS_116", no_dead_letters)
    if not construct.function.is_bound_to_vpc:
        skip_checkov(function, "CKV_AWS_117", (
            "The function joins a VPC only when it must reach something inside one (vpc=, e.g. for the cache); "
            "otherwise a VPC adds network interfaces and endpoints to pay for and protects nothing it calls, "
            "since it reaches AWS APIs over TLS with its role."))
    if function.reserved_concurrent_executions is None:
        skip_checkov(function, "CKV_AWS_115", (
            "Reserved concurrency is a per-environment choice (reserved_concurrency, function.reserved_concurrency): "
            "it takes capacity from every other function of the account, so it is not forced; the API is bounded "
            "by the gateway's throttling and the worker by its event source's max_concurrency."))
    if function.kms_key_arn is None:
        skip_checkov(function, "CKV_AWS_173", (
            "The environment holds names only (parameter paths, secret names, queue URLs), never secret values, "
            "which the function reads at run time; Lambda encrypts it at rest with its AWS-managed key."))
    if isinstance(construct.log_group.node.default_child, CfnResource) and construct.log_group.node.scope is construct:
        skip_checkov(construct.log_group, "CKV_AWS_158", LOG_GROUP_KEY)


_PUBLIC_ROUTE = (
    "This route is declared public (public_routes) because it serves callers without an identity by design; "
    "every route not declared there requires IAM (SigV4) or the authorizer the gateway was given."
)


def acknowledge_gateway(gateway: FastApiGateway, *, public: Sequence[CfnResource], preflight: Sequence[CfnResource],
                        iam_protected: Sequence[CfnResource]) -> None:
    """Each route or method the gateway created, one by one: a route added later is still reported."""
    skip_checkov(gateway.access_log_group, "CKV_AWS_158", LOG_GROUP_KEY)
    for route in public:
        acknowledge(route, "APIG4", _PUBLIC_ROUTE)
        if gateway.rest_api is not None:
            acknowledge(route, "COG4", _PUBLIC_ROUTE)
            skip_checkov(route, "CKV_AWS_59", _PUBLIC_ROUTE)
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
    skip_checkov(gateway.rest_stage, "CKV_AWS_120", (
        "Answers are dynamic and per caller (protected routes answer for one identity); a stage cache is billed by "
        "the hour and would hand one caller's answer to another unless every method keyed it on the Authorization "
        "header. The app caches what is worth caching itself (the cache capability)."))
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
            _managed_policy_finding("service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
            "API Gateway's account-level logging role needs exactly this AWS-maintained policy: it writes the "
            "REST API's execution logs to log groups API Gateway itself names and creates.",
        )


def acknowledge_task_queue(tasks: TaskQueue, *, point_in_time_recovery: bool) -> None:
    """Only what the construct created: a queue or table brought by the user is reported as it is."""
    table = tasks.table.node.default_child
    if not point_in_time_recovery and table is not None:
        no_recovery = (
            "The table holds short-lived task statuses (they expire by TTL after days) in an environment whose "
            "settings turn point-in-time recovery off; tasks.point_in_time_recovery turns it on (prod does)."
        )
        acknowledge(table, "DDB3", no_recovery)
        skip_checkov(table, "CKV_AWS_165", no_recovery)
    own = [queue for queue in (tasks.queue, tasks.dead_letter_queue) if queue is not None and queue.node.scope is tasks]
    for queue in own:
        skip_checkov(queue, "CKV_AWS_27", SQS_MANAGED_ENCRYPTION)
    if tasks.dead_letter_queue in own:
        acknowledge_serverless(
            tasks.dead_letter_queue.node.default_child, "SQSRedrivePolicy",
            "This is the dead-letter queue itself: it keeps the messages that failed max_receive_count times for 14 "
            "days, for an operator to read and redrive to the task queue (its alarm fires on the first one).",
        )
    if tasks.queue not in own:  # a queue of the user's: its redrive is the user's to show
        return
    for mapping in tasks.worker.alias.node.find_all():
        if isinstance(mapping, lambda_.CfnEventSourceMapping):
            acknowledge_serverless(
                mapping, "LambdaEventSourceMappingDestination",
                "Lambda offers on-failure destinations only for stream and Kafka event sources, not SQS ones "
                "(\"Unsupported 'destinationConfig' parameter\" at deploy, aws-cdk #19917): a message that fails "
                "max_receive_count times goes to the queue's own dead-letter queue instead.",
            )


#: CDK's singleton Lambda that applies bucket notification configurations (one per stack).
BUCKET_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"


#: aws-cdk-lib's singleton provider that empties a bucket before CloudFormation deletes it (auto_delete_objects).
AUTO_DELETE_OBJECTS_PROVIDER = "Custom::S3AutoDeleteObjectsCustomResourceProvider"


def acknowledge_file_intake(intake: FileIntake, stack: Stack) -> None:
    for handler_id in (BUCKET_NOTIFICATIONS_HANDLER, AUTO_DELETE_OBJECTS_PROVIDER):
        skip_cdk_handler(stack, handler_id)
    handler = stack.node.try_find_child(BUCKET_NOTIFICATIONS_HANDLER)
    if handler is not None:
        acknowledge(
            handler.node.find_child("Role").node.default_child,
            _managed_policy_finding("service-role/AWSLambdaBasicExecutionRole"),
            "This is aws-cdk-lib's own deploy-time handler that writes bucket notification configurations; CDK "
            "gives it the basic execution role for its logs and offers no way to replace it.",
        )
    if intake.access_log_bucket is not None:
        log_bucket = (
            "This is the access-log bucket of the file intake; logging a log bucket to itself would loop and "
            "to another bucket would only move the same finding there."
        )
        acknowledge(intake.access_log_bucket.node.default_child, "S1", log_bucket)
        skip_checkov(intake.access_log_bucket, "CKV_AWS_18", log_bucket)
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
        skip_checkov(secret, "CKV_AWS_149", SECRET_KEY)
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


def acknowledge_config_reader(config: AppConfig, policy: IConstruct, decrypt: IConstruct | None) -> None:
    stack = Stack.of(config)
    acknowledge(
        policy.node.default_child,
        f"IAM5[Resource::{_as_finding(stack, config.parameter_arn(config.path + '*'))}]",
        f"The function reads every parameter under its own path {config.path} (read by path, cached); "
        "the path is the narrowest scope that lets parameters be added without a deploy.",
    )
    # Only while every statement of that policy is conditioned on SSM: without the condition, '*' is reported.
    if decrypt is not None and all(
            "kms:ViaService" in (statement.get("Condition") or {}).get("StringEquals", {})
            for statement in stack.resolve(decrypt.node.default_child.policy_document)["Statement"]):
        acknowledge(
            decrypt.node.default_child, "IAM5[Resource::*]",
            f"kms:Decrypt is limited by kms:ViaService to SSM in {stack.region}: it decrypts only SecureString "
            "parameters the function may read, with whichever key encrypted them. This policy holds only that statement.",
        )


#: aws-cdk-lib's singleton provider that strips the rules of a new VPC's default security group.
RESTRICT_DEFAULT_SG_PROVIDER = "Custom::VpcRestrictDefaultSGCustomResourceProvider"


def acknowledge_network(network: Network, *, flow_logs: bool) -> None:
    skip_cdk_handler(Stack.of(network), RESTRICT_DEFAULT_SG_PROVIDER)
    if network.flow_log_group is not None:
        skip_checkov(network.flow_log_group, "CKV_AWS_158", LOG_GROUP_KEY)
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
        skip_checkov(cache.secret, "CKV_AWS_149", SECRET_KEY)
        acknowledge(
            cache.secret.node.default_child, "SMG4",
            "Rotating an ElastiCache AUTH token takes a rotation function that calls ModifyReplicationGroup "
            "(strategy ROTATE, then SET), which is not shipped yet. The token reaches CloudFormation only as a dynamic "
            "reference, only the functions granted the cache may read it, and the app reads the secret again after "
            "an authentication failure, so a ROTATE-then-SET rotation is picked up without a deploy.",
        )


def acknowledge_firewall(firewall: WebFirewall) -> None:
    skip_checkov(firewall.log_group, "CKV_AWS_158", LOG_GROUP_KEY)


def acknowledge_warmup(rule: IConstruct, invoke_config: IConstruct | None) -> None:
    """The warmup rule's target and the alias's asynchronous invocations (only the rule invokes it so)."""
    disposable = (
        "Only the warmup schedule invokes the alias asynchronously, with a marker payload that carries no data: a "
        "failed ping is superseded by the next one (no retries, short maximum event age) and shows in the "
        "function's Errors alarm, so there is nothing for a dead-letter queue or failure destination to keep."
    )
    acknowledge_serverless(rule.node.default_child, "EventBusDLQ", disposable)
    if invoke_config is not None:
        acknowledge_serverless(invoke_config.node.default_child, "LambdaAsyncFailureDestination", disposable)


def acknowledge_observability(observability: Observability) -> None:
    queue = observability.dead_letter_queue
    if queue is None:
        return
    skip_checkov(queue, "CKV_AWS_27", SQS_MANAGED_ENCRYPTION)
    last_stop = (
        "This queue is itself the dead-letter queue of the alarm topic's subscriptions: it keeps for 14 days the "
        "notifications SNS could not deliver; a queue behind it would only hide them further."
    )
    acknowledge(queue.node.default_child, "SQS3", last_stop)
    acknowledge_serverless(queue.node.default_child, "SQSRedrivePolicy", last_stop)
