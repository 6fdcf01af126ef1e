"""The task queue, its worker, the status table and the file intake, in every environment and standalone."""

from __future__ import annotations

import json

import pytest
from aws_cdk import App, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_sqs as sqs
from aws_cdk.assertions import Template
from fastapi_lambda.constants import TASK_QUEUE_URL_VARIABLE, TASK_TABLE_VARIABLE

from cdk_app.compliance import add_compliance_checks
from cdk_app.settings import ConfigError, load_settings
from cdk_app.settings.rules import RuleError
from cdk_app.stack import build_stacks
from cdk_app.tasks import PRODUCER_TABLE_ACTIONS, WORKER_TABLE_ACTIONS, FileIntake, TaskQueue, TaskWorker
from tests.infra.conftest import API, SKIP_BUNDLING, app_of, make_app, only, template_of

WORKER = "TasksWorker"


def settings(env_name: str, context=None):
    from cdk_app.settings import read_cdk_json_context

    return load_settings(context or read_cdk_json_context()).environments[env_name].tasks


def ref(template: Template, resource_type: str, prefix: str) -> dict:
    return {"Ref": only(template, resource_type, prefix)[0]}


def arn(template: Template, resource_type: str, prefix: str) -> dict:
    return {"Fn::GetAtt": [only(template, resource_type, prefix)[0], "Arn"]}


def variables(template: Template, prefix: str) -> dict:
    return only(template, "AWS::Lambda::Function", prefix)[1]["Properties"]["Environment"]["Variables"]


def statements_of(template: Template, policy_prefix: str) -> list[dict]:
    return only(template, "AWS::IAM::Policy", policy_prefix)[1]["Properties"]["PolicyDocument"]["Statement"]


def test_queue_and_dead_letter_queue_are_encrypted_and_redriven(template, env_name):
    tasks = settings(env_name)
    queue = only(template, "AWS::SQS::Queue", "TasksQueue")[1]["Properties"]
    dead_letters = only(template, "AWS::SQS::Queue", "TasksDeadLetterQueue")[1]["Properties"]
    worker_timeout = only(template, "AWS::Lambda::Function", WORKER)[1]["Properties"]["Timeout"]

    assert queue["SqsManagedSseEnabled"] is True and dead_letters["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": arn(template, "AWS::SQS::Queue", "TasksDeadLetterQueue"),
                                      "maxReceiveCount": tasks.max_receive_count}
    assert worker_timeout == tasks.worker_timeout_seconds  # its own, not the gateway's cap
    assert queue["VisibilityTimeout"] == 6 * worker_timeout
    assert queue["MessageRetentionPeriod"] == tasks.retention_days * 86400
    assert dead_letters["MessageRetentionPeriod"] == 14 * 86400


@pytest.mark.parametrize("queue", ["TasksQueue", "TasksDeadLetterQueue"])
def test_both_queues_refuse_plain_http(template, queue):
    (statement, *_) = only(template, "AWS::SQS::QueuePolicy", f"{queue}Policy")[1]["Properties"][
        "PolicyDocument"]["Statement"]

    assert statement == {"Action": "sqs:*", "Condition": {"Bool": {"aws:SecureTransport": "false"}}, "Effect": "Deny",
                         "Principal": {"AWS": "*"}, "Resource": arn(template, "AWS::SQS::Queue", queue)}


def test_the_worker_alias_drains_the_queue_reporting_partial_failures(template, env_name):
    tasks = settings(env_name)
    mapping = only(template, "AWS::Lambda::EventSourceMapping", WORKER)[1]["Properties"]

    assert mapping["EventSourceArn"] == arn(template, "AWS::SQS::Queue", "TasksQueue")
    assert only(template, "AWS::Lambda::Alias", WORKER)[0] in json.dumps(mapping["FunctionName"])
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BatchSize"] == tasks.batch_size
    assert mapping.get("ScalingConfig") == ({"MaximumConcurrency": tasks.max_concurrency}
                                            if tasks.max_concurrency else None)


