"""Hostile input: whatever a client sends, the answer is a 4xx with a JSON body, never a 500.

Property tests (Hypothesis) on every write route of this repository's app and of the consumer
example (``examples/consumer/src/orders``, an app that knows nothing about Lambda), through the
Lambda handler with HTTP API 2.0 and REST events, and through the ASGI middleware.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from fastapi_lambda import auth, guard, lambda_handler
from fastapi_lambda.constants import TASKS_WRITE_SCOPE
from fastapi_lambda.guard import InputGuard, Limits, check_body, render_errors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from service.handler import handler as service_handler
from service.main import create_app

from tests.app.conftest import app_routes, http_answer, http_event, jwt_authorizer
from tests.app.hostile import hostile_bodies, json_values

CONSUMER_SRC = Path(__file__).parents[2] / "examples" / "consumer" / "src"
sys.path.append(str(CONSUMER_SRC))
from orders import handler as orders_handler  # noqa: E402  (the consumer's own package, on its own path)

#: A body each write route accepts; a write route without one fails the test that lists them.
VALID_BODIES = {
    "service": {"POST /tasks": {"type": "generate-report", "payload": {"name": "sales", "rows": 4}},
                "POST /uploads": {"filename": "sales.csv", "content_type": "text/csv", "size": 2048}},
    "consumer": {"POST /orders": {"item": "book", "quantity": 2}},
}
HANDLERS = {"service": service_handler, "consumer": orders_handler.handler}
EVENT_KINDS = ("http_api_v2", "rest_api_v1")
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
HYPOTHESIS = settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
WRITE_ROUTES = [(app, route) for app, routes in VALID_BODIES.items() for route in routes]


def strict_json(data: bytes | str) -> object:
    """The body parsed as strict JSON: no NaN or Infinity, text that UTF-8 can hold."""
    if isinstance(data, str):
        data = data.encode()
    return json.loads(data.decode("utf-8"), parse_constant=lambda name: pytest.fail(f"{name} in a response"))


def asgi_client(name: str) -> TestClient:
    """The app as an ASGI server other than Lambda serves it: behind ``InputGuard``, caller stubbed."""
    app = create_app(environment="test") if name == "service" else orders_handler.app
    app.dependency_overrides[auth.current_user] = lambda: auth.User(
        "tester", None, frozenset({TASKS_WRITE_SCOPE}), None, "access", {}, "test")
    return TestClient(InputGuard(app), raise_server_exceptions=False)


def send(name: str, route: str, body: str | bytes, kind: str, content_type: str = "application/json"):
    method, path = route.split(" ", 1)
    event = http_event(method, path, kind=kind, body=body, headers={"content-type": content_type},
                       authorizer=jwt_authorizer(TASKS_WRITE_SCOPE))
    return http_answer(HANDLERS[name](event, None))


@pytest.fixture(autouse=True)
def no_task_queue(monkeypatch):
    """Accepted tasks run in-process (no AWS needed); the example items answer at once."""
    monkeypatch.delenv("TASK_QUEUE_URL", raising=False)
    monkeypatch.delenv("TASK_TABLE_NAME", raising=False)
    # POST /uploads signs its URL locally (no AWS call): a bucket name and credentials of any value do.
    for name, value in {"UPLOAD_BUCKET": "uploads-test", "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)


def test_every_write_route_has_a_valid_body_here():
    apps = {"service": create_app(environment="test"), "consumer": orders_handler.app}

    for name, app in apps.items():
        writes = {f"{method} {path}" for method, path in app_routes(app) if method in WRITE_METHODS}
        assert writes == set(VALID_BODIES[name])


@pytest.mark.parametrize(("name", "route"), WRITE_ROUTES)
@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_the_valid_bodies_are_accepted(name, route, kind):
    status, _, _ = send(name, route, json.dumps(VALID_BODIES[name][route]), kind)

    assert status in (201, 202)


@pytest.mark.parametrize(("name", "route"), WRITE_ROUTES)
@HYPOTHESIS
@given(data=st.data())
def test_a_hazard_anywhere_in_a_body_is_a_400_on_lambda_and_asgi(name, route, data):
    body = data.draw(hostile_bodies(VALID_BODIES[name][route]), label="body")
    kind = data.draw(st.sampled_from(EVENT_KINDS), label="kind")
    as_base64 = data.draw(st.booleans(), label="base64")  # the gateway encodes a body it takes for binary

    status, headers, answer = send(name, route, body.encode() if as_base64 else body, kind)
    method, path = route.split(" ", 1)
    asgi = asgi_client(name).request(method, path, content=body.encode("utf-8", "surrogatepass"),
                                     headers={"content-type": "application/json"})

    assert status == asgi.status_code == 400
    assert headers["content-type"] == asgi.headers["content-type"] == "application/json"
    assert answer == strict_json(asgi.content) and isinstance(answer["detail"], str)


@pytest.mark.parametrize(("name", "route"), WRITE_ROUTES)
@HYPOTHESIS
@given(data=st.data())
def test_any_json_or_bytes_is_answered_below_500_with_json(name, route, data):
    body = data.draw(st.one_of(json_values.map(json.dumps), st.binary(max_size=64)), label="body")
    content_type = data.draw(st.sampled_from(["application/json", "application/merge-patch+json", "text/plain",
                                              "application/octet-stream", ""]), label="content type")

    status, headers, _ = send(name, route, body, data.draw(st.sampled_from(EVENT_KINDS)), content_type)

    assert status < 500
    assert headers["content-type"] == "application/json"


@HYPOTHESIS
@given(value=json_values)
def test_strict_json_within_the_limits_passes_untouched(value):
    assert check_body(json.dumps(value).encode(), "application/json", Limits()) is None
    assert check_body(json.dumps(value, ensure_ascii=False).encode("utf-16"), None, Limits()) is None


@pytest.mark.parametrize("kind", EVENT_KINDS)
@pytest.mark.parametrize("content_type", ["application/json", "application/octet-stream"])
def test_a_body_over_the_limit_is_a_413_whatever_its_type(kind, content_type, monkeypatch):
    monkeypatch.setattr(service_handler, "limits", Limits(max_body_bytes=1000))
    body = json.dumps({"type": "generate-report", "payload": {"name": "x" * 1000, "rows": 1}})

    as_text = send("service", "POST /tasks", body, kind, content_type)
    as_base64 = send("service", "POST /tasks", body.encode(), kind, content_type)

    assert as_text[0] == as_base64[0] == 413
    assert as_text[2] == {"detail": "The request body is larger than 1000 bytes"}


def test_the_asgi_guard_stops_reading_past_the_limit():
    client = TestClient(InputGuard(orders_handler.app, Limits(max_body_bytes=100)))

    assert client.post("/orders", content=b"x" * 101).status_code == 413
    assert client.post("/orders", json={"item": "pen", "quantity": 1}).status_code == 201


@pytest.mark.parametrize("body", [
    '{"item": "\\udc00", "quantity": 1}',  # a lone low surrogate
    '{"item": "\\ud83d\\ude00", "quantity": 1}',  # a pair: an emoji
])
def test_only_lone_surrogates_are_refused(body):
    status = send("consumer", "POST /orders", body, "http_api_v2")[0]

    assert status == (400 if "udc00" in body else 201)


def test_the_opt_out_lets_the_hazard_through_to_fastapi(monkeypatch):
    """What the guard prevents: FastAPI's own 422 answer fails on a NaN it would echo back."""
    monkeypatch.setenv("INPUT_GUARD", "off")
    unguarded = lambda_handler(FastAPI(routes=orders_handler.app.routes))
    body = '{"item": "book", "quantity": NaN}'

    assert unguarded.limits is None
    assert unguarded(http_event("POST", "/orders", body=body), None)["statusCode"] == 500
    assert send("consumer", "POST /orders", body, "http_api_v2")[0] == 400


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("bad_input", [float("nan"), float("inf"), "\ud800", b"\xff\xfe", deep_list(5000),
                                       {"k\udfff": 1}])
