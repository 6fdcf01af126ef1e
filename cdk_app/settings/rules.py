"""Every cross-setting rule, written once.

The constructs call these with their prop names; the settings (:mod:`cdk_app.settings.schema`)
call them with the ``cdk.json`` keys (:data:`CONFIG_NAMES`), so a message always names what
the reader wrote. Plain Python, no CDK: each rule raises :class:`RuleError` with the fix.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from fastapi_lambda.constants import ImportMode

from cdk_app.settings.choices import ApiType, CacheKind, ReleaseStrategy, Strategy
from cdk_app.settings.limits import COGNITO_RESERVED_WORDS

#: Longest integration timeout each front door allows, in seconds.
GATEWAY_TIMEOUT_LIMITS: Mapping[ApiType, int] = {"http": 30, "rest": 29}
#: The function timeout is this multiple of the expected duration.
TIMEOUT_HEADROOM = 1.2

#: How the constructs name each setting (the default) ...
PROP_NAMES: Mapping[str, str] = {
    "strategy": "cold_start.strategy", "provisioned": "cold_start.provisioned", "warmup": "cold_start.warmup",
    "force_warmup": "cold_start.force_warmup", "min": "provisioned.min_capacity",
    "max": "provisioned.max_capacity", "utilization": "provisioned.target_utilization",
    "warmup_concurrency": "warmup.concurrency", "reserved": "reserved_concurrency",
    "expected_duration": "expected_duration", "timeout": "timeout",
    "visibility_timeout": "visibility_timeout", "worker_timeout": "the worker's timeout",
    "batch_size": "batch_size", "batching_window": "max_batching_window",
    "public_routes": "public_routes", "route_scopes": "route_scopes", "authorizer": "authorizer=",
    "waf": "a web firewall", "api_type": "api_type",
    "cache_kind": "kind", "replicas": "replicas", "multi_az": "multi_az", "cache_port": "port",
    "zones": "the network's zones", "nat_gateways": "nat_gateways", "packaging": "packaging",
    "release_strategy": "release.strategy", "release_percentage": "release.percentage",
    "release_interval": "release.interval", "smoke_test": "release.smoke_test_path",
}
#: ... and how cdk.json does.
CONFIG_NAMES: Mapping[str, str] = {
    "strategy": "cold_start.strategy", "provisioned": "cold_start.provisioned", "warmup": "cold_start.warmup",
    "force_warmup": "cold_start.warmup.force", "min": "cold_start.provisioned.min",
    "max": "cold_start.provisioned.max", "utilization": "cold_start.provisioned.target_utilization",
    "warmup_concurrency": "cold_start.warmup.concurrency", "reserved": "function.reserved_concurrency",
    "expected_duration": "function.expected_duration_seconds", "timeout": "function.expected_duration_seconds",
    "visibility_timeout": "tasks.visibility_timeout_seconds",
    "worker_timeout": "the worker's timeout (tasks.expected_duration_seconds)",
    "batch_size": "tasks.batch_size", "batching_window": "tasks.max_batching_window_seconds",
    "public_routes": "api.public_routes", "route_scopes": "auth.route_scopes", "authorizer": "auth.enabled",
    "waf": "api.waf.enabled", "api_type": "api.type",
    "cache_kind": "cache.kind", "replicas": "cache.replicas", "multi_az": "cache.multi_az", "cache_port": "cache.port",
    "zones": "network.az_count (or network.availability_zones)", "nat_gateways": "network.nat_gateways",
    "packaging": "function.packaging", "release_strategy": "release.strategy",
    "release_percentage": "release.percentage", "release_interval": "release.interval_minutes",
    "smoke_test": "release.smoke_test",
}


def import_mode_for(strategy: Strategy) -> ImportMode:
    """Eager where init is paid before traffic (provisioned concurrency, SnapStart), else lazy."""
    return "eager" if strategy in ("provisioned", "snapstart") else "lazy"


class RuleError(ValueError):
    """A combination of settings that cannot work; the message names the settings and the fix."""


def timeout_for(expected_duration_seconds: float) -> int:
    """The function timeout for an expected duration: 120%, rounded up to whole seconds."""
    return max(1, math.ceil(expected_duration_seconds * TIMEOUT_HEADROOM))


def check_timeout(timeout_seconds: float, limit_seconds: float | None, limit: str, *,
                  expected_duration_seconds: float | None = None, names: Mapping[str, str] = PROP_NAMES) -> None:
    """The timeout must fit the front door's limit (``limit`` says whose, e.g. "a REST API")."""
    if limit_seconds is None or timeout_seconds <= limit_seconds:
        return
    if expected_duration_seconds is None:
        raise RuleError(f"{names['timeout']}={timeout_seconds:g}s is above the {limit_seconds:g}s {limit} allows; "
                        f"set {names['timeout']} to {limit_seconds:g}s or less, or move long work to a queue")
    raise RuleError(
        f"{names['expected_duration']}={expected_duration_seconds:g} gives a {timeout_seconds:g} s timeout (120%), "
        f"above the {limit_seconds:g} s {limit} allows; set {names['expected_duration']} to "
        f"{int(limit_seconds / TIMEOUT_HEADROOM)} or less, or move long work to a queue")


