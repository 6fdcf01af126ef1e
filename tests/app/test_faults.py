"""Dependency faults: DynamoDB, SQS, Parameter Store and Secrets Manager refused, hung and throttled.

Real calls to the moto server through :class:`tests.app.fault_proxy.FaultProxy`, each with its
defined outcome: a request answers 503 with ``Retry-After`` (nothing accepted) or the values read
before; a worker batch reports its messages failed (partial batch failure) and answers before its
invocation ends; once the fault is gone every task runs exactly once. Nothing accepted is lost.
Budgets are checked by counting calls, and with a fake clock, never by timing.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from fastapi_lambda import aws as runtime_aws
from fastapi_lambda import cache as runtime_cache
from fastapi_lambda import parameters as config
from fastapi_lambda.aws import MAX_ATTEMPTS, REQUEST_ATTEMPTS, RESERVE_S
from fastapi_lambda.constants import CACHE_HOST_VARIABLE, CACHE_PORT_VARIABLE, CACHE_SECRET_VARIABLE
from fastapi_lambda.tasks import MIN_MESSAGE_S, TaskEnvelope
from hypothesis import given, settings
from hypothesis import strategies as st
from service import parameters as service_config
from service.handler import handler
from service.tasks import registry

from tests.app.conftest import jwt_authorizer
from tests.app.fault_proxy import FaultProxy
from tests.app.redis_server import free_port
from tests.app.test_tasks import REPORT, api, deliver, drain, receive, sqs_event

FAULTS = ("refuse", "hang", "throttle")
SIGNED_IN = jwt_authorizer()


def invocation(seconds: float) -> SimpleNamespace:
    """A Lambda context whose invocation ends ``seconds`` from now."""
    deadline = time.monotonic() + seconds
    return SimpleNamespace(aws_request_id="fault-test", function_name="fastapi-lambda-dev-Worker",
                           get_remaining_time_in_millis=lambda: max(0, int((deadline - time.monotonic()) * 1000)))


@pytest.fixture
def proxy(moto_endpoint):
    proxy = FaultProxy(int(moto_endpoint.rsplit(":", 1)[1]))
    yield proxy
    proxy.close()


@pytest.fixture
def fault(proxy, monkeypatch):
    """``fault(service, mode)`` sends that service's calls through the proxy in ``mode``; ``fault(service)``
    sends them straight to moto again. Clients made before point elsewhere: all are made again."""

    def put(service: str, mode: str | None = None) -> FaultProxy:
        variable = "AWS_ENDPOINT_URL_" + {"secretsmanager": "SECRETS_MANAGER"}.get(service, service.upper())
        if mode is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            proxy.set(mode)
            proxy.requests = 0
            monkeypatch.setenv(variable, proxy.endpoint)
        monkeypatch.setattr(runtime_aws._clients, "value", None)
        config.ssm_provider.reset()
        config.secrets_provider.reset()
        return proxy

    yield put
    monkeypatch.setattr(runtime_aws._clients, "value", None)


@pytest.fixture
def calls(monkeypatch):
    """How often a task's handler ran."""
    ran: list[str] = []
    task = registry.types["generate-report"]
    monkeypatch.setitem(registry.types, "generate-report",
                        task._replace(handler=lambda payload, envelope: ran.append(envelope.id) or task.handler(
                            payload, envelope)))
    return ran


# --- requests: 503 with Retry-After, nothing accepted ------------------------------------------------

@pytest.mark.parametrize("mode", FAULTS)
@pytest.mark.parametrize("service", ["dynamodb", "sqs"])
def test_post_tasks_answers_503_when_the_table_or_the_queue_fails(service, mode, fault, aws, task_infra, caplog):
    proxy = fault(service, mode)

    status, headers, body = api("POST", "/tasks", REPORT, context=invocation(3))

    assert (status, headers["retry-after"]) == (503, "5") and "id" not in body
    assert proxy.requests <= REQUEST_ATTEMPTS  # counted: a request fails fast, whatever the fault
    fault(service)
    assert receive(aws.sqs, task_infra.queue_url) == []  # nothing was sent ...
    assert aws.dynamodb.scan(TableName=task_infra.table)["Items"] == []  # ... and nothing claims it was


# --- the worker: partial batch failure, an answer before the deadline, nothing lost ----------------

@pytest.mark.parametrize("mode", FAULTS)
def test_a_batch_with_the_table_down_fails_its_messages_and_loses_none(mode, fault, aws, task_infra, calls, caplog):
    ids = [api("POST", "/tasks", {"type": "generate-report", "payload": {"name": f"r{i}", "rows": 3}})[2]["id"]
           for i in range(4)]
    messages = receive(aws.sqs, task_infra.queue_url)
    proxy = fault("dynamodb", mode)
    context = invocation(4)
    caplog.set_level(logging.INFO)

    failed = deliver(aws, task_infra, messages, context)

    assert failed == {m["MessageId"] for m in messages} and calls == []  # all returned to the queue, none run
    if mode == "throttle":  # an answer, not an outage: each message tries, each call within its attempts
        assert proxy.requests <= MAX_ATTEMPTS * len(messages)
    else:  # unreachable: the first message finds out; the others are returned unstarted
        assert proxy.requests <= MAX_ATTEMPTS
        [stopped] = [r for r in caplog.records if r.getMessage() == "Returned messages to the queue unstarted"]
        assert stopped.unstarted == len(messages) - 1

    fault("dynamodb")
    assert drain(aws, task_infra, context=None) == [set()]  # the fault is gone: every task runs ...
    assert sorted(calls) == sorted(ids)  # ... exactly once
    assert {api("GET", f"/tasks/{task_id}")[2]["status"] for task_id in ids} == {"succeeded"}


