"""One environment's stack: dependency layer, FastAPI function and API front door."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aws_cdk import Acknowledgment, App, CfnOutput, Duration, Environment, Fn, RemovalPolicy, Stack, Tags, Validations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct
from fastapi_lambda.constants import FILES_INCOMING_PREFIX

from cdk_app import compliance
from cdk_app.api import FastApiGateway
from cdk_app.app_config import AppConfig
from cdk_app.auth import UserPool
from cdk_app.bundling import LAMBDA_SRC, BundlingTarget
from cdk_app.cache import Cache
from cdk_app.cold_start import ColdStart, ProvisionedConcurrency, ScheduledCapacity, Warmup
from cdk_app.config import (
    LOG_RETENTION_DAYS,
    ColdStartSettings,
    EnvironmentSettings,
    load_settings,
    read_cdk_json_context,
)
from cdk_app.function import DependenciesLayer, FastApiFunction, ServiceFunction
from cdk_app.network import Network
from cdk_app.observability import Observability
from cdk_app.tasks import FileIntake, TaskQueue


def cold_start_of(settings: ColdStartSettings) -> ColdStart:
    """The construct-level plan for a validated cold-start setting."""
    warmup = settings.warmup and Warmup(rate=Duration.minutes(settings.warmup.rate_minutes),
                                        concurrency=settings.warmup.concurrency)
    provisioned = settings.provisioned and ProvisionedConcurrency(
        min_capacity=settings.provisioned.min,
        max_capacity=settings.provisioned.max,
        target_utilization=settings.provisioned.target_utilization,
        schedules=tuple(ScheduledCapacity(s.name, s.cron, s.min, s.max, s.time_zone)
                        for s in settings.provisioned.schedules),
    )
    return ColdStart(strategy=settings.strategy, provisioned=provisioned, warmup=warmup,
                     force_warmup=bool(settings.warmup and settings.warmup.force),
                     import_mode=settings.import_mode)


def removal_policy_of(settings: EnvironmentSettings) -> RemovalPolicy:
    return RemovalPolicy.RETAIN if settings.removal_policy == "retain" else RemovalPolicy.DESTROY


def retention_of(settings: EnvironmentSettings) -> logs.RetentionDays:
    # RetentionDays lists the supported day counts in the same order, then INFINITE.
    finite = [r for r in logs.RetentionDays if r is not logs.RetentionDays.INFINITE]
    return dict(zip(LOG_RETENTION_DAYS, finite, strict=True))[settings.log_retention_days]


class FastApiStack(Stack):
    """The whole service for one environment, wired from :class:`EnvironmentSettings`."""

    def __init__(self, scope: Construct, id: str, *, environment_name: str, settings: EnvironmentSettings,
                 app_name: str = "fastapi-lambda", **kwargs: Any) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        self.settings = settings
        removal_policy = removal_policy_of(settings)
        retention = retention_of(settings)
        target = BundlingTarget(
            python_version=settings.function.python_version,
            architecture=settings.function.architecture,
            include_aws_sdk=settings.bundling.include_aws_sdk,
            require_compiled=settings.bundling.require_compiled,
        )
        observed = settings.observability
        # Every function: X-Ray (the SDK inside), OpenTelemetry through the ADOT layer, or no tracing.
        self.tracing_props = {
            "tracing": lambda_.Tracing.DISABLED if observed.tracing == "off" else lambda_.Tracing.ACTIVE,
            "adot_layer": lambda_.LayerVersion.from_layer_version_arn(self, "AdotLayer", observed.adot_layer_arn)
            if observed.adot_layer_arn else None,
        }
        self.dependencies_layer = DependenciesLayer(
            self, "Dependencies", source=LAMBDA_SRC, target=target, removal_policy=removal_policy,
        )
        self.network, self.cache = self._cache(settings, retention, removal_policy)
        self.function_placement: dict[str, Any] = self.network.placement() if self.network else {}
        self.api_function = FastApiFunction(
            self,
            "Api",
            source=LAMBDA_SRC,
            handler="service.handler.handler",
            target=target,
            dependencies=self.dependencies_layer.layer,
            memory_size=settings.function.memory_mb,
            expected_duration=Duration.millis(int(settings.function.expected_duration_seconds * 1000)),
            max_timeout=FastApiGateway.max_integration_timeout(settings.api.type),
            max_timeout_reason=f"a {settings.api.type.upper()} API",
            reserved_concurrency=settings.function.reserved_concurrency,
            environment={"APP_ENVIRONMENT": environment_name},
            log_retention=retention,
            removal_policy=removal_policy,
            description=f"FastAPI service ({environment_name})",
            cold_start=cold_start_of(settings.cold_start),
            **self.tracing_props,
            **self.function_placement,
        )
        self.tasks = self._tasks(settings, environment_name, target, retention, removal_policy)
        self.identity = self._identity(settings, removal_policy)
        api = settings.api
        self.gateway = FastApiGateway(
            self,
            "Gateway",
            handler=self.api_function.alias,
            api_type=api.type,
            public_routes=api.public_routes,
            authorizer=self.identity and (self.identity.http_authorizer() if api.type == "http"
                                          else self.identity.rest_authorizer(self)),
            route_scopes=self.identity and {route: [self.identity.scope(name) for name in names]
                                            for route, names in settings.auth.route_scopes.items()},
            route_throttles={route: (t.rate_limit, t.burst_limit) for route, t in api.route_throttles.items()},
            authorization_scopes=self.identity.access_token_scopes if self.identity else (),
            waf_rate_limit=api.waf.rate_limit if api.waf.enabled else None,
            api_name=id,
            throttle_rate_limit=settings.api.throttle_rate_limit,
            throttle_burst_limit=settings.api.throttle_burst_limit,
            cors=settings.api.cors,
            access_log_retention=retention,
            removal_policy=removal_policy,
        )
        if self.identity and self.gateway.firewall and api.waf.protect_user_pool:
            self.gateway.firewall.protect(self.identity.user_pool.user_pool_arn)
        functions = {"Api": self.api_function, **({"Worker": self.tasks.worker} if self.tasks else {})}
        self.app_config = self._app_config(settings, f"/{app_name}/{environment_name}/", functions.values(),
                                           removal_policy)
        if self.cache is not None:  # after every grant: the endpoints follow from what the functions may call
            for function in functions.values():
                self.cache.grant_connect(function)
            self.network.add_endpoints_for(*functions.values())
        self.observability = self._observe(settings, functions)
        self._acknowledge_known_limits(settings)
        CfnOutput(self, "ApiUrl", value=self.gateway.url, description="Invoke URL of the API")
        CfnOutput(self, "FunctionAlias", value=self.api_function.alias.function_arn,
                  description="ARN of the live alias")
        for key, value in {"service": id, **settings.tags}.items():
            Tags.of(self).add(key, value)


    def _acknowledge_known_limits(self, settings: EnvironmentSettings) -> None:
        """The preflight's warnings this environment accepts by design, each with its reason (strict synth
        fails on an unacknowledged one)."""
        if settings.cold_start.strategy == "provisioned":
            p = settings.cold_start.provisioned
            Validations.of(self.api_function.function).acknowledge(Acknowledgment(
                id="Preflight::LAMBDA-CONCURRENCY-QUOTA",
                reason=f"Provisioned concurrency ({p.min}-{p.max} on the live alias) is this environment's cold-start "
                       f"strategy; the target account's Lambda concurrency quota must be {p.max + 100} or more, which "
                       "a new account may not have: see Deploying in the README."))

    def _app_config(self, settings: EnvironmentSettings, path: str, functions: Iterable[ServiceFunction],
                    removal_policy: RemovalPolicy) -> AppConfig:
        """Parameters and secrets under ``path``, readable by every function (names only in the environment)."""
        c = settings.config
        app_config = AppConfig(self, "Config", path=path, parameters=c.parameters, secrets=c.secrets,
                               secure_parameters=c.secure_parameters, max_age=Duration.seconds(c.max_age_seconds),
                               removal_policy=removal_policy)
        for function in functions:
            app_config.grant_read(function)
        return app_config

    def _observe(self, settings: EnvironmentSettings, functions: Mapping[str, ServiceFunction]) -> Observability:
        """Alarms on every function, the API and what the capabilities watch, all notifying one topic."""
        observed = settings.observability
        observability = Observability(self, "Observability", alarm_emails=observed.alarm_emails,
                                      api_5xx_percent=observed.api_5xx_percent,
                                      removal_policy=removal_policy_of(settings))
        for name, function in functions.items():
            observability.watch_function(function, name)
        observability.watch_api(self.gateway)
        for alarm in (self.api_function.cold_start.spillover_alarm, self.tasks and self.tasks.dead_letter_alarm,
                      self.tasks and self.tasks.oldest_message_alarm, self.cache and self.cache.errors_alarm):
            if alarm is not None:
                observability.add_alarm(alarm)
        return observability

    def _identity(self, settings: EnvironmentSettings, removal_policy: RemovalPolicy) -> UserPool | None:
        """The user pool whose tokens the gateway checks on every non-public route, when enabled."""
        a = settings.auth
        if not a.enabled:
            return None
        identity = UserPool(
            self, "Identity", self_sign_up=a.self_sign_up, mfa=a.mfa, threat_protection=a.threat_protection,
            password_min_length=a.password_min_length,
            access_token_validity=Duration.minutes(a.access_token_minutes),
            id_token_validity=Duration.minutes(a.id_token_minutes),
            refresh_token_validity=Duration.days(a.refresh_token_days),
            callback_urls=a.callback_urls, logout_urls=a.logout_urls, resource_server_id=a.resource_server_id,
            scopes=sorted({name for names in a.route_scopes.values() for name in names}),
            machine_client=a.machine_client, domain_prefix=a.domain_prefix, removal_policy=removal_policy,
            custom_domain=a.custom_domain and cognito.CustomDomainOptions(
                domain_name=a.custom_domain.domain_name,
                certificate=acm.Certificate.from_certificate_arn(self, "AuthCertificate",
                                                                 a.custom_domain.certificate_arn)),
        )
        identity.configure(self.api_function, verify_tokens=a.verify_in_function)
        CfnOutput(self, "UserPoolId", value=identity.user_pool.user_pool_id, description="The user pool")
        CfnOutput(self, "WebClientId", value=identity.clients[0].user_pool_client_id,
                  description="The browser app client (no secret, authorization code with PKCE)")
        CfnOutput(self, "AuthDomain", value=identity.domain.base_url(),
                  description="The user pool's OAuth endpoints (/oauth2/authorize, /oauth2/token)")
        return identity

    def _tasks(self, settings: EnvironmentSettings, environment_name: str, target: BundlingTarget,
               retention: logs.RetentionDays, removal_policy: RemovalPolicy) -> TaskQueue | None:
        """The task queue and its worker (the same handler module as the API), when enabled."""
        t = settings.tasks
        if not t.enabled:
            return None
        tasks = TaskQueue(
            self, "Tasks",
            worker_props={
                **self.tracing_props,
                "source": LAMBDA_SRC, "handler": "service.handler.handler", "target": target,
                "dependencies": self.dependencies_layer.layer, "memory_size": t.memory_mb,
                "expected_duration": Duration.millis(int(t.expected_duration_seconds * 1000)),
                "environment": {"APP_ENVIRONMENT": environment_name}, "log_retention": retention,
                "removal_policy": removal_policy, "description": f"Task worker ({environment_name})",
                **self.function_placement,
            },
            max_receive_count=t.max_receive_count,
            visibility_timeout=Duration.seconds(t.visibility_timeout_seconds)
            if t.visibility_timeout_seconds is not None else None,
            retention=Duration.days(t.retention_days),
            batch_size=t.batch_size,
            max_batching_window=Duration.seconds(t.max_batching_window_seconds)
            if t.max_batching_window_seconds else None,
            max_concurrency=t.max_concurrency,
            oldest_message_alarm=Duration.seconds(t.oldest_message_alarm_seconds),
            point_in_time_recovery=t.point_in_time_recovery,
            removal_policy=removal_policy,
        )
        tasks.add_producer(self.api_function)
        if t.files.enabled:
            self.files = FileIntake(self, "Files", tasks=tasks, access_logs=t.files.access_logs,
                                    noncurrent_version_expiration=Duration.days(t.files.noncurrent_version_days),
                                    removal_policy=removal_policy)
            CfnOutput(self, "FilesBucket", value=self.files.bucket.bucket_name,
                      description=f"Put objects under {FILES_INCOMING_PREFIX} to process them")
        CfnOutput(self, "TaskQueueUrl", value=tasks.queue.queue_url, description="The task queue")
        return tasks

    @property
    def availability_zones(self) -> list[str]:
        """Zones picked by CloudFormation at deploy time (``Fn::GetAZs``): with a fixed account and region,
        CDK would otherwise look them up in the account at synth (credentials, network)."""
        return [Fn.select(i, Fn.get_azs()) for i in range(3)]

    def _cache(self, settings: EnvironmentSettings, retention: logs.RetentionDays,
               removal_policy: RemovalPolicy) -> tuple[Network | None, Cache | None]:
        """The cache and the network it needs, when ``cache.kind`` is not ``none`` (no VPC otherwise)."""
        c, n = settings.cache, settings.network
        if c.kind == "none":
            return None, None
        network = Network(self, "Network", egress=n.egress, az_count=n.az_count, availability_zones=n.availability_zones,
                          cidr=n.cidr, subnet_mask=n.subnet_mask, nat_gateways=n.nat_gateways, flow_logs=n.flow_logs,
                          flow_log_retention=retention, removal_policy=removal_policy)
        cache = Cache(self, "Cache", kind=c.kind, network=network, max_data_storage_gb=c.max_data_storage_gb,
                      max_ecpu_per_second=c.max_ecpu_per_second, node_type=c.node_type, replicas=c.replicas,
                      multi_az=c.multi_az, port=c.port, snapshot_retention_days=c.snapshot_retention_days,
                      snapshot_time=c.snapshot_time, connect_timeout=Duration.millis(c.connect_timeout_ms),
                      command_timeout=Duration.millis(c.command_timeout_ms), removal_policy=removal_policy)
        CfnOutput(self, "CacheEndpoint", value=cache.endpoint_address, description=f"The cache ({c.kind})")
        return network, cache


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def build_stacks(app: App) -> dict[str, FastApiStack]:
    """Add one :class:`FastApiStack` per environment of the context, with cdk-nag checks.

    Reads the ``cdk.json`` context (the CLI passes it; ``python app.py`` and tests
    fall back to the file) and raises :class:`ConfigError` when it is invalid.
    ``-c env=<name>`` limits synth to one environment (the others' problems are
    then warnings on stderr), ``-c strict_bundling=true`` makes a missing target
    interpreter an error and ``-c skip_bundling=true`` skips bundling (fast
    template checks; not deployable).
    """
    context = {key: app.node.try_get_context(key) for key in ("app_name", "environments")}
    if context["environments"] is None:
        context = read_cdk_json_context()
    settings = load_settings({k: v for k, v in context.items() if v is not None},
                             only=app.node.try_get_context("env"))
    if _flag(app.node.try_get_context("skip_bundling")):
        # CDK's own switch: assets keep their source hash, so templates match a bundled synth.
        app.node.set_context("aws:cdk:bundling-stacks", [])
    strict = _flag(app.node.try_get_context("strict_bundling"))
    stacks = {}
    for name, env_settings in settings.environments.items():
        if strict:
            env_settings = env_settings.model_copy(
                update={"bundling": env_settings.bundling.model_copy(update={"require_compiled": True})}
            )
        stack_id = f"{settings.app_name}-{name}"
        aws_env = Environment(account=env_settings.account, region=env_settings.region) \
            if env_settings.account or env_settings.region else None
        stacks[name] = FastApiStack(app, stack_id, environment_name=name, settings=env_settings, env=aws_env,
                                    app_name=settings.app_name,
                                    description=f"FastAPI on AWS Lambda ({name})")
    compliance.add_compliance_checks(app)
    return stacks
