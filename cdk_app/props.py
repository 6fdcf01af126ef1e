"""One environment's settings as each construct's props: one function per capability, in the stack's order.

:class:`cdk_app.stack.FastApiStack` builds each capability from what these return, and adds
only what ties capabilities together (the layer, the network placement, the authorizer). A
construct's own defaults are the same settings' defaults (:data:`cdk_app.settings.DEFAULTS`),
so a key left out of ``cdk.json`` and a prop left out of a construct mean the same thing
(``tests/infra/test_defaults.py`` holds them to it).
"""

from __future__ import annotations

from typing import Any

from aws_cdk import Duration
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_route53 as route53
from constructs import Construct
from fastapi_lambda.constants import (
    FILES_INCOMING_PREFIX,
    UPLOAD_BUCKET_VARIABLE,
    UPLOAD_MAX_BYTES_VARIABLE,
    UPLOAD_PREFIX_VARIABLE,
)

from cdk_app.api import CustomDomain
from cdk_app.bundling.assets import LAMBDA_SRC
from cdk_app.bundling.target import BundlingTarget
from cdk_app.cdk_values import log_retention, removal_policy, tracing
from cdk_app.cold_start import ColdStart, ProvisionedConcurrency, ScheduledCapacity, Warmup
from cdk_app.releases import Release
from cdk_app.settings import EnvironmentSettings
from cdk_app.settings.rules import GATEWAY_TIMEOUT_LIMITS
from cdk_app.settings.schema import ColdStartSettings, ServiceSettings

#: The example app's handler module: the API and the worker alike (lambda_src/service/handler.py).
HANDLER = "service.handler.handler"
Props = dict[str, Any]


def _durable(settings: EnvironmentSettings) -> Props:
    """What every stateful resource and log group of the environment shares."""
    return {"removal_policy": removal_policy(settings.removal_policy)}


def target(settings: EnvironmentSettings) -> BundlingTarget:
    """What the code and its layers are built for (:class:`cdk_app.bundling.target.BundlingTarget`)."""
    return BundlingTarget(python_version=settings.function.python_version,
                          architecture=settings.function.architecture,
                          include_aws_sdk=settings.bundling.include_aws_sdk,
                          require_compiled=settings.bundling.require_compiled)


def dependencies(settings: EnvironmentSettings) -> Props:
    """The shared dependency layer (:class:`cdk_app.function.DependenciesLayer`)."""
    return {"source": LAMBDA_SRC, "target": target(settings), **_durable(settings)}


def network(settings: EnvironmentSettings) -> Props:
    """The VPC the cache needs (:class:`cdk_app.network.Network`)."""
    n = settings.network
    return {"egress": n.egress, "az_count": n.az_count, "availability_zones": n.availability_zones, "cidr": n.cidr,
            "subnet_mask": n.subnet_mask, "nat_gateways": n.nat_gateways, "flow_logs": n.flow_logs,
            "flow_log_retention": log_retention(settings.log_retention_days), **_durable(settings)}


def cache(settings: EnvironmentSettings) -> Props:
    """The cache (:class:`cdk_app.cache.ValkeyCache`), without the network it is placed in."""
    c = settings.cache
    return {"kind": c.kind, "max_data_storage_gb": c.max_data_storage_gb, "max_ecpu_per_second": c.max_ecpu_per_second,
            "node_type": c.node_type, "replicas": c.replicas, "multi_az": c.multi_az, "port": c.port,
            "snapshot_retention_days": c.snapshot_retention_days, "snapshot_time": c.snapshot_time,
            "connect_timeout": Duration.millis(c.connect_timeout_ms),
            "command_timeout": Duration.millis(c.command_timeout_ms), **_durable(settings)}


def functions(scope: Construct, settings: EnvironmentSettings, environment_name: str) -> Props:
    """What every function of the environment shares: code, target, logs, tracing (the ADOT layer, if any, is
    referenced once in ``scope``)."""
    observed = settings.observability
    return {
        "source": LAMBDA_SRC, "handler": HANDLER, "target": target(settings), "packaging": settings.function.packaging,
        "environment": {"APP_ENVIRONMENT": environment_name},
        "log_retention": log_retention(settings.log_retention_days), **_durable(settings),
        "tracing": tracing(observed.tracing),
        "adot_layer": lambda_.LayerVersion.from_layer_version_arn(scope, "AdotLayer", observed.adot_layer_arn)
        if observed.adot_layer_arn else None,
    }


