"""The main job's summary: what it says when cfn-lint is missing or hangs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi_lambda.constants import WARMUP_MARKER

from cdk_app import report
from cdk_app.report import ReportError, cfn_lint


@pytest.fixture
def assembly(tmp_path) -> Path:
    """A cloud assembly with one (empty) stack: enough for the report to get to cfn-lint."""
    out = tmp_path / "cdk.out"
    out.mkdir()
    (out / "Demo.template.json").write_text(json.dumps({"Resources": {}}))
    (out / "manifest.json").write_text(json.dumps({"artifacts": {"Demo": {
        "type": "aws:cloudformation:stack", "properties": {"templateFile": "Demo.template.json"}}}}))
    return out


@pytest.fixture
def venv_bin(tmp_path, monkeypatch) -> Path:
    """A Python environment's bin folder with no cfn-lint in it (yet)."""
    folder = tmp_path / "venv" / "bin"
    folder.mkdir(parents=True)
    monkeypatch.setattr(sys, "executable", str(folder / "python"))
    return folder


def test_missing_cfn_lint_says_how_to_install_it(assembly, venv_bin, capsys):
    assert report.main([str(assembly)]) == 1

    (line,) = capsys.readouterr().err.splitlines()
    assert line == (f"cfn-lint is not installed for {venv_bin / 'python'}; install it with `make setup` or "
                    f"`{venv_bin / 'python'} -m pip install -r requirements-dev.txt`.")


def test_cfn_lint_that_hangs_is_stopped(assembly, venv_bin, monkeypatch):
    hanging = venv_bin / "cfn-lint"
    hanging.write_text("#!/bin/sh\nexec sleep 30\n")  # exec: no orphan left holding the output pipe
    hanging.chmod(0o755)
    monkeypatch.setattr(report, "CFN_LINT_TIMEOUT_SECONDS", 1)

    with pytest.raises(ReportError, match=r"cfn-lint did not finish within 1 s and was stopped; run it alone"):
        cfn_lint(assembly / "Demo.template.json")


def test_no_assembly_is_one_line_too(tmp_path, capsys):
    assert report.main([str(tmp_path / "nowhere")]) == 1

    assert capsys.readouterr().err == f"No stacks in {tmp_path / 'nowhere'}; run cdk synth first.\n"


@pytest.fixture(scope="module")
def session_assembly(synth) -> Path:
    """The session's three environments, synthesized to disk (cdk-nag and the preflight ran)."""
    synth.app.synth()
    return synth.outdir


def test_the_summary_counts_preflight_and_cdk_warnings_and_lists_what_destroy_leaves(session_assembly, monkeypatch,
                                                                                      capsys):
    from collections import Counter

    monkeypatch.setattr(report, "cfn_lint", lambda *paths: {p.name: Counter() for p in paths})
    monkeypatch.setattr(report, "checkov", lambda *paths: {p.name: report.CheckovCounts() for p in paths})

    assert report.main([str(session_assembly)]) == 0
    out = capsys.readouterr().out
    header, _, *rows = out.splitlines()
    assert "preflight" in header and "CDK warn." in header and "retained" in header
    prod = next(line for line in rows if line.startswith("fastapi-lambda-prod "))
    # prod's concurrency-quota and provisioned-scaling-during-release warnings are acknowledged with their reasons
    assert "pass (0 warn., 2 ack.)" in prod
    # What prod keeps after cdk destroy, and why it still costs something.
    assert "fastapi-lambda-prod: cdk destroy leaves" in out
    assert "(AWS::KMS::Key): 1 USD a month" in out and "(AWS::Cognito::UserPool): monthly active users" in out
    assert "fastapi-lambda-dev: cdk destroy leaves" not in out  # dev and staging are destroyed whole
    assert "0 CDK warning(s)" in out


def test_preflight_warnings_are_counted_per_template(tmp_path):
    from aws_cdk import App, CfnResource, Stack, Validations

    from cdk_app.preflight.plugin import Preflight

    app = App(outdir=str(tmp_path), builtin_cloud_formation_validation=False)
    CfnResource(Stack(app, "Quota"), "Fn", type="AWS::Lambda::Function", properties={"ReservedConcurrentExecutions": 5})
    Validations.of(app).add_plugins(Preflight())
    app.synth()

    assert [v["ruleName"] for v in report.preflight_findings(tmp_path)["Quota.template.json"]] == [
        "LAMBDA-CONCURRENCY-QUOTA"]


def test_cdk_warnings_are_counted_per_stack(tmp_path):
    from aws_cdk import Annotations, App, Stack

    app = App(outdir=str(tmp_path))
    stack = Stack(app, "Warned")
    Annotations.of(stack).add_warning_v2("demo:warning", "a CDK warning")
    app.synth()

    assert report.cdk_warnings(tmp_path, "Warned") == ["/Warned: a CDK warning [ack: demo:warning]"]


