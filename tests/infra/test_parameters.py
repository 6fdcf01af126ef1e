"""The app's parameters and secrets: grants in policies of their own, SecureString decryption limited to SSM."""

from __future__ import annotations

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Template

from cdk_app.compliance import add_compliance_checks
from cdk_app.findings import SECRET_KEY
from cdk_app.function import FastApiFunction
from cdk_app.parameters import AppParameters
from tests.infra.conftest import SKIP_BUNDLING, app_of, only


def reader(outdir=None, **props) -> tuple[Stack, AppParameters, FastApiFunction, iam.Grant]:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False,
              outdir=str(outdir) if outdir else None)
    stack = Stack(app, "Config")
    config = AppParameters(stack, "Config", path="/orders/prod/",
                           secure_parameters={"db": "/orders/prod/db-password"}, **props)
    function = FastApiFunction(stack, "Api")
    return stack, config, function, config.grant_read(function)


def test_grant_read_is_a_grant_whose_statements_stay_in_policies_of_their_own():
    stack, config, function, grant = reader()
    template = Template.from_stack(stack)

    assert isinstance(grant, iam.Grant) and grant.success
    assert {tuple(s.to_statement_json()["Action"]) if isinstance(s.to_statement_json()["Action"], list)
            else (s.to_statement_json()["Action"],) for s in grant.principal_statements} == {
        ("ssm:GetParametersByPath", "ssm:GetParameters", "ssm:GetParameter"), ("ssm:GetParameter",), ("kms:Decrypt",)}
    default_policy = [body for name, body in template.find_resources("AWS::IAM::Policy").items()
                      if name.startswith("ApiRoleDefaultPolicy")]
    assert not any("ssm:" in str(body) or "kms:" in str(body) for body in default_policy)


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
    add_compliance_checks(app_of(stack))

    app_of(stack).synth()  # raises on any finding


def test_without_the_condition_the_wildcard_is_reported(tmp_path, monkeypatch):
    # The acknowledgement holds only while the condition does: drop it and cdk-nag reports the '*'.
    original = iam.Grant.add_to_principal

    def without_conditions(**kwargs):
        if kwargs.get("actions") == ["kms:Decrypt"]:
            kwargs.pop("conditions", None)
        return original(**kwargs)

    monkeypatch.setattr(iam.Grant, "add_to_principal", staticmethod(without_conditions))
    stack, *_ = reader(tmp_path)
    add_compliance_checks(app_of(stack))

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app_of(stack).synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::*]" in report and "Config/Config/DecryptApi/Resource" in report


def test_a_users_wildcard_statement_on_the_read_policy_is_still_reported(tmp_path):
    stack, config, *_ = reader(tmp_path)
    read = config.node.find_child("ReadApi")
    assert isinstance(read, iam.Policy)
    read.add_statements(iam.PolicyStatement(actions=["ssm:DescribeParameters"], resources=["*"]))
    add_compliance_checks(app_of(stack))

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app_of(stack).synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-IAM5[Resource::*]" in report and "Config/Config/ReadApi/Resource" in report
    assert "DecryptApi" not in report


def test_secrets_skip_only_the_customer_key_check_with_its_reason():
    stack = Stack(App(context=SKIP_BUNDLING), "Secrets")
    AppParameters(stack, "Config", path="/orders/prod/", secrets=["api_key"])
    secret = only(Template.from_stack(stack), "AWS::SecretsManager::Secret")[1]

    assert secret["Metadata"]["checkov"] == {"skip": [{"id": "CKV_AWS_149", "comment": SECRET_KEY}]}
