"""A consumer passes CDK's own classes (``iam.Role``, ``lambda_.Alias``, ``ec2.Vpc``, ...) to our props.

jsii's Python classes fail pyright's check against their own interfaces (parameter names differ,
aws/jsii#4541), so a prop typed only with the interface makes ``role=iam.Role(...)`` a type error in
the consumer's app. This module is type-checked with the rest (``make typecheck``): a prop narrowed
back to the interface alone fails there. The test itself checks that those objects are used as given.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import Stack
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk.assertions import Match, Template

from cdk_app.api import CustomDomain, FastApiGateway, Service
from cdk_app.auth import UserPool
from cdk_app.function import ServiceFunction
from cdk_app.testing import app_for_tests


def test_cdk_classes_are_accepted_where_their_interfaces_are():
    stack = Stack(app_for_tests(), "Consumer")
    # The consumer's own CDK calls need the cast (CDK's props are typed with the interface); ours do not.
    role = iam.Role(stack, "TeamRole", assumed_by=cast(iam.IPrincipal, iam.ServicePrincipal("lambda.amazonaws.com")))
    vpc = ec2.Vpc(stack, "Vpc", max_azs=2, nat_gateways=0, subnet_configuration=[
        ec2.SubnetConfiguration(name="private", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)])
    function = ServiceFunction(
        stack, "Worker", source="lambda_src", role=role, vpc=vpc, log_group=logs.LogGroup(stack, "Logs"),
        security_groups=[ec2.SecurityGroup(stack, "Group", vpc=vpc)],
        vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED))
    users = UserPool(stack, "Users")
    gateway = FastApiGateway(
        stack, "Gateway", handler=function.alias, authorizer=users.http_authorizer(),
        services=[Service("/billing", function.function)],
        domain=CustomDomain("api.example.com", certificate=acm.Certificate(stack, "Cert", domain_name="api.example.com"),
                            hosted_zone=route53.HostedZone(stack, "Zone", zone_name="example.com")))
    gateway.add_service("/reports", function.alias)
    FastApiGateway(stack, "Plain", handler=function.function)

    template = Template.from_stack(stack)
    template.resource_count_is("AWS::IAM::Role", 1)  # the team's: the function made none
    template.has_resource_properties("AWS::Lambda::Function", {
        "Role": {"Fn::GetAtt": [Match.string_like_regexp("TeamRole"), "Arn"]},
        "VpcConfig": Match.object_like({"SecurityGroupIds": [{"Fn::GetAtt": [Match.string_like_regexp("Group"),
                                                                             "GroupId"]}]})})
    template.resource_count_is("AWS::ApiGatewayV2::DomainName", 1)