def check_bounds(minimum: int, maximum: int, *, low: int = 1, what: str = "",
                 names: Mapping[str, str] = PROP_NAMES) -> None:
    """``low <= min <= max`` for instance counts."""
    prefix = f"{what}: " if what else ""
    if minimum > maximum:
        raise RuleError(f"{prefix}{names['min']}={minimum} is above {names['max']}={maximum}; set min <= max")
    if minimum < low:
        raise RuleError(f"{prefix}{names['min']}={minimum} is below {low}; set it to {low} or more")


#: The longest a canary or linear Lambda deployment of CodeDeploy may shift traffic, in minutes (two days: CodeDeploy's
#: quotas, https://docs.aws.amazon.com/codedeploy/latest/userguide/limits.html).
MAX_RELEASE_MINUTES = 2880


def check_release(strategy: ReleaseStrategy, *, percentage: int, interval_minutes: int,
                  names: Mapping[str, str] = PROP_NAMES) -> None:
    """A canary or linear release shifts a share between 1 and 99 percent per step, and ends within two days."""
    n = names
    if strategy == "all-at-once":
        return
    if not 1 <= percentage <= 99:
        raise RuleError(f"{n['release_percentage']}={percentage} must be a whole percentage from 1 to 99 (the share "
                        f"a {strategy} step shifts); 100 is {n['release_strategy']} 'all-at-once'")
    steps = 1 if strategy == "canary" else math.ceil(100 / percentage) - 1
    if steps * interval_minutes > MAX_RELEASE_MINUTES:
        raise RuleError(f"{n['release_strategy']} '{strategy}' with {n['release_percentage']}={percentage} and "
                        f"{n['release_interval']}={interval_minutes} takes {steps * interval_minutes} minutes, above "
                        f"the {MAX_RELEASE_MINUTES} minutes CodeDeploy allows a Lambda deployment; shorten "
                        f"{n['release_interval']} or raise {n['release_percentage']}")


def check_cold_start(strategy: Strategy, *, provisioned: tuple[int, int, float] | None, warmup_concurrency: int | None,
                     force_warmup: bool, python_version: str | None, container_image: bool = False,
                     reserved_concurrency: int | None = None, names: Mapping[str, str] = PROP_NAMES) -> None:
    """One cold-start strategy per function, and what it needs.

    ``provisioned`` is (min, max, target utilization) when provisioned settings are given;
    ``warmup_concurrency`` is set when warmup settings are given.
    """
    n = names
    if provisioned is not None and strategy != "provisioned":
        why = "SnapStart does not support provisioned concurrency" if strategy == "snapstart" \
            else f"{n['strategy']} is '{strategy}'"
        raise RuleError(f"{n['provisioned']} is set but {why}; choose one: set {n['strategy']} to 'provisioned' "
                        f"or remove {n['provisioned']}")
    if warmup_concurrency is not None and strategy != "warmup" and not force_warmup:
        raise RuleError(f"{n['warmup']} beside the '{strategy}' strategy is redundant (its instances are already "
                        f"initialized) and costs invocations; remove {n['warmup']}, or set {n['force_warmup']} "
                        "to true to keep both")
    if strategy == "warmup" and warmup_concurrency is None:
        raise RuleError(f"{n['strategy']} 'warmup' needs {n['warmup']} settings (rate, concurrency)")
    if provisioned is not None:
        minimum, maximum, utilization = provisioned
        check_bounds(minimum, maximum, names=names)
        if not 0 < utilization < 1:
            raise RuleError(f"{n['utilization']}={utilization} must be between 0 and 1 (e.g. 0.7)")
    if strategy == "snapstart":
        if container_image:
            # AWS announced SnapStart for images on its base images in July 2026 (CDK accepts it since #38680), but
            # Lambda's SnapStart pages still list images as unsupported and nothing here has run it: refused for now.
            raise RuleError(f"{n['strategy']} 'snapstart' with {n['packaging']} 'image' is refused: this project has "
                            "not verified SnapStart on container images (AWS's SnapStart documentation lists them as "
                            f"unsupported, though AWS announced support for its base images in 2026); set "
                            f"{n['packaging']} to 'zip', or choose another {n['strategy']} (provisioned, warmup or none)")
        if python_version is None or tuple(map(int, python_version.split("."))) < (3, 12):
            raise RuleError(f"SnapStart for Python needs Python 3.12 or later, not {python_version}; "
                            "raise the Python version or choose another strategy")
    if reserved_concurrency is not None:
        wanted = {n["max"]: provisioned and strategy == "provisioned" and provisioned[1],
                  n["warmup_concurrency"]: warmup_concurrency}
        for key, value in wanted.items():
            if value and value > reserved_concurrency:
                raise RuleError(f"{key}={value} exceeds {n['reserved']}={reserved_concurrency}: those instances "
                                f"count against the reservation; raise {n['reserved']} or lower {key}")


