"""The Lambda entry point for an ASGI app: a dispatch table from event kind to handler.

HTTP events (API Gateway REST v1, HTTP API v1/v2, Function URL, ALB) go to
``Mangum(app, lifespan="off")`` (:mod:`fastapi_lambda.adapter`), once their body passed :mod:`fastapi_lambda.guard` (a
malformed or oversized body is answered 400/413 here, never by a 500 of the app). Everything else is answered before Mangum, which
raises ``RuntimeError`` on events it cannot infer (Lambda would count an error and
retry): warmup pings, EventBridge schedules and unknown shapes are answered and
logged. An SQS batch goes to the handler registered for ``"sqs"`` (the task worker,
with ``tasks=``, which may name it as ``"package.module:registry"`` so that it is imported by
the first batch, or at init in eager mode); with none, it raises, so the messages return to the
queue instead of being lost. Mangum loads only for an app.
"""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Callable
from typing import Any, cast

from fastapi_lambda import aws, cold_start, edge, lifecycle, observability
from fastapi_lambda import guard as guard_module
from fastapi_lambda.constants import WARMUP_MARKER

logger = logging.getLogger(__name__)

EventHandler = Callable[[Any, Any], Any]
#: Payload v1: REST API and HTTP API format 1.0; v2: HTTP API format 2.0 and Function URLs.
HTTP_EVENT_KINDS = frozenset({"alb", "http-v1", "http-v2"})


def load_object(reference: str, variable: str = "reference", example: str = "package.module:app") -> Any:
    """Import ``package.module:attribute`` and return what it names (called, if it is a factory)."""
    check_reference(reference, variable, example)
    module_name, _, attribute = reference.partition(":")
    value = getattr(importlib.import_module(module_name), attribute)
    # An ASGI app function needs (scope, receive, send); one callable without arguments is a factory.
    if inspect.isfunction(value) and all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
                                         for p in inspect.signature(value).parameters.values()):
        value = value()
    return value


