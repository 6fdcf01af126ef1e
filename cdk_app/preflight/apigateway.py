"""API Gateway: HTTP API routes, authorizers, stages and integrations; REST methods, authorizers, stages, deployments."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    as_list,
    as_mapping,
    is_mapping,
    known,
    literal_text,
    number,
    rule,
    shape,
    shown,
    target_id,
)
from cdk_app.settings.limits import MAX_COMPRESSION_BYTES

ROUTE = "AWS::ApiGatewayV2::Route"
METHOD = "AWS::ApiGateway::Method"
REST_API, HTTP_API, HTTP_STAGE = "AWS::ApiGateway::RestApi", "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage"
#: The authorization types that carry scopes, per kind of API.
_SCOPED = {ROUTE: "JWT", METHOD: "COGNITO_USER_POOLS"}


@rule("APIGW-SCOPES-NEED-TOKEN", ROUTE, METHOD,
      message='"Invalid Route authorization type specified. Authorization Scopes are only valid for '
              'COGNITO_USER_POOLS and JWT authorization types"',
      source="https://github.com/aws/aws-cdk/pull/27576; https://docs.aws.amazon.com/AWSCloudFormation/latest/"
             "UserGuide/aws-resource-apigateway-method.html#cfn-apigateway-method-authorizationscopes")
def scopes_need_token(resource: Resource, template: Template) -> Iterator[Violation]:
    """Authorization scopes only on routes (methods) with a JWT (Cognito user pool) authorizer."""
    scopes, kind = resource.get("AuthorizationScopes"), resource.get("AuthorizationType", default="NONE")
    if scopes and isinstance(kind, str) and kind != _SCOPED[resource.type]:
        yield Violation(f"AuthorizationScopes={shown(scopes)} with AuthorizationType {kind}",
                        "remove the scopes from this route (a public or IAM route has no token to carry them); with "
                        "CDK's default_authorization_scopes, set scopes per token-authorized route instead",
                        location="Properties/AuthorizationScopes")


@rule("APIGW-AUTHORIZER-ID", ROUTE, METHOD,
      message='"Invalid authorizer ID specified. Setting the authorization type to CUSTOM or COGNITO_USER_POOLS '
              'requires a valid authorizer"',
      source="https://docs.aws.amazon.com/apigateway/latest/api/API_PutMethod.html#apigw-PutMethod-request-authorizerId; "
             "https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-routes.html")
def authorizer_id(resource: Resource, template: Template) -> Iterator[Violation]:
    """A token or Lambda authorization type names its authorizer; NONE and AWS_IAM name none."""
    kind, authorizer = resource.get("AuthorizationType", default="NONE"), resource.get("AuthorizerId")
    if not isinstance(kind, str):
        return
    if kind in ("JWT", "CUSTOM", "COGNITO_USER_POOLS") and not authorizer:
        yield Violation(f"AuthorizationType {kind} without AuthorizerId", "pass the authorizer to the route or method")
    elif kind in ("NONE", "AWS_IAM") and authorizer:
        yield Violation(f"AuthorizationType {kind} with AuthorizerId", "remove the authorizer or set the type it needs",
                        message="an authorizer applies only to JWT, CUSTOM or COGNITO_USER_POOLS authorization")


_ROUTE_KEY = re.compile(r"(ANY|GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/[^\s]*)")


@rule("HTTPAPI-ROUTE-KEY", ROUTE, message="BadRequestException: the route key is not valid",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-routes.html")
def route_key(resource: Resource, template: Template) -> Iterator[Violation]:
    """A route key is $default or 'METHOD /path' with a greedy {name+} only as the last segment."""
    key = resource.get("RouteKey")
    if not isinstance(key, str) or key.startswith("$"):
        return
    match = _ROUTE_KEY.fullmatch(key)
    greedy = match and [i for i, part in enumerate(match.group(2).split("/")) if part.endswith("+}")]
    if match is None or (greedy and greedy != [len(match.group(2).split("/")) - 1]) or \
            (match.group(2) != "/" and match.group(2).endswith("/")):
        yield Violation(f"RouteKey={key!r}", "write '$default' or 'METHOD /path' (METHOD in capitals, no trailing "
                        "slash, a greedy {proxy+} only last)", location="Properties/RouteKey")


@rule("HTTPAPI-ROUTE-DUPLICATE", ROUTE, message='"ConflictException: Route with key ... already exists for this API"',
      source="https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-routes.html")
def route_unique(resource: Resource, template: Template) -> Iterator[Violation]:
    """Each route key appears once per API."""
    api, key = target_id(resource.get("ApiId")), resource.get("RouteKey")
    if api is None or not isinstance(key, str):
        return
    same = [r.id for r in template.of_type(ROUTE) if target_id(r.get("ApiId")) == api and r.get("RouteKey") == key]
    if len(same) > 1 and same[0] != resource.id:
        yield Violation(f"RouteKey={key!r} is also the key of {same[0]}", "keep one route per key")


@rule("HTTPAPI-STAGE-ROUTE-SETTINGS", "AWS::ApiGatewayV2::Stage",
      message='"Unable to find Route by key ... within the provided RouteSettings"',
      source="https://github.com/aws/aws-sam-cli/issues/2479; "
             "https://github.com/terraform-aws-modules/terraform-aws-apigateway-v2/pull/80")
def stage_route_settings(resource: Resource, template: Template) -> Iterator[Violation]:
    """Each key of a stage's RouteSettings is a route of its API, created before the stage."""
    settings, api = resource.get("RouteSettings"), target_id(resource.get("ApiId"))
    if not is_mapping(settings) or api is None or api not in template.resources:
        return
    routes = {r.get("RouteKey"): r for r in template.of_type(ROUTE) if target_id(r.get("ApiId")) == api}
    for key in settings:
        route = routes.get(key)
        if route is None:
            yield Violation(f"RouteSettings names {key!r}, which is no route of the API",
                            "add the route or remove its settings", location="Properties/RouteSettings")
        elif not template.depends(resource, route.id):
            yield Violation(f"RouteSettings names {key!r} but the stage does not depend on route {route.id}",
                            "add a dependency from the stage to the route (stage.node.add_dependency(route)); "
                            "CloudFormation may create the stage first", location="Properties/RouteSettings")