#: A message must stay invisible this many worker timeouts (AWS's advice for Lambda event sources),
#: or a batch still running reappears and runs twice.
VISIBILITY_TIMEOUT_FACTOR = 6
#: SQS's own limit on the visibility timeout.
MAX_VISIBILITY_TIMEOUT_SECONDS = 43200


def task_queue_visibility(worker_timeout_seconds: float, *, visibility_timeout_seconds: float | None = None,
                          batch_size: int = 10, max_batching_window_seconds: float = 0,
                          names: Mapping[str, str] = PROP_NAMES) -> int:
    """The queue's visibility timeout (6 x the worker's timeout unless set), checked with the batching settings."""
    n = names
    needed = math.ceil(worker_timeout_seconds * VISIBILITY_TIMEOUT_FACTOR)
    if needed > MAX_VISIBILITY_TIMEOUT_SECONDS:
        raise RuleError(f"{n['worker_timeout']} of {worker_timeout_seconds:g}s needs a visibility timeout of "
                        f"{needed}s (6x), above SQS's {MAX_VISIBILITY_TIMEOUT_SECONDS}s; lower it")
    if visibility_timeout_seconds is not None and visibility_timeout_seconds < needed:
        raise RuleError(f"{n['visibility_timeout']}={visibility_timeout_seconds:g}s is below 6 x {n['worker_timeout']} "
                        f"of {worker_timeout_seconds:g}s: a message would reappear while its batch still runs, and "
                        f"run twice; set {n['visibility_timeout']} to {needed} or more, or leave it unset")
    if batch_size > 10 and max_batching_window_seconds <= 0:
        raise RuleError(f"{n['batch_size']}={batch_size} needs {n['batching_window']} of at least 1 second "
                        f"(Lambda reads more than 10 messages only within a batching window); set one, or "
                        f"{n['batch_size']} to 10 or less")
    return int(visibility_timeout_seconds if visibility_timeout_seconds is not None else needed)


def check_edge(*, public_routes: Sequence[str], route_scopes: Sequence[str], token_authorizer: bool,
               api_type: str, waf: bool, default_scopes: bool = False, names: Mapping[str, str] = PROP_NAMES) -> None:
    """Scopes need tokens and a non-public route; a WAF needs a REST API (an HTTP API cannot have one)."""
    n = names
    if clash := sorted(set(route_scopes) & set(public_routes)):
        raise RuleError(f"{n['route_scopes']} names {', '.join(clash)}, which {n['public_routes']} makes public: a "
                        "public route has no token to carry scopes; remove it from one of the two")
    if (route_scopes or default_scopes) and not token_authorizer:
        raise RuleError(f"{n['route_scopes']} needs a token authorizer ({n['authorizer']}): IAM authorization has "
                        "no scopes")
    if waf and api_type != "rest":
        raise RuleError(f"{n['waf']} needs a REST API ({n['api_type']} is '{api_type}'): AWS WAF cannot be "
                        "associated with an HTTP API; use per-route throttles there")
