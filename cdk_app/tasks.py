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

from collections.abc import Mapping, Sequence
from typing import Any, Unpack, cast

from aws_cdk import CfnElement, Duration, RemovalPolicy, Stack
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

from cdk_app.cdk_values import MetricOptions, removal_policy
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
    """The queue's worker: a :class:`cdk_app.function.ServiceFunction` whose timeout is its own (no gateway cap).

    Name the task registry with ``tasks="package.module:registry"`` (the runtime package's
    generic entry point), or a handler module built with ``lambda_handler(app, tasks=registry)``
    that serves the API and the worker alike. :class:`TaskQueue` builds one from its
    ``worker_props`` unless given a worker.

    :param memory_size: the worker's memory in MB, from 128 to 10240.
        @default ``DEFAULTS.tasks.memory_mb``
    :param timeout: the worker's timeout; not with ``expected_duration``. @default 120% of ``expected_duration``
    :param expected_duration: how long the slowest batch is expected to take; the timeout is 120% of it.
        @default ``DEFAULTS.tasks.expected_duration_seconds`` (when ``timeout`` is not set)
    :param props: any other :class:`cdk_app.function.ServiceFunction` prop (``source``, ``tasks``,
        ``handler``, ``environment``, ``vpc``, ...), with its default.

    Example::

        from aws_cdk import Duration
        from cdk_app.tasks import TaskQueue, TaskWorker

        worker = TaskWorker(stack, "Worker", source="lambda_src", tasks="service.tasks:registry",
                            expected_duration=Duration.minutes(2), memory_size=2048)
        TaskQueue(stack, "Tasks", worker=worker)
    """

    def __init__(self, scope: Construct, id: str, *, memory_size: int = _TASKS.memory_mb,
                 timeout: Duration | None = None, expected_duration: Duration | None = None, **props: Any) -> None:
        if timeout is None and expected_duration is None:
            expected_duration = DEFAULT_WORKER_DURATION
        super().__init__(scope, id, memory_size=memory_size, timeout=timeout, expected_duration=expected_duration,
                         **props)


