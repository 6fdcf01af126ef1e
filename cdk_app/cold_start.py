"""Cold-start control: provisioned concurrency with autoscaling, SnapStart, or a warmup rule.

One strategy per function, described by the plan :class:`ColdStart`: the function
(:class:`cdk_app.function.ServiceFunction`) checks it against its runtime and reserved
concurrency, once, then applies it: SnapStart and the initial provisioned concurrency (properties
of the function and its alias), the import mode the runtime package reads
(:meth:`ColdStart.environment`), and :class:`ColdStartControl` (scaling, the spillover alarm, the
warmup rule and its permission). The defaults are the settings' (:mod:`cdk_app.settings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from aws_cdk import ArnFormat, Duration, Stack, TimeZone
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct
from fastapi_lambda.constants import DEFAULT_HOLD_MS, IMPORT_MODE_VARIABLE, WARMUP_MARKER, ImportMode

from cdk_app.findings import acknowledge_serverless
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import Strategy
from cdk_app.settings.rules import check_bounds, check_cold_start, import_mode_for
from cdk_app.settings.schema import ProvisionedSettings, WarmupSettings

#: The settings' defaults (model_validate: pyright does not read pydantic's positional Field defaults).
_PROVISIONED, _WARMUP = ProvisionedSettings.model_validate({}), WarmupSettings.model_validate({})

#: Async invocations older than this are dropped, not delivered late (Lambda's minimum).
WARMUP_MAX_EVENT_AGE = Duration.seconds(60)
_DISPOSABLE_PINGS = (
    "Only the warmup schedule invokes the alias asynchronously, with a marker payload that carries no data: a "
    "failed ping is superseded by the next one (no retries, short maximum event age) and shows in the "
    "function's Errors alarm, so there is nothing for a dead-letter queue or failure destination to keep."
)


@dataclass(frozen=True)
class ScheduledCapacity:
    """Provisioned-concurrency bounds from a cron schedule on, e.g. business hours.

    :param name: the scheduled action's name, unique per function.
    :param cron: an Application Auto Scaling cron expression, six fields, e.g. ``"0 8 ? * MON-FRI *"``.
    :param min_capacity: the lowest provisioned concurrency from then on, 0 or more.
    :param max_capacity: the highest, at least ``min_capacity``.
    :param time_zone: the IANA time zone of ``cron``, e.g. ``"Europe/Berlin"``. @default UTC

    Example::

        from cdk_app.function import FastApiFunction

        business_hours = ProvisionedConcurrency(min_capacity=1, max_capacity=4, schedules=(
            ScheduledCapacity("weekday-morning", "0 8 ? * MON-FRI *", 5, 20, time_zone="Europe/Berlin"),
            ScheduledCapacity("weekday-evening", "0 19 ? * MON-FRI *", 1, 4, time_zone="Europe/Berlin")))
        FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app",
                        cold_start=ColdStart.provisioned_concurrency(business_hours))
    """

    name: str
    cron: str  # Application Auto Scaling cron, six fields: "0 8 ? * MON-FRI *"
    min_capacity: int
    max_capacity: int
    time_zone: str | None = None  # IANA name, e.g. "Europe/Berlin"; UTC when None


@dataclass(frozen=True)
class ProvisionedConcurrency:
    """Initialized instances on the alias, scaled on their utilization (Application Auto Scaling).

    :param min_capacity: instances always initialized, 1 or more. @default the settings'
        ``cold_start.provisioned.min`` (2)
    :param max_capacity: the upper bound of the scaling, at least ``min_capacity``. @default ``cold_start.provisioned.max`` (5)
    :param target_utilization: scale out above this share of the provisioned instances in use, in (0, 1).
        @default ``cold_start.provisioned.target_utilization`` (0.7)
    :param schedules: bounds that change on a schedule (:class:`ScheduledCapacity`). @default none

    Example::

        from cdk_app.function import FastApiFunction

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app",
                              cold_start=ColdStart.provisioned_concurrency(
                                  ProvisionedConcurrency(min_capacity=2, max_capacity=10, target_utilization=0.6)))
        spillover = api.cold_start.spillover_alarm  # requests that found every instance busy
    """

    min_capacity: int = _PROVISIONED.min
    max_capacity: int = _PROVISIONED.max
    target_utilization: float = _PROVISIONED.target_utilization
    schedules: tuple[ScheduledCapacity, ...] = ()


@dataclass(frozen=True)
class Warmup:
    """An EventBridge schedule that pings the alias, warming ``concurrency`` instances.

    The runtime package answers the ping before the app (Mangum would fail on it).

    :param rate: how often. @default ``cold_start.warmup.rate_minutes`` (5 minutes)
    :param concurrency: instances to keep warm (the ping fans out when above 1), 1 to
        ``fastapi_lambda.constants.MAX_WARMUP_CONCURRENCY``. @default ``cold_start.warmup.concurrency`` (1)
    :param hold_ms: how long fanned-out pings stay busy, so they land on distinct instances.
        @default ``fastapi_lambda.constants.DEFAULT_HOLD_MS``

    Example::

        from aws_cdk import Duration
        from cdk_app.function import FastApiFunction

        FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app",
                        cold_start=ColdStart.warmup_rule(Warmup(rate=Duration.minutes(5), concurrency=3)))
    """

    rate: Duration = field(default_factory=lambda: Duration.minutes(_WARMUP.rate_minutes))
    concurrency: int = _WARMUP.concurrency
    hold_ms: int = DEFAULT_HOLD_MS  # how long fanned-out pings stay busy, so they land on distinct instances

    def payload(self) -> dict[str, dict[str, int]]:
        """The event the rule sends: the warmup marker with the fan-out and hold time."""
        return {WARMUP_MARKER: {"concurrency": self.concurrency, "hold_ms": self.hold_ms}}


@dataclass(frozen=True)
class ColdStart:
    """The cold-start strategy of one function; build it with the class methods.

    A function (:class:`cdk_app.function.ServiceFunction`) checks the plan against its runtime and reserved
    concurrency (:meth:`validate`), then applies it (:class:`ColdStartControl`).

    :param strategy: ``"provisioned"``, ``"snapstart"``, ``"warmup"`` or ``"none"``. @default ``DEFAULTS.cold_start.strategy``
    :param provisioned: the provisioned concurrency (strategy ``"provisioned"``). @default ``ProvisionedConcurrency()``
        for that strategy, none otherwise
    :param warmup: the warmup schedule (strategy ``"warmup"``, or beside another one with ``force_warmup``).
        @default none
    :param force_warmup: allow a warmup rule beside provisioned concurrency or SnapStart. @default
        ``cold_start.warmup.force`` (False)
    :param import_mode: ``"eager"`` or ``"lazy"`` imports of the app's capabilities at init.
        @default ``DEFAULTS.cold_start.import_mode``: derived from the strategy (eager for provisioned and SnapStart)

    Example::

        from cdk_app.function import FastApiFunction

        FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app",
                        cold_start=ColdStart.snap_start())  # Python 3.12+, zip packaging
        FastApiFunction(stack, "Admin", source="lambda_src", app="service.handler:app",
                        cold_start=ColdStart.warmup_rule())  # a ping every 5 minutes
    """

    strategy: Strategy = DEFAULTS.cold_start.strategy
    provisioned: ProvisionedConcurrency | None = None
    warmup: Warmup | None = None
    force_warmup: bool = _WARMUP.force  # a warmup rule beside provisioned concurrency or SnapStart
    import_mode: ImportMode | None = DEFAULTS.cold_start.import_mode  # derived from the strategy when None

    @classmethod
    def provisioned_concurrency(cls, settings: ProvisionedConcurrency = ProvisionedConcurrency(),
                                **kwargs: Any) -> ColdStart:
        """Provisioned concurrency on the alias; ``kwargs`` are the other fields (``force_warmup``, ...)."""
        return cls("provisioned", provisioned=settings, **kwargs)

    @classmethod
    def snap_start(cls, **kwargs: Any) -> ColdStart:
        """SnapStart on published versions (not with provisioned concurrency or a container image)."""
        return cls("snapstart", **kwargs)

    @classmethod
    def warmup_rule(cls, settings: Warmup = Warmup(), **kwargs: Any) -> ColdStart:
        """An EventBridge schedule that pings the alias (:class:`Warmup`)."""
        return cls("warmup", warmup=settings, **kwargs)

    @property
    def provisioned_settings(self) -> ProvisionedConcurrency | None:
        """The provisioned-concurrency settings in force, or None for other strategies."""
        return (self.provisioned or ProvisionedConcurrency()) if self.strategy == "provisioned" else None

    @property
    def effective_import_mode(self) -> ImportMode:
        """``import_mode``, or the strategy's: eager where init runs before traffic (provisioned, SnapStart)."""
        return self.import_mode or import_mode_for(self.strategy)

    def environment(self) -> dict[str, str]:
        """What the runtime package reads of this plan: the import mode (the warmup payload comes with each ping)."""
        return {IMPORT_MODE_VARIABLE: self.effective_import_mode}

    def validate(self, runtime: lambda_.Runtime, reserved_concurrency: int | None = None) -> None:
        """Raise :class:`cdk_app.settings.rules.RuleError` naming the conflict and the fix.

        The function that applies the plan calls this, once: whether a plan works depends on that
        function's runtime and reserved concurrency.
        """
        is_python = runtime.family == lambda_.RuntimeFamily.PYTHON and runtime.name.startswith("python")
        p = self.provisioned_settings if self.strategy == "provisioned" else self.provisioned
        check_cold_start(
            self.strategy,
            provisioned=p and (p.min_capacity, p.max_capacity, p.target_utilization),
            warmup_concurrency=self.warmup and self.warmup.concurrency,
            force_warmup=self.force_warmup,
            python_version=runtime.name.removeprefix("python") if is_python else None,
            container_image=runtime.name == lambda_.Runtime.FROM_IMAGE.name,
            reserved_concurrency=reserved_concurrency,
        )
        for schedule in p.schedules if p else ():
            check_bounds(schedule.min_capacity, schedule.max_capacity, low=0, what=f"schedule {schedule.name!r}")


