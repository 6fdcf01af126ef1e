"""Event sources from the template: SQS event source mappings and EventBridge schedules.

:class:`SqsEventSource` polls a local queue the way Lambda's event source mapping does:
batches up to ``BatchSize`` gathered for up to ``MaximumBatchingWindowInSeconds``, at most
``ScalingConfig.MaximumConcurrency`` batches at once, records shaped as Lambda shapes them,
and with ``ReportBatchItemFailures`` only the failed messages kept (an invalid response or a
function error keeps the whole batch). Kept messages come back after the queue's visibility
timeout, and the queue's redrive policy moves them to its dead-letter queue after
``maxReceiveCount`` receives. :class:`Schedule` invokes a rule's function targets on its
``rate(...)`` (asynchronously, as EventBridge does), or on demand.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cdk_app.local.lambda_api import LocalLambda
from cdk_app.local.runtime import Log, print_log
from cdk_app.local.template import LocalError, Resolver, StackTemplate
from cdk_app.shapes import is_array, is_object

#: Lambda's default batch size for SQS, and how long one receive call waits when the queue is empty.
DEFAULT_BATCH_SIZE = 10
POLL_WAIT_S = 1


@dataclass
class SqsMapping:
    logical_id: str
    queue_url: str
    queue_arn: str
    function: str
    batch_size: int = DEFAULT_BATCH_SIZE
    window_s: float = 0.0
    max_concurrency: int | None = None
    report_failures: bool = False
    enabled: bool = True


def sqs_mappings(stack: StackTemplate, resolver: Resolver) -> list[SqsMapping]:
    """The template's SQS event source mappings (other sources, such as streams, are not polled)."""
    mappings: list[SqsMapping] = []
    queues = {resolver.get_att(lid, "Arn"): resolver.ref(lid) for lid in stack.of_type("AWS::SQS::Queue")}
    for logical_id, resource in stack.of_type("AWS::Lambda::EventSourceMapping").items():
        p = resolver.resolve(resource.get("Properties", {}))
        arn = p.get("EventSourceArn", "")
        if arn not in queues:
            continue
        mappings.append(SqsMapping(
            logical_id, queues[arn], arn, p["FunctionName"], int(p.get("BatchSize", DEFAULT_BATCH_SIZE)),
            float(p.get("MaximumBatchingWindowInSeconds", 0)),
            int(p["ScalingConfig"]["MaximumConcurrency"]) if p.get("ScalingConfig", {}).get("MaximumConcurrency")
            else None, "ReportBatchItemFailures" in p.get("FunctionResponseTypes", []),
            str(p.get("Enabled", True)).lower() != "false"))
    return mappings


