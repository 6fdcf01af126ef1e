"""The network the functions join when something needs one (the cache), and how they reach AWS from it.

:class:`Network` creates a VPC (or takes yours): subnets for the functions, isolated
subnets for the cache, flow logs, and one security group for every function of the
service. A function inside a VPC reaches AWS APIs only through VPC endpoints or a NAT
gateway (``egress``). :meth:`Network.add_endpoints_for` reads what each function's role
lets it call (``sqs:SendMessage`` → SQS, ``dynamodb:*`` → DynamoDB, ...) and adds exactly
those endpoints: gateway endpoints (free) for S3 and DynamoDB, interface endpoints for
the rest unless a NAT gateway routes them. At synth, every function in the network is
checked again, so a grant added later without its endpoint fails synth naming it.

Synth stays offline: the availability zones are given (``availability_zones``) or taken
by CloudFormation at deploy time (``Fn::GetAZs``), never looked up in an account. (In a
stack with a fixed account and region, CDK's ``Vpc`` still checks given zones against the
stack's, which it looks up: ``FastApiStack`` overrides ``availability_zones`` for that.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

import jsii
from aws_cdk import Fn, RemovalPolicy, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct, IValidation

from cdk_app.cdk_values import log_retention, removal_policy
from cdk_app.findings import LOG_GROUP_KEY, acknowledge, skip_cdk_handler, skip_checkov
from cdk_app.function import ServiceFunction
from cdk_app.settings import DEFAULTS
from cdk_app.settings.choices import Egress
from cdk_app.settings.rules import check_network

_NETWORK = DEFAULTS.network

#: Services reached through a gateway endpoint: a route, no hourly cost (also used beside a NAT, saving its traffic).
GATEWAY_SERVICES = {"s3": ec2.GatewayVpcEndpointAwsService.S3, "dynamodb": ec2.GatewayVpcEndpointAwsService.DYNAMODB}
#: IAM prefixes of calls the Lambda service makes for the function, not its code (logs, network interfaces).
CALLED_BY_LAMBDA = frozenset({"logs", "ec2"})
#: aws-cdk-lib's singleton provider that strips the rules of a new VPC's default security group.
RESTRICT_DEFAULT_SG_PROVIDER = "Custom::VpcRestrictDefaultSGCustomResourceProvider"


def services_called(function: ServiceFunction) -> dict[str, list[str]]:
    """The AWS services ``function``'s role lets it call (IAM prefix → actions), from every policy on the role."""
    stack = Stack.of(function)
    role = stack.resolve(function.role.role_name)
    # Policy documents are untyped JSON (CloudFormation's PolicyDocument), read after resolving their tokens.
    documents: list[Any] = []
    for construct in stack.node.find_all():
        if isinstance(construct, iam.CfnPolicy) and role in (stack.resolve(construct.roles) or []):
            documents.append(construct.policy_document)
    if isinstance(function.role.node.default_child, iam.CfnRole):
        inline: list[Any] = stack.resolve(function.role.node.default_child.policies) or []
        documents += [policy["policyDocument"] for policy in inline]  # resolved as a jsii struct: camelCase keys
    called: dict[str, list[str]] = {}
    for document in documents:
        for statement in stack.resolve(document).get("Statement", []):
            # A statement conditioned on kms:ViaService is used by that service for the function (SSM decrypting
            # a SecureString): the function itself never calls KMS, so it needs no endpoint for it.
            if statement.get("Effect", "Allow") != "Allow" or "kms:ViaService" in str(statement.get("Condition")):
                continue
            actions = statement.get("Action", [])
            for action in [actions] if isinstance(actions, str) else actions:
                service = action.split(":", 1)[0].lower()
                if service not in CALLED_BY_LAMBDA:
                    called.setdefault(service, []).append(action)
    return called


@jsii.implements(IValidation)
class _EveryCallReachable:
    """At synth: each function in the network can reach every service its role lets it call."""

    def __init__(self, network: Network) -> None:
        self.network = network

    def validate(self) -> list[str]:
        return [problem for function in self.network.functions() for problem in self.network.unreachable(function)]


class Placement(TypedDict):
    """The :class:`cdk_app.function.ServiceFunction` props that put it into a :class:`Network`."""

    vpc: ec2.IVpc
    vpc_subnets: ec2.SubnetSelection
    security_groups: Sequence[ec2.ISecurityGroup]