def release(settings: EnvironmentSettings) -> Props:
    """How every function's new versions reach its alias (:class:`cdk_app.releases.ReleaseControl`)."""
    r = settings.release
    return {"plan": Release(strategy=r.strategy, percentage=r.percentage, interval_minutes=r.interval_minutes,
                            rollback_on_alarms=r.rollback_on_alarms, smoke_test=r.smoke_test,
                            post_traffic_test=r.post_traffic_test),
            "log_retention": log_retention(settings.log_retention_days), "tracing": tracing(settings.observability.tracing),
            **_durable(settings)}


def cold_start(settings: ColdStartSettings) -> ColdStart:
    """The plan the function validates and applies (:class:`cdk_app.cold_start.ColdStart`)."""
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
                     force_warmup=bool(settings.warmup and settings.warmup.force), import_mode=settings.import_mode)


def api_function(settings: EnvironmentSettings, environment_name: str) -> Props:
    """The FastAPI function (:class:`cdk_app.function.FastApiFunction`), its timeout capped by its gateway's."""
    f, api_type = settings.function, settings.api.type
    return {"memory_size": f.memory_mb, "expected_duration": Duration.millis(int(f.expected_duration_seconds * 1000)),
            "max_timeout": Duration.seconds(GATEWAY_TIMEOUT_LIMITS[api_type]),
            "max_timeout_reason": f"a {api_type.upper()} API", "reserved_concurrency": f.reserved_concurrency,
            "description": f"FastAPI service ({environment_name})", "cold_start": cold_start(settings.cold_start)}


def worker(settings: EnvironmentSettings, environment_name: str) -> Props:
    """The queue's worker (:class:`cdk_app.tasks.TaskWorker`), besides what every function shares."""
    t = settings.tasks
    return {"memory_size": t.memory_mb, "expected_duration": Duration.millis(int(t.expected_duration_seconds * 1000)),
            "description": f"Task worker ({environment_name})"}


def tasks(settings: EnvironmentSettings) -> Props:
    """The task queue, its dead-letter queue and status table (:class:`cdk_app.tasks.TaskQueue`)."""
    t = settings.tasks
    return {"max_receive_count": t.max_receive_count,
            "visibility_timeout": Duration.seconds(t.visibility_timeout_seconds)
            if t.visibility_timeout_seconds is not None else None,
            "retention": Duration.days(t.retention_days), "batch_size": t.batch_size,
            "max_batching_window": Duration.seconds(t.max_batching_window_seconds)
            if t.max_batching_window_seconds else None,
            "max_concurrency": t.max_concurrency, "oldest_message_alarm": Duration.seconds(t.oldest_message_alarm_seconds),
            "point_in_time_recovery": t.point_in_time_recovery, **_durable(settings)}


def files(settings: EnvironmentSettings) -> Props:
    """The file intake (:class:`cdk_app.tasks.FileIntake`)."""
    f = settings.tasks.files
    return {"access_logs": f.access_logs, "noncurrent_version_expiration": Duration.days(f.noncurrent_version_days),
            **_durable(settings)}


def identity(scope: Construct, settings: EnvironmentSettings) -> Props:
    """The user pool (:class:`cdk_app.auth.UserPool`); a custom domain's certificate is referenced in ``scope``."""
    a = settings.auth
    return {
        "self_sign_up": a.self_sign_up, "mfa": a.mfa, "threat_protection": a.threat_protection,
        "password_min_length": a.password_min_length,
        "access_token_validity": Duration.minutes(a.access_token_minutes),
        "id_token_validity": Duration.minutes(a.id_token_minutes),
        "refresh_token_validity": Duration.days(a.refresh_token_days),
        "callback_urls": a.callback_urls, "logout_urls": a.logout_urls, "resource_server_id": a.resource_server_id,
        "scopes": sorted({name for scopes in (a.route_scopes, *(s.route_scopes for s in settings.services.values()))
                          for names in scopes.values() for name in names}),
        "machine_client": a.machine_client, "domain_prefix": a.domain_prefix, **_durable(settings),
        "custom_domain": a.custom_domain and cognito.CustomDomainOptions(
            domain_name=a.custom_domain.domain_name,
            certificate=acm.Certificate.from_certificate_arn(scope, "AuthCertificate", a.custom_domain.certificate_arn)),
    }


