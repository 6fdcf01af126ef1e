"""The schema of ``cdk.json``'s settings: one typed model per capability, with every default and bound.

Each field's default is the project's default, and the constructs take theirs from here
(:data:`cdk_app.settings.DEFAULTS`), so a construct used alone behaves as the settings say.
Each field's bounds and choices (:mod:`cdk_app.settings.choices`) are what the reader may
write; rules across fields are :mod:`cdk_app.settings.rules`, called with ``cdk.json``'s names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi_lambda.constants import (
    DEFAULT_CACHE_COMMAND_TIMEOUT_MS,
    DEFAULT_CACHE_CONNECT_TIMEOUT_MS,
    MAX_WARMUP_CONCURRENCY,
    RESOURCE_SERVER_ID,
    ImportMode,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from cdk_app.settings.choices import (
    ApiType,
    Architecture,
    CacheKind,
    CorsMethod,
    Egress,
    LogRetentionDays,
    Mfa,
    Packaging,
    PythonVersion,
    ReleaseStrategy,
    RemovalPolicyName,
    Strategy,
    ThreatProtection,
    Tracing,
)
from cdk_app.settings.limits import (
    COGNITO_PASSWORD_LENGTH,
    MAX_COMPRESSION_BYTES,
    MAX_TAGS,
    NAMES,
    WAF_RATE_LIMITS,
    email_problem,
    name_problem,
    redirect_url_problem,
    region_problem,
    tag_problem,
    time_zone_problem,
)
from cdk_app.settings.routes import parse_route
from cdk_app.settings.rules import (
    CONFIG_NAMES,
    GATEWAY_TIMEOUT_LIMITS,
    SERVERLESS_PORT,
    SERVICE_CONFIG_NAMES,
    check_base_path,
    check_bounds,
    check_cache,
    check_cold_start,
    check_domain,
    check_edge,
    check_media_types,
    check_network,
    check_release,
    check_service_prefix,
    check_services,
    check_timeout,
    task_queue_visibility,
    timeout_for,
)
from cdk_app.shapes import is_object


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSettings(_Settings):
    """The FastAPI Lambda function."""

    python_version: PythonVersion = Field(default="3.13", description="Lambda Python runtime")
    architecture: Architecture = Field(default="arm64", description="Graviton (cheaper) or x86")
    memory_mb: int = Field(default=1024, ge=128, le=10240, description="Memory; CPU share grows with it")
    expected_duration_seconds: float = Field(
        default=5, gt=0, le=900, description="Slowest expected request; the timeout is 120% of it"
    )
    reserved_concurrency: int | None = Field(default=None, ge=0, description="Cap on concurrent executions")
    packaging: Packaging = Field(default="zip", description="zip (with the shared dependency layer) or a container image, "
                                                    "for every function of the environment")

    @property
    def timeout_seconds(self) -> int:
        return timeout_for(self.expected_duration_seconds)


class CorsSettings(_Settings):
    """Browser cross-origin access to the API."""

    allow_origins: list[str] = Field(..., min_length=1)
    allow_methods: list[CorsMethod] = [
        "GET", "POST", "PUT", "PATCH", "DELETE"]
    allow_headers: list[str] = ["Content-Type", "Authorization"]
    allow_credentials: bool = False
    max_age_seconds: int = Field(default=600, ge=0, le=86400)

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> CorsSettings:
        if self.allow_credentials and "*" in self.allow_origins:
            raise ValueError(
                "allow_credentials=true with allow_origins ['*'] is refused by browsers; "
                "list the exact origins or set allow_credentials to false"
            )
        return self


#: "METHOD /path", checked by the rule the gateway itself applies.
Route = Annotated[str, AfterValidator(lambda spec: parse_route(spec) and spec)]


def _accepted(problem: Callable[[str], str | None], fix: str) -> AfterValidator:
    """A text check with the service's own limit (:mod:`cdk_app.settings.limits`) and the fix to name."""

    def validate(value: str) -> str:
        if (why := problem(value)) is not None:
            raise ValueError(f"{why}; {fix}")
        return value

    return AfterValidator(validate)


def _named(kind: str, fix: str) -> AfterValidator:
    return _accepted(lambda value: name_problem(kind, value), fix)


