"""What an environment costs a month, from its synthesized template and a traffic profile (``make cost``).

Everything priced is read from the template (cdk_app/assembly.py), so any app works: each function's memory,
architecture and cold-start strategy, the API type, WAF, the cache (serverless or nodes), NAT gateways and
interface endpoints, queues, tables, user pools (feature tier, machine clients), alarms, dashboards, log
groups (retention), X-Ray. How much traffic there is comes from a profile (docs/cost/profile.json, each key
overridable with ``--set key=value``). Prices are list prices for us-east-1 from :data:`PRICES`, each with its
source page and the date it was compiled; free tiers are left out (they are per account, shared by environments).

The cold-start strategies are compared for the same traffic on each stack's API functions: none, a scheduled
warmup, provisioned concurrency and SnapStart, as a table and a plot (PNG).

    python -m cdk_app.cost cdk.out [--profile docs/cost/profile.json] [--set requests_per_month=2e7]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, cast

from cdk_app import markdown
from cdk_app.assembly import Function, StackTemplate, listed, load_templates, references, short_name

REGION = "us-east-1"
HOURS_PER_MONTH = 730  # AWS's own convention in its pricing examples
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60
DEFAULT_PROFILE = Path(__file__).resolve().parents[1] / "docs" / "cost" / "profile.json"

LAMBDA = "https://aws.amazon.com/lambda/pricing/"
APIGW = "https://aws.amazon.com/api-gateway/pricing/"
CACHE = "https://aws.amazon.com/elasticache/pricing/"
VPC = "https://aws.amazon.com/vpc/pricing/"
PRIVATELINK = "https://aws.amazon.com/privatelink/pricing/"
COGNITO = "https://aws.amazon.com/cognito/pricing/"
CLOUDWATCH = "https://aws.amazon.com/cloudwatch/pricing/"


@dataclass(frozen=True)
class Price:
    usd: float
    unit: str
    source: str
    as_of: str  # when this table entry was compiled from its source page


#: us-east-1 list prices (first tier where a price is tiered), compiled from the AWS pricing pages named (not
#: fetched at run time: check them for changes). Update a value, its date and source together.
PRICES: dict[str, Price] = {
    "lambda.request": Price(0.20 / 1e6, "request", LAMBDA, "2026-11-29"),
    "lambda.gb_second.x86_64": Price(0.0000166667, "GB-second", LAMBDA, "2026-11-29"),
    "lambda.gb_second.arm64": Price(0.0000133334, "GB-second", LAMBDA, "2026-11-29"),
    "lambda.provisioned.gb_second.x86_64": Price(0.0000041667, "GB-second provisioned", LAMBDA, "2026-11-29"),
    "lambda.provisioned.gb_second.arm64": Price(0.0000033334, "GB-second provisioned", LAMBDA, "2026-11-29"),
    "lambda.provisioned_duration.gb_second.x86_64": Price(0.0000097222, "GB-second run on provisioned", LAMBDA,
                                                          "2026-11-29"),
    "lambda.provisioned_duration.gb_second.arm64": Price(0.0000077778, "GB-second run on provisioned", LAMBDA,
                                                         "2026-11-29"),
    # The INIT phase of on-demand functions is billed as duration since 2025-08-01.
    "lambda.snapstart.cache.gb_second": Price(0.0000015046, "GB-second cached (per active version)", LAMBDA,
                                              "2026-11-29"),
    "lambda.snapstart.restore.gb": Price(0.0001397998, "GB restored", LAMBDA, "2026-11-29"),
    "lambda.ephemeral.gb_second": Price(0.0000000309, "GB-second above 512 MB", LAMBDA, "2026-11-29"),
    "apigw.http.request": Price(1.00 / 1e6, "request (per 512 KB)", APIGW, "2026-11-29"),
    "apigw.rest.request": Price(3.50 / 1e6, "request", APIGW, "2026-11-29"),
    "transfer.out.gb": Price(0.09, "GB out to the internet", "https://aws.amazon.com/ec2/pricing/on-demand/",
                             "2026-11-29"),
    "waf.web_acl.month": Price(5.00, "web ACL-month", "https://aws.amazon.com/waf/pricing/", "2026-11-29"),
    "waf.rule.month": Price(1.00, "rule-month", "https://aws.amazon.com/waf/pricing/", "2026-11-29"),
    "waf.request": Price(0.60 / 1e6, "request", "https://aws.amazon.com/waf/pricing/", "2026-11-29"),
    "cache.serverless.valkey.gb_hour": Price(0.0837, "GB-hour (min 100 MB)", CACHE, "2026-11-29"),
    "cache.serverless.valkey.ecpu": Price(0.0023 / 1e6, "ECPU", CACHE, "2026-11-29"),
    "cache.serverless.redis.gb_hour": Price(0.125, "GB-hour (min 1 GB)", CACHE, "2026-11-29"),
    "cache.serverless.redis.ecpu": Price(0.0034 / 1e6, "ECPU", CACHE, "2026-11-29"),
    # Node-based, Redis OSS on-demand; Valkey nodes cost 20% less.
    "cache.node.cache.t4g.micro": Price(0.016, "node-hour", CACHE, "2026-11-29"),
    "cache.node.cache.t4g.small": Price(0.032, "node-hour", CACHE, "2026-11-29"),
    "cache.node.cache.t4g.medium": Price(0.065, "node-hour", CACHE, "2026-11-29"),
    "cache.node.cache.m7g.large": Price(0.158, "node-hour", CACHE, "2026-11-29"),
    "cache.node.cache.r7g.large": Price(0.219, "node-hour", CACHE, "2026-11-29"),
    "cache.node.valkey_discount": Price(0.20, "fraction off Redis OSS node prices", CACHE, "2026-11-29"),
    "nat.hour": Price(0.045, "NAT gateway-hour", VPC, "2026-11-29"),
    "nat.gb": Price(0.045, "GB processed", VPC, "2026-11-29"),
    "endpoint.interface.hour": Price(0.01, "endpoint-hour per AZ", PRIVATELINK, "2026-11-29"),
    "endpoint.interface.gb": Price(0.01, "GB processed", PRIVATELINK, "2026-11-29"),
    "sqs.request": Price(0.40 / 1e6, "request (per 64 KB)", "https://aws.amazon.com/sqs/pricing/", "2026-11-29"),
    # On-demand prices after the cut of 2024-11-01.
    "dynamodb.write": Price(0.625 / 1e6, "write request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/",
                            "2026-11-29"),
    "dynamodb.read": Price(0.125 / 1e6, "read request unit", "https://aws.amazon.com/dynamodb/pricing/on-demand/",
                           "2026-11-29"),
    "dynamodb.storage.gb_month": Price(0.25, "GB-month", "https://aws.amazon.com/dynamodb/pricing/on-demand/",
                                       "2026-11-29"),
    "dynamodb.pitr.gb_month": Price(0.20, "GB-month", "https://aws.amazon.com/dynamodb/pricing/on-demand/",
                                    "2026-11-29"),
    "s3.storage.gb_month": Price(0.023, "GB-month", "https://aws.amazon.com/s3/pricing/", "2026-11-29"),
    "s3.put": Price(0.005 / 1000, "PUT request", "https://aws.amazon.com/s3/pricing/", "2026-11-29"),
    "s3.get": Price(0.0004 / 1000, "GET request", "https://aws.amazon.com/s3/pricing/", "2026-11-29"),
    # User pool feature plans (since 2024-11-22).
    "cognito.mau.lite": Price(0.0055, "MAU", COGNITO, "2026-11-29"),
    "cognito.mau.essentials": Price(0.015, "MAU", COGNITO, "2026-11-29"),
    "cognito.mau.plus": Price(0.020, "MAU", COGNITO, "2026-11-29"),
    "cognito.m2m.client.month": Price(6.00, "machine app client-month", COGNITO, "2026-11-29"),
    "cognito.m2m.token": Price(2.25 / 1000, "token request", COGNITO, "2026-11-29"),
    "xray.trace": Price(5.00 / 1e6, "trace recorded", "https://aws.amazon.com/xray/pricing/", "2026-11-29"),
    "logs.ingest.gb": Price(0.50, "GB ingested", CLOUDWATCH, "2026-11-29"),
    "logs.storage.gb_month": Price(0.03, "GB-month archived (compressed)", CLOUDWATCH, "2026-11-29"),
    "alarm.metric.month": Price(0.10, "alarm metric-month", CLOUDWATCH, "2026-11-29"),
    "dashboard.month": Price(3.00, "dashboard-month", CLOUDWATCH, "2026-11-29"),
    "metric.month": Price(0.30, "custom metric-month", CLOUDWATCH, "2026-11-29"),
    "secret.month": Price(0.40, "secret-month", "https://aws.amazon.com/secrets-manager/pricing/", "2026-11-29"),
    "ssm.advanced.month": Price(0.05, "advanced parameter-month",
                                "https://aws.amazon.com/systems-manager/pricing/", "2026-11-29"),
    "kms.key.month": Price(1.00, "key-month", "https://aws.amazon.com/kms/pricing/", "2026-11-29"),
}


@dataclass(frozen=True)
class Profile:
    """The traffic one environment sees in a month (docs/cost/profile.json explains each key)."""

    requests_per_month: float
    mean_duration_ms: float
    peak_concurrency: int
    payload_kb: float
    init_ms: float
    restore_ms: float
    warmup_ms: float
    environment_lifetime_hours: float
    tasks_per_request: float
    task_duration_ms: float
    dynamodb_writes_per_request: float
    dynamodb_reads_per_request: float
    dynamodb_storage_gb: float
    s3_puts_per_request: float
    s3_gets_per_request: float
    s3_storage_gb: float
    cache_commands_per_request: float
    cache_data_gb: float
    monthly_active_users: float
    m2m_token_requests_per_month: float
    log_bytes_per_invocation: float
    access_log_bytes_per_request: float
    log_compression: float
    xray_reservoir_per_second: float
    xray_sampled_fraction: float
    nat_gb_per_month: float
    endpoint_gb_per_month: float
    flow_log_gb_per_month: float
    sqs_pollers: int
    alternatives: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | str = DEFAULT_PROFILE, overrides: dict[str, str] | None = None) -> Profile:
        values = {key: value for key, value in json.loads(Path(path).read_text()).items()
                  if not key.startswith("_")}
        known = {f.name: f for f in fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        for key, text in (overrides or {}).items():
            if key not in known or key == "alternatives":
                raise ValueError(f"--set {key}=…: no such profile key; known: {sorted(set(known) - {'alternatives'})}")
            values[key] = float(text)
        missing = {name for name, f in known.items() if f.name != "alternatives"} - set(values)
        if missing:
            raise ValueError(f"{path}: missing key(s) {sorted(missing)}")
        for key, value in values.items():
            if key != "alternatives" and (not isinstance(value, int | float) or value < 0):
                raise ValueError(f"profile {key}={value!r}: must be a number ≥ 0")
        values["peak_concurrency"] = max(1, int(values["peak_concurrency"]))
        values["sqs_pollers"] = int(values["sqs_pollers"])
        return cls(**values)

    @property
    def mean_concurrency(self) -> float:
        """Little's law: requests per second × seconds each."""
        return self.requests_per_month / SECONDS_PER_MONTH * self.mean_duration_ms / 1000

    def environment_starts(self, peak: int) -> float:
        """New execution environments a month for ``peak`` warm ones, each living ``environment_lifetime_hours``."""
        return peak * HOURS_PER_MONTH / max(self.environment_lifetime_hours, 1e-9)


