"""The API Gateway front door: HTTP API (default) or REST API, both on the function alias.

Public only where declared: everything else needs IAM (SigV4) or the authorizer given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Annotations, Aspects, CfnResource, Duration, IAspect, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct, IConstruct

from cdk_app.auth import WebFirewall
from cdk_app.cdk_values import log_retention, removal_policy
from cdk_app.findings import LOG_GROUP_KEY, acknowledge, managed_policy_finding, skip_checkov
from cdk_app.function import FastApiFunction
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import ApiType
from cdk_app.settings.routes import parse_route
from cdk_app.settings.rules import GATEWAY_TIMEOUT_LIMITS, check_edge
from cdk_app.settings.schema import CorsSettings

# One JSON object per request; the fields differ only where the two APIs name them differently.
_ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "status": "$context.status",
    "protocol": "$context.protocol",
    "responseLength": "$context.responseLength",
    "integrationLatency": "$context.integrationLatency",
    "errorMessage": "$context.error.message",
}
_HTTP_ACCESS_LOG = {**_ACCESS_LOG_FIELDS, "routeKey": "$context.routeKey",
                    "integrationError": "$context.integrationErrorMessage"}
_REST_ACCESS_LOG = {**_ACCESS_LOG_FIELDS, "resourcePath": "$context.resourcePath", "xrayTraceId": "$context.xrayTraceId"}


@jsii.implements(apigwv2.IAccessLogSettings)
class _HttpAccessLogs:
    def __init__(self, log_group: logs.ILogGroup) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return apigw.AccessLogFormat.custom(json.dumps(_HTTP_ACCESS_LOG))


#: The routes/methods the construct created: declared public, CORS preflight, protected.
_CreatedRoutes = tuple[list[CfnResource], list[CfnResource], list[CfnResource]]


def _implements(obj: object, interface: type) -> bool:
    """Whether a jsii object implements ``interface`` (a Protocol, so isinstance cannot tell)."""
    declared = any(interface in vars(cls).get("__jsii_ifaces__", ()) for cls in type(obj).__mro__)
    return declared or isinstance(obj, interface.__jsii_proxy_class__())  # type: ignore[attr-defined]


def _token_authorizer(authorizer: object) -> bool:
    """Whether an authorizer checks tokens that may be ID tokens (JWT or Cognito), as opposed to IAM or Lambda."""
    if isinstance(authorizer, authorizers.HttpJwtAuthorizer | authorizers.HttpUserPoolAuthorizer):
        return True
    return getattr(authorizer, "authorization_type", None) == apigw.AuthorizationType.COGNITO


#: Authorization types whose tokens carry scopes, per kind of route: scopes elsewhere are refused by AWS.
_TOKEN_AUTHORIZATION = {apigwv2.CfnRoute: "JWT", apigw.CfnMethod: "COGNITO_USER_POOLS"}


@jsii.implements(IAspect)
class _AccessTokensOnly:
    """Puts ``scopes`` on every token-authorized route or method of an API that has none of its own.

    A JWT (HTTP) or Cognito (REST) authorizer accepts an ID token on a route without scopes; any
    scope makes it demand an access token. Public and IAM routes get none: AWS refuses scopes
    there. Without scopes, a token-authorized route is an error unless ID tokens are accepted
    knowingly (``accept_id_tokens``). Routes added to the API later are covered too.
    """

    def __init__(self, scopes: Sequence[str], *, accept_id_tokens: bool) -> None:
        self.scopes, self.accept_id_tokens = list(scopes), accept_id_tokens

    def visit(self, node: IConstruct) -> None:
        kind = next((k for k in _TOKEN_AUTHORIZATION if isinstance(node, k)), None)
        if kind is None or node.authorization_type != _TOKEN_AUTHORIZATION[kind] or node.authorization_scopes:
            return
        if self.scopes:
            node.authorization_scopes = self.scopes
        elif not self.accept_id_tokens:
            Annotations.of(node).add_error(
                "This route uses a token authorizer without authorization scopes, so it accepts ID tokens; pass "
                "authorization_scopes to FastApiGateway (the scopes your access tokens carry, e.g. "
                "UserPool.access_token_scopes) or the route, or accept_id_tokens=True to accept ID tokens knowingly.")


def _parse_routes(prop: str, routes: Sequence[str] | Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    if isinstance(routes, str):
        raise ValueError(f"{prop}={routes!r} is one string; pass a list, e.g. [{routes!r}]")
    try:
        return tuple(dict.fromkeys(parse_route(spec) for spec in routes))
    except ValueError as error:
        raise ValueError(f"{prop}: {error}") from None


#: Rate (requests per second) and burst of one route.
Throttle = tuple[float, int]

_PUBLIC_ROUTE = (
    "This route is declared public (public_routes) because it serves callers without an identity by design; "
    "every route not declared there requires IAM (SigV4) or the authorizer the gateway was given."
)


def _resource_paths(path: str) -> list[str]:
    """The REST resources a path needs: ``"/a/{b}"`` -> ``["/a", "/a/{b}"]``."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


