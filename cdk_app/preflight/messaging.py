"""SQS queues, SNS topics and subscriptions, and the KMS keys that encrypt them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    allows,
    as_list,
    is_mapping,
    literal_text,
    number,
    referenced_ids,
    rule,
    shape,
    statements,
)
from cdk_app.settings.limits import email_problem

QUEUE, TOPIC, SUBSCRIPTION = "AWS::SQS::Queue", "AWS::SNS::Topic", "AWS::SNS::Subscription"
KEY, KEY_ALIAS = "AWS::KMS::Key", "AWS::KMS::Alias"
_SQS_DOCS = "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html"
_ALARM_ACTIONS = ("AlarmActions", "OKActions", "InsufficientDataActions")


@rule("SQS-ENCRYPTION-ONE-KIND", QUEUE,
      message='"You can use one type of server-side encryption (SSE) at one time. You can either enable KMS SSE or '
              'SQS SSE"',
      source="https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-server-side-encryption.html; "
             "https://github.com/terraform-aws-modules/terraform-aws-eks/pull/2575")
def one_encryption(resource: Resource, template: Template) -> Iterator[Violation]:
    """A queue uses SQS-managed encryption or a KMS key, not both."""
    if resource.get("SqsManagedSseEnabled") is True and resource.get("KmsMasterKeyId"):
        yield Violation("SqsManagedSseEnabled with KmsMasterKeyId", "keep one: SQS-managed encryption or the KMS key")


#: SQS's bounds on queue attributes (the maximum message size is 1 MiB since 2025).
_SQS_RANGES = {"VisibilityTimeout": (0, 43200), "MessageRetentionPeriod": (60, 1209600), "DelaySeconds": (0, 900),
               "ReceiveMessageWaitTimeSeconds": (0, 20), "MaximumMessageSize": (1024, 1048576),
               "KmsDataKeyReusePeriodSeconds": (60, 86400)}


@rule("SQS-ATTRIBUTES", QUEUE, message='"InvalidAttributeValue": a queue attribute is out of range', source=_SQS_DOCS)
def queue_attributes(resource: Resource, template: Template) -> Iterator[Violation]:
    """Queue attributes within SQS's bounds."""
    for name, (low, high) in _SQS_RANGES.items():
        value = number(resource.get(name))
        if value is not None and not low <= value <= high:
            yield Violation(f"{name}={value:g}", f"set {low} to {high}", location=f"Properties/{name}")


@rule("SQS-FIFO-NAME", QUEUE, message='"The name of a FIFO queue can only include alphanumeric characters, hyphens, '
      'or underscores, must end with .fifo suffix"', source="https://docs.aws.amazon.com/AWSSimpleQueueService/latest/"
      "SQSDeveloperGuide/sqs-fifo-queues.html")
def fifo_name(resource: Resource, template: Template) -> Iterator[Violation]:
    """A FIFO queue's name ends in .fifo, and only a FIFO queue's does."""
    name, fifo = literal_text(resource.get("QueueName")), resource.get("FifoQueue") is True
    if name is not None and fifo != name.endswith(".fifo"):
        yield Violation(f"QueueName={name!r} with FifoQueue {fifo}", "end the name of a FIFO queue in .fifo, and only "
                        "then")


@rule("SQS-REDRIVE", QUEUE, message="InvalidParameterValue: maxReceiveCount is 1 to 1000 and the dead-letter queue is "
      "of the same type (FIFO to FIFO, standard to standard)",
      source="https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html")
def redrive(resource: Resource, template: Template) -> Iterator[Violation]:
    """A redrive policy with 1-1000 receives to a dead-letter queue of the same type."""
    policy = resource.get("RedrivePolicy")
    if not is_mapping(policy):
        return
    count = number(policy.get("maxReceiveCount"))
    if count is not None and not 1 <= count <= 1000:
        yield Violation(f"maxReceiveCount={count:g}", "set 1 to 1000", location="Properties/RedrivePolicy")
    dead = template.target(policy.get("deadLetterTargetArn"), QUEUE)
    if dead is not None and (dead.get("FifoQueue") is True) != (resource.get("FifoQueue") is True):
        yield Violation(f"dead-letter queue {dead.id} is not of this queue's type", "use a FIFO dead-letter queue for "
                        "a FIFO queue and a standard one for a standard queue")


