"""The Lambda entry point: HTTP events through Mangum, everything else answered before it."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi_lambda import adapter as adapter_module
from fastapi_lambda import dispatch
from fastapi_lambda.constants import WARMUP_MARKER
from service.handler import handler

from tests.app.conftest import HTTP_EVENTS


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_http_events_are_served_by_the_app(name, event, lambda_context):
    response = handler(event(name), lambda_context)

    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


@pytest.mark.parametrize(
    ("name", "kind"),
    [("rest_api_v1", "http-v1"), ("http_api_v2", "http-v2"), ("function_url", "http-v2"), ("alb", "alb")],
)
def test_http_events_are_classified_by_payload_format(name, kind, event):
    assert dispatch.classify_event(event(name)) == kind


def test_http_api_payload_v1_goes_to_the_app(event, lambda_context):
    v1 = event("rest_api_v1")
    v1["version"] = "1.0"
    del v1["resource"]

    assert handler(v1, lambda_context)["statusCode"] == 200


def test_unknown_route_is_a_404_not_an_error(event, lambda_context):
    request = event("http_api_v2")
    request["rawPath"] = request["requestContext"]["http"]["path"] = "/no-such-page"

    assert handler(request, lambda_context)["statusCode"] == 404


def test_wrong_method_is_a_405(event, lambda_context):
    request = event("rest_api_v1")
    request["httpMethod"] = "DELETE"

    assert handler(request, lambda_context)["statusCode"] == 405


NON_HTTP_EVENTS = {
    "warmup marker": {WARMUP_MARKER: {"concurrency": 1}},
    "empty object": {},
    "list": [1, 2, 3],
    "string": "ping",
    "null": None,
    "records of mixed sources": {"Records": [{"eventSource": "aws:sqs"}, {"eventSource": "aws:s3"}]},
    "v2 without http block": {"version": "2.0", "rawPath": "/", "requestContext": {}},
    "v2 with non-text path": {"version": "2.0", "rawPath": 7, "requestContext": {"http": {"method": "GET"}}},
    "v1 without method": {"resource": "/", "path": "/", "requestContext": {}},
    "alb without path": {"requestContext": {"elb": {}}, "httpMethod": "GET"},
}


@pytest.mark.parametrize("payload", NON_HTTP_EVENTS.values(), ids=NON_HTTP_EVENTS.keys())
def test_non_http_events_never_reach_mangum(payload, lambda_context, mangum_must_not_run, caplog):
    caplog.set_level(logging.DEBUG, logger=dispatch.logger.name)

    response = handler(payload, lambda_context)

    assert response["handled"] in {"warmup", "unknown"}
    assert any(getattr(r, "event_kind", None) == response["handled"] for r in caplog.records)


def test_eventbridge_scheduled_event_is_answered_safely(event, lambda_context, mangum_must_not_run, caplog):
    caplog.set_level(logging.INFO, logger=dispatch.logger.name)

    assert handler(event("eventbridge_schedule"), lambda_context) == {"handled": "schedule"}
    assert "non-HTTP event" in caplog.text


def test_mangum_runs_without_lifespan():
    # Lifespan "auto" would run startup and shutdown on every invocation.
    assert isinstance(handler.asgi, adapter_module.Adapter) and handler.asgi.lifespan == "off"


def test_successful_requests_add_no_log_line(event, lambda_context, caplog):
    # The gateway's access log records each request; Mangum's own INFO line would double it.
    caplog.set_level(logging.INFO)

    assert handler(event("http_api_v2"), lambda_context)["statusCode"] == 200
    assert [r for r in caplog.records if r.name.startswith("mangum")] == []


MALFORMED = {
    "invalid base64 body": ("http_api_v2", lambda e: e.update(isBase64Encoded=True, body="%%%not base64")),
    "non-text header": ("http_api_v2", lambda e: e.update(headers={"host": 5})),
    "multi-value headers not a mapping": ("rest_api_v1", lambda e: e.update(multiValueHeaders="x")),
    "alb headers not a mapping": ("alb", lambda e: e.update(headers=["x"])),
}


@pytest.mark.parametrize(("name", "spoil"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_http_events_get_a_400_not_a_crash(name, spoil, event, lambda_context, caplog):
    request = event(name)
    spoil(request)

    response = handler(request, lambda_context)

    assert response["statusCode"] == 400
    assert json.loads(response["body"]) == {"detail": "Malformed request event"}
    assert "Malformed" in caplog.text


def test_app_errors_stay_500_from_mangum(event, lambda_context, monkeypatch):
    from fastapi import FastAPI
    from mangum import Mangum

    failing = FastAPI()

    @failing.get("/health")
    async def health():
        raise RuntimeError("a bug in a route")

    monkeypatch.setattr(handler, "asgi", Mangum(failing, lifespan="off"))

    assert handler(event("http_api_v2"), lambda_context)["statusCode"] == 500


SQS_BATCH = {"Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": "{}"}]}


def test_sqs_batch_without_a_worker_raises_so_nothing_is_lost(lambda_context):
    from fastapi_lambda import lambda_handler
    from service.main import create_app

    # Answering would make SQS delete the batch; raising returns it to the queue.
    with pytest.raises(RuntimeError, match="no 'sqs' handler"):
        lambda_handler(create_app())(SQS_BATCH, lambda_context)


def test_registered_handlers_receive_their_kind(lambda_context, mangum_must_not_run, monkeypatch):
    received = []
    monkeypatch.setitem(handler.handlers, "sqs", lambda event, context: received.append(event) or {"ok": 1})

    assert handler(SQS_BATCH, lambda_context) == {"ok": 1}
    assert received == [SQS_BATCH]


def test_any_asgi_app_gets_the_same_dispatch(event, lambda_context):
    from fastapi_lambda import lambda_handler
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    own = lambda_handler(Starlette(routes=[Route("/health", lambda request: PlainTextResponse("mine"))]))

    assert own(event("http_api_v2"), lambda_context)["body"] == "mine"
    assert own({WARMUP_MARKER: {}}, lambda_context)["handled"] == "warmup"
    assert isinstance(own.asgi, adapter_module.Adapter) and own.asgi.lifespan == "off"


@pytest.mark.parametrize("reference", ["service.handler:app", "service.main:create_app"])
def test_generic_entry_serves_the_app_named_by_the_environment(reference, event, lambda_context, monkeypatch):
    import importlib
    import sys

    monkeypatch.setenv("FASTAPI_LAMBDA_APP", reference)
    monkeypatch.delitem(sys.modules, "fastapi_lambda.entry", raising=False)
    entry = importlib.import_module("fastapi_lambda.entry")

    assert entry.handler(event("http_api_v2"), lambda_context)["statusCode"] == 200


@pytest.mark.parametrize("reference", ["", "service.main", "service.main:"])
def test_generic_entry_refuses_a_malformed_app_reference(reference):
    from fastapi_lambda.entry import load_app

    with pytest.raises(ValueError, match="must look like 'package.module:app'"):
        load_app(reference)


def test_mangum_builds_each_request_scope_once(event, lambda_context):
    from mangum import Mangum
    from mangum.handlers import HTTPGateway

    built = []

    class Counting(HTTPGateway):
        @property
        def scope(self):
            built.append(1)
            return super().scope

    adapter = Mangum(handler.app, lifespan="off", custom_handlers=[adapter_module._scope_once(Counting)])

    assert adapter(event("http_api_v2"), lambda_context)["statusCode"] == 200
    assert len(built) == 1  # Mangum itself reads it twice


@pytest.mark.parametrize("name", HTTP_EVENTS)
def test_the_faster_handlers_answer_exactly_as_mangums_own(name, event, lambda_context):
    from mangum import Mangum

    plain = Mangum(handler.app, lifespan="off")

    assert handler(event(name), lambda_context) == plain(event(name), lambda_context)


def test_routes_with_parameters_do_not_import_pydantic_v1():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[2]
    code = ("import sys, service.handler as h; from tests.app.conftest import load_event; "
            "e = load_event('http_api_v2'); e['rawPath'] = e['requestContext']['http']['path'] = '/tasks/abc'; "
            "h.handler(e, None); print('pydantic.v1' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True,
                          env={"PATH": "", "PYTHONPATH": f"{root / 'lambda_src'}:{root}", "IMPORT_MODE": "lazy"})

    assert done.stdout.strip().splitlines()[-1] == "False"


def test_pydantic_v1_models_are_still_recognized_once_v1_is_loaded():
    from fastapi._compat import shared
    from pydantic import v1

    class Legacy(v1.BaseModel):
        name: str

    assert hasattr(shared.is_pydantic_v1_model_class, "original")  # the deferred check is installed
    assert shared.is_pydantic_v1_model_class(Legacy) is True
    assert shared.is_pydantic_v1_model_instance(Legacy(name="x")) is True
    assert shared.is_pydantic_v1_model_class(dict) is False


# --- the request cycle without Mangum's queue answers as Mangum's own --------------------------------

async def streams_in_chunks(scope, receive, send):
    await receive()
    await send({"type": "http.response.start", "status": 201, "headers": [[b"content-type", b"text/plain"]]})
    for chunk in (b"one ", b"two ", b"three"):
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


RECEIVED: list[dict] = []  # what the app below was handed after its request (checked outside the app:
# an assertion inside it would only turn into Mangum's logged error)


async def echoes_then_waits_for_the_disconnect(scope, receive, send):
    """Like an app watching for the client leaving: it asks for the next message before it answers."""
    import asyncio

    request = await receive()
    watcher = asyncio.ensure_future(receive())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": request["body"]})
    RECEIVED.append(await watcher)


async def fails_before_answering(scope, receive, send):
    raise RuntimeError("boom")


async def fails_after_starting(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise RuntimeError("boom")


async def sends_out_of_order(scope, receive, send):
    await send({"type": "http.response.body", "body": b"no start"})


@pytest.mark.parametrize("app", [streams_in_chunks, echoes_then_waits_for_the_disconnect, fails_before_answering,
                                 fails_after_starting, sends_out_of_order])
def test_the_request_cycle_answers_as_mangums_own(app, event, lambda_context):
    from mangum import Mangum

    request = event("http_api_v2")
    request.update(body="a body", isBase64Encoded=False)
    RECEIVED.clear()

    ours = adapter_module.Adapter(app)(request, lambda_context)

    assert ours == Mangum(app, lifespan="off")(request, lambda_context)
    assert ours["statusCode"] == {streams_in_chunks: 201, echoes_then_waits_for_the_disconnect: 200}.get(app, 500)
    if app is echoes_then_waits_for_the_disconnect:
        assert ours["body"] == "a body"
        assert RECEIVED == [{"type": "http.disconnect"}] * 2  # ours, then Mangum's


def test_the_request_cycle_answers_the_disconnect_again_after_the_response(event, lambda_context):
    """ASGI: `http.disconnect` to every receive after the response (Mangum's queue would hang the second)."""
    received = []

    async def asks_twice_after_answering(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        received.extend([await receive(), await receive()])

    response = adapter_module.Adapter(asks_twice_after_answering)(event("http_api_v2"), lambda_context)

    assert response["statusCode"] == 204
    assert received == [{"type": "http.disconnect"}] * 2
