"""Cold-start strategies in the templates, and every refused combination with its message."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Match

from cdk_app.bundling import BundlingTarget
from cdk_app.cold_start import WARMUP_MARKER, ColdStart, ProvisionedConcurrency, Warmup
from cdk_app.function import FastApiFunction
from cdk_app.settings import ConfigError, load_settings, read_cdk_json_context
from cdk_app.stack import build_stacks
from tests.infra.conftest import API, SKIP_BUNDLING, alias_logical_id, make_app, only, template_of


def function_properties(template) -> dict:
    return only(template, "AWS::Lambda::Function", API)[1]["Properties"]


def import_mode(template) -> str:
    return function_properties(template)["Environment"]["Variables"]["IMPORT_MODE"]


def synth_env(name: str, cold_start: dict):
    context = read_cdk_json_context()
    context["environments"][name]["cold_start"] = cold_start
    return template_of(build_stacks(make_app({**context, "env": name}))[name])


# --- the three environments as configured -------------------------------------------------

def test_dev_warms_one_instance_every_five_minutes_through_the_alias(synth):
    template = synth.templates["dev"]
    rule = template.find_resources("AWS::Events::Rule")
    assert len(rule) == 1
    properties = next(iter(rule.values()))["Properties"]
    assert properties["ScheduleExpression"] == "rate(5 minutes)"
    (target,) = properties["Targets"]
    assert target["Arn"] == {"Ref": alias_logical_id(template)}
    assert json.loads(target["Input"]) == {WARMUP_MARKER: {"concurrency": 1, "hold_ms": 100}}
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 0}
    template.has_resource_properties("AWS::Lambda::Permission", {
        "Principal": "events.amazonaws.com", "FunctionName": {"Ref": alias_logical_id(template)}})
    assert import_mode(template) == "lazy"
    assert "SnapStart" not in function_properties(template)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 0)
    assert not template.find_resources("AWS::IAM::Policy", {"Properties": {"PolicyName": Match.string_like_regexp(
        "FanOut")}}), "one invocation: no fan-out permission"
    # EventBridge invokes asynchronously: Lambda's own retries are off too, and stale pings dropped.
    _, invoke_config = only(template, "AWS::Lambda::EventInvokeConfig", API)
    assert invoke_config["Properties"]["MaximumRetryAttempts"] == 0
    assert invoke_config["Properties"]["MaximumEventAgeInSeconds"] == 60
    assert alias_logical_id(template) in json.dumps(invoke_config["Properties"]["Qualifier"])


def test_staging_uses_snapstart_on_published_versions(synth):
    template = synth.templates["staging"]
    assert function_properties(template)["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    assert "ProvisionedConcurrencyConfig" not in only(template, "AWS::Lambda::Alias", API)[1]["Properties"]
    template.resource_count_is("AWS::Events::Rule", 0)
    assert import_mode(template) == "eager"


def test_prod_provisions_2_to_5_on_the_alias_with_target_tracking_and_a_spillover_alarm(synth):
    template = synth.templates["prod"]
    template.has_resource_properties("AWS::Lambda::Alias", {
        "Name": "live", "ProvisionedConcurrencyConfig": {"ProvisionedConcurrentExecutions": 2}})
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalableTarget", {
        "MinCapacity": 2, "MaxCapacity": 5, "ScalableDimension": "lambda:function:ProvisionedConcurrency",
        "ServiceNamespace": "lambda", "ResourceId": Match.object_like({"Fn::Join": Match.any_value()})})
    template.has_resource_properties("AWS::ApplicationAutoScaling::ScalingPolicy", {
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": Match.object_like({
            "TargetValue": 0.7,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "LambdaProvisionedConcurrencyUtilization"},
        }),
    })
    template.resource_count_is("AWS::Events::Rule", 0)
    assert "SnapStart" not in function_properties(template)
    assert import_mode(template) == "eager"


def test_spillover_alarm_fires_on_sustained_spillover_of_the_alias(synth):
    # Any spillover in 3 of 5 one-minute periods; no traffic is not a problem.
    alarm = only(synth.templates["prod"], "AWS::CloudWatch::Alarm", API)[1]["Properties"]

    assert {key: alarm[key] for key in ("Namespace", "MetricName", "Statistic", "Period", "Threshold",
                                        "ComparisonOperator", "EvaluationPeriods", "DatapointsToAlarm",
                                        "TreatMissingData")} == {
        "Namespace": "AWS/Lambda", "MetricName": "ProvisionedConcurrencySpilloverInvocations", "Statistic": "Sum",
        "Period": 60, "Threshold": 1, "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 5, "DatapointsToAlarm": 3, "TreatMissingData": "notBreaching"}
    resource = next(d["Value"] for d in alarm["Dimensions"] if d["Name"] == "Resource")
    assert ":live" in json.dumps(resource), "the alarm must watch the alias, where provisioned concurrency lives"


def test_scalable_target_is_the_live_alias(synth):
    resource_id = json.dumps(next(iter(synth.templates["prod"].find_resources(
        "AWS::ApplicationAutoScaling::ScalableTarget").values()))["Properties"]["ResourceId"])
    assert ":live" in resource_id and "function:" in resource_id


# --- other settings --------------------------------------------------------------------------

def test_scheduled_scaling_from_cron_settings():
    template = synth_env("prod", {"strategy": "provisioned", "provisioned": {"min": 2, "max": 5, "schedules": [
        {"name": "business-hours", "cron": "0 8 ? * MON-FRI *", "min": 4, "max": 10, "time_zone": "Europe/Berlin"},
        {"name": "evenings", "cron": "0 20 ? * MON-FRI *", "min": 2, "max": 5}]}})

    actions = next(iter(template.find_resources("AWS::ApplicationAutoScaling::ScalableTarget").values()))[
        "Properties"]["ScheduledActions"]
    assert {a["ScheduledActionName"]: (a["Schedule"], a["ScalableTargetAction"], a.get("Timezone")) for a in actions} \
        == {"business-hours": ("cron(0 8 ? * MON-FRI *)", {"MinCapacity": 4, "MaxCapacity": 10}, "Europe/Berlin"),
            "evenings": ("cron(0 20 ? * MON-FRI *)", {"MinCapacity": 2, "MaxCapacity": 5}, None)}


def test_fan_out_may_invoke_only_its_own_alias():
    template = synth_env("dev", {"strategy": "warmup", "warmup": {"rate_minutes": 3, "concurrency": 4}})

    rule = next(iter(template.find_resources("AWS::Events::Rule").values()))["Properties"]
    assert rule["ScheduleExpression"] == "rate(3 minutes)"
    assert json.loads(rule["Targets"][0]["Input"])[WARMUP_MARKER]["concurrency"] == 4
    policies = template.find_resources("AWS::IAM::Policy", {"Properties": {"PolicyName": Match.string_like_regexp(
        "FanOut")}})
    (policy,) = policies.values()
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    resource = json.dumps(statement["Resource"])
    assert '":function:"' in resource and '":live"' in resource and '"*"' not in resource


def test_forced_warmup_beside_provisioned_keeps_both():
    template = synth_env("prod", {"strategy": "provisioned", "warmup": {"force": True}})

    template.resource_count_is("AWS::Events::Rule", 1)
    template.resource_count_is("AWS::ApplicationAutoScaling::ScalableTarget", 1)


def test_import_mode_can_be_set_against_the_default():
    assert import_mode(synth_env("prod", {"strategy": "provisioned", "import_mode": "lazy"})) == "lazy"


def test_no_strategy_means_no_cold_start_resources():
    template = synth_env("dev", {"strategy": "none"})

    for kind in ("AWS::Events::Rule", "AWS::ApplicationAutoScaling::ScalableTarget", "AWS::CloudWatch::Alarm"):
        assert not [name for name in template.find_resources(kind) if name.startswith(API)], kind
    assert import_mode(template) == "lazy"


def test_environments_without_a_setting_get_the_documented_defaults():
    context = read_cdk_json_context()
    for env in context["environments"].values():
        env.pop("cold_start")
    context["environments"]["qa"] = {}

    strategies = {n: e.cold_start.strategy for n, e in load_settings(context).environments.items()}

    assert strategies == {"dev": "warmup", "staging": "snapstart", "prod": "provisioned", "qa": "none"}


def test_the_rule_payload_is_what_the_handler_answers_as_a_warmup():
    from fastapi_lambda.dispatch import classify_event

    assert classify_event(Warmup(concurrency=3).payload()) == "warmup"


def test_only_the_warmup_strategy_configures_async_invokes(synth):
    for env in ("staging", "prod"):
        synth.templates[env].resource_count_is("AWS::Lambda::EventInvokeConfig", 0)


# --- refused combinations: configuration -----------------------------------------------------

REFUSED_SETTINGS = {
    "snapstart with provisioned": (
        {"strategy": "snapstart", "provisioned": {"min": 2, "max": 5}},
        "SnapStart does not support provisioned concurrency; choose one"),
    "warmup beside provisioned": (
        {"strategy": "provisioned", "warmup": {"rate_minutes": 5}},
        "cold_start.warmup beside the 'provisioned' strategy is redundant (its instances are already initialized) "
        "and costs invocations; remove cold_start.warmup, or set cold_start.warmup.force to true"),
    "warmup beside snapstart": (
        {"strategy": "snapstart", "warmup": {}}, "warmup beside the 'snapstart' strategy is redundant"),
    "provisioned min above max": (
        {"strategy": "provisioned", "provisioned": {"min": 6, "max": 5}}, "min=6 is above max=5; set min <= max"),
    "utilization out of range": (
        {"strategy": "provisioned", "provisioned": {"target_utilization": 1.5}},
        "cold_start.provisioned.target_utilization: 1.5 is not allowed (allowed: more than 0 and less than 1)"),
    "cron with five fields": (
        {"strategy": "provisioned", "provisioned": {"schedules": [{"name": "x", "cron": "0 8 * * 1", "min": 1,
                                                                   "max": 2}]}},
        "cron needs 6 fields"),
    "unknown strategy": ({"strategy": "keepwarm"}, '(allowed: "provisioned", "snapstart", "warmup", "none")'),
}


@pytest.mark.parametrize(("cold_start", "message"), REFUSED_SETTINGS.values(), ids=REFUSED_SETTINGS.keys())
def test_refused_settings_name_the_environment_and_the_fix(cold_start, message):
    context = read_cdk_json_context()
    context["environments"]["prod"]["cold_start"] = cold_start

    with pytest.raises(ConfigError) as caught:
        build_stacks(make_app(context))

    assert "environments.prod" in str(caught.value) and message in str(caught.value)


# --- refused combinations: constructs used directly ------------------------------------------

def construct(cold_start: ColdStart, target: BundlingTarget = BundlingTarget()):
    FastApiFunction(Stack(App(context=SKIP_BUNDLING), "Direct"), "Api", target=target, cold_start=cold_start)


REFUSED_PLANS = {
    "snapstart with provisioned": (
        ColdStart("snapstart", provisioned=ProvisionedConcurrency()), BundlingTarget(),
        "SnapStart does not support provisioned concurrency; choose one"),
    "snapstart on python 3.11": (
        ColdStart.snap_start(), BundlingTarget(python_version="3.11"),
        "SnapStart for Python needs Python 3.12 or later, not 3.11"),
    "warmup beside provisioned": (
        ColdStart.provisioned_concurrency(warmup=Warmup()), BundlingTarget(),
        "cold_start.warmup beside the 'provisioned' strategy is redundant"),
    "min above max": (
        ColdStart.provisioned_concurrency(ProvisionedConcurrency(min_capacity=3, max_capacity=1)), BundlingTarget(),
        "provisioned.min_capacity=3 is above provisioned.max_capacity=1; set min <= max"),
}


@pytest.mark.parametrize(("plan", "target", "message"), REFUSED_PLANS.values(), ids=REFUSED_PLANS.keys())
def test_refused_plans(plan, target, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        construct(plan, target)


def test_snapstart_refuses_container_images():
    with pytest.raises(ValueError, match="snapstart.* with packaging .image. is refused"):
        ColdStart.snap_start().validate(lambda_.Runtime.FROM_IMAGE)


def test_forced_warmup_beside_provisioned_is_accepted_by_the_construct():
    construct(ColdStart.provisioned_concurrency(warmup=Warmup(), force_warmup=True))


@pytest.mark.parametrize(("cold_start", "key"), [
    ({"strategy": "provisioned", "provisioned": {"min": 2, "max": 5}}, "cold_start.provisioned.max=5"),
    ({"strategy": "warmup", "warmup": {"concurrency": 4}}, "cold_start.warmup.concurrency=4"),
])
def test_cold_start_must_fit_the_reserved_concurrency(cold_start, key):
    context = read_cdk_json_context()
    context["environments"]["staging"]["function"]["reserved_concurrency"] = 3
    context["environments"]["staging"]["cold_start"] = cold_start

    with pytest.raises(ConfigError, match=rf"environments.staging: {key} exceeds function.reserved_concurrency=3"):
        load_settings(context)


def test_construct_refuses_provisioned_beyond_the_reservation():
    with pytest.raises(ValueError, match=r"provisioned.max_capacity=5 exceeds reserved_concurrency=4"):
        FastApiFunction(Stack(App(context=SKIP_BUNDLING), "Reserved"), "Api", reserved_concurrency=4,
                        cold_start=ColdStart.provisioned_concurrency())


def test_config_caps_warmup_concurrency_where_the_handler_clamps():
    from fastapi_lambda.constants import MAX_WARMUP_CONCURRENCY

    context = read_cdk_json_context()
    context["environments"]["dev"]["cold_start"] = {"strategy": "warmup",
                                                    "warmup": {"concurrency": MAX_WARMUP_CONCURRENCY}}
    warmup = load_settings(context).environments["dev"].cold_start.warmup
    assert warmup is not None and warmup.concurrency == MAX_WARMUP_CONCURRENCY

    context["environments"]["dev"]["cold_start"]["warmup"]["concurrency"] = MAX_WARMUP_CONCURRENCY + 1
    with pytest.raises(ConfigError, match=rf"cold_start.warmup.concurrency: {MAX_WARMUP_CONCURRENCY + 1} is not allowed"):
        load_settings(context)
