"""Background tasks: a typed envelope, a registry of handlers, the send, the status store, the worker.

The API validates a task and sends it as JSON to the SQS queue named by ``TASK_QUEUE_URL``;
the worker runs each message of a batch alone (Powertools' batch utilities) and reports
only the failed ones. Statuses live in the DynamoDB table ``TASK_TABLE_NAME``: a conditional
claim there makes a redelivered task a no-op once it succeeded. With no queue configured
(``make serve``), a task runs in a thread of the same process, through the same JSON; with
no table, statuses are kept in memory::

    registry = TaskRegistry()

    @registry.task("generate-report", ReportPayload)
    def generate_report(payload: ReportPayload, envelope: TaskEnvelope) -> dict: ...

    handler = lambda_handler(app, tasks=registry)

Cheap to import: boto3 and Powertools load on first use (or at init in eager mode).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast
from urllib.parse import unquote_plus

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from fastapi_lambda import aws, observability
from fastapi_lambda.constants import (
    FILE_TASK_TYPE,
    FILES_INCOMING_PREFIX,
    TASK_QUEUE_URL_VARIABLE,
    TASK_TABLE_KEY,
    TASK_TABLE_TTL_ATTRIBUTE,
    TASK_TABLE_VARIABLE,
)
from fastapi_lambda.openapi import JsonInt

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

    from fastapi_lambda.shapes import JsonValue, SqsMessage

logger = logging.getLogger(__name__)

#: How long a status record is kept after its task was created (DynamoDB deletes it after).
RECORD_TTL_S = 7 * 24 * 3600
#: A claim's lease when the time left to run is unknown (local runs): Lambda's longest timeout.
DEFAULT_LEASE_S = 900
#: SQS's classic message size limit, checked before sending so a too-large task is a 422, not a 503.
MAX_MESSAGE_BYTES = 256 * 1024
#: The largest result a status record keeps, as JSON (a DynamoDB item holds 400 KB, all attributes told).
MAX_RESULT_BYTES = 350 * 1024
#: What DynamoDB answers when a conditional write's condition does not hold.
CONDITION_FAILED = "ConditionalCheckFailedException"
#: A message is started only when this much time is left, or what the longest one so far took.
MIN_MESSAGE_S = 1.0
#: Seconds a client is told to wait after a 503.
RETRY_AFTER_S = 5
#: Set by Lambda in every function. There a task needs the queue (a thread would be frozen with the
#: instance after the response) and the table (in memory, each instance would see only its own tasks).
LAMBDA_VARIABLE = "AWS_LAMBDA_FUNCTION_NAME"
#: The X-Ray trace header Lambda sets for every invocation; a task carries it to the worker's logs.
TRACE_VARIABLE = "_X_AMZN_TRACE_ID"

#: Metrics (namespace ``FastApiLambda``): tasks sent (or started in-process), not sent (503), run to an end.
TASKS_ACCEPTED_METRIC = "TasksAccepted"
TASK_SEND_FAILURES_METRIC = "TaskSendFailures"
TASKS_SUCCEEDED_METRIC = "TasksSucceeded"
TASKS_FAILED_METRIC = "TasksFailed"

Status = Literal["queued", "running", "succeeded", "failed"]

#: JSON Schema of a status record as ``GET /tasks/{id}`` shows it (:meth:`TaskRegistry.get_status`).
TASK_STATUS_SCHEMA: dict[str, Any] = {
    "type": "object", "title": "TaskStatus", "required": ["id", "type", "status", "attempts", "created_at", "updated_at"],
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string"},
        "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        "attempts": {"type": "integer", "minimum": 0},
        **{name: {"type": "string", "format": "date-time"}
           for name in ("created_at", "updated_at", "started_at", "finished_at")},
        "result": {"description": "What the task's handler returned (JSON), once it succeeded"},
        "error": {"type": "string", "description": "Why it failed, once it failed"},
    },
}


def _now() -> datetime:
    return datetime.now(UTC)


class TaskEnvelope(BaseModel):
    """The JSON body of every task message (and what a handler receives besides its payload).

    No defaults for ``id`` and ``created_at``: a message without them would get a new id
    on every delivery and run again (:meth:`TaskRegistry.new_task` makes both).
    """

    id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")
    type: str = Field(min_length=1, max_length=128)
    payload: dict[str, Any]
    created_at: AwareDatetime
    trace_header: str | None = None


class FilePayload(BaseModel):
    """The payload of a ``process-file`` task made from an S3 object-created notification."""

    model_config = ConfigDict(strict=True)  # the JSON types the schema names: no 5 for a key, no "5" for a size

    bucket: str
    key: str  # decoded: S3 events carry it URL-encoded
    version_id: str | None = None
    size: JsonInt | None = None
    etag: str | None = None


class TaskRejected(ValueError):
    """A task (or a message) that does not validate; ``errors`` are pydantic-style details."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors))
        self.errors = errors


