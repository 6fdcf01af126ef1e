"""Logs, metrics and traces of every function: Powertools Logger, Metrics and Tracer.

:func:`setup` runs once per execution environment (``lambda_handler`` calls it at init):

- **Logger**: one JSON handler on the root logger, so every ``logging.getLogger(__name__)``
  of the runtime, the app and its libraries writes JSON lines with the service
  (``POWERTOOLS_SERVICE_NAME``), the correlation id (the gateway's request id), the
  Lambda request id, the cold-start flag, the function's name, version and ARN, and the
  X-Ray trace id. The level is Powertools' (``POWERTOOLS_LOG_LEVEL``, ``AWS_LAMBDA_LOG_LEVEL``).
- **Metrics** (EMF, namespace ``POWERTOOLS_METRICS_NAMESPACE`` or ``FastApiLambda``): the
  cold start, and what code counts with :func:`count` (tasks, cache), flushed after each
  invocation that counted something.
- **Tracer** per ``TRACING_MODE``: ``xray`` (default) loads Powertools' Tracer and the X-Ray
  SDK (~15 ms) only where AWS is called, at the first :func:`trace_aws` or
  :func:`subsegment` (at init in eager mode), and patches botocore only; ``adot`` leaves it
  to the ADOT layer; ``off`` loads nothing.

Per invocation (:func:`start` and :func:`finish`) this costs a dict update and a check:
no Powertools decorator (they build a context model, search the event with JMESPath and
serialize the response into the trace on every call).
"""

from __future__ import annotations

import logging
import os
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal

from fastapi_lambda import lifecycle
from fastapi_lambda.constants import (
    METRICS_NAMESPACE,
    METRICS_NAMESPACE_VARIABLE,
    SERVICE_NAME_VARIABLE,
    TRACING_VARIABLE,
)

TracingMode = Literal["xray", "adot", "off"]
TRACING_MODES: tuple[TracingMode, ...] = ("xray", "adot", "off")
#: The service name when ``POWERTOOLS_SERVICE_NAME`` is not set.
DEFAULT_SERVICE = "fastapi-lambda"
#: What botocore-based calls the X-Ray SDK records: only botocore, never requests/httplib/sqlite.
PATCHED_MODULES = ("botocore",)
#: Libraries whose INFO lines would reach CloudWatch once the root logger is at INFO.
QUIET_LOGGERS = ("boto3", "botocore", "urllib3", "httpx")

logger = logging.getLogger(__name__)


def service_name() -> str:
    return os.environ.get(SERVICE_NAME_VARIABLE) or DEFAULT_SERVICE


def metrics_namespace() -> str:
    return os.environ.get(METRICS_NAMESPACE_VARIABLE) or METRICS_NAMESPACE


def tracing_mode() -> TracingMode:
    mode = os.environ.get(TRACING_VARIABLE, "").strip().lower() or "xray"
    return mode if mode in TRACING_MODES else "xray"  # type: ignore[return-value]


class _State:
    """What :func:`setup` made; ``None`` before (local runs, tests of the app alone)."""

    logger: Any = None  # Powertools Logger
    formatter: Any = None  # its formatter, shared by the root handler: append_keys reaches every line
    handler: logging.Handler | None = None
    metrics: Any = None  # Powertools Metrics
    invocations = 0


state = _State()