@dataclass(frozen=True)
class Line:
    service: str
    item: str
    quantity: float
    price: str  # a key of PRICES
    factor: float = 1.0  # for prices that are a share (the Valkey node discount)

    @property
    def usd(self) -> float:
        return self.quantity * PRICES[self.price].usd * self.factor


def price(key: str) -> float:
    return PRICES[key].usd


# --- Lambda and the cold-start strategies ------------------------------------------------------------

@dataclass(frozen=True)
class Plan:
    """One cold-start strategy for one function: what it costs on top of the work and who still waits."""

    strategy: str
    lines: list[Line]
    user_cold_starts: float
    cold_start_ms: float

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)


def gigabytes(function: Function) -> float:
    return function.memory_mb / 1024


def invocation_lines(name: str, function: Function, invocations: float, duration_ms: float,
                     provisioned_share: float = 0.0) -> list[Line]:
    """Requests and duration; the share run on provisioned concurrency is billed at its lower duration rate."""
    arch = function.architecture
    gb_seconds = invocations * duration_ms / 1000 * gigabytes(function)
    lines = [Line("Lambda", f"{name}: requests", invocations, "lambda.request"),
             Line("Lambda", f"{name}: duration (GB-s)", gb_seconds * (1 - provisioned_share),
                  f"lambda.gb_second.{arch}")]
    if provisioned_share:
        lines.append(Line("Lambda", f"{name}: duration on provisioned (GB-s)", gb_seconds * provisioned_share,
                          f"lambda.provisioned_duration.gb_second.{arch}"))
    lines = [line for line in lines if line.quantity]
    if function.ephemeral_mb > 512:
        lines.append(Line("Lambda", f"{name}: ephemeral storage (GB-s)",
                          invocations * duration_ms / 1000 * (function.ephemeral_mb - 512) / 1024,
                          "lambda.ephemeral.gb_second"))
    return lines


