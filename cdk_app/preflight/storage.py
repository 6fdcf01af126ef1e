"""DynamoDB tables and S3 buckets with their event notifications."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import combinations
from typing import Any

from cdk_app.preflight.engine import (
    Resource,
    Template,
    Violation,
    allows,
    as_list,
    as_mapping,
    is_mapping,
    known,
    mappings,
    referenced_ids,
    rule,
    shape,
    statements,
)

TABLE, GLOBAL_TABLE, BUCKET = "AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable", "AWS::S3::Bucket"
NOTIFICATIONS = "Custom::S3BucketNotifications"


def _attribute_names(entries: object) -> set[str]:
    """The AttributeName of each entry of a KeySchema or AttributeDefinitions list."""
    return {name for entry in mappings(entries) if isinstance(name := entry.get("AttributeName"), str)}


def _key_attributes(resource: Resource) -> set[str]:
    names = _attribute_names(resource.get("KeySchema"))
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        for index in resource.mappings(kind):
            names |= _attribute_names(index.get("KeySchema"))
    return names


@rule("DYNAMODB-KEY-ATTRIBUTES", TABLE, GLOBAL_TABLE,
      message='"Property AttributeDefinitions is inconsistent with the KeySchema of the table and the secondary '
              'indexes" (or "Number of attributes in KeySchema does not exactly match number of attributes defined '
              'in AttributeDefinitions")',
      source="https://github.com/pulumi/pulumi-aws-native/issues/729; "
             "https://github.com/aws-amplify/amplify-category-api/issues/1924")
def key_attributes(resource: Resource, template: Template) -> Iterator[Violation]:
    """AttributeDefinitions name exactly the key attributes of the table and its indexes."""
    if not known(resource.get("KeySchema")) or not known(resource.get("AttributeDefinitions")):
        return
    defined = _attribute_names(resource.get("AttributeDefinitions"))
    keys = _key_attributes(resource)
    if missing := sorted(keys - defined):
        yield Violation(f"key attributes {missing} are not in AttributeDefinitions", "define each key attribute")
    if extra := sorted(defined - keys):
        yield Violation(f"AttributeDefinitions {extra} are no key of the table or an index", "define only key "
                        "attributes (DynamoDB is schemaless for the rest)")


@rule("DYNAMODB-BILLING", TABLE, GLOBAL_TABLE,
      message='"One or more parameter values were invalid: Neither ReadCapacityUnits nor WriteCapacityUnits can be '
              'specified when BillingMode is PAY_PER_REQUEST" (or "No provisioned throughput specified")',
      source="https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-dynamodb-table.html"
             "#cfn-dynamodb-table-billingmode")
def billing(resource: Resource, template: Template) -> Iterator[Violation]:
    """On-demand tables set no provisioned throughput; provisioned tables set it."""
    mode = resource.get("BillingMode", default="PROVISIONED" if resource.type == TABLE else "PAY_PER_REQUEST")
    throughput = resource.get("ProvisionedThroughput") or resource.get("WriteProvisionedThroughputSettings")
    if mode == "PAY_PER_REQUEST" and throughput:
        yield Violation("BillingMode PAY_PER_REQUEST with provisioned throughput", "remove the throughput settings")
    elif mode == "PROVISIONED" and not throughput:
        yield Violation("BillingMode PROVISIONED without throughput", "set the throughput or use PAY_PER_REQUEST")


@rule("DYNAMODB-GLOBAL-REPLICAS", GLOBAL_TABLE,
      message="ValidationError: a global table lists a replica in the stack's own region, and needs "
              "StreamSpecification for more than one replica",
      source="https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-resource-dynamodb-globaltable.html")
def global_replicas(resource: Resource, template: Template) -> Iterator[Violation]:
    """A global table has a replica in the stack's region; several replicas need a stream."""
    replicas = resource.mappings("Replicas")
    regions: list[object] = [r.get("Region") for r in replicas]
    here = {"Ref": "AWS::Region"}
    if regions and here not in regions and (template.region is None or template.region not in regions) \
            and all(isinstance(r, str) for r in regions):
        yield Violation(f"Replicas in {regions}, none in the stack's region", "add a replica whose Region is "
                        "the stack's (Ref AWS::Region)")
    if len(replicas) > 1 and not resource.get("StreamSpecification"):
        yield Violation(f"{len(replicas)} replicas without StreamSpecification", "set StreamSpecification "
                        "(NEW_AND_OLD_IMAGES)")


# --- S3 event notifications ----------------------------------------------------------------------

def _configurations(resource: Resource) -> list[tuple[str, Mapping[str, Any]]]:
    """(kind, configuration) of a bucket's (or CDK's notifications resource's) notification configuration."""
    config = resource.mapping("NotificationConfiguration")
    return [(kind, c) for kind in ("QueueConfigurations", "TopicConfigurations", "LambdaConfigurations",
                                   "LambdaFunctionConfigurations")
            for c in mappings(config.get(kind))]