class TaskSendError(RuntimeError):
    """The task could not be recorded or sent: nothing was accepted (the API answers 503)."""

    retry_after = RETRY_AFTER_S


class ResultRejected(ValueError):
    """A handler's result that a status record cannot hold: the task is marked failed with the reason."""


class NotStarted(RuntimeError):
    """A message of a batch returned to the queue without being run (not enough time, or the table is down)."""


class TaskBusy(RuntimeError):
    """Another delivery of the same task holds a live lease: fail this one, SQS retries it later."""


def _rejected(type_: str, loc: tuple[Any, ...], msg: str, input_: Any = None) -> TaskRejected:
    return TaskRejected([{"type": type_, "loc": loc, "msg": msg, "input": input_}])


def _validation_errors(error: ValidationError, prefix: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    # No URLs or contexts: a context may hold the exception object, which is not JSON.
    return [{**e, "loc": (*prefix, *e["loc"])} for e in error.errors(include_url=False, include_context=False)]


# --- clients: made at init in eager mode; every call bounded by the invocation's time left (aws) ------

sqs_client = aws.per_instance_client("sqs")
dynamodb_client = aws.per_instance_client("dynamodb")


# --- status stores: DynamoDB when a table is configured, else memory; the same semantics -------

def _public(record: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /tasks/{id}`` shows of a record: not the lease nor the expiry."""
    return {k: v for k, v in record.items() if k not in ("lease_until", TASK_TABLE_TTL_ATTRIBUTE) and v is not None}


class MemoryStore:
    """Statuses in this process, for local runs and tests without a table."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def add(self, envelope: TaskEnvelope) -> None:
        with self.lock:
            if envelope.id in self.records:
                raise ValueError(f"task {envelope.id} exists")
            self.records[envelope.id] = _new_record(envelope)

    def remove_queued(self, task_id: str) -> None:
        with self.lock:
            if self.records.get(task_id, {}).get("status") == "queued":
                del self.records[task_id]

    def get(self, task_id: str) -> dict[str, Any] | None:
        with self.lock:
            record = self.records.get(task_id)
            return dict(record) if record else None

    def claim(self, envelope: TaskEnvelope, lease_s: float) -> Status | None:
        with self.lock:
            record = self.records.get(envelope.id) or _new_record(envelope)
            blocked = _claim_blocked(record.get("status"), record.get("lease_until"))
            if blocked:
                return blocked
            now = _now().isoformat()
            record.update(status="running", attempts=record.get("attempts", 0) + 1, started_at=now, updated_at=now,
                          lease_until=time.time() + lease_s)
            self.records[envelope.id] = record
            return None

    def finish(self, task_id: str, status: Status, result: Any = None, error: str | None = None) -> None:
        if status == "succeeded":
            result_json(result)  # what the table would refuse, refused here too
        with self.lock:
            record = self.records.setdefault(task_id, {TASK_TABLE_KEY: task_id})
            now = _now().isoformat()
            record.update(status=status, result=result, error=error, updated_at=now, finished_at=now, lease_until=None)


def result_json(result: Any) -> str:
    """``result`` as the JSON a status record keeps; :class:`ResultRejected` when it cannot keep it."""
    try:
        text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:  # NaN, Infinity, or a type JSON has not
        raise ResultRejected(f"the result is not JSON ({error})") from None
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_RESULT_BYTES:
        raise ResultRejected(f"the result is {size} bytes as JSON; a status record keeps at most {MAX_RESULT_BYTES}")
    return text


def _new_record(envelope: TaskEnvelope) -> dict[str, Any]:
    created = envelope.created_at
    return {TASK_TABLE_KEY: envelope.id, "type": envelope.type, "status": "queued", "attempts": 0,
            "created_at": created.isoformat(), "updated_at": _now().isoformat(),
            TASK_TABLE_TTL_ATTRIBUTE: int(created.timestamp()) + RECORD_TTL_S}


def _claim_blocked(status: str | None, lease_until: float | None) -> Status | None:
    """Why a task with this status may not be claimed now: ``succeeded``, ``running``, or None if it may."""
    if status == "succeeded":
        return "succeeded"
    if status == "running" and (lease_until or 0) > time.time():
        return "running"
    return None


class DynamoStore:
    """Statuses in the DynamoDB table: partition key ``id``, TTL ``expires_at`` (epoch seconds)."""

    # The attribute names are reserved words or may be: every expression names them through these.
    NAMES = {"#id": TASK_TABLE_KEY, "#status": "status", "#type": "type", "#attempts": "attempts",
             "#lease": "lease_until", "#ttl": TASK_TABLE_TTL_ATTRIBUTE, "#created": "created_at",
             "#updated": "updated_at", "#started": "started_at", "#finished": "finished_at",
             "#result": "result", "#error": "error"}

    def __init__(self, table: str) -> None:
        self.table = table

    def _call(self, operation: str, **parameters: Any) -> Any:
        return aws.call("dynamodb", operation, TableName=self.table, **parameters)

    def _key(self, task_id: str) -> dict[str, Any]:
        return {TASK_TABLE_KEY: {"S": task_id}}

    def _names(self, expression: str) -> dict[str, str]:
        return {k: v for k, v in self.NAMES.items() if k in expression}

    def add(self, envelope: TaskEnvelope) -> None:
        item = {k: {"N": str(v)} if isinstance(v, int) else {"S": v} for k, v in _new_record(envelope).items()}
        self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(#id)",
                   ExpressionAttributeNames={"#id": TASK_TABLE_KEY})

    def remove_queued(self, task_id: str) -> None:
        try:  # only while queued: a worker that got the message anyway owns the record now
            self._call("delete_item", Key=self._key(task_id), ConditionExpression="#status = :q",
                       ExpressionAttributeNames={"#status": "status"}, ExpressionAttributeValues={":q": {"S": "queued"}})
        except Exception as error:
            if aws.reason(error) != CONDITION_FAILED:
                raise

    def get(self, task_id: str) -> dict[str, Any] | None:
        item = self._call("get_item", Key=self._key(task_id), ConsistentRead=True).get("Item")
        return _from_item(item) if item else None

    def claim(self, envelope: TaskEnvelope, lease_s: float) -> Status | None:
        now, iso = time.time(), _now().isoformat()
        update = ("SET #status = :running, #type = :type, #attempts = if_not_exists(#attempts, :zero) + :one, "
                  "#lease = :lease, #started = :iso, #updated = :iso, #created = if_not_exists(#created, :created), "
                  "#ttl = if_not_exists(#ttl, :ttl)")
        # queued, failed or missing (an S3 task, a record past its TTL): claim; running: only once its lease is over.
        condition = ("attribute_not_exists(#id) OR #status IN (:queued, :failed) "
                     "OR (#status = :running AND #lease < :now)")
        try:
            self._call(
                "update_item", Key=self._key(envelope.id), UpdateExpression=update,
                ConditionExpression=condition, ExpressionAttributeNames=self._names(update + condition),
                ExpressionAttributeValues={
                    ":running": {"S": "running"}, ":queued": {"S": "queued"}, ":failed": {"S": "failed"},
                    ":type": {"S": envelope.type}, ":zero": {"N": "0"}, ":one": {"N": "1"},
                    ":lease": {"N": str(now + lease_s)}, ":now": {"N": str(now)}, ":iso": {"S": iso},
                    ":created": {"S": envelope.created_at.isoformat()},
                    ":ttl": {"N": str(int(envelope.created_at.timestamp()) + RECORD_TTL_S)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD")
        except Exception as error:
            if aws.reason(error) != CONDITION_FAILED:
                raise
            old = _from_item(error.response.get("Item") or {})  # type: ignore[attr-defined]
            return _claim_blocked(old.get("status"), old.get("lease_until")) or "running"
        return None

    def finish(self, task_id: str, status: Status, result: Any = None, error: str | None = None) -> None:
        outcome, other = ("#result", "#error") if status == "succeeded" else ("#error", "#result")
        value = result_json(result) if status == "succeeded" else error or ""
        update = f"SET #status = :status, #updated = :iso, #finished = :iso, {outcome} = :value REMOVE #lease, {other}"
        try:
            self._call("update_item", Key=self._key(task_id), UpdateExpression=update,
                       ExpressionAttributeNames=self._names(update),
                       ExpressionAttributeValues={":status": {"S": status}, ":iso": {"S": _now().isoformat()},
                                                  ":value": {"S": value}})
        except Exception as refused:
            if aws.reason(refused) == "ValidationException" and status == "succeeded":  # e.g. past 400 KB, all told
                raise ResultRejected(f"the table refused the result: {refused}") from None
            raise


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for name, value in item.items():
        if "N" in value:
            number = float(value["N"])
            record[name] = int(number) if number.is_integer() else number
        else:
            record[name] = value.get("S")
    if "result" in record:  # stored as JSON text: DynamoDB's own types cannot hold floats or nulls as given
        record["result"] = json.loads(record["result"])
    return record


# --- the registry: task types, submission, the worker -------------------------------------------

class TaskType(NamedTuple):
    model: type[BaseModel]
    handler: Callable[[Any, TaskEnvelope], Any]


class TaskRegistry:
    """Task types and their handlers; sends tasks (API side) and runs them (worker side).

    Configuration comes from the environment at each use (``TASK_QUEUE_URL``,
    ``TASK_TABLE_NAME``), so one module-level registry serves every function.
    """

    def __init__(self) -> None:
        self.types: dict[str, TaskType] = {}
        self.memory = MemoryStore()

    def task(self, name: str, model: type[BaseModel]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register ``fn(payload: model, envelope) -> JSON-able result`` for tasks of type ``name``."""

        def register(handler: Callable[..., Any]) -> Callable[..., Any]:
            if name in self.types:
                raise ValueError(f"task type {name!r} is registered twice")
            self.types[name] = TaskType(model, handler)
            return handler

        return register

    def request_schema(self, components: dict[str, Any]) -> dict[str, Any]:
        """The JSON Schema of what :meth:`new_task` accepts, for an OpenAPI schema: an object per
        registered type (``type``: its name, ``payload``: its model), told apart by ``type``. The
        models go into ``components`` (``#/components/schemas``). Built when the schema is, never at
        import: the validation stays the registry's, with these same models."""
        from pydantic.json_schema import models_json_schema

        ref = "#/components/schemas/{model}"
        _, definitions = models_json_schema([(task.model, "validation") for task in self.types.values()],
                                            ref_template=ref)
        components.update(definitions.get("$defs", {}))
        mapping: dict[str, str] = {}
        for name, task in self.types.items():
            title = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name)) + "Task"
            required = any(field.is_required() for field in task.model.model_fields.values())
            components[title] = {
                "type": "object", "title": title, "required": ["type", "payload"] if required else ["type"],
                "properties": {"type": {"type": "string", "const": name},
                               "payload": {"$ref": ref.format(model=task.model.__name__)}}}
            mapping[name] = ref.format(model=title)
        return {"oneOf": [{"$ref": target} for target in mapping.values()],
                "discriminator": {"propertyName": "type", "mapping": mapping}}

    def store(self) -> DynamoStore | MemoryStore:
        table = os.environ.get(TASK_TABLE_VARIABLE)
        if table:
            return DynamoStore(table)
        if os.environ.get(LAMBDA_VARIABLE):
            raise RuntimeError(f"{TASK_TABLE_VARIABLE} is not set: on Lambda, task statuses need the DynamoDB table")
        return self.memory

    def validate(self, envelope: TaskEnvelope) -> BaseModel:
        """The envelope's payload as its type's model; :class:`TaskRejected` if either is wrong."""
        task = self.types.get(envelope.type)
        if task is None:
            known = ", ".join(sorted(self.types)) or "none"
            raise _rejected("unknown_task_type", ("type",), f"Unknown task type; expected one of: {known}",
                            envelope.type)
        try:
            return task.model.model_validate(envelope.payload)
        except ValidationError as error:
            raise TaskRejected(_validation_errors(error, ("payload",))) from None

    def new_task(self, type: str, payload: dict[str, Any], trace_header: str | None = None) -> TaskEnvelope:
        """A validated envelope for a new task (raises :class:`TaskRejected`)."""
        try:
            envelope = TaskEnvelope(id=uuid.uuid4().hex, type=type, payload=payload, created_at=_now(),
                                    trace_header=trace_header or os.environ.get(TRACE_VARIABLE))
        except ValidationError as error:
            raise TaskRejected(_validation_errors(error)) from None
        self.validate(envelope)
        if len(envelope.model_dump_json().encode()) > MAX_MESSAGE_BYTES:
            raise _rejected("too_large", ("payload",), f"The task is larger than {MAX_MESSAGE_BYTES} bytes as JSON")
        return envelope

    def submit(self, envelope: TaskEnvelope) -> TaskEnvelope:
        """Record the task as queued, then send it; :class:`TaskSendError` when either fails.

        With no queue configured it runs in a thread of this process instead.
        """
        queue_url = os.environ.get(TASK_QUEUE_URL_VARIABLE)
        if not queue_url and os.environ.get(LAMBDA_VARIABLE):
            logger.error(f"{TASK_QUEUE_URL_VARIABLE} is not set: on Lambda a task cannot run in-process",
                         extra={"task_id": envelope.id})
            raise TaskSendError("no task queue is configured")
        try:
            store = self.store()
            store.add(envelope)
        except Exception as error:
            logger.error("Could not record a task", extra={"task_id": envelope.id}, exc_info=True)
            raise TaskSendError("the task could not be recorded") from error
        body = envelope.model_dump_json()
        if not queue_url:
            threading.Thread(target=self._run_local, args=(body, envelope.id), name=f"task-{envelope.id}",
                             daemon=True).start()
            observability.count(TASKS_ACCEPTED_METRIC)
            return envelope
        try:
            # Time is kept to undo the record if the send fails: a record may never claim an unsent task.
            with observability.subsegment("## sqs.send_message"), aws.current().keeping(aws.TIERS[-1].seconds).active():
                aws.call("sqs", "send_message", QueueUrl=queue_url, MessageBody=body)
        except Exception as error:
            logger.error("Could not send a task", extra={"task_id": envelope.id}, exc_info=True)
            observability.count(TASK_SEND_FAILURES_METRIC)
            try:  # nothing may claim the task was accepted
                store.remove_queued(envelope.id)
            except Exception:
                logger.warning("Could not remove the record of an unsent task", extra={"task_id": envelope.id},
                               exc_info=True)
            raise TaskSendError("the task could not be sent") from error
        observability.count(TASKS_ACCEPTED_METRIC)
        return envelope

    def get_status(self, task_id: str) -> dict[str, Any] | None:
        """The task's status record (``GET /tasks/{id}``), None if unknown."""
        record = self.store().get(task_id)
        return _public(record) if record else None

    # --- worker side ---------------------------------------------------------------------------

    def process_batch(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The SQS worker: ``{"batchItemFailures": [...]}`` names the messages to retry.

        Every AWS call fits in the invocation's time left (:mod:`fastapi_lambda.aws`). A message is
        started only while the time left covers the longest one so far (at least
        :data:`MIN_MESSAGE_S`), and not once the status table proved unreachable: those are
        returned to the queue unstarted, so the batch always answers before its deadline.
        """
        from aws_lambda_powertools.utilities import batch as powertools_batch
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

        # Powertools leaves record_handler a bare Callable (its type holds an Unknown): named here as called.
        process_partial_response = cast("Callable[..., PartialItemFailureResponse]",
                                        powertools_batch.process_partial_response)

        self.store()  # a missing table fails the invocation: every message returns to the queue
        records, malformed = _well_formed(event["Records"])
        batch = _BatchRun(aws.Budget.from_context(context))

        def handle_record(record: SqsMessage) -> None:
            batch.run(self.handle_message, record.body, record.message_id, context)

        # False: a batch where every message failed is reported like any other, not raised.
        processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
        with batch.budget.active():
            response = process_partial_response(
                event={**event, "Records": records}, processor=processor, context=context,
                record_handler=handle_record)
        if batch.unstarted:
            logger.warning("Returned messages to the queue unstarted", extra={
                "unstarted": batch.unstarted, "reason": batch.stopped or "not enough time left for another message"})
        return {**response, "batchItemFailures": [*response["batchItemFailures"], *malformed]}

    def handle_message(self, body: str, message_id: str, context: Any = None) -> None:
        """Run the task(s) of one message body; raises when the message must be retried or dead-lettered."""
        try:
            for envelope in self._parse(body):
                self.execute(envelope, context, message_id)
        except TaskRejected as rejected:  # never valid: fails until it reaches the dead-letter queue
            # Without the inputs: a payload may hold personal data, and the message is kept in the DLQ.
            errors = [{k: v for k, v in e.items() if k != "input"} for e in rejected.errors]
            logger.error("Rejected a task message", extra={"message_id": message_id, "errors": errors})
            raise

    def _parse(self, body: str) -> list[TaskEnvelope]:
        try:
            data: JsonValue = strict_json(body)  # no NaN or Infinity: the result and status would not be JSON
        except (TypeError, ValueError, RecursionError):
            raise _rejected("json_invalid", ("body",), "The message body is not JSON", (body or "")[:200]) from None
        if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
            logger.info("Acknowledged S3's test event", extra={"bucket": data.get("Bucket")})
            return []
        try:
            if isinstance(data, dict) and isinstance(data.get("Records"), list):
                return s3_envelopes(data)
            return [TaskEnvelope.model_validate(data)]
        except ValidationError as error:
            raise TaskRejected(_validation_errors(error, ("body",))) from None

    def execute(self, envelope: TaskEnvelope, context: Any = None, message_id: str | None = None) -> None:
        """Run a task at most once to success: claim it, call its handler, record the outcome."""
        payload = self.validate(envelope)
        log = {"task_id": envelope.id, "task_type": envelope.type, "message_id": message_id,
               "trace_header": envelope.trace_header}
        store = self.store()
        blocked = store.claim(envelope, _lease_s(context))
        if blocked == "succeeded":
            logger.info("Skipped a task that already succeeded", extra=log)
            return
        if blocked == "running":
            logger.warning("Task is running elsewhere; its message is retried later", extra=log)
            raise TaskBusy(f"task {envelope.id} is running elsewhere")
        try:
            result = to_jsonable_python(self.types[envelope.type].handler(payload, envelope))
        except Exception as error:
            logger.exception("Task failed", extra=log)
            self._failed(store, envelope.id, f"{type(error).__name__}: {error}")
            raise
        try:
            store.finish(envelope.id, "succeeded", result=result)
        except ResultRejected as rejected:  # the same result every time: recorded as the task's failure
            logger.error("Task failed: %s", rejected, extra=log)
            self._failed(store, envelope.id, f"ResultRejected: {rejected}")
            raise
        observability.count(TASKS_SUCCEEDED_METRIC)
        logger.info("Task succeeded", extra=log)

    @staticmethod
    def _failed(store: DynamoStore | MemoryStore, task_id: str, error: str) -> None:
        observability.count(TASKS_FAILED_METRIC)
        try:
            store.finish(task_id, "failed", error=error)
        except Exception:  # the message is retried anyway; its lease lets a redelivery claim it
            logger.warning("Could not record a task's failure", extra={"task_id": task_id}, exc_info=True)

    def _run_local(self, body: str, task_id: str) -> None:
        try:
            self.handle_message(body, f"local-{task_id}")
        except Exception:  # logged and recorded as failed already; a thread has nobody to raise to
            pass


def strict_json(text: str) -> Any:
    """JSON as RFC 8259 has it: ``NaN``, ``Infinity`` and numbers beyond a double are errors."""
    from fastapi_lambda.guard import STRICT_JSON

    return STRICT_JSON.decode(text)


def _well_formed(records: list[Any]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The records that name their message and carry a body, and the failures to report for the others.

    A record without a ``messageId`` cannot be named: it is reported with an empty identifier,
    which makes Lambda treat the whole batch as failed (nothing is lost; what succeeded is not
    run again: its task's status says so).
    """
    good: list[dict[str, Any]] = []
    failures: list[dict[str, str]] = []
    for record in records:
        message_id = record.get("messageId")
        if isinstance(message_id, str) and message_id and isinstance(record.get("body"), str):
            good.append(record)
            continue
        identifier = message_id if isinstance(message_id, str) else ""
        logger.error("Malformed SQS record: %s", "no messageId" if not identifier else "no body",
                     extra={"message_id": identifier, "keys": sorted(map(str, record))[:20]})
        failures.append({"itemIdentifier": identifier})
    return good, failures


class _BatchRun:
    """One batch's time: whether another message may start, and why not."""

    def __init__(self, budget: aws.Budget) -> None:
        self.budget = budget
        self.longest = MIN_MESSAGE_S
        self.stopped: str | None = None  # why no more messages start
        self.unstarted = 0

    def run(self, handle: Callable[..., None], *args: Any) -> None:
        if self.stopped is None and self.budget.remaining() < self.longest:
            self.stopped = f"{max(self.budget.remaining(), 0):.1f} s left, and a message took up to {self.longest:.1f} s"
        if self.stopped is not None:
            self.unstarted += 1
            raise NotStarted(self.stopped)
        started = aws.clock()
        try:
            handle(*args)
        except Exception as error:
            if aws.unreachable(error) or isinstance(error, aws.OutOfTime):  # the next message would wait the same
                self.stopped = f"a dependency did not answer in time ({aws.reason(error)})"
            raise
        finally:
            self.longest = max(self.longest, aws.clock() - started)


def _lease_s(context: Any) -> float:
    """A claim lasts as long as this invocation can: then a redelivery may take the task over."""
    try:
        return context.get_remaining_time_in_millis() / 1000
    except Exception:
        return DEFAULT_LEASE_S


def s3_envelopes(event: dict[str, Any]) -> list[TaskEnvelope]:
    """``process-file`` envelopes for the objects an S3 notification says were created under the prefix.

    The id is derived from the object's version (or the event's sequencer), so a redelivered
    or duplicated notification is the same task and runs once.
    """
    envelopes: list[TaskEnvelope] = []
    for record in event["Records"]:
        try:
            s3, name = record["s3"], record["eventName"]
            bucket, obj = s3["bucket"]["name"], s3["object"]
            key = unquote_plus(obj["key"])
        except (KeyError, TypeError):
            raise _rejected("s3_event_invalid", ("body", "Records"), "Not an S3 event notification") from None
        if record.get("eventSource") != "aws:s3" or not name.startswith("ObjectCreated:") \
                or not key.startswith(FILES_INCOMING_PREFIX):
            logger.info("Ignored an S3 notification", extra={"event_name": name, "bucket": bucket, "key": key})
            continue
        # moto leaves out the sequencer; the eTag with the event time is as stable across redeliveries.
        version = obj.get("versionId") or obj.get("sequencer") or f"{obj.get('eTag')}@{record.get('eventTime')}"
        task_id = uuid.uuid5(uuid.NAMESPACE_URL, f"s3://{bucket}/{key}#{version}").hex
        payload = FilePayload(bucket=bucket, key=key, version_id=obj.get("versionId"), size=obj.get("size"),
                              etag=obj.get("eTag"))
        envelopes.append(TaskEnvelope(id=task_id, type=FILE_TASK_TYPE, payload=payload.model_dump(),
                                      created_at=record.get("eventTime") or _now()))
    return envelopes
