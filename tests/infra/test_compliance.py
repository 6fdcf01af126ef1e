"""cdk-nag (two packs), checkov and cfn-lint on the synthesized templates of every environment."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, CfnResource, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs

from cdk_app.compliance import NAG_PACKS, add_compliance_checks
from cdk_app.findings import skip_checkov
from cdk_app.report import MIN_REASON_WORDS, acknowledgement_counts, acknowledgements, cfn_lint, checkov

ENVIRONMENTS = ("fastapi-lambda-dev", "fastapi-lambda-staging", "fastapi-lambda-prod")


@pytest.fixture(scope="session")
def assembly(synth):
    """The session's app synthesized to disk; cdk-nag runs here and raises on any finding."""
    return synth.app.synth()


def test_cdk_nag_passes_every_environment(assembly, synth):
    report = json.loads((synth.outdir / "validation-report.json").read_text())
    failures = [r for r in report.get("pluginReports", []) if r.get("conclusion") == "failure"]
    assert failures == []
    assert {s.stack_name for s in assembly.stacks} == {"fastapi-lambda-dev", "fastapi-lambda-staging",
                                                       "fastapi-lambda-prod"}


def test_cdk_nag_fails_synth_on_a_finding(tmp_path):
    # The control: the same plugin set-up must reject a non-compliant resource, in each pack.
    app = App(builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    sqs.Queue(Stack(app, "Bad"), "NoDeadLetterQueueNoTls")
    add_compliance_checks(app)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS3" in report and "AwsSolutions-SQS4" in report
    assert "Serverless-SQSRedrivePolicy" in report


def test_both_packs_run_and_each_environment_acknowledges_findings_of_both(assembly, synth):
    assert set(NAG_PACKS) == {"AwsSolutions", "Serverless"}
    for stack in ENVIRONMENTS:
        counts = acknowledgement_counts(synth.outdir, stack)
        assert counts["AwsSolutions"] > 0 and counts["Serverless"] > 0, stack


def test_every_acknowledgement_has_a_real_reason(assembly, synth):
    reasons = {}
    for stack in assembly.stacks:
        reasons.update(acknowledgements(synth.outdir, stack.stack_name))
    assert reasons, "expected the documented acknowledgements"
    for rule, reason in reasons.items():
        assert len(reason.split()) >= MIN_REASON_WORDS, f"{rule}: reason too thin: {reason!r}"


@pytest.fixture(scope="session")
def lint(assembly, synth):
    """cfn-lint over every synthesized template, in one run."""
    return cfn_lint(*sorted(synth.outdir.glob("*.template.json")))


@pytest.mark.parametrize("stack_name", ["fastapi-lambda-dev", "fastapi-lambda-staging", "fastapi-lambda-prod"])
def test_cfn_lint_is_clean(lint, stack_name):
    levels = lint[f"{stack_name}.template.json"]

    assert dict(levels) == {}


def test_cfn_lint_reports_real_problems(tmp_path):
    broken = {"Resources": {"Fn": {"Type": "AWS::Lambda::Function", "Properties": {"Runtime": "python2.7",
                                                                                   "Handler": "x", "Code": {}}}}}
    path = tmp_path / "broken.template.json"
    path.write_text(json.dumps(broken))

    assert cfn_lint(path)[path.name]["Error"] >= 1


# --- checkov: 0 failed, every skip in the resource's own metadata with its reason ------------------

@pytest.fixture(scope="session")
def scanned(assembly, synth):
    """checkov over every synthesized template, in one run."""
    return checkov(*(synth.outdir / f"{stack}.template.json" for stack in ENVIRONMENTS))


@pytest.mark.parametrize("stack_name", ENVIRONMENTS)
def test_checkov_passes_with_every_skip_explained(scanned, stack_name):
    counts = scanned[f"{stack_name}.template.json"]

    assert (counts.failed, counts.unexplained) == (0, [])
    assert counts.passed > 100 and counts.skipped > 0


def test_every_checkov_skip_sits_on_its_resource_with_a_reason(synth):
    for template in synth.templates.values():
        for name, resource in template.to_json()["Resources"].items():
            for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
                assert skip["id"].startswith("CKV_AWS_"), name
                assert len(skip["comment"].split()) >= MIN_REASON_WORDS, f"{name} {skip['id']}"


def test_checkov_gate_catches_a_bad_resource_and_a_skip_without_a_reason(tmp_path):
    # The control, in one checkov run: a bare bucket (no versioning, no access logs) fails, and a skip of
    # versioning on another bare bucket that gives no comment is reported as unexplained.
    app = App(builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    stack = Stack(app, "Bad")
    s3.CfnBucket(stack, "Bare")
    s3.CfnBucket(stack, "Unexplained").add_metadata("checkov", {"skip": [{"id": "CKV_AWS_21"}]})
    app.synth()
    path = tmp_path / "Bad.template.json"

    counts = checkov(path)[path.name]

    assert counts.failed >= 3  # CKV_AWS_18 twice and CKV_AWS_21 on the bare bucket, at least
    assert counts.unexplained == ["CKV_AWS_21 AWS::S3::Bucket.Unexplained"]


def test_a_skip_needs_a_real_reason_and_a_resource():
    stack = Stack(App(), "Lib")
    queue = sqs.Queue(stack, "Queue")
    with pytest.raises(ValueError, match="the reason for skipping CKV_AWS_27 on Lib/Queue/Resource is too thin"):
        skip_checkov(queue, "CKV_AWS_27", "by design")
    with pytest.raises(TypeError, match="has no CloudFormation resource to carry a checkov skip"):
        skip_checkov(lambda_.Function.from_function_name(stack, "Imported", "f"), "CKV_AWS_116", "x " * 20)

    skip_checkov(queue, "CKV_AWS_27", "first reason " * 6)
    skip_checkov(queue, "CKV_AWS_27", "second reason " * 6)  # the same check again: the newer reason only
    skip_checkov(queue, "CKV_AWS_116", "another check " * 6)
    resource = queue.node.default_child
    assert isinstance(resource, CfnResource)
    skips = resource.get_metadata("checkov")["skip"]
    assert [(skip["id"], skip["comment"].split()[0]) for skip in skips] == [("CKV_AWS_27", "second"),
                                                                         ("CKV_AWS_116", "another")]