def plan(function: Function, profile: Profile, invocations: float, duration_ms: float, peak: int,
         strategy: str | None = None) -> Plan:
    """The function's invocations under ``strategy`` (default: the template's), with its cold starts.

    ``peak`` is the function's concurrency at its busiest: the environments Lambda keeps, and replaces every
    ``environment_lifetime_hours``; each new one runs INIT (or a SnapStart restore) once.
    """
    strategy = strategy or function.cold_start
    function = with_strategy(function, strategy, profile)
    name, arch, gb = function.name, function.architecture, gigabytes(function)
    starts = profile.environment_starts(peak)
    if strategy == "provisioned":
        mean = invocations / SECONDS_PER_MONTH * duration_ms / 1000
        target = function.target_utilization or 1.0
        provisioned = min(max(function.provisioned, mean / target), max(function.provisioned_max,
                                                                        function.provisioned))
        served = 1.0 if mean <= provisioned else provisioned / mean
        spill = max(0, peak - function.provisioned_max) / peak
        lines = invocation_lines(name, function, invocations, duration_ms, provisioned_share=served)
        lines.append(Line("Lambda", f"{name}: provisioned concurrency {provisioned:.3g} on average (GB-s)",
                          provisioned * gb * SECONDS_PER_MONTH, f"lambda.provisioned.gb_second.{arch}"))
        if spill:
            lines.append(Line("Lambda", f"{name}: init of spillover environments (GB-s)",
                              starts * spill * profile.init_ms / 1000 * gb, f"lambda.gb_second.{arch}"))
        return Plan(strategy, lines, starts * spill, profile.init_ms)
    lines = invocation_lines(name, function, invocations, duration_ms)
    if strategy == "snapstart":
        lines += [Line("Lambda", f"{name}: SnapStart cache (GB-s, 1 version)", gb * SECONDS_PER_MONTH,
                       "lambda.snapstart.cache.gb_second"),
                  Line("Lambda", f"{name}: SnapStart restores (GB)", starts * gb, "lambda.snapstart.restore.gb")]
        return Plan(strategy, lines, starts, profile.restore_ms)
    # On demand, warmed or not, each new environment runs INIT, billed since 2025-08-01.
    lines.append(Line("Lambda", f"{name}: init of new environments (GB-s)", starts * profile.init_ms / 1000 * gb,
                      f"lambda.gb_second.{arch}"))
    if strategy == "warmup" and function.warmup_rate_minutes:  # with_strategy set the rule's rate
        pings = function.warmup_concurrency * MINUTES_PER_MONTH / function.warmup_rate_minutes
        lines += [Line("Lambda", f"{name}: warmup invocations", pings, "lambda.request"),
                  Line("Lambda", f"{name}: warmup duration (GB-s)", pings * profile.warmup_ms / 1000 * gb,
                       f"lambda.gb_second.{arch}")]
        # The warmed environments absorb their own restarts; the rest of the peak still starts cold on users.
        uncovered = max(0, peak - function.warmup_concurrency) / peak
        return Plan(strategy, lines, starts * uncovered, profile.init_ms)
    return Plan("none", lines, starts, profile.init_ms)


