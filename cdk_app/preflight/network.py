"""VPC endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator

from cdk_app.preflight.engine import Resource, Template, Violation, as_list, rule, shape, target_id

ENDPOINT = "AWS::EC2::VPCEndpoint"
_ENDPOINT_DOCS = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-ec2-vpcendpoint.html"


def _interface(resource: Resource) -> bool:
    return resource.get("VpcEndpointType", default="Gateway") == "Interface"


@rule("VPC-ENDPOINT-PRIVATE-DNS", ENDPOINT,
      message='"Enabling private DNS requires both enableDnsSupport and enableDnsHostnames VPC attributes set to true"',
      source="https://docs.aws.amazon.com/vpc/latest/privatelink/create-interface-endpoint.html; "
             "https://github.com/terraform-community-modules/tf_aws_vpc/pull/6")
def private_dns(resource: Resource, template: Template) -> Iterator[Violation]:
    """An interface endpoint with private DNS is in a VPC with DNS support and DNS hostnames."""
    vpc = template.target(resource.get("VpcId"), "AWS::EC2::VPC")
    if vpc is None or not _interface(resource) or resource.get("PrivateDnsEnabled") is not True:
        return
    off = [k for k in ("EnableDnsSupport", "EnableDnsHostnames") if vpc.get(k, default=k == "EnableDnsSupport")
           is not True]
    if off:
        yield Violation(f"private DNS in VPC {vpc.id} without {', '.join(off)}", "turn both VPC attributes on")


@rule("VPC-ENDPOINT-TYPE", ENDPOINT,
      message="InvalidParameter: gateway endpoints take route tables (no subnets, security groups or private DNS); "
              "interface endpoints take subnets and security groups (no route tables)", source=_ENDPOINT_DOCS)
def endpoint_type(resource: Resource, template: Template) -> Iterator[Violation]:
    """Each kind of endpoint gets the properties it supports."""
    if _interface(resource):
        if resource.get("RouteTableIds"):
            yield Violation("RouteTableIds on an Interface endpoint", "place it in subnets instead")
    elif wrong := [k for k in ("SubnetIds", "SecurityGroupIds", "PrivateDnsEnabled") if resource.get(k)]:
        yield Violation(f"{', '.join(wrong)} on a Gateway endpoint", "give a gateway endpoint route tables only")


@rule("VPC-ENDPOINT-DUPLICATE-DNS", ENDPOINT,
      message='"private-dns-enabled cannot be set because there is already a conflicting DNS domain for ... in the '
              'VPC"', source="https://docs.aws.amazon.com/vpc/latest/privatelink/manage-dns-names.html")
def duplicate_dns(resource: Resource, template: Template) -> Iterator[Violation]:
    """One private-DNS interface endpoint per service and VPC."""
    if not _interface(resource) or resource.get("PrivateDnsEnabled") is not True:
        return
    key = (target_id(resource.get("VpcId")), shape(resource.get("ServiceName")))
    same = [e.id for e in template.of_type(ENDPOINT) if _interface(e) and e.get("PrivateDnsEnabled") is True
            and (target_id(e.get("VpcId")), shape(e.get("ServiceName"))) == key]
    if key[0] and len(same) > 1 and same[0] != resource.id:
        yield Violation(f"{key[1]} already has a private-DNS endpoint ({same[0]}) in this VPC", "keep one endpoint per "
                        "service and VPC")


@rule("VPC-ENDPOINT-SUBNETS", ENDPOINT, message='"DuplicateSubnetsInSameZone": an interface endpoint takes one subnet '
      "per Availability Zone", source="https://docs.aws.amazon.com/AWSEC2/latest/APIReference/errors-overview.html")
def subnets_per_zone(resource: Resource, template: Template) -> Iterator[Violation]:
    """An interface endpoint's subnets are in different zones."""
    zones: list[str] = []
    for subnet_ref in as_list(resource.get("SubnetIds")):
        subnet = template.target(subnet_ref, "AWS::EC2::Subnet")
        if subnet is not None and subnet.get("AvailabilityZone") is not None:
            zones.append(json.dumps(subnet.get("AvailabilityZone"), sort_keys=True))
    if _interface(resource) and len(zones) != len(set(zones)):
        yield Violation("two subnets in the same Availability Zone", "pick one subnet per zone")
