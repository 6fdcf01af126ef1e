"""Safe releases: CodeDeploy moves a function's ``live`` alias to each new version, and rolls it back on alarms.

:class:`Release` is the plan: all at once, a canary share first, or linear steps, and an optional
smoke test. :class:`ReleaseControl` applies it to one :class:`cdk_app.function.ServiceFunction`:
a CodeDeploy application and deployment group on the alias (CloudFormation then hands every change
of the alias's version to CodeDeploy, through the alias's ``CodeDeployLambdaAliasUpdate`` update
policy), the smoke-test hooks (:mod:`fastapi_lambda.release`, a function of their own that
invokes the new version before and after the shift), and :meth:`ReleaseControl.roll_back_on` for
the alarms that stop a release and move the alias back.

Provisioned concurrency stays on the alias: Lambda serves a weighted alias from both versions'
provisioned instances, and the pre-traffic hook initializes the new version before any traffic.
SnapStart needs nothing more: the version CodeDeploy shifts to was published (and snapshotted) by
CloudFormation before the deployment starts. ``docs/releases.md`` has the details and a drill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from fastapi_lambda.constants import (
    SMOKE_TEST_FUNCTION_VARIABLE,
    SMOKE_TEST_HANDLER,
    SMOKE_TEST_PATH_VARIABLE,
)

from cdk_app.cdk_values import log_retention, removal_policy, tracing
from cdk_app.findings import acknowledge, managed_policy_finding
from cdk_app.function import ServiceFunction
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import ReleaseStrategy
from cdk_app.settings.rules import RuleError, check_release

_RELEASE = DEFAULTS.release
#: The AWS-managed policy CDK gives a Lambda deployment group's role (it may invoke only CodeDeployHook_* itself).
DEPLOYMENT_ROLE_POLICY = "service-role/AWSCodeDeployRoleForLambdaLimited"
#: The hook waits for the new version's answer: the function's timeout and this much more (Lambda's cap is 900 s).
HOOK_HEADROOM_SECONDS = 30
HOOK_MEMORY_MB = 256


@dataclass(frozen=True)
class Release:
    """How new versions reach one function's ``live`` alias; the defaults are the settings' (``DEFAULTS.release``).

    :param strategy: ``"all-at-once"``, ``"canary"`` (a share first, the rest after ``interval_minutes``) or
        ``"linear"`` (equal steps). @default ``DEFAULTS.release.strategy`` (all-at-once)
    :param percentage: the first share (canary) or each step's (linear), 1-99. @default ``DEFAULTS.release.percentage`` (10)
    :param interval_minutes: minutes between the shifts. @default ``DEFAULTS.release.interval_minutes`` (5)
    :param rollback_on_alarms: roll back when an alarm handed to :meth:`ReleaseControl.roll_back_on` fires.
        @default ``DEFAULTS.release.rollback_on_alarms`` (True)
    :param smoke_test: a GET path a pre-traffic hook sends to the new version before any traffic (non-2xx
        fails the release). @default ``DEFAULTS.release.smoke_test`` (none: no hooks)
    :param post_traffic_test: send the smoke test again after the shift (needs ``smoke_test``).
        @default ``DEFAULTS.release.post_traffic_test`` (False)

    Example::

        from cdk_app.function import FastApiFunction

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app")
        ReleaseControl(stack, "Release", function=api, plan=Release.canary(10, 5, smoke_test="/health"))
    """

    strategy: ReleaseStrategy = _RELEASE.strategy
    percentage: int = _RELEASE.percentage
    interval_minutes: int = _RELEASE.interval_minutes
    rollback_on_alarms: bool = _RELEASE.rollback_on_alarms
    smoke_test: str | None = _RELEASE.smoke_test  # a GET path; None: no hooks
    post_traffic_test: bool = _RELEASE.post_traffic_test

    @classmethod
    def canary(cls, percentage: int = _RELEASE.percentage, interval_minutes: int = _RELEASE.interval_minutes, *,
               smoke_test: str | None = None, post_traffic_test: bool = False) -> Release:
        """``percentage`` of the traffic first, the rest ``interval_minutes`` later."""
        return cls("canary", percentage, interval_minutes, smoke_test=smoke_test, post_traffic_test=post_traffic_test)

    @classmethod
    def linear(cls, percentage: int = _RELEASE.percentage, interval_minutes: int = _RELEASE.interval_minutes, *,
               smoke_test: str | None = None, post_traffic_test: bool = False) -> Release:
        """``percentage`` more of the traffic every ``interval_minutes``."""
        return cls("linear", percentage, interval_minutes, smoke_test=smoke_test, post_traffic_test=post_traffic_test)

    def validate(self) -> None:
        """Raise :class:`cdk_app.settings.rules.RuleError` naming the prop and the fix."""
        check_release(self.strategy, percentage=self.percentage, interval_minutes=self.interval_minutes)
        if self.post_traffic_test and self.smoke_test is None:
            raise RuleError("release.post_traffic_test needs release.smoke_test (the GET path to call); set it, "
                            "e.g. '/health', or leave post_traffic_test off")
        if self.smoke_test is not None and not self.smoke_test.startswith("/"):
            raise RuleError(f"release.smoke_test={self.smoke_test!r} must be a path starting with '/', e.g. '/health'")

    def describe(self) -> str:
        """One line for reports: ``canary 10% +5m``, ``linear 10%/1m``, ``all-at-once``; ``+smoke`` with hooks."""
        shift = {"all-at-once": "all-at-once", "canary": f"canary {self.percentage}% +{self.interval_minutes}m",
                 "linear": f"linear {self.percentage}%/{self.interval_minutes}m"}[self.strategy]
        return shift + (" +smoke" if self.smoke_test else "")

    def deployment_config(self, scope: Construct) -> codedeploy.ILambdaDeploymentConfig:
        """CodeDeploy's all-at-once configuration, or one of the plan's own for a canary or linear shift."""
        if self.strategy == "all-at-once":
            return codedeploy.LambdaDeploymentConfig.ALL_AT_ONCE
        routing = (codedeploy.TrafficRouting.time_based_canary if self.strategy == "canary"
                   else codedeploy.TrafficRouting.time_based_linear)(
            interval=Duration.minutes(self.interval_minutes), percentage=self.percentage)
        return codedeploy.LambdaDeploymentConfig(scope, "DeploymentConfig", traffic_routing=routing)


class ReleaseControl(Construct):
    """CodeDeploy on a function's ``live`` alias: :attr:`deployment_group`, the smoke-test :attr:`hooks`, and
    :meth:`roll_back_on` for the alarms that stop a release.

    :class:`cdk_app.stack.FastApiStack` gives every function the environment's ``release`` settings.

    :param function: the :class:`cdk_app.function.ServiceFunction` whose ``live`` alias is released.
    :param plan: how (:class:`Release`). @default ``Release()``, the settings' ``release``
    :param log_retention: of the smoke-test hooks' log groups. @default ``DEFAULTS.log_retention_days``
    :param removal_policy: of the hooks' log groups. @default ``DEFAULTS.removal_policy``
    :param tracing: of the hooks. @default ``DEFAULTS.observability.tracing``
    :param http: the function serves HTTP, so the smoke test sends a GET request; with False (e.g. a queue
        worker) it sends a warmup ping instead, which proves the new version initializes. @default True
    :param application: the CodeDeploy application to put the deployment group in. @default one of its own

    Example::

        from cdk_app.function import FastApiFunction
        from cdk_app.observability import Observability

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app")
        alarms = Observability(stack, "Observability")
        alarms.watch(api)
        release = ReleaseControl(stack, "Release", function=api, plan=Release.linear(20, 2, smoke_test="/health"))
        release.roll_back_on(*alarms.alarms_of(api))
    """

    def __init__(self, scope: Construct, id: str, *, function: ServiceFunction, plan: Release = Release(),
                 log_retention: logs.RetentionDays = log_retention(DEFAULTS.log_retention_days),
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
                 tracing: lambda_.Tracing = tracing(DEFAULTS.observability.tracing), http: bool = True,
                 application: codedeploy.ILambdaApplication | None = None) -> None:
        super().__init__(scope, id)
        plan.validate()
        self.plan = plan
        self.http = http
        self.function = function
        self.deployment_group = codedeploy.LambdaDeploymentGroup(
            self, "DeploymentGroup", alias=function.alias, application=application,
            deployment_config=plan.deployment_config(self),
            auto_rollback=codedeploy.AutoRollbackConfig(failed_deployment=True, stopped_deployment=True))
        self._accept_role_findings()
        self.hooks: list[ServiceFunction] = []
        self._log_retention, self._removal_policy, self._tracing = log_retention, removal_policy, tracing
        if plan.smoke_test is not None:
            self.deployment_group.add_pre_hook(cast(lambda_.IFunction, self._hook("PreTraffic").function))
            if plan.post_traffic_test:
                self.deployment_group.add_post_hook(cast(lambda_.IFunction, self._hook("PostTraffic").function))

    def roll_back_on(self, *alarms: cloudwatch.IAlarm) -> None:
        """Stop the release and move the alias back when any of ``alarms`` fires (if the plan rolls back on
        alarms). CodeDeploy reads at most 10 alarms per deployment group."""
        if self.plan.rollback_on_alarms:
            for alarm in alarms:
                self.deployment_group.add_alarm(alarm)

    def _hook(self, stage: str) -> ServiceFunction:
        """A function that invokes the version being released (``fastapi_lambda.release``) and reports to CodeDeploy.

        Built from the released function's own code (the hook is in the runtime package), packaging and layer,
        never in its VPC: it calls only CodeDeploy's and Lambda's APIs.
        """
        target = self.function
        timeout = min(900, int(target.function.timeout.to_seconds()) + HOOK_HEADROOM_SECONDS) \
            if target.function.timeout else 900
        hook = ServiceFunction(
            self, f"{stage}Hook", source=target.source, target=target.target, handler=SMOKE_TEST_HANDLER,
            packaging=target.packaging, dependencies=target.dependencies, memory_size=HOOK_MEMORY_MB,
            timeout=Duration.seconds(timeout), description=f"{stage} smoke test of {target.node.path}",
            environment={SMOKE_TEST_FUNCTION_VARIABLE: target.function.function_name,
                         SMOKE_TEST_PATH_VARIABLE: (self.plan.smoke_test or "") if self.http else ""},
            log_retention=self._log_retention, removal_policy=self._removal_policy, tracing=self._tracing)
        hook.use_layer_of(target)  # the released function's own layer, whatever the hook's capabilities
        # Which version to test comes from the deployment; the hook may read this group's deployments only.
        hook.add_to_role_policy(iam.PolicyStatement(actions=["codedeploy:GetDeployment"],
                                                    resources=[self.deployment_group.deployment_group_arn]))
        policy = iam.Policy(self, f"{stage}HookInvoke", roles=[hook.role], statements=[iam.PolicyStatement(
            actions=["lambda:InvokeFunction"], resources=[f"{target.function.function_arn}:*"])])
        hook.function.node.add_dependency(policy)
        acknowledge(policy, f"IAM5[Resource::<{self._logical_id(target.function)}.Arn>:*]", (
            "The hook invokes the version of this one function that the deployment releases; its number exists "
            "only once CloudFormation publishes it, so the statement names the function's versions (':*'). This "
            "policy holds only that statement."))
        # CDK grants the deployment group's role the hook's invocation, on the function and its versions.
        acknowledge(self.deployment_group.role, f"IAM5[Resource::<{self._logical_id(hook.function)}.Arn>:*]", (
            "CodeDeploy invokes this one smoke-test hook with the deployment group's role; CDK's grant names the hook "
            "function and its versions (':*'), and nothing else."))
        self.hooks.append(hook)
        return hook

    def _accept_role_findings(self) -> None:
        role = self.deployment_group.role
        acknowledge(role, managed_policy_finding(DEPLOYMENT_ROLE_POLICY), (
            "AWS's own least-privilege policy for CodeDeploy's Lambda deployments: it may read and update this "
            "account's aliases and alarms and publish to SNS, and invoke only functions named CodeDeployHook_*; "
            "CDK attaches it to the deployment group's role and the service needs exactly that."))

    @staticmethod
    def _logical_id(function: lambda_.Function) -> str:
        resource = function.node.default_child
        assert isinstance(resource, CfnElement)
        return Stack.of(function).get_logical_id(resource)