#: An email address SNS subscribes ("Invalid parameter: Email address" otherwise).
Email = Annotated[str, _accepted(email_problem, "write it as name@domain.tld")]
#: A URL Cognito accepts as a callback or sign-out URL.
RedirectUrl = Annotated[str, _accepted(redirect_url_problem, "use https://..., or http://localhost:<port>/... locally")]
#: A resource-server scope name.
ScopeName = Annotated[str, _named("oauth-scope", "write e.g. \"tasks.write\"")]


class ThrottleSettings(_Settings):
    """Limits of one route."""

    rate_limit: float = Field(..., gt=0, description="Steady-state requests per second")
    burst_limit: int = Field(..., gt=0, description="Burst bucket size")


class WafSettings(_Settings):
    """A WAF web ACL on the REST API stage (HTTP APIs cannot have one)."""

    enabled: bool = Field(default=False, description="AWS managed common rules and a rate limit per IP")
    rate_limit: int = Field(default=2000, ge=WAF_RATE_LIMITS[0], le=WAF_RATE_LIMITS[1], description="Requests per 5 minutes per IP")
    protect_user_pool: bool = Field(default=True, description="Associate the same web ACL with the user pool")


#: A host name, e.g. "api.example.com".
_HOST = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"


class DomainSettings(_Settings):
    """A custom domain for the API: a certificate, the domain, its mapping, and optionally its DNS records."""

    name: str = Field(..., pattern=_HOST, examples=["api.example.com"])
    certificate_arn: str | None = Field(
        default=None, description="An existing ACM certificate in the API's region; default: one is requested, DNS-validated")
    hosted_zone_id: str | None = Field(default=None, pattern=r"^Z[A-Z0-9]{1,31}$", examples=["Z0123456789ABCDEFGHIJ"],
                                       description="A Route 53 zone for the validation and alias records")
    hosted_zone_name: str | None = Field(default=None, pattern=_HOST, examples=["example.com"],
                                         description="The zone's domain (with hosted_zone_id)")
    base_path: str | None = Field(default=None, examples=["v1"], description="Serve the API under this path of the domain")
    disable_default_endpoint: bool = Field(default=True, description="Clients reach the API only through the domain")

    @model_validator(mode="after")
    def _fits(self) -> DomainSettings:
        if (self.hosted_zone_id is None) != (self.hosted_zone_name is None):
            raise ValueError("api.domain.hosted_zone_id and hosted_zone_name go together (Route 53 needs both to add "
                             "records); set both, or neither and add the DNS records yourself")
        check_base_path(self.base_path, where="api.domain.base_path")
        check_domain(domain_name=self.name, certificate_arn=self.certificate_arn, region=None,
                     hosted_zone_name=self.hosted_zone_name,
                     names={"certificate": "api.domain.certificate_arn", "zone": "api.domain.hosted_zone_name"})
        return self


class ApiSettings(_Settings):
    """The API Gateway front door."""

    type: ApiType = Field(default="http", description="HTTP API (cheaper) or REST API")
    throttle_rate_limit: float = Field(default=100, gt=0, description="Steady-state requests per second")
    throttle_burst_limit: int = Field(default=200, gt=0, description="Burst bucket size")
    cors: CorsSettings | None = Field(default=None, description="CORS; off when absent")
    public_routes: list[Route] = Field(
        default=["GET /", "GET /health"], description="'METHOD /path' open to anyone; every other route needs IAM (SigV4)"
    )
    route_throttles: dict[Route, ThrottleSettings] = Field(default={}, description="Per-route limits below the stage's")
    waf: WafSettings = WafSettings()
    binary_media_types: list[str] = Field(
        default=["*/*"], description="REST: bodies of these types pass as bytes both ways (HTTP APIs always pass them)")
    compression_min_bytes: int | None = Field(
        default=1024, ge=0, le=MAX_COMPRESSION_BYTES, description="Gzip answers of at least this size (REST: at the gateway; HTTP: in the "
                                             "function); null: off")
    domain: DomainSettings | None = Field(default=None, description="A custom domain for the API")
    upload_max_mb: int = Field(default=100, ge=1, le=5120, description="Largest file POST /uploads signs an S3 URL for "
                                                               "(with tasks.files)")

    @field_validator("binary_media_types")
    @classmethod
    def _media_types(cls, value: list[str]) -> list[str]:
        check_media_types(value, where="api.binary_media_types")
        return value