class ColdStartControl(Construct):
    """Scaling, alarm and warmup resources of a :class:`ColdStart` plan, on an alias.

    The alias must already carry the plan's function-level settings (SnapStart,
    initial provisioned concurrency), and the plan must have been validated against the
    function: :class:`cdk_app.function.ServiceFunction` does all three, and exposes it as
    ``function.cold_start``. Its resources: :attr:`spillover_alarm` (provisioned concurrency; alarm
    it with :class:`cdk_app.observability.Observability`) and :attr:`warmup_rule` (warmup), else None.

    :param function: the function the plan is for (its role may invoke the alias for a warmup fan-out).
    :param alias: the alias that carries the plan (scaling, warmup target).
    :param plan: the validated :class:`ColdStart`.

    Example::

        from aws_cdk import aws_lambda as lambda_

        function = lambda_.Function(stack, "Legacy", runtime=lambda_.Runtime.PYTHON_3_13, handler="index.handler",
                                    code=lambda_.Code.from_inline("def handler(event, context): return {}"))
        alias = lambda_.Alias(stack, "Live", alias_name="live", version=function.current_version)
        plan = ColdStart.warmup_rule(Warmup(concurrency=1))
        plan.validate(function.runtime)
        ColdStartControl(stack, "ColdStart", function=function, alias=alias, plan=plan)
    """

    def __init__(self, scope: Construct, id: str, *, function: lambda_.Function, alias: lambda_.Alias,
                 plan: ColdStart) -> None:
        super().__init__(scope, id)
        self.plan = plan
        self.spillover_alarm: cloudwatch.Alarm | None = None
        self.warmup_rule: events.Rule | None = None
        if plan.provisioned_settings is not None:
            self._scale(alias, plan.provisioned_settings)
        if plan.warmup is not None:
            self._warm(function, alias, plan.warmup)

    def _scale(self, alias: lambda_.Alias, settings: ProvisionedConcurrency) -> None:
        scaling = alias.add_auto_scaling(min_capacity=settings.min_capacity, max_capacity=settings.max_capacity)
        scaling.scale_on_utilization(utilization_target=settings.target_utilization)
        for schedule in settings.schedules:
            scaling.scale_on_schedule(
                schedule.name,
                schedule=appscaling.Schedule.expression(f"cron({schedule.cron})"),
                min_capacity=schedule.min_capacity,
                max_capacity=schedule.max_capacity,
                time_zone=TimeZone.of(schedule.time_zone) if schedule.time_zone else None,
            )
        # Spillover: requests that found every provisioned instance busy and cold-started.
        self.spillover_alarm = cloudwatch.Alarm(
            self,
            "SpilloverAlarm",
            metric=alias.metric("ProvisionedConcurrencySpilloverInvocations", statistic="Sum",
                                period=Duration.minutes(1)),
            threshold=1,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Requests are spilling over provisioned concurrency (cold starts): raise "
                              "provisioned.max or lower provisioned.target_utilization.",
        )

    def _warm(self, function: lambda_.Function, alias: lambda_.Alias, settings: Warmup) -> None:
        self.warmup_rule = events.Rule(
            self, "WarmupRule", schedule=events.Schedule.rate(settings.rate),
            description=f"Keeps {settings.concurrency} instance(s) of {alias.alias_name} warm",
        )
        # No retries: a ping that failed is superseded by the next one. EventBridge invokes
        # asynchronously, so Lambda's own two async retries must be switched off on the alias too.
        # Casts: jsii's classes miss their own interfaces for pyright (parameter names, aws/jsii#4541).
        self.warmup_rule.add_target(cast(events.IRuleTarget, targets.LambdaFunction(
            cast(lambda_.IFunction, alias), event=events.RuleTargetInput.from_object(settings.payload()),
            retry_attempts=0)))
        alias.configure_async_invoke(retry_attempts=0, max_event_age=WARMUP_MAX_EVENT_AGE)
        # Only the rule invokes the alias asynchronously, and what it sends is disposable.
        acknowledge_serverless(self.warmup_rule.node.default_child, "EventBusDLQ", _DISPOSABLE_PINGS)
        invoke_config = alias.node.try_find_child("EventInvokeConfig")
        if invoke_config is not None:
            acknowledge_serverless(invoke_config.node.default_child, "LambdaAsyncFailureDestination",
                                   _DISPOSABLE_PINGS)
        if settings.concurrency > 1 and function.role is not None:
            # Fan-out invokes the alias itself. A separate policy, with the ARN spelled out,
            # because the function already depends on its default policy (a cycle otherwise).
            alias_arn = Stack.of(self).format_arn(
                service="lambda", resource="function", arn_format=ArnFormat.COLON_RESOURCE_NAME,
                resource_name=f"{function.function_name}:{alias.alias_name}",
            )
            iam.Policy(self, "FanOutPolicy", roles=[function.role], statements=[
                iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[alias_arn])])
