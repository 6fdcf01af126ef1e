"""One building block for every Lambda function, and the FastAPI function built on it.

:class:`ServiceFunction` sets up everything a function of this library has: the code
asset (the user's source plus the runtime package :mod:`fastapi_lambda`), the dependency
layer of what its capabilities need (shared by the functions that need the same), its own
role and log group, X-Ray tracing, JSON logs, a published version with the ``live`` alias,
the cold-start plan, and optionally a VPC.
:class:`FastApiFunction` is the variant behind an API Gateway (its timeout is capped
by the gateway); the queue worker is another.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import jsii
from aws_cdk import Annotations, Aspects, Duration, IAspect, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct
from fastapi_lambda.constants import (
    APP_VARIABLE,
    GENERIC_HANDLER,
    METRICS_NAMESPACE,
    METRICS_NAMESPACE_VARIABLE,
    SERVICE_NAME_VARIABLE,
    TASK_REGISTRY_VARIABLE,
    TRACING_VARIABLE,
)
from fastapi_lambda.requirements import CAPABILITIES, Capability, capabilities_of, dependency_set

from cdk_app.bundling.assets import application_code, dependencies_code, resolve_source
from cdk_app.bundling.target import RUNTIME_NAME, BundlingError, BundlingTarget
from cdk_app.cdk_values import log_retention, removal_policy, tracing
from cdk_app.cold_start import ColdStart, ColdStartControl
from cdk_app.findings import LOG_GROUP_KEY, acknowledge, acknowledge_serverless, skip_checkov
from cdk_app.image import image_code
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import Packaging
from cdk_app.settings.rules import GATEWAY_TIMEOUT_LIMITS, check_timeout, timeout_for

#: The example app's handler in this repository's ``lambda_src``.
DEFAULT_HANDLER = "service.handler.handler"
ALIAS_NAME = "live"
#: What Lambda does with a function's own role to place it in a VPC, and checks the role may do at CreateFunction
#: (Lambda developer guide, "Required IAM permissions" of VPC functions). AWSLambdaVPCAccessExecutionRole, which CDK
#: attaches to roles it creates, adds logs:* on every log group; AWSLambdaENIManagementAccess lacks DescribeSubnets.
VPC_NETWORK_ACTIONS = ("ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets",
                       "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses")
DEFAULT_EXPECTED_DURATION = Duration.seconds(DEFAULTS.function.expected_duration_seconds)
#: The newest Python runtime cdk-nag's AwsSolutions-L1 and Serverless-LambdaLatestVersion expect.
LATEST_PYTHON = lambda_.Runtime.PYTHON_3_14.name
#: The default cap of FastApiFunction's timeout: the lower of the two gateways' limits, since a function
#: alone does not know which one will front it (the stack passes its own gateway's).
DEFAULT_MAX_TIMEOUT = Duration.seconds(min(GATEWAY_TIMEOUT_LIMITS.values()))

#: ``lambda_.Function`` props this construct sets itself, and the prop of ours to use instead.
_MANAGED_PROPS = {
    "code": "source (and packaging)", "handler": "handler or app", "runtime": "target", "architecture": "target",
    "role": "role", "layers": "layers (and dependencies)", "memory_size": "memory_size", "timeout": "timeout",
    "reserved_concurrent_executions": "reserved_concurrency", "environment": "environment",
    "log_group": "log_group", "log_retention": "log_group", "logging_format": "(always JSON)",
    "tracing": "tracing", "vpc": "vpc", "vpc_subnets": "vpc_subnets", "security_groups": "security_groups",
    "snap_start": "cold_start", "description": "description", "initial_policy": "initial_policy",
    "current_version_options": "(managed: the live alias)",
}


def _check_target_interpreter(scope: Construct, target: BundlingTarget) -> None:
    """Warn (or fail, when compiled output is required) at synth, before bundling without .pyc."""
    if Stack.of(scope).bundling_required:
        target.python(warn=lambda message: Annotations.of(scope).add_warning_v2("fastapi-lambda:no-target-python",
                                                                                message))


def _check_module_exists(source: Path, module: str, prop: str) -> None:
    """The module a handler or app names must be in the code asset (the runtime package always is)."""
    if module == RUNTIME_NAME or module.startswith(f"{RUNTIME_NAME}."):
        return
    path = source.joinpath(*module.split("."))
    if not (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()):
        raise BundlingError(
            f"{prop}: module '{module}' is not in the code asset {source} (looked for "
            f"{path.relative_to(source)}.py and {path.relative_to(source)}/__init__.py); pass source= the folder "
            "that holds your package, or name a module in it"
        )


def _reference(source: Path, prop: str, value: str) -> None:
    """Check a ``package.module:attribute`` reference against the code asset."""
    module, _, attribute = value.partition(":")
    if not module or not attribute.isidentifier():
        raise ValueError(f"{prop}={value!r} must look like 'package.module:attribute', e.g. 'orders.main:app'")
    _check_module_exists(source, module, f"{prop}={value!r}")


def _entry_point(source: Path, handler: str | None, app: str | None,
                 tasks: str | None = None) -> tuple[str, dict[str, str]]:
    """The Lambda handler string and the environment it needs, checked against the source.

    ``app`` and ``tasks`` (a task registry) use the runtime package's generic entry point;
    ``handler`` names a module of your own (which may serve both itself).
    """
    if handler is not None and app is not None:
        raise ValueError(f"handler={handler!r} and app={app!r} are both set; pass one: app= uses the runtime "
                         "package's generic entry point, handler= your own module")
    environment: dict[str, str] = {}
    for prop, value, variable in (("app", app, APP_VARIABLE), ("tasks", tasks, TASK_REGISTRY_VARIABLE)):
        if value is not None:
            _reference(source, prop, value)
            environment[variable] = value
    if handler is None and environment:
        return GENERIC_HANDLER, environment
    handler = handler or DEFAULT_HANDLER
    module, _, function = handler.rpartition(".")
    if not module or not function.isidentifier():
        raise ValueError(f"handler={handler!r} must look like 'package.module.function'")
    _check_module_exists(source, module, f"handler={handler!r}" + (
        " (the default; pass app='package.module:app' for your own app)" if handler == DEFAULT_HANDLER else ""))
    return handler, environment


def _check_function_props(props: Mapping[str, Any]) -> None:
    allowed = set(inspect.signature(lambda_.FunctionProps.__init__).parameters) - {"self"}
    for key in props:
        if key in _MANAGED_PROPS:
            raise ValueError(f"function_props[{key!r}] is set by the construct; use its {_MANAGED_PROPS[key]} "
                             "prop instead")
        if key not in allowed:
            raise ValueError(f"function_props[{key!r}] is not a lambda Function prop; valid ones include "
                             f"{', '.join(sorted(allowed - set(_MANAGED_PROPS)))}")


class DependenciesLayer(Construct):
    """The locked third-party dependencies as Lambda layers: one per dependency set, shared by the functions
    with that set.

    A function's set is what its capabilities need (:mod:`fastapi_lambda.requirements`): no
    ``redis`` without a cache, no ``cryptography`` unless it verifies tokens itself. Each layer is
    made once, on the first function that asks for its set (:meth:`layer_for`); functions with the
    same set share it, so Lambda caches it once and code-only changes upload only the function
    code.

    :param source: the folder holding the ``requirements.txt`` lock (exact pins). @default ``./lambda_src`` of
        the app being synthesized
    :param target: the Python version and architecture the layers are built for (their ``.pyc`` too).
        @default ``BundlingTarget()``, the settings' ``DEFAULTS.function.python_version`` and ``architecture``
    :param removal_policy: of the layer versions. @default ``DEFAULTS.removal_policy``

    Example::

        from cdk_app.bundling import BundlingTarget

        layer = DependenciesLayer(stack, "Dependencies", source="lambda_src",
                                  target=BundlingTarget(python_version="3.13", architecture="arm64"))
        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app", dependencies=layer)
        worker = ServiceFunction(stack, "Worker", source="lambda_src", tasks="service.tasks:registry",
                                 dependencies=layer)  # shares the layer when it needs the same set
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: Path | str | None = None,
        target: BundlingTarget | None = None,
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
    ) -> None:
        super().__init__(scope, id)
        self.target = target or BundlingTarget()
        self.source = resolve_source(source, lock=True)
        self.removal_policy = removal_policy
        _check_target_interpreter(self, self.target)
        #: The layers made so far, by the dependency set they hold.
        self.layers: dict[frozenset[Capability], lambda_.LayerVersion] = {}

    def layer_for(self, capabilities: Iterable[Capability]) -> lambda_.LayerVersion:
        """The layer with what ``capabilities`` need (and nothing only other capabilities need), shared."""
        key = dependency_set(frozenset(capabilities))
        if key not in self.layers:
            name = "".join(c.title().replace("-", "") for c in CAPABILITIES if c in key and c != "core")
            self.layers[key] = lambda_.LayerVersion(
                self,
                f"Layer{name}",
                code=dependencies_code(source=self.source, target=self.target, capabilities=key),
                compatible_runtimes=[self.target.runtime],
                compatible_architectures=[self.target.lambda_architecture],
                description=f"Locked dependencies of {', '.join(c for c in CAPABILITIES if c in key)} for Python "
                            f"{self.target.python_version} on {self.target.architecture}",
                removal_policy=self.removal_policy,
            )
        return self.layers[key]

    @classmethod
    def shared(cls, scope: Construct, *, source: Path, target: BundlingTarget,
               removal_policy: RemovalPolicy) -> DependenciesLayer:
        """The stack's layers for ``source`` and ``target``, made on first use: functions built without
        ``dependencies=`` share them too."""
        stack = Stack.of(scope)
        same = [c for c in stack.node.children if isinstance(c, DependenciesLayer)]
        for found in same:
            if found.source == source and found.target == target:
                return found
        name = "Dependencies" + (str(len(same) + 1) if same else "")
        return cls(stack, name, source=source, target=target, removal_policy=removal_policy)