def sqs_record(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One message as a Lambda SQS event record."""
    attributes = dict(message.get("Attributes", {}))
    message_attributes: dict[str, dict[str, Any]] = {
        name: {"stringValue": value.get("StringValue"), "binaryValue": value.get("BinaryValue"),
               "stringListValues": value.get("StringListValues", []), "binaryListValues": value.get("BinaryListValues", []),
               "dataType": value["DataType"]}
        for name, value in message.get("MessageAttributes", {}).items()}
    record: dict[str, Any] = {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"], "body": message["Body"],
        "attributes": attributes, "messageAttributes": message_attributes, "md5OfBody": message["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    for value in message_attributes.values():
        if value["binaryValue"] is None:
            del value["binaryValue"]
        else:
            import base64

            value["binaryValue"] = base64.b64encode(value["binaryValue"]).decode()
    return record


def failed_items(response: Any, message_ids: set[str]) -> set[str] | None:
    """The ids a partial batch response names as failed; None if the response is invalid (all failed)."""
    if response is None or response == {} or response == "":
        return set()
    if not is_object(response):
        return set()  # anything else without batchItemFailures counts as success
    failures = response.get("batchItemFailures")
    if failures is None or failures == []:
        return set()
    if not is_array(failures):
        return None
    found: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if is_object(failure) else None
        if not isinstance(identifier, str) or identifier not in message_ids:
            return None
        found.add(identifier)
    return found


class SqsEventSource:
    """Polls one queue for one function, as :class:`SqsMapping` says."""

    def __init__(self, mapping: SqsMapping, sqs: Any, functions: LocalLambda, *, region: str, pollers: int,
                 retry_after_s: float | None = None, log: Log = print_log) -> None:
        self.mapping, self.sqs, self.functions, self.region, self.log = mapping, sqs, functions, region, log
        self.pollers = max(1, min(pollers, mapping.max_concurrency or pollers))
        self.retry_after_s = retry_after_s
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> SqsEventSource:
        if not self.mapping.enabled:
            return self
        for number in range(self.pollers):
            thread = threading.Thread(target=self._poll, name=f"sqs-{self.mapping.logical_id}-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=POLL_WAIT_S + 5)

    def _receive(self) -> list[dict[str, Any]]:
        """One batch: up to the batch size, waiting up to the batching window once something arrived."""
        m = self.mapping
        batch: list[dict[str, Any]] = []
        window_ends = None
        while not self.stopping.is_set() and len(batch) < m.batch_size:
            if window_ends is not None and time.monotonic() >= window_ends:
                break
            wait = POLL_WAIT_S if window_ends is None else max(0, min(POLL_WAIT_S, int(window_ends - time.monotonic())))
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=m.queue_url, MaxNumberOfMessages=min(10, m.batch_size - len(batch)), WaitTimeSeconds=wait,
                    AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as error:  # moto stopping, or a transient error: try again
                if not self.stopping.is_set():
                    self.log(f"local: {m.logical_id}: receive failed: {error}")
                    time.sleep(1)
                continue
            batch += messages
            if batch and window_ends is None:
                window_ends = time.monotonic() + m.window_s
            if batch and m.window_s == 0:
                break
        return batch

    def _poll(self) -> None:
        m = self.mapping
        while not self.stopping.is_set():
            batch = self._receive()
            if not batch:
                continue
            event = json.dumps({"Records": [sqs_record(message, m.queue_arn, self.region) for message in batch]})
            try:
                result = self.functions.invoke(m.function, event.encode(), throttle=False)
                failed = failed_items(result.json(), {msg["MessageId"] for msg in batch}) if result.ok else None
            except (LocalError, ValueError) as error:
                self.log(f"local: {m.logical_id}: {error}")
                failed = None
            if failed is not None and not m.report_failures:
                failed = set[str]()  # without ReportBatchItemFailures a response never names failures
            kept = [msg for msg in batch if failed is None or msg["MessageId"] in failed]
            done = [msg for msg in batch if msg not in kept]
            for start in range(0, len(done), 10):
                self.sqs.delete_message_batch(QueueUrl=m.queue_url, Entries=[
                    {"Id": str(i), "ReceiptHandle": msg["ReceiptHandle"]} for i, msg in enumerate(done[start:start + 10])])
            if kept:
                self.log(f"local: {m.logical_id}: {len(kept)} of {len(batch)} message(s) failed; they return to the "
                         "queue after " + (f"{self.retry_after_s:g} s (--sqs-retry-seconds)" if self.retry_after_s
                                           is not None else "its visibility timeout"))
                if self.retry_after_s is not None:
                    for msg in kept:
                        self.sqs.change_message_visibility(QueueUrl=m.queue_url, ReceiptHandle=msg["ReceiptHandle"],
                                                           VisibilityTimeout=int(self.retry_after_s))


# --- schedules ---------------------------------------------------------------------------------------

_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_S = {"minute": 60, "hour": 3600, "day": 86400}


@dataclass
class Schedule:
    """An EventBridge rule with a schedule, and its function targets (their payloads)."""

    logical_id: str
    expression: str
    targets: list[tuple[str, bytes]]
    enabled: bool = True

    @property
    def period_s(self) -> float | None:
        found = _RATE.fullmatch(self.expression.strip())
        return int(found.group(1)) * _UNIT_S[found.group(2).rstrip("s")] if found else None


def schedules(stack: StackTemplate, resolver: Resolver, functions: LocalLambda) -> list[Schedule]:
    """The template's scheduled rules that target functions of this stack."""
    found: list[Schedule] = []
    for logical_id, resource in stack.of_type("AWS::Events::Rule").items():
        p = resolver.resolve(resource.get("Properties", {}))
        if not p.get("ScheduleExpression"):
            continue
        targets: list[tuple[str, bytes]] = []
        for target in p.get("Targets", []):
            try:
                functions.find(target["Arn"])
            except LocalError:
                continue  # not a function of this stack
            payload = target.get("Input") or json.dumps({
                "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
                "account": stack.account, "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "region": stack.region, "resources": [resolver.arn("events", f"rule/{logical_id}")], "detail": {}})
            targets.append((target["Arn"], payload.encode()))
        if targets:
            found.append(Schedule(logical_id, p["ScheduleExpression"], targets, p.get("State", "ENABLED") == "ENABLED"))
    return found


class Scheduler:
    """Fires each :class:`Schedule` on its rate (cron expressions fire on demand only)."""

    def __init__(self, rules: list[Schedule], functions: LocalLambda, *, log: Log = print_log) -> None:
        self.rules, self.functions, self.log = rules, functions, log
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def fire(self, rule: Schedule) -> None:
        for target, payload in rule.targets:
            self.log(f"local: {rule.logical_id} ({rule.expression}) invokes {target.split(':')[-2:][0]}")
            self.functions.invoke_async(target, payload, what=rule.logical_id)

    def fire_all(self) -> None:
        for rule in self.rules:
            if rule.enabled:
                self.fire(rule)

    def start(self) -> Scheduler:
        for rule in self.rules:
            if rule.enabled and rule.period_s is None:
                self.log(f"local: {rule.logical_id}: {rule.expression} fires on demand only locally")
        due = {rule.logical_id: time.monotonic() + rule.period_s for rule in self.rules
               if rule.enabled and rule.period_s is not None}

        def run() -> None:
            while not self.stopping.wait(1):
                for rule in self.rules:
                    if rule.logical_id in due and time.monotonic() >= due[rule.logical_id]:
                        due[rule.logical_id] += rule.period_s or 0
                        self.fire(rule)

        if due:
            self.thread = threading.Thread(target=run, name="scheduler", daemon=True)
            self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