class BundlingSettings(_Settings):
    """How the code and dependencies are packaged."""

    include_aws_sdk: bool = Field(default=False, description="Ship boto3/botocore instead of the runtime's")
    require_compiled: bool = Field(
        default=False, description="Fail instead of warn when no interpreter can compile .pyc (on in CI)"
    )


class CustomDomainSettings(_Settings):
    """A domain of your own for the user pool's OAuth endpoints (Cognito serves it through CloudFront)."""

    domain_name: str = Field(..., pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$",
                             examples=["auth.example.com"])
    certificate_arn: str = Field(..., pattern=r"^arn:aws[a-z-]*:acm:us-east-1:\d{12}:certificate/[0-9a-f-]+$",
                                 examples=["arn:aws:acm:us-east-1:123456789012:certificate/0f1e2d3c-..."],
                                 description="An ACM certificate for the name, issued in us-east-1")


class IdentitySettings(_Settings):
    """A Cognito user pool whose tokens the gateway (and optionally the function) verifies."""

    enabled: bool = Field(default=False, description="A user pool, and its authorizer instead of IAM on every non-public route")
    self_sign_up: bool = False
    mfa: Mfa = "optional"
    threat_protection: ThreatProtection = Field(default="off", description="Needs the Plus feature plan")
    password_min_length: int = Field(default=12, ge=COGNITO_PASSWORD_LENGTH[0], le=COGNITO_PASSWORD_LENGTH[1])
    access_token_minutes: int = Field(default=60, ge=5, le=1440)
    id_token_minutes: int = Field(default=60, ge=5, le=1440)
    refresh_token_days: int = Field(default=30, ge=1, le=3650)
    callback_urls: list[RedirectUrl] = Field(default=["http://localhost:3000/callback"], min_length=1)
    logout_urls: list[RedirectUrl] = ["http://localhost:3000/"]
    machine_client: bool = Field(default=False, description="A client-credentials client granted every scope")
    domain_prefix: Annotated[str, _named(
        "cognito-domain-prefix", "choose another prefix, or leave it unset (<app_name>-<env>-<account>)")] | None = \
        Field(default=None, description="Prefix of the user pool's domain (default <app_name>-<env>-<account id>)")
    custom_domain: CustomDomainSettings | None = Field(default=None, description="Your own domain for the OAuth endpoints")
    resource_server_id: Annotated[str, _named("resource-server", "write e.g. \"api\"")] = RESOURCE_SERVER_ID
    route_scopes: dict[Route, list[ScopeName]] = Field(default={}, description="Scopes a route needs, e.g. {'POST /tasks': "
                                                                        "['tasks.write']}")
    verify_in_function: bool = Field(default=False, description="The function verifies tokens too (defense in depth)")

    @model_validator(mode="after")
    def _one_domain(self) -> IdentitySettings:
        if self.domain_prefix and self.custom_domain:
            raise ValueError("domain_prefix and custom_domain are both set: a user pool has one domain; keep one")
        return self


class ParametersSettings(_Settings):
    """Parameters and secrets the app reads at run time (names in the environment, never values)."""

    parameters: dict[str, str] = Field(default={}, description="SSM String parameters under /<app>/<env>/")
    secrets: list[str] = Field(default=[], description="Generated Secrets Manager secrets, by name")
    secure_parameters: dict[str, str] = Field(default={}, description="Existing SecureString parameters: name -> path")
    max_age_seconds: int = Field(default=300, ge=0, le=86400, description="How long a read value is trusted")


class ObservabilitySettings(_Settings):
    """Tracing, and the alarms' destination."""

    tracing: Tracing = Field(default="xray", description="X-Ray SDK, OpenTelemetry (ADOT) or none")
    adot_layer_arn: str | None = Field(default=None, pattern=r"^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:layer:[^:]+:\d+$",
                                       examples=["arn:aws:lambda:eu-west-1:901920570463:layer:aws-otel-python-arm64-ver-1-32-0:1"])
    alarm_emails: list[Email] = Field(default=[], description="Email subscriptions of the alarm topic")
    api_5xx_percent: float = Field(default=5, gt=0, le=100, description="Alarm above this share of 5xx answers")


