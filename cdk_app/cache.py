"""The cache: ElastiCache (serverless Valkey, or a node-based Valkey replication group) in the service's network.

:class:`ValkeyCache` creates ``kind="serverless"`` (ElastiCache Serverless, Valkey engine:
TLS always, usage limits on data storage and ECPUs, optional daily snapshots) or
``kind="node-based"`` (a replication group: node type, replicas, multi-AZ with automatic
failover, TLS required, encryption at rest, and an AUTH token generated in Secrets
Manager and handed to CloudFormation as a dynamic reference, never as text). Its
security group admits only what :meth:`ValkeyCache.grant_connect` names, on its port.

A function in the network uses it with :meth:`ValkeyCache.grant_connect` (the security group
rule and read access to the token's secret) and :meth:`ValkeyCache.configure` (the variables
``fastapi_lambda.cache`` reads: the endpoint, the mode, the secret's ARN, the time budget).
The app side (its ``Cache``) never fails a request because of the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Unpack

from aws_cdk import Duration, Names, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticache as elasticache
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct
from fastapi_lambda.constants import (
    CACHE_COMMAND_TIMEOUT_VARIABLE,
    CACHE_CONNECT_TIMEOUT_VARIABLE,
    CACHE_ERRORS_METRIC,
    CACHE_HOST_VARIABLE,
    CACHE_MODE_VARIABLE,
    CACHE_PORT_VARIABLE,
    CACHE_SECRET_VARIABLE,
    METRICS_NAMESPACE,
)

from cdk_app.cdk_values import MetricOptions, removal_policy
from cdk_app.findings import SECRET_KEY, acknowledge, skip_checkov
from cdk_app.function import ServiceFunction
from cdk_app.network import Network
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import CACHE_MODES, CacheKind
from cdk_app.settings.rules import check_cache

_CACHE = DEFAULTS.cache
ENGINE = "valkey"
#: A security group's description cannot change without replacing the group (and with it the cache's network
#: placement): it keeps the word each kind was deployed with, before node-based caches were renamed from "cluster".
_DEPLOYED_KIND_WORDS = {"serverless": "serverless", "node-based": "cluster"}
SERVERLESS_ENGINE_VERSION = "8"
CLUSTER_ENGINE_VERSION = "8.0"


class ValkeyCache(Construct):
    """An ElastiCache cache (Valkey) that only the functions it was granted to can reach, over TLS.

    Exposes :attr:`endpoint_address`, :attr:`endpoint_port`, :attr:`connections`,
    :attr:`secret` (node-based: the AUTH token), :attr:`security_group`, :attr:`mode` (the protocol
    the app speaks to it) and :attr:`errors_alarm` (the app falling back to the source; without an
    action until :meth:`cdk_app.observability.Observability.watch` adds one).

    :param kind: ``"serverless"`` (ElastiCache Serverless) or ``"node-based"`` (a replication group).
        @default ``"serverless"``
    :param network: the :class:`cdk_app.network.Network` to join; not with ``vpc``.
        @default a new ``Network`` when ``vpc`` is not given either
    :param vpc: your VPC instead of a ``Network``. @default none
    :param subnets: the subnets of ``vpc`` for the cache (one per zone; node-based multi-AZ needs two or more).
        @default the network's ``Cache`` subnets; with ``vpc=``, its isolated subnets
    :param max_data_storage_gb: (serverless) the data storage limit in GB, from 1 to 5000.
        @default ``DEFAULTS.cache.max_data_storage_gb``
    :param max_ecpu_per_second: (serverless) the ECPU per second limit, from 1000 to 15000000.
        @default ``DEFAULTS.cache.max_ecpu_per_second``
    :param node_type: (node-based) the node type, e.g. ``cache.t4g.small``. @default ``DEFAULTS.cache.node_type``
    :param replicas: (node-based) read replicas besides the primary, from 0 to 5 (automatic failover with one or
        more). @default ``DEFAULTS.cache.replicas``
    :param multi_az: (node-based) replicas in other zones (needs ``replicas`` >= 1 and two zones).
        @default ``DEFAULTS.cache.multi_az``
    :param port: (node-based) the port, from 1024 to 65535 (serverless always listens on 6379).
        @default ``DEFAULTS.cache.port``
    :param snapshot_retention_days: daily snapshots kept, from 0 (none) to 35.
        @default ``DEFAULTS.cache.snapshot_retention_days``
    :param snapshot_time: when the daily snapshot starts, in UTC (maintenance follows two hours later); like
        ``"03:00"``.
        @default ``DEFAULTS.cache.snapshot_time``
    :param connect_timeout: the app's budget to connect, from 1 to 5000 ms.
        @default ``DEFAULTS.cache.connect_timeout_ms``
    :param command_timeout: the app's budget for one command, from 1 to 5000 ms.
        @default ``DEFAULTS.cache.command_timeout_ms``
    :param removal_policy: of the cache, its network and its token's secret. @default ``DEFAULTS.removal_policy``

    Example::

        from cdk_app.cache import ValkeyCache
        from cdk_app.function import FastApiFunction
        from cdk_app.network import Network

        network = Network(stack, "Network")
        cache = ValkeyCache(stack, "Cache", network=network)
        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.main:create_app",
                              **network.placement())
        cache.grant_connect(api)  # its port (and, node-based, the AUTH token's secret)
        cache.configure(api)  # where fastapi_lambda.cache finds it
        network.add_endpoints_for(api)  # after the grants: the endpoints its role needs
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        kind: CacheKind = "serverless",
        network: Network | None = None,
        vpc: ec2.IVpc | None = None,
        subnets: ec2.SubnetSelection | None = None,
        max_data_storage_gb: int = _CACHE.max_data_storage_gb,
        max_ecpu_per_second: int = _CACHE.max_ecpu_per_second,
        node_type: str = _CACHE.node_type,
        replicas: int = _CACHE.replicas,
        multi_az: bool = _CACHE.multi_az,
        port: int = _CACHE.port,
        snapshot_retention_days: int = _CACHE.snapshot_retention_days,
        snapshot_time: str = _CACHE.snapshot_time,
        connect_timeout: Duration = Duration.millis(_CACHE.connect_timeout_ms),
        command_timeout: Duration = Duration.millis(_CACHE.command_timeout_ms),
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
    ) -> None:
        super().__init__(scope, id)
        if kind not in CACHE_MODES:
            raise ValueError(f"kind={kind!r} must be one of {', '.join(map(repr, CACHE_MODES))} (no cache: do not "
                             "create one)")
        if network is not None and vpc is not None:
            raise ValueError("network and vpc are both set; pass the Network, or your VPC with its subnets")
        if vpc is None:
            network = network or Network(self, "Network", removal_policy=removal_policy)
            vpc, subnets = network.vpc, subnets or network.cache_subnets
        subnet_ids = _select(vpc, subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
        check_cache(kind, replicas=replicas, multi_az=multi_az, zones=len(subnet_ids), port=port)
        self.kind, self.network, self.vpc = kind, network, vpc
        #: The protocol the app speaks to it (CACHE_MODE): ElastiCache Serverless speaks the cluster protocol.
        self.mode = CACHE_MODES[kind]
        self.timeouts = {CACHE_CONNECT_TIMEOUT_VARIABLE: str(int(connect_timeout.to_milliseconds())),
                         CACHE_COMMAND_TIMEOUT_VARIABLE: str(int(command_timeout.to_milliseconds()))}
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description=f"ElastiCache ({_DEPLOYED_KIND_WORDS[kind]}): only the functions granted access, on port {port}")
        self.connections = ec2.Connections(security_groups=[self.security_group], default_port=ec2.Port.tcp(port))
        snapshots = snapshot_retention_days or None  # 0: no snapshots, so the property is left out
        self.secret: secretsmanager.Secret | None = None
        self.resource: elasticache.CfnServerlessCache | elasticache.CfnReplicationGroup
        if kind == "serverless":
            self.resource = serverless = elasticache.CfnServerlessCache(
                self, "Serverless", engine=ENGINE, major_engine_version=SERVERLESS_ENGINE_VERSION,
                serverless_cache_name=Names.unique_resource_name(self, max_length=40, separator="-").lower(),
                description=f"{self.node.path} (Valkey, serverless)",
                subnet_ids=subnet_ids, security_group_ids=[self.security_group.security_group_id],
                cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                    data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                        maximum=max_data_storage_gb, unit="GB"),
                    ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(maximum=max_ecpu_per_second)),
                daily_snapshot_time=snapshot_time if snapshot_retention_days else None,
                snapshot_retention_limit=snapshots,
            )
            self.endpoint_address: str = serverless.attr_endpoint_address
            self.endpoint_port: str = serverless.attr_endpoint_port
        else:
            self.secret = secretsmanager.Secret(
                self, "AuthToken", description=f"AUTH token of {self.node.path} (Valkey replication group)",
                # ElastiCache accepts 16-128 printable characters without @, " or /: letters and digits only.
                generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True,
                                                                            password_length=64),
                removal_policy=removal_policy,
            )
            skip_checkov(self.secret, "CKV_AWS_149", SECRET_KEY)
            acknowledge(
                self.secret.node.default_child, "SMG4",
                "Rotating an ElastiCache AUTH token takes a rotation function that calls ModifyReplicationGroup "
                "(strategy ROTATE, then SET), which is not shipped yet. The token reaches CloudFormation only as a "
                "dynamic reference, only the functions granted the cache may read it, and the app reads the secret "
                "again after an authentication failure, so a ROTATE-then-SET rotation is picked up without a deploy.",
            )
            subnet_group = elasticache.CfnSubnetGroup(
                self, "Subnets", description=f"Subnets of {self.node.path}", subnet_ids=subnet_ids)
            self.resource = group = elasticache.CfnReplicationGroup(
                self, "ReplicationGroup", replication_group_description=f"{self.node.path} (Valkey)",
                engine=ENGINE, engine_version=CLUSTER_ENGINE_VERSION, cache_node_type=node_type,
                num_cache_clusters=1 + replicas, automatic_failover_enabled=replicas > 0, multi_az_enabled=multi_az,
                port=port, cache_subnet_group_name=subnet_group.ref,
                security_group_ids=[self.security_group.security_group_id],
                transit_encryption_enabled=True, transit_encryption_mode="required", at_rest_encryption_enabled=True,
                # A {{resolve:secretsmanager:...}} dynamic reference: CloudFormation reads the token at deploy time.
                auth_token=self.secret.secret_value.unsafe_unwrap(),
                auto_minor_version_upgrade=True,
                snapshot_window=_window(snapshot_time, 0) if snapshot_retention_days else None,
                snapshot_retention_limit=snapshots,
                preferred_maintenance_window=f"sun:{_window(snapshot_time, 2).replace('-', '-sun:')}",
            )
            if not multi_az:
                acknowledge(
                    self.resource, "AEC4",
                    "This environment's settings run the cache in one zone (cache.multi_az=false, default true): it "
                    "holds copies of data whose source stays available, and the app answers from the source while "
                    "the cache is down.",
                )
            self.endpoint_address = group.attr_primary_end_point_address
            self.endpoint_port = group.attr_primary_end_point_port
        self.resource.apply_removal_policy(removal_policy)
        # The app answers from the source when the cache fails, so its errors are only seen here.
        self.errors_alarm = cloudwatch.Alarm(
            self, "ErrorsAlarm", metric=self.metric_errors(period=Duration.minutes(5)),
            threshold=10, evaluation_periods=3, datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The app keeps falling back to the source: the cache is failing or unreachable.")

    def environment(self) -> Mapping[str, str]:
        """The variables ``fastapi_lambda.cache`` reads: where the cache is and how to authenticate (no token)."""
        variables = {CACHE_HOST_VARIABLE: self.endpoint_address, CACHE_PORT_VARIABLE: self.endpoint_port,
                     CACHE_MODE_VARIABLE: self.mode, **self.timeouts}
        if self.secret is not None:
            variables[CACHE_SECRET_VARIABLE] = self.secret.secret_arn
        return variables

    def grant_connect(self, function: ServiceFunction) -> iam.Grant:
        """Let ``function`` (in this cache's VPC) reach the cache: its port, and the token's secret when it has one
        (the grant of a serverless cache holds no IAM statement: it is reached by network and TLS)."""
        if not function.function.is_bound_to_vpc:
            raise ValueError(f"{function.node.path} is not in a VPC, so it cannot reach the cache; create it with "
                             "vpc= (e.g. **network.placement())")
        self.connections.allow_default_port_from(function, "the functions granted access")
        if self.secret is None:
            return iam.Grant.drop(function, f"connect to {self.node.path} (network and TLS only)")
        return self.grant_read(function)

    def configure(self, function: ServiceFunction) -> ServiceFunction:
        """Give ``function`` the variables ``fastapi_lambda.cache`` reads (:meth:`environment`)."""
        return function.add_environment_variables(self.environment())

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to read the AUTH token (node-based only: a serverless cache is reached by network and
        TLS)."""
        if self.secret is None:
            raise ValueError(f"{self.node.path} is serverless and has no AUTH token secret; grant_connect gives access")
        return self.secret.grant_read(grantee)

    def metric_errors(self, **props: Unpack[MetricOptions]) -> cloudwatch.Metric:
        """Cache calls that failed in the app (each answered from the source), summed per minute unless ``props``
        say otherwise."""
        options: MetricOptions = {"dimensions_map": {"Cache": self.endpoint_address}, "period": Duration.minutes(1),
                                  "statistic": "Sum", **props}
        return cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=CACHE_ERRORS_METRIC, **options)


def _select(vpc: ec2.IVpc, subnets: ec2.SubnetSelection) -> list[str]:
    """The ids of the subnets ``subnets`` selects in ``vpc``."""
    return vpc.select_subnets(
        availability_zones=subnets.availability_zones, one_per_az=subnets.one_per_az,
        subnet_filters=subnets.subnet_filters, subnet_group_name=subnets.subnet_group_name,
        subnet_type=subnets.subnet_type, subnets=subnets.subnets).subnet_ids


def _window(start: str, later_hours: int) -> str:
    """A one-hour ``HH:MM-HH:MM`` window starting ``later_hours`` after ``start`` (maintenance never overlaps
    the snapshot)."""
    hours, minutes = map(int, start.split(":"))
    return f"{(hours + later_hours) % 24:02d}:{minutes:02d}-{(hours + later_hours + 1) % 24:02d}:{minutes:02d}"