def _filters(config: Mapping[str, Any]) -> dict[str, list[str]]:
    """A configuration's key filter as {"prefix": [...], "suffix": [...]} (template or S3 API spelling)."""
    spec = config.get("Filter")
    if not is_mapping(spec):
        return {}
    rules = as_mapping(spec.get("S3Key")).get("Rules") or as_mapping(spec.get("Key")).get("FilterRules")
    found: dict[str, list[str]] = {}
    for item in mappings(rules):
        found.setdefault(str(item.get("Name", "")).lower(), []).append(str(item.get("Value", "")))
    return found


def _events(config: Mapping[str, Any]) -> set[str]:
    return {e for e in as_list(config.get("Events", config.get("Event"))) if isinstance(e, str)}


def _events_overlap(a: set[str], b: set[str]) -> bool:
    def covers(x: str, y: str) -> bool:
        return x == y or (x.endswith("*") and y.startswith(x[:-1]))
    return any(covers(x, y) or covers(y, x) for x in a for y in b)


def _affix_overlap(a: str, b: str, prefix: bool) -> bool:
    return a.startswith(b) or b.startswith(a) if prefix else a.endswith(b) or b.endswith(a)


@rule("S3-NOTIFICATION-FILTERS", BUCKET, NOTIFICATIONS,
      message='"Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes '
              'are overlapping for the same event type." (filter rules are one prefix and one suffix at most)',
      source="https://github.com/matt-filion/serverless-external-s3-event/issues/53; "
             "https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-how-to-filtering.html")
def notification_filters(resource: Resource, template: Template) -> Iterator[Violation]:
    """Notification filters: prefix and suffix only, once each; no two configurations overlap for one event."""
    configs = _configurations(resource)
    for _, config in configs:
        filters = _filters(config)
        if set(filters) - {"prefix", "suffix"} or any(len(v) > 1 for v in filters.values()):
            yield Violation(f"filter rules {filters}", "use at most one prefix and one suffix rule per configuration")
    for (_, a), (_, b) in combinations(configs, 2):
        fa, fb = _filters(a), _filters(b)
        if _events_overlap(_events(a), _events(b)) and \
                _affix_overlap((fa.get("prefix") or [""])[0], (fb.get("prefix") or [""])[0], True) and \
                _affix_overlap((fa.get("suffix") or [""])[0], (fb.get("suffix") or [""])[0], False):
            yield Violation(f"two configurations overlap for events {sorted(_events(a) & _events(b)) or 'shared'} "
                            f"(filters {fa} and {fb})", "give them disjoint prefixes or suffixes, or merge them")


_DESTINATIONS = {"QueueConfigurations": ("AWS::SQS::QueuePolicy", "Queues", "sqs:SendMessage", "QueueArn"),
                 "TopicConfigurations": ("AWS::SNS::TopicPolicy", "Topics", "sns:Publish", "TopicArn")}


@rule("S3-NOTIFICATION-DESTINATION", BUCKET, NOTIFICATIONS,
      message='"Unable to validate the following destination configurations" (S3 may not send to the queue, topic '
              "or function yet)",
      source="https://github.com/aws/aws-cdk/issues/20127; "
             "https://github.com/hashicorp/terraform-provider-aws/issues/11219")
def notification_destination(resource: Resource, template: Template) -> Iterator[Violation]:
    """A notification's queue/topic/function lets S3 deliver, and that permission exists before the notification."""
    for kind, config in _configurations(resource):
        if kind in _DESTINATIONS:
            policy_type, list_key, action, arn_key = _DESTINATIONS[kind]
            destination = template.target(config.get(arn_key))
            if destination is None:
                continue
            policies = [p for p in template.of_type(policy_type)
                        if any(destination.id in referenced_ids(x) for x in as_list(p.get(list_key)))]
            granting = [p for p in policies if any(allows(s, action, service="s3.amazonaws.com")
                                                   for s in statements(p.get("PolicyDocument")))]
            if not granting:
                yield Violation(f"{destination.id} has no policy allowing s3.amazonaws.com {action}", "grant S3 "
                                f"{action} on it (condition aws:SourceArn = the bucket)")
            elif not any(template.depends(resource, p.id) for p in granting):
                yield Violation(f"the notification does not depend on {granting[0].id}", "add a dependency on the "
                                "policy, so S3 can validate the destination")
            if (shape(destination.get("KmsMasterKeyId")) or "").endswith(("alias/aws/sqs", "alias/aws/sns")):
                yield Violation(f"{destination.id} is encrypted with an AWS managed key S3 may not use",
                                "use SQS-managed encryption or a customer managed key that allows s3.amazonaws.com")
        else:
            function_arn = config.get("LambdaFunctionArn", config.get("Function"))
            ids = referenced_ids(function_arn)
            permissions = [p for p in template.of_type("AWS::Lambda::Permission")
                           if referenced_ids(p.get("FunctionName")) & ids and p.get("Principal") == "s3.amazonaws.com"]
            if ids & template.resources.keys() and not permissions:
                yield Violation("the function has no permission for s3.amazonaws.com", "add a Lambda permission for "
                                "s3.amazonaws.com (SourceArn = the bucket)")
            elif permissions and not any(template.depends(resource, p.id) for p in permissions):
                yield Violation(f"the notification does not depend on {permissions[0].id}", "add a dependency on the "
                                "permission")