def with_strategy(function: Function, strategy: str, profile: Profile) -> Function:
    """The function as the template has it, or with the profile's settings for another strategy."""
    if strategy == function.cold_start:
        return function
    settings = profile.alternatives.get(strategy, {})
    if strategy == "provisioned":
        return replace(function, snap_start=False, warmup_rate_minutes=None,
                       provisioned=int(settings.get("min", 1)), provisioned_max=int(settings.get("max", 1)),
                       target_utilization=settings.get("target_utilization"))
    if strategy == "warmup":
        return replace(function, provisioned=0, snap_start=False,
                       warmup_rate_minutes=float(settings.get("rate_minutes", 5)),
                       warmup_concurrency=int(settings.get("concurrency", 1)))
    if strategy in ("snapstart", "none"):
        return replace(function, provisioned=0, warmup_rate_minutes=None, snap_start=strategy == "snapstart")
    raise ValueError(f"unknown cold-start strategy {strategy!r}; one of {', '.join(STRATEGIES)}")


STRATEGIES = ("none", "warmup", "provisioned", "snapstart")


# --- the whole stack -----------------------------------------------------------------------------

class Estimate:
    """Every line of one stack's monthly bill for a profile."""

    def __init__(self, stack: StackTemplate, profile: Profile) -> None:
        self.stack, self.profile = stack, profile
        self.requests = profile.requests_per_month
        self.lines: list[Line] = []
        self.notes: list[str] = []
        self.invocations: dict[str, float] = {}  # function → invocations a month
        self.api_functions = sorted({f for functions in stack.entry_points.values() for f in functions})
        self.compute()

    @property
    def usd(self) -> float:
        return sum(line.usd for line in self.lines)

    def add(self, service: str, item: str, quantity: float, key: str, factor: float = 1.0) -> None:
        if quantity:
            self.lines.append(Line(service, item, quantity, key, factor))

    def compute(self) -> None:
        for step in (self.functions, self.apis, self.firewall, self.cache, self.network, self.queues, self.tables,
                     self.buckets, self.identity, self.tracing, self.monitoring, self.secrets):
            step()

    def functions(self) -> None:
        profile, stack = self.profile, self.stack
        consumers = {function: source for source, function, _ in stack.event_sources()}
        for function in stack.functions.values():
            if function.logical_id in self.api_functions:
                invocations, duration = self.requests / len(self.api_functions), profile.mean_duration_ms
                peak = profile.peak_concurrency
            else:
                tasks = function.logical_id in consumers
                invocations = self.requests * profile.tasks_per_request if tasks else 0.0
                duration = profile.task_duration_ms if tasks else profile.mean_duration_ms
                peak = max(1, math.ceil(invocations / SECONDS_PER_MONTH * duration / 1000))
            self.invocations[function.logical_id] = invocations
            self.lines += plan(function, profile, invocations, duration, peak).lines

    def apis(self) -> None:
        increments = max(1, math.ceil(self.profile.payload_kb / 512))
        for api in self.stack.of_type("AWS::ApiGatewayV2::Api"):
            self.add("API Gateway", f"HTTP API {short_name(api)}: requests (× {increments} per 512 KB)",
                     self.requests * increments, "apigw.http.request")
        for api in self.stack.of_type("AWS::ApiGateway::RestApi"):
            self.add("API Gateway", f"REST API {short_name(api)}: requests", self.requests, "apigw.rest.request")
        if self.stack.entry_points:
            self.add("Data transfer", "responses out to the internet (GB)",
                     self.requests * self.profile.payload_kb / 1024 / 1024, "transfer.out.gb")

    def firewall(self) -> None:
        for acl, props in self.stack.of_type("AWS::WAFv2::WebACL").items():
            self.add("WAF", f"{short_name(acl)}: web ACL", 1, "waf.web_acl.month")
            self.add("WAF", f"{short_name(acl)}: rules", len(props.get("Rules", [])), "waf.rule.month")
            self.add("WAF", f"{short_name(acl)}: requests inspected", self.requests, "waf.request")

    def cache(self) -> None:
        profile, commands = self.profile, self.requests * self.profile.cache_commands_per_request
        for cache, props in self.stack.of_type("AWS::ElastiCache::ServerlessCache").items():
            engine = "valkey" if props.get("Engine") == "valkey" else "redis"
            minimum = 0.1 if engine == "valkey" else 1.0
            self.add("ElastiCache", f"{short_name(cache)}: data stored (GB-h, min {minimum:g} GB)",
                     max(profile.cache_data_gb, minimum) * HOURS_PER_MONTH, f"cache.serverless.{engine}.gb_hour")
            self.add("ElastiCache", f"{short_name(cache)}: ECPUs (1 per KB per command)",
                     commands * max(1.0, profile.payload_kb), f"cache.serverless.{engine}.ecpu")
        for kind, count_key in (("AWS::ElastiCache::ReplicationGroup", "NumCacheClusters"),
                                ("AWS::ElastiCache::CacheCluster", "NumCacheNodes")):
            for cache, props in self.stack.of_type(kind).items():
                nodes = props.get(count_key) or props.get("NumNodeGroups", 1) * (props.get("ReplicasPerNodeGroup", 0) + 1)
                node_type = props.get("CacheNodeType", "")
                key = f"cache.node.{node_type}"
                if key not in PRICES:
                    raise ValueError(f"{self.stack.name}: no price for ElastiCache node type {node_type!r}; "
                                     f"add PRICES[{key!r}] (us-east-1, per node-hour) in cdk_app/cost.py")
                discount = price("cache.node.valkey_discount") if props.get("Engine") == "valkey" else 0.0
                self.add("ElastiCache", f"{short_name(cache)}: {nodes} × {node_type} ({props.get('Engine', 'redis')})",
                         nodes * HOURS_PER_MONTH, key, factor=1 - discount)

    def network(self) -> None:
        nat = self.stack.of_type("AWS::EC2::NatGateway")
        self.add("VPC", f"NAT gateways ({len(nat)})", len(nat) * HOURS_PER_MONTH, "nat.hour")
        if nat:
            self.add("VPC", "NAT data processed (GB)", self.profile.nat_gb_per_month, "nat.gb")
        interface = [props for props in self.stack.of_type("AWS::EC2::VPCEndpoint").values()
                     if props.get("VpcEndpointType") == "Interface"]
        azs = sum(max(1, len(listed(props.get("SubnetIds")))) for props in interface)
        self.add("VPC", f"interface endpoints ({len(interface)} × their AZs)", azs * HOURS_PER_MONTH,
                 "endpoint.interface.hour")
        if interface:
            self.add("VPC", "endpoint data processed (GB)", self.profile.endpoint_gb_per_month, "endpoint.interface.gb")
        if self.stack.of_type("AWS::EC2::FlowLog"):
            self.add("CloudWatch", "VPC flow logs ingested (GB)", self.profile.flow_log_gb_per_month, "logs.ingest.gb")

    def queues(self) -> None:
        queues = self.stack.of_type("AWS::SQS::Queue")
        if not queues:
            return
        chunks = max(1, math.ceil(self.profile.payload_kb / 64))
        tasks = self.requests * self.profile.tasks_per_request
        # Each task: a send, a receive and a delete; each event source's pollers long-poll (20 s) all month.
        polls = sum(1 for _ in self.stack.event_sources()) * self.profile.sqs_pollers * SECONDS_PER_MONTH / 20
        self.add("SQS", f"requests: {tasks:,.0f} tasks × 3 × {chunks} chunk(s) + long polls", tasks * 3 * chunks + polls,
                 "sqs.request")

    def tables(self) -> None:
        tables = {**self.stack.of_type("AWS::DynamoDB::Table"), **self.stack.of_type("AWS::DynamoDB::GlobalTable")}
        if not tables:
            return
        profile = self.profile
        self.add("DynamoDB", "write request units", self.requests * profile.dynamodb_writes_per_request, "dynamodb.write")
        self.add("DynamoDB", "read request units", self.requests * profile.dynamodb_reads_per_request, "dynamodb.read")
        self.add("DynamoDB", "storage (GB-month)", profile.dynamodb_storage_gb, "dynamodb.storage.gb_month")
        for table, props in tables.items():
            if props.get("BillingMode", "PROVISIONED") != "PAY_PER_REQUEST":
                self.notes.append(f"{table}: provisioned capacity is not priced (on-demand request units are)")
            if any(r.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled")
                   for r in [props, *props.get("Replicas", [])]):
                self.add("DynamoDB", f"{short_name(table)}: point-in-time recovery (GB-month)", profile.dynamodb_storage_gb,
                         "dynamodb.pitr.gb_month")

    def buckets(self) -> None:
        if not self.stack.of_type("AWS::S3::Bucket"):
            return
        self.add("S3", "PUT requests", self.requests * self.profile.s3_puts_per_request, "s3.put")
        self.add("S3", "GET requests", self.requests * self.profile.s3_gets_per_request, "s3.get")
        self.add("S3", "storage (GB-month)", self.profile.s3_storage_gb, "s3.storage.gb_month")

    def identity(self) -> None:
        for pool, props in self.stack.of_type("AWS::Cognito::UserPool").items():
            tier = str(props.get("UserPoolTier", "ESSENTIALS")).lower()
            self.add("Cognito", f"{short_name(pool)}: monthly active users ({tier})", self.profile.monthly_active_users,
                     f"cognito.mau.{tier}")
            machines = [c for c in self.stack.of_type("AWS::Cognito::UserPoolClient").values()
                        if pool in references(c.get("UserPoolId")) and "client_credentials" in c.get(
                            "AllowedOAuthFlows", [])]
            if machines:
                self.add("Cognito", f"{short_name(pool)}: machine app clients", len(machines), "cognito.m2m.client.month")
                self.add("Cognito", f"{short_name(pool)}: machine token requests", self.profile.m2m_token_requests_per_month,
                         "cognito.m2m.token")

    def tracing(self) -> None:
        requests = sum(self.invocations[f.logical_id] for f in self.stack.functions.values() if f.tracing)
        reservoir = min(requests, self.profile.xray_reservoir_per_second * SECONDS_PER_MONTH)
        self.add("X-Ray", "traces recorded (reservoir + sampled share)",
                 reservoir + self.profile.xray_sampled_fraction * (requests - reservoir), "xray.trace")

    def monitoring(self) -> None:
        profile, stack = self.profile, self.stack
        invocations = sum(self.invocations.values())
        access_logs = len([s for s in [*stack.of_type("AWS::ApiGatewayV2::Stage").values(),
                                       *stack.of_type("AWS::ApiGateway::Stage").values()]
                           if "AccessLogSettings" in s or "AccessLogSetting" in s])
        ingested = (invocations * profile.log_bytes_per_invocation
                    + access_logs * self.requests * profile.access_log_bytes_per_request) / 1024 ** 3
        self.add("CloudWatch", "logs ingested (GB)", ingested, "logs.ingest.gb")
        retention = [props.get("RetentionInDays") for props in stack.of_type("AWS::Logs::LogGroup").values()]
        months = max([min(days or 365, 365) / 30 for days in retention] or [1])
        self.add("CloudWatch", f"logs stored, steady state ({months:.1f} months kept, compressed)",
                 ingested * months * profile.log_compression, "logs.storage.gb_month")
        alarm_metrics, custom = 0, set[str]()
        for props in stack.of_type("AWS::CloudWatch::Alarm").values():
            metrics = [m["MetricStat"]["Metric"] for m in props.get("Metrics", []) if "MetricStat" in m]
            metrics = metrics or [props]
            alarm_metrics += len(metrics)
            custom |= {json.dumps([m.get("Namespace"), m.get("MetricName"), m.get("Dimensions")], sort_keys=True,
                                  default=str) for m in metrics if not str(m.get("Namespace", "AWS/")).startswith("AWS/")}
        self.add("CloudWatch", "alarm metrics", alarm_metrics, "alarm.metric.month")
        self.add("CloudWatch", "dashboards", len(stack.of_type("AWS::CloudWatch::Dashboard")), "dashboard.month")
        self.add("CloudWatch", "custom metrics the alarms watch", len(custom), "metric.month")

    def secrets(self) -> None:
        self.add("Secrets Manager", "secrets", len(self.stack.of_type("AWS::SecretsManager::Secret")), "secret.month")
        advanced = [p for p in self.stack.of_type("AWS::SSM::Parameter").values() if p.get("Tier") == "Advanced"]
        self.add("Systems Manager", "advanced parameters", len(advanced), "ssm.advanced.month")
        self.add("KMS", "customer managed keys", len(self.stack.of_type("AWS::KMS::Key")), "kms.key.month")


