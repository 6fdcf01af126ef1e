"""Background tasks end to end against moto in server mode: the API, the queue, the worker, the table.

The worker is invoked as Lambda's SQS event source mapping would: with an event built
from the messages received from the queue; the messages it reports failed are left for
the visibility timeout (here: made visible again at once), the others deleted.
"""

from __future__ import annotations

import collections
import json
import logging
import time

import pytest
from fastapi_lambda import aws as runtime_aws
from fastapi_lambda import tasks
from fastapi_lambda.constants import TASKS_WRITE_SCOPE
from fastapi_lambda.tasks import TaskEnvelope, TaskType
from pydantic import BaseModel
from service.handler import handler
from service.tasks import registry

from tests.app.conftest import (
    MAX_RECEIVE_COUNT,
    http_answer,
    http_event,
    jwt_authorizer,
    load_event,
    loaded_in_lazy_mode,
)

REPORT = {"type": "generate-report", "payload": {"name": "sales", "rows": 4}}
REPORT_RESULT = {"report": "sales", "rows": 4, "total": 10}


def api(method: str, path: str, body: dict | None = None, headers: dict | None = None, context=None):
    """Call the Lambda handler with an HTTP API (payload 2.0) event from a caller the gateway's JWT
    authorizer let through with the scope tasks need; status, headers and JSON body."""
    event = http_event(method, path, body=json.dumps(body) if body is not None else None, headers=headers,
                       authorizer=jwt_authorizer(TASKS_WRITE_SCOPE))
    return http_answer(handler(event, context))


def receive(sqs, queue_url: str) -> list[dict]:
    return sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                               MessageSystemAttributeNames=["All"]).get("Messages", [])


def sqs_event(messages: list[dict], queue_arn: str) -> dict:
    """The event Lambda's SQS event source mapping sends for these received messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": {k: m["Attributes"][k] for k in ("ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                                       "ApproximateFirstReceiveTimestamp")},
        "messageAttributes": {}, "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn, "awsRegion": "us-east-1"} for m in messages]}


def deliver(aws, infra, messages: list[dict], context) -> set[str]:
    """Invoke the worker with ``messages``, then delete or release them as the mapping does; the failed ids."""
    response = handler(sqs_event(messages, infra.queue_arn), context)
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    for message in messages:
        if message["MessageId"] in failed:  # the visibility timeout passes at once
            aws.sqs.change_message_visibility(QueueUrl=infra.queue_url, ReceiptHandle=message["ReceiptHandle"],
                                              VisibilityTimeout=0)
        else:
            aws.sqs.delete_message(QueueUrl=infra.queue_url, ReceiptHandle=message["ReceiptHandle"])
    return failed


def drain(aws, infra, context) -> list[set[str]]:
    """Receive and deliver until the queue is empty; the failed message ids of each round."""
    rounds = []
    while messages := receive(aws.sqs, infra.queue_url):
        rounds.append(deliver(aws, infra, messages, context))
    return rounds


@pytest.fixture
def calls(monkeypatch):
    """How often each task's handler ran, by task id."""
    counter: collections.Counter[str] = collections.Counter()
    for name, task in list(registry.types.items()):
        def counted(payload, envelope, _run=task.handler):
            counter[envelope.id] += 1
            return _run(payload, envelope)

        monkeypatch.setitem(registry.types, name, task._replace(handler=counted))
    return counter


class Boom(BaseModel):
    fail: bool


@pytest.fixture
def failing_task(monkeypatch, calls):
    """A task type whose handler raises when its payload asks it to."""
    def explode(payload: Boom, envelope: TaskEnvelope) -> str:
        calls[envelope.id] += 1
        if payload.fail:
            raise RuntimeError("the report service is down")
        return "fine"

    monkeypatch.setitem(registry.types, "explode", TaskType(Boom, explode))


# --- the API side --------------------------------------------------------------------------------

