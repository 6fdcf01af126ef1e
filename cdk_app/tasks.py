"""Background tasks: a queue with a dead-letter queue, a worker, a status table, and a file intake.

:class:`TaskQueue` wires a standard SQS queue (SQS-managed encryption, TLS only) and
its dead-letter queue to a worker function through an event source that reports
partial batch failures, so one poison message never re-runs its batch. A DynamoDB
table records each task's status: it makes a redelivered task run once, and serves
``GET /tasks/{id}``. :meth:`TaskQueue.add_producer` lets a function (the API) send.
:class:`FileIntake` is an S3 bucket whose new objects under ``incoming/`` become
``process-file`` tasks on the same queue.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct
from fastapi_lambda.constants import (
    FILES_INCOMING_PREFIX,
    FILES_RESULTS_PREFIX,
    TASK_QUEUE_URL_VARIABLE,
    TASK_TABLE_KEY,
    TASK_TABLE_TTL_ATTRIBUTE,
    TASK_TABLE_VARIABLE,
)

from cdk_app.cdk_values import removal_policy
from cdk_app.findings import (
    SQS_MANAGED_ENCRYPTION,
    acknowledge,
    acknowledge_serverless,
    managed_policy_finding,
    skip_cdk_handler,
    skip_checkov,
)
from cdk_app.function import ServiceFunction
from cdk_app.settings import DEFAULTS
from cdk_app.settings.rules import task_queue_visibility

_TASKS = DEFAULTS.tasks
DEFAULT_WORKER_DURATION = Duration.seconds(_TASKS.expected_duration_seconds)
DEAD_LETTER_RETENTION = Duration.days(14)
#: CDK's singleton Lambda that applies bucket notification configurations (one per stack).
BUCKET_NOTIFICATIONS_HANDLER = "BucketNotificationsHandler050a0587b7544547bf325f094a3db834"
#: aws-cdk-lib's singleton provider that empties a bucket before CloudFormation deletes it (auto_delete_objects).
AUTO_DELETE_OBJECTS_PROVIDER = "Custom::S3AutoDeleteObjectsCustomResourceProvider"

#: What a producer (the API) does with the status table: record a task, read it, undo a failed send.
PRODUCER_TABLE_ACTIONS = ("dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem")
#: What the worker does with it: claim and complete a task with conditional updates.
WORKER_TABLE_ACTIONS = ("dynamodb:UpdateItem",)


class TaskWorker(ServiceFunction):
    """The queue's worker: a :class:`ServiceFunction` whose timeout is its own (no gateway cap).

    Name the task registry with ``tasks="package.module:registry"`` (the runtime package's
    generic entry point), or a handler module built with ``lambda_handler(app, tasks=registry)``
    that serves the API and the worker alike.
    """

    def __init__(self, scope: Construct, id: str, **props: Any) -> None:
        if props.get("timeout") is None:
            props.setdefault("expected_duration", DEFAULT_WORKER_DURATION)
        props.setdefault("memory_size", _TASKS.memory_mb)
        super().__init__(scope, id, **props)


class TaskQueue(Construct):
    """A task queue, its dead-letter queue, the status table and the worker that drains the queue.

    Brings its own worker (``worker=``, any :class:`ServiceFunction`) or builds a
    :class:`TaskWorker` from ``worker_props``. ``queue=``/``dead_letter_queue=``/``table=``
    accept existing resources. The visibility timeout is 6 x the worker's timeout unless
    set (and never less). Alarms: any message in the dead-letter queue, and the oldest
    message older than ``oldest_message_alarm``.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        worker: ServiceFunction | None = None,
        worker_props: Mapping[str, Any] | None = None,
        queue: sqs.IQueue | None = None,
        dead_letter_queue: sqs.IQueue | None = None,
        table: dynamodb.ITableV2 | None = None,
        max_receive_count: int = _TASKS.max_receive_count,
        visibility_timeout: Duration | None = None,
        retention: Duration = Duration.days(_TASKS.retention_days),
        batch_size: int = _TASKS.batch_size,
        max_batching_window: Duration | None = None,
        max_concurrency: int | None = _TASKS.max_concurrency,
        oldest_message_alarm: Duration = Duration.seconds(_TASKS.oldest_message_alarm_seconds),
        point_in_time_recovery: bool = _TASKS.point_in_time_recovery,
        removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy),
    ) -> None:
        super().__init__(scope, id)
        if worker is not None and worker_props:
            raise ValueError("worker and worker_props are both set; pass your worker, or the props to build one")
        self.worker = worker or TaskWorker(self, "Worker", **(worker_props or {}))
        visibility = task_queue_visibility(
            self.worker.function.timeout.to_seconds(),
            visibility_timeout_seconds=visibility_timeout and visibility_timeout.to_seconds(),
            batch_size=batch_size,
            max_batching_window_seconds=max_batching_window.to_seconds() if max_batching_window else 0,
        )
        if queue is None:
            self.dead_letter_queue = dead_letter_queue or sqs.Queue(
                self, "DeadLetterQueue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                retention_period=DEAD_LETTER_RETENTION, removal_policy=removal_policy,
            )
            self.queue: sqs.IQueue = sqs.Queue(
                self, "Queue", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                visibility_timeout=Duration.seconds(visibility), retention_period=retention,
                dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=max_receive_count,
                                                      queue=self.dead_letter_queue),
                removal_policy=removal_policy,
            )
        else:  # the queue's own settings (redrive, encryption, policy) are its owner's
            self.queue, self.dead_letter_queue = queue, dead_letter_queue
        self.table = table or dynamodb.TableV2(
            self, "Statuses",
            partition_key=dynamodb.Attribute(name=TASK_TABLE_KEY, type=dynamodb.AttributeType.STRING),
            billing=dynamodb.Billing.on_demand(),
            encryption=dynamodb.TableEncryptionV2.aws_managed_key(),
            time_to_live_attribute=TASK_TABLE_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=point_in_time_recovery),
            removal_policy=removal_policy,
        )
        self.worker.alias.add_event_source(event_sources.SqsEventSource(
            self.queue, batch_size=batch_size, max_batching_window=max_batching_window,
            max_concurrency=max_concurrency, report_batch_item_failures=True,
        ))
        self._grant_table(self.worker, WORKER_TABLE_ACTIONS)
        self.worker.add_environment(TASK_TABLE_VARIABLE, self.table.table_name)
        self.dead_letter_alarm: cloudwatch.Alarm | None = cloudwatch.Alarm(
            self, "DeadLetterAlarm", metric=self.metric_dead_letters(), threshold=1, evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Task messages failed max_receive_count times and wait in the dead-letter queue: "
                              "read them, fix the cause, then redrive them to the queue.",
        ) if self.dead_letter_queue is not None else None
        self.oldest_message_alarm = cloudwatch.Alarm(
            self, "OldestMessageAlarm", metric=self.metric_oldest_message_age(),
            threshold=oldest_message_alarm.to_seconds(), evaluation_periods=5, datapoints_to_alarm=3,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description="Tasks wait longer than expected: the worker is failing, throttled or too slow "
                              "(raise max_concurrency or memory).",
        )
        self._accept_findings(point_in_time_recovery=point_in_time_recovery or table is not None)

    def _accept_findings(self, *, point_in_time_recovery: bool) -> None:
        """Only what the construct created: a queue or table brought by the user is reported as it is."""
        table = self.table.node.default_child
        if not point_in_time_recovery and table is not None:
            no_recovery = (
                "The table holds short-lived task statuses (they expire by TTL after days) in an environment whose "
                "settings turn point-in-time recovery off; tasks.point_in_time_recovery turns it on (prod does)."
            )
            acknowledge(table, "DDB3", no_recovery)
            skip_checkov(table, "CKV_AWS_165", no_recovery)
        own = [queue for queue in (self.queue, self.dead_letter_queue) if queue is not None and queue.node.scope is self]
        for queue in own:
            skip_checkov(queue, "CKV_AWS_27", SQS_MANAGED_ENCRYPTION)
        if self.dead_letter_queue in own:
            acknowledge_serverless(
                self.dead_letter_queue.node.default_child, "SQSRedrivePolicy",
                "This is the dead-letter queue itself: it keeps the messages that failed max_receive_count times for "
                "14 days, for an operator to read and redrive to the task queue (its alarm fires on the first one).",
            )
        if self.queue not in own:  # a queue of the user's: its redrive is the user's to show
            return
        for mapping in self.worker.alias.node.find_all():
            if isinstance(mapping, lambda_.CfnEventSourceMapping):
                acknowledge_serverless(
                    mapping, "LambdaEventSourceMappingDestination",
                    "Lambda offers on-failure destinations only for stream and Kafka event sources, not SQS ones "
                    "(\"Unsupported 'destinationConfig' parameter\" at deploy, aws-cdk #19917): a message that fails "
                    "max_receive_count times goes to the queue's own dead-letter queue instead.",
                )

    def _grant_table(self, function: ServiceFunction, actions: tuple[str, ...]) -> None:
        # Exactly these actions on exactly this table (table.grant would also allow its indexes).
        function.add_to_role_policy(iam.PolicyStatement(actions=list(actions), resources=[self.table.table_arn]))

    def add_producer(self, function: ServiceFunction) -> None:
        """Let ``function`` submit tasks: send to the queue, record statuses, and find both by name."""
        self.grant_send(function)
        self._grant_table(function, PRODUCER_TABLE_ACTIONS)
        function.add_environment(TASK_QUEUE_URL_VARIABLE, self.queue.queue_url)
        function.add_environment(TASK_TABLE_VARIABLE, self.table.table_name)

    def grant_send(self, grantee: iam.IGrantable) -> iam.Grant:
        return self.queue.grant_send_messages(grantee)

    def metric_dead_letters(self, **props: Any) -> cloudwatch.Metric:
        """Messages waiting in the dead-letter queue (maximum per minute)."""
        if self.dead_letter_queue is None:
            raise ValueError("this TaskQueue has no dead_letter_queue; pass the one your queue redrives to")
        return self.dead_letter_queue.metric_approximate_number_of_messages_visible(
            **{"period": Duration.minutes(1), "statistic": "Maximum", **props})

    def metric_oldest_message_age(self, **props: Any) -> cloudwatch.Metric:
        """Seconds the oldest message has waited (maximum per minute)."""
        return self.queue.metric_approximate_age_of_oldest_message(
            **{"period": Duration.minutes(1), "statistic": "Maximum", **props})

    def metric_visible_messages(self, **props: Any) -> cloudwatch.Metric:
        return self.queue.metric_approximate_number_of_messages_visible(**props)

    def metric_sent(self, **props: Any) -> cloudwatch.Metric:
        return self.queue.metric_number_of_messages_sent(**props)


