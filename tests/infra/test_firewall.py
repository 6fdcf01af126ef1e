"""The web ACL: AWS's managed rules within the included capacity, and logs WAF can write and nobody else."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Template

from cdk_app.auth import INCLUDED_CAPACITY, REDACTED_HEADERS, RULE_CAPACITY, WAF_LOG_GROUP_PREFIX, WebFirewall
from cdk_app.compliance import add_compliance_checks
from tests.infra.conftest import only


@pytest.fixture(scope="module")
def firewall() -> Template:
    stack = Stack(App(), "Edge")
    WebFirewall(stack, "Firewall", protect=["arn:aws:apigateway:eu-west-1::/restapis/abc/stages/api"],
                log_retention=logs.RetentionDays.ONE_YEAR, removal_policy=RemovalPolicy.DESTROY)
    return Template.from_stack(stack)


def test_managed_rule_groups_and_the_rate_limit_fit_the_included_capacity(firewall):
    rules = only(firewall, "AWS::WAFv2::WebACL")[1]["Properties"]["Rules"]

    assert [rule["Name"] for rule in rules] == list(RULE_CAPACITY)
    assert sorted(rule["Priority"] for rule in rules) == list(range(len(rules)))
    for rule in rules:
        managed = rule["Statement"].get("ManagedRuleGroupStatement")
        if managed:  # none of its rules overridden to count: the known-bad-inputs group blocks Log4j lookups
            assert managed == {"VendorName": "AWS", "Name": rule["Name"]} and rule["OverrideAction"] == {"None": {}}
    assert sum(RULE_CAPACITY.values()) <= INCLUDED_CAPACITY


def test_logs_go_to_an_aws_waf_logs_group_with_retention_and_without_credentials(firewall):
    group_id, group = only(firewall, "AWS::Logs::LogGroup")
    logging = only(firewall, "AWS::WAFv2::LoggingConfiguration")[1]

    name = group["Properties"]["LogGroupName"]
    assert name.startswith(WAF_LOG_GROUP_PREFIX) and len(name) <= 512
    assert group["Properties"]["RetentionInDays"] == 365 and group["DeletionPolicy"] == "Delete"
    (destination,) = logging["Properties"]["LogDestinationConfigs"]
    # The group's own ARN, not GetAtt Arn (which ends in ':*').
    assert destination["Fn::Join"][1][-2:] == [":log-group:", {"Ref": group_id}]
    assert logging["Properties"]["RedactedFields"] == [{"SingleHeader": {"Name": h}} for h in REDACTED_HEADERS]


def test_only_wafs_log_delivery_of_this_account_may_write_and_it_exists_first(firewall):
    policy_id, policy = only(firewall, "AWS::Logs::ResourcePolicy")
    logging = only(firewall, "AWS::WAFv2::LoggingConfiguration")[1]

    document = "".join(part if isinstance(part, str) else json.dumps(part)
                       for part in policy["Properties"]["PolicyDocument"]["Fn::Join"][1])
    assert '"Principal":{"Service":"delivery.logs.amazonaws.com"}' in document
    assert '"Action":["logs:CreateLogStream","logs:PutLogEvents"]' in document
    assert '"aws:SourceAccount":"{"Ref": "AWS::AccountId"}"' in document
    assert document.count('"Statement":[{') == 1 and document.endswith(':log-stream:*"}],"Version":"2012-10-17"}')
    assert logging["DependsOn"] == [policy_id]


def test_the_firewall_passes_both_cdk_nag_packs(tmp_path):
    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    WebFirewall(Stack(app, "Edge"), "Firewall", protect=[])
    add_compliance_checks(app)

    app.synth()  # raises on any finding