def test_post_sends_the_envelope_and_the_worker_runs_it(aws, task_infra, lambda_context, calls):
    trace = "Root=1-67891233-abcdef012345678912345678"

    status, headers, body = api("POST", "/tasks", REPORT, {"x-amzn-trace-id": trace})

    assert status == 202 and body == {"id": body["id"], "status": "queued"}
    assert headers["location"] == f"/tasks/{body['id']}"
    assert api("GET", f"/tasks/{body['id']}")[2]["status"] == "queued"
    [message] = receive(aws.sqs, task_infra.queue_url)
    sent = json.loads(message["Body"])
    assert set(sent) == {"id", "type", "payload", "created_at", "trace_header"}
    assert sent | {"created_at": None} == {**REPORT, "id": body["id"], "created_at": None, "trace_header": trace}
    assert TaskEnvelope.model_validate_json(message["Body"]).model_dump_json() == message["Body"]

    assert deliver(aws, task_infra, [message], lambda_context) == set()

    status, _, record = api("GET", f"/tasks/{body['id']}")
    assert status == 200 and record["status"] == "succeeded" and record["result"] == REPORT_RESULT
    assert record["attempts"] == 1 and record["type"] == "generate-report"
    assert calls == {body["id"]: 1}
    item = aws.dynamodb.get_item(TableName=task_infra.table, Key={"id": {"S": body["id"]}})["Item"]
    assert int(item["expires_at"]["N"]) - time.time() > 6 * 24 * 3600  # DynamoDB's TTL removes it after 7 days


@pytest.mark.parametrize(("task", "loc"), [
    ({"type": "no-such-task", "payload": {}}, ["body", "type"]),
    ({"type": "", "payload": {}}, ["body", "type"]),
    ({"type": "generate-report", "payload": {"name": "sales", "rows": 0}}, ["body", "payload", "rows"]),
    ({"type": "generate-report", "payload": {"name": "sales", "rows": "3"}}, ["body", "payload", "rows"]),
    ({"type": "generate-report", "payload": {"rows": 3}}, ["body", "payload", "name"]),
    ({"payload": {}}, ["body", "type"]),
])
def test_unknown_type_or_invalid_payload_is_a_422_naming_the_field(task, loc, aws, task_infra):
    status, _, body = api("POST", "/tasks", task)

    assert status == 422 and [e["loc"] for e in body["detail"]] == [loc]
    assert receive(aws.sqs, task_infra.queue_url) == []