def _publishers(topic: Resource, template: Template) -> dict[str, list[str]]:
    """Service principal -> resources that make that service publish to ``topic``."""
    found: dict[str, list[str]] = {}
    for alarm in template.of_type("AWS::CloudWatch::Alarm"):
        if any(topic.id in referenced_ids(alarm.get(k)) for k in _ALARM_ACTIONS):
            found.setdefault("cloudwatch.amazonaws.com", []).append(alarm.id)
    for events_rule in template.of_type("AWS::Events::Rule"):
        if any(topic.id in referenced_ids(t.get("Arn")) for t in events_rule.mappings("Targets")):
            found.setdefault("events.amazonaws.com", []).append(events_rule.id)
    return found


def key_of(value: Any, template: Template) -> Resource | None:
    """The KMS key a KmsMasterKeyId refers to (directly or through an alias), if it is in the template."""
    for logical_id in referenced_ids(value):
        found = template.resources.get(logical_id)
        if found is not None and found.type == KEY:
            return found
        if found is not None and found.type == KEY_ALIAS:
            return key_of(found.get("TargetKeyId"), template)
    name = literal_text(value)
    for alias in template.of_type(KEY_ALIAS):
        if name is not None and literal_text(alias.get("AliasName")) in (name, name.rsplit(":", 1)[-1]):
            return key_of(alias.get("TargetKeyId"), template)
    return None


@rule("SNS-PUBLISHER-KMS", TOPIC,
      message="CloudWatch (or EventBridge) cannot use the topic's key: every notification fails with "
              '"AWSKMS ... AccessDeniedException", visible only in the alarm history',
      source="https://github.com/aws/aws-cdk/issues/11121; https://github.com/ASFHyP3/hyp3/issues/762; "
             "https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger; "
             "https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services")
def publisher_can_use_key(resource: Resource, template: Template) -> Iterator[Violation]:
    """A topic that alarms or rules publish to is encrypted with a key whose policy lets those services use it."""
    key_id = resource.get("KmsMasterKeyId")
    publishers = _publishers(resource, template)
    if not key_id or not publishers:
        return
    if (shape(key_id) or "").endswith("alias/aws/sns"):
        yield Violation(f"encrypted with the AWS managed key alias/aws/sns and published to by "
                        f"{', '.join(sorted(publishers))}", "encrypt the topic with a customer managed key whose policy "
                        "allows those service principals kms:Decrypt and kms:GenerateDataKey*",
                        location="Properties/KmsMasterKeyId")
        return
    key = key_of(key_id, template)
    if key is None:
        return
    policy = statements(key.get("KeyPolicy"))
    for service in sorted(publishers):
        if not all(any(allows(s, action, service=service) for s in policy)
                   for action in ("kms:Decrypt", "kms:GenerateDataKey")):
            yield Violation(f"key {key.id} does not let {service} use it (published to by "
                            f"{', '.join(publishers[service][:2])})", f"add a key policy statement allowing {service} "
                            "kms:Decrypt and kms:GenerateDataKey*", location="Properties/KmsMasterKeyId")


@rule("SNS-PUBLISHER-POLICY", TOPIC,
      message='"... is not authorized to perform: SNS:Publish on resource ... because no resource-based policy allows '
              'the SNS:Publish action" (the topic policy replaces the default one)',
      source="https://github.com/aws-solutions/automated-security-response-on-aws/issues/43; "
             "https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html")
def publisher_allowed(resource: Resource, template: Template) -> Iterator[Violation]:
    """A topic with a topic policy lets the services that publish to it (alarms, rules) publish."""
    policies = [p for p in template.of_type("AWS::SNS::TopicPolicy")
                if any(resource.id in referenced_ids(t) for t in as_list(p.get("Topics")))]
    if not policies:
        return
    granted = [s for p in policies for s in statements(p.get("PolicyDocument"))]
    for service, sources in sorted(_publishers(resource, template).items()):
        if not any(allows(s, "sns:Publish", service=service) for s in granted):
            yield Violation(f"its topic policy does not let {service} publish (used by {', '.join(sources[:2])})",
                            f"add a statement allowing {service} sns:Publish (condition aws:SourceAccount)")


@rule("SNS-SUBSCRIPTION-DLQ", SUBSCRIPTION,
      message="SNS cannot deliver to the subscription's dead-letter queue without a queue policy allowing it (and, "
              "for a KMS-encrypted queue, a key policy): messages that fail delivery are lost",
      source="https://docs.aws.amazon.com/sns/latest/dg/sns-configure-dead-letter-queue.html")