def test_status_table_is_on_demand_encrypted_expiring_and_recoverable_where_configured(template, env_name):
    table = only(template, "AWS::DynamoDB::GlobalTable", "TasksStatuses")[1]["Properties"]

    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert table["BillingMode"] == "PAY_PER_REQUEST" and table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    (replica,) = table["Replicas"]
    assert replica["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is \
        settings(env_name).point_in_time_recovery
    assert settings("prod").point_in_time_recovery is True


def test_the_api_may_send_and_record_and_the_worker_may_claim_nothing_more(template):
    queue_arn = arn(template, "AWS::SQS::Queue", "TasksQueue")
    table_arn = arn(template, "AWS::DynamoDB::GlobalTable", "TasksStatuses")
    api = statements_of(template, f"{API}RoleDefaultPolicy")
    worker = statements_of(template, f"{WORKER}RoleDefaultPolicy")

    assert {"Action": ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage"], "Effect": "Allow",
            "Resource": queue_arn} in api
    assert {"Action": sorted(PRODUCER_TABLE_ACTIONS), "Effect": "Allow", "Resource": table_arn} in api
    assert {"Action": "dynamodb:UpdateItem", "Effect": "Allow", "Resource": table_arn} in worker
    assert WORKER_TABLE_ACTIONS == ("dynamodb:UpdateItem",)
    assert not [s for s in api + worker if "*" in json.dumps(s["Resource"])]
    assert variables(template, API)[TASK_QUEUE_URL_VARIABLE] == ref(template, "AWS::SQS::Queue", "TasksQueue")
    assert variables(template, API)[TASK_TABLE_VARIABLE] == ref(template, "AWS::DynamoDB::GlobalTable",
                                                                "TasksStatuses")
    assert TASK_QUEUE_URL_VARIABLE not in variables(template, WORKER)
    assert variables(template, WORKER)[TASK_TABLE_VARIABLE] == variables(template, API)[TASK_TABLE_VARIABLE]


def test_alarms_on_dead_letters_and_on_waiting_too_long(template, env_name):
    alarms = {name: a["Properties"] for name, a in template.find_resources("AWS::CloudWatch::Alarm").items()
              if name.startswith("Tasks")}
    dead = next(a for name, a in alarms.items() if "DeadLetter" in name)
    oldest = next(a for name, a in alarms.items() if "OldestMessage" in name)

    assert (dead["MetricName"], dead["Statistic"], dead["Threshold"], dead["EvaluationPeriods"],
            dead["ComparisonOperator"]) == ("ApproximateNumberOfMessagesVisible", "Maximum", 1, 1,
                                            "GreaterThanOrEqualToThreshold")
    assert dead["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [
        only(template, "AWS::SQS::Queue", "TasksDeadLetterQueue")[0], "QueueName"]}}]
    assert (oldest["MetricName"], oldest["Threshold"], oldest["EvaluationPeriods"], oldest["DatapointsToAlarm"]) == (
        "ApproximateAgeOfOldestMessage", settings(env_name).oldest_message_alarm_seconds, 5, 3)
    assert dead["TreatMissingData"] == oldest["TreatMissingData"] == "notBreaching"


@pytest.mark.parametrize("env_name", ["dev", "prod"])
def test_file_intake_bucket_is_locked_down_and_notifies_the_queue(synth, env_name):
    template = synth.templates[env_name]
    bucket = only(template, "AWS::S3::Bucket", "FilesBucket")[1]["Properties"]
    notifications = only(template, "Custom::S3BucketNotifications", "Files")[1]["Properties"]

    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"] == {
        "SSEAlgorithm": "AES256"}
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["LoggingConfiguration"]["DestinationBucketName"] == ref(template, "AWS::S3::Bucket", "FilesAccessLogs")
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert "aws:SecureTransport" in json.dumps(only(template, "AWS::S3::BucketPolicy", "FilesBucketPolicy"))
    assert notifications["NotificationConfiguration"] == {"QueueConfigurations": [{
        "Events": ["s3:ObjectCreated:*"], "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}},
        "QueueArn": arn(template, "AWS::SQS::Queue", "TasksQueue")}]}
    files = statements_of(template, "FilesWorkerPolicy")
    assert [s["Action"] for s in files] == [["s3:GetObject", "s3:GetObjectVersion"], "s3:PutObject"]
    assert "incoming/*" in json.dumps(files[0]["Resource"]) and "results/*" in json.dumps(files[1]["Resource"])


