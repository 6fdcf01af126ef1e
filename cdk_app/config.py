"""Typed, validated per-environment settings, read from the ``cdk.json`` context.

Every problem stops synth with one message that names the environment, the key,
the bad value and the fix, e.g.::

    environments.prod.function.memory_mb: 64 is not allowed: Input should be greater
    than or equal to 128. Fix: set a whole number of MB from 128 to 10240.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cdk_app.routes import parse_route

CDK_JSON = Path(__file__).resolve().parent.parent / "cdk.json"

#: Longest integration timeout each front door allows, in seconds.
GATEWAY_TIMEOUT_LIMITS = {"http": 30, "rest": 29}
#: The function timeout is this multiple of the expected duration.
TIMEOUT_HEADROOM = 1.2
#: The values CloudWatch Logs accepts for retention, in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,
                      2557, 2922, 3288, 3653)


def timeout_for(expected_duration_seconds: float) -> int:
    """The function timeout for an expected duration: 120%, rounded up to whole seconds."""
    return max(1, math.ceil(expected_duration_seconds * TIMEOUT_HEADROOM))


class ConfigError(ValueError):
    """Invalid configuration; the message says where, what and how to fix it."""


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FunctionSettings(_Settings):
    """The FastAPI Lambda function."""

    python_version: Literal["3.12", "3.13", "3.14"] = Field("3.13", description="Lambda Python runtime")
    architecture: Literal["arm64", "x86_64"] = Field("arm64", description="Graviton (cheaper) or x86")
    memory_mb: int = Field(1024, ge=128, le=10240, description="Memory; CPU share grows with it")
    expected_duration_seconds: float = Field(
        5, gt=0, le=900, description="Slowest expected request; the timeout is 120% of it"
    )
    reserved_concurrency: int | None = Field(None, ge=0, description="Cap on concurrent executions")

    @property
    def timeout_seconds(self) -> int:
        return timeout_for(self.expected_duration_seconds)


class CorsSettings(_Settings):
    """Browser cross-origin access to the API."""

    allow_origins: list[str] = Field(..., min_length=1)
    allow_methods: list[Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"]] = [
        "GET", "POST", "PUT", "PATCH", "DELETE"]
    allow_headers: list[str] = ["Content-Type", "Authorization"]
    allow_credentials: bool = False
    max_age_seconds: int = Field(600, ge=0, le=86400)

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


class ApiSettings(_Settings):
    """The API Gateway front door."""

    type: Literal["http", "rest"] = Field("http", description="HTTP API (cheaper) or REST API")
    throttle_rate_limit: float = Field(100, gt=0, description="Steady-state requests per second")
    throttle_burst_limit: int = Field(200, gt=0, description="Burst bucket size")
    cors: CorsSettings | None = Field(None, description="CORS; off when absent")
    public_routes: list[Route] = Field(
        ["GET /", "GET /health"], description="'METHOD /path' open to anyone; every other route needs IAM (SigV4)"
    )


class BundlingSettings(_Settings):
    """How the code and dependencies are packaged."""

    use_docker: bool = Field(False, description="Bundle in the SAM build image instead of locally")
    include_aws_sdk: bool = Field(False, description="Ship boto3/botocore instead of the runtime's")
    require_compiled: bool = Field(
        False, description="Fail instead of warn when no interpreter can compile .pyc (on in CI)"
    )


class _CapacityBounds(_Settings):
    """Settings with ``min`` and ``max`` instance counts."""

    @model_validator(mode="after")
    def _min_not_above_max(self) -> _CapacityBounds:
        if self.min > self.max:  # type: ignore[attr-defined]
            raise ValueError(f"min={self.min} is above max={self.max}; set min <= max")  # type: ignore[attr-defined]
        return self


class ScheduleSettings(_CapacityBounds):
    """Provisioned-concurrency bounds on a schedule (e.g. business hours)."""

    name: str = Field(..., pattern=r"^[A-Za-z][A-Za-z0-9-]{0,63}$")
    cron: str = Field(..., description="Application Auto Scaling cron, 6 fields: '0 8 ? * MON-FRI *'")
    min: int = Field(..., ge=0)
    max: int = Field(..., ge=1)
    time_zone: str | None = Field(None, description="IANA time zone; UTC when absent")

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

    min: int = Field(2, ge=1, description="Instances always initialized")
    max: int = Field(5, ge=1, description="Upper bound for autoscaling")
    target_utilization: float = Field(0.7, gt=0, lt=1, description="Scale out above this utilization")
    schedules: list[ScheduleSettings] = []


class WarmupSettings(_Settings):
    """An EventBridge schedule that pings the alias."""

    rate_minutes: int = Field(5, ge=1, le=60)
    concurrency: int = Field(1, ge=1, le=50, description="Instances to keep warm (fan-out when > 1)")
    force: bool = Field(False, description="Allow a warmup rule beside another strategy")


#: The strategy an environment gets when cdk.json names none.
DEFAULT_STRATEGIES = {"dev": "warmup", "staging": "snapstart", "prod": "provisioned"}


def import_mode_for(strategy: str) -> Literal["eager", "lazy"]:
    """Eager where init is paid before traffic (provisioned concurrency, SnapStart), else lazy."""
    return "eager" if strategy in ("provisioned", "snapstart") else "lazy"


class ColdStartSettings(_Settings):
    """One cold-start strategy and its parameters."""

    strategy: Literal["provisioned", "snapstart", "warmup", "none"] = "none"
    provisioned: ProvisionedSettings | None = None
    warmup: WarmupSettings | None = None
    import_mode: Literal["eager", "lazy"] = Field(
        None, description="eager for provisioned/snapstart, lazy otherwise, unless set"  # type: ignore[arg-type]
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        strategy = data.get("strategy", "none")
        if strategy == "provisioned":
            data.setdefault("provisioned", {})
        if strategy == "warmup":
            data.setdefault("warmup", {})
        if data.get("import_mode") is None:
            data["import_mode"] = import_mode_for(strategy)
        return data

    @model_validator(mode="after")
    def _one_strategy(self) -> ColdStartSettings:
        if self.provisioned is not None and self.strategy != "provisioned":
            why = ("SnapStart does not support provisioned concurrency"
                   if self.strategy == "snapstart" else f"the strategy is '{self.strategy}'")
            raise ValueError(
                f"provisioned is set but {why}; choose one: set strategy to 'provisioned' or remove provisioned"
            )
        if self.warmup is not None and self.strategy != "warmup" and not self.warmup.force:
            raise ValueError(
                f"warmup beside the '{self.strategy}' strategy is redundant (its instances are already "
                "initialized) and costs invocations; remove warmup, or set warmup.force to true to keep both"
            )
        return self


class EnvironmentSettings(_Settings):
    """Everything that differs between dev, staging and prod."""

    account: str | None = Field(None, pattern=r"^\d{12}$", description="Target account; agnostic if absent")
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$", description="Target region")
    removal_policy: Literal["destroy", "retain"] = Field("retain", description="For logs and other stateful resources")
    log_retention_days: int = Field(30, description="CloudWatch Logs retention")
    termination_protection: bool = False
    tags: dict[str, str] = {}
    function: FunctionSettings = FunctionSettings()
    api: ApiSettings = ApiSettings()
    bundling: BundlingSettings = BundlingSettings()
    cold_start: ColdStartSettings = ColdStartSettings()

    @field_validator("log_retention_days")
    @classmethod
    def _retention_is_supported(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {', '.join(map(str, LOG_RETENTION_DAYS))} days. Fix: use one of those")
        return value

    @model_validator(mode="after")
    def _cold_start_fits_reservation(self) -> EnvironmentSettings:
        reserved = self.function.reserved_concurrency
        cold_start = self.cold_start
        wanted = {"cold_start.provisioned.max": cold_start.provisioned and cold_start.provisioned.max,
                  "cold_start.warmup.concurrency": cold_start.warmup and cold_start.warmup.concurrency}
        for key, value in wanted.items():
            if reserved is not None and value and value > reserved:
                raise ValueError(
                    f"{key}={value} exceeds function.reserved_concurrency={reserved}: those instances count "
                    f"against the reservation; raise function.reserved_concurrency or lower {key}"
                )
        return self

    @model_validator(mode="after")
    def _timeout_fits_gateway(self) -> EnvironmentSettings:
        limit = GATEWAY_TIMEOUT_LIMITS[self.api.type]
        timeout = self.function.timeout_seconds
        if timeout > limit:
            longest = int(limit / TIMEOUT_HEADROOM)
            raise ValueError(
                f"function.expected_duration_seconds={self.function.expected_duration_seconds:g} gives a "
                f"{timeout} s timeout (120%), above the {limit} s a {self.api.type.upper()} API allows; set "
                f"function.expected_duration_seconds to {longest} or less, or move long work to a queue"
            )
        return self


class ProjectSettings(_Settings):
    """The ``cdk.json`` context this project reads."""

    app_name: str = Field("fastapi-lambda", pattern=r"^[a-z][a-z0-9-]{1,30}$", description="Prefix of stack names")
    environments: dict[str, EnvironmentSettings] = Field(..., min_length=1)

    @field_validator("environments", mode="before")
    @classmethod
    def _default_strategies(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        filled = {}
        for name, env in value.items():
            if isinstance(env, dict) and "cold_start" not in env and name in DEFAULT_STRATEGIES:
                env = {**env, "cold_start": {"strategy": DEFAULT_STRATEGIES[name]}}
            filled[name] = env
        return filled

    @field_validator("environments")
    @classmethod
    def _names_are_simple(cls, value: dict[str, EnvironmentSettings]) -> dict[str, EnvironmentSettings]:
        for name in value:
            if not name.isidentifier() or not name.islower():
                raise ValueError(f"environment name '{name}' must be lower-case letters, digits and _")
        return value


_FIXES = {
    "extra_forbidden": "remove it or correct its spelling; allowed keys are {allowed}",
    "literal_error": "use one of the values listed",
    "missing": "add it",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a value at least as large as shown",
    "less_than": "use a smaller value",
    "less_than_equal": "use a value no larger than shown",
    "string_pattern_mismatch": "write it in the format the pattern shows",
    "int_parsing": "write a whole number",
    "int_type": "write a whole number",
    "float_parsing": "write a number",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "too_short": "add at least one entry",
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The settings model that holds the last key of ``loc``."""
    model: type[BaseModel] | None = ProjectSettings
    parts = list(loc[:-1])
    while parts and model is not None:
        part = parts.pop(0)
        if model is ProjectSettings and part == "environments":
            parts.pop(0)  # the environment's name
            model = EnvironmentSettings
            continue
        field = model.model_fields.get(str(part))
        kinds = (field.annotation, *get_args(field.annotation)) if field else ()
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)
    return model


