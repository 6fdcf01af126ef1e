"""The FastAPI Lambda function: a published version, the ``live`` alias, tracing and logs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aws_cdk import Annotations, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app import compliance
from cdk_app.bundling import (
    LAMBDA_SRC,
    BundlingError,
    BundlingTarget,
    application_code,
    dependencies_code,
    find_python,
    missing_interpreter_message,
)
from cdk_app.cold_start import ColdStart, ColdStartControl
from cdk_app.config import TIMEOUT_HEADROOM, timeout_for

DEFAULT_HANDLER = "service.handler.handler"
ALIAS_NAME = "live"


def _check_target_interpreter(scope: Construct, target: BundlingTarget) -> None:
    """Warn (or fail, when compiled output is required) before bundling without .pyc."""
    if not Stack.of(scope).bundling_required or find_python(target.python_version) is not None:
        return
    message = missing_interpreter_message(target.python_version)
    if target.require_compiled:
        raise BundlingError(message + " Set bundling.require_compiled to false to accept a slower bundle.")
    Annotations.of(scope).add_warning_v2("fastapi-lambda:no-target-python", message)


class DependenciesLayer(Construct):
    """The locked third-party dependencies as one Lambda layer, shared by every function.

    Code-only changes then upload only the (kilobyte-sized) function code.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: Path = LAMBDA_SRC,
        target: BundlingTarget | None = None,
        use_docker: bool = False,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        self.target = target or BundlingTarget()
        _check_target_interpreter(self, self.target)
        self.layer = lambda_.LayerVersion(
            self,
            "Layer",
            code=dependencies_code(source=Path(source), target=self.target, use_docker=use_docker),
            compatible_runtimes=[self.target.runtime],
            compatible_architectures=[self.target.lambda_architecture],
            description=f"Locked dependencies for Python {self.target.python_version} on {self.target.architecture}",
            removal_policy=removal_policy,
        )


class FastApiFunction(Construct):
    """A Python Lambda function that serves the FastAPI app through the ``live`` alias.

    Everything that invokes it (API Gateway, schedules, queues) should target
    :attr:`alias`, never ``$LATEST``: the alias is where provisioned concurrency and
    SnapStart apply and what a deployment shifts atomically.

    The timeout is 120% of ``expected_duration`` (rounded up to whole seconds);
    ``max_timeout`` (the front door's integration limit) caps it with a clear error.
    ``cold_start`` picks one strategy (provisioned concurrency, SnapStart, a warmup
    rule or none) and with it the app's import mode (``IMPORT_MODE``).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: Path = LAMBDA_SRC,
        handler: str = DEFAULT_HANDLER,
        target: BundlingTarget | None = None,
        dependencies: lambda_.ILayerVersion | None = None,
        use_docker: bool = False,
        memory_size: int = 1024,
        expected_duration: Duration = Duration.seconds(5),
        max_timeout: Duration | None = Duration.seconds(29),
        reserved_concurrency: int | None = None,
        environment: Mapping[str, str] | None = None,
        log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        description: str | None = None,
        cold_start: ColdStart = ColdStart(),
        role: iam.IRole | None = None,
    ) -> None:
        super().__init__(scope, id)
        self.target = target or BundlingTarget()
        cold_start.validate(self.target.runtime, reserved_concurrency)
        timeout_seconds = timeout_for(expected_duration.to_seconds())
        if max_timeout is not None and timeout_seconds > max_timeout.to_seconds():
            raise ValueError(
                f"expected_duration={expected_duration.to_seconds():g}s gives a {timeout_seconds}s timeout (120%), "
                f"above max_timeout={max_timeout.to_seconds():g}s; lower expected_duration to "
                f"{int(max_timeout.to_seconds() / TIMEOUT_HEADROOM)}s or less"
            )
        if dependencies is None:
            dependencies = DependenciesLayer(
                self, "Dependencies", source=source, target=self.target, use_docker=use_docker,
                removal_policy=removal_policy,
            ).layer
        else:
            _check_target_interpreter(self, self.target)

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        # Own role instead of AWSLambdaBasicExecutionRole: it may write to its own log group only.
        self.role = role or iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.log_group.grant_write(self.role)
        self.function = lambda_.Function(
            self,
            "Function",
            code=application_code(source=Path(source), target=self.target, use_docker=use_docker),
            handler=handler,
            role=self.role,
            runtime=self.target.runtime,
            architecture=self.target.lambda_architecture,
            layers=[dependencies],
            memory_size=memory_size,
            timeout=Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency,
            tracing=lambda_.Tracing.ACTIVE,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            environment={"IMPORT_MODE": cold_start.effective_import_mode, **(environment or {})},
            description=description,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if cold_start.strategy == "snapstart" else None,
        )
        self.alias = lambda_.Alias(
            self, "Alias", alias_name=ALIAS_NAME, version=self.function.current_version,
            provisioned_concurrent_executions=cold_start.provisioned_settings.min_capacity
            if cold_start.provisioned_settings else None,
        )
        self.cold_start = ColdStartControl(self, "ColdStart", function=self.function, alias=self.alias,
                                           plan=cold_start)
        compliance.acknowledge_function(self)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to invoke the ``live`` alias (only)."""
        return self.alias.grant_invoke(grantee)

    def metric_errors(self, **props) -> cloudwatch.Metric:
        return self.alias.metric_errors(**props)

    def metric_throttles(self, **props) -> cloudwatch.Metric:
        return self.alias.metric_throttles(**props)

    def metric_duration(self, **props) -> cloudwatch.Metric:
        return self.alias.metric_duration(**props)

    def metric_invocations(self, **props) -> cloudwatch.Metric:
        return self.alias.metric_invocations(**props)