@pytest.mark.parametrize(("env_name", "destroyed"), [("dev", True), ("prod", False)])
def test_every_bucket_is_versioned_and_emptied_before_a_destroy(synth, env_name, destroyed):
    template = synth.templates[env_name]
    buckets = template.find_resources("AWS::S3::Bucket")
    emptied = {resource["Properties"]["BucketName"]["Ref"]
               for resource in template.find_resources("Custom::S3AutoDeleteObjects").values()}

    assert len(buckets) == 2  # the files and their access logs
    for name, bucket in buckets.items():
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}, name
        assert bucket["DeletionPolicy"] == ("Delete" if destroyed else "Retain"), name
        rules = bucket["Properties"]["LifecycleConfiguration"]["Rules"]
        assert any("NoncurrentVersionExpiration" in rule for rule in rules), name  # old versions do not pile up
    # CloudFormation refuses to delete a bucket that still holds objects (BucketNotEmpty): a bucket removed with
    # the stack is emptied first, every version of every object; a retained one never is.
    assert emptied == (set(buckets) if destroyed else set())


def test_a_consumers_own_queue_and_table_keep_their_findings(tmp_path):
    # The construct accepts checks only for what it made: a bare queue and table of the user's are reported.
    stack = new_stack(tmp_path)
    queue = sqs.Queue(stack, "Existing", visibility_timeout=Duration.minutes(15))
    table = dynamodb.TableV2(stack, "Table", partition_key=dynamodb.Attribute(
        name="id", type=dynamodb.AttributeType.STRING))
    TaskQueue(stack, "Tasks", queue=queue, table=table)
    add_compliance_checks(app_of(stack))

    with pytest.raises(RuntimeError, match="ValidationFailed"):
        app_of(stack).synth()
    report = (tmp_path / "validation-report.json").read_text()
    assert "AwsSolutions-SQS3" in report and "Serverless-SQSRedrivePolicy" in report
    assert "Serverless-LambdaEventSourceMappingDestination" in report  # redrive is the queue owner's to show
    resources = json.loads((tmp_path / "Lib.template.json").read_text())["Resources"]
    for name in ("Existing", "Table"):
        (resource,) = [r for logical_id, r in resources.items() if logical_id.startswith(name)]
        assert "checkov" not in resource.get("Metadata", {}), name


def test_staging_has_no_file_intake(synth):
    synth.templates["staging"].resource_count_is("AWS::S3::Bucket", 0)


def test_tasks_disabled_means_no_queue_at_all(context):
    context["environments"]["dev"]["tasks"] = {"enabled": False, "files": {"enabled": True}}
    template = template_of(build_stacks(make_app({**context, "env": "dev"}))["dev"])

    for kind in ("AWS::SQS::Queue", "AWS::DynamoDB::GlobalTable", "AWS::Lambda::EventSourceMapping", "AWS::S3::Bucket"):
        template.resource_count_is(kind, 0)
    assert TASK_QUEUE_URL_VARIABLE not in variables(template, API)


# --- the rules, from config and from the construct ----------------------------------------------

@pytest.mark.parametrize(("tasks", "message"), [
    ({"enabled": True, "expected_duration_seconds": 50, "visibility_timeout_seconds": 300},
     "tasks.visibility_timeout_seconds=300s is below 6 x the worker's timeout (tasks.expected_duration_seconds) "
     "of 60s: a message would reappear while its batch still runs, and run twice; set "
     "tasks.visibility_timeout_seconds to 360 or more"),
    ({"enabled": True, "batch_size": 50}, "tasks.batch_size=50 needs tasks.max_batching_window_seconds of at least 1"),
    ({"enabled": True, "max_receive_count": 0}, "tasks.max_receive_count: 0 is not allowed"),
])
def test_task_settings_that_cannot_work_are_refused(context, tasks, message):
    context["environments"]["staging"]["tasks"] = tasks

    with pytest.raises(ConfigError, match="environments.staging") as caught:
        load_settings(context)
    assert message in str(caught.value)


