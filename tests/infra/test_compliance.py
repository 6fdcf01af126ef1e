"""cdk-nag and cfn-lint on the synthesized templates of every environment."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_sqs as sqs

from cdk_app.compliance import add_compliance_checks
from cdk_app.report import acknowledgements, cfn_lint


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
    # The control: the same plugin set-up must reject a non-compliant resource.
    app = App(builtin_cloud_formation_validation=False, outdir=str(tmp_path))
    sqs.Queue(Stack(app, "Bad"), "NoDeadLetterQueueNoTls")
    add_compliance_checks(app)

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app.synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS3" in report and "AwsSolutions-SQS4" in report


def test_every_acknowledgement_has_a_real_reason(assembly, synth):
    reasons = {}
    for stack in assembly.stacks:
        reasons.update(acknowledgements(synth.outdir, stack.stack_name))
    assert reasons, "expected the documented acknowledgements"
    for rule, reason in reasons.items():
        assert len(reason.split()) >= 12, f"{rule}: reason too thin: {reason!r}"


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