def test_a_result_too_large_for_a_status_record_marks_the_task_failed_with_the_reason(aws, task_infra, monkeypatch):
    task = registry.types["generate-report"]
    monkeypatch.setitem(registry.types, "generate-report", task._replace(handler=lambda p, e: "x" * 500_000))
    task_id = api("POST", "/tasks", REPORT)[2]["id"]

    failed = deliver(aws, task_infra, receive(aws.sqs, task_infra.queue_url), context=invocation(10))

    record = api("GET", f"/tasks/{task_id}")[2]
    assert len(failed) == 1 and record["status"] == "failed"
    assert record["error"].startswith("ResultRejected: the result is 500002 bytes as JSON; a status record keeps")


@pytest.mark.parametrize("result", [float("nan"), {"inf": float("inf")}])
def test_a_result_that_is_not_json_marks_the_task_failed(result, aws, task_infra, monkeypatch):
    task = registry.types["generate-report"]
    monkeypatch.setitem(registry.types, "generate-report", task._replace(handler=lambda p, e: result))
    task_id = api("POST", "/tasks", REPORT)[2]["id"]

    deliver(aws, task_infra, receive(aws.sqs, task_infra.queue_url), context=invocation(10))

    record = api("GET", f"/tasks/{task_id}")[2]
    assert record["status"] == "failed" and "ResultRejected: the result is not JSON" in record["error"]


@pytest.mark.parametrize("record", [
    {"eventSource": "aws:sqs", "body": "{}"},  # no messageId
    {"eventSource": "aws:sqs", "messageId": "m-no-body"},
    {"eventSource": "aws:sqs", "messageId": 7, "body": "{}"},
])
def test_a_record_without_messageid_or_body_is_reported_never_raised(record, aws, task_infra, calls, caplog):
    task_id = api("POST", "/tasks", REPORT)[2]["id"]
    good = sqs_event(receive(aws.sqs, task_infra.queue_url), task_infra.queue_arn)["Records"]

    response = handler({"Records": [*good, record]}, invocation(10))

    # An unnamed record can only be reported with an empty identifier: Lambda then retries the whole batch.
    named = record.get("messageId") if isinstance(record.get("messageId"), str) else ""
    assert response == {"batchItemFailures": [{"itemIdentifier": named}]}
    assert calls == [task_id]  # the well-formed message ran
    assert "Malformed SQS record" in caplog.text


@pytest.mark.parametrize("body", ['{"id": "a1", "type": "generate-report", "payload": {"name": "x", "rows": NaN}, '
                                  '"created_at": "2026-01-01T00:00:00Z"}', '[1e400]'])
def test_a_message_that_is_not_strict_json_is_rejected(body, lambda_context, calls, caplog):
    response = handler({"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": body}]}, lambda_context)

    assert response == {"batchItemFailures": [{"itemIdentifier": "m1"}]} and calls == []
    assert "Rejected a task message" in caplog.text


# --- the budget with a fake clock: any time left, any fault, the batch answers in time ------------

class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FaultyClient:
    """Every operation fails as botocore does when the endpoint hangs (after the read timeout, on the
    fake clock), refuses, or throttles; ``attempts`` records (time started, tier) of each."""

    def __init__(self, clock: FakeClock, tier: runtime_aws.Tier, mode: str, attempts: list) -> None:
        self.clock, self.tier, self.mode, self.attempts = clock, tier, mode, attempts

    def __getattr__(self, operation: str):
        def attempt(**parameters):
            self.attempts.append((self.clock.now, self.tier))
            if self.mode == "hang":
                self.clock.now += self.tier.read
                raise ReadTimeoutError(endpoint_url="http://dynamodb")
            if self.mode == "refuse":
                raise EndpointConnectionError(endpoint_url="http://dynamodb")
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"},
                               "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "fault", "HostId": "",
                                                    "HTTPHeaders": {}, "RetryAttempts": 0}}, operation)

        return attempt


def batch_of(size: int) -> dict:
    envelopes = [TaskEnvelope(id=f"t{i}", type="generate-report", payload={"name": "x", "rows": 1},
                              created_at=datetime(2026, 1, 1, tzinfo=UTC)) for i in range(size)]
    return {"Records": [{"eventSource": "aws:sqs", "messageId": f"m{i}", "body": e.model_dump_json()}
                        for i, e in enumerate(envelopes)]}