@rule("APIGW-ACCESS-LOG-FORMAT", "AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Stage",
      message='"Access Log format must contain at least one of $context.requestId or $context.extendedRequestId"',
      source="https://github.com/aws/aws-cdk/pull/22591; "
             "https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-logging.html")
def access_log_format(resource: Resource, template: Template) -> Iterator[Violation]:
    """An access log format names the request id; a destination comes with a format."""
    settings = resource.get("AccessLogSettings") or resource.get("AccessLogSetting")
    if not is_mapping(settings):
        return
    fmt = settings.get("Format")
    if settings.get("DestinationArn") and not fmt:
        yield Violation("access logs without Format", "set a format that includes $context.requestId",
                        message="a log destination needs a format")
        return
    text = shape(fmt)
    ids = ("$context.requestId",) if resource.type == "AWS::ApiGatewayV2::Stage" else \
        ("$context.requestId", "$context.extendedRequestId")
    if text and known(fmt) and not any(i in text for i in ids):
        yield Violation(f"Format={shown(text)}", f"add {ids[0]} to the access log format")


_LOGGING_LEVELS = ("INFO", "ERROR")


def _rest_stage_logs(stage: Resource) -> bool:
    """Whether a REST stage writes execution or access logs to CloudWatch (which needs the account's role)."""
    methods = stage.mappings("MethodSettings")
    return bool(stage.get("AccessLogSetting", "DestinationArn")) or any(
        m.get("LoggingLevel") in _LOGGING_LEVELS or m.get("DataTraceEnabled") is True for m in methods)


@rule("RESTAPI-LOGGING-ROLE", "AWS::ApiGateway::Stage", severity="warning",
      message='"CloudWatch Logs role ARN must be set in account settings to enable logging" unless this account '
              "and region already have API Gateway's CloudWatch role",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html; "
             "https://github.com/aws/aws-cdk/issues/10722")