class TaskQueue(Construct):
    """A task queue, its dead-letter queue, the status table and the worker that drains the queue.

    Alarms (:attr:`dead_letter_alarm`, :attr:`oldest_message_alarm`; without an action until
    :meth:`cdk_app.observability.Observability.watch` adds one): any message in the dead-letter
    queue, and the oldest message older than ``oldest_message_alarm``. Attributes: :attr:`worker`,
    :attr:`queue`, :attr:`dead_letter_queue` (None for a queue of yours given without one), :attr:`table`.

    :param worker: the function that drains the queue (any :class:`cdk_app.function.ServiceFunction`);
        not with ``worker_props``. @default a :class:`TaskWorker` built from ``worker_props``
    :param worker_props: the props of that :class:`TaskWorker` (``source``, ``tasks``, ``expected_duration``, ...).
        @default none: the default ``TaskWorker`` (``lambda_src``, its handler ``service.handler.handler``)
    :param queue: an existing queue to drain; its redrive, encryption and policy stay yours.
        @default a standard queue, SQS-managed encryption, TLS only, redriving to ``dead_letter_queue``
    :param dead_letter_queue: the dead-letter queue (with ``queue=``, the one your queue redrives to,
        for the alarm). @default a queue of its own keeping messages 14 days (none with ``queue=``)
    :param table: an existing DynamoDB table for task statuses (partition key ``id``, string; TTL attribute
        ``expires_at``). @default an on-demand table, AWS-managed encryption, TTL on
    :param max_receive_count: receives before a message moves to the dead-letter queue, from 1 to 1000.
        @default ``DEFAULTS.tasks.max_receive_count``
    :param visibility_timeout: the queue's visibility timeout, at least 6 x the worker's timeout (a message
        would run twice otherwise; refused with the value to set). @default 6 x the worker's timeout
    :param retention: how long an unprocessed message is kept, 1 to 14 days.
        @default ``DEFAULTS.tasks.retention_days``
    :param batch_size: messages per worker invocation, from 1 to 10000 (above 10 needs ``max_batching_window``).
        @default ``DEFAULTS.tasks.batch_size``
    :param max_batching_window: how long to wait to fill a batch, up to 5 minutes. @default none
    :param max_concurrency: the most concurrent worker instances the queue starts, from 2 to 1000.
        @default ``DEFAULTS.tasks.max_concurrency`` (None: no cap)
    :param oldest_message_alarm: the oldest message's age that raises :attr:`oldest_message_alarm`.
        @default ``DEFAULTS.tasks.oldest_message_alarm_seconds``
    :param point_in_time_recovery: point-in-time recovery of the status table it creates.
        @default ``DEFAULTS.tasks.point_in_time_recovery``
    :param removal_policy: of the queues and the table it creates. @default ``DEFAULTS.removal_policy``

    Example::

        from aws_cdk import Duration
        from cdk_app.function import FastApiFunction
        from cdk_app.tasks import TaskQueue

        api = FastApiFunction(stack, "Api", source="lambda_src", app="service.main:create_app")
        tasks = TaskQueue(stack, "Tasks", batch_size=5, worker_props={
            "source": "lambda_src", "tasks": "service.tasks:registry", "expected_duration": Duration.minutes(2)})
        tasks.add_producer(api)  # the API may send tasks and record their statuses
        backlog = tasks.metric_visible_messages(period=Duration.minutes(5))
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
        worker_timeout = self.worker.function.timeout
        if worker_timeout is None:  # a ServiceFunction always sets one; CDK's Function types it optional
            raise ValueError(f"the worker {self.worker.node.path} has no timeout; give it timeout= or "
                             "expected_duration=")
        visibility = task_queue_visibility(
            worker_timeout.to_seconds(),
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
        """Allow ``grantee`` to send messages to the queue (``sqs:SendMessage`` and what it needs), nothing else."""
        return self.queue.grant_send_messages(grantee)

    def metric_dead_letters(self, **props: Unpack[MetricOptions]) -> cloudwatch.Metric:
        """Messages waiting in the dead-letter queue (maximum per minute unless ``props`` say otherwise)."""
        if self.dead_letter_queue is None:
            raise ValueError("this TaskQueue has no dead_letter_queue; pass the one your queue redrives to")
        return self.dead_letter_queue.metric_approximate_number_of_messages_visible(**_per_minute("Maximum", props))

    def metric_oldest_message_age(self, **props: Unpack[MetricOptions]) -> cloudwatch.Metric:
        """Seconds the oldest message has waited (maximum per minute unless ``props`` say otherwise)."""
        return self.queue.metric_approximate_age_of_oldest_message(**_per_minute("Maximum", props))

    def metric_visible_messages(self, **props: Unpack[MetricOptions]) -> cloudwatch.Metric:
        """Messages waiting in the queue, the backlog (CDK's default: maximum per 5 minutes)."""
        return self.queue.metric_approximate_number_of_messages_visible(**props)

    def metric_sent(self, **props: Unpack[MetricOptions]) -> cloudwatch.Metric:
        """Messages sent to the queue: the tasks submitted (CDK's default: sum per 5 minutes)."""
        return self.queue.metric_number_of_messages_sent(**props)


def _per_minute(statistic: str, props: MetricOptions) -> MetricOptions:
    """``props`` over a one-minute ``statistic``, which ``props`` may override."""
    return {"period": Duration.minutes(1), "statistic": statistic, **props}


class FileIntake(Construct):
    """An S3 bucket whose new objects under ``incoming/`` become ``process-file`` tasks on a :class:`TaskQueue`.

    Encrypted, TLS only, versioned, public access blocked, old versions and unfinished
    uploads expire; server access logs go to a log bucket of its own (:attr:`access_log_bucket`),
    versioned too. With ``removal_policy=DESTROY`` both buckets are emptied (every version)
    before CloudFormation deletes them, so ``cdk destroy`` works.
    The worker may read ``incoming/*`` and write ``results/*``, nothing else (:attr:`worker_policy`).

    :param tasks: the task queue whose worker processes the files (required).
    :param access_logs: server access logs of the bucket to a log bucket of its own, kept a year.
        @default ``DEFAULTS.tasks.files.access_logs``
    :param noncurrent_version_expiration: how long an overwritten or deleted object's old version is kept.
        @default ``DEFAULTS.tasks.files.noncurrent_version_days``
    :param removal_policy: of both buckets (``DESTROY`` also empties them first). @default ``DEFAULTS.removal_policy``

    Example::

        from aws_cdk import CfnOutput, Duration, RemovalPolicy
        from cdk_app.tasks import FileIntake, TaskQueue

        tasks = TaskQueue(stack, "Tasks", worker_props={"source": "lambda_src", "tasks": "service.tasks:registry"})
        files = FileIntake(stack, "Files", tasks=tasks, noncurrent_version_expiration=Duration.days(7),
                           removal_policy=RemovalPolicy.DESTROY)
        CfnOutput(stack, "UploadBucket", value=files.bucket.bucket_name)  # upload to incoming/<name>
    """

    def __init__(self, scope: Construct, id: str, *, tasks: TaskQueue, access_logs: bool = _TASKS.files.access_logs,
                 noncurrent_version_expiration: Duration = Duration.days(_TASKS.files.noncurrent_version_days),
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy)) -> None:
        super().__init__(scope, id)
        self.access_log_bucket = self._secure_bucket(
            "AccessLogs", removal_policy, object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365),
                                              noncurrent_version_expiration=noncurrent_version_expiration)],
        ) if access_logs else None
        self.bucket = self._secure_bucket(
            "Bucket", removal_policy, server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="files/" if access_logs else None,
            lifecycle_rules=[s3.LifecycleRule(noncurrent_version_expiration=noncurrent_version_expiration,
                                              abort_incomplete_multipart_upload_after=Duration.days(7))],
        )
        # jsii's SqsDestination.bind names its first parameter _scope, so pyright does not match it to the
        # IBucketNotificationDestination protocol it implements.
        destination = cast(s3.IBucketNotificationDestination, s3n.SqsDestination(tasks.queue))
        self.bucket.add_event_notification(s3.EventType.OBJECT_CREATED, destination,
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

    def _secure_bucket(self, id: str, removal_policy: RemovalPolicy, *, lifecycle_rules: Sequence[s3.LifecycleRule],
                       object_ownership: s3.ObjectOwnership | None = None,
                       server_access_logs_bucket: s3.IBucket | None = None,
                       server_access_logs_prefix: str | None = None) -> s3.Bucket:
        """A bucket encrypted, TLS only, versioned, private, and emptied before deletion when it is destroyed.

        CloudFormation refuses to delete a bucket that holds objects (BucketNotEmpty). aws-cdk-lib's auto-delete
        handler first denies new writes (late access-log deliveries included), then deletes every object version.
        """
        return s3.Bucket(
            self, id, encryption=s3.BucketEncryption.S3_MANAGED, enforce_ssl=True, versioned=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL, removal_policy=removal_policy,
            auto_delete_objects=removal_policy == RemovalPolicy.DESTROY, lifecycle_rules=lifecycle_rules,
            object_ownership=object_ownership, server_access_logs_bucket=server_access_logs_bucket,
            server_access_logs_prefix=server_access_logs_prefix)

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
                f"IAM5[Resource::<{stack.get_logical_id(cast(CfnElement, self.bucket.node.default_child))}.Arn>/"
                f"{prefix}*]",
                f"The worker reads any new object under {FILES_INCOMING_PREFIX} and writes its result under "
                f"{FILES_RESULTS_PREFIX}: object keys are chosen by uploaders, so the prefix is the narrowest scope.",
            )