# --- the cold-start comparison --------------------------------------------------------------------

def compare(stack: StackTemplate, profile: Profile) -> dict[str, Plan]:
    """Each strategy's plan for the stack's API functions, for the same traffic (summed over functions)."""
    apis = sorted({f for functions in stack.entry_points.values() for f in functions})
    plans: dict[str, Plan] = {}
    for strategy in STRATEGIES:
        parts = [plan(stack.functions[f], profile, profile.requests_per_month / len(apis), profile.mean_duration_ms,
                      profile.peak_concurrency, strategy) for f in apis]
        plans[strategy] = Plan(strategy, [line for part in parts for line in part.lines],
                               sum(part.user_cold_starts for part in parts),
                               max((part.cold_start_ms for part in parts), default=0.0))
    return plans


def plot(stacks: dict[str, StackTemplate], profile: Profile, path: Path) -> Path:
    """One row per stack: the strategies' cost at the profile's traffic, and their cost as traffic grows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [name for name, stack in stacks.items() if stack.entry_points and stack.functions]
    figure, axes = plt.subplots(len(names), 2, figsize=(12, 3.6 * len(names)), squeeze=False)
    volumes = [10 ** (4 + i / 4) for i in range(21)]  # 10 thousand … 1 billion requests a month
    for row, name in zip(axes, names, strict=True):
        plans = compare(stacks[name], profile)
        costs = [plans[s].usd for s in STRATEGIES]
        bars = row[0].bar(STRATEGIES, costs, color=["#9e9e9e", "#f9a825", "#1565c0", "#2e7d32"])
        for bar, strategy in zip(bars, STRATEGIES, strict=True):
            row[0].annotate(f"${plans[strategy].usd:,.2f}\n{plans[strategy].user_cold_starts:,.0f} cold",
                            (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        row[0].set_title(f"{name}: API function(s) at {profile.requests_per_month:,.0f} requests/month", fontsize=9)
        row[0].set_ylabel("USD / month")
        row[0].margins(y=0.25)
        grown = [compare(stacks[name], replace(profile, requests_per_month=volume)) for volume in volumes]
        for strategy in STRATEGIES:
            row[1].plot(volumes, [plans[strategy].usd for plans in grown], label=strategy)
        row[1].set_xscale("log")
        row[1].set_yscale("log")
        row[1].axvline(profile.requests_per_month, color="black", linewidth=0.6, linestyle=":")
        row[1].set_xlabel("requests / month")
        row[1].set_title("the same strategies as traffic grows", fontsize=9)
        row[1].legend(fontsize=8)
    suptitle = cast("Callable[..., object]", figure.suptitle)  # matplotlib's stub leaves **kwargs untyped
    suptitle(f"Cold-start strategies, Lambda cost ({REGION} list prices; "
                    f"{profile.mean_duration_ms:g} ms mean, peak concurrency {profile.peak_concurrency})", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    savefig = cast("Callable[..., None]", figure.savefig)  # as suptitle
    savefig(path, dpi=90, metadata={"Software": None})
    plt.close(figure)
    return path


# --- output ---------------------------------------------------------------------------------------

def money(usd: float) -> str:
    return f"${usd:,.2f}"


def bill_table(estimate: Estimate) -> str:
    rows = ["| service | item | quantity | unit price | USD / month |", "|---|---|---:|---:|---:|"]
    for line in sorted(estimate.lines, key=lambda line: (line.service, line.item)):
        unit = PRICES[line.price]
        factor = f" × {line.factor:g}" if line.factor != 1 else ""
        rows.append(f"| {line.service} | {line.item} | {line.quantity:,.2f} | ${unit.usd:.10g} / {unit.unit}{factor} "
                    f"| {money(line.usd)} |")
    rows.append(f"| **total** | | | | **{money(estimate.usd)}** |")
    return "\n".join(rows)


def service_totals(estimate: Estimate) -> dict[str, float]:
    totals: dict[str, float] = {}
    for line in estimate.lines:
        totals[line.service] = totals.get(line.service, 0.0) + line.usd
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def summary_table(estimates: dict[str, Estimate]) -> str:
    services = sorted({s for e in estimates.values() for s in service_totals(e)},
                      key=lambda s: -max(service_totals(e).get(s, 0) for e in estimates.values()))
    rows = ["| service | " + " | ".join(estimates) + " |", "|---|" + "---:|" * len(estimates)]
    for service in services:
        rows.append(f"| {service} | " + " | ".join(money(service_totals(e).get(service, 0.0))
                                                 for e in estimates.values()) + " |")
    rows.append("| **total** | " + " | ".join(f"**{money(e.usd)}**" for e in estimates.values()) + " |")
    return "\n".join(rows)


def comparison_table(stacks: dict[str, StackTemplate], profile: Profile) -> str:
    rows = ["| stack | strategy | Lambda USD / month | cold starts users wait for / month | each (ms) |",
            "|---|---|---:|---:|---:|"]
    for name, stack in stacks.items():
        if not stack.entry_points or not stack.functions:
            continue
        current = {stack.functions[f].cold_start for functions in stack.entry_points.values() for f in functions}
        for strategy, result in compare(stack, profile).items():
            mark = " (deployed)" if strategy in current else ""
            rows.append(f"| {name} | {strategy}{mark} | {money(result.usd)} | {result.user_cold_starts:,.0f} | "
                        f"{result.cold_start_ms:,.0f} |")
    return "\n".join(rows)


def headline(profile: Profile) -> str:
    return (f"{REGION} list prices (no free tiers; see cdk_app/cost.py), for {profile.requests_per_month:,.0f} "
            f"requests/month of {profile.mean_duration_ms:g} ms, peak concurrency {profile.peak_concurrency}, "
            f"{profile.payload_kb:g} KB responses, {profile.monthly_active_users:,.0f} monthly active users.")


def blocks(templates: dict[str, dict[str, Any]], profile: Profile) -> dict[str, str]:
    """``cost`` → README's block: the monthly total per service and environment, and the strategies compared."""
    stacks = {name: StackTemplate(name, template) for name, template in templates.items()}
    estimates = {name: Estimate(stack, profile) for name, stack in stacks.items()}
    return {"cost": "\n".join([headline(profile), "", summary_table(estimates), "",
                                "Cold-start strategies for the same traffic (the API functions):", "",
                                comparison_table(stacks, profile)])}