def test_checkov_is_looked_up_in_its_own_venv_beside_the_projects(venv_bin, monkeypatch):
    monkeypatch.delenv("CHECKOV", raising=False)
    expected = venv_bin.parents[1] / report.CHECKOV_VENV / "bin" / "checkov"

    with pytest.raises(ReportError) as missing:
        report.checkov_cli()

    assert str(missing.value) == (f"checkov is not installed at {expected}; install it with `make setup` (a venv of "
                                  "its own, .venv-checkov, from requirements-checkov.txt) or name yours in $CHECKOV.")
    expected.parent.mkdir(parents=True)
    expected.write_text("#!/bin/sh\n")
    assert report.checkov_cli() == expected


def test_a_checkov_of_your_own_can_be_named(tmp_path, monkeypatch):
    monkeypatch.setenv("CHECKOV", str(tmp_path / "nowhere" / "checkov"))

    with pytest.raises(ReportError, match=r"checkov is not installed at .*nowhere/checkov"):
        report.checkov_cli()


def test_each_function_is_sized_with_its_code_and_layers_zipped_and_not(tmp_path):
    for name, text in (("code", "print('hello')\n"), ("layer", "x = 1\n" * 20_000)):
        (tmp_path / f"asset.{name}" / "python").mkdir(parents=True)
        (tmp_path / f"asset.{name}" / "python" / "module.py").write_text(text)
    resources = {
        "ApiFunction6BF808ED": {"Type": "AWS::Lambda::Function", "Properties": {
            "Code": {"S3Key": "code.zip"},
            "Layers": [{"Ref": "DependenciesLayerHttp1234ABCD"}, "arn:aws:lambda:us-east-1:901920570463:layer:adot:1"]}},
        "DependenciesLayerHttp1234ABCD": {"Type": "AWS::Lambda::LayerVersion", "Properties": {
            "Content": {"S3Key": "layer.zip"}}},
        "CustomProvider": {"Type": "AWS::Lambda::Function", "Properties": {"Code": {"S3Key": "code.zip"}}},
    }

    (size,) = report.function_sizes(tmp_path, resources)

    assert size.function == "Api" and size.layers == ("DependenciesLayerHttp1234ABCD",) and size.external_layers == 1
    assert size.unzipped == len("print('hello')\n") + len("x = 1\n" * 20_000)
    assert 0 < size.zipped < size.unzipped / 10
    assert report._sizes([size]) == f"Api {size.zipped / 1e6:.1f}/{size.unzipped / 1e6:.1f} +1 ext."


def _stack_with_rules(*rules: dict[str, Any], snap_start: bool = False) -> dict[str, Any]:
    """An API function with its alias, a worker, and these EventBridge rules (targets by logical id)."""
    api: dict[str, Any] = {"Environment": {"Variables": {"IMPORT_MODE": "lazy"}}}
    if snap_start:
        api["SnapStart"] = {"ApplyOn": "PublishedVersions"}
    resources: dict[str, Any] = {
        "ApiFunction6BF808ED": {"Type": "AWS::Lambda::Function", "Properties": api},
        "ApiFunctionLiveAlias1234ABCD": {"Type": "AWS::Lambda::Alias", "Properties": {
            "FunctionName": {"Ref": "ApiFunction6BF808ED"}, "Name": "live"}},
        "TasksWorkerFunction0A1B2C3D": {"Type": "AWS::Lambda::Function", "Properties": {}},
    }
    for index, rule in enumerate(rules):
        resources[f"Rule{index}"] = {"Type": "AWS::Events::Rule", "Properties": {
            "ScheduleExpression": rule["schedule"], "State": "ENABLED", "Targets": [
                {"Arn": {"Ref": rule["target"]}, "Id": "Target0", "Input": json.dumps(rule["input"])}]}}
    return resources


WARMUP = {WARMUP_MARKER: {"concurrency": 2}}


@pytest.mark.parametrize(("rules", "snap_start", "expected"), [
    # The API's own warmup rule, through its alias.
    ([{"target": "ApiFunctionLiveAlias1234ABCD", "input": WARMUP, "schedule": "rate(5 minutes)"}], False,
     "warmup, lazy"),
    # The worker's warmup belongs to the worker, not to the API function.
    ([{"target": "TasksWorkerFunction0A1B2C3D", "input": WARMUP, "schedule": "rate(5 minutes)"}], False,
     "none, lazy"),
    # A service's nightly job on the API function is a schedule, not a warmup.
    ([{"target": "ApiFunctionLiveAlias1234ABCD", "input": {"job": "nightly"}, "schedule": "cron(0 3 * * ? *)"}],
     True, "snapstart, lazy"),
    # SnapStart with a warmup rule beside it (force_warmup).
    ([{"target": "ApiFunctionLiveAlias1234ABCD", "input": WARMUP, "schedule": "rate(5 minutes)"},
      {"target": "TasksWorkerFunction0A1B2C3D", "input": {"job": "nightly"}, "schedule": "cron(0 3 * * ? *)"}],
     True, "snapstart +warmup, lazy"),
])
def test_cold_start_counts_only_the_warmup_rule_of_the_api_function(rules: list[dict[str, Any]], snap_start: bool,
                                                                     expected: str):
    resources = _stack_with_rules(*rules, snap_start=snap_start)

    assert report._cold_start(resources, resources["ApiFunction6BF808ED"]["Properties"]) == expected
