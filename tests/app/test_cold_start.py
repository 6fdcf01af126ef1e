"""Warmup answers, fan-out, import modes and SnapStart hooks of the running function."""

from __future__ import annotations

import io
import json
import random
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from fastapi_lambda import cold_start, lifecycle
from fastapi_lambda.constants import MAX_WARMUP_CONCURRENCY, WARMUP_MARKER
from service.handler import handler
from service.main import create_app

ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:fastapi-lambda-dev-Api:live"


class FakeLambdaClient:
    """Stands in for boto3's Lambda client (AWS itself is the boundary here).

    Each invoke waits at a barrier for the others, so the test fails unless the
    fan-out really runs its invocations concurrently, and answers as a fresh instance.
    """

    def __init__(self, expected_calls: int, *, same_instance: bool = False, fail_every: int = 0):
        self.calls: list[dict] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(max(expected_calls, 1), timeout=5)
        self._same_instance = same_instance
        self._fail_every = fail_every

    def invoke(self, **kwargs):
        with self._lock:
            self.calls.append(kwargs)
            number = len(self.calls)
        self._barrier.wait()
        if self._fail_every and number % self._fail_every == 0:
            raise ConnectionError("simulated throttling")
        instance = "one-other-instance" if self._same_instance else f"instance-{number}"
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps({"instance": instance}).encode())}


class ForbiddenClient:
    def invoke(self, **kwargs):
        raise AssertionError("a fanned-out ping must never invoke again")


@pytest.fixture
def alias_context(lambda_context):
    lambda_context.invoked_function_arn = ALIAS_ARN
    return lambda_context


def test_warmup_marker_is_answered_before_mangum(alias_context, mangum_must_not_run):
    answer = handler({WARMUP_MARKER: {"concurrency": 1}}, alias_context)

    assert answer == {"handled": "warmup", "warmed": True, "instance": lifecycle.instance_id, "instances": 1}


@pytest.mark.parametrize("concurrency", [2, 5, 10])
def test_fan_out_makes_n_minus_1_concurrent_invocations_of_its_own_alias(concurrency, alias_context):
    client = FakeLambdaClient(concurrency - 1)

    answer = cold_start.answer_warmup({"concurrency": concurrency, "hold_ms": 50}, alias_context, client)

    assert len(client.calls) == concurrency - 1
    for call in client.calls:
        assert call["FunctionName"] == ALIAS_ARN
        assert call["InvocationType"] == "RequestResponse"
        assert json.loads(call["Payload"]) == {WARMUP_MARKER: {"fanned_out": True, "hold_ms": 50}}
    assert answer["instances"] == concurrency and answer["failed"] == 0 and answer["requested"] == concurrency


def test_fanned_out_ping_holds_and_never_fans_out_again(alias_context, mangum_must_not_run, monkeypatch):
    slept = []
    monkeypatch.setattr(cold_start.time, "sleep", slept.append)
    monkeypatch.setattr(cold_start.lambda_client, "value", ForbiddenClient())
    payload = {WARMUP_MARKER: {"fanned_out": True, "concurrency": 10, "hold_ms": 80}}

    answer = handler(payload, alias_context)

    assert answer == {"handled": "warmup", "warmed": True, "instance": lifecycle.instance_id}
    assert slept == [0.08]


def test_answers_count_distinct_instances(alias_context):
    answer = cold_start.answer_warmup({"concurrency": 4}, alias_context, FakeLambdaClient(3, same_instance=True))

    assert answer["instances"] == 2  # this one and the single other that answered all three


def test_failed_invocations_are_counted_not_raised(alias_context):
    answer = cold_start.answer_warmup({"concurrency": 5}, alias_context, FakeLambdaClient(4, fail_every=2))

    assert answer["failed"] == 2 and answer["instances"] == 3


def test_no_fan_out_without_an_alias(lambda_context):
    lambda_context.invoked_function_arn = ALIAS_ARN.rsplit(":", 1)[0]  # unqualified: $LATEST

    answer = cold_start.answer_warmup({"concurrency": 3}, lambda_context, ForbiddenClient())

    assert answer["instances"] == 1


@pytest.mark.parametrize(("requested", "expected_calls"), [("3", 2), (None, 0), ("many", 0), (-4, 0), (500, MAX_WARMUP_CONCURRENCY - 1)])
def test_concurrency_is_parsed_and_bounded(requested, expected_calls, alias_context):
    client = FakeLambdaClient(expected_calls)

    cold_start.answer_warmup({"concurrency": requested, "hold_ms": 0}, alias_context, client)

    assert len(client.calls) == expected_calls


def test_warmup_marker_with_a_malformed_body_is_still_safe(alias_context, mangum_must_not_run):
    assert handler({WARMUP_MARKER: "please"}, alias_context)["instances"] == 1


@pytest.fixture
def fresh_state(monkeypatch):
    # Every per-instance client (the tasks' too): what eager mode makes here must not outlive the test.
    for resource in lifecycle._registry:
        monkeypatch.setattr(resource, "value", None)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_lazy_mode_defers_the_sdk_and_the_middleware_stack(fresh_state, monkeypatch):
    monkeypatch.setenv("IMPORT_MODE", "lazy")
    app = create_app()

    lifecycle.prepare(app)

    assert cold_start.lambda_client.value is None and app.middleware_stack is None