def subscription_dead_letters(resource: Resource, template: Template) -> Iterator[Violation]:
    """A subscription's dead-letter queue accepts messages from SNS (queue policy, key policy, same FIFO type)."""
    redrive = resource.get("RedrivePolicy")
    queue = template.target(redrive.get("deadLetterTargetArn"), QUEUE) if is_mapping(redrive) else None
    if queue is None:
        return
    granted = [s for p in template.of_type("AWS::SQS::QueuePolicy")
               if any(queue.id in referenced_ids(q) for q in as_list(p.get("Queues")))
               for s in statements(p.get("PolicyDocument"))]
    if not any(allows(s, "sqs:SendMessage", service="sns.amazonaws.com") for s in granted):
        yield Violation(f"dead-letter queue {queue.id} has no policy allowing sns.amazonaws.com sqs:SendMessage",
                        "add a queue policy statement for sns.amazonaws.com (condition aws:SourceArn = the topic)")
    key = key_of(queue.get("KmsMasterKeyId"), template) if queue.get("KmsMasterKeyId") else None
    if (shape(queue.get("KmsMasterKeyId")) or "").endswith("alias/aws/sqs") or (key is not None and not any(
            allows(s, "kms:GenerateDataKey", service="sns.amazonaws.com") for s in statements(key.get("KeyPolicy")))):
        yield Violation(f"dead-letter queue {queue.id} is encrypted with a key SNS may not use",
                        "use SQS-managed encryption, or a customer managed key allowing sns.amazonaws.com")


@rule("SNS-SUBSCRIPTION-ENDPOINT", SUBSCRIPTION, message='"Invalid parameter: Email address" (or an unknown protocol)',
      source="https://docs.aws.amazon.com/sns/latest/api/API_Subscribe.html")
def subscription_endpoint(resource: Resource, template: Template) -> Iterator[Violation]:
    """An email subscription names an email address; the protocol is one SNS knows."""
    protocol, endpoint = resource.get("Protocol"), literal_text(resource.get("Endpoint"))
    if protocol not in ("http", "https", "email", "email-json", "sms", "sqs", "application", "lambda", "firehose"):
        yield Violation(f"Protocol={protocol!r}", "use one of http, https, email, email-json, sms, sqs, application, "
                        "lambda, firehose")
    elif protocol in ("email", "email-json") and endpoint is not None and (why := email_problem(endpoint)):
        yield Violation(f"Endpoint={endpoint!r}", "write the address as name@domain.tld", message=why)


@rule("KMS-POLICY-LOCKOUT", KEY, message='"MalformedPolicyDocumentException: The new key policy will not allow you to '
      'update the key policy in the future."',
      source="https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateKey.html#KMS-CreateKey-request-"
             "BypassPolicyLockoutSafetyCheck; https://github.com/trussworks/terraform-aws-cloudtrail/issues/178")
def key_policy_lockout(resource: Resource, template: Template) -> Iterator[Violation]:
    """A key policy lets an AWS principal of the account (not only services) change the policy."""
    policy = statements(resource.get("KeyPolicy"))
    if not policy or resource.get("BypassPolicyLockoutSafetyCheck") is True:
        return
    for s in policy:
        principal = s.get("Principal")
        account_principal = principal == "*" or (is_mapping(principal) and principal.get("AWS"))
        if account_principal and allows(s, "kms:PutKeyPolicy"):
            return
    yield Violation("no statement lets an account principal call kms:PutKeyPolicy", "keep CDK's default key policy "
                    "(the account root may administer the key) and add service statements to it",
                    location="Properties/KeyPolicy")


@rule("KMS-PENDING-WINDOW", KEY, message="ValidationException: PendingWindowInDays is 7 to 30",
      source="https://docs.aws.amazon.com/kms/latest/APIReference/API_ScheduleKeyDeletion.html")
def pending_window(resource: Resource, template: Template) -> Iterator[Violation]:
    """A key's deletion waiting period is 7 to 30 days."""
    days = number(resource.get("PendingWindowInDays"))
    if days is not None and not 7 <= days <= 30:
        yield Violation(f"PendingWindowInDays={days:g}", "set 7 to 30 days")