def report(templates: dict[str, dict[str, Any]], profile: Profile) -> str:
    """Everything: the summary, the comparison and each environment's bill line by line, with unit prices."""
    stacks = {name: StackTemplate(name, template) for name, template in templates.items()}
    parts = ["# Monthly cost per environment (make cost)", "", blocks(templates, profile)["cost"]]
    for name, stack in stacks.items():
        estimate = Estimate(stack, profile)
        parts += ["", f"## {name}", "", bill_table(estimate)]
        parts += [f"- note: {note}" for note in estimate.notes]
    sources = sorted({(p.source, p.as_of) for p in PRICES.values()})
    parts += ["", "## Price sources", "", "Compiled from these pages on the dates shown, not fetched when this ran: "
              "check them before relying on a figure.", ""]
    parts += [f"- {source} (compiled {as_of})" for source, as_of in sources]
    return "\n".join(parts) + "\n"


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise ValueError(f"--set {pair!r}: expected key=value, e.g. --set requests_per_month=2e7")
        overrides[key.strip()] = value.strip()
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("cdk_out", type=Path, help="a synthesized cloud assembly (cdk.out)")
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE, help="traffic profile (JSON)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile key")
    parser.add_argument("--plot", type=Path, help="write the cold-start comparison as a PNG here")
    parser.add_argument("--report", type=Path, help="write the full report (Markdown) here, not to stdout")
    parser.add_argument("--update", nargs="*", type=Path, default=[], metavar="FILE",
                        help="rewrite the <!-- cost --> block of these files")
    args = parser.parse_args(argv)
    try:
        profile = Profile.load(args.profile, parse_overrides(args.set))
        templates = load_templates(args.cdk_out)
        text = report(templates, profile)
    except (ValueError, FileNotFoundError) as error:
        print(f"cost: {error}", file=sys.stderr)
        return 2
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
        print(f"{args.report}: written")
    else:
        print(text)
    if args.plot:
        print(f"{plot({n: StackTemplate(n, t) for n, t in templates.items()}, profile, args.plot)}: written")
    for path in args.update:
        path.write_text(markdown.update(path.read_text(), blocks(templates, profile)))
        print(f"{path}: cost block updated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
