"""Alarms that reach someone, the dashboard, configuration grants, and what no template may hold."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Template
from fastapi_lambda.constants import (
    CONFIG_MAX_AGE_VARIABLE,
    CONFIG_PATH_VARIABLE,
    METRICS_NAMESPACE,
    METRICS_NAMESPACE_VARIABLE,
    SECRETS_VARIABLE,
    SERVICE_NAME_VARIABLE,
    TRACING_VARIABLE,
)

from cdk_app.settings import ConfigError, load_settings, read_cdk_json_context
from cdk_app.stack import build_stacks
from tests.infra.conftest import API, make_app, only, template_of

SETTINGS = load_settings(read_cdk_json_context()).environments


def topic_id(template: Template) -> str:
    return only(template, "AWS::SNS::Topic", "ObservabilityAlarms")[0]


def test_every_alarm_notifies_the_topic_when_it_fires_and_recovers(template):
    topic = {"Ref": topic_id(template)}
    alarms = template.find_resources("AWS::CloudWatch::Alarm")

    assert len(alarms) >= 7
    for name, alarm in alarms.items():
        assert alarm["Properties"]["AlarmActions"] == [topic], name
        assert alarm["Properties"]["OKActions"] == [topic], name


def cloudwatch_may(statement: dict, actions: set[str]) -> bool:
    """Whether a policy statement allows CloudWatch, for this account's alarms only, the given actions."""
    condition = json.dumps(statement.get("Condition", {}))
    return statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "cloudwatch.amazonaws.com"} \
        and set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]) == actions \
        and "aws:SourceAccount" in condition and ":alarm:*" in condition


def test_the_topic_is_encrypted_with_a_key_cloudwatch_may_use_tls_only_and_subscribed(template, env_name):
    # The AWS managed alias/aws/sns key refuses CloudWatch: every notification would fail (aws-cdk #11121).
    topic = only(template, "AWS::SNS::Topic", "ObservabilityAlarms")[1]["Properties"]
    key_id, key = only(template, "AWS::KMS::Key", "ObservabilityAlarmsKey")
    policy = only(template, "AWS::SNS::TopicPolicy")[1]["Properties"]["PolicyDocument"]["Statement"]
    emails = [s["Properties"]["Endpoint"] for s in template.find_resources("AWS::SNS::Subscription").values()]

    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == ("Retain" if SETTINGS[env_name].removal_policy == "retain" else "Delete")
    assert any(cloudwatch_may(s, {"kms:Decrypt", "kms:GenerateDataKey*"})
               for s in key["Properties"]["KeyPolicy"]["Statement"])
    # The topic policy replaces SNS's default one, so CloudWatch needs its own statement to publish.
    assert any(cloudwatch_may(s, {"sns:Publish"}) for s in policy)
    assert any(s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in policy)
    assert emails == SETTINGS[env_name].observability.alarm_emails


def test_undeliverable_notifications_go_to_an_encrypted_dead_letter_queue_with_an_alarm(synth):
    template = synth.templates["prod"]
    subscription = only(template, "AWS::SNS::Subscription")[1]["Properties"]
    queue_id, queue = only(template, "AWS::SQS::Queue", "ObservabilityUndelivered")
    policy = [p["Properties"] for p in template.find_resources("AWS::SQS::QueuePolicy").values()
              if p["Properties"]["Queues"] == [{"Ref": queue_id}]][0]["PolicyDocument"]["Statement"]
    alarm = only(template, "AWS::CloudWatch::Alarm", "ObservabilityUndeliveredAlarmsAlarm")[1]["Properties"]

    assert subscription["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": [queue_id, "Arn"]}}
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert any(s["Effect"] == "Allow" and s["Principal"] == {"Service": "sns.amazonaws.com"} for s in policy)
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 1
    # Without a subscription there is nothing to dead-letter.
    assert not [k for k in synth.templates["dev"].find_resources("AWS::SQS::Queue") if "Undelivered" in k]


