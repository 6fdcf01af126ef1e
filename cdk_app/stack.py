"""One environment's stack, and every environment of ``cdk.json`` (:func:`build_stacks`).

:class:`FastApiStack` is the table of contents of the service: one step per capability, in
dependency order. Each construct's props come from the environment's settings through
:mod:`cdk_app.props`; what is written here is only how the capabilities connect.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from aws_cdk import App, CfnElement, CfnOutput, Environment, Fn, Stack, Tags
from aws_cdk import aws_codedeploy as codedeploy
from aws_cdk import aws_iam as iam
from constructs import Construct
from fastapi_lambda.constants import FILES_INCOMING_PREFIX

from cdk_app import compliance, props
from cdk_app.api import FastApiGateway
from cdk_app.auth import UserPool
from cdk_app.cache import ValkeyCache
from cdk_app.findings import acknowledge, acknowledge_preflight
from cdk_app.function import DependenciesLayer, FastApiFunction, ServiceFunction
from cdk_app.network import Network
from cdk_app.observability import Observability
from cdk_app.parameters import AppParameters
from cdk_app.releases import ReleaseControl
from cdk_app.settings import EnvironmentSettings, load_settings, read_cdk_json_context
from cdk_app.tasks import FileIntake, TaskQueue


class FastApiStack(Stack):
    """The whole service for one environment, wired from :class:`EnvironmentSettings`.

    Each capability is an attribute: :attr:`api_function`, :attr:`gateway`, :attr:`tasks`, :attr:`files`,
    :attr:`identity`, :attr:`cache`, :attr:`network`, :attr:`parameters`, :attr:`observability`,
    :attr:`releases`, :attr:`services`, :attr:`functions`. Capabilities that are off (``enabled: false``,
    ``cache.kind: none``) are None. :func:`build_stacks` makes one per environment of ``cdk.json``.

    :param environment_name: the environment, e.g. ``"dev"``, in parameter paths, descriptions and variables.
    :param settings: the environment's settings (:class:`cdk_app.settings.EnvironmentSettings`; each
        construct's props come from them through :mod:`cdk_app.props`).
    :param app_name: the first part of the parameter paths, ``/<app_name>/<environment_name>/``.
        @default ``"fastapi-lambda"``
    :param kwargs: any other ``aws_cdk.Stack`` prop (``env``, ``description``, ...).

    Example::

        from cdk_app.settings import EnvironmentSettings
        from cdk_app.testing import app_for_tests

        app = app_for_tests()  # in a test; to deploy, App() and build_stacks(app) read cdk.json
        settings = EnvironmentSettings.model_validate({"function": {"memory_mb": 2048},
                                                       "tasks": {"enabled": True}})
        service = FastApiStack(app, "orders-dev", environment_name="dev", settings=settings, app_name="orders")
        queue_url = service.tasks.queue.queue_url if service.tasks else None
    """

    def __init__(self, scope: Construct, id: str, *, environment_name: str, settings: EnvironmentSettings,
                 app_name: str = "fastapi-lambda", **kwargs: Any) -> None:
        super().__init__(scope, id, termination_protection=settings.termination_protection, **kwargs)
        self.settings = settings
        self.dependencies_layer = DependenciesLayer(self, "Dependencies", **props.dependencies(settings)) \
            if settings.function.packaging == "zip" else None  # an image carries its own dependencies
        self.network, self.cache = self._cache()
        self.function_props = self._function_props(environment_name)
        self.api_function = FastApiFunction(self, "Api", **self.function_props,
                                            **props.api_function(settings, environment_name))
        self.tasks, self.files = self._tasks(environment_name)
        self._uploads()
        self.identity = self._identity()
        self.gateway = self._gateway(api_name=id)
        self.services = self._services(environment_name)
        self.parameters = self._parameters(path=f"/{app_name}/{environment_name}/")
        self._connect_cache()  # after every grant: the network's endpoints follow from what the functions may call
        self.observability = self._observe()
        self.releases = self._release()  # after the alarms that roll a release back
        self._accept_environment_findings()
        self._outputs()
        for key, value in {"service": id, **settings.tags}.items():
            Tags.of(self).add(key, value)

    @property
    def functions(self) -> Mapping[str, ServiceFunction]:
        """Every function of the service, by the name its alarms carry."""
        return {"Api": self.api_function, **({"Worker": self.tasks.worker} if self.tasks else {}),
                **{_service_id(name): function for name, function in getattr(self, "services", {}).items()}}

    def _cache(self) -> tuple[Network | None, ValkeyCache | None]:
        """The cache and the network it needs, when ``cache.kind`` is not ``none`` (no VPC otherwise)."""
        if self.settings.cache.kind == "none":
            return None, None
        network = Network(self, "Network", **props.network(self.settings))
        return network, ValkeyCache(self, "Cache", network=network, **props.cache(self.settings))

    def _function_props(self, environment_name: str) -> dict[str, Any]:
        """What the API function and the worker share: code, layer, logs, tracing, and their place in the network."""
        return {**props.functions(self, self.settings, environment_name), "dependencies": self.dependencies_layer,
                **(self.network.placement() if self.network else {})}

    def _tasks(self, environment_name: str) -> tuple[TaskQueue | None, FileIntake | None]:
        """The task queue and its worker (the same handler module as the API), the API as its producer, and the
        file intake, when enabled."""
        if not self.settings.tasks.enabled:
            return None, None
        tasks = TaskQueue(self, "Tasks", **props.tasks(self.settings), worker_props={
            **self.function_props, **props.worker(self.settings, environment_name)})
        tasks.add_producer(self.api_function)
        files = FileIntake(self, "Files", tasks=tasks, **props.files(self.settings)) \
            if self.settings.tasks.files.enabled else None
        return tasks, files

    def _uploads(self) -> None:
        """``POST /uploads`` signs S3 PUT URLs into the file intake's incoming/ prefix: the API function may put
        objects there (s3:PutObject under that prefix only, in a policy of its own) and nothing else."""
        if self.files is None:
            return
        objects = self.files.bucket.arn_for_objects(f"{FILES_INCOMING_PREFIX}*")
        policy = iam.Policy(self, "UploadsPolicy", statements=[
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[objects])])
        self.api_function.role.attach_inline_policy(policy)
        self.api_function.add_environment_variables(props.uploads(self.settings, self.files.bucket.bucket_name))
        acknowledge(policy.node.default_child,
                    f"IAM5[Resource::<{self.get_logical_id(cast(CfnElement, self.files.bucket.node.default_child))}.Arn>/"
                    f"{FILES_INCOMING_PREFIX}*]",
                    f"Clients upload through URLs the API signs for new keys under {FILES_INCOMING_PREFIX} (a random "
                    "folder per upload): the prefix is the narrowest scope, and PutObject the only action.")

    def _identity(self) -> UserPool | None:
        """The user pool whose tokens the gateway checks on every non-public route, when enabled; the API
        function gets what it needs to check them too."""
        if not self.settings.auth.enabled:
            return None
        identity = UserPool(self, "Identity", **props.identity(self, self.settings))
        identity.configure(self.api_function, verify_tokens=self.settings.auth.verify_in_function)
        return identity

    def _gateway(self, api_name: str) -> FastApiGateway:
        """The front door on the API function's alias, with the user pool's authorizer and scopes when there is one
        (and its firewall in front of the pool too)."""
        api, identity = self.settings.api, self.identity
        gateway = FastApiGateway(
            self, "Gateway", handler=self.api_function, api_name=api_name, **props.gateway(self.settings),
            domain=props.domain(self, self.settings),
            authorizer=identity and (identity.http_authorizer() if api.type == "http"
                                     else identity.rest_authorizer(self)),
            route_scopes=identity and {route: [identity.scope(name) for name in names]
                                       for route, names in self.settings.auth.route_scopes.items()},
            authorization_scopes=identity.access_token_scopes if identity else (),
        )
        if identity and gateway.firewall and api.waf.protect_user_pool:
            gateway.firewall.protect(identity.user_pool.user_pool_arn)
        return gateway

    def _services(self, environment_name: str) -> dict[str, FastApiFunction]:
        """Each service of ``services``: its own function (the shared layer, its own memory and cold start), mounted
        on its prefix with its own public routes, scopes and throttles; it checks tokens as the API function does."""
        functions: dict[str, FastApiFunction] = {}
        for name, service in self.settings.services.items():
            function = FastApiFunction(self, _service_id(name), **{
                **self.function_props, **props.service_function(self.settings, name, environment_name)})
            if self.identity is not None:
                self.identity.configure(function, verify_tokens=self.settings.auth.verify_in_function)
            self.gateway.add_service(service.prefix, function, **props.service_routes(service), route_scopes={
                route: [self.identity.scope(scope) for scope in names]
                for route, names in service.route_scopes.items()} if self.identity else None)
            functions[name] = function
        return functions

    def _parameters(self, path: str) -> AppParameters:
        """Parameters and secrets under ``path``, readable by every function (names only in the environment)."""
        parameters = AppParameters(self, "Config", path=path, **props.parameters(self.settings))
        for function in self.functions.values():
            parameters.grant_read(function)
            parameters.configure(function)
        return parameters

    def _connect_cache(self) -> None:
        """Every function may use the cache; then each gets the endpoints its grants call for. Last of the grants:
        an endpoint is derived from what a function's role allows."""
        if self.cache is None or self.network is None:  # both or neither (_cache)
            return
        for function in self.functions.values():
            self.cache.grant_connect(function)
            self.cache.configure(function)
        self.network.add_endpoints_for(*self.functions.values())

    def _observe(self) -> Observability:
        """Alarms on every function, the API and what the capabilities watch, all notifying one topic."""
        observability = Observability(self, "Observability", **props.observability(self.settings))
        observability.watch(self)
        return observability

    def _release(self) -> dict[str, ReleaseControl]:
        """CodeDeploy on every function's alias, rolled back when its errors or p99 alarm fires (the API function's
        also on the API's 5xx alarm); throttles are not the new version's doing."""
        releases: dict[str, ReleaseControl] = {}
        application = codedeploy.LambdaApplication(self, "Releases")
        for name, function in self.functions.items():
            release = ReleaseControl(self, f"Release{name}", function=function, application=application,
                                     http=function is self.api_function, **props.release(self.settings))
            errors, _throttles, slow = self.observability.alarms_of(function)
            api_errors = self.observability.alarms_of(self.gateway) if function is self.api_function else []
            release.roll_back_on(errors, slow, *api_errors)
            releases[name] = release
        return releases

    def _accept_environment_findings(self) -> None:
        """The preflight's warnings this environment accepts by design, each with its reason (strict synth fails on
        an unacknowledged one). The constructs accept their own where they make the resources."""
        cold_start = self.settings.cold_start
        p = cold_start.provisioned
        if cold_start.strategy == "provisioned" and p is not None:  # the settings fill it in for this strategy
            acknowledge_preflight(
                self.api_function.function, "LAMBDA-CONCURRENCY-QUOTA",
                f"Provisioned concurrency ({p.min}-{p.max} on the live alias) is this environment's cold-start "
                f"strategy; the target account's Lambda concurrency quota must be {p.max + 100} or more, which "
                "a new account may not have: see Before you deploy in the README.")
            acknowledge_preflight(
                self.api_function.alias, "CODEDEPLOY-PROVISIONED-SCALING",
                f"Releases ({self.settings.release.strategy}) and autoscaled provisioned concurrency share the live "
                "alias on purpose: scaling pauses only while a release shifts traffic, the minimum covers the peak, "
                "and docs/releases.md says to deploy provisioned-concurrency changes apart from code changes.")

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.gateway.url, description="Invoke URL of the API")
        CfnOutput(self, "FunctionAlias", value=self.api_function.alias.function_arn,
                  description="ARN of the live alias")
        if self.cache is not None:
            CfnOutput(self, "CacheEndpoint", value=self.cache.endpoint_address,
                      description=f"The cache ({self.cache.kind})")
        if self.tasks is not None:
            CfnOutput(self, "TaskQueueUrl", value=self.tasks.queue.queue_url, description="The task queue")
        if self.files is not None:
            CfnOutput(self, "FilesBucket", value=self.files.bucket.bucket_name,
                      description=f"Put objects under {FILES_INCOMING_PREFIX} to process them")
        if self.identity is not None:
            CfnOutput(self, "UserPoolId", value=self.identity.user_pool.user_pool_id, description="The user pool")
            CfnOutput(self, "WebClientId", value=self.identity.clients[0].user_pool_client_id,
                      description="The browser app client (no secret, authorization code with PKCE)")
            if self.identity.domain is not None:
                CfnOutput(self, "AuthDomain", value=self.identity.domain.base_url(),
                          description="The user pool's OAuth endpoints (/oauth2/authorize, /oauth2/token)")

    @property
    def availability_zones(self) -> list[str]:
        """Zones picked by CloudFormation at deploy time (``Fn::GetAZs``): with a fixed account and region,
        CDK would otherwise look them up in the account at synth (credentials, network)."""
        return [Fn.select(i, Fn.get_azs()) for i in range(3)]


def _service_id(name: str) -> str:
    """A service's construct id (and its alarms' name): ``billing`` -> ``BillingService``."""
    return "".join(part.title() for part in name.split("-")) + "Service"


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def build_stacks(app: App) -> dict[str, FastApiStack]:
    """Add one :class:`FastApiStack` per environment of the context, with cdk-nag checks.

    The only reader of the CDK context: it reads ``cdk.json``'s settings (the CLI passes them;
    ``python app.py`` and tests fall back to the file) and raises
    :class:`cdk_app.settings.ConfigError` when they are invalid. ``-c env=<name>`` limits synth
    to one environment (the others' problems are then warnings on stderr), ``-c
    strict_bundling=true`` makes a missing target interpreter an error and ``-c
    skip_bundling=true`` skips bundling (fast template checks; not deployable).
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
    stacks: dict[str, FastApiStack] = {}
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