class Network(Construct):
    """A VPC for the service's functions and its cache, with exactly the ways out they need.

    Subnets per zone: ``Functions`` (isolated with ``egress="endpoints"``, private behind NAT
    gateways with ``egress="nat"``, which also adds ``Public`` subnets) and ``Cache`` (always
    isolated). Place a function with ``ServiceFunction(..., **network.placement())``; after its
    grants, :meth:`add_endpoints_for` it. At synth, every function in the network is checked:
    a service its role may call but cannot reach fails synth, naming the fix.

    :param vpc: your VPC (nothing is created but the functions' security group); name its subnets with
        ``function_subnets``/``cache_subnets``. @default a new VPC as below
    :param function_subnets: where functions go. @default the ``Functions`` subnets (with your VPC, its
        isolated ones for ``egress="endpoints"``, else its private ones with egress)
    :param cache_subnets: where the cache goes. @default the ``Cache`` subnets (with your VPC, its isolated
        ones)
    :param egress: how functions reach AWS APIs, ``"endpoints"`` (VPC endpoints, no internet) or
        ``"nat"`` (NAT gateways). @default ``DEFAULTS.network.egress``
    :param reachable: services your VPC already reaches (its own endpoints), by IAM prefix (``"sqs"``); no
        endpoint is added for them. @default none
    :param az_count: zones, from 1 to 6, taken by CloudFormation at deploy time
        (``Fn::GetAZs``).
        @default ``DEFAULTS.network.az_count``
    :param availability_zones: the zones by name instead (e.g. ``["eu-west-1a", "eu-west-1b"]``).
        @default ``DEFAULTS.network.availability_zones`` (None: ``az_count`` zones)
    :param cidr: the VPC's range, ``/16`` to ``/24``. @default ``DEFAULTS.network.cidr``
    :param subnet_mask: each subnet's prefix length, from 16 to 28. @default ``DEFAULTS.network.subnet_mask``
    :param nat_gateways: NAT gateways with ``egress="nat"``, one per zone at most.
        @default ``DEFAULTS.network.nat_gateways``
    :param flow_logs: VPC flow logs (all traffic) to a log group of its own. @default ``DEFAULTS.network.flow_logs``
    :param flow_log_retention: how long the flow logs are kept. @default ``DEFAULTS.log_retention_days``
    :param removal_policy: of the flow logs' group. @default ``DEFAULTS.removal_policy``

    Example::

        from cdk_app.function import ServiceFunction
        from cdk_app.network import Network

        network = Network(stack, "Network", egress="endpoints", az_count=2)
        worker = ServiceFunction(stack, "Worker", source="lambda_src", tasks="service.tasks:registry",
                                 **network.placement())
        network.add_endpoints_for(worker)  # call it after the function's grants
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        vpc: ec2.IVpc | None = None,
        function_subnets: ec2.SubnetSelection | None = None,
        cache_subnets: ec2.SubnetSelection | None = None,
        egress: Egress = _NETWORK.egress,
        reachable: Sequence[str] = (),
        az_count: int = _NETWORK.az_count,
        availability_zones: Sequence[str] | None = _NETWORK.availability_zones,
        cidr: str = _NETWORK.cidr,
        subnet_mask: int = _NETWORK.subnet_mask,
        nat_gateways: int = _NETWORK.nat_gateways,
        flow_logs: bool = _NETWORK.flow_logs,
        flow_log_retention: logs.RetentionDays = log_retention(DEFAULTS.log_retention_days),
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
    ) -> None:
        super().__init__(scope, id)
        if egress not in ("endpoints", "nat"):
            raise ValueError(f"egress={egress!r} must be 'endpoints' or 'nat'")
        self.egress = egress
        self.reachable = set(reachable)
        functions_type = ec2.SubnetType.PRIVATE_WITH_EGRESS if egress == "nat" else ec2.SubnetType.PRIVATE_ISOLATED
        self.flow_log: ec2.FlowLog | None = None
        self.flow_log_group: logs.LogGroup | None = None
        if vpc is None:
            zones = list(availability_zones or [Fn.select(i, Fn.get_azs()) for i in range(az_count)])
            if not zones:
                raise ValueError("availability_zones is empty; name at least one zone, or leave it unset")
            check_network(egress=egress, nat_gateways=nat_gateways, zones=len(zones))
            subnets = [ec2.SubnetConfiguration(name="Functions", subnet_type=functions_type, cidr_mask=subnet_mask),
                       ec2.SubnetConfiguration(name="Cache", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED,
                                               cidr_mask=subnet_mask)]
            if egress == "nat":
                subnets.insert(0, ec2.SubnetConfiguration(name="Public", subnet_type=ec2.SubnetType.PUBLIC,
                                                          cidr_mask=subnet_mask))
            vpc = ec2.Vpc(self, "Vpc", ip_addresses=ec2.IpAddresses.cidr(cidr), availability_zones=zones,
                          nat_gateways=nat_gateways if egress == "nat" else 0, subnet_configuration=subnets)
            function_subnets = function_subnets or ec2.SubnetSelection(subnet_group_name="Functions")
            cache_subnets = cache_subnets or ec2.SubnetSelection(subnet_group_name="Cache")
            if flow_logs:
                self.flow_log_group = logs.LogGroup(self, "FlowLogs", retention=flow_log_retention,
                                                    removal_policy=removal_policy)
                skip_checkov(self.flow_log_group, "CKV_AWS_158", LOG_GROUP_KEY)
                self.flow_log = vpc.add_flow_log("FlowLog", traffic_type=ec2.FlowLogTrafficType.ALL,
                                                 destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                                                     self.flow_log_group))
            else:
                acknowledge(
                    vpc.node.default_child, "VPC7",
                    "Flow logs are turned off by this environment's settings (network.flow_logs, default on); the "
                    "VPC holds only the service's functions, their endpoints and its cache.",
                )
        self.vpc = vpc
        self.function_subnets = function_subnets or ec2.SubnetSelection(subnet_type=functions_type)
        self.cache_subnets = cache_subnets or ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)
        self.function_security_group = ec2.SecurityGroup(
            self, "Functions", vpc=vpc, allow_all_outbound=False,
            description="Lambda functions of the service: HTTPS to AWS APIs, and what the cache admits",
        )
        self.function_security_group.add_egress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.HTTPS,
            "AWS APIs: through the VPC endpoints" + (" or the NAT gateway" if egress == "nat" else ""))
        self.interface_endpoints: dict[str, ec2.InterfaceVpcEndpoint] = {}
        self.gateway_endpoints: dict[str, ec2.GatewayVpcEndpoint] = {}
        self._functions: list[ServiceFunction] = []
        self.node.add_validation(_EveryCallReachable(self))
        skip_cdk_handler(Stack.of(self), RESTRICT_DEFAULT_SG_PROVIDER)  # made with the VPC, ours or the user's

    def placement(self) -> Placement:
        """The props that put a :class:`ServiceFunction` into this network."""
        return {"vpc": self.vpc, "vpc_subnets": self.function_subnets,
                "security_groups": [self.function_security_group]}

    def add_endpoints_for(self, *functions: ServiceFunction) -> None:
        """Endpoints for every service these functions' roles let them call (call it after their grants)."""
        for function in functions:
            if function not in self._functions:
                self._functions.append(function)
            for service in services_called(function):
                if service in GATEWAY_SERVICES:
                    self.add_gateway_endpoint(service)
                elif self.egress == "endpoints" and service not in self.reachable:
                    self.add_interface_endpoint(service)

    def add_gateway_endpoint(self, service: str) -> ec2.GatewayVpcEndpoint:
        """A gateway endpoint (``s3`` or ``dynamodb``) routed from the functions' subnets."""
        if service not in self.gateway_endpoints:
            self.gateway_endpoints[service] = self.vpc.add_gateway_endpoint(
                f"{_title(service)}Endpoint", service=GATEWAY_SERVICES[service], subnets=[self.function_subnets])
        return self.gateway_endpoints[service]

    def add_interface_endpoint(self, service: str) -> ec2.InterfaceVpcEndpoint:
        """An interface endpoint for ``service`` (``com.amazonaws.<region>.<service>``, named like its IAM prefix:
        sqs, secretsmanager, lambda, xray, ssm, kms, ...), open to the functions' security group only."""
        if service not in self.interface_endpoints:
            endpoint = self.vpc.add_interface_endpoint(
                f"{_title(service)}Endpoint", service=ec2.InterfaceVpcEndpointAwsService(service),
                subnets=self.function_subnets, private_dns_enabled=True, open=False)
            endpoint.connections.allow_default_port_from(self.function_security_group, "functions of the service")
            self.interface_endpoints[service] = endpoint
        return self.interface_endpoints[service]

    def functions(self) -> list[ServiceFunction]:
        """The functions in this network: those given to :meth:`add_endpoints_for` and any placed in its group."""
        placed = [c for c in Stack.of(self).node.find_all() if isinstance(c, ServiceFunction)
                  and c.function.is_bound_to_vpc and self.function_security_group in c.connections.security_groups]
        return self._functions + [f for f in placed if f not in self._functions]

    def unreachable(self, function: ServiceFunction) -> list[str]:
        """A problem for each service ``function`` may call but cannot reach from here (no endpoint, no NAT)."""
        if self.egress == "nat":
            return []
        problems: list[str] = []
        for service, actions in sorted(services_called(function).items()):
            if service in self.gateway_endpoints or service in self.interface_endpoints or service in self.reachable:
                continue
            kind = "gateway" if service in GATEWAY_SERVICES else "interface"
            problems.append(
                f"{function.node.path} may call {service} ({', '.join(sorted(set(actions)))}) but {self.node.path} "
                f"has no {service} endpoint and no NAT gateway, so those calls would time out: call "
                f"add_endpoints_for(function) after the grants, or add_{kind}_endpoint({service!r}), or set "
                "egress='nat' (network.egress in cdk.json)")
        return problems


def _title(service: str) -> str:
    return "".join(part.title() for part in service.replace("_", "-").split("-"))