def logging_role(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST stage that logs needs the account-level CloudWatch role (account setting cloudWatchRoleArn)."""
    if _rest_stage_logs(resource) and not template.of_type("AWS::ApiGateway::Account"):
        yield Violation("the stage logs to CloudWatch and this template sets no AWS::ApiGateway::Account",
                        "keep the RestApi's cloud_watch_role=True, or set the account's API Gateway CloudWatch role "
                        "once per region before deploying (quota-like account setting, not a template error)")


@rule("RESTAPI-ACCOUNT-ORDER", "AWS::ApiGateway::Stage",
      message='"CloudWatch Logs role ARN must be set in account settings to enable logging" (the stage was created '
              "before the account setting)",
      source="https://github.com/aws/aws-cdk/issues/10722")
def account_before_stage(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST stage that logs is created after the AWS::ApiGateway::Account of the same template."""
    if not _rest_stage_logs(resource):
        return
    for account in template.of_type("AWS::ApiGateway::Account"):
        if not template.depends(resource, account.id):
            yield Violation(f"the stage does not depend on {account.id}",
                            "add a dependency from the stage to the account setting")


@rule("RESTAPI-DEPLOYMENT-METHODS", "AWS::ApiGateway::Deployment",
      message='"The REST API doesn\'t contain any methods" (or "No integration defined for method")',
      source="https://github.com/cloudtools/troposphere/issues/496; https://docs.aws.amazon.com/AWSCloudFormation/"
             "latest/UserGuide/aws-resource-apigateway-deployment.html")
def deployment_after_methods(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST deployment is created after every method of its API (and the API has one)."""
    api = target_id(resource.get("RestApiId"))
    if api is None or api not in template.resources:
        return
    methods = [m for m in template.of_type(METHOD) if target_id(m.get("RestApiId")) == api]
    if not methods:
        yield Violation("the deployment's REST API has no methods in this template", "add a method before deploying")
    missing = [m.id for m in methods if not template.depends(resource, m.id)]
    if missing:
        yield Violation(f"the deployment does not depend on {', '.join(missing[:3])}"
                        + (f" and {len(missing) - 3} more" if len(missing) > 3 else ""),
                        "add a dependency from the deployment to each method (deployment.node.add_dependency(method))")


@rule("RESTAPI-LAMBDA-POST", METHOD,
      message="API Gateway invokes Lambda only with POST: another integration method answers every request with "
              '500 "Internal server error" ("Enumeration value for HttpMethod must be non-empty" when missing)',
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-lambda-proxy-integrations.html")
def lambda_integration_post(resource: Resource, template: Template) -> Iterator[Violation]:
    """A Lambda integration of a REST method calls Lambda with POST."""
    integration = resource.mapping("Integration")
    uri = shape(integration.get("Uri")) or ""
    if integration.get("Type") in ("AWS", "AWS_PROXY") and ":lambda:path/" in uri:
        verb = integration.get("IntegrationHttpMethod")
        if isinstance(verb, str | type(None)) and verb != "POST":
            yield Violation(f"IntegrationHttpMethod={verb!r} for a Lambda integration", "set IntegrationHttpMethod "
                            "to POST (the method clients call stays HttpMethod)",
                            location="Properties/Integration/IntegrationHttpMethod")


@rule("HTTPAPI-INTEGRATION", "AWS::ApiGatewayV2::Integration",
      message="BadRequestException: a Lambda proxy integration needs PayloadFormatVersion 1.0 or 2.0 and a "
              "timeout of 50 to 30000 ms",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html")
def http_integration(resource: Resource, template: Template) -> Iterator[Violation]:
    """An HTTP API Lambda proxy integration names its payload version; its timeout is 50-30000 ms."""
    version, timeout = resource.get("PayloadFormatVersion"), number(resource.get("TimeoutInMillis"))
    if resource.get("IntegrationType") == "AWS_PROXY" and version not in ("1.0", "2.0") and known(version):
        yield Violation(f"PayloadFormatVersion={version!r}", "set PayloadFormatVersion to '2.0' (or '1.0')")
    if timeout is not None and not 50 <= timeout <= 30000:
        yield Violation(f"TimeoutInMillis={timeout:g}", "set 50 to 30000 ms")


@rule("HTTPAPI-CORS", "AWS::ApiGatewayV2::Api",
      message="BadRequestException: CORS with credentials cannot allow every origin; MaxAge is at most 86400",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-cors.html")
def http_cors(resource: Resource, template: Template) -> Iterator[Violation]:
    """HTTP API CORS: no '*' origin with credentials, a max age of at most a day."""
    cors = resource.get("CorsConfiguration")
    if not is_mapping(cors):
        return
    if cors.get("AllowCredentials") is True and "*" in as_list(cors.get("AllowOrigins")):
        yield Violation("AllowCredentials with AllowOrigins '*'", "list the exact origins, or drop credentials")
    if (age := number(cors.get("MaxAge"))) is not None and not -1 <= age <= 86400:
        yield Violation(f"MaxAge={age:g}", "set at most 86400 seconds")


@rule("HTTPAPI-JWT-AUTHORIZER", "AWS::ApiGatewayV2::Authorizer",
      message="BadRequestException: a JWT authorizer needs an https issuer, an audience and an identity source "
              "like $request.header.Authorization",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html")
def jwt_authorizer(resource: Resource, template: Template) -> Iterator[Violation]:
    """A JWT authorizer has an https issuer, an audience and a header identity source."""
    if resource.get("AuthorizerType") != "JWT":
        return
    jwt = resource.mapping("JwtConfiguration")
    issuer = literal_text(jwt.get("Issuer"))
    if not jwt.get("Issuer") or (issuer is not None and not issuer.startswith("https://")):
        yield Violation(f"Issuer={issuer!r}", "set the issuer URL (https://cognito-idp.<region>.amazonaws.com/<pool>)")
    if not as_list(jwt.get("Audience")):
        yield Violation("no Audience", "list the app client ids (the aud or client_id the tokens carry)")
    for source in as_list(resource.get("IdentitySource")):
        if isinstance(source, str) and not re.fullmatch(r"\$request\.(header|querystring)\.[\w-]+", source):
            yield Violation(f"IdentitySource={source!r}", "use $request.header.Authorization")


@rule("RESTAPI-AUTHORIZER", "AWS::ApiGateway::Authorizer",
      message="BadRequestException: a Cognito authorizer needs ProviderARNs; a Lambda authorizer an AuthorizerUri; "
              "the identity source is method.request.header.<name>",
      source="https://docs.aws.amazon.com/apigateway/latest/api/API_CreateAuthorizer.html")
def rest_authorizer(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST authorizer has what its type needs."""
    kind = resource.get("Type")
    if kind == "COGNITO_USER_POOLS" and not as_list(resource.get("ProviderARNs")):
        yield Violation("a COGNITO_USER_POOLS authorizer without ProviderARNs", "list the user pool ARNs")
    if kind in ("TOKEN", "REQUEST") and not resource.get("AuthorizerUri"):
        yield Violation(f"a {kind} authorizer without AuthorizerUri", "set the Lambda function's invocation URI")
    source = resource.get("IdentitySource")
    if kind in ("TOKEN", "COGNITO_USER_POOLS") and isinstance(source, str) and \
            not re.fullmatch(r"method\.request\.header\.[\w-]+", source):
        yield Violation(f"IdentitySource={source!r}", "use method.request.header.Authorization")


def _route_settings(stage: Resource) -> list[tuple[str, Mapping[str, Any]]]:
    """(where, settings) of every block of a stage's throttling and logging settings: an HTTP or WebSocket
    stage's DefaultRouteSettings and each of its RouteSettings, a REST stage's MethodSettings."""
    return [("DefaultRouteSettings", stage.mapping("DefaultRouteSettings")),
            *((f"RouteSettings/{key}", as_mapping(value)) for key, value in stage.mapping("RouteSettings").items()),
            *((f"MethodSettings/{i}", setting) for i, setting in enumerate(stage.mappings("MethodSettings")))]


@rule("APIGW-THROTTLE-QUOTA", "AWS::ApiGatewayV2::Stage", "AWS::ApiGateway::Stage", severity="warning",
      message="API Gateway caps stage and route throttling at the account's quota (10,000 requests per second, "
              "burst 5,000 by default per region): higher values are not applied",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html")
def throttle_quota(resource: Resource, template: Template) -> Iterator[Violation]:
    """Throttling above the account's default quota needs a quota increase to take effect."""
    counts: Counter[str] = Counter()
    for _, s in _route_settings(resource):
        rate, burst = number(s.get("ThrottlingRateLimit")), number(s.get("ThrottlingBurstLimit"))
        counts["rate"] += bool(rate and rate > 10000)
        counts["burst"] += bool(burst and burst > 5000)
    if counts["rate"] or counts["burst"]:
        yield Violation("throttling above 10,000 requests/s or a burst above 5,000",
                        "request an increase of the 'Throttle rate' quota (Service Quotas, API Gateway) first")


#: The OpenAPI extension an imported definition (the RestApi's Body) sets it with.
_COMPRESSION_EXTENSION = "x-amazon-apigateway-minimum-compression-size"


@rule("RESTAPI-COMPRESSION-SIZE", REST_API,
      message="API Gateway refuses a minimum compression size that is not an integer from 0 to 10485760 bytes "
              "(10M bytes) when it creates or updates the REST API",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-gzip-compression-decompression"
             ".html; https://docs.aws.amazon.com/apigateway/latest/developerguide/"
             "api-gateway-openapi-minimum-compression-size.html")
def compression_size(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST API's minimum compression size (property or OpenAPI extension) is 0 to 10,485,760 bytes."""
    for where, value in (("MinimumCompressionSize", resource.get("MinimumCompressionSize")),
                         (f"Body/{_COMPRESSION_EXTENSION}", resource.mapping("Body").get(_COMPRESSION_EXTENSION))):
        size = number(value)
        if size is not None and (not 0 <= size <= MAX_COMPRESSION_BYTES or size != int(size)):
            yield Violation(f"{where}={shown(value)}", f"set a whole number of bytes from 0 (compress every answer) "
                            f"to {MAX_COMPRESSION_BYTES} (FastApiGateway's compression_min_bytes), or leave it out to "
                            "turn compression off", location=f"Properties/{where}")


#: Route settings that configure execution logging, which only WebSocket APIs have.
_EXECUTION_LOGS = ("LoggingLevel", "DataTraceEnabled")


@rule("HTTPAPI-STAGE-EXECUTION-LOGS", HTTP_STAGE,
      message='"BadRequestException: Execution logs are not supported on protocolType HTTP" (LoggingLevel and '
              "DataTraceEnabled are route settings of WebSocket APIs only)",
      source="https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-apigatewayv2-stage-"
             "routesettings.html; https://github.com/hashicorp/terraform-provider-aws/issues/14010")
def http_execution_logs(resource: Resource, template: Template) -> Iterator[Violation]:
    """An HTTP API stage's route settings turn on no execution logs (LoggingLevel, DataTraceEnabled)."""
    api = template.target(resource.get("ApiId"), HTTP_API)
    if api is None or api.get("ProtocolType") != "HTTP":
        return
    for where, setting in _route_settings(resource):
        found = [k for k in _EXECUTION_LOGS if (k == "LoggingLevel" and k in setting) or setting.get(k) is True]
        if found:
            yield Violation(f"{where} sets {', '.join(found)} on a stage of HTTP API {api.id}", "remove them: an HTTP "
                            "API logs through its stage's AccessLogSettings (access logs) only",
                            location=f"Properties/{where}")


@rule("APIGW-THROTTLE-ZERO", HTTP_STAGE, "AWS::ApiGateway::Stage", severity="warning",
      message="a throttling rate or burst of 0 leaves the token bucket empty: API Gateway answers every request of "
              "the stage, route or method 429 Too Many Requests",
      source="https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-throttling.html; "
             "https://github.com/pulumi/pulumi-aws/issues/2363; "
             "https://github.com/hashicorp/terraform-provider-aws/pull/43307")
def throttle_zero(resource: Resource, template: Template) -> Iterator[Violation]:
    """Stage, route and method throttling lets requests through (a rate and a burst above 0)."""
    for where, setting in _route_settings(resource):
        zero = [k for k in ("ThrottlingRateLimit", "ThrottlingBurstLimit") if number(setting.get(k)) == 0]
        if zero:
            yield Violation(f"{where} sets {' and '.join(zero)} to 0", "set a rate and a burst above 0 "
                            "(FastApiGateway's throttle_rate_limit / throttle_burst_limit, route_throttles), or leave "
                            "them out to use the account's limits; to close a route, remove it",
                            location=f"Properties/{where}")


#: A REST method's logging levels (CDK's MethodLoggingLevel). Compared without case: an unknown spelling of a known
#: level is left to AWS rather than refused here.
_METHOD_LOGGING_LEVELS = ("OFF", "ERROR", "INFO")


@rule("RESTAPI-METHOD-LOGGING-LEVEL", "AWS::ApiGateway::Stage",
      message="BadRequestException: API Gateway takes only OFF, ERROR or INFO as a method's logging level",
      source="https://docs.aws.amazon.com/apigateway/latest/api/API_MethodSetting.html; https://docs.aws.amazon.com/"
             "AWSCloudFormation/latest/UserGuide/aws-properties-apigateway-stage-methodsetting.html")
def method_logging_level(resource: Resource, template: Template) -> Iterator[Violation]:
    """A REST stage's method settings log at OFF, ERROR or INFO."""
    for where, setting in _route_settings(resource):
        level = literal_text(setting.get("LoggingLevel"))
        if level is not None and level.upper() not in _METHOD_LOGGING_LEVELS:
            yield Violation(f"{where}/LoggingLevel={level!r}", "use OFF, ERROR or INFO (MethodLoggingLevel); "
                            "DataTraceEnabled adds full request and response logs", location=f"Properties/{where}")