#: A path the smoke test may call: absolute, no query, no spaces.
SmokeTestPath = Annotated[str, Field(pattern=r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$", examples=["/health"])]


class ReleaseSettings(_Settings):
    """How CodeDeploy moves each function's ``live`` alias to a new version, and when it rolls back."""

    strategy: ReleaseStrategy = Field(default="all-at-once", description="all-at-once, canary (a share first, the rest after "
                                                                         "interval_minutes) or linear (equal steps)")
    percentage: int = Field(default=10, ge=1, le=99, description="canary: the first share; linear: the share of each step")
    interval_minutes: int = Field(default=5, ge=1, le=2880, description="Minutes between the shifts")
    rollback_on_alarms: bool = Field(default=True, description="Roll back when the function's errors or p99 alarm, or the "
                                                               "API's 5xx alarm, fires during the release")
    smoke_test: SmokeTestPath | None = Field(default=None, description="A GET path a pre-traffic hook sends to the new version "
                                                                       "before any traffic (non-2xx fails the release)")
    post_traffic_test: bool = Field(default=False, description="Send the smoke test again after the shift (needs smoke_test)")

    @model_validator(mode="after")
    def _fits_codedeploy(self) -> ReleaseSettings:
        check_release(self.strategy, percentage=self.percentage, interval_minutes=self.interval_minutes,
                      names=CONFIG_NAMES)
        if self.post_traffic_test and self.smoke_test is None:
            raise ValueError("release.post_traffic_test needs release.smoke_test (the path to call); set it, e.g. "
                             "\"/health\", or set post_traffic_test to false")
        return self


class FilesSettings(_Settings):
    """The S3 file pipeline: objects created under incoming/ become process-file tasks."""

    enabled: bool = Field(default=False, description="An intake bucket whose new objects are tasks")
    noncurrent_version_days: int = Field(default=30, ge=1, le=3650, description="Days old object versions are kept")
    access_logs: bool = Field(default=True, description="Server access logs to a log bucket of its own")


class TaskSettings(_Settings):
    """The task queue, its dead-letter queue, the worker and the status table."""

    enabled: bool = Field(default=False, description="A queue, a worker and POST /tasks; false: no queue at all")
    expected_duration_seconds: float = Field(default=60, gt=0, le=900, description="Slowest expected task batch")
    memory_mb: int = Field(default=1024, ge=128, le=10240, description="The worker's memory")
    max_receive_count: int = Field(default=5, ge=1, le=1000, description="Receives before a message goes to the DLQ")
    visibility_timeout_seconds: int | None = Field(default=None, ge=0, le=43200,
                                                   description="Default: 6 x the worker's timeout")
    retention_days: int = Field(default=4, ge=1, le=14, description="How long an unprocessed message is kept")
    batch_size: int = Field(default=10, ge=1, le=10000, description="Messages per worker invocation")
    max_batching_window_seconds: int = Field(default=0, ge=0, le=300, description="Wait this long to fill a batch")
    max_concurrency: int | None = Field(default=None, ge=2, le=1000, description="Cap on concurrent worker instances")
    oldest_message_alarm_seconds: int = Field(default=300, ge=60, le=1209600, description="Alarm above this queue age")
    point_in_time_recovery: bool = Field(default=True, description="Point-in-time recovery of the status table")
    files: FilesSettings = FilesSettings()

    @property
    def worker_timeout_seconds(self) -> int:
        return timeout_for(self.expected_duration_seconds)


class CacheSettings(_Settings):
    """The cache (ElastiCache, Valkey): its kind and sizing, and the app's time budget per call."""

    kind: Literal["none", CacheKind] = Field(
        default="none", description="serverless, node-based (a replication group), or none: no cache and no VPC")
    connect_timeout_ms: int = Field(default=DEFAULT_CACHE_CONNECT_TIMEOUT_MS, ge=1, le=5000,
                                    description="The app's budget to reach the cache (TCP and TLS)")
    command_timeout_ms: int = Field(default=DEFAULT_CACHE_COMMAND_TIMEOUT_MS, ge=1, le=5000,
                                    description="The app's budget for one command")
    max_data_storage_gb: int = Field(default=10, ge=1, le=5000, description="serverless: the data storage limit")
    max_ecpu_per_second: int = Field(default=5000, ge=1000, le=15000000, description="serverless: the ECPU limit")
    node_type: str = Field(default="cache.t4g.small", pattern=r"^cache\.[a-z0-9]+\.[a-z0-9]+$", examples=["cache.t4g.small"],
                           description="node-based: the node type")
    replicas: int = Field(default=1, ge=0, le=5, description="node-based: read replicas besides the primary")
    multi_az: bool = Field(default=True, description="node-based: replicas in other zones, automatic failover")
    port: int = Field(default=SERVERLESS_PORT, ge=1024, le=65535, description="node-based: the port (serverless: 6379)")
    snapshot_retention_days: int = Field(default=0, ge=0, le=35, description="Daily snapshots kept; 0: none")
    snapshot_time: str = Field(default="03:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", examples=["03:00"],
                               description="When the daily snapshot starts (UTC)")

    @field_validator("kind", mode="before")
    @classmethod
    def _renamed(cls, kind: Any) -> Any:
        if kind == "cluster":  # its name until the cache's protocol (CACHE_MODE "cluster") took the word
            raise ValueError("'cluster' is now called 'node-based' (a replication group; \"cluster\" names only "
                             "the protocol ElastiCache Serverless speaks); write \"node-based\"")
        return kind


class NetworkSettings(_Settings):
    """The VPC, created only when something needs one (the cache)."""

    egress: Egress = Field(default="endpoints", description="How functions reach AWS APIs")
    az_count: int = Field(default=2, ge=1, le=6, description="Zones, taken by CloudFormation (Fn::GetAZs)")
    availability_zones: list[str] | None = Field(default=None, min_length=1, max_length=6,
                                                 description="Fixed zones instead of az_count")
    cidr: str = Field(default="10.0.0.0/16", pattern=r"^\d{1,3}(\.\d{1,3}){3}/(1[6-9]|2[0-4])$", examples=["10.0.0.0/16"],
                      description="The VPC's IPv4 range")
    subnet_mask: int = Field(default=24, ge=16, le=28, description="Each subnet's prefix length")
    nat_gateways: int = Field(default=1, ge=1, le=6, description="With egress nat: NAT gateways (one per zone at most)")
    flow_logs: bool = Field(default=True, description="VPC flow logs (all traffic) to a log group")

    @property
    def zones(self) -> int:
        return len(self.availability_zones) if self.availability_zones else self.az_count


class _CapacityBounds(_Settings):
    """Settings with ``min`` and ``max`` instance counts."""

    if TYPE_CHECKING:  # each subclass declares them, with its own bounds and defaults (pydantic sees those only)
        min: int
        max: int

    @model_validator(mode="after")
    def _min_not_above_max(self) -> _CapacityBounds:
        check_bounds(self.min, self.max, low=0, names={"min": "min", "max": "max"})
        return self


class ScheduleSettings(_CapacityBounds):
    """Provisioned-concurrency bounds on a schedule (e.g. business hours)."""

    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$", examples=["business-hours"])
    cron: str = Field(..., description="Application Auto Scaling cron, 6 fields: '0 8 ? * MON-FRI *'")
    min: int = Field(..., ge=0)
    max: int = Field(..., ge=1)
    time_zone: Annotated[str, _accepted(time_zone_problem, "write an IANA name such as \"Europe/Berlin\"")] | None = \
        Field(default=None, description="IANA time zone; UTC when absent")

    @field_validator("cron")
    @classmethod
    def _six_fields(cls, value: str) -> str:
        if len(value.split()) != 6:
            raise ValueError(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), "
                "e.g. '0 8 ? * MON-FRI *'"
            )
        return value


class ProvisionedSettings(_CapacityBounds):
    """Provisioned concurrency on the alias, autoscaled on utilization."""

    min: int = Field(default=2, ge=1, description="Instances always initialized")
    max: int = Field(default=5, ge=1, description="Upper bound for autoscaling")
    target_utilization: float = Field(default=0.7, gt=0, lt=1, description="Scale out above this utilization")
    schedules: list[ScheduleSettings] = []


class WarmupSettings(_Settings):
    """An EventBridge schedule that pings the alias."""

    rate_minutes: int = Field(default=5, ge=1, le=60)
    concurrency: int = Field(default=1, ge=1, le=MAX_WARMUP_CONCURRENCY, description="Instances to keep warm (fan-out when > 1)")
    force: bool = Field(default=False, description="Allow a warmup rule beside another strategy")


#: The strategy an environment gets when cdk.json names none.
DEFAULT_STRATEGIES = {"dev": "warmup", "staging": "snapstart", "prod": "provisioned"}


class ColdStartSettings(_Settings):
    """One cold-start strategy and its parameters."""

    strategy: Strategy = "none"
    provisioned: ProvisionedSettings | None = None
    warmup: WarmupSettings | None = None
    import_mode: ImportMode | None = Field(
        default=None, description="eager for provisioned/snapstart, lazy otherwise, unless set")

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not is_object(data):
            return data
        data = dict(data)
        strategy = data.get("strategy", "none")
        if strategy == "provisioned":
            data.setdefault("provisioned", {})
        if strategy == "warmup":
            data.setdefault("warmup", {})
        return data


class ServiceSettings(_Settings):
    """One more ASGI app behind the same API, on a path prefix, in a function of its own."""

    prefix: str = Field(..., examples=["/billing"], description="Requests below it go to this service")
    app: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$", examples=["service.billing:app"],
                     description="The ASGI app (package.module:attribute) in lambda_src")
    memory_mb: int | None = Field(default=None, ge=128, le=10240, description="Default: function.memory_mb")
    expected_duration_seconds: float | None = Field(default=None, gt=0, le=900, description="Default: the function's")
    reserved_concurrency: int | None = Field(default=None, ge=0)
    cold_start: ColdStartSettings = Field(default_factory=lambda: ColdStartSettings())
    public_routes: list[Route] = Field(default=[], description="Full paths, e.g. 'GET /billing/health'")
    route_scopes: dict[Route, list[ScopeName]] = Field(default={}, description="Needs auth.enabled")
    route_throttles: dict[Route, ThrottleSettings] = {}

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return check_service_prefix(value, where="services.<name>.prefix")

    @property
    def routes(self) -> list[str]:
        """Every route it declares."""
        return list(dict.fromkeys([*self.public_routes, *self.route_scopes, *self.route_throttles]))


