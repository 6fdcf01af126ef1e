"""Alarms that reach someone, and one dashboard of the same.

:class:`Observability` owns a TLS-only SNS topic encrypted with a key of its own (the
AWS-managed ``alias/aws/sns`` key refuses CloudWatch, so every notification would fail),
email subscriptions from settings with a dead-letter queue, alarms for every function it watches (errors, throttles, p99 duration above
80% of the timeout), the API's 5xx rate, and any other alarm handed to it (provisioned
concurrency spillover, dead letters, queue age, cache errors); every alarm notifies the
topic. Logs, traces and metrics inside the functions come from the runtime package
(Powertools), configured by the variables :class:`~cdk_app.function.ServiceFunction` sets.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from aws_cdk import ArnFormat, Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct, IConstruct

from cdk_app.api import FastApiGateway
from cdk_app.cache import ValkeyCache
from cdk_app.cdk_values import removal_policy
from cdk_app.findings import SQS_MANAGED_ENCRYPTION, acknowledge, acknowledge_serverless, skip_checkov
from cdk_app.function import ServiceFunction
from cdk_app.settings import DEFAULTS
from cdk_app.tasks import TaskQueue

#: What :meth:`Observability.watch` knows, and what it alarms on for each.
WATCHED = {
    "ServiceFunction (FastApiFunction, TaskWorker)": "errors, throttles, p99 near the timeout, provisioned "
                                                     "concurrency spillover",
    "FastApiGateway": "the share of 5xx answers",
    "TaskQueue": "its worker as a function, a message in the dead-letter queue, the oldest message's age",
    "ValkeyCache": "the app falling back to the source (cache errors)",
    "cloudwatch.Alarm": "itself",
}

#: p99 duration above this share of the timeout is an alarm: requests are close to being cut off.
DURATION_ALARM_SHARE = 0.8


class Observability(Construct):
    """Alarms with an action on one SNS topic, and a dashboard; :meth:`watch` what you build."""

    def __init__(self, scope: Construct, id: str, *, alarm_emails: Sequence[str] = (),
                 api_5xx_percent: float = DEFAULTS.observability.api_5xx_percent, dashboard_name: str | None = None,
                 removal_policy: RemovalPolicy = removal_policy(DEFAULTS.removal_policy)) -> None:
        super().__init__(scope, id)
        if not 0 < api_5xx_percent <= 100:
            raise ValueError(f"api_5xx_percent={api_5xx_percent} must be a percentage in (0, 100]")
        self.api_5xx_percent = api_5xx_percent
        self.removal_policy = removal_policy
        # A key of our own: a service that publishes (CloudWatch) must be allowed to use the topic's key,
        # and the policy of the AWS-managed alias/aws/sns cannot be changed (aws-cdk #11121).
        self.key = kms.Key(self, "AlarmsKey", description=f"Encrypts the alarm topic of {self.node.path}",
                           enable_key_rotation=True, removal_policy=removal_policy)
        self.topic = sns.Topic(self, "Alarms", display_name="Service alarms", enforce_ssl=True, master_key=self.key)
        self.allow_publisher("cloudwatch.amazonaws.com")
        self.alarms: list[cloudwatch.Alarm] = []
        self._watched: set[str] = set()
        self.dashboard = cloudwatch.Dashboard(self, "Dashboard", dashboard_name=dashboard_name)
        self.dead_letter_queue: sqs.Queue | None = None
        for email in alarm_emails:
            self.add_email(email)

    def allow_publisher(self, service: str) -> None:
        """Let an AWS service publish to the topic: its topic policy (replacing SNS's default one) and the key.

        CloudWatch alarms are allowed from the start; add ``events.amazonaws.com`` for EventBridge rules.
        CloudWatch's grants are limited to this account's alarms; EventBridge's key grant cannot be (its
        KMS requests carry no source account or ARN, so such a condition would drop every event).
        """
        stack = Stack.of(self)
        source = {"StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID}}
        if service == "cloudwatch.amazonaws.com":
            alarms = stack.format_arn(service="cloudwatch", resource="alarm", resource_name="*",
                                      arn_format=ArnFormat.COLON_RESOURCE_NAME)
            source = {**source, "ArnLike": {"aws:SourceArn": alarms}}
        principal = iam.ServicePrincipal(service)
        self.topic.add_to_resource_policy(iam.PolicyStatement(
            principals=[principal], actions=["sns:Publish"], resources=[self.topic.topic_arn], conditions=source))
        self.key.add_to_resource_policy(iam.PolicyStatement(
            principals=[principal], actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
            conditions=source if service == "cloudwatch.amazonaws.com" else None))

    def add_email(self, address: str) -> sns.Subscription:
        """Email ``address`` on every alarm; what SNS cannot deliver goes to :attr:`dead_letter_queue`."""
        subscription = subscriptions.EmailSubscription(address, dead_letter_queue=self._dead_letters())
        self.topic.add_subscription(subscription)
        return subscription

    def _dead_letters(self) -> sqs.Queue:
        """The subscriptions' dead-letter queue (SQS-managed encryption, which SNS can write to), made once."""
        if self.dead_letter_queue is None:
            self.dead_letter_queue = sqs.Queue(
                self, "UndeliveredAlarms", encryption=sqs.QueueEncryption.SQS_MANAGED, enforce_ssl=True,
                retention_period=Duration.days(14), removal_policy=self.removal_policy)
            skip_checkov(self.dead_letter_queue, "CKV_AWS_27", SQS_MANAGED_ENCRYPTION)
            last_stop = (
                "This queue is itself the dead-letter queue of the alarm topic's subscriptions: it keeps for 14 days "
                "the notifications SNS could not deliver; a queue behind it would only hide them further."
            )
            acknowledge(self.dead_letter_queue.node.default_child, "SQS3", last_stop)
            acknowledge_serverless(self.dead_letter_queue.node.default_child, "SQSRedrivePolicy", last_stop)
            self.add_alarm(cloudwatch.Alarm(
                self, "UndeliveredAlarmsAlarm",
                metric=self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=Duration.minutes(5), statistic="Maximum"),
                threshold=1, evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                alarm_description="Alarm notifications could not be delivered to a subscriber; they wait in the "
                                  "dead-letter queue (check the subscription's endpoint)."))
        return self.dead_letter_queue

    def watch(self, *constructs: IConstruct) -> list[cloudwatch.Alarm]:
        """Alarm on each construct with what its capability needs (see :data:`WATCHED`), all notifying the topic.

        A construct of another kind is searched for those it contains, so ``watch(stack)`` watches a whole
        stack. Watching something twice adds nothing. Function alarms are named after the function's id.

        :raises TypeError: for a construct that neither is nor contains any of them.
        """
        added: list[cloudwatch.Alarm] = []
        for construct in constructs:
            found = list(self._known(construct))
            if not found:
                raise TypeError(f"Observability.watch: {construct.node.path} ({type(construct).__name__}) has no alarms "
                                f"it knows; it knows {', '.join(WATCHED)}. Fix: pass one of those, or add your own "
                                "alarm with add_alarm(alarm).")
            for known in found:
                if known.node.path not in self._watched:
                    self._watched.add(known.node.path)
                    added += self._watch_one(known)
        return added

    def _known(self, construct: IConstruct) -> Iterator[IConstruct]:
        """``construct`` if it is a kind :meth:`watch` knows, else every such construct inside it."""
        kinds = (ServiceFunction, FastApiGateway, TaskQueue, ValkeyCache, cloudwatch.Alarm)
        if isinstance(construct, kinds):
            yield construct
            return
        for child in construct.node.find_all():
            # An alarm inside is watched with the construct that made it; this construct's own are already watched.
            if isinstance(child, kinds) and not isinstance(child, cloudwatch.Alarm) and \
                    not child.node.path.startswith(self.node.path + "/"):
                yield child

    def _watch_one(self, construct: IConstruct) -> list[cloudwatch.Alarm]:
        if isinstance(construct, ServiceFunction):
            spillover = construct.cold_start.spillover_alarm
            return self.watch_function(construct, construct.node.id) + ([self.add_alarm(spillover)] if spillover else [])
        if isinstance(construct, FastApiGateway):
            return [self.watch_api(construct)]
        if isinstance(construct, TaskQueue):
            worker, alarms = construct.worker, []
            if worker.node.path not in self._watched:
                self._watched.add(worker.node.path)
                alarms = self._watch_one(worker)
            return alarms + [self.add_alarm(alarm) for alarm in (construct.dead_letter_alarm,
                                                                 construct.oldest_message_alarm) if alarm is not None]
        if isinstance(construct, ValkeyCache):
            return [self.add_alarm(construct.errors_alarm)]
        assert isinstance(construct, cloudwatch.Alarm)
        return [self.add_alarm(construct)]

    def add_alarm(self, alarm: cloudwatch.Alarm) -> cloudwatch.Alarm:
        """Notify the topic when ``alarm`` fires and when it recovers; show it on the dashboard."""
        alarm.add_alarm_action(actions.SnsAction(self.topic))
        alarm.add_ok_action(actions.SnsAction(self.topic))
        self.alarms.append(alarm)
        self.dashboard.add_widgets(cloudwatch.AlarmWidget(alarm=alarm, title=alarm.node.path, width=8))
        return alarm

    def watch_function(self, function: ServiceFunction, name: str) -> list[cloudwatch.Alarm]:
        """Errors, throttles and p99 duration near the timeout, on the function's alias."""
        period = Duration.minutes(5)
        timeout_ms = function.function.timeout.to_milliseconds()
        alarms = [
            cloudwatch.Alarm(self, f"{name}Errors", metric=function.metric_errors(period=period, statistic="Sum"),
                             threshold=1, evaluation_periods=1,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                             alarm_description=f"{name}: invocations failed (unhandled errors or timeouts)."),
            cloudwatch.Alarm(self, f"{name}Throttles",
                             metric=function.metric_throttles(period=period, statistic="Sum"),
                             threshold=1, evaluation_periods=1,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                             alarm_description=f"{name}: invocations were throttled (concurrency limits)."),
            cloudwatch.Alarm(self, f"{name}SlowP99", metric=function.metric_duration(period=period, statistic="p99"),
                             threshold=timeout_ms * DURATION_ALARM_SHARE, evaluation_periods=3, datapoints_to_alarm=2,
                             comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                             treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                             alarm_description=f"{name}: p99 duration is above {DURATION_ALARM_SHARE:.0%} of the "
                                               "timeout; requests are close to being cut off."),
        ]
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(title=f"{name} invocations and errors", width=12,
                                   left=[function.metric_invocations(period=period),
                                         function.metric_errors(period=period)]),
            cloudwatch.GraphWidget(title=f"{name} duration (p50, p99)", width=12,
                                   left=[function.metric_duration(period=period, statistic="p50"),
                                         function.metric_duration(period=period, statistic="p99")]))
        return [self.add_alarm(alarm) for alarm in alarms]

    def watch_api(self, gateway: FastApiGateway) -> cloudwatch.Alarm:
        """The API's share of 5xx answers, over 5 minutes."""
        period = Duration.minutes(5)
        if gateway.http_api is not None:
            errors, count = gateway.http_api.metric_server_error(period=period), gateway.http_api.metric_count(
                period=period)
        else:
            errors, count = gateway.rest_api.metric_server_error(period=period), gateway.rest_api.metric_count(
                period=period)
        rate = cloudwatch.MathExpression(expression="100 * errors / MAX([count, 1])", period=period, label="5xx %",
                                         using_metrics={"errors": errors, "count": count})
        self.dashboard.add_widgets(cloudwatch.GraphWidget(title="API requests and 5xx", width=12,
                                                          left=[count], right=[errors]))
        return self.add_alarm(cloudwatch.Alarm(
            self, "Gateway5xxRate", metric=rate, threshold=self.api_5xx_percent, evaluation_periods=3,
            datapoints_to_alarm=2, comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"More than {self.api_5xx_percent:g}% of API requests answered 5xx."))