@jsii.implements(IAspect)
class _AddDependencies:
    """Adds a function's layers at synthesis, once every capability has configured it: the dependency
    layer follows from the variables the runtime will read."""

    def __init__(self, scope: Construct, add_layers: Callable[[], None]) -> None:
        self.path = scope.node.path
        self.add_layers = add_layers
        self.done = False

    def visit(self, node: IConstruct) -> None:
        if not self.done and node.node.path == self.path:
            self.done = True
            self.add_layers()


@jsii.implements(iam.IGrantable, ec2.IConnectable)
class ServiceFunction(Construct):
    """A Python Lambda function of this library, invoked through its ``live`` alias.

    Everything that invokes it (API Gateway, schedules, queues) should target
    :attr:`alias`, never ``$LATEST``: the alias is where provisioned concurrency and
    SnapStart apply and what a deployment shifts atomically. It is an ``IGrantable``
    (``queue.grant_send_messages(function)``) and, with ``vpc=``, an ``IConnectable``.
    Its resources: :attr:`function`, :attr:`alias`, :attr:`role`, :attr:`log_group`,
    :attr:`cold_start` (a :class:`cdk_app.cold_start.ColdStartControl`).

    :param source: the folder holding your package and its ``requirements.txt`` lock.
        @default ``./lambda_src`` of the app being synthesized
    :param handler: your own handler, ``"package.module.function"``; not with ``app``.
        @default ``service.handler.handler`` (this repository's example app) unless ``app`` or ``tasks`` is given
    :param app: any ASGI app, served by the runtime package's generic entry point (no handler module
        needed), as ``"package.module:app"``. @default none
    :param tasks: a task registry (a queue worker),
        as ``"package.module:registry"``. @default none
    :param target: the Python version and architecture the code and layer are built for.
        @default ``BundlingTarget()`` (``DEFAULTS.function.python_version``, ``DEFAULTS.function.architecture``)
    :param dependencies: a :class:`DependenciesLayer` (the layer of this function's dependency set is chosen
        from it at synthesis, from the capabilities configured on the function: :attr:`capabilities`), or a
        layer of your own used as it is. @default the stack's :class:`DependenciesLayer` for ``source`` and
        ``target`` (made on first use)
    :param capabilities: what the variables cannot show, e.g. ``("http",)`` for a worker whose task registry
        imports FastAPI; names from :data:`fastapi_lambda.requirements.CAPABILITIES`. @default none
    :param layers: more layers, after the dependency layer (they may override what it holds). @default none
    :param memory_size: MB, 128-10240 (CPU grows with it). @default ``DEFAULTS.function.memory_mb``
    :param timeout: the function's timeout; not with ``expected_duration``. @default 120% of ``expected_duration``
    :param expected_duration: the slowest expected invocation; the timeout is 120% of it.
        @default ``DEFAULTS.function.expected_duration_seconds``
    :param max_timeout: the longest timeout allowed (a larger one is an error naming ``max_timeout_reason``).
        @default no cap
    :param max_timeout_reason: what imposes ``max_timeout``, for the error message. @default ``"max_timeout"``
    :param reserved_concurrency: reserved concurrent executions. @default none (the account's pool)
    :param environment: more environment variables (names of parameters and secrets, never their values).
        @default none
    :param log_group: a log group of your own. @default one of its own, with ``log_retention`` and ``removal_policy``
    :param log_retention: of its own log group. @default ``DEFAULTS.log_retention_days``
    :param removal_policy: of its log group and of the stack's dependency layer when it makes it.
        @default ``DEFAULTS.removal_policy``
    :param description: the function's description. @default none
    :param cold_start: one strategy (:class:`cdk_app.cold_start.ColdStart`) and with it the app's import mode;
        checked against the runtime and ``reserved_concurrency``. @default ``ColdStart()``, ``DEFAULTS.cold_start.strategy``
    :param role: a role of your own; it then needs the VPC network-interface permissions itself with ``vpc``.
        @default a role of its own that may write to its own log group only
    :param initial_policy: statements added to the role. @default none
    :param tracing: X-Ray tracing (its ``*`` statement goes into a policy of its own).
        @default ``DEFAULTS.observability.tracing`` (active)
    :param adot_layer: the AWS Distro for OpenTelemetry layer, for traces through OpenTelemetry instead of the
        X-Ray SDK. @default none
    :param service_name: the service name in logs, metrics and traces. @default the stack's name
    :param vpc: a VPC to place the function in (:attr:`connections`). @default none (no VPC)
    :param vpc_subnets: its subnets in ``vpc``. @default CDK's (private subnets)
    :param security_groups: its security groups in ``vpc``. @default one made by CDK
    :param function_props: any other ``aws_lambda.Function`` prop, passed through (those this construct sets
        are refused, naming the prop to use instead). @default none
    :param packaging: ``"zip"`` (code plus dependency layer) or ``"image"`` (a container image built without
        Docker, :mod:`cdk_app.image`; no layers, no SnapStart). @default ``DEFAULTS.function.packaging``

    Example::

        from aws_cdk import Duration
        from aws_cdk import aws_sqs as sqs

        worker = ServiceFunction(stack, "Reports", source="lambda_src", tasks="service.tasks:registry",
                                 expected_duration=Duration.seconds(60), memory_size=2048)
        jobs = sqs.Queue(stack, "Jobs", visibility_timeout=Duration.minutes(10))
        jobs.grant_consume_messages(worker)  # the function's role
        worker.add_environment("JOBS_QUEUE_URL", jobs.queue_url)
        errors = worker.metric_errors()  # on the live alias
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        source: Path | str | None = None,
        handler: str | None = None,
        app: str | None = None,
        tasks: str | None = None,
        target: BundlingTarget | None = None,
        dependencies: DependenciesLayer | lambda_.ILayerVersion | None = None,
        capabilities: Iterable[Capability] = (),
        layers: Sequence[lambda_.ILayerVersion] = (),
        memory_size: int = DEFAULTS.function.memory_mb,
        timeout: Duration | None = None,
        expected_duration: Duration | None = None,
        max_timeout: Duration | None = None,
        max_timeout_reason: str = "max_timeout",
        reserved_concurrency: int | None = None,
        environment: Mapping[str, str] | None = None,
        log_group: logs.ILogGroup | None = None,
        log_retention: logs.RetentionDays = log_retention(DEFAULTS.log_retention_days),
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
        description: str | None = None,
        cold_start: ColdStart = ColdStart(),
        role: iam.IRole | iam.Role | None = None,  # Role spelled out: it fails pyright's IRole check (jsii#4541)
        initial_policy: Sequence[iam.PolicyStatement] = (),
        tracing: lambda_.Tracing = tracing(DEFAULTS.observability.tracing),
        adot_layer: lambda_.ILayerVersion | None = None,
        service_name: str | None = None,
        vpc: ec2.IVpc | None = None,
        vpc_subnets: ec2.SubnetSelection | None = None,
        security_groups: Sequence[ec2.ISecurityGroup] | None = None,
        function_props: Mapping[str, Any] | None = None,
        packaging: Packaging = DEFAULTS.function.packaging,
    ) -> None:
        super().__init__(scope, id)
        self.target = target or BundlingTarget()
        self.packaging: Packaging = packaging
        image = packaging == "image"
        cold_start.validate(lambda_.Runtime.FROM_IMAGE if image else self.target.runtime, reserved_concurrency)
        if image and (dependencies is not None or layers or adot_layer is not None):
            raise ValueError("packaging='image' takes no layers (dependencies, layers, adot_layer): Lambda refuses "
                             "layers on container images, whose dependencies are installed into the image; remove "
                             "them, or use packaging='zip' (for ADOT, install its Python distro into the image)")
        _check_function_props(function_props or {})
        if timeout is not None and expected_duration is not None:
            raise ValueError("timeout and expected_duration are both set; pass one (the timeout is 120% of "
                             "expected_duration)")
        if timeout is not None:
            timeout_seconds = timeout.to_seconds()
            check_timeout(timeout_seconds, max_timeout and max_timeout.to_seconds(), max_timeout_reason)
        else:
            expected = (expected_duration or DEFAULT_EXPECTED_DURATION).to_seconds()
            timeout_seconds = timeout_for(expected)
            check_timeout(timeout_seconds, max_timeout and max_timeout.to_seconds(), max_timeout_reason,
                          expected_duration_seconds=expected)
        if vpc is None and (vpc_subnets is not None or security_groups):
            raise ValueError("vpc_subnets and security_groups need vpc=; pass the VPC the function should join")
        own_layer = dependencies is not None and not isinstance(dependencies, DependenciesLayer)
        self.source = resolve_source(source, lock=not own_layer)
        handler_name, entry_environment = _entry_point(self.source, handler, app, tasks)
        #: Whether its entry point builds an ASGI app (``app=`` or a handler module), not only a task registry.
        self.serves_http = app is not None or handler is not None or tasks is None
        self._declared_capabilities = frozenset(capabilities)
        unknown = self._declared_capabilities - set(CAPABILITIES)
        if unknown:
            raise ValueError(f"capabilities={sorted(unknown)} are not capabilities of {RUNTIME_NAME}; choose from "
                             f"{', '.join(CAPABILITIES)}")
        #: Where its dependency layer comes from (None for an image, which installs the lock itself).
        self.dependencies: DependenciesLayer | lambda_.ILayerVersion | None = None if image else (
            dependencies or DependenciesLayer.shared(self, source=self.source, target=self.target,
                                                     removal_policy=removal_policy))
        if own_layer:
            _check_target_interpreter(self, self.target)
        #: What the runtime package will use (known at synthesis, None before) and the layer that holds it.
        self.capabilities: frozenset[Capability] | None = None
        self.dependency_layer: lambda_.ILayerVersion | None = None
        self._layers = [*layers, *([adot_layer] if adot_layer else [])]
        self._same_layer_as: ServiceFunction | None = None

        #: The function's variables, as its capabilities configure them (what the runtime will read).
        self._environment = {**cold_start.environment(), **entry_environment,
                             **self._observability_environment(tracing, adot_layer, service_name),
                             **(environment or {})}
        self.log_group = log_group or self._log_group(log_retention, removal_policy)
        # Own role instead of AWSLambdaBasicExecutionRole: it may write to its own log group only.
        self.owns_role = role is None
        # Casts: jsii's classes miss their own interfaces for pyright (parameter names, aws/jsii#4541).
        self.role = cast(iam.IRole, role or iam.Role(
            self, "Role", assumed_by=cast(iam.IPrincipal, iam.ServicePrincipal("lambda.amazonaws.com"))))
        self.log_group.grant_write(self.role)
        # A role brought with vpc= must carry the network-interface permissions itself.
        self.network_policy = self._network_policy() if vpc is not None and self.owns_role else None
        self.function = lambda_.Function(
            self,
            "Function",
            code=image_code(source=self.source, target=self.target, command=handler_name) if image
            else application_code(source=self.source, target=self.target),
            handler=lambda_.Handler.FROM_IMAGE if image else handler_name,
            role=self.role,
            runtime=lambda_.Runtime.FROM_IMAGE if image else self.target.runtime,
            architecture=self.target.lambda_architecture,
            memory_size=memory_size,
            timeout=Duration.seconds(timeout_seconds),
            reserved_concurrent_executions=reserved_concurrency,
            log_group=self.log_group,
            logging_format=lambda_.LoggingFormat.JSON,
            application_log_level_v2=lambda_.ApplicationLogLevel.INFO,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            environment=self._environment,
            description=description,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if cold_start.strategy == "snapstart" else None,
            initial_policy=list(initial_policy) or None,
            vpc=vpc,
            vpc_subnets=vpc_subnets,
            security_groups=list(security_groups) if security_groups else None,
            **(function_props or {}),
        )
        if self.network_policy is not None:
            self.function.node.add_dependency(self.network_policy)  # Lambda checks it at CreateFunction
        if cold_start.strategy == "snapstart":
            Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:snapStartRequirePublish",
                "The construct always publishes a version (current_version) and the live alias points at it, "
                "which is where SnapStart applies.",
            )
        self.tracing_policy = self._trace(tracing)
        self._accept_function_findings()
        self.alias = lambda_.Alias(
            self, "Alias", alias_name=ALIAS_NAME, version=cast(lambda_.IVersion, self.function.current_version),  # jsii#4541
            provisioned_concurrent_executions=cold_start.provisioned_settings.min_capacity
            if cold_start.provisioned_settings else None,
        )
        self.cold_start = ColdStartControl(self, "ColdStart", function=self.function, alias=self.alias,
                                           plan=cold_start)
        if self.dependencies is not None:
            Aspects.of(self).add(_AddDependencies(self, self._add_layers))

    def use_layer_of(self, other: ServiceFunction) -> None:
        """Run on ``other``'s dependency layer, whatever this function's own capabilities (a release hook runs
        the released function's code: one layer fewer to build and upload)."""
        self._same_layer_as = other

    def _choose_layer(self) -> lambda_.ILayerVersion | None:
        """The dependency layer, chosen by the capabilities the function's variables configure (once)."""
        if self.dependency_layer is None and self.dependencies is not None:
            if self._same_layer_as is not None:
                self.dependency_layer = self._same_layer_as._choose_layer()
                self.capabilities = self._same_layer_as.capabilities
            else:
                self.capabilities = capabilities_of(self._environment, serves_http=self.serves_http) \
                    | self._declared_capabilities
                self.dependency_layer = self.dependencies.layer_for(self.capabilities) \
                    if isinstance(self.dependencies, DependenciesLayer) else self.dependencies
        return self.dependency_layer

    def _add_layers(self) -> None:
        """The dependency layer first (then ``layers`` and ADOT's, which may override what it holds); called at
        synthesis, once every capability has configured the function."""
        layer = self._choose_layer()
        self.function.add_layers(*([layer] if layer else []), *self._layers)

    def _log_group(self, retention: logs.RetentionDays, removal_policy: RemovalPolicy) -> logs.LogGroup:
        log_group = logs.LogGroup(self, "Logs", retention=retention, removal_policy=removal_policy)
        skip_checkov(log_group, "CKV_AWS_158", LOG_GROUP_KEY)
        return log_group

    @property
    def _cfn_function(self) -> lambda_.CfnFunction:
        """The function's CloudFormation resource (``node.default_child`` is typed ``IConstruct | None``)."""
        return cast(lambda_.CfnFunction, self.function.node.default_child)

    def _accept_function_findings(self) -> None:
        """What the function resource is reported for by design, each with its reason."""
        function = self._cfn_function
        if self.packaging == "zip" and self.target.runtime.name != LATEST_PYTHON:
            runtime = (
                f"The runtime is chosen per environment (function.python_version, default 3.13) because the "
                f"dependency layer and its .pyc are built for that exact version; {LATEST_PYTHON} is one setting "
                "away."
            )
            acknowledge(function, "L1", runtime)
            acknowledge_serverless(function, "LambdaLatestVersion", runtime)
        tracing_config: dict[str, str] = Stack.of(function).resolve(function.tracing_config) or {}
        if tracing_config.get("mode") != "Active":
            acknowledge_serverless(function, "LambdaTracing", (
                f"X-Ray tracing is {tracing_config.get('mode', 'off')} by this function's tracing= prop "
                "(observability.tracing in the settings): an environment may leave traces out for their cost, logs "
                "and metrics still flow."))
        if function.dead_letter_config is None:
            no_dead_letters = (
                "Nothing invokes this function asynchronously with data to keep: API Gateway and the SQS event "
                "source invoke it synchronously (the queue's own dead-letter queue keeps failed tasks) and warmup "
                "pings are disposable. An asynchronous invoker of your own wants function_props={'dead_letter_queue':"
                " ...}."
            )
            acknowledge_serverless(function, "LambdaDLQ", no_dead_letters)
            skip_checkov(function, "CKV_AWS_116", no_dead_letters)
        if not self.function.is_bound_to_vpc:
            skip_checkov(function, "CKV_AWS_117", (
                "The function joins a VPC only when it must reach something inside one (vpc=, e.g. for the cache); "
                "otherwise a VPC adds network interfaces and endpoints to pay for and protects nothing it calls, "
                "since it reaches AWS APIs over TLS with its role."))
        if function.reserved_concurrent_executions is None:
            skip_checkov(function, "CKV_AWS_115", (
                "Reserved concurrency is a per-environment choice (reserved_concurrency, "
                "function.reserved_concurrency): it takes capacity from every other function of the account, so it "
                "is not forced; the API is bounded by the gateway's throttling and the worker by its event "
                "source's max_concurrency."))
        if function.kms_key_arn is None:
            skip_checkov(function, "CKV_AWS_173", (
                "The environment holds names only (parameter paths, secret names, queue URLs), never secret values, "
                "which the function reads at run time; Lambda encrypts it at rest with its AWS-managed key."))

    def _observability_environment(self, tracing: lambda_.Tracing, adot_layer: lambda_.ILayerVersion | None,
                                   service_name: str | None) -> dict[str, str]:
        """What the runtime package's logger, metrics and tracer read (Powertools' own variables)."""
        mode = "adot" if adot_layer else "off" if tracing == lambda_.Tracing.DISABLED else "xray"
        variables = {SERVICE_NAME_VARIABLE: service_name or Stack.of(self).stack_name,
                     METRICS_NAMESPACE_VARIABLE: METRICS_NAMESPACE, TRACING_VARIABLE: mode}
        if adot_layer:  # OpenTelemetry through the ADOT layer's wrapper instead of the X-Ray SDK
            variables["AWS_LAMBDA_EXEC_WRAPPER"] = "/opt/otel-instrument"
        return variables

    def _network_policy(self) -> iam.Policy:
        """The network-interface actions on ``*`` (interfaces do not exist before Lambda creates them), in a
        policy of their own: its acknowledgement then covers nothing a user adds to the role later."""
        policy = iam.Policy(self, "NetworkPolicy", statements=[iam.PolicyStatement(
            actions=list(VPC_NETWORK_ACTIONS), resources=["*"])])
        self.role.attach_inline_policy(policy)
        network = (
            "Lambda creates, describes and deletes the function's network interfaces in its VPC subnets with this "
            "role, and checks at CreateFunction that it may; the interfaces do not exist before, and "
            "DescribeNetworkInterfaces and DescribeSubnets support no resource-level permissions (AWS's own "
            "AWSLambdaENIManagementAccess allows them on '*' too). This policy holds only that statement."
        )
        acknowledge(policy, "IAM5[Resource::*]", network)
        skip_checkov(policy, "CKV_AWS_111", network)
        return policy

    def _trace(self, mode: lambda_.Tracing) -> iam.Policy | None:
        """Tracing on the function, and X-Ray's unavoidable ``*`` statement in a policy of its own.

        Set on the CloudFormation resource rather than through ``tracing=``, which would put
        the ``*`` statement into the role's default policy, where an acknowledgement would
        also hide any ``*`` grant added later.
        """
        cfn_mode = {lambda_.Tracing.ACTIVE: "Active", lambda_.Tracing.PASS_THROUGH: "PassThrough"}.get(mode)
        if cfn_mode is not None:
            self._cfn_function.tracing_config = lambda_.CfnFunction.TracingConfigProperty(mode=cfn_mode)
        if mode != lambda_.Tracing.ACTIVE:
            return None
        policy = iam.Policy(self, "TracingPolicy", statements=[iam.PolicyStatement(
            actions=["xray:PutTraceSegments", "xray:PutTelemetryRecords"], resources=["*"])])
        self.role.attach_inline_policy(policy)
        self.function.node.add_dependency(policy)  # traces are sent from the first invocation on
        # Only this policy: a '*' grant a user adds to the role (its default policy) is still reported.
        acknowledge(policy, "IAM5[Resource::*]", "X-Ray's PutTraceSegments and PutTelemetryRecords support no "
                    "resource-level permissions (AWS documents Resource '*'); this policy holds only that statement.")
        return policy

    # --- what users extend it with ---------------------------------------------------------

    @property
    def grant_principal(self) -> iam.IPrincipal:
        """The function's role: ``queue.grant_send_messages(function)`` works directly."""
        return self.role

    @property
    def connections(self) -> ec2.Connections:
        """The function's security groups (``cache.connections.allow_default_port_from(fn)``); needs ``vpc=``."""
        if not self.function.is_bound_to_vpc:
            raise ValueError(f"{self.node.path} is not in a VPC, so it has no connections; pass vpc= to place it in one")
        return self.function.connections

    def add_environment(self, key: str, value: str) -> ServiceFunction:
        """Add an environment variable (names of parameters and secrets, never their values). Add them here,
        not on :attr:`function`: the variables choose the function's dependency layer."""
        self._environment[key] = value
        self.function.add_environment(key, value)
        return self

    def add_environment_variables(self, variables: Mapping[str, str]) -> ServiceFunction:
        """Add the variables a capability's runtime module reads (each construct's ``environment()``)."""
        for key, value in variables.items():
            self.add_environment(key, value)
        return self

    def add_to_role_policy(self, statement: iam.PolicyStatement) -> None:
        """Add ``statement`` to the function's role (its default policy)."""
        self.function.add_to_role_policy(statement)

    def grant_invoke(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to invoke the ``live`` alias (only)."""
        return self.alias.grant_invoke(grantee)

    def metric_errors(self, **props: Any) -> cloudwatch.Metric:
        """Failed invocations (unhandled errors, timeouts) of the ``live`` alias; ``props`` are ``cloudwatch.MetricOptions`` (period, statistic, ...)."""
        return self.alias.metric_errors(**props)

    def metric_throttles(self, **props: Any) -> cloudwatch.Metric:
        """Throttled invocations of the ``live`` alias; ``props`` are ``cloudwatch.MetricOptions`` (period, statistic, ...)."""
        return self.alias.metric_throttles(**props)

    def metric_duration(self, **props: Any) -> cloudwatch.Metric:
        """Invocation duration, in milliseconds of the ``live`` alias; ``props`` are ``cloudwatch.MetricOptions`` (period, statistic, ...)."""
        return self.alias.metric_duration(**props)

    def metric_invocations(self, **props: Any) -> cloudwatch.Metric:
        """Invocations of the ``live`` alias; ``props`` are ``cloudwatch.MetricOptions`` (period, statistic, ...)."""
        return self.alias.metric_invocations(**props)


class FastApiFunction(ServiceFunction):
    """The function behind an API Gateway: a :class:`ServiceFunction` whose timeout must fit
    the gateway's integration limit.

    :param max_timeout: the gateway's integration limit. @default 29 s, ``DEFAULT_MAX_TIMEOUT`` (the lower of
        the REST and HTTP APIs'; :meth:`FastApiGateway.max_integration_timeout` gives each one's)
    :param props: every prop of :class:`ServiceFunction` (``max_timeout_reason`` defaults to the API gateway).

    Example::

        from aws_cdk import Duration
        from cdk_app.api import FastApiGateway

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app",
                              expected_duration=Duration.seconds(2))
        gateway = FastApiGateway(stack, "Gateway", handler=api, public_routes=["GET /health"])
    """

    def __init__(self, scope: Construct, id: str, *, max_timeout: Duration | None = DEFAULT_MAX_TIMEOUT,
                 **props: Any) -> None:
        super().__init__(scope, id, max_timeout=max_timeout,
                         max_timeout_reason=props.pop("max_timeout_reason", "the API gateway (max_timeout)"),
                         **props)
