"""ElastiCache: serverless caches and replication groups."""

from __future__ import annotations

import re
from collections.abc import Iterator

from cdk_app.preflight.engine import Resource, Template, Violation, as_mapping, literal_text, number, rule

REPLICATION_GROUP, SERVERLESS = "AWS::ElastiCache::ReplicationGroup", "AWS::ElastiCache::ServerlessCache"
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@rule("ELASTICACHE-AUTH-TOKEN", REPLICATION_GROUP,
      message='"The AUTH token is only supported when encryption-in-transit is enabled" ("Invalid AuthToken provided" '
              "for a token outside 16-128 printable characters or with \" / @)",
      source="https://github.com/widdix/aws-cf-templates/issues/263; "
             "https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html")
def auth_token(resource: Resource, template: Template) -> Iterator[Violation]:
    """An AUTH token needs encryption in transit, and has 16-128 printable characters without " / @."""
    token = resource.get("AuthToken")
    if not token:
        return
    if resource.get("TransitEncryptionEnabled") not in (True, "true"):
        yield Violation("AuthToken without TransitEncryptionEnabled", "set TransitEncryptionEnabled to true")
    text = literal_text(token)
    if text is not None and not text.startswith("{{resolve:") and \
            not re.fullmatch(r"[\x21\x23-\x2e\x30-\x3f\x41-\x7e]{16,128}", text):
        yield Violation("AuthToken is not 16-128 printable characters without \" / @", "generate the token with "
                        "exclude_punctuation (Secrets Manager) and pass it as a dynamic reference",
                        message='"Invalid AuthToken provided."')


@rule("ELASTICACHE-FAILOVER", REPLICATION_GROUP,
      message="InvalidParameterCombination: automatic failover needs a replica (2 or more nodes); Multi-AZ needs "
              "automatic failover",
      source="https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/AutoFailover.html")
def failover(resource: Resource, template: Template) -> Iterator[Violation]:
    """Automatic failover has a replica to fail over to; Multi-AZ comes with automatic failover."""
    failover_on = resource.get("AutomaticFailoverEnabled") is True
    clusters = number(resource.get("NumCacheClusters"))
    replicas = number(resource.get("ReplicasPerNodeGroup"))
    if failover_on and (clusters is not None and clusters < 2 or replicas == 0):
        yield Violation("AutomaticFailoverEnabled with a single node", "add a replica (NumCacheClusters 2 or more)")
    if resource.get("MultiAZEnabled") is True and not failover_on:
        yield Violation("MultiAZEnabled without AutomaticFailoverEnabled", "turn on automatic failover")


def _window(text: str) -> tuple[int, int] | None:
    """Minutes since Sunday 00:00 of a weekly 'ddd:hh:mm-ddd:hh:mm' window (start, end)."""
    match = re.fullmatch(r"(\w{3}):(\d\d):(\d\d)-(\w{3}):(\d\d):(\d\d)", text.lower())
    if not match or match.group(1) not in _DAYS or match.group(4) not in _DAYS:
        return None
    start = _DAYS.index(match.group(1)) * 1440 + int(match.group(2)) * 60 + int(match.group(3))
    end = _DAYS.index(match.group(4)) * 1440 + int(match.group(5)) * 60 + int(match.group(6))
    return start, end if end > start else end + 7 * 1440


def _daily(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d\d):(\d\d)-(\d\d):(\d\d)", text)
    if not match:
        return None
    start, end = int(match.group(1)) * 60 + int(match.group(2)), int(match.group(3)) * 60 + int(match.group(4))
    return start, end if end > start else end + 1440


@rule("ELASTICACHE-WINDOWS", REPLICATION_GROUP,
      message="InvalidParameterValue: the snapshot window and the maintenance window must not overlap, and each "
              "lasts at least 60 minutes",
      source="https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/backups-automatic.html")
def windows(resource: Resource, template: Template) -> Iterator[Violation]:
    """The daily snapshot window and the weekly maintenance window last an hour or more and never overlap."""
    snapshot_text = literal_text(resource.get("SnapshotWindow"))
    maintenance_text = literal_text(resource.get("PreferredMaintenanceWindow"))
    snapshot = _daily(snapshot_text) if snapshot_text else None
    maintenance = _window(maintenance_text) if maintenance_text else None
    for name, span in (("SnapshotWindow", snapshot), ("PreferredMaintenanceWindow", maintenance)):
        if span is not None and span[1] - span[0] < 60:
            yield Violation(f"{name} lasts {span[1] - span[0]} minutes", "make it 60 minutes or longer")
    if snapshot is None or maintenance is None:
        return
    for day in range(8):  # every day's snapshot against the week's maintenance (and the wrap into next week)
        start, end = day * 1440 + snapshot[0], day * 1440 + snapshot[1]
        for offset in (0, 7 * 1440):
            if start < maintenance[1] + offset and maintenance[0] + offset < end:
                yield Violation(f"SnapshotWindow {snapshot_text} overlaps PreferredMaintenanceWindow "
                                f"{maintenance_text}", "move one of them")
                return


@rule("ELASTICACHE-SERVERLESS-LIMITS", SERVERLESS,
      message="InvalidParameterValue: serverless usage limits are 1-5000 GB of data and 1000-15,000,000 ECPU per second "
              "(minimum at most maximum)",
      source="https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/Scaling.html")
def serverless_limits(resource: Resource, template: Template) -> Iterator[Violation]:
    """Serverless cache usage limits within ElastiCache's bounds."""
    limits = resource.mapping("CacheUsageLimits")
    for name, unit, low, high in (("DataStorage", "GB", 1, 5000), ("ECPUPerSecond", "ECPU/s", 1000, 15_000_000)):
        spec = as_mapping(limits.get(name))
        low_set, high_set = number(spec.get("Minimum")), number(spec.get("Maximum"))
        for value in (low_set, high_set):
            if value is not None and not low <= value <= high:
                yield Violation(f"{name} limit {value:g} {unit}", f"set {low} to {high} {unit}")
        if low_set is not None and high_set is not None and low_set > high_set:
            yield Violation(f"{name} Minimum {low_set:g} above Maximum {high_set:g}", "set Minimum <= Maximum")
    days = number(resource.get("SnapshotRetentionLimit"))
    if days is not None and not 0 <= days <= 35:
        yield Violation(f"SnapshotRetentionLimit={days:g}", "keep 0 to 35 days of snapshots")