def setup() -> Any:
    """Configure Logger and Metrics once (idempotent); the Powertools Logger."""
    if state.logger is not None:
        return state.logger
    from aws_lambda_powertools.logging import Logger
    from aws_lambda_powertools.metrics import Metrics

    powertools = Logger(service=service_name())
    handler = powertools.registered_handler
    # The service's own logger writes through the same handler on the root logger, once.
    powertools._logger.propagate = False
    handler.fastapi_lambda = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    on_lambda = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("LAMBDA_TASK_ROOT"))
    for existing in list(root.handlers):
        # On Lambda, the runtime's own handler would write every line a second time, as text.
        if on_lambda or getattr(existing, "fastapi_lambda", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(powertools.log_level)
    for name in QUIET_LOGGERS:  # their INFO lines (credentials found, each connection) are noise here
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(max(powertools.log_level, logging.WARNING))
    state.logger, state.formatter, state.handler = powertools, powertools.registered_formatter, handler
    state.metrics = Metrics(namespace=metrics_namespace(), service=service_name())
    return powertools


def start(event: Any, context: Any) -> None:
    """Before an invocation: the correlation fields of its log lines (and the cold start, once)."""
    formatter = state.formatter
    if formatter is None:
        return
    try:
        correlation_id = event["requestContext"]["requestId"]
    except (KeyError, TypeError, IndexError):
        correlation_id = None
    request_id = getattr(context, "aws_request_id", None)
    if state.invocations > 1:  # the warm path
        formatter.append_keys(correlation_id=correlation_id, function_request_id=request_id)
    else:
        _first_invocations(formatter, context, correlation_id, request_id)
    state.invocations += 1


def _first_invocations(formatter: Any, context: Any, correlation_id: str | None, request_id: str | None) -> None:
    if state.invocations == 1:
        formatter.append_keys(cold_start=False, correlation_id=correlation_id, function_request_id=request_id)
        return
    # Provisioned concurrency initialises before traffic: its first invocation is no cold start.
    cold = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"
    formatter.append_keys(
        cold_start=cold, correlation_id=correlation_id, function_request_id=request_id,
        function_name=getattr(context, "function_name", None),
        function_version=getattr(context, "function_version", None),
        function_arn=getattr(context, "invoked_function_arn", None),
        function_memory_size=getattr(context, "memory_limit_in_mb", None))
    if cold:
        try:
            state.metrics.provider.add_cold_start_metric(context)  # its own EMF line, with the function name
        except Exception:  # a context without a name (local calls) must not fail the request
            logger.debug("No cold start metric", exc_info=True)


def finish() -> None:
    """After an invocation: publish what it counted (one EMF line), if anything."""
    metrics = state.metrics
    if metrics is not None and metrics.metric_set:
        try:
            metrics.flush_metrics()
        except Exception:  # metrics must never fail a request
            logger.warning("Could not publish metrics", exc_info=True)


def count(name: str, value: float = 1) -> None:
    """Add ``value`` to the metric ``name`` (unit Count), published at the end of the invocation.

    A no-op outside a Lambda handler (local runs), where nothing would publish it.
    """
    metrics = state.metrics
    if metrics is None:
        return
    try:
        metrics.add_metric(name=name, unit="Count", value=value)
    except Exception:  # a bad name or too many dimensions: never the caller's problem
        logger.warning("Could not count %s", name, exc_info=True)


# --- tracing ----------------------------------------------------------------------------------

class _NoTracer:
    """What :data:`tracer` holds when X-Ray is not ours to drive (``adot``, ``off``)."""

    disabled = True


def _make_tracer() -> Any:
    if tracing_mode() != "xray":
        return _NoTracer()
    from aws_lambda_powertools.tracing import Tracer

    try:
        # Outside Lambda Powertools disables itself (no daemon listens); it still imports the SDK.
        return Tracer(service=service_name(), patch_modules=list(PATCHED_MODULES))
    except ImportError:  # a lock without aws-xray-sdk: the function runs, untraced, and says why once
        logger.warning("TRACING_MODE=xray needs aws-xray-sdk in the lock; tracing is off")
        return _NoTracer()


#: Powertools' Tracer, made at the first AWS call (``lazy``) or at init (``eager``).
tracer = lifecycle.per_instance(_make_tracer)


def trace_aws() -> None:
    """Call before creating a boto3 client: with ``TRACING_MODE=xray`` its calls become subsegments."""
    if tracing_mode() == "xray":
        tracer.get()


def subsegment(name: str) -> AbstractContextManager[Any]:
    """``with subsegment("## sqs.send"):`` an X-Ray subsegment around a call (``xray``), else nothing."""
    if tracing_mode() != "xray":
        return nullcontext()
    current = tracer.get()
    if current.disabled:
        return nullcontext()
    return current.provider.in_subsegment(name=name)