def gateway(settings: EnvironmentSettings) -> Props:
    """The front door (:class:`cdk_app.api.FastApiGateway`), without what the user pool adds (authorizer, scopes)."""
    api = settings.api
    return {"api_type": api.type, "public_routes": api.public_routes,
            "route_throttles": {route: (t.rate_limit, t.burst_limit) for route, t in api.route_throttles.items()},
            "waf_rate_limit": api.waf.rate_limit if api.waf.enabled else None,
            "throttle_rate_limit": api.throttle_rate_limit, "throttle_burst_limit": api.throttle_burst_limit,
            "cors": api.cors, "access_log_retention": log_retention(settings.log_retention_days),
            "binary_media_types": api.binary_media_types, "compression_min_bytes": api.compression_min_bytes,
            **_durable(settings)}


def domain(scope: Construct, settings: EnvironmentSettings) -> CustomDomain | None:
    """The API's custom domain (:class:`cdk_app.api.CustomDomain`); its certificate and zone referenced in ``scope``."""
    d = settings.api.domain
    if d is None:
        return None
    return CustomDomain(
        name=d.name, base_path=d.base_path, disable_default_endpoint=d.disable_default_endpoint,
        certificate=acm.Certificate.from_certificate_arn(scope, "ApiCertificate", d.certificate_arn)
        if d.certificate_arn else None,
        hosted_zone=route53.HostedZone.from_hosted_zone_attributes(
            scope, "ApiZone", hosted_zone_id=d.hosted_zone_id, zone_name=d.hosted_zone_name)
        if d.hosted_zone_id and d.hosted_zone_name else None)


def service_function(settings: EnvironmentSettings, name: str, environment_name: str) -> Props:
    """A service's own function (:class:`cdk_app.function.FastApiFunction`): its app, and the API function's
    settings where it sets none of its own."""
    service, f = settings.services[name], settings.function
    expected = service.expected_duration_seconds or f.expected_duration_seconds
    return {**api_function(settings, environment_name), "app": service.app, "handler": None,
            "memory_size": service.memory_mb or f.memory_mb, "reserved_concurrency": service.reserved_concurrency,
            "expected_duration": Duration.millis(int(expected * 1000)),
            "description": f"{name} service ({environment_name})", "cold_start": cold_start(service.cold_start)}


def service_routes(service: ServiceSettings) -> Props:
    """A service's declared routes, as :meth:`cdk_app.api.FastApiGateway.add_service` takes them (scopes are the
    pool's: the stack qualifies their names)."""
    return {"public_routes": service.public_routes,
            "route_throttles": {route: (t.rate_limit, t.burst_limit) for route, t in service.route_throttles.items()}}


def uploads(settings: EnvironmentSettings, bucket_name: str) -> dict[str, str]:
    """What ``POST /uploads`` reads: the intake bucket, its incoming/ prefix, the size limit."""
    return {UPLOAD_BUCKET_VARIABLE: bucket_name, UPLOAD_PREFIX_VARIABLE: FILES_INCOMING_PREFIX,
            UPLOAD_MAX_BYTES_VARIABLE: str(settings.api.upload_max_mb * 1024 * 1024)}


def parameters(settings: EnvironmentSettings) -> Props:
    """The app's parameters and secrets (:class:`cdk_app.parameters.AppParameters`), without their path."""
    c = settings.config
    return {"parameters": c.parameters, "secrets": c.secrets, "secure_parameters": c.secure_parameters,
            "max_age": Duration.seconds(c.max_age_seconds), **_durable(settings)}


def observability(settings: EnvironmentSettings) -> Props:
    """Alarms and their topic (:class:`cdk_app.observability.Observability`)."""
    o = settings.observability
    return {"alarm_emails": o.alarm_emails, "api_5xx_percent": o.api_5xx_percent, **_durable(settings)}