def test_eager_mode_builds_everything_at_init(fresh_state, monkeypatch):
    monkeypatch.setenv("IMPORT_MODE", "eager")
    app = create_app()

    lifecycle.prepare(app)

    assert cold_start.lambda_client.value is not None
    assert cold_start.lambda_client.value.meta.service_model.service_name == "lambda"
    assert app.middleware_stack is not None and app.openapi_schema is not None


def test_snapstart_restore_hook_is_registered_and_renews_state(fresh_state, monkeypatch):
    import snapshot_restore_py

    monkeypatch.setattr(snapshot_restore_py, "_after_restore_registry", [])
    monkeypatch.setenv("IMPORT_MODE", "lazy")
    monkeypatch.setattr(lifecycle, "_hooks_registered", False)
    assert lifecycle.register_snapstart_hooks()
    stale_client, old_instance = object(), lifecycle.instance_id
    monkeypatch.setattr(cold_start.lambda_client, "value", stale_client)
    random.seed(1234)
    seeded_state = random.getstate()

    # The library annotates its registry as callables; it holds (function, args, kwargs) triples.
    registry = cast("list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]",
                    snapshot_restore_py._after_restore_registry)
    for hook, args, kwargs in registry:  # as the runtime does
        hook(*args, **kwargs)

    assert cold_start.lambda_client.value is None
    assert lifecycle.instance_id != old_instance
    assert random.getstate() != seeded_state


def test_restore_in_eager_mode_creates_a_new_client(fresh_state, monkeypatch):
    monkeypatch.setenv("IMPORT_MODE", "eager")
    stale_client = object()
    monkeypatch.setattr(cold_start.lambda_client, "value", stale_client)

    lifecycle.after_restore()

    assert cold_start.lambda_client.value is not None and cold_start.lambda_client.value is not stale_client


# --- bad input and failure edges: every ping answers, none raises -------------------------------

@pytest.mark.parametrize("body", [
    '{"concurrency": 1e400}', '{"concurrency": -1e400}', '{"concurrency": 1e400, "hold_ms": 1e400}',
    '{"concurrency": 2, "hold_ms": -1e400}', '{"concurrency": [2]}', '{"concurrency": true, "fanned_out": "yes"}',
])
def test_absurd_numbers_are_clamped_not_raised(body, alias_context, monkeypatch):
    monkeypatch.setattr(cold_start.time, "sleep", lambda seconds: None)
    request = json.loads(body)  # json turns 1e400 into inf, which int() refuses with OverflowError
    client = FakeLambdaClient(cold_start._bounded(request["concurrency"], 1, 1, MAX_WARMUP_CONCURRENCY) - 1)

    answer = cold_start.answer_warmup(request, alias_context, client)

    assert answer["warmed"] is True and answer["instances"] >= 1


def test_infinite_concurrency_warms_the_cap(alias_context):
    client = FakeLambdaClient(MAX_WARMUP_CONCURRENCY - 1)

    answer = cold_start.answer_warmup(json.loads('{"concurrency": 1e400, "hold_ms": 0}'), alias_context, client)

    assert len(client.calls) == MAX_WARMUP_CONCURRENCY - 1 and answer["requested"] == MAX_WARMUP_CONCURRENCY


def test_failing_client_creation_is_answered(alias_context, mangum_must_not_run, monkeypatch):
    def no_client():
        raise RuntimeError("no region configured")

    monkeypatch.setattr(cold_start.lambda_client, "value", None)
    monkeypatch.setattr(cold_start.lambda_client, "factory", no_client)

    answer = handler({WARMUP_MARKER: {"concurrency": 3}}, alias_context)

    assert answer["handled"] == "warmup" and answer["instances"] == 1 and answer["failed"] == 2


@pytest.mark.parametrize("qualifier", ["$LATEST", "7"])
def test_no_fan_out_through_latest_or_a_version(qualifier, lambda_context):
    lambda_context.invoked_function_arn = ALIAS_ARN.rsplit(":", 1)[0] + ":" + qualifier

    answer = cold_start.answer_warmup({"concurrency": 3}, lambda_context, ForbiddenClient())

    assert answer["instances"] == 1


class StuckClient:
    """Invocations that hang until released, like a throttled or unreachable endpoint."""

    def __init__(self):
        self.release = threading.Event()

    def invoke(self, **kwargs):
        self.release.wait(timeout=30)
        raise TimeoutError("released")


def test_fan_out_answers_before_the_function_times_out(alias_context):
    alias_context.get_remaining_time_in_millis = lambda: 1200  # 0.7 s of budget after the margin
    client = StuckClient()
    try:
        answer = cold_start.answer_warmup({"concurrency": 4, "hold_ms": 0}, alias_context, client)

        assert not client.release.is_set(), "answered without waiting for the stuck invocations"
        assert answer["failed"] == 3 and answer["instances"] == 1
    finally:
        client.release.set()


def test_hold_never_outlasts_the_remaining_time(alias_context, monkeypatch):
    slept = []
    monkeypatch.setattr(cold_start.time, "sleep", slept.append)
    alias_context.get_remaining_time_in_millis = lambda: 800

    cold_start.answer_warmup({"fanned_out": True, "hold_ms": 1000}, alias_context)

    assert slept == [0.3]