#: ElastiCache Serverless listens here (and its reader endpoint one port up); a replication group may use another.
SERVERLESS_PORT = 6379


def check_cache(kind: CacheKind, *, replicas: int, multi_az: bool, zones: int, port: int,
                names: Mapping[str, str] = PROP_NAMES) -> None:
    """A cache's settings fit its kind and its network."""
    n = names
    if kind == "serverless" and port != SERVERLESS_PORT:
        raise RuleError(f"{n['cache_port']}={port} cannot be set for {n['cache_kind']} 'serverless': ElastiCache "
                        f"Serverless listens on {SERVERLESS_PORT}; remove {n['cache_port']} or choose 'node-based'")
    if kind == "node-based" and multi_az:
        if replicas < 1:
            raise RuleError(f"{n['multi_az']}=true needs {n['replicas']} of 1 or more (a replica in another zone to "
                            f"fail over to); raise {n['replicas']} or set {n['multi_az']} to false")
        if zones < 2:
            raise RuleError(f"{n['multi_az']}=true needs 2 or more zones, but {n['zones']} gives {zones}; add a zone "
                            f"or set {n['multi_az']} to false")


def check_network(*, egress: str, nat_gateways: int, zones: int, names: Mapping[str, str] = PROP_NAMES) -> None:
    """NAT gateways live one per zone at most."""
    if egress == "nat" and nat_gateways > zones:
        raise RuleError(f"{names['nat_gateways']}={nat_gateways} is more than {names['zones']} ({zones}): one NAT "
                        f"gateway per zone at most; lower {names['nat_gateways']}")


#: Room a derived domain prefix leaves for "-<12-digit account id>" within Cognito's 63 characters.
DOMAIN_PREFIX_STEM = 63 - 13


def domain_prefix_stem(name: str) -> str:
    """The part of a Cognito domain prefix derived from a stack name; the account id follows it.

    Lower case, only letters, digits and hyphens, none of Cognito's reserved words, at most
    :data:`DOMAIN_PREFIX_STEM` characters: ``"MyAwsApp-dev"`` -> ``"my-app-dev"``.
    """
    stem = re.sub(r"[^a-z0-9-]+", "-", name.lower())
    for word in COGNITO_RESERVED_WORDS:
        stem = stem.replace(word, "-")
    stem = re.sub(r"-{2,}", "-", stem).strip("-")[:DOMAIN_PREFIX_STEM].strip("-")
    return stem or "auth"


# --- several services behind one API, and the HTTP edge (cdk_app.api) -------------------------------

#: A service's path prefix: static segments only ("/billing", "/v2/orders"), never the root.
_SERVICE_PREFIX = re.compile(r"(/[A-Za-z0-9._~-]+)+")
#: What API Gateway accepts as an API mapping key / base path (one level), e.g. "v1".
BASE_PATH = re.compile(r"[A-Za-z0-9$_.+!*'(),-]+")
#: A media type as binaryMediaTypes takes it: "image/png", "image/*" or "*/*".
_MEDIA_TYPE = re.compile(r"(\*|[\w.+-]+)/(\*|[\w.+-]+)")
#: How the gateway construct names the services' settings, and how cdk.json does.
SERVICE_PROP_NAMES: Mapping[str, str] = {"services": "add_service", "main": "the gateway's own routes"}
SERVICE_CONFIG_NAMES: Mapping[str, str] = {"services": "services", "main": "api.public_routes/route_throttles "
                                           "and auth.route_scopes"}


def route_path(route: str) -> str:
    """``"GET /billing/x"`` -> ``"/billing/x"``."""
    return route.partition(" ")[2]


def under(path: str, prefix: str) -> bool:
    """Whether a path is ``prefix`` itself or below it (``/billing/x`` is, ``/billingx`` is not)."""
    return path == prefix or path.startswith(prefix + "/")


def check_service_prefix(prefix: object, *, where: str = "prefix") -> str:
    """A prefix a service may be mounted on; the fix when it is not."""
    # isinstance: settings files and callers that skip the checker can pass anything
    if not isinstance(prefix, str) or not _SERVICE_PREFIX.fullmatch(prefix):
        raise RuleError(f"{where}={prefix!r} is not a service prefix; write '/name' (static segments of letters, "
                        "digits, '.', '_', '~' or '-', no trailing slash, no {parameters}), e.g. '/billing'; the root "
                        "'/' belongs to the API's own function")
    return prefix