@settings(max_examples=80)
@given(seconds=st.floats(0, 60), size=st.integers(1, 10), mode=st.sampled_from(FAULTS))
def test_with_the_table_down_a_batch_never_outlives_its_invocation(seconds, size, mode):
    clock, attempts = FakeClock(), []
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: max(0, int((deadline - clock.now) * 1000)))
    deadline = clock.now + seconds
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime_aws, "clock", clock)
        patch.setattr(runtime_aws, "sleep", clock.sleep)
        patch.setattr(runtime_aws, "_client_for", lambda service, tier: FaultyClient(clock, tier, mode, attempts))
        patch.setenv("TASK_TABLE_NAME", "tasks")

        response = handler(batch_of(size), context)

    assert len(response["batchItemFailures"]) == size  # every message returned to the queue: none lost
    assert clock.now <= deadline - RESERVE_S or not attempts  # answered in time (with the reserve kept)
    assert all(started + tier.seconds <= deadline - RESERVE_S for started, tier in attempts)
    if mode != "throttle":  # an outage: only the first message tries
        assert len(attempts) <= MAX_ATTEMPTS


@settings(max_examples=60)
@given(seconds=st.floats(0, 60), size=st.integers(1, 10), duration=st.floats(0, 5))
def test_a_batch_starts_a_message_only_while_the_time_left_covers_one_more(seconds, size, duration):
    """Slow tasks (in memory: no table): started only while the time left covers the longest so far."""
    clock, ran = FakeClock(), []
    deadline = clock.now + seconds
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: max(0, int((deadline - clock.now) * 1000)))
    task = registry.types["generate-report"]

    def slow(payload, envelope):
        ran.append(envelope.id)
        clock.sleep(duration)
        return "done"

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime_aws, "clock", clock)
        patch.setattr(runtime_aws, "sleep", clock.sleep)
        patch.setitem(registry.types, "generate-report", task._replace(handler=slow))
        patch.delenv("TASK_TABLE_NAME", raising=False)
        patch.setattr(registry, "memory", type(registry.memory)())

        response = handler(batch_of(size), context)

    unstarted = {f["itemIdentifier"] for f in response["batchItemFailures"]}
    assert len(ran) + len(unstarted) == size and not unstarted & {f"m{i}" for i in range(len(ran))}
    # In time, unless the very first task alone is longer than the invocation (nothing can stop a task).
    assert not ran or clock.now <= deadline - RESERVE_S or (len(ran) == 1 and duration > seconds - RESERVE_S)
    if seconds - RESERVE_S >= size * max(duration, MIN_MESSAGE_S) + 0.01:  # and no stop while time was plenty
        assert len(ran) == size


# --- settings and secrets: 503 when never read, the values read before when they were ---------------

READS = {  # service -> (route, the settings object, what the route answers from the values read before)
    "ssm": ("/config", service_config.settings, lambda body: body["page_size"] == 50),
    "secretsmanager": ("/partner/status", service_config.secrets, lambda body: body == {"partner": "configured"}),
}


@pytest.mark.parametrize("mode", FAULTS)
@pytest.mark.parametrize("service", READS)
def test_settings_answer_503_when_never_read_and_the_values_read_before_when_they_were(
        service, mode, fault, parameters, monkeypatch):
    route, settings_of, shows_the_values = READS[service]
    fault(service, mode)

    never_read = api("GET", route, context=invocation(5))
    fault(service)
    settings_of.clear()  # forget the failed read (it is not retried for RETRY_AFTER_S otherwise)
    first = api("GET", route)
    monkeypatch.setenv("CONFIG_MAX_AGE_SECONDS", "0")  # every read is due again
    fault(service, mode)
    cached = api("GET", route, context=invocation(5))

    assert (never_read[0], never_read[1]["retry-after"]) == (503, "5")
    assert first[0] == cached[0] == 200 and shows_the_values(first[2]) and cached[2] == first[2]


@pytest.mark.parametrize("mode", FAULTS)
def test_the_caches_secret_unreadable_the_item_comes_from_the_source(mode, fault, aws, monkeypatch, caplog):
    import boto3

    secret = boto3.client("secretsmanager").create_secret(Name=f"cache-{mode}-{time.monotonic_ns()}",
                                                         SecretString="token")["Name"]
    monkeypatch.setenv(CACHE_HOST_VARIABLE, "127.0.0.1")
    monkeypatch.setenv(CACHE_PORT_VARIABLE, str(free_port()))  # never reached: the secret comes first
    monkeypatch.setenv(CACHE_SECRET_VARIABLE, secret)
    monkeypatch.setenv("ITEMS_SOURCE_DELAY_MS", "0")
    monkeypatch.setattr(runtime_cache.backend, "value", None)
    fault("secretsmanager", mode)

    status, _, body = api("GET", "/items/k1", context=invocation(3))

    assert status == 200 and (body["served_from"], body["cache"]) == ("source", "error")
    assert [r.cache_error for r in caplog.records if getattr(r, "cache_error", None)] == ["secret"]
