"""Logs, metrics and traces of the running function: JSON log lines with the correlation fields,
EMF metrics on stdout, and the X-Ray SDK loaded only where TRACING_MODE asks for it."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi_lambda import observability
from service.handler import handler

from tests.app.conftest import jwt_authorizer, load_event

TRACE_ID = "1-67890abc-0123456789abcdef01234567"


@pytest.fixture
def log_lines(monkeypatch):
    """The JSON lines the function writes, parsed (the handler's stream, redirected)."""
    stream = io.StringIO()
    handler = observability.state.handler
    assert isinstance(handler, logging.StreamHandler)  # set up when the handler module loaded
    previous = handler.setStream(stream)
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={TRACE_ID};Parent=53995c3f42cd8ad8;Sampled=1")
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    handler.setStream(previous)


@pytest.fixture
def fresh_instance(monkeypatch):
    """This process as a new execution environment: its next invocation is the cold start."""
    monkeypatch.setattr(observability.state, "invocations", 0)


def invoke(path, context, *, method="GET", authorizer=None, body=None):
    event = load_event("http_api_v2")
    event.update(rawPath=path, rawQueryString="", body=json.dumps(body) if body is not None else None)
    event["requestContext"]["http"].update(method=method, path=path)
    event["headers"]["content-type"] = "application/json"
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event, handler(event, context)


def emf_lines(text):
    return [line for line in map(json.loads, filter(None, text.splitlines())) if "_aws" in line]


def test_log_lines_are_json_with_the_correlation_fields(log_lines, fresh_instance, lambda_context):
    event, response = invoke("/me", lambda_context)  # no token: auth logs why it refused, at INFO

    assert response["statusCode"] == 401
    [line] = [line for line in log_lines() if line["message"] == "Refused a request's token"]
    assert line["level"] == "INFO" and line["service"] == observability.service_name()
    assert line["correlation_id"] == event["requestContext"]["requestId"]
    assert line["function_request_id"] == lambda_context.aws_request_id
    assert line["cold_start"] is True
    assert line["function_version"] == "1" and line["function_name"] == lambda_context.function_name
    assert line["xray_trace_id"] == TRACE_ID
    assert line["reason"] == "no bearer token"  # extra= fields are kept


def test_only_the_first_invocation_is_the_cold_start(log_lines, fresh_instance, lambda_context):
    invoke("/me", lambda_context)
    lambda_context.aws_request_id = "second-request"
    invoke("/me", lambda_context)
    invoke("/me", lambda_context)

    assert [line["cold_start"] for line in log_lines()] == [True, False, False]
    assert log_lines()[1]["function_request_id"] == "second-request"


def test_each_record_is_written_once(log_lines, lambda_context):
    invoke("/me", lambda_context)
    observability.state.logger.info("from the service logger")

    messages = [line["message"] for line in log_lines()]
    assert messages.count("Refused a request's token") == 1 and messages.count("from the service logger") == 1


def test_the_cold_start_is_a_metric(fresh_instance, lambda_context, capsys):
    invoke("/health", lambda_context)

    [cold] = emf_lines(capsys.readouterr().out)
    [directive] = cold["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "FastApiLambda"
    assert [m["Name"] for m in directive["Metrics"]] == ["ColdStart"]
    assert cold["ColdStart"] == [1.0] and cold["function_name"] == lambda_context.function_name


def test_a_warm_request_that_counts_nothing_writes_no_metrics(lambda_context, capsys):
    invoke("/health", lambda_context)
    invoke("/health", lambda_context)

    assert emf_lines(capsys.readouterr().out) == []


def test_accepted_tasks_are_counted_as_emf(task_infra, lambda_context, capsys):
    invoke("/health", lambda_context)  # past the cold start
    capsys.readouterr()

    _, response = invoke("/tasks", lambda_context, method="POST", authorizer=jwt_authorizer("api/tasks.write"),
                         body={"type": "generate-report", "payload": {"name": "q3", "rows": 3}})

    assert response["statusCode"] == 202
    [line] = emf_lines(capsys.readouterr().out)
    [directive] = line["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "FastApiLambda"
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {"TasksAccepted": "Count"}
    assert line["TasksAccepted"] == [1.0] and line["service"] == observability.service_name()


def test_count_is_a_no_op_outside_a_lambda_handler(monkeypatch):
    monkeypatch.setattr(observability.state, "metrics", None)

    observability.count("CacheHits")  # nothing to publish it: no error, nothing kept


def test_the_namespace_is_the_powertools_variable_or_the_constant(monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_NAMESPACE", raising=False)
    assert observability.metrics_namespace() == "FastApiLambda"
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Orders")
    assert observability.metrics_namespace() == "Orders"


# --- tracing: which modules a fresh process loads, per mode ---------------------------------------

ROOT = Path(__file__).parents[2]
GET_HEALTH = "import service.handler as h; from tests.app.conftest import load_event; h.handler(load_event('http_api_v2'), None)"


def run(code: str, **environ: str) -> dict:
    """Run ``code`` in a fresh process with ``environ``; what it prints as JSON."""
    env = {"PATH": "", "PYTHONPATH": f"{ROOT / 'lambda_src'}:{ROOT}", "AWS_DEFAULT_REGION": "us-east-1", **environ}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env)
    return json.loads(result.stdout.splitlines()[-1])


XRAY_LOADED = "print(json.dumps({'xray': 'aws_xray_sdk' in sys.modules, 'otel_or_botocore': 'botocore.client' in sys.modules}))"


@pytest.mark.parametrize("mode", ["off", "adot"])
def test_tracing_off_or_adot_loads_no_xray_module(mode):
    code = f"""import json, sys
{GET_HEALTH}
from fastapi_lambda import observability
observability.trace_aws()
with observability.subsegment("## test"): pass
print(json.dumps({{'xray': [m for m in sys.modules if m.startswith('aws_xray_sdk')]}}))"""

    assert run(code, TRACING_MODE=mode, IMPORT_MODE="eager")["xray"] == []


def test_xray_waits_for_the_first_aws_call_in_lazy_mode():
    code = f"""import json, sys
{GET_HEALTH}
before = 'aws_xray_sdk' in sys.modules
from fastapi_lambda import observability
observability.trace_aws()
print(json.dumps({{'before': before, 'after': 'aws_xray_sdk' in sys.modules}}))"""

    assert run(code, TRACING_MODE="xray", IMPORT_MODE="lazy") == {"before": False, "after": True}


def test_xray_is_loaded_at_init_in_eager_mode_and_patches_botocore_only():
    # LAMBDA_TASK_ROOT: Powertools' Tracer is on only on Lambda (elsewhere no daemon listens).
    code = """import json, sys
import service.handler
from aws_xray_sdk.core import patcher
print(json.dumps({'patched': sorted(patcher._PATCHED_MODULES)}))"""

    assert run(code, TRACING_MODE="xray", IMPORT_MODE="eager", LAMBDA_TASK_ROOT=str(ROOT),
               AWS_XRAY_CONTEXT_MISSING="IGNORE_ERROR") == {"patched": ["botocore"]}
