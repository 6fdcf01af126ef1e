"""The API Gateway front door: HTTP API (default) or REST API, both on the function alias."""

from __future__ import annotations

import json
from typing import Literal

import jsii
from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from cdk_app import compliance
from cdk_app.config import GATEWAY_TIMEOUT_LIMITS, CorsSettings
from cdk_app.function import FastApiFunction

ApiType = Literal["http", "rest"]

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


class FastApiGateway(Construct):
    """Routes every path and method to ``handler`` (pass the function's alias).

    ``api_type="http"`` creates an HTTP API (cheaper, lower latency, JWT authorizers);
    ``"rest"`` a regional REST API (X-Ray at the gateway, WAF, usage plans). Both get
    stage throttling, JSON access logs in their own log group and optional CORS;
    :attr:`url` is the invoke URL. Without ``handler`` the construct creates its own
    :class:`FastApiFunction` (:attr:`function`).
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        handler: lambda_.IFunction | None = None,
        api_type: ApiType = "http",
        api_name: str | None = None,
        throttle_rate_limit: float = 100,
        throttle_burst_limit: int = 200,
        cors: CorsSettings | None = None,
        access_log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH,
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
        rest_cloud_watch_role: bool = True,
    ) -> None:
        super().__init__(scope, id)
        if api_type not in GATEWAY_TIMEOUT_LIMITS:
            raise ValueError(f"api_type={api_type!r} is not supported; use 'http' or 'rest'")
        self.api_type = api_type
        self.function = FastApiFunction(
            self, "Function", max_timeout=self.max_integration_timeout(api_type)) if handler is None else None
        self.handler = handler or self.function.alias
        self.access_log_group = logs.LogGroup(
            self, "AccessLogs", retention=access_log_retention, removal_policy=removal_policy
        )
        self.http_api: apigwv2.HttpApi | None = None
        self.http_stage: apigwv2.HttpStage | None = None
        self.rest_api: apigw.RestApi | None = None
        self.rest_stage: apigw.Stage | None = None
        if api_type == "http":
            self.http_api = self._http_api(api_name, throttle_rate_limit, throttle_burst_limit, cors)
            self.url: str = self.http_stage.url
        else:
            self.rest_api = self._rest_api(
                api_name, throttle_rate_limit, throttle_burst_limit, cors, rest_cloud_watch_role, removal_policy
            )
            self.rest_stage = self.rest_api.deployment_stage
            self.url = self.rest_api.url
        compliance.acknowledge_gateway(self)

    @staticmethod
    def max_integration_timeout(api_type: ApiType) -> Duration:
        """The longest a request may take behind this kind of API."""
        return Duration.seconds(GATEWAY_TIMEOUT_LIMITS[api_type])

    def _http_api(self, name: str | None, rate: float, burst: int, cors: CorsSettings | None) -> apigwv2.HttpApi:
        api = apigwv2.HttpApi(
            self,
            "HttpApi",
            api_name=name,
            create_default_stage=False,
            default_integration=integrations.HttpLambdaIntegration("Lambda", self.handler),
            cors_preflight=None if cors is None else apigwv2.CorsPreflightOptions(
                allow_origins=cors.allow_origins,
                allow_methods=[apigwv2.CorsHttpMethod(m) if m != "*" else apigwv2.CorsHttpMethod.ANY
                               for m in cors.allow_methods],
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                max_age=Duration.seconds(cors.max_age_seconds),
            ),
        )
        self.http_stage = apigwv2.HttpStage(
            self,
            "Stage",
            http_api=api,
            stage_name="$default",
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=rate, burst_limit=burst),
            access_log_settings=_HttpAccessLogs(self.access_log_group),
        )
        return api

    def _rest_api(self, name: str | None, rate: float, burst: int, cors: CorsSettings | None,
                  cloud_watch_role: bool, removal_policy: RemovalPolicy) -> apigw.RestApi:
        return apigw.LambdaRestApi(
            self,
            "RestApi",
            handler=self.handler,
            proxy=True,
            rest_api_name=name,
            endpoint_types=[apigw.EndpointType.REGIONAL],
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
            ),
            default_cors_preflight_options=None if cors is None else apigw.CorsOptions(
                allow_origins=cors.allow_origins,
                allow_methods=["ANY"] if "*" in cors.allow_methods else cors.allow_methods,
                allow_headers=cors.allow_headers,
                allow_credentials=cors.allow_credentials,
                max_age=Duration.seconds(cors.max_age_seconds),
            ),
        )