def test_a_larger_batch_with_a_window_and_an_explicit_visibility_are_accepted(context):
    context["environments"]["staging"]["tasks"] = {"enabled": True, "batch_size": 50, "max_batching_window_seconds": 5,
                                                   "visibility_timeout_seconds": 900}
    template = template_of(build_stacks(make_app({**context, "env": "staging"}))["staging"])

    assert only(template, "AWS::SQS::Queue", "TasksQueue")[1]["Properties"]["VisibilityTimeout"] == 900
    mapping = only(template, "AWS::Lambda::EventSourceMapping", WORKER)[1]["Properties"]
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (50, 5)


def new_stack(outdir=None) -> Stack:
    app = App(context=SKIP_BUNDLING, builtin_cloud_formation_validation=False, outdir=str(outdir) if outdir else None)
    return Stack(app, "Lib")


def test_the_construct_applies_the_same_rule():
    with pytest.raises(RuleError, match=r"visibility_timeout=59s is below 6 x the worker's timeout of 10s"):
        TaskQueue(new_stack(), "Tasks", worker_props={"timeout": Duration.seconds(10)},
                  visibility_timeout=Duration.seconds(59))


def test_with_no_props_it_builds_a_worker_and_passes_cdk_nag(tmp_path):
    stack = new_stack(tmp_path)
    tasks = TaskQueue(stack, "Tasks")
    FileIntake(stack, "Files", tasks=tasks)
    add_compliance_checks(app_of(stack))

    timeout = tasks.worker.function.timeout
    assert isinstance(tasks.worker, TaskWorker) and timeout is not None and timeout.to_seconds() == 72
    app_of(stack).synth()  # raises on any cdk-nag finding


def test_bring_your_own_queue_and_worker():
    stack = new_stack()
    queue = sqs.Queue(stack, "Existing", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                      visibility_timeout=Duration.minutes(15))
    worker = TaskWorker(stack, "MyWorker", timeout=Duration.seconds(120), memory_size=2048)
    tasks = TaskQueue(stack, "Tasks", queue=queue, worker=worker)
    template = template_of(stack)

    template.resource_count_is("AWS::SQS::Queue", 1)
    assert tasks.dead_letter_alarm is None and tasks.worker is worker
    mapping = only(template, "AWS::Lambda::EventSourceMapping", "MyWorker")[1]["Properties"]
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [only(template, "AWS::SQS::Queue", "Existing")[0], "Arn"]}
    with pytest.raises(ValueError, match="has no dead_letter_queue"):
        tasks.metric_dead_letters()


def test_metrics_name_the_queues():
    tasks = TaskQueue(new_stack(), "Tasks")
    metrics = {"ApproximateNumberOfMessagesVisible": tasks.metric_dead_letters(),
               "ApproximateAgeOfOldestMessage": tasks.metric_oldest_message_age(),
               "NumberOfMessagesSent": tasks.metric_sent()}

    for name, metric in metrics.items():
        assert metric.metric_name == name and metric.namespace == "AWS/SQS" and "QueueName" in (metric.dimensions or {})
    assert tasks.metric_visible_messages().metric_name == "ApproximateNumberOfMessagesVisible"


def test_worker_and_worker_props_together_are_refused():
    stack = new_stack()
    with pytest.raises(ValueError, match="worker and worker_props are both set"):
        TaskQueue(stack, "Tasks", worker=TaskWorker(stack, "W"), worker_props={"memory_size": 512})


def test_a_registry_reference_uses_the_generic_entry_point():
    stack = new_stack()
    TaskWorker(stack, "Worker", tasks="service.handler:app")
    properties = only(Template.from_stack(stack), "AWS::Lambda::Function")[1]["Properties"]

    assert properties["Handler"] == "fastapi_lambda.entry.handler"
    assert properties["Environment"]["Variables"]["FASTAPI_LAMBDA_TASKS"] == "service.handler:app"
