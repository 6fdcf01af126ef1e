"""Fixtures for the application tests: real Lambda event payloads and a context."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

EVENTS = Path(__file__).parent / "events"
HTTP_EVENTS = ("rest_api_v1", "http_api_v2", "function_url", "alb")


def load_event(name: str) -> dict:
    return json.loads((EVENTS / f"{name}.json").read_text())


@pytest.fixture
def event():
    """Load a stored event by name; each call returns a fresh copy to mutate."""
    return lambda name: copy.deepcopy(load_event(name))


@pytest.fixture
def lambda_context():
    return SimpleNamespace(
        function_name="fastapi-lambda-dev-Api",
        function_version="1",
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:fastapi-lambda-dev-Api:live",
        memory_limit_in_mb=1024,
        aws_request_id="9f5b7c9e-0000-4000-8000-000000000000",
        log_group_name="/aws/lambda/fastapi-lambda-dev-Api",
        log_stream_name="2026/11/28/[1]abcdef",
        get_remaining_time_in_millis=lambda: 12000,
    )


@pytest.fixture
def mangum_must_not_run(monkeypatch):
    """Fails the test if the event reaches Mangum (and so the web app)."""
    from service.handler import handler

    def fail(event, context):
        # pytest.fail raises a BaseException, which the handler's 400 guard cannot swallow.
        pytest.fail("a non-HTTP event reached Mangum")

    monkeypatch.setattr(handler, "asgi", fail)