def test_validation_errors_never_echo_what_cannot_be_serialized(bad_input):
    errors = [{"type": "int_parsing", "loc": ("body", "quantity"), "msg": "Input should be a valid integer",
               "input": bad_input},
              {"type": "missing", "loc": ("body", "item"), "msg": "Field required", "input": {"quantity": 1}}]

    answer = strict_json(render_errors(errors))
    assert isinstance(answer, dict)
    detail = answer["detail"]

    assert detail[0] == {"type": "int_parsing", "loc": ["body", "quantity"], "msg": "Input should be a valid integer"}
    assert detail[1] == {**errors[1], "loc": ["body", "item"]}  # serializable: as FastAPI renders it


def test_text_that_is_not_utf8_to_a_json_route_is_a_422_not_a_500():
    status, _, answer = send("consumer", "POST /orders", b"\xff\xfe not utf-8", "http_api_v2", "text/plain")

    assert status == 422 and answer["detail"][0]["type"] == "model_attributes_type"
    assert "input" not in answer["detail"][0]  # undecodable bytes: not echoed


def test_an_apps_own_422_handler_is_kept():
    async def own(request, error):
        return JSONResponse({"mine": True}, status_code=422)

    app = FastAPI(exception_handlers={RequestValidationError: own})
    guard.protect(app)
    default = FastAPI()
    guard.protect(default)

    assert app.exception_handlers[RequestValidationError] is own
    assert default.exception_handlers[RequestValidationError] is guard.validation_error_response


@pytest.mark.parametrize("setting", ["off", "OFF", "false"])
def test_input_guard_off_is_the_opt_out(setting):
    assert Limits.from_environ({"INPUT_GUARD": setting}) is None
    assert Limits.from_environ({"INPUT_MAX_BODY_BYTES": "2048", "INPUT_MAX_JSON_DEPTH": "nonsense"}) == Limits(2048, 64)
