"""Logs, metrics and traces of every function: Powertools Logger, Metrics and Tracer, loaded when used.

:func:`setup` runs once per execution environment (``lambda_handler`` calls it at init):

- **Logs**: one JSON handler on the root logger, so every ``logging.getLogger(__name__)``
  of the runtime, the app and its libraries writes JSON lines with the service
  (``POWERTOOLS_SERVICE_NAME``), the correlation id (the gateway's request id), the
  Lambda request id, the cold-start flag, the function's name, version and ARN, and the
  X-Ray trace id. The lines are Powertools Logger's; it loads (~8 ms with Metrics) with the
  first line written, since most requests write none. The level is Powertools' rule
  (``AWS_LAMBDA_LOG_LEVEL``, then ``POWERTOOLS_LOG_LEVEL``, then INFO), applied at init.
- **Metrics** (EMF, namespace ``POWERTOOLS_METRICS_NAMESPACE`` or ``FastApiLambda``): the
  cold start, one EMF line written here exactly as Powertools' ``add_cold_start_metric``
  writes it (a test compares the two); and what code counts with :func:`count` (tasks),
  through Powertools Metrics, loaded by the first count and flushed after each invocation
  that counted something.
- In ``eager`` mode, or when a Powertools setting this module does not reproduce is set
  (:data:`POWERTOOLS_DECIDES`), Logger and Metrics load at init and Powertools writes the
  cold start itself.
- **Tracer** per ``TRACING_MODE``: ``xray`` (default) loads Powertools' Tracer and the X-Ray
  SDK (~15 ms) only where AWS is called, at the first :func:`trace_aws` or
  :func:`subsegment` (at init in eager mode), and patches botocore only; ``adot`` leaves it
  to the ADOT layer; ``off`` loads nothing.

Per invocation (:func:`start` and :func:`finish`) this costs a dict update and a check:
no Powertools decorator (they build a context model, search the event with JMESPath and
serialize the response into the trace on every call).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
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
#: Powertools settings whose effect this module does not reproduce (log sampling, dev mode, metrics
#: off): when one is set, Powertools loads at init and decides.
POWERTOOLS_DECIDES = ("POWERTOOLS_LOGGER_SAMPLE_RATE", "POWERTOOLS_DEV", "POWERTOOLS_METRICS_DISABLED")
#: Lambda's log levels (advanced logging controls) as Python's, the way Powertools maps them.
LAMBDA_LOG_LEVELS = {"TRACE": "NOTSET", "DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "ERROR": "ERROR",
                     "FATAL": "CRITICAL"}

logger = logging.getLogger(__name__)


def service_name() -> str:
    return os.environ.get(SERVICE_NAME_VARIABLE) or DEFAULT_SERVICE


def metrics_namespace() -> str:
    return os.environ.get(METRICS_NAMESPACE_VARIABLE) or METRICS_NAMESPACE


def tracing_mode() -> TracingMode:
    mode = os.environ.get(TRACING_VARIABLE, "").strip().lower() or "xray"
    return mode if mode in TRACING_MODES else "xray"  # type: ignore[return-value]


def log_level() -> int:
    """The level Powertools Logger would take: Lambda's advanced logging controls, then
    ``POWERTOOLS_LOG_LEVEL`` (or the legacy ``LOG_LEVEL``), then INFO."""
    name = LAMBDA_LOG_LEVELS.get(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "")) \
        or (os.environ.get("POWERTOOLS_LOG_LEVEL") or os.environ.get("LOG_LEVEL") or "INFO").upper()
    return logging.getLevelNamesMapping().get(name, logging.INFO)


def powertools_decides() -> bool:
    return any(os.environ.get(name) for name in POWERTOOLS_DECIDES)


class _State:
    """What :func:`setup` made; ``None`` before (local runs, tests of the app alone)."""

    def __init__(self) -> None:
        self.handler: logging.Handler | None = None  # on the root logger; its formatter is Powertools', once loaded
        self.logger: Any = None  # Powertools Logger, once loaded
        self.formatter: Any = None  # its formatter, shared by the root handler: append_keys reaches every line
        self.keys: dict[str, Any] = {}  # correlation fields set before the formatter loaded
        self.metrics: Any = None  # Powertools Metrics, once loaded
        self.loading = False
        self.invocations = 0


state = _State()


class JsonLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The root logger's handler (stdout): Powertools' JSON lines, its Logger loaded with the first one."""

    fastapi_lambda = True

    def handle(self, record: logging.LogRecord) -> Any:
        if state.formatter is None and not state.loading:
            service_logger()  # before the handler's lock is taken
        return super().handle(record)


