"""Application Auto Scaling: scalable targets (Lambda provisioned concurrency) and their schedules."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cdk_app.preflight.engine import Resource, Template, Violation, as_mapping, literal_text, number, rule, shape
from cdk_app.settings.limits import time_zone_problem

TARGET = "AWS::ApplicationAutoScaling::ScalableTarget"
_SCHEDULE_DOCS = "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScheduledAction.html"


@rule("AUTOSCALING-CAPACITY", TARGET, message='ValidationException: "Minimum capacity cannot be greater than maximum '
      'capacity"', source="https://docs.aws.amazon.com/autoscaling/application/APIReference/API_RegisterScalableTarget.html")
def capacity(resource: Resource, template: Template) -> Iterator[Violation]:
    """Minimum capacity at most the maximum, for the target and every scheduled action."""
    spans = [("target", resource.get("MinCapacity"), resource.get("MaxCapacity"))]
    spans += [(a.get("ScheduledActionName", "a scheduled action"), as_mapping(a.get("ScalableTargetAction")).get(
        "MinCapacity"), as_mapping(a.get("ScalableTargetAction")).get("MaxCapacity"))
        for a in resource.mappings("ScheduledActions")]
    for what, low, high in spans:
        low, high = number(low), number(high)
        if low is not None and high is not None and (low > high or low < 0):
            yield Violation(f"{what}: MinCapacity {low:g}, MaxCapacity {high:g}", "set 0 <= min <= max")


@rule("AUTOSCALING-LAMBDA-TARGET", TARGET,
      message="ValidationException: Lambda provisioned concurrency scales an alias or a version "
              "(function:<name>:<qualifier>), never $LATEST",
      source="https://docs.aws.amazon.com/autoscaling/application/userguide/services-that-can-integrate-lambda.html")
def lambda_target(resource: Resource, template: Template) -> Iterator[Violation]:
    """A Lambda scalable target names an alias or a published version, and the provisioned-concurrency dimension."""
    if resource.get("ServiceNamespace") != "lambda":
        return
    resource_id = shape(resource.get("ResourceId")) or ""
    if not re.fullmatch(r"function:[^:]+:[^:]+", resource_id) or resource_id.endswith(":$LATEST"):
        yield Violation(f"ResourceId={resource_id!r}", "scale function:<name>:<alias> (the function's live alias)")
    dimension = resource.get("ScalableDimension")
    if isinstance(dimension, str) and dimension != "lambda:function:ProvisionedConcurrency":
        yield Violation(f"ScalableDimension={dimension!r}", "use lambda:function:ProvisionedConcurrency")


@rule("AUTOSCALING-SCHEDULE", TARGET,
      message="ValidationException: a schedule is at(...), rate(...) or a six-field cron(...), in a known time zone, "
              "with a unique name",
      source=_SCHEDULE_DOCS)
def schedules(resource: Resource, template: Template) -> Iterator[Violation]:
    """Scheduled actions with schedules and time zones Application Auto Scaling accepts, and unique names."""
    actions = resource.mappings("ScheduledActions")
    names = [literal_text(a.get("ScheduledActionName")) for a in actions]
    if repeated := sorted({n for n in names if n is not None and names.count(n) > 1}):
        yield Violation(f"scheduled actions {repeated} repeat", "give each scheduled action its own name")
    for action in actions:
        schedule, zone = literal_text(action.get("Schedule")), literal_text(action.get("Timezone"))
        if schedule is not None and not (re.fullmatch(r"at\(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\)", schedule)
                                         or re.fullmatch(r"rate\(\d+ (minute|minutes|hour|hours|day|days)\)", schedule)
                                         or re.fullmatch(r"cron\(\S+( \S+){5}\)", schedule)):
            yield Violation(f"Schedule={schedule!r}", "write cron(0 8 ? * MON-FRI *) (six fields), rate(...) or at(...)")
        if zone is not None and (why := time_zone_problem(zone)) is not None:
            yield Violation(f"Timezone={zone!r}", "use an IANA time zone name such as Europe/Berlin", message=why)