def check_reference(reference: str, variable: str, example: str) -> None:
    """A ValueError naming ``variable`` unless ``reference`` looks like ``package.module:attribute``."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{variable}={reference!r} must look like {example!r}")


def _process_batch(tasks: Any) -> EventHandler:
    """The worker: ``tasks.process_batch``; a registry named by reference is imported by the first batch
    (a per-instance value: at init in eager mode)."""
    if not isinstance(tasks, str):
        return tasks.process_batch
    check_reference(tasks, "tasks", "package.module:registry")
    registry = lifecycle.per_instance(lambda: load_object(tasks, "tasks", "package.module:registry"))

    def process_batch(event: Any, context: Any) -> Any:
        return registry.get().process_batch(event, context)

    return process_batch


def _has_text(mapping: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(mapping.get(key), str) for key in keys)


def classify_event(event: Any) -> str:
    """Name the kind of a Lambda event without raising, whatever its shape.

    An event is only called HTTP when it carries every field Mangum reads, so a
    malformed one can never crash the adapter.
    """
    if not isinstance(event, dict):
        return "unknown"
    event = cast("dict[str, Any]", event)  # a JSON object: its values are checked before use
    if WARMUP_MARKER in event:
        return "warmup"
    context: Any = event.get("requestContext")
    if isinstance(context, dict):
        context = cast("dict[str, Any]", context)
        if "elb" in context:
            return "alb" if _has_text(event, "httpMethod", "path") else "unknown"
        if event.get("version") == "2.0":
            http: Any = context.get("http")
            ok = isinstance(http, dict) and _has_text(cast("dict[str, Any]", http), "method") \
                and _has_text(event, "rawPath")
            return "http-v2" if ok else "unknown"
        if event.get("version") == "1.0" or "resource" in event:
            return "http-v1" if _has_text(event, "httpMethod", "path") else "unknown"
    records: Any = event.get("Records")
    if isinstance(records, list) and records and all(
            isinstance(r, dict) and cast("dict[str, Any]", r).get("eventSource") == "aws:sqs"
            for r in cast("list[Any]", records)):
        return "sqs"
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "unknown"


def bad_request(kind: str) -> dict[str, Any]:
    response = {"statusCode": 400, "headers": {"content-type": "application/json"},
                "body": '{"detail":"Malformed request event"}', "isBase64Encoded": False}
    if kind == "alb":
        response["statusDescription"] = "400 Bad Request"
    return response


def _answer(kind: str) -> EventHandler:
    """A handler that answers events of ``kind`` without the web app, and logs them."""

    def answer(event: Any, context: Any) -> dict[str, Any]:
        logger.info("Answered a non-HTTP event without the web app", extra={"event_kind": kind})
        return {"handled": kind}

    return answer


class LambdaHandler:
    """A Lambda handler for one ASGI app; call it with ``(event, context)``.

    Built once per execution environment (at init). :meth:`register` adds or replaces
    the handler of an event kind (``"sqs"`` for a queue worker, ``"schedule"``, ...).
    With ``app=None`` (a worker-only function) HTTP events are answered 400.
    ``guard=False`` (or ``INPUT_GUARD=off``) lets request bodies through unchecked.
    ``tasks``: see :func:`lambda_handler`.
    """

    def __init__(self, app: Any, *, guard: bool = True, tasks: Any = None) -> None:
        self.app = app
        self.limits = guard_module.Limits.from_environ() if guard else None
        if self.limits is not None:
            guard_module.protect(app)
        if app is not None:
            from fastapi_lambda.adapter import Adapter  # Mangum, lifespan off

            # edge.mount: the app below its service prefix, gzip where the gateway cannot compress.
            self.asgi = Adapter(edge.mount(app))
        else:
            self.asgi = self._no_app
        self.handlers: dict[str, EventHandler] = {kind: self._http for kind in HTTP_EVENT_KINDS}
        self.handlers.update(warmup=self._warmup, schedule=_answer("schedule"), unknown=_answer("unknown"),
                             sqs=self._unhandled if tasks is None else _process_batch(tasks))
        # Mangum logs "GET / 200" at INFO for every request (~15% of a warm request with Lambda's
        # logging), which the gateway's access log already records; its errors still get through.
        logging.getLogger("mangum.http").setLevel(logging.WARNING)
        observability.setup()
        lifecycle.prepare(app)

    def register(self, kind: str, handler: EventHandler) -> None:
        """Send events of ``kind`` (see :func:`classify_event`) to ``handler(event, context)``."""
        self.handlers[kind] = handler

    def __call__(self, event: Any, context: Any) -> Any:
        observability.start(event, context)  # the correlation fields of this invocation's logs
        aws.invocation.context = context  # every AWS call made now ends before the invocation does
        try:
            kind = classify_event(event)
            if kind in HTTP_EVENT_KINDS:  # the hot path: no table lookup, no extra call
                return self._http(event, context, kind)
            return self.handlers[kind](event, context)
        finally:
            aws.invocation.context = None
            observability.finish()  # what it counted, as one EMF line

    def _http(self, event: Any, context: Any, kind: str = "http") -> dict[str, Any]:
        if self.limits is not None and event.get("body"):  # a request without a body costs one lookup
            refusal = guard_module.check_event(event, self.limits)
            if refusal is not None:
                logger.info("Refused a request body", extra={"status": refusal.status, "reason": refusal.detail})
                return guard_module.lambda_response(refusal, kind)
        try:
            return self.asgi(event, context)
        except Exception:
            # Mangum answers the app's own errors with a 500 itself; what escapes it is an
            # event it could not translate (bad base64 body, mistyped headers): a client fault.
            logger.warning("Malformed %s event", kind, exc_info=True)
            return bad_request(kind)

    @staticmethod
    def _warmup(event: Any, context: Any) -> dict[str, Any]:
        # DEBUG: pings arrive every few minutes per instance and are expected; the
        # fan-out's outcome is logged at INFO.
        logger.debug("Answered a warmup ping without the web app", extra={"event_kind": "warmup"})
        return {"handled": "warmup", **cold_start.answer_warmup(event[WARMUP_MARKER], context)}

    @staticmethod
    def _no_app(event: Any, context: Any) -> dict[str, Any]:
        logger.warning("An HTTP event reached a function without a web app", extra={"event_kind": "http"})
        return bad_request(classify_event(event))

    @staticmethod
    def _unhandled(event: Any, context: Any) -> Any:
        # Answering would delete the batch: raise, so SQS redelivers it (and, at last, dead-letters it).
        raise RuntimeError("An SQS batch reached a function with no 'sqs' handler; register one with "
                           "handler.register('sqs', ...) or remove the event source")


def lambda_handler(app: Any = None, *, tasks: Any = None, guard: bool = True) -> LambdaHandler:
    """The Lambda handler for ``app``: ``handler = lambda_handler(app)`` in your module.

    ``tasks`` (a :class:`fastapi_lambda.tasks.TaskRegistry`, or ``"package.module:registry"`` to
    import it with the first batch) makes the same handler the queue's worker: SQS batches go to
    ``tasks.process_batch``. ``app`` may then be None.
    ``guard=False`` turns the hostile-input checks of :mod:`fastapi_lambda.guard` off.
    """
    if app is None and tasks is None:
        raise ValueError("lambda_handler needs an ASGI app, a task registry (tasks=...), or both")
    return LambdaHandler(app, guard=guard, tasks=tasks)
