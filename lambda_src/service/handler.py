"""Lambda entry point.

HTTP events (API Gateway REST v1, HTTP API v1/v2, Function URL, ALB) go to Mangum.
Anything else (a warmup marker, an EventBridge scheduled event, an unknown shape) is
answered here, before Mangum: Mangum raises ``RuntimeError`` on events it cannot
infer, which Lambda would count as an error and retry. Warmup markers are handled by
:mod:`service.cold_start`, which also applies the import mode at init.
"""

from __future__ import annotations

import logging
from typing import Any

from mangum import Mangum

from service import cold_start
from service.cold_start import WARMUP_MARKER
from service.main import create_app

logger = logging.getLogger(__name__)
# Payload v1: REST API and HTTP API format 1.0; v2: HTTP API format 2.0 and Function URLs.
HTTP_EVENT_KINDS = frozenset({"alb", "http-v1", "http-v2"})

# Built once per execution environment (at init), reused by every invocation.
app = create_app()
# lifespan="off": Mangum would otherwise run startup and shutdown on every invocation.
asgi_handler = Mangum(app, lifespan="off")
# Mangum logs "GET / 200" at INFO for every request (~15% of a warm request with Lambda's
# logging), which the gateway's access log already records; its errors still get through.
logging.getLogger("mangum.http").setLevel(logging.WARNING)
cold_start.prepare(app)


def _has_text(mapping: dict[str, Any], *keys: str) -> bool:
    return all(isinstance(mapping.get(key), str) for key in keys)


def classify_event(event: Any) -> str:
    """Name the kind of a Lambda event without raising, whatever its shape.

    An event is only called HTTP when it carries every field Mangum reads, so a
    malformed one can never crash the adapter.
    """
    if not isinstance(event, dict):
        return "unknown"
    if WARMUP_MARKER in event:
        return "warmup"
    context = event.get("requestContext")
    if isinstance(context, dict):
        if "elb" in context:
            return "alb" if _has_text(event, "httpMethod", "path") else "unknown"
        if event.get("version") == "2.0":
            http = context.get("http")
            ok = isinstance(http, dict) and _has_text(http, "method") and _has_text(event, "rawPath")
            return "http-v2" if ok else "unknown"
        if event.get("version") == "1.0" or "resource" in event:
            return "http-v1" if _has_text(event, "httpMethod", "path") else "unknown"
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return "schedule"
    return "unknown"


def bad_request(kind: str) -> dict[str, Any]:
    response = {"statusCode": 400, "headers": {"content-type": "application/json"},
                "body": '{"detail":"Malformed request event"}', "isBase64Encoded": False}
    if kind == "alb":
        response["statusDescription"] = "400 Bad Request"
    return response


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Serve HTTP events through FastAPI; answer everything else without it."""
    kind = classify_event(event)
    if kind in HTTP_EVENT_KINDS:
        try:
            return asgi_handler(event, context)
        except Exception:
            # Mangum answers the app's own errors with a 500 itself; what escapes it is an
            # event it could not translate (bad base64 body, mistyped headers): a client fault.
            logger.warning("Malformed %s event", kind, exc_info=True)
            return bad_request(kind)
    if kind == "warmup":
        # DEBUG: pings arrive every few minutes per instance and are expected; the
        # fan-out's outcome is logged at INFO by cold_start.
        logger.debug("Answered a warmup ping without the web app", extra={"event_kind": kind})
        return {"handled": kind, **cold_start.answer_warmup(event[WARMUP_MARKER], context)}
    logger.info("Answered a non-HTTP event without the web app", extra={"event_kind": kind})
    return {"handled": kind}