@pytest.mark.parametrize("function", [API, "TasksWorker"])
def test_each_function_has_error_throttle_and_slow_p99_alarms(template, function):
    timeout = only(template, "AWS::Lambda::Function", function)[1]["Properties"]["Timeout"]
    name = "Api" if function == API else "Worker"
    alarms = {k.removeprefix(f"Observability{name}"): a["Properties"] for k, a in
              template.find_resources("AWS::CloudWatch::Alarm").items() if k.startswith(f"Observability{name}")}

    assert {k[:-8] for k in alarms} == {"Errors", "Throttles", "SlowP99"}
    slow = next(a for k, a in alarms.items() if k.startswith("SlowP99"))
    assert (slow["MetricName"], slow["ExtendedStatistic"], slow["Threshold"]) == ("Duration", "p99", timeout * 800)
    errors = next(a for k, a in alarms.items() if k.startswith("Errors"))
    assert ":live" in json.dumps(errors["Dimensions"])  # on the alias, where traffic goes


def test_api_5xx_rate_alarm_uses_the_configured_share(template, env_name):
    alarm = only(template, "AWS::CloudWatch::Alarm", "ObservabilityGateway5xxRate")[1]["Properties"]
    expressions = {m["Id"]: m for m in alarm["Metrics"]}

    assert alarm["Threshold"] == SETTINGS[env_name].observability.api_5xx_percent
    assert expressions["expr_1"]["Expression"] == "100 * errors / MAX([count, 1])"
    metric = "5xx" if SETTINGS[env_name].api.type == "http" else "5XXError"
    assert expressions["errors"]["MetricStat"]["Metric"]["MetricName"] == metric


def test_a_dashboard_per_environment(template):
    body = json.dumps(only(template, "AWS::CloudWatch::Dashboard")[1]["Properties"]["DashboardBody"])
    assert "Api invocations and errors" in body and "API requests and 5xx" in body


def test_every_function_carries_the_logging_metrics_and_tracing_settings(template, env_name):
    for name, function in template.find_resources("AWS::Lambda::Function").items():
        if name.startswith(("BucketNotificationsHandler", "Custom")):
            continue  # CDK's own deploy-time handlers
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[SERVICE_NAME_VARIABLE] == f"fastapi-lambda-{env_name}"
        assert variables[METRICS_NAMESPACE_VARIABLE] == METRICS_NAMESPACE
        assert variables[TRACING_VARIABLE] == "xray" and function["Properties"]["TracingConfig"] == {"Mode": "Active"}


def test_tracing_off_and_adot_settings(context):
    context["environments"]["staging"]["observability"] = {"tracing": "off"}
    staging = template_of(build_stacks(make_app({**context, "env": "staging"}))["staging"])
    function = only(staging, "AWS::Lambda::Function", API)[1]["Properties"]
    assert "TracingConfig" not in function and function["Environment"]["Variables"][TRACING_VARIABLE] == "off"
    assert "xray" not in json.dumps(staging.find_resources("AWS::IAM::Policy"))

    arn = "arn:aws:lambda:eu-west-1:901920570463:layer:aws-otel-python-arm64-ver-1-32-0:1"
    context["environments"]["staging"]["observability"] = {"tracing": "adot", "adot_layer_arn": arn}
    adot = only(template_of(build_stacks(make_app({**context, "env": "staging"}))["staging"]),
                "AWS::Lambda::Function", API)[1]["Properties"]
    assert arn in adot["Layers"] and adot["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"] == "/opt/otel-instrument"

    context["environments"]["staging"]["observability"] = {"tracing": "adot"}
    with pytest.raises(ConfigError, match="observability.tracing 'adot' and observability.adot_layer_arn go together"):
        load_settings(context)


# --- configuration and secrets -----------------------------------------------------------------

