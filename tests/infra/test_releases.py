"""Safe releases in the templates: CodeDeploy on every function's alias, the strategy per environment, the alarms
that roll a release back, the smoke-test hooks and their permissions, and the settings' refusals."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, cast

import pytest
from aws_cdk import App, CfnElement, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk.assertions import Template
from fastapi_lambda.constants import SMOKE_TEST_FUNCTION_VARIABLE, SMOKE_TEST_HANDLER, SMOKE_TEST_PATH_VARIABLE

from cdk_app import props
from cdk_app.function import ServiceFunction
from cdk_app.preflight import check_template
from cdk_app.releases import Release, ReleaseControl
from cdk_app.settings import DEFAULTS, ConfigError, EnvironmentSettings, load_settings, read_cdk_json_context
from cdk_app.settings.rules import RuleError
from tests.infra.conftest import ENVIRONMENTS, SKIP_BUNDLING, alias_logical_id, only

ALIAS_UPDATE = "CodeDeployLambdaAliasUpdate"


def resources(template: Template, resource_type: str) -> Mapping[str, Mapping[str, Any]]:
    return template.find_resources(resource_type)


def group_of(template: Template, prefix: str) -> tuple[str, dict]:
    """The deployment group named in the UpdatePolicy of the alias of the function ``prefix`` (Api, TasksWorker)."""
    alias_id = alias_logical_id(template, prefix)
    update = template.to_json()["Resources"][alias_id]["UpdatePolicy"][ALIAS_UPDATE]
    group_id = update["DeploymentGroupName"]["Ref"]
    return group_id, template.to_json()["Resources"][group_id]


def hooks_of(template: Template, prefix: str) -> dict[str, dict]:
    """The hook functions of the alias of ``prefix``, by lifecycle event."""
    body = template.to_json()["Resources"]
    update = body[alias_logical_id(template, prefix)]["UpdatePolicy"][ALIAS_UPDATE]
    return {event: body[update[event]["Ref"]] for event in ("BeforeAllowTrafficHook", "AfterAllowTrafficHook")
            if event in update}


def alarm_ids(group: dict) -> set[str]:
    return {alarm["Name"]["Ref"] for alarm in group["Properties"]["AlarmConfiguration"]["Alarms"]}


# --- the three environments as configured ----------------------------------------------------

@pytest.mark.parametrize("prefix", ["Api", "TasksWorker"])
def test_every_function_alias_is_released_by_codedeploy(template, prefix):
    group_id, group = group_of(template, prefix)

    assert group["Properties"]["DeploymentStyle"] == {"DeploymentType": "BLUE_GREEN",
                                                      "DeploymentOption": "WITH_TRAFFIC_CONTROL"}
    events = set(group["Properties"]["AutoRollbackConfiguration"]["Events"])
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"} <= events


def test_one_codedeploy_application_holds_every_group(template):
    (application_id,) = resources(template, "AWS::CodeDeploy::Application")
    for group in resources(template, "AWS::CodeDeploy::DeploymentGroup").values():
        assert group["Properties"]["ApplicationName"] == {"Ref": application_id}


def test_dev_shifts_all_at_once(synth):
    _, group = group_of(synth.templates["dev"], "Api")
    assert group["Properties"]["DeploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"


@pytest.mark.parametrize("env, routing", [
    ("staging", {"Type": "TimeBasedLinear", "TimeBasedLinear": {"LinearInterval": 1, "LinearPercentage": 25}}),
    ("prod", {"Type": "TimeBasedCanary", "TimeBasedCanary": {"CanaryInterval": 5, "CanaryPercentage": 10}}),
])
def test_staging_and_prod_shift_in_steps(synth, env, routing):
    template = synth.templates[env]
    _, group = group_of(template, "Api")
    config_id = group["Properties"]["DeploymentConfigName"]["Ref"]
    config = template.to_json()["Resources"][config_id]

    assert config["Type"] == "AWS::CodeDeploy::DeploymentConfig"
    assert config["Properties"]["ComputePlatform"] == "Lambda"
    assert config["Properties"]["TrafficRoutingConfig"] == routing


def test_a_release_rolls_back_on_the_functions_errors_and_p99_and_the_api_5xx(synth):
    template = synth.templates["prod"]
    alarms = {name: alarm_id for alarm_id in resources(template, "AWS::CloudWatch::Alarm")
              for name in ("ApiErrors", "ApiSlowP99", "ApiThrottles", "Gateway5xxRate", "WorkerErrors",
                           "WorkerSlowP99", "WorkerThrottles") if alarm_id.startswith(f"Observability{name}")}

    _, api = group_of(template, "Api")
    _, worker = group_of(template, "TasksWorker")

    assert alarm_ids(api) == {alarms["ApiErrors"], alarms["ApiSlowP99"], alarms["Gateway5xxRate"]}
    assert alarm_ids(worker) == {alarms["WorkerErrors"], alarms["WorkerSlowP99"]}  # the API's 5xx is not its doing
    assert api["Properties"]["AlarmConfiguration"]["Enabled"] is True


def test_the_rollback_alarms_watch_the_alias_that_carries_both_versions(synth):
    template = synth.templates["prod"]
    _, group = group_of(template, "Api")
    errors = template.to_json()["Resources"][sorted(alarm_ids(group))[0]]["Properties"]
    dimensions = {d["Name"]: d["Value"] for d in errors.get("Dimensions", [])}
    # Invocations of the new version through the alias count under the alias's Resource dimension.
    function_id = only(template, "AWS::Lambda::Function", "Api")[0]
    assert dimensions["Resource"] == {"Fn::Join": ["", [{"Ref": function_id}, ":live"]]}


@pytest.mark.parametrize("env, events", [("dev", {"BeforeAllowTrafficHook"}), ("staging", {"BeforeAllowTrafficHook"}),
                                         ("prod", {"BeforeAllowTrafficHook", "AfterAllowTrafficHook"})])
def test_smoke_test_hooks_per_environment(synth, env, events):
    template = synth.templates[env]
    for prefix, path in (("Api", "/health"), ("TasksWorker", "")):
        hooks = hooks_of(template, prefix)
        assert set(hooks) == events
        for hook in hooks.values():
            body = hook["Properties"]
            variables = body["Environment"]["Variables"]
            assert body["Handler"] == SMOKE_TEST_HANDLER
            assert variables[SMOKE_TEST_PATH_VARIABLE] == path  # the worker gets a warmup ping
            function_id = only(template, "AWS::Lambda::Function", prefix)[0]
            assert variables[SMOKE_TEST_FUNCTION_VARIABLE] == {"Ref": function_id}
            assert "VpcConfig" not in body, "the hook calls only AWS APIs: never in the function's VPC"
            assert body["Timeout"] > template.to_json()["Resources"][function_id]["Properties"]["Timeout"]


def _statements_of_role(template: Template, role_id: str) -> list[dict]:
    return [s for policy in resources(template, "AWS::IAM::Policy").values()
            if {"Ref": role_id} in policy["Properties"]["Roles"]
            for s in policy["Properties"]["PolicyDocument"]["Statement"]]


def test_a_hook_may_read_its_deployment_report_to_it_and_invoke_only_its_functions_versions(synth):
    template = synth.templates["prod"]
    group_id, _ = group_of(template, "Api")
    function_id = only(template, "AWS::Lambda::Function", "Api")[0]
    hook = hooks_of(template, "Api")["BeforeAllowTrafficHook"]
    statements = _statements_of_role(template, hook["Properties"]["Role"]["Fn::GetAtt"][0])
    by_action = {}
    for statement in statements:
        for action in [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]:
            by_action.setdefault(action, []).append(json.dumps(statement["Resource"]))

    assert any(group_id in r for r in by_action["codedeploy:PutLifecycleEventHookExecutionStatus"])
    assert any(group_id in r for r in by_action["codedeploy:GetDeployment"])
    (invoke,) = by_action["lambda:InvokeFunction"]
    assert json.loads(invoke) == {"Fn::Join": ["", [{"Fn::GetAtt": [function_id, "Arn"]}, ":*"]]}
    assert "*" not in by_action


def test_codedeploy_may_invoke_the_hooks(synth):
    template = synth.templates["prod"]
    group_id, group = group_of(template, "Api")
    role_id = group["Properties"]["ServiceRoleArn"]["Fn::GetAtt"][0]
    granted = json.dumps(_statements_of_role(template, role_id))
    body = template.to_json()["Resources"]
    update = body[alias_logical_id(template)]["UpdatePolicy"][ALIAS_UPDATE]
    for event in ("BeforeAllowTrafficHook", "AfterAllowTrafficHook"):
        assert update[event]["Ref"] in granted


def test_provisioned_concurrency_and_snapstart_keep_working_under_codedeploy(synth):
    prod, staging = synth.templates["prod"], synth.templates["staging"]
    prod_alias = prod.to_json()["Resources"][alias_logical_id(prod)]
    assert prod_alias["Properties"]["ProvisionedConcurrencyConfig"] == {"ProvisionedConcurrentExecutions": 2}
    assert ALIAS_UPDATE in prod_alias["UpdatePolicy"]
    # Autoscaling still targets the alias, not a version that changes with every release.
    (target,) = resources(prod, "AWS::ApplicationAutoScaling::ScalableTarget").values()
    assert alias_logical_id(prod) in json.dumps(target["Properties"]["ResourceId"])
    staging_function = only(staging, "AWS::Lambda::Function", "Api")[1]["Properties"]
    assert staging_function["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert ALIAS_UPDATE in staging.to_json()["Resources"][alias_logical_id(staging)]["UpdatePolicy"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_the_preflight_finds_no_release_error(synth, env):
    findings = [f for f in check_template(synth.templates[env].to_json())
                if f.rule.id.startswith(("CODEDEPLOY", "LAMBDA-IMAGE"))]
    # prod's provisioned concurrency on a released alias is a warning the stack acknowledges with its reason.
    expected = {("CODEDEPLOY-PROVISIONED-SCALING", "warning")} if env == "prod" else set()
    assert {(f.rule.id, f.rule.severity) for f in findings} == expected


# --- the construct alone ------------------------------------------------------------------------

def test_a_release_on_a_function_alone():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "Alone")
    function = ServiceFunction(stack, "Orders")
    release = ReleaseControl(stack, "Release", function=function, http=False,
                             plan=Release.linear(20, 2, smoke_test="/health"))
    alarm = cloudwatch.Alarm(stack, "Errors", metric=function.metric_errors(), threshold=1, evaluation_periods=1)
    release.roll_back_on(alarm)
    template = Template.from_stack(stack)

    (config,) = resources(template, "AWS::CodeDeploy::DeploymentConfig").values()
    assert config["Properties"]["TrafficRoutingConfig"]["TimeBasedLinear"] == {"LinearInterval": 2,
                                                                               "LinearPercentage": 20}
    (hook,) = release.hooks
    variables = template.to_json()["Resources"][stack.get_logical_id(cast(CfnElement, hook.function.node.default_child))][
        "Properties"]["Environment"]["Variables"]
    assert variables[SMOKE_TEST_PATH_VARIABLE] == ""  # http=False: a warmup ping
    (group,) = resources(template, "AWS::CodeDeploy::DeploymentGroup").values()
    assert len(group["Properties"]["AlarmConfiguration"]["Alarms"]) == 1


def test_a_plan_that_does_not_roll_back_on_alarms_adds_none():
    stack = Stack(App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False), "NoAlarms")
    function = ServiceFunction(stack, "Orders")
    release = ReleaseControl(stack, "Release", function=function, plan=Release(rollback_on_alarms=False))
    release.roll_back_on(cloudwatch.Alarm(stack, "Errors", metric=function.metric_errors(), threshold=1,
                                          evaluation_periods=1))
    (group,) = resources(Template.from_stack(stack), "AWS::CodeDeploy::DeploymentGroup").values()
    assert "AlarmConfiguration" not in group["Properties"] or not group["Properties"]["AlarmConfiguration"].get(
        "Enabled")


def test_the_plan_defaults_are_the_settings():
    plan = props.release(EnvironmentSettings.model_validate({}))["plan"]
    assert plan == Release()
    assert Release().strategy == DEFAULTS.release.strategy == "all-at-once"
    assert Release().describe() == "all-at-once"
    assert Release.canary(10, 5, smoke_test="/health").describe() == "canary 10% +5m +smoke"
    assert Release.linear(25, 1).describe() == "linear 25%/1m"


# --- refusals, named as the reader wrote them ---------------------------------------------------

@pytest.mark.parametrize("plan, words", [
    (Release("canary", percentage=100), "release.percentage=100 must be a whole percentage from 1 to 99"),
    (Release("linear", percentage=1, interval_minutes=60), "takes 5940 minutes, above the 2880 minutes"),
    (Release(post_traffic_test=True), "release.post_traffic_test needs release.smoke_test"),
    (Release(smoke_test="health"), "must be a path starting with '/'"),
])
def test_a_plan_codedeploy_would_refuse_is_refused(plan, words):
    with pytest.raises(RuleError, match=words.replace("(", r"\(").replace(")", r"\)")):
        plan.validate()


@pytest.mark.parametrize("release, words", [
    ({"strategy": "canary", "percentage": 0}, "environments.prod.release.percentage: 0 is not allowed"),
    ({"strategy": "linear", "percentage": 1, "interval_minutes": 60},
     "release.interval_minutes=60 takes 5940 minutes"),
    ({"strategy": "blue-green"}, "environments.prod.release.strategy"),
    ({"post_traffic_test": True}, "release.post_traffic_test needs release.smoke_test"),
    ({"smoke_test": "health check"}, "environments.prod.release.smoke_test"),
])
def test_settings_name_the_release_key(release, words):
    context = read_cdk_json_context()
    context["environments"]["prod"]["release"] = release
    with pytest.raises(ConfigError) as raised:
        load_settings(context)
    assert words in str(raised.value)


# --- the main job's summary --------------------------------------------------------------------

def test_the_summary_shows_each_environments_release_and_packaging(synth, tmp_path, monkeypatch, capsys):
    from collections import Counter

    from cdk_app import report

    synth.app.synth()
    monkeypatch.setattr(report, "cfn_lint", lambda *paths: {p.name: Counter() for p in paths})
    monkeypatch.setattr(report, "checkov", lambda *paths: {p.name: report.CheckovCounts() for p in paths})

    assert report.main([str(synth.outdir)]) == 0
    header, _, *rows = capsys.readouterr().out.splitlines()
    assert "release" in header and "pkg" in header
    row = {env: next(line for line in rows if line.startswith(f"fastapi-lambda-{env} ")) for env in ENVIRONMENTS}
    assert "all-at-once +smoke" in row["dev"] and "linear 25%/1m +smoke" in row["staging"]
    assert "canary 10% +5m +smoke" in row["prod"]
    assert all(" zip " in line for line in row.values())