class FileIntake(Construct):
    """An S3 bucket whose new objects under ``incoming/`` become ``process-file`` tasks.

    Encrypted, TLS only, versioned, public access blocked, old versions and unfinished
    uploads expire; server access logs go to a log bucket of its own (``access_logs``),
    versioned too. With ``removal_policy=DESTROY`` both buckets are emptied (every version)
    before CloudFormation deletes them, so ``cdk destroy`` works.
    The worker may read ``incoming/*`` and write ``results/*``, nothing else.
    """

    def __init__(self, scope: Construct, id: str, *, tasks: TaskQueue, access_logs: bool = _TASKS.files.access_logs,
                 noncurrent_version_expiration: Duration = Duration.days(_TASKS.files.noncurrent_version_days),
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy)) -> None:
        super().__init__(scope, id)
        # CloudFormation refuses to delete a bucket that holds objects (BucketNotEmpty). aws-cdk-lib's
        # auto-delete handler first denies new writes (late access-log deliveries included), then deletes
        # every object version.
        secure = {"encryption": s3.BucketEncryption.S3_MANAGED, "enforce_ssl": True, "versioned": True,
                  "block_public_access": s3.BlockPublicAccess.BLOCK_ALL, "removal_policy": removal_policy,
                  "auto_delete_objects": removal_policy == RemovalPolicy.DESTROY}
        self.access_log_bucket = s3.Bucket(
            self, "AccessLogs", object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365),
                                              noncurrent_version_expiration=noncurrent_version_expiration)],
            **secure,
        ) if access_logs else None
        self.bucket = s3.Bucket(
            self, "Bucket", server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="files/" if access_logs else None,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=noncurrent_version_expiration,
                                              abort_incomplete_multipart_upload_after=Duration.days(7))],
            **secure,
        )
        self.bucket.add_event_notification(s3.EventType.OBJECT_CREATED, s3n.SqsDestination(tasks.queue),
                                           s3.NotificationKeyFilter(prefix=FILES_INCOMING_PREFIX))
        # Its own policy, so that the acknowledgement of its prefix wildcards covers nothing else.
        self.worker_policy = iam.Policy(self, "WorkerPolicy", statements=[
            iam.PolicyStatement(actions=["s3:GetObject", "s3:GetObjectVersion"], resources=[self.bucket.arn_for_objects(
                f"{FILES_INCOMING_PREFIX}*")]),
            iam.PolicyStatement(actions=["s3:PutObject"], resources=[self.bucket.arn_for_objects(
                f"{FILES_RESULTS_PREFIX}*")]),
        ])
        tasks.worker.role.attach_inline_policy(self.worker_policy)
        self._accept_findings(Stack.of(self))

    def _accept_findings(self, stack: Stack) -> None:
        """The log bucket's own logs, the worker's prefix wildcards, and aws-cdk-lib's handlers the buckets bring."""
        for handler_id in (BUCKET_NOTIFICATIONS_HANDLER, AUTO_DELETE_OBJECTS_PROVIDER):
            skip_cdk_handler(stack, handler_id)
        handler = stack.node.try_find_child(BUCKET_NOTIFICATIONS_HANDLER)
        if handler is not None:
            acknowledge(
                handler.node.find_child("Role").node.default_child,
                managed_policy_finding("service-role/AWSLambdaBasicExecutionRole"),
                "This is aws-cdk-lib's own deploy-time handler that writes bucket notification configurations; CDK "
                "gives it the basic execution role for its logs and offers no way to replace it.",
            )
        if self.access_log_bucket is not None:
            log_bucket = (
                "This is the access-log bucket of the file intake; logging a log bucket to itself would loop and "
                "to another bucket would only move the same finding there."
            )
            acknowledge(self.access_log_bucket.node.default_child, "S1", log_bucket)
            skip_checkov(self.access_log_bucket, "CKV_AWS_18", log_bucket)
        for prefix in (FILES_INCOMING_PREFIX, FILES_RESULTS_PREFIX):
            acknowledge(
                self.worker_policy.node.default_child,
                f"IAM5[Resource::<{stack.get_logical_id(self.bucket.node.default_child)}.Arn>/{prefix}*]",
                f"The worker reads any new object under {FILES_INCOMING_PREFIX} and writes its result under "
                f"{FILES_RESULTS_PREFIX}: object keys are chosen by uploaders, so the prefix is the narrowest scope.",
            )
