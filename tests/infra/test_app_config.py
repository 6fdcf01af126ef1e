"""Configuration grants: SecureString decryption stays limited to SSM, and alone in its policy."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from cdk_app import compliance
from cdk_app.app_config import AppConfig
from cdk_app.compliance import add_compliance_checks
from cdk_app.function import FastApiFunction
from tests.infra.conftest import SKIP_BUNDLING, only


def reader(outdir=None, **props) -> tuple[Stack, AppConfig, FastApiFunction, iam.Policy]:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False,
              outdir=str(outdir) if outdir else None)
    stack = Stack(app, "Config")
    config = AppConfig(stack, "Config", path="/orders/prod/", secure_parameters={"db": "/orders/prod/db-password"},
                       **props)
    function = FastApiFunction(stack, "Api")
    return stack, config, function, config.grant_read(function)


def test_kms_decrypt_is_conditioned_on_ssm_and_alone_in_its_policy():
    stack, *_ = reader()
    template = Template.from_stack(stack)

    (statement,) = only(template, "AWS::IAM::Policy", "ConfigDecryptApi")[1]["Properties"]["PolicyDocument"]["Statement"]
    assert statement == {"Action": "kms:Decrypt", "Effect": "Allow", "Resource": "*", "Condition": {
        "StringEquals": {"kms:ViaService": {"Fn::Join": ["", ["ssm.", {"Ref": "AWS::Region"}, ".amazonaws.com"]]}}}}
    read = only(template, "AWS::IAM::Policy", "ConfigReadApi")[1]["Properties"]["PolicyDocument"]["Statement"]
    assert not any("kms:" in str(s["Action"]) for s in read)


def test_the_stack_with_a_secure_parameter_passes_cdk_nag(tmp_path):
    stack, *_ = reader(tmp_path)
    add_compliance_checks(stack.node.root)

    stack.node.root.synth()  # raises on any finding


def test_without_the_condition_the_wildcard_is_reported(tmp_path, monkeypatch):
    # The acknowledgement holds only while the condition does: drop it and cdk-nag reports the '*'.
    original = iam.PolicyStatement.__init__

    def without_conditions(self, *args, **kwargs):
        if kwargs.get("actions") == ["kms:Decrypt"]:
            kwargs.pop("conditions", None)
        original(self, *args, **kwargs)

    monkeypatch.setattr(iam.PolicyStatement, "__init__", without_conditions)
    stack, *_ = reader(tmp_path)
    add_compliance_checks(stack.node.root)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        stack.node.root.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::*]" in report and "Config/Config/DecryptApi/Resource" in report


def test_a_users_wildcard_statement_on_the_read_policy_is_still_reported(tmp_path):
    stack, _, _, policy = reader(tmp_path)
    policy.add_statements(iam.PolicyStatement(actions=["ssm:DescribeParameters"], resources=["*"]))
    add_compliance_checks(stack.node.root)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        stack.node.root.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::*]" in report and "Config/Config/ReadApi/Resource" in report
    assert "DecryptApi" not in report


def test_secrets_skip_only_the_customer_key_check_with_its_reason():
    stack = Stack(App(context=SKIP_BUNDLING), "Secrets")
    AppConfig(stack, "Config", path="/orders/prod/", secrets=["api_key"])
    secret = only(Template.from_stack(stack), "AWS::SecretsManager::Secret")[1]

    assert secret["Metadata"]["checkov"] == {"skip": [{"id": "CKV_AWS_149", "comment": compliance.SECRET_KEY}]}