class FastApiGateway(Construct):
    """Routes every path and method to ``handler`` (pass the function's alias); public only where declared.

    ``api_type="http"`` creates an HTTP API (cheaper, lower latency, JWT authorizers);
    ``"rest"`` a regional REST API (X-Ray at the gateway, WAF, usage plans). Both get
    stage throttling, JSON access logs in their own log group and optional CORS;
    :attr:`url` is the invoke URL.

    ``public_routes`` ("METHOD /path", e.g. ``"GET /health"``) answer anyone. Every other
    request (the HTTP API's ``$default`` route; the REST API's ``ANY /`` and
    ``ANY /{proxy+}``) needs ``authorizer`` (an ``aws_apigatewayv2`` route authorizer for
    HTTP, an ``aws_apigateway`` authorizer for REST) or, without one, an IAM (SigV4)
    signature. Routes added later to :attr:`http_api` / :attr:`rest_api` get the same
    protection unless they say otherwise, and cdk-nag reports those made public.

    With a token authorizer (JWT, Cognito), every token-authorized route demands an access
    token: ``authorization_scopes`` (the scopes every access token carries, e.g.
    :attr:`UserPool.access_token_scopes`) go on each such route without scopes of its own
    (``route_scopes`` name a route's own), because both authorizers accept an ID token on a
    route without scopes. An authorizer from :meth:`UserPool.http_authorizer` or
    :meth:`UserPool.rest_authorizer` brings its pool's scopes; any other token authorizer
    without them is refused, unless ``accept_id_tokens=True`` says ID tokens are wanted. Public routes carry no scopes (AWS
    refuses scopes on routes without a token authorizer).
    Without ``handler`` the construct creates its own :class:`FastApiFunction`
    (:attr:`function`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        # Alias and Function spelled out: their jsii bindings fail pyright's IFunction protocol check (parameter names,
        # aws/jsii#4541), so a consumer's handler=function.alias would be a type error.
        handler: lambda_.IFunction | lambda_.Alias | lambda_.Function | None = None,
        api_type: ApiType = DEFAULTS.api.type,
        public_routes: Sequence[str] = (),
        route_scopes: Mapping[str, Sequence[str]] | None = None,
        route_throttles: Mapping[str, Throttle] | None = None,
        waf_rate_limit: int | None = None,
        authorization_scopes: Sequence[str] = (),
        authorizer: apigwv2.IHttpRouteAuthorizer | apigw.IAuthorizer | None = None,
        accept_id_tokens: bool = False,
        api_name: str | None = None,
        throttle_rate_limit: float = DEFAULTS.api.throttle_rate_limit,
        throttle_burst_limit: int = DEFAULTS.api.throttle_burst_limit,
        cors: CorsSettings | None = DEFAULTS.api.cors,
        access_log_retention: logs.RetentionDays = log_retention(DEFAULTS.log_retention_days),
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
        rest_cloud_watch_role: bool = True,
    ) -> None:
        super().__init__(scope, id)
        if api_type not in GATEWAY_TIMEOUT_LIMITS:
            raise ValueError(f"api_type={api_type!r} is not supported; use 'http' or 'rest'")
        self.public_routes = _parse_routes("public_routes", public_routes)
        self.route_scopes = {route: tuple(scopes) for route, scopes in zip(
            _parse_routes("route_scopes", route_scopes or {}), (route_scopes or {}).values(), strict=True)}
        self.route_throttles = dict(zip(_parse_routes("route_throttles", route_throttles or {}),
                                        (route_throttles or {}).values(), strict=True))
        # Scopes on every token-authorized route make the authorizer take access tokens only
        # (both the JWT and the Cognito authorizer take ID tokens on a route without scopes).
        # An authorizer of our UserPool knows its pool's access-token scopes.
        authorization_scopes = tuple(authorization_scopes) or tuple(getattr(authorizer, "access_token_scopes", ()))
        self.authorization_scopes = authorization_scopes
        self.accept_id_tokens = accept_id_tokens
        check_edge(public_routes=[" ".join(r) for r in self.public_routes],
                   route_scopes=[" ".join(r) for r in self.route_scopes], token_authorizer=authorizer is not None,
                   api_type=api_type, waf=waf_rate_limit is not None, default_scopes=bool(authorization_scopes))
        # Routes the construct creates explicitly, besides the public ones: scoped or throttled.
        self.explicit_routes = tuple(dict.fromkeys([*self.route_scopes, *(
            r for r in self.route_throttles if r not in self.public_routes)]))
        expected = apigwv2.IHttpRouteAuthorizer if api_type == "http" else apigw.IAuthorizer
        if authorizer is not None and not _implements(authorizer, expected):
            raise TypeError(
                f"authorizer={type(authorizer).__name__} does not fit api_type={api_type!r}; pass an "
                + ("aws_apigatewayv2 route authorizer (e.g. HttpJwtAuthorizer, HttpUserPoolAuthorizer)"
                   if api_type == "http" else "aws_apigateway authorizer (e.g. CognitoUserPoolsAuthorizer)")
            )
        if authorizer is not None and _token_authorizer(authorizer) and not authorization_scopes \
                and not accept_id_tokens:
            raise ValueError(
                f"authorizer={type(authorizer).__name__} without authorization_scopes would let ID tokens through on "
                "every protected route; pass authorization_scopes (the scopes every access token carries, e.g. "
                "['openid', 'aws.cognito.signin.user.admin'] for Cognito user sign-in, plus your resource-server "
                "scopes), use UserPool.http_authorizer()/rest_authorizer() (they carry them), or "
                "accept_id_tokens=True to accept ID tokens knowingly")
        self.api_type = api_type
        self.function = FastApiFunction(
            self, "Function", max_timeout=self.max_integration_timeout(api_type)) if handler is None else None
        self.handler = handler or self.function.alias
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=access_log_retention, removal_policy=removal_policy
        )
        skip_checkov(self.access_log_group, "CKV_AWS_158", LOG_GROUP_KEY)
        self.http_api: apigwv2.HttpApi | None = None
        self.http_stage: apigwv2.HttpStage | None = None
        self.rest_api: apigw.RestApi | None = None
        self.rest_stage: apigw.Stage | None = None
        if api_type == "http":
            public, preflight, protected = self._http_api(
                api_name, throttle_rate_limit, throttle_burst_limit, cors, authorizer)
        else:
            public, preflight, protected = self._rest_api(
                api_name, throttle_rate_limit, throttle_burst_limit, cors, authorizer, rest_cloud_watch_role,
                removal_policy)
        # AWS's common rules and a per-IP rate limit in front of the REST stage (HTTP APIs cannot have one).
        self.firewall = WebFirewall(self, "Firewall", protect=[self.rest_stage.stage_arn], rate_limit=waf_rate_limit,
                                    log_retention=access_log_retention, removal_policy=removal_policy,
                                    ) if waf_rate_limit is not None else None
        Aspects.of(self.http_api or self.rest_api).add(
            _AccessTokensOnly(self.authorization_scopes, accept_id_tokens=accept_id_tokens))
        self._accept_route_findings(public=public, preflight=preflight,
                                    iam_protected=protected if authorizer is None else [])
        if self.rest_api is not None:
            self._accept_rest_findings()

    @staticmethod
    def max_integration_timeout(api_type: ApiType) -> Duration:
        """The longest a request may take behind this kind of API."""
        return Duration.seconds(GATEWAY_TIMEOUT_LIMITS[api_type])

    def _accept_route_findings(self, *, public: Sequence[CfnResource], preflight: Sequence[CfnResource],
                               iam_protected: Sequence[CfnResource]) -> None:
        """Each route or method the gateway created, one by one: a route added later is still reported."""
        for route in public:
            acknowledge(route, "APIG4", _PUBLIC_ROUTE)
            if self.rest_api is not None:
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

    def _accept_rest_findings(self) -> None:
        """The REST API's own: request validation in the app, no stage cache, the account's logging role."""
        acknowledge(
            self.rest_api.node.default_child, "APIG2",
            "Requests are validated by FastAPI (pydantic models, 422 with the field and reason) inside the proxy "
            "integration; a gateway request model would duplicate that schema and drift from it.",
        )
        skip_checkov(self.rest_stage, "CKV_AWS_120", (
            "Answers are dynamic and per caller (protected routes answer for one identity); a stage cache is billed "
            "by the hour and would hand one caller's answer to another unless every method keyed it on the "
            "Authorization header. The app caches what is worth caching itself (the cache capability)."))
        if self.firewall is None:
            acknowledge(
                self.rest_stage.node.default_child, "APIG3",
                "A WAF web ACL is a choice of rules and cost per environment; this gateway was built without one "
                "(waf_rate_limit / api.waf.enabled add it).",
            )
        cloud_watch_role = self.rest_api.node.try_find_child("CloudWatchRole")
        if cloud_watch_role is not None:
            acknowledge(
                cloud_watch_role.node.default_child,
                managed_policy_finding("service-role/AmazonAPIGatewayPushToCloudWatchLogs"),
                "API Gateway's account-level logging role needs exactly this AWS-maintained policy: it writes the "
                "REST API's execution logs to log groups API Gateway itself names and creates.",
            )

    def _http_api(self, name: str | None, rate: float, burst: int, cors: CorsSettings | None,
                  authorizer: apigwv2.IHttpRouteAuthorizer | None) -> _CreatedRoutes:
        """The API and its stage. The $default route is the only protected one, and needs no acknowledgement."""
        integration = integrations.HttpLambdaIntegration("Lambda", self.handler)
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=name,
            create_default_stage=False,
            default_integration=integration,
            # For the $default catch-all and every route added later without an authorizer of its own.
            # No default_authorization_scopes: CDK copies them onto open routes too, which AWS refuses
            # (aws-cdk PR #27576); _AccessTokensOnly scopes the token-authorized routes instead.
            default_authorizer=authorizer or authorizers.HttpIamAuthorizer(),
            cors_preflight=None if cors is None else apigwv2.CorsPreflightOptions(
                allow_origins=cors.allow_origins,
                allow_methods=[apigwv2.CorsHttpMethod(m) if m != "*" else apigwv2.CorsHttpMethod.ANY
                               for m in cors.allow_methods],
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                max_age=Duration.seconds(cors.max_age_seconds),
            ),
        )

        created: dict[tuple[str, str], CfnResource] = {}

        def add(route: tuple[str, str], **options: object) -> CfnResource:
            (added,) = self.http_api.add_routes(path=route[1], methods=[apigwv2.HttpMethod(route[0])],
                                                integration=integration, **options)
            created[route] = added.node.default_child
            return created[route]

        def open_routes(routes: Sequence[tuple[str, str]]) -> list[CfnResource]:
            return [add(route, authorizer=apigwv2.HttpNoneAuthorizer()) for route in routes]

        public = open_routes(self.public_routes)
        for route in self.explicit_routes:  # the default authorizer, with the route's scopes
            add(route, authorization_scopes=list(self.route_scopes.get(route, ())) or None)
        # Browsers send preflight requests unsigned and without tokens, and the $default route
        # would refuse them (AWS: "CORS and authorization for the $default route").
        preflight = open_routes([r for r in (("OPTIONS", "/"), ("OPTIONS", "/{proxy+}"))
                                 if cors and r not in self.public_routes])
        self.http_stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate, burst_limit=burst),
            access_log_settings=_HttpAccessLogs(self.access_log_group),
        )
        if self.route_throttles:  # per-route limits, so one route cannot spend the whole stage's budget
            stage = self.http_stage.node.default_child
            stage.route_settings = {
                # A JSON property: CloudFormation's own key names, not jsii's.
                f"{method} {path}": {"ThrottlingRateLimit": rate_limit, "ThrottlingBurstLimit": burst_limit}
                for (method, path), (rate_limit, burst_limit) in self.route_throttles.items()}
            for route in self.route_throttles:  # "Unable to find Route by key" if the stage came first
                stage.node.add_dependency(created[route])
        self.url: str = self.http_stage.url
        return public, preflight, []

    def _rest_api(self, name: str | None, rate: float, burst: int, cors: CorsSettings | None,
                  authorizer: apigw.IAuthorizer | None, cloud_watch_role: bool,
                  removal_policy: RemovalPolicy) -> _CreatedRoutes:
        """The API and its stage. Its CORS preflight methods are mocks cdk-nag already exempts."""
        self.rest_api = apigw.RestApi(
            self,
            "RestApi",
            rest_api_name=name,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            default_integration=apigw.LambdaIntegration(self.handler),
            # For the construct's catch-alls and every method added later without options of its own.
            # No default scopes: CDK would warn on every open method (CORS ones too); _AccessTokensOnly
            # scopes the Cognito-authorized methods instead.
            default_method_options=apigw.MethodOptions(authorizer=authorizer) if authorizer
            else apigw.MethodOptions(authorization_type=apigw.AuthorizationType.IAM),
            # Execution logging (and so access logs) needs the account-level CloudWatch role.
            cloud_watch_role=cloud_watch_role,
            cloud_watch_role_removal_policy=removal_policy if cloud_watch_role else None,
            deploy_options=apigw.StageOptions(
                stage_name="api",
                tracing_enabled=True,
                throttling_rate_limit=rate,
                throttling_burst_limit=burst,
                logging_level=apigw.MethodLoggingLevel.ERROR,
                metrics_enabled=True,
                access_log_destination=apigw.LogGroupLogDestination(self.access_log_group),
                access_log_format=apigw.AccessLogFormat.custom(json.dumps(_REST_ACCESS_LOG)),
                method_options={f"{path.rstrip('/')}/{method}": apigw.MethodDeploymentOptions(
                    throttling_rate_limit=rate_limit, throttling_burst_limit=burst_limit)
                    for (method, path), (rate_limit, burst_limit) in self.route_throttles.items()},
            ),
            default_cors_preflight_options=None if cors is None else apigw.CorsOptions(
                allow_origins=cors.allow_origins,
                allow_methods=["ANY"] if "*" in cors.allow_methods else cors.allow_methods,
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                max_age=Duration.seconds(cors.max_age_seconds),
            ),
        )
        self.rest_stage = self.rest_api.deployment_stage
        self.url = self.rest_api.url
        root = self.rest_api.root
        public = [root.resource_for_path(path).add_method(method, authorization_type=apigw.AuthorizationType.NONE)
                  for method, path in self.public_routes]
        explicit = [root.resource_for_path(path).add_method(  # the default method options, with the route's scopes
            method, authorization_scopes=list(self.route_scopes.get((method, path), ())) or None)
            for method, path in self.explicit_routes]
        # API Gateway matches the most specific resource, then its methods: each resource a public
        # route creates gets a protected ANY too, or its other methods would never reach the app.
        catch_alls = dict.fromkeys(["/", "/{proxy+}", *(p for _, path in (*self.public_routes, *self.explicit_routes)
                                                          for p in _resource_paths(path))])
        protected = [root.resource_for_path(path).add_method("ANY")
                     for path in catch_alls if ("ANY", path) not in (*self.public_routes, *self.explicit_routes)]
        return [m.node.default_child for m in public], [], [m.node.default_child for m in (*protected, *explicit)]