def setup() -> None:
    """Put the JSON handler on the root logger and set the level, once (idempotent)."""
    if state.handler is not None:
        return
    # A Powertools Logger the app made already owns the service's handler: that one, then.
    handler = getattr(logging.getLogger(service_name()), "powertools_handler", None) or JsonLines(sys.stdout)
    handler.fastapi_lambda = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    on_lambda = lifecycle.on_lambda()
    for existing in list(root.handlers):
        # On Lambda, the runtime's own handler would write every line a second time, as text.
        if on_lambda or getattr(existing, "fastapi_lambda", False):
            root.removeHandler(existing)
    root.addHandler(handler)
    state.handler = handler
    level = log_level()
    if not isinstance(handler, JsonLines) or powertools_decides() or lifecycle.import_mode() == "eager":
        level = service_logger().log_level  # sampling may have lowered it
        metrics()
    root.setLevel(level)
    for name in QUIET_LOGGERS:  # their INFO lines (credentials found, each connection) are noise here
        library = logging.getLogger(name)
        if library.level == logging.NOTSET:
            library.setLevel(max(level, logging.WARNING))


def service_logger() -> Any:
    """The service's Powertools Logger (loaded now if it was not), writing through the root's handler."""
    if state.logger is not None:
        return state.logger
    setup()
    from aws_lambda_powertools.logging import Logger
    from aws_lambda_powertools.logging.filters import SuppressFilter

    state.loading = True
    try:
        powertools = Logger(service=service_name(), logger_handler=state.handler)
    finally:
        state.loading = False
    # Powertools filters its service's records out of the root's handlers, ours included; but its
    # logger writes through this very handler (and not again through the root's: no propagation).
    handler = powertools.registered_handler
    handler.filters[:] = [f for f in handler.filters if not isinstance(f, SuppressFilter)]
    logging.getLogger(powertools.service).propagate = False  # the logger Powertools writes through
    formatter = powertools.registered_formatter
    powertools.append_keys(**state.keys)  # onto that formatter
    state.logger, state.formatter = powertools, formatter
    return powertools


def metrics() -> Any:
    """Powertools Metrics (loaded now if it was not)."""
    if state.metrics is None:
        from aws_lambda_powertools.metrics import Metrics

        state.metrics = Metrics(namespace=metrics_namespace(), service=service_name())
    return state.metrics


def _append_keys(**keys: Any) -> None:
    if state.formatter is not None:
        state.formatter.append_keys(**keys)
    else:
        state.keys.update(keys)


def start(event: Any, context: Any) -> None:
    """Before an invocation: the correlation fields of its log lines (and the cold start, once)."""
    if state.handler is None:
        return
    try:
        correlation_id = event["requestContext"]["requestId"]
    except (KeyError, TypeError, IndexError):
        correlation_id = None
    request_id = getattr(context, "aws_request_id", None)
    if state.invocations > 1:  # the warm path
        _append_keys(correlation_id=correlation_id, function_request_id=request_id)
    else:
        _first_invocations(context, correlation_id, request_id)
    state.invocations += 1


def _first_invocations(context: Any, correlation_id: str | None, request_id: str | None) -> None:
    if state.invocations == 1:
        _append_keys(cold_start=False, correlation_id=correlation_id, function_request_id=request_id)
        return
    # Provisioned concurrency initialises before traffic: its first invocation is no cold start.
    cold = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") != "provisioned-concurrency"
    _append_keys(
        cold_start=cold, correlation_id=correlation_id, function_request_id=request_id,
        function_name=getattr(context, "function_name", None),
        function_version=getattr(context, "function_version", None),
        function_arn=getattr(context, "invoked_function_arn", None),
        function_memory_size=getattr(context, "memory_limit_in_mb", None))
    if cold:
        try:
            cold_start_metric(context)
        except Exception:  # a context without a name (local calls) must not fail the request
            logger.debug("No cold start metric", exc_info=True)


def cold_start_metric(context: Any) -> None:
    """The ``ColdStart`` EMF line of Powertools' ``add_cold_start_metric``: by Powertools when it decides
    (:data:`POWERTOOLS_DECIDES`), else written here, the same line without loading it."""
    if powertools_decides():
        metrics().provider.add_cold_start_metric(context)
        return
    function_name = os.environ.get("POWERTOOLS_METRICS_FUNCTION_NAME") or context.function_name
    write_metric("ColdStart", [1.0], {"function_name": function_name, "service": service_name()})


def write_metric(name: str, value: Any, dimensions: dict[str, str], *, namespace: str | None = None,
                 **properties: Any) -> None:
    """One count as a line of CloudWatch's embedded metric format on stdout, now (not at the end of the
    invocation): ``value`` under ``name``, the ``dimensions`` and ``properties`` beside it."""
    line = {"_aws": {"Timestamp": int(time.time() * 1000), "CloudWatchMetrics": [{
        "Namespace": namespace or metrics_namespace(), "Dimensions": [list(dimensions)],
        "Metrics": [{"Name": name, "Unit": "Count"}]}]}, **dimensions, **properties, name: value}
    sys.stdout.write(json.dumps(line, separators=(",", ":")) + "\n")


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
    if state.handler is None:
        return
    try:
        metrics().add_metric(name=name, unit="Count", value=value)
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