#: A service's name in cdk.json: its construct id, its alarms' and its function's description.
ServiceName = Annotated[str, AfterValidator(lambda name: _service_name(name))]


def _service_name(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9-]{0,31}", name):
        raise ValueError(f"service name {name!r} must be lower-case letters, digits and hyphens (at most 32), "
                         "starting with a letter, e.g. 'billing'")
    return name


def _service_config_names(name: str) -> dict[str, str]:
    """CONFIG_NAMES as they read inside services.<name>."""
    where = f"services.{name}"
    return {key: value.replace("cold_start.", f"{where}.cold_start.").replace("function.", f"{where}.")
            .replace("api.public_routes", f"{where}.public_routes").replace("auth.route_scopes", f"{where}.route_scopes")
            for key, value in CONFIG_NAMES.items()}


class EnvironmentSettings(_Settings):
    """Everything that differs between dev, staging and prod."""

    account: str | None = Field(default=None, pattern=r"^\d{12}$", examples=["123456789012"],
                                description="Target account; agnostic if absent")
    region: Annotated[str, _accepted(region_problem, "write an AWS region such as \"eu-west-1\"")] | None = \
        Field(default=None, description="Target region")
    removal_policy: RemovalPolicyName = Field(default="retain", description="For logs and other stateful resources")
    log_retention_days: LogRetentionDays = Field(default=30, description="CloudWatch Logs retention")
    termination_protection: bool = False
    tags: dict[str, str] = Field(default={}, description="Tags on every resource")
    function: FunctionSettings = FunctionSettings()
    api: ApiSettings = ApiSettings()
    bundling: BundlingSettings = BundlingSettings()
    cold_start: ColdStartSettings = ColdStartSettings()
    tasks: TaskSettings = TaskSettings()
    auth: IdentitySettings = IdentitySettings()
    config: ParametersSettings = ParametersSettings()
    observability: ObservabilitySettings = ObservabilitySettings()
    cache: CacheSettings = CacheSettings()
    network: NetworkSettings = NetworkSettings()
    release: ReleaseSettings = ReleaseSettings()
    services: dict[ServiceName, ServiceSettings] = Field(default={}, description="More apps on path prefixes of the API")

    @field_validator("tags")
    @classmethod
    def _tags_are_accepted(cls, tags: dict[str, str]) -> dict[str, str]:
        # Every resource also gets "service", VPC resources "Name": AWS allows 50 tags in all.
        if len(tags) > MAX_TAGS - 2:
            raise ValueError(f"{len(tags)} tags leave no room for the service and Name tags (AWS allows {MAX_TAGS} "
                             f"per resource); keep at most {MAX_TAGS - 2}")
        for key, value in tags.items():
            if (why := tag_problem(key, value)) is not None:
                raise ValueError(f"{why}; rename or shorten the tag")
        return tags

    @model_validator(mode="after")
    def _settings_fit_together(self) -> EnvironmentSettings:
        # The constructs' own rules, with cdk.json's names for the settings.
        cold_start, function = self.cold_start, self.function
        p = cold_start.provisioned
        check_cold_start(
            cold_start.strategy,
            provisioned=p and (p.min, p.max, p.target_utilization),
            warmup_concurrency=cold_start.warmup and cold_start.warmup.concurrency,
            force_warmup=bool(cold_start.warmup and cold_start.warmup.force),
            python_version=function.python_version,
            container_image=function.packaging == "image",
            reserved_concurrency=function.reserved_concurrency,
            names=CONFIG_NAMES,
        )
        check_timeout(function.timeout_seconds, GATEWAY_TIMEOUT_LIMITS[self.api.type],
                      f"a {self.api.type.upper()} API", expected_duration_seconds=function.expected_duration_seconds,
                      names=CONFIG_NAMES)
        check_edge(public_routes=self.api.public_routes,
                   route_scopes=list(self.auth.route_scopes) if self.auth.enabled else [],
                   token_authorizer=self.auth.enabled, api_type=self.api.type, waf=self.api.waf.enabled,
                   names=CONFIG_NAMES)
        if (self.observability.tracing == "adot") != (self.observability.adot_layer_arn is not None):
            raise ValueError("observability.tracing 'adot' and observability.adot_layer_arn go together: the ADOT "
                             "layer's ARN depends on region and architecture; set both, or neither")
        if self.observability.tracing == "adot" and function.packaging == "image":
            raise ValueError("observability.tracing 'adot' adds the ADOT layer, but function.packaging 'image' takes "
                             "no layers (Lambda refuses them on container images); set function.packaging to 'zip', "
                             "or observability.tracing to 'xray' (or install the ADOT distro into your own image)")
        if self.auth.enabled and self.auth.verify_in_function and self.cache.kind != "none" \
                and self.network.egress != "nat":
            raise ValueError("auth.verify_in_function needs the function to fetch the user pool's public keys over "
                             "the internet, but a cache puts it in a VPC without NAT; set network.egress to 'nat' or "
                             "auth.verify_in_function to false")
        if self.auth.route_scopes and not self.auth.enabled:
            raise ValueError("auth.route_scopes is set but auth.enabled is false: scopes need tokens; set "
                             "auth.enabled to true or remove auth.route_scopes")
        if self.tasks.enabled:
            task_queue_visibility(self.tasks.worker_timeout_seconds,
                                  visibility_timeout_seconds=self.tasks.visibility_timeout_seconds,
                                  batch_size=self.tasks.batch_size,
                                  max_batching_window_seconds=self.tasks.max_batching_window_seconds,
                                  names=CONFIG_NAMES)
        self._check_services()
        if self.cache.kind != "none":
            check_cache(self.cache.kind, replicas=self.cache.replicas, multi_az=self.cache.multi_az,
                        zones=self.network.zones, port=self.cache.port, names=CONFIG_NAMES)
            check_network(egress=self.network.egress, nat_gateways=self.network.nat_gateways,
                          zones=self.network.zones, names=CONFIG_NAMES)
        return self

    def _check_services(self) -> None:
        """Each service's own settings, as the API function's are checked; no route claimed twice."""
        for name, service in self.services.items():
            names, cold_start = _service_config_names(name), service.cold_start
            p = cold_start.provisioned
            check_cold_start(cold_start.strategy, provisioned=p and (p.min, p.max, p.target_utilization),
                             warmup_concurrency=cold_start.warmup and cold_start.warmup.concurrency,
                             force_warmup=bool(cold_start.warmup and cold_start.warmup.force),
                             python_version=self.function.python_version,
                             reserved_concurrency=service.reserved_concurrency, names=names)
            expected = service.expected_duration_seconds or self.function.expected_duration_seconds
            check_timeout(timeout_for(expected), GATEWAY_TIMEOUT_LIMITS[self.api.type],
                          f"a {self.api.type.upper()} API", expected_duration_seconds=expected, names=names)
            check_edge(public_routes=service.public_routes, route_scopes=list(service.route_scopes),
                       token_authorizer=self.auth.enabled, api_type=self.api.type, waf=False, names=names)
        main = [*self.api.public_routes, *self.api.route_throttles, *(self.auth.route_scopes if self.auth.enabled else ())]
        check_services({name: (s.prefix, s.routes) for name, s in self.services.items()}, main_routes=main,
                       names=SERVICE_CONFIG_NAMES)
        if self.api.domain is not None:
            check_domain(domain_name=self.api.domain.name, certificate_arn=self.api.domain.certificate_arn,
                         region=self.region, hosted_zone_name=None,
                         names={"certificate": "api.domain.certificate_arn"})