def test_the_schema_names_every_task_type_and_its_payload():
    from service.main import create_app

    schema = create_app().openapi()
    body = schema["paths"]["/tasks"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    variants = {name: schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
                for name, ref in body["discriminator"]["mapping"].items()}

    assert set(variants) == set(registry.types) == {"generate-report", "process-file"}
    report = variants["generate-report"]
    assert report["properties"]["type"] == {"type": "string", "const": "generate-report"}
    assert report["required"] == ["type", "payload"]
    rows = schema["components"]["schemas"]["ReportPayload"]["properties"]["rows"]
    assert (rows["minimum"], rows["maximum"]) == (1, 10_000)  # what ReportPayload enforces
    assert "TaskRequest" not in schema["components"]["schemas"]


def test_a_too_large_task_is_a_422_not_a_failed_send(aws, task_infra):
    status, _, body = api("POST", "/tasks", {"type": "generate-report",
                                             "payload": {"name": "x", "rows": 1, "padding": "x" * 300_000}})

    assert status == 422 and body["detail"][0]["loc"] == ["body", "payload"]


@pytest.fixture
def stopped_endpoint():
    """The address of a moto server that has stopped: connections are refused."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    server.stop()
    return f"http://{host}:{port}"


@pytest.mark.parametrize("service", ["sqs", "dynamodb"])
def test_a_failed_send_is_a_503_and_nothing_claims_the_task(service, stopped_endpoint, aws, task_infra, monkeypatch,
                                                             caplog):
    monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service.upper()}", stopped_endpoint)
    monkeypatch.setattr(runtime_aws._clients, "value", None)  # clients made from now on go there

    status, headers, body = api("POST", "/tasks", REPORT)

    assert status == 503 and headers["retry-after"] == "5" and "id" not in body
    monkeypatch.delenv(f"AWS_ENDPOINT_URL_{service.upper()}")
    monkeypatch.setattr(runtime_aws._clients, "value", None)
    [task_id] = {r.task_id for r in caplog.records if hasattr(r, "task_id")}
    assert api("GET", f"/tasks/{task_id}")[0] == 404
    assert aws.dynamodb.scan(TableName=task_infra.table)["Items"] == []
    assert receive(aws.sqs, task_infra.queue_url) == []


@pytest.mark.parametrize("missing", ["TASK_QUEUE_URL", "TASK_TABLE_NAME"])
def test_on_lambda_a_missing_queue_or_table_is_a_503_not_a_thread(missing, aws, task_infra, monkeypatch, caplog):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fastapi-lambda-dev-Api")
    monkeypatch.delenv(missing)

    status, headers, _ = api("POST", "/tasks", REPORT)

    assert status == 503 and headers["retry-after"] == "5" and missing in caplog.text
    assert receive(aws.sqs, task_infra.queue_url) == []


def test_on_lambda_a_worker_without_the_table_returns_the_batch(monkeypatch, lambda_context):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "fastapi-lambda-dev-Worker")
    monkeypatch.delenv("TASK_TABLE_NAME", raising=False)
    body = TaskEnvelope.model_validate({**REPORT, "id": "t1", "created_at": "2026-11-28T01:00:00Z"}).model_dump_json()

    with pytest.raises(RuntimeError, match="TASK_TABLE_NAME is not set"):
        handler({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": body}]}, lambda_context)


def test_unknown_and_malformed_task_ids_are_404_and_422(aws, task_infra):
    assert api("GET", "/tasks/0123456789abcdef")[0] == 404
    assert api("GET", "/tasks/" + "a" * 129)[0] == 422


# --- the worker side -----------------------------------------------------------------------------

def test_a_poison_message_ends_in_the_dlq_and_the_nine_others_run_once(aws, task_infra, lambda_context, calls):
    ids = [api("POST", "/tasks", {"type": "generate-report", "payload": {"name": f"r{i}", "rows": i + 1}})[2]["id"]
           for i in range(9)]
    # The classic mistake: str(dict) is not JSON.
    poison = aws.sqs.send_message(QueueUrl=task_infra.queue_url, MessageBody=str(REPORT))["MessageId"]

    rounds = drain(aws, task_infra, lambda_context)

    assert rounds == [{poison}] * MAX_RECEIVE_COUNT  # the first round held all ten
    [dead] = receive(aws.sqs, task_infra.dlq_url)
    assert dead["MessageId"] == poison and dead["Body"] == str(REPORT)
    assert calls == {task_id: 1 for task_id in ids}
    assert {api("GET", f"/tasks/{task_id}")[2]["status"] for task_id in ids} == {"succeeded"}


def test_the_same_message_delivered_twice_runs_once(aws, task_infra, lambda_context, calls):
    task_id = api("POST", "/tasks", REPORT)[2]["id"]
    messages = receive(aws.sqs, task_infra.queue_url)

    first = handler(sqs_event(messages, task_infra.queue_arn), lambda_context)
    again = handler(sqs_event(messages * 2, task_infra.queue_arn), lambda_context)  # redelivered, twice at once

    assert first == again == {"batchItemFailures": []}
    assert calls == {task_id: 1}


def test_a_handler_exception_fails_only_its_message_and_is_retried(aws, task_infra, lambda_context, calls,
                                                                    failing_task):
    bad = api("POST", "/tasks", {"type": "explode", "payload": {"fail": True}})[2]["id"]
    good = api("POST", "/tasks", {"type": "explode", "payload": {"fail": False}})[2]["id"]

    rounds = drain(aws, task_infra, lambda_context)

    assert len(rounds) == MAX_RECEIVE_COUNT and all(len(failed) == 1 for failed in rounds)
    assert calls == {bad: MAX_RECEIVE_COUNT, good: 1}  # a failed task is claimed again on redelivery
    record = api("GET", f"/tasks/{bad}")[2]
    assert record["status"] == "failed" and record["attempts"] == MAX_RECEIVE_COUNT
    assert record["error"] == "RuntimeError: the report service is down"
    assert api("GET", f"/tasks/{good}")[2]["status"] == "succeeded"
    assert len(receive(aws.sqs, task_infra.dlq_url)) == 1


def test_a_task_running_elsewhere_is_retried_later_not_run_twice(aws, task_infra, lambda_context, calls):
    task_id = api("POST", "/tasks", REPORT)[2]["id"]
    messages = receive(aws.sqs, task_infra.queue_url)
    envelope = TaskEnvelope.model_validate_json(messages[0]["Body"])
    assert registry.store().claim(envelope, lease_s=60) is None  # another delivery holds it

    response = handler(sqs_event(messages, task_infra.queue_arn), lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert calls == {}
    # That delivery's invocation timed out: its lease ran out, and the next delivery takes the task over.
    aws.dynamodb.update_item(TableName=task_infra.table, Key={"id": {"S": task_id}}, UpdateExpression="SET lease_until = :t",
                             ExpressionAttributeValues={":t": {"N": str(time.time() - 1)}})
    assert handler(sqs_event(messages, task_infra.queue_arn), lambda_context) == {"batchItemFailures": []}
    assert calls == {task_id: 1}
    record = api("GET", f"/tasks/{task_id}")[2]
    assert (record["status"], record["attempts"]) == ("succeeded", 2)


BAD_BODIES = {
    "empty": "", "not JSON": "generate-report please", "str(dict)": str(REPORT), "a list": "[1, 2]",
    "a string": '"task"', "null": "null", "no type": json.dumps({"id": "a1", "payload": {}, "created_at": "2026-01-01T00:00:00Z"}),
    "no id": json.dumps({**REPORT, "created_at": "2026-01-01T00:00:00Z"}),
    "naive created_at": json.dumps({**REPORT, "id": "a2", "created_at": "2026-01-01T00:00:00"}),
    "unknown type": json.dumps({"id": "a3", "type": "nope", "payload": {}, "created_at": "2026-01-01T00:00:00Z"}),
    "invalid payload": json.dumps({**REPORT, "id": "a4", "payload": {"name": "x", "rows": "many"},
                                   "created_at": "2026-01-01T00:00:00Z"}),
    "records that are not S3's": json.dumps({"Records": [{"eventSource": "aws:sns"}]}),
}


def test_bad_bodies_are_reported_failed_and_logged_never_raised(aws, task_infra, lambda_context, calls, caplog):
    for body in BAD_BODIES.values():
        aws.sqs.send_message(QueueUrl=task_infra.queue_url, MessageBody=body or " ")
    messages = receive(aws.sqs, task_infra.queue_url)
    messages += receive(aws.sqs, task_infra.queue_url)
    for message in messages:
        message["Body"] = message["Body"].strip()

    response = handler(sqs_event(messages, task_infra.queue_arn), lambda_context)

    assert {f["itemIdentifier"] for f in response["batchItemFailures"]} == {m["MessageId"] for m in messages}
    assert len(messages) == len(BAD_BODIES) and calls == {}
    rejected = [r for r in caplog.records if r.getMessage() == "Rejected a task message"]
    assert {r.message_id for r in rejected} == {m["MessageId"] for m in messages}
    assert all(r.errors and "input" not in e for r in rejected for e in r.errors)


# --- the S3 file pipeline ------------------------------------------------------------------------

def test_an_s3_upload_becomes_one_process_file_task(aws, task_infra, lambda_context, calls):
    aws.s3.put_bucket_versioning(Bucket=task_infra.bucket, VersioningConfiguration={"Status": "Enabled"})
    aws.s3.put_bucket_notification_configuration(Bucket=task_infra.bucket, NotificationConfiguration={
        "QueueConfigurations": [{"QueueArn": task_infra.queue_arn, "Events": ["s3:ObjectCreated:*"],
                                 "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}}}]})
    aws.s3.put_object(Bucket=task_infra.bucket, Key="incoming/monthly report.txt", Body=b"one two\nthree\n")
    messages = receive(aws.sqs, task_infra.queue_url)
    assert any(json.loads(m["Body"]).get("Event") == "s3:TestEvent" for m in messages)  # S3 sends it once

    assert deliver(aws, task_infra, messages, lambda_context) == set()
    assert handler(sqs_event(messages, task_infra.queue_arn), lambda_context) == {"batchItemFailures": []}

    [task_id] = calls
    assert calls[task_id] == 1
    result = json.loads(aws.s3.get_object(Bucket=task_infra.bucket, Key="results/monthly report.txt.json")["Body"].read())
    assert result | {"version_id": None} == {"bucket": task_infra.bucket, "key": "incoming/monthly report.txt",
                                              "version_id": None, "bytes": 14, "lines": 2, "words": 3}
    record = api("GET", f"/tasks/{task_id}")[2]
    assert record["status"] == "succeeded" and record["result"]["result_key"] == "results/monthly report.txt.json"


def s3_body(key: str, *, event: str = "ObjectCreated:Put", sequencer: str = "0062E99A88DC407460", **obj) -> str:
    """A notification as S3 sends it (one record; keys URL-encoded)."""
    return json.dumps({"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventTime": "2026-11-28T01:00:00.000Z",
        "eventName": event, "s3": {"s3SchemaVersion": "1.0", "configurationId": "files",
                                   "bucket": {"name": "files", "arn": "arn:aws:s3:::files"},
                                   "object": {"key": key, "size": 5, "eTag": "abc", "sequencer": sequencer, **obj}}}]})


def test_s3_task_ids_are_deterministic_per_object_version():
    def task_id(body: str) -> str:
        [envelope] = registry._parse(body)
        return envelope.id

    same = task_id(s3_body("incoming/a+b.csv", versionId="v1"))

    assert same == task_id(s3_body("incoming/a+b.csv", versionId="v1", sequencer="other"))
    assert same != task_id(s3_body("incoming/a+b.csv", versionId="v2"))
    assert task_id(s3_body("incoming/x")) != task_id(s3_body("incoming/x", sequencer="0062E99A88DC407461"))
    [envelope] = registry._parse(s3_body("incoming/a+b%2B.csv", versionId="v1"))
    assert envelope.payload["key"] == "incoming/a b+.csv" and envelope.payload["version_id"] == "v1"


@pytest.mark.parametrize("body", [s3_body("results/a.json"), s3_body("incoming/a", event="ObjectRemoved:Delete"),
                                  json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "files"})])
def test_s3_events_that_are_not_new_incoming_files_are_acknowledged(body):
    assert registry._parse(body) == []


# --- local mode and wiring -----------------------------------------------------------------------

def wait_for(task_id: str, *statuses: str) -> dict:
    deadline = time.monotonic() + 5
    while (record := api("GET", f"/tasks/{task_id}")[2])["status"] not in statuses and time.monotonic() < deadline:
        time.sleep(0.01)
    return record


def test_without_a_queue_tasks_run_in_process(monkeypatch, calls, failing_task):
    monkeypatch.delenv("TASK_QUEUE_URL", raising=False)
    monkeypatch.delenv("TASK_TABLE_NAME", raising=False)

    status, _, body = api("POST", "/tasks", REPORT)
    failed = api("POST", "/tasks", {"type": "explode", "payload": {"fail": True}})[2]["id"]

    assert status == 202
    assert wait_for(body["id"], "succeeded")["result"] == REPORT_RESULT
    assert wait_for(failed, "failed")["error"] == "RuntimeError: the report service is down"
    assert calls == {body["id"]: 1, failed: 1}


def batches_run_by(sqs_handler, monkeypatch) -> list:
    """The batches ``sqs_handler`` hands to the example's registry when given one."""
    batches: list = []
    monkeypatch.setattr(registry, "process_batch", lambda event, context: batches.append(event) or {})
    sqs_handler({"Records": []}, None)
    return batches


def test_the_handler_module_serves_the_api_and_the_worker(monkeypatch):
    # The handler names the registry; the first batch imports it (service.tasks, imported above).
    assert batches_run_by(handler.handlers["sqs"], monkeypatch) == [{"Records": []}]
    assert set(registry.types) == {"generate-report", "process-file"}


@pytest.fixture
def import_entry(monkeypatch):
    """Import the generic entry afresh with these variables (it builds its handler at import)."""
    import importlib
    import sys

    def load(**variables: str):
        for name in ("FASTAPI_LAMBDA_APP", "FASTAPI_LAMBDA_TASKS"):
            monkeypatch.delenv(name, raising=False)
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delitem(sys.modules, "fastapi_lambda.entry", raising=False)
        return importlib.import_module("fastapi_lambda.entry")

    return load


def test_the_generic_entry_can_be_a_worker_only(import_entry, lambda_context, caplog):
    worker = import_entry(FASTAPI_LAMBDA_TASKS="service.tasks:registry").handler

    assert worker.handlers["sqs"] == registry.process_batch
    assert worker(load_event("http_api_v2"), lambda_context)["statusCode"] == 400
    assert "without a web app" in caplog.text


def test_the_generic_entry_serves_an_app_and_its_tasks(import_entry, lambda_context, monkeypatch):
    both = import_entry(FASTAPI_LAMBDA_APP="service.main:create_app", FASTAPI_LAMBDA_TASKS="service.tasks:registry")

    assert both.handler(load_event("http_api_v2"), lambda_context)["statusCode"] == 200
    assert batches_run_by(both.handler.handlers["sqs"], monkeypatch) == [{"Records": []}]


def test_the_generic_entry_needs_an_app_or_a_registry(import_entry):
    with pytest.raises(RuntimeError, match="Set FASTAPI_LAMBDA_APP .* or FASTAPI_LAMBDA_TASKS"):
        import_entry()
    with pytest.raises(ValueError, match="FASTAPI_LAMBDA_TASKS='service.tasks' must look like"):
        import_entry(FASTAPI_LAMBDA_TASKS="service.tasks")


def test_lazy_mode_imports_no_sdk_until_used():
    # Powertools' Logger and Metrics are in every function (fastapi_lambda.observability); the
    # AWS SDK, the X-Ray SDK and Powertools' utilities (batch, parameters) wait for their first use.
    code = ("import service.handler as h, sys; from tests.app.conftest import load_event; "
            "h.handler(load_event('http_api_v2'), None); "
            "assert not [m for m in sys.modules if m.startswith(('aws_lambda_powertools.utilities.batch', 'aws_lambda_powertools.utilities.parameters', 'botocore.'))]")

    assert loaded_in_lazy_mode(code, {"boto3", "aws_xray_sdk", "pydantic_settings"}) == []


def test_eager_mode_makes_the_task_clients_at_init(monkeypatch):
    from fastapi_lambda import lifecycle
    from service import tasks as service_tasks

    for resource in lifecycle._registry:
        monkeypatch.setattr(resource, "value", None)
    monkeypatch.setenv("IMPORT_MODE", "eager")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    lifecycle.prepare(None)

    made = [client.value for client in (tasks.sqs_client, tasks.dynamodb_client, service_tasks.s3_client)]
    assert [c is not None and c.meta.service_model.service_name for c in made] == ["sqs", "dynamodb", "s3"]


def test_a_task_that_succeeds_logs_one_info_line(aws, task_infra, lambda_context, caplog):
    caplog.set_level(logging.INFO)
    api("POST", "/tasks", REPORT)

    drain(aws, task_infra, lambda_context)

    assert [r.levelname for r in caplog.records if r.name == tasks.logger.name] == ["INFO"]