def test_parameters_live_under_the_environments_path(template, env_name):
    path = f"/fastapi-lambda/{env_name}/"
    parameters = {p["Properties"]["Name"]: p["Properties"]["Value"]
                  for p in template.find_resources("AWS::SSM::Parameter").values()}

    assert parameters == {f"{path}{k}": v for k, v in SETTINGS[env_name].config.parameters.items()}
    for prefix in (API, "TasksWorker"):
        variables = only(template, "AWS::Lambda::Function", prefix)[1]["Properties"]["Environment"]["Variables"]
        assert variables[CONFIG_PATH_VARIABLE] == path
        assert variables[CONFIG_MAX_AGE_VARIABLE] == str(SETTINGS[env_name].config.max_age_seconds)
        for name in SETTINGS[env_name].config.secrets:  # the secrets' names, never their values
            assert name in json.dumps(variables[SECRETS_VARIABLE])


def test_reads_are_least_privilege(template, env_name):
    statements = only(template, "AWS::IAM::Policy", "ConfigReadApi")[1]["Properties"]["PolicyDocument"]["Statement"]
    secret = only(template, "AWS::SecretsManager::Secret", "ConfigSecret")[0]
    by_action = {json.dumps(s["Action"]): s["Resource"] for s in statements}

    parameters = [json.dumps(r) for r in by_action['["ssm:GetParameter", "ssm:GetParameters", '
                                                   '"ssm:GetParametersByPath"]']]
    # The path itself (GetParametersByPath) and what is under it: nothing outside the environment's path.
    assert [r.endswith(f':parameter/fastapi-lambda/{env_name}"]]}}') for r in parameters] == [True, False]
    assert parameters[1].endswith(f':parameter/fastapi-lambda/{env_name}/*"]]}}')
    assert by_action['"secretsmanager:GetSecretValue"'] == {"Ref": secret}
    assert not any("kms:" in a for a in by_action)  # no SecureString referenced here: no decrypt


#: The only actions any policy of ours may allow on Resource '*', each because AWS documents no
#: resource-level permissions for it (or scopes it by a condition instead).
WILDCARD_RESOURCE_ACTIONS = frozenset({
    "xray:PutTraceSegments", "xray:PutTelemetryRecords",  # X-Ray: no resource-level permissions
    "kms:Decrypt",  # SecureString reads, limited by kms:ViaService to SSM (AppParameters)
    "s3:PutBucketNotification",  # aws-cdk-lib's bucket-notifications handler
    # Lambda's network interfaces of a VPC function (ServiceFunction's NetworkPolicy)
    "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
    "ec2:DescribeSecurityGroups", "ec2:AuthorizeSecurityGroupIngress", "ec2:AuthorizeSecurityGroupEgress",
    "ec2:RevokeSecurityGroupIngress", "ec2:RevokeSecurityGroupEgress",  # CDK's default-security-group restriction
})


def test_no_policy_grants_every_resource_except_where_aws_requires_it(synth):
    for env, template in synth.templates.items():
        for name, policy in template.find_resources("AWS::IAM::Policy").items():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
                if "*" in resources:
                    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
                    assert set(actions) <= WILDCARD_RESOURCE_ACTIONS, f"{env} {name}: {actions} on *"


def test_no_secret_value_in_any_template_or_environment(synth):
    for template in synth.templates.values():
        text = json.dumps(template.to_json())
        assert "resolve:ssm-secure" not in text
        for name, function in template.find_resources("AWS::Lambda::Function").items():
            variables = json.dumps(function["Properties"].get("Environment", {}))
            assert "resolve:secretsmanager" not in variables and "SecretString" not in variables, name
        # A generated secret's value is made by Secrets Manager at deploy time; CloudFormation only names it.
        for secret in template.find_resources("AWS::SecretsManager::Secret").values():
            assert "SecretString" not in secret["Properties"] and "GenerateSecretString" in secret["Properties"]