class ProjectSettings(_Settings):
    """The ``cdk.json`` context this project reads."""

    app_name: str = Field(default="fastapi-lambda", pattern=r"^[a-z][a-z0-9-]{1,30}$", examples=["fastapi-lambda"],
                          description="Prefix of stack names")
    environments: dict[str, EnvironmentSettings] = Field(..., min_length=1)

    @field_validator("environments", mode="before")
    @classmethod
    def _default_strategies(cls, value: Any) -> Any:
        if not is_object(value):
            return value
        filled: dict[str, Any] = {}
        for name, env in value.items():
            if is_object(env) and "cold_start" not in env and name in DEFAULT_STRATEGIES:
                env = {**env, "cold_start": {"strategy": DEFAULT_STRATEGIES[name]}}
            filled[name] = env
        return filled

    @field_validator("environments")
    @classmethod
    def _names_are_simple(cls, value: dict[str, EnvironmentSettings]) -> dict[str, EnvironmentSettings]:
        for name in value:  # it names the stack, the parameter path and the Cognito domain
            if not re.fullmatch(r"[a-z][a-z0-9]*(-[a-z0-9]+)*", name):
                raise ValueError(f"environment name '{name}' must be lower-case letters, digits and single hyphens, "
                                 "starting with a letter (it becomes part of the stack name, which AWS limits so)")
        return value

    def names_problems(self) -> list[str]:
        """What AWS would refuse among the names built from app_name and each environment's settings."""
        problems: list[str] = []
        for env, settings in self.environments.items():
            where = f"environments.{env}"
            checks = [(where, "stack", f"{self.app_name}-{env}", "shorten app_name or the environment name")]
            checks += [(f"{where}.config.parameters.{name}", "ssm-parameter", f"/{self.app_name}/{env}/{name}",
                        "rename the parameter") for name in settings.config.parameters]
            checks += [(f"{where}.config.secrets", "secret", f"{self.app_name}/{env}/{name}", "rename the secret")
                       for name in settings.config.secrets]
            checks += [(f"{where}.config.secure_parameters.{name}", "ssm-parameter", path, "name the existing "
                        "SecureString parameter by its full name, e.g. /team/app/key")
                       for name, path in settings.config.secure_parameters.items()]
            for key, kind, value, fix in checks:
                if (why := NAMES[kind].problem(value)) is not None:
                    problems.append(f"{key}: {value!r} is not allowed: {why}. Fix: {fix}.")
        return problems


#: Every default in one object: what an environment gets for a key it leaves out, and what each construct
#: takes for a prop it is not given (``memory_size: int = DEFAULTS.function.memory_mb``).
DEFAULTS = EnvironmentSettings()
