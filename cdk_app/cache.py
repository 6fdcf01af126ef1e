"""The cache: ElastiCache (serverless Valkey, or a Valkey replication group) in the service's network.

:class:`Cache` creates ``kind="serverless"`` (ElastiCache Serverless, Valkey engine:
TLS always, usage limits on data storage and ECPUs, optional daily snapshots) or
``kind="cluster"`` (a replication group: node type, replicas, multi-AZ with automatic
failover, TLS required, encryption at rest, and an AUTH token generated in Secrets
Manager and handed to CloudFormation as a dynamic reference, never as text). Its
security group admits only what :meth:`Cache.grant_connect` names, on its port.

:meth:`Cache.grant_connect` lets a function in the network use it: the security group
rule, read access to the token's secret, and the variables ``fastapi_lambda.cache``
reads (the endpoint, the secret's ARN, the time budget). The app side never fails a
request because of the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

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
    DEFAULT_CACHE_COMMAND_TIMEOUT_MS,
    DEFAULT_CACHE_CONNECT_TIMEOUT_MS,
    METRICS_NAMESPACE,
)

from cdk_app import compliance
from cdk_app.function import ServiceFunction
from cdk_app.network import Network
from cdk_app.rules import SERVERLESS_PORT, check_cache

CacheKind = Literal["serverless", "cluster"]
ENGINE = "valkey"
SERVERLESS_ENGINE_VERSION = "8"
CLUSTER_ENGINE_VERSION = "8.0"


class Cache(Construct):
    """An ElastiCache cache (Valkey) that only the functions it was granted to can reach, over TLS.

    Network: ``network`` (a :class:`Network`; one is created when neither it nor ``vpc``
    is given) or ``vpc`` with ``subnets`` (isolated ones by default). ``kind`` picks
    serverless (``max_data_storage_gb``, ``max_ecpu_per_second``) or a replication group
    (``node_type``, ``replicas``, ``multi_az``, ``port``). ``snapshot_retention_days`` > 0
    takes a daily snapshot at ``snapshot_time`` (UTC, ``HH:MM``) and keeps that many.
    ``connect_timeout``/``command_timeout`` are the app's time budget for one cache call.

    Exposes :attr:`endpoint_address`, :attr:`endpoint_port`, :attr:`connections`,
    :attr:`secret` (cluster: the AUTH token) and :attr:`security_group`.
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
        max_data_storage_gb: int = 10,
        max_ecpu_per_second: int = 5000,
        node_type: str = "cache.t4g.small",
        replicas: int = 1,
        multi_az: bool = True,
        port: int = SERVERLESS_PORT,
        snapshot_retention_days: int = 0,
        snapshot_time: str = "03:00",
        connect_timeout: Duration = Duration.millis(DEFAULT_CACHE_CONNECT_TIMEOUT_MS),
        command_timeout: Duration = Duration.millis(DEFAULT_CACHE_COMMAND_TIMEOUT_MS),
        removal_policy: RemovalPolicy = RemovalPolicy.RETAIN,
    ) -> None:
        super().__init__(scope, id)
        if kind not in ("serverless", "cluster"):
            raise ValueError(f"kind={kind!r} must be 'serverless' or 'cluster' (no cache: do not create one)")
        if network is not None and vpc is not None:
            raise ValueError("network and vpc are both set; pass the Network, or your VPC with its subnets")
        if vpc is None:
            network = network or Network(self, "Network", removal_policy=removal_policy)
            vpc, subnets = network.vpc, subnets or network.cache_subnets
        subnet_ids = vpc.select_subnets(**_selection(subnets or ec2.SubnetSelection(
            subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))).subnet_ids
        check_cache(kind, replicas=replicas, multi_az=multi_az, zones=len(subnet_ids), port=port)
        self.kind, self.network, self.vpc = kind, network, vpc
        self.timeouts = {CACHE_CONNECT_TIMEOUT_VARIABLE: str(int(connect_timeout.to_milliseconds())),
                         CACHE_COMMAND_TIMEOUT_VARIABLE: str(int(command_timeout.to_milliseconds()))}
        self.security_group = ec2.SecurityGroup(
            self, "SecurityGroup", vpc=vpc, allow_all_outbound=False,
            description=f"ElastiCache ({kind}): only the functions granted access, on port {port}")
        self.connections = ec2.Connections(security_groups=[self.security_group], default_port=ec2.Port.tcp(port))
        snapshots = {"snapshot_retention_limit": snapshot_retention_days} if snapshot_retention_days else {}
        self.secret: secretsmanager.Secret | None = None
        if kind == "serverless":
            self.resource: Any = elasticache.CfnServerlessCache(
                self, "Serverless", engine=ENGINE, major_engine_version=SERVERLESS_ENGINE_VERSION,
                serverless_cache_name=Names.unique_resource_name(self, max_length=40, separator="-").lower(),
                description=f"{self.node.path} (Valkey, serverless)",
                subnet_ids=subnet_ids, security_group_ids=[self.security_group.security_group_id],
                cache_usage_limits=elasticache.CfnServerlessCache.CacheUsageLimitsProperty(
                    data_storage=elasticache.CfnServerlessCache.DataStorageProperty(
                        maximum=max_data_storage_gb, unit="GB"),
                    ecpu_per_second=elasticache.CfnServerlessCache.ECPUPerSecondProperty(maximum=max_ecpu_per_second)),
                daily_snapshot_time=snapshot_time if snapshot_retention_days else None, **snapshots,
            )
            self.endpoint_address: str = self.resource.attr_endpoint_address
            self.endpoint_port: str = self.resource.attr_endpoint_port
        else:
            self.secret = secretsmanager.Secret(
                self, "AuthToken", description=f"AUTH token of {self.node.path} (Valkey replication group)",
                # ElastiCache accepts 16-128 printable characters without @, " or /: letters and digits only.
                generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True,
                                                                            password_length=64),
                removal_policy=removal_policy,
            )
            subnet_group = elasticache.CfnSubnetGroup(
                self, "Subnets", description=f"Subnets of {self.node.path}", subnet_ids=subnet_ids)
            self.resource = elasticache.CfnReplicationGroup(
                self, "ReplicationGroup", replication_group_description=f"{self.node.path} (Valkey)",
                engine=ENGINE, engine_version=CLUSTER_ENGINE_VERSION, cache_node_type=node_type,
                num_cache_clusters=1 + replicas, automatic_failover_enabled=replicas > 0, multi_az_enabled=multi_az,
                port=port, cache_subnet_group_name=subnet_group.ref,
                security_group_ids=[self.security_group.security_group_id],
                transit_encryption_enabled=True, transit_encryption_mode="required", at_rest_encryption_enabled=True,
                # A {{resolve:secretsmanager:...}} dynamic reference: CloudFormation reads the token at deploy time.
                auth_token=self.secret.secret_value.unsafe_unwrap(),
                auto_minor_version_upgrade=True,
                snapshot_window=_window(snapshot_time, 0) if snapshot_retention_days else None, **snapshots,
                preferred_maintenance_window=f"sun:{_window(snapshot_time, 2).replace('-', '-sun:')}",
            )
            self.endpoint_address = self.resource.attr_primary_end_point_address
            self.endpoint_port = self.resource.attr_primary_end_point_port
        self.resource.apply_removal_policy(removal_policy)
        # The app answers from the source when the cache fails, so its errors are only seen here.
        self.errors_alarm = cloudwatch.Alarm(
            self, "ErrorsAlarm", metric=self.metric_errors(period=Duration.minutes(5)),
            threshold=10, evaluation_periods=3, datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="The app keeps falling back to the source: the cache is failing or unreachable.")
        compliance.acknowledge_cache(self, multi_az=multi_az)

    @property
    def mode(self) -> str:
        """How the app talks to it: ElastiCache Serverless speaks the cluster protocol."""
        return "cluster" if self.kind == "serverless" else "standalone"

    def environment(self) -> Mapping[str, str]:
        """The variables ``fastapi_lambda.cache`` reads: where the cache is and how to authenticate (no token)."""
        variables = {CACHE_HOST_VARIABLE: self.endpoint_address, CACHE_PORT_VARIABLE: self.endpoint_port,
                     CACHE_MODE_VARIABLE: self.mode, **self.timeouts}
        if self.secret is not None:
            variables[CACHE_SECRET_VARIABLE] = self.secret.secret_arn
        return variables

    def grant_connect(self, function: ServiceFunction) -> None:
        """Let ``function`` (in this cache's VPC) use the cache: its port, the token's secret, the variables."""
        if not function.function.is_bound_to_vpc:
            raise ValueError(f"{function.node.path} is not in a VPC, so it cannot reach the cache; create it with "
                             "vpc= (e.g. **network.placement())")
        self.connections.allow_default_port_from(function, "the functions granted access")
        if self.secret is not None:
            self.grant_read(function)
        for key, value in self.environment().items():
            function.add_environment(key, value)

    def grant_read(self, grantee: iam.IGrantable) -> iam.Grant:
        """Allow ``grantee`` to read the AUTH token (cluster only: a serverless cache is reached by network and TLS)."""
        if self.secret is None:
            raise ValueError(f"{self.node.path} is serverless and has no AUTH token secret; grant_connect gives access")
        return self.secret.grant_read(grantee)

    def metric_errors(self, **props: Any) -> cloudwatch.Metric:
        """Cache calls that failed in the app (each answered from the source), summed per minute."""
        return cloudwatch.Metric(namespace=METRICS_NAMESPACE, metric_name=CACHE_ERRORS_METRIC,
                                 dimensions_map={"Cache": self.endpoint_address},
                                 **{"period": Duration.minutes(1), "statistic": "Sum", **props})


def _selection(subnets: ec2.SubnetSelection) -> dict[str, Any]:
    """A SubnetSelection as keyword arguments of ``select_subnets``."""
    return {k: getattr(subnets, k) for k in ("availability_zones", "one_per_az", "subnet_filters", "subnet_group_name",
                                             "subnet_type", "subnets") if getattr(subnets, k) is not None}


def _window(start: str, later_hours: int) -> str:
    """A one-hour ``HH:MM-HH:MM`` window starting ``later_hours`` after ``start`` (maintenance never overlaps
    the snapshot)."""
    hours, minutes = map(int, start.split(":"))
    return f"{(hours + later_hours) % 24:02d}:{minutes:02d}-{(hours + later_hours + 1) % 24:02d}:{minutes:02d}"