def check_services(services: Mapping[str, tuple[str, Sequence[str]]], *, main_routes: Sequence[str] = (),
                   names: Mapping[str, str] = SERVICE_PROP_NAMES) -> None:
    """No two services claim the same path: prefixes apart, each service's routes under its prefix, the API
    function's own declared routes outside every prefix. ``services``: name -> (prefix, its declared routes)."""
    n = names
    seen: dict[str, str] = {}
    for name, (prefix, routes) in services.items():
        check_service_prefix(prefix, where=f"{n['services']}.{name}.prefix")
        for other, other_prefix in seen.items():
            if under(prefix, other_prefix) or under(other_prefix, prefix):
                raise RuleError(f"{n['services']}.{name}.prefix {prefix!r} and {n['services']}.{other}.prefix "
                                f"{other_prefix!r} overlap: API Gateway would send requests below the longer one to "
                                "one service while the other claims them; give each service a prefix of its own")
        seen[name] = prefix
        outside = [r for r in routes if not under(route_path(r), prefix)]
        if outside:
            raise RuleError(f"{n['services']}.{name} declares {', '.join(outside)} outside its prefix {prefix!r}: a "
                            f"service answers only below its prefix; write the full path, e.g. "
                            f"'GET {prefix}/health'")
    for route in main_routes:
        owner = next((name for name, prefix in seen.items() if under(route_path(route), prefix)), None)
        if owner is not None:
            raise RuleError(f"{n['main']} declare {route}, which is below {n['services']}.{owner}'s prefix "
                            f"{seen[owner]!r}: two functions would claim it; declare it in {n['services']}.{owner} "
                            "(or remove it)")


def check_base_path(base_path: str | None, *, where: str = "base_path") -> None:
    """An API mapping key API Gateway accepts ("An ApiMapping key may contain only letters, numbers and ...")."""
    if base_path is not None and not BASE_PATH.fullmatch(base_path):
        raise RuleError(f"{where}={base_path!r} is not a base path API Gateway accepts: one segment of letters, "
                        "digits and $-_.+!*'(), without slashes (e.g. 'v1'); leave it unset to map the domain's root")


def check_media_types(media_types: Sequence[str], *, where: str = "binary_media_types") -> None:
    """Each entry is 'type/subtype', either part may be '*'."""
    for media_type in media_types:
        if not _MEDIA_TYPE.fullmatch(media_type):
            raise RuleError(f"{where} has {media_type!r}; write media types as 'type/subtype' ('image/png', "
                            "'image/*', or '*/*' for every body)")


def _labels(domain: str) -> str:
    """A domain as a path from its top level down (``api.example.com`` -> ``/com/example/api``)."""
    return "/" + "/".join(reversed(domain.lower().rstrip(".").split(".")))


#: The region an ACM certificate ARN names, when it names one.
CERTIFICATE_REGION = re.compile(r"arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate/[0-9a-f-]+")


def check_domain(*, domain_name: str, certificate_arn: str | None, region: str | None, hosted_zone_name: str | None,
                 names: Mapping[str, str] | None = None) -> None:
    """A regional API's certificate lives in the API's region; the domain lies in its hosted zone."""
    n = {"certificate": "certificate", "zone": "hosted_zone", **(names or {})}
    if certificate_arn is not None:
        match = CERTIFICATE_REGION.fullmatch(certificate_arn)
        if match is None:
            raise RuleError(f"{n['certificate']}={certificate_arn!r} is not an ACM certificate ARN "
                            "(arn:aws:acm:<region>:<account>:certificate/<id>)")
        if region is not None and match.group(1) != region:
            raise RuleError(f"{n['certificate']} is in {match.group(1)} but the API is in {region}: a regional API's "
                            f"custom domain needs a certificate in its own region (only edge-optimized APIs and "
                            f"CloudFront take us-east-1's); request or import one in {region}")
    if hosted_zone_name is not None and not under(_labels(domain_name), _labels(hosted_zone_name)):
        raise RuleError(f"{domain_name!r} is not in the hosted zone {hosted_zone_name!r}: the zone cannot hold its "
                        f"validation and alias records; use the zone of {domain_name!r} (or no zone, and add the "
                        "records yourself)")
