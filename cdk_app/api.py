"""The API Gateway front door: HTTP API (default) or REST API, both on the function alias.

Public only where declared: everything else needs IAM (SigV4) or the authorizer given. More
functions mount on path prefixes (:meth:`FastApiGateway.add_service`); the edge (binary bodies,
compression, a custom domain) is configured here, and what the apps behind it need to know of it
(their prefix, whether to gzip) is written into their environment (:meth:`FastApiGateway.configure`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

import jsii
from aws_cdk import Annotations, Aspects, CfnResource, Duration, IAspect, IResolvable, RemovalPolicy, Size
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_route53_targets as route53_targets
from constructs import Construct, IConstruct
from fastapi_lambda.constants import GZIP_MIN_BYTES_VARIABLE, ROOT_PATH_VARIABLE

from cdk_app.auth import WebFirewall
from cdk_app.cdk_values import log_retention, removal_policy
from cdk_app.findings import LOG_GROUP_KEY, acknowledge, managed_policy_finding, skip_checkov
from cdk_app.function import FastApiFunction, ServiceFunction
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import ApiType
from cdk_app.settings.routes import parse_route
from cdk_app.settings.rules import (
    GATEWAY_TIMEOUT_LIMITS,
    check_base_path,
    check_edge,
    check_media_types,
    check_service_prefix,
    check_services,
    under,
)
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
        # A cast: jsii's class misses its own interface for pyright (parameter names, aws/jsii#4541).
        self._destination = cast(apigwv2.IAccessLogDestination, apigwv2.LogGroupLogDestination(log_group))

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
        if not isinstance(node, apigwv2.CfnRoute | apigw.CfnMethod):
            return
        token = _TOKEN_AUTHORIZATION[apigwv2.CfnRoute if isinstance(node, apigwv2.CfnRoute) else apigw.CfnMethod]
        if node.authorization_type != token or node.authorization_scopes:
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
#: What a gateway or a service fronts. Alias and Function spelled out: their jsii bindings fail pyright's IFunction
#: protocol check (parameter names, aws/jsii#4541), so a consumer's ``handler=function.alias`` would be a type error.
Handler = lambda_.IFunction | lambda_.Alias | lambda_.Function | ServiceFunction

_PUBLIC_ROUTE = (
    "This route is declared public (public_routes) because it serves callers without an identity by design; "
    "every route not declared there requires IAM (SigV4) or the authorizer the gateway was given."
)


def _resource_paths(path: str) -> list[str]:
    """The REST resources a path needs: ``"/a/{b}"`` -> ``["/a", "/a/{b}"]``."""
    parts = [part for part in path.split("/") if part]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


@dataclass(frozen=True)
class Service:
    """A function mounted on a path prefix of the API (see :meth:`FastApiGateway.add_service`).

    :param prefix: the path below which every request goes to ``handler``, e.g. ``"/billing"``.
    :param handler: a :class:`cdk_app.function.ServiceFunction` (its ``live`` alias is mounted) or any
        function or alias.
    :param public_routes: its routes that answer anyone, written in full (``"GET /billing/health"``).
        @default none
    :param route_scopes: the scopes a route of its own demands, by route,
        e.g. ``{"POST /billing/refunds": ["billing/write"]}``.
        @default none
    :param route_throttles: a route's own (rate per second, burst). @default none

    Example::

        from cdk_app.function import FastApiFunction

        billing = FastApiFunction(stack, "Billing", source="lambda_src", app="service.billing:app")
        gateway = FastApiGateway(stack, "Gateway", services=[
            Service("/billing", billing, public_routes=["GET /billing/health"])])
    """

    prefix: str
    handler: Handler
    public_routes: Sequence[str] = ()
    route_scopes: Mapping[str, Sequence[str]] | None = None
    route_throttles: Mapping[str, Throttle] | None = None


@dataclass(frozen=True)
class CustomDomain:
    """A domain of your own for the API (:class:`FastApiGateway`'s ``domain``).

    :param name: the domain name, e.g. ``"api.example.com"``.
    :param certificate: an ACM certificate for ``name`` in the API's region (a regional API takes no other).
        @default one is requested and DNS-validated: in ``hosted_zone`` when given, else the deploy waits until
        you add the validation record ACM asks for
    :param hosted_zone: the zone of ``name``, where an alias record points ``name`` at the API.
        @default no record
    :param base_path: serve the API under this path of the domain. @default the domain's root
    :param disable_default_endpoint: clients reach the API only through the domain (the ``execute-api`` URL
        answers 403). @default ``DEFAULTS.api.domain.disable_default_endpoint`` (true)

    Example::

        from aws_cdk import aws_route53 as route53

        zone = route53.HostedZone.from_hosted_zone_attributes(
            stack, "Zone", hosted_zone_id="Z0123456789ABCDEFGHIJ", zone_name="example.com")
        FastApiGateway(stack, "Gateway", domain=CustomDomain("api.example.com", hosted_zone=zone, base_path="v1"))
    """

    name: str
    certificate: acm.ICertificate | None = None
    hosted_zone: route53.IHostedZone | None = None
    base_path: str | None = None
    disable_default_endpoint: bool = DEFAULTS.api.domain is None or DEFAULTS.api.domain.disable_default_endpoint


@jsii.implements(IAspect)
class _TextMockIntegrations:
    """Mock integrations (the REST API's CORS preflight methods) answer text, whatever the binary media types.

    With ``*/*`` among the binary media types, API Gateway cannot apply a mock integration's
    request template to the (binary) request and answers 500: CONVERT_TO_TEXT is AWS's fix.
    """

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, apigw.CfnMethod) and node.http_method == "OPTIONS":
            integration = node.integration
            if getattr(integration, "type", None) == "MOCK":
                node.add_property_override("Integration.ContentHandling", "CONVERT_TO_TEXT")


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
    (:attr:`function`); a :class:`ServiceFunction` passed as ``handler`` is fronted through its
    ``live`` alias and configured (:meth:`configure`).

    ``services`` (or :meth:`add_service`) mount more functions on path prefixes, each with its
    own public routes, scopes and throttles. ``binary_media_types`` (REST; an HTTP API passes
    every body as it is) and ``compression_min_bytes`` (gzip: at a REST gateway, in the function
    for an HTTP API) shape the edge; ``domain`` serves the API on a :class:`CustomDomain`.

    Its resources: :attr:`http_api` and :attr:`http_stage`, or :attr:`rest_api` and :attr:`rest_stage` (the
    other two are None), :attr:`access_log_group`, :attr:`firewall`, :attr:`function` (when it made one),
    :attr:`url`. Metrics: those of :attr:`http_api` / :attr:`rest_api` (``metric_count``,
    ``metric_server_error``, ...); :class:`cdk_app.observability.Observability` alarms on its 5xx share.

    :param handler: what every request goes to, a :class:`cdk_app.function.ServiceFunction` (its ``live`` alias),
        or any function or alias. @default a :class:`cdk_app.function.FastApiFunction` of its own (:attr:`function`)
    :param api_type: ``"http"`` or ``"rest"``. @default ``DEFAULTS.api.type`` (http)
    :param public_routes: routes that answer anyone, ``"METHOD /path"``. @default none (everything protected)
    :param route_scopes: the scopes a route demands (needs a token authorizer), by route,
        e.g. ``{"POST /items": ["api/write"]}``.
        @default none
    :param route_throttles: a route's own (rate per second, burst) below the stage's. @default none
    :param waf_rate_limit: a WAF web ACL (AWS's common rules and this many requests per 5 minutes per IP) on
        the REST stage (:attr:`firewall`); REST only. @default none (no WAF)
    :param authorization_scopes: the scopes every access token carries, put on each token-authorized route
        without its own. @default the authorizer's ``access_token_scopes`` (a :class:`cdk_app.auth.UserPool`'s)
    :param authorizer: an ``aws_apigatewayv2`` route authorizer (HTTP) or an ``aws_apigateway`` authorizer (REST)
        for every non-public route. @default IAM (SigV4)
    :param accept_id_tokens: let a token authorizer without scopes accept ID tokens, knowingly. @default False
    :param api_name: the API's name. @default CDK's (the API construct's id)
    :param throttle_rate_limit: the stage's steady requests per second. @default ``DEFAULTS.api.throttle_rate_limit``
    :param throttle_burst_limit: the stage's burst. @default ``DEFAULTS.api.throttle_burst_limit``
    :param cors: CORS, with open preflight routes. @default ``DEFAULTS.api.cors`` (off)
    :param access_log_retention: of the access log group. @default ``DEFAULTS.log_retention_days``
    :param removal_policy: of the access log group (and the REST API's CloudWatch role). @default ``DEFAULTS.removal_policy``
    :param rest_cloud_watch_role: create API Gateway's account-level CloudWatch role (REST execution logs need
        it; pass False when the account already has one). @default True
    :param services: more functions on path prefixes (:class:`Service`). @default none
    :param binary_media_types: content types passed as binary (REST). @default ``DEFAULTS.api.binary_media_types``
    :param compression_min_bytes: gzip answers from this size on (None for never). @default ``DEFAULTS.api.compression_min_bytes``
    :param domain: a :class:`CustomDomain`; :attr:`url` becomes the domain's.
        @default none

    Example::

        from cdk_app.auth import UserPool
        from cdk_app.function import FastApiFunction

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.handler:app")
        users = UserPool(stack, "Users")
        gateway = FastApiGateway(stack, "Gateway", handler=api, authorizer=users.http_authorizer(),
                                 public_routes=["GET /health"], route_throttles={"POST /items": (10, 20)})
        server_errors = gateway.http_api.metric_server_error() if gateway.http_api else None
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        handler: Handler | None = None,
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
        services: Sequence[Service] = (),
        binary_media_types: Sequence[str] = tuple(DEFAULTS.api.binary_media_types),
        compression_min_bytes: int | None = DEFAULTS.api.compression_min_bytes,
        domain: CustomDomain | None = None,
    ) -> None:
        super().__init__(scope, id)
        check_media_types(binary_media_types)
        if domain is not None:
            check_base_path(domain.base_path, where="domain.base_path")
        self.binary_media_types, self.compression_min_bytes = list(binary_media_types), compression_min_bytes
        self.domain, self._cors = domain, cors
        self.services: dict[str, Service] = {}
        self._created: dict[tuple[str, str], CfnResource] = {}  # HTTP routes by (method, path)
        self._throttles: dict[tuple[str, str], Throttle] = {}  # every route's own limits, services' too
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
        self.accept_id_tokens, self.authorizer = accept_id_tokens, authorizer
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
        own = handler if isinstance(handler, ServiceFunction) else self.function
        #: What the gateway invokes: a :class:`ServiceFunction`'s ``live`` alias, or the function or alias given.
        # A cast: handler is given when own is None, and jsii's Alias and Function miss IFunction (aws/jsii#4541).
        self.handler = cast(lambda_.IFunction, own.alias if own is not None else handler)
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=access_log_retention, removal_policy=removal_policy
        )
        skip_checkov(self.access_log_group, "CKV_AWS_158", LOG_GROUP_KEY)
        self.http_api: apigwv2.HttpApi | None = None
        self.http_stage: apigwv2.HttpStage | None = None
        self.rest_api: apigw.RestApi | None = None
        self.rest_stage: apigw.Stage | None = None
        # The authorizer's kind was checked against api_type above (_implements).
        if api_type == "http":
            public, preflight, protected = self._http_api(
                api_name, throttle_rate_limit, throttle_burst_limit, cors,
                cast("apigwv2.IHttpRouteAuthorizer | None", authorizer))
        else:
            public, preflight, protected = self._rest_api(
                api_name, throttle_rate_limit, throttle_burst_limit, cors, cast("apigw.IAuthorizer | None", authorizer),
                rest_cloud_watch_role, removal_policy)
        # AWS's common rules and a per-IP rate limit in front of the REST stage (HTTP APIs cannot have one:
        # check_edge refused waf_rate_limit with api_type="http" above).
        self.firewall = WebFirewall(self, "Firewall", protect=[self.rest_stage.stage_arn], rate_limit=waf_rate_limit,
                                    log_retention=access_log_retention, removal_policy=removal_policy,
                                    ) if waf_rate_limit is not None and self.rest_stage is not None else None
        api = self.http_api or self.rest_api
        assert api is not None, "one of the two APIs was made above"
        Aspects.of(api).add(
            _AccessTokensOnly(self.authorization_scopes, accept_id_tokens=accept_id_tokens))
        self._accept_route_findings(public=public, preflight=preflight,
                                    iam_protected=protected if authorizer is None else [])
        if self.rest_api is not None and self.rest_stage is not None:
            self._accept_rest_findings(self.rest_api, self.rest_stage)
        self.domain_name = self._custom_domain(domain) if domain is not None else None
        if own is not None:
            self.configure(own)
        for service in services:
            self.add_service(service.prefix, service.handler, public_routes=service.public_routes,
                             route_scopes=service.route_scopes, route_throttles=service.route_throttles)

    @staticmethod
    def max_integration_timeout(api_type: ApiType) -> Duration:
        """The longest a request may take behind this kind of API."""
        return Duration.seconds(GATEWAY_TIMEOUT_LIMITS[api_type])

    # --- several services behind one API ------------------------------------------------------

    def add_service(self, prefix: str, handler: Handler, *,
                    public_routes: Sequence[str] = (), route_scopes: Mapping[str, Sequence[str]] | None = None,
                    route_throttles: Mapping[str, Throttle] | None = None) -> Service:
        """Send every request below ``prefix`` (``"/billing"``: ``/billing`` and ``/billing/...``) to ``handler``.

        Pass a :class:`ServiceFunction` (its ``live`` alias is mounted, and it learns its prefix:
        :meth:`configure`) or any function or alias (then configure it yourself). Its requests need
        the gateway's authorizer (or IAM) like the rest, except its ``public_routes``; ``route_scopes``
        and ``route_throttles`` are its own. Routes are written in full (``"GET /billing/health"``),
        and no route may be claimed by two functions (a :class:`ValueError` says which).
        """
        check_service_prefix(prefix)
        if prefix in self.services:
            raise ValueError(f"add_service: {prefix!r} is mounted already; prefixes overlap when two services share "
                             "one: give each service a prefix of its own")
        service = Service(prefix, handler, tuple(public_routes), route_scopes, route_throttles)
        public = _parse_routes("public_routes", public_routes)
        scopes = {route: tuple(names) for route, names in zip(
            _parse_routes("route_scopes", route_scopes or {}), (route_scopes or {}).values(), strict=True)}
        throttles = dict(zip(_parse_routes("route_throttles", route_throttles or {}),
                             (route_throttles or {}).values(), strict=True))
        declared = [" ".join(r) for r in dict.fromkeys([*public, *scopes, *throttles])]
        check_edge(public_routes=[" ".join(r) for r in public], route_scopes=[" ".join(r) for r in scopes],
                   token_authorizer=self.authorizer is not None, api_type=self.api_type, waf=False)
        check_services({**{s.prefix: (s.prefix, self._declared(s)) for s in self.services.values()},
                        prefix: (prefix, declared)},
                       main_routes=[" ".join(r) for r in (*self.public_routes, *self.explicit_routes)])
        self.services[prefix] = service
        alias = cast(lambda_.IFunction, handler.alias if isinstance(handler, ServiceFunction) else handler)  # jsii#4541
        explicit = tuple(dict.fromkeys([*scopes, *(r for r in throttles if r not in public)]))
        catch_alls = [prefix, f"{prefix}/{{proxy+}}"]
        name = "".join(part.title() for part in prefix.replace("-", "/").replace(".", "/").replace("_", "/")
                       .replace("~", "/").split("/"))
        if self.http_api is not None:
            integration = integrations.HttpLambdaIntegration(f"{name}Lambda", alias)
            opened, preflight = self._http_routes(integration, public=public, scopes=scopes, explicit=explicit,
                                                  prefix=prefix)
            for path in catch_alls:  # the default authorizer (or IAM), like the $default route
                if ("ANY", path) not in (*public, *explicit):
                    self.http_api.add_routes(path=path, methods=[apigwv2.HttpMethod.ANY], integration=integration)
            self._accept_route_findings(public=opened, preflight=preflight, iam_protected=[])
        else:
            opened, protected = self._rest_methods(apigw.LambdaIntegration(alias), public=public, scopes=scopes,
                                                   explicit=explicit, catch_alls=catch_alls, within=prefix)
            self._accept_route_findings(public=opened, preflight=[],
                                        iam_protected=protected if self.authorizer is None else [])
        self._add_throttles(throttles)
        if isinstance(handler, ServiceFunction):
            self.configure(handler, prefix)
        return service

    @staticmethod
    def _declared(service: Service) -> list[str]:
        return [*service.public_routes, *(service.route_scopes or {}), *(service.route_throttles or {})]

    def root_path(self, prefix: str = "/") -> str:
        """The path clients reach a function's app under: the domain's base path, then the service's prefix."""
        parts = [*((self.domain.base_path or "").split("/") if self.domain else ()), *prefix.split("/")]
        return "/" + "/".join(part for part in parts if part) if any(parts) else ""

    def environment(self, prefix: str = "/") -> dict[str, str]:
        """What the runtime (``fastapi_lambda.edge``) reads: the app's root path, and gzip where the gateway
        cannot compress (an HTTP API)."""
        variables = {ROOT_PATH_VARIABLE: self.root_path(prefix)} if self.root_path(prefix) else {}
        if self.api_type == "http" and self.compression_min_bytes is not None:
            variables[GZIP_MIN_BYTES_VARIABLE] = str(self.compression_min_bytes)
        return variables

    def configure(self, function: ServiceFunction, prefix: str = "/") -> None:
        """Tell a function's app what the edge does in front of it (:meth:`environment`)."""
        function.add_environment_variables(self.environment(prefix))

    # --- the custom domain ----------------------------------------------------------------------

    @property
    def _default_endpoint_disabled(self) -> bool:
        return self.domain is not None and self.domain.disable_default_endpoint

    def _custom_domain(self, domain: CustomDomain) -> apigw.DomainName | apigwv2.DomainName:
        """The certificate (given, or requested and DNS-validated), the regional domain, its mapping to the stage,
        and the alias record when a hosted zone is given; :attr:`url` becomes the domain's."""
        certificate = domain.certificate or acm.Certificate(
            self, "Certificate", domain_name=domain.name,
            validation=acm.CertificateValidation.from_dns(domain.hosted_zone))
        if self.http_api is not None:
            name = apigwv2.DomainName(self, "Domain", domain_name=domain.name, certificate=certificate,
                                      endpoint_type=apigwv2.EndpointType.REGIONAL,
                                      security_policy=apigwv2.SecurityPolicy.TLS_1_2)
            mapping = apigwv2.ApiMapping(self, "DomainMapping", api=self.http_api, domain_name=name,
                                         stage=self.http_stage, api_mapping_key=domain.base_path)
            mapping.node.add_dependency(self.http_stage)  # "Invalid stage identifier" otherwise (aws-cdk #8983)
            target = cast(route53.IAliasRecordTarget, route53_targets.ApiGatewayv2DomainProperties(
                name.regional_domain_name, name.regional_hosted_zone_id))
        else:
            name = apigw.DomainName(self, "Domain", domain_name=domain.name, certificate=certificate,
                                    endpoint_type=apigw.EndpointType.REGIONAL,
                                    security_policy=apigw.SecurityPolicy.TLS_1_2)
            name.add_base_path_mapping(cast(apigw.RestApi, self.rest_api), base_path=domain.base_path,
                                       stage=self.rest_stage)
            target = cast(route53.IAliasRecordTarget, route53_targets.ApiGatewayDomain(name))
        if domain.hosted_zone is not None:
            route53.ARecord(self, "DomainRecord", zone=domain.hosted_zone, record_name=domain.name,
                            target=route53.RecordTarget.from_alias(target))
        self.url = f"https://{domain.name}/{domain.base_path + '/' if domain.base_path else ''}"
        return name

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

    def _accept_rest_findings(self, api: apigw.RestApi, stage: apigw.Stage) -> None:
        """The REST API's own: request validation in the app, no stage cache, the account's logging role."""
        acknowledge(
            api.node.default_child, "APIG2",
            "Requests are validated by FastAPI (pydantic models, 422 with the field and reason) inside the proxy "
            "integration; a gateway request model would duplicate that schema and drift from it.",
        )
        skip_checkov(stage, "CKV_AWS_120", (
            "Answers are dynamic and per caller (protected routes answer for one identity); a stage cache is billed "
            "by the hour and would hand one caller's answer to another unless every method keyed it on the "
            "Authorization header. The app caches what is worth caching itself (the cache capability)."))
        if self.firewall is None:
            acknowledge(
                stage.node.default_child, "APIG3",
                "A WAF web ACL is a choice of rules and cost per environment; this gateway was built without one "
                "(waf_rate_limit / api.waf.enabled add it).",
            )
        cloud_watch_role = api.node.try_find_child("CloudWatchRole")
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
            disable_execute_api_endpoint=self._default_endpoint_disabled,
            cors_preflight=None if cors is None else apigwv2.CorsPreflightOptions(
                allow_origins=cors.allow_origins,
                allow_methods=[apigwv2.CorsHttpMethod(m) if m != "*" else apigwv2.CorsHttpMethod.ANY
                               for m in cors.allow_methods],
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                max_age=Duration.seconds(cors.max_age_seconds),
            ),
        )

        public, preflight = self._http_routes(integration, public=self.public_routes, scopes=self.route_scopes,
                                              explicit=self.explicit_routes, prefix="/")
        self.http_stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate, burst_limit=burst),
            access_log_settings=_HttpAccessLogs(self.access_log_group),
        )
        self._add_throttles(self.route_throttles)
        self.url: str = self.http_stage.url
        return public, preflight, []

    def _http_routes(self, integration: apigwv2.HttpRouteIntegration, *, public: Sequence[tuple[str, str]],
                     scopes: Mapping[tuple[str, str], Sequence[str]], explicit: Sequence[tuple[str, str]],
                     prefix: str) -> tuple[list[CfnResource], list[CfnResource]]:
        """One function's routes: public ones open, explicit ones (scoped or throttled) with the default
        authorizer; with CORS, open OPTIONS routes below ``prefix`` (the rest is the caller's catch-all)."""

        api = self.http_api
        assert api is not None, "called for an HTTP API only"

        def add(route: tuple[str, str], *, authorizer: apigwv2.IHttpRouteAuthorizer | None = None,
                authorization_scopes: Sequence[str] | None = None) -> CfnResource:
            (added,) = api.add_routes(path=route[1], methods=[apigwv2.HttpMethod(route[0])], integration=integration,
                                      authorizer=authorizer, authorization_scopes=authorization_scopes)
            self._created[route] = cast(CfnResource, added.node.default_child)
            return self._created[route]

        def open_routes(routes: Sequence[tuple[str, str]]) -> list[CfnResource]:
            return [add(route, authorizer=apigwv2.HttpNoneAuthorizer()) for route in routes]

        opened = open_routes(public)
        for route in explicit:  # the default authorizer, with the route's scopes
            add(route, authorization_scopes=list(scopes.get(route, ())) or None)
        # Browsers send preflight requests unsigned and without tokens, and the $default route
        # (or a service's catch-all) would refuse them (AWS: "CORS and authorization for the $default route").
        base = prefix.rstrip("/")
        preflight = open_routes([r for r in (("OPTIONS", base or "/"), ("OPTIONS", f"{base}/{{proxy+}}"))
                                 if self._cors and r not in public])
        return opened, preflight

    def _add_throttles(self, throttles: Mapping[tuple[str, str], Throttle]) -> None:
        """Per-route limits, so one route cannot spend the whole stage's budget."""
        self._throttles.update(throttles)
        if not throttles:
            return
        if self.http_stage is not None:
            stage = cast(apigwv2.CfnStage, self.http_stage.node.default_child)
            stage.route_settings = {
                # A JSON property: CloudFormation's own key names, not jsii's.
                f"{method} {path}": {"ThrottlingRateLimit": rate_limit, "ThrottlingBurstLimit": burst_limit}
                for (method, path), (rate_limit, burst_limit) in self._throttles.items()}
            for route in throttles:  # "Unable to find Route by key" if the stage came first
                stage.node.add_dependency(self._created[route])
        elif self.rest_stage is not None and throttles.keys() - self.route_throttles.keys():
            stage = cast(apigw.CfnStage, self.rest_stage.node.default_child)
            # The settings this stage was built with: a list (the stage's deploy options), never a token.
            earlier = cast("list[IResolvable | apigw.CfnStage.MethodSettingProperty]", stage.method_settings or [])
            stage.method_settings = [*earlier, *(apigw.CfnStage.MethodSettingProperty(
                # The stage's own escaping of a resource path ("/a/b" -> "/~1a~1b").
                resource_path="/" + path.replace("/", "~1"), http_method=method,
                throttling_rate_limit=rate_limit, throttling_burst_limit=burst_limit)
                for (method, path), (rate_limit, burst_limit) in throttles.items())]

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
            binary_media_types=self.binary_media_types or None,
            min_compression_size=Size.bytes(self.compression_min_bytes)
            if self.compression_min_bytes is not None else None,
            disable_execute_api_endpoint=self._default_endpoint_disabled,
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
        if self.binary_media_types:
            Aspects.of(self.rest_api).add(_TextMockIntegrations())
        if self._default_endpoint_disabled:  # the setting takes effect with a new deployment only
            cast(apigw.Deployment, self.rest_api.latest_deployment).add_to_logical_id({"disableExecuteApiEndpoint": True})
        public, protected = self._rest_methods(None, public=self.public_routes, scopes=self.route_scopes,
                                               explicit=self.explicit_routes, catch_alls=["/", "/{proxy+}"])
        return public, [], protected

    def _rest_methods(self, integration: apigw.Integration | None, *, public: Sequence[tuple[str, str]],
                      scopes: Mapping[tuple[str, str], Sequence[str]], explicit: Sequence[tuple[str, str]],
                      catch_alls: Sequence[str], within: str = "/") -> tuple[list[CfnResource], list[CfnResource]]:
        """One function's methods (``integration``; None: the API's default): public ones open, explicit ones
        with the default method options and their scopes, and a protected ANY on each of its resources."""
        root = cast(apigw.RestApi, self.rest_api).root
        opened = [root.resource_for_path(path).add_method(method, integration,
                                                          authorization_type=apigw.AuthorizationType.NONE)
                  for method, path in public]
        scoped = [root.resource_for_path(path).add_method(  # the default method options, with the route's scopes
            method, integration, authorization_scopes=list(scopes.get((method, path), ())) or None)
            for method, path in explicit]
        # API Gateway matches the most specific resource, then its methods: each resource a public
        # route creates gets a protected ANY too, or its other methods would never reach the app.
        paths = dict.fromkeys([*catch_alls, *(p for _, path in (*public, *explicit) for p in _resource_paths(path)
                                              if under(p, within) or within == "/")])
        protected = [root.resource_for_path(path).add_method("ANY", integration)
                     for path in paths if ("ANY", path) not in (*public, *explicit)]
        return ([cast(CfnResource, m.node.default_child) for m in opened],
                [cast(CfnResource, m.node.default_child) for m in (*protected, *scoped)])