def _allowed_keys(loc: tuple[Any, ...]) -> str:
    model = _model_at(loc)
    return ", ".join(sorted(model.model_fields)) if model else "(see README)"


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    where = ".".join(str(part) for part in loc) or "(top level)"
    message = error["msg"].removeprefix("Value error, ")
    fix = _FIXES.get(error["type"], "correct the value" if error["type"] != "value_error" else "")
    fix = fix.format(allowed=_allowed_keys(loc)) if "{allowed}" in fix else fix
    value = error.get("input")
    shown = "" if error["type"] in ("missing",) or isinstance(value, Mapping) else f"{json.dumps(value, default=str)} is not allowed: "
    return f"{where}: {shown}{message}" + (f". Fix: {fix}" if fix else "")


def load_settings(context: Mapping[str, Any]) -> ProjectSettings:
    """Validate the CDK context; raise :class:`ConfigError` listing every problem."""
    raw = {key: context[key] for key in ("app_name", "environments") if key in context}
    try:
        return ProjectSettings.model_validate(raw)
    except ValidationError as exc:
        problems = "\n  ".join(_describe(error) for error in exc.errors())
        raise ConfigError(f"Invalid settings in cdk.json context:\n  {problems}") from None


def read_cdk_json_context(path: Path = CDK_JSON) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json`` (``python app.py`` and tests do not get it from the CLI)."""
    return dict(json.loads(path.read_text()).get("context", {}))


def select_environments(settings: ProjectSettings, only: str | None) -> dict[str, EnvironmentSettings]:
    """All environments, or the one named by ``-c env=<name>``."""
    if only is None:
        return dict(settings.environments)
    if only not in settings.environments:
        known = ", ".join(sorted(settings.environments))
        raise ConfigError(f"-c env={only}: no such environment. Fix: use one of {known}, or omit -c env to synth all")
    return {only: settings.environments[only]}
