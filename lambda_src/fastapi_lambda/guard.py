"""Hostile input: a request body the client malformed gets a 4xx, never a 500, whatever its JSON.

FastAPI (like Python's ``json``) accepts ``NaN``, ``Infinity`` and ``1e400`` (which becomes
``inf``), strings holding lone UTF-16 surrogates (``"\\ud800"``) and nesting as deep as the
recursion limit; its 422 handler then answers 500 when it cannot serialize the bad value back,
and ``jsonable_encoder`` or ``model_dump_json`` fail on deep nesting. So a body is checked
before the app sees it, with these answers (``{"detail": "..."}``, always serializable):

- larger than ``INPUT_MAX_BODY_BYTES`` (default 1 MiB), any content type: **413**;
- declared JSON (``application/json``, ``application/*+json``) or undeclared (FastAPI parses
  those as JSON too), and not strict JSON (RFC 8259): a syntax error, not UTF-8/16/32 text,
  ``NaN``/``Infinity``, a number beyond a double, a lone surrogate, nesting deeper than
  ``INPUT_MAX_JSON_DEPTH`` (default 64): **400**.

A FastAPI app also gets a 422 handler that never echoes what it cannot serialize (it drops the
``input`` of such an error instead of failing; a handler the app installed itself is kept), and
its OpenAPI schema lists the 400 and 413 answers on every operation that takes a body.

On Lambda :class:`fastapi_lambda.dispatch.LambdaHandler` checks the event's body before Mangum
(a request without a body costs nothing); elsewhere (uvicorn, tests) wrap the app:
``InputGuard(app)``. Opt out with ``lambda_handler(app, guard=False)`` or ``INPUT_GUARD=off``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from fastapi_lambda.constants import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    INPUT_GUARD_VARIABLE,
    MAX_BODY_BYTES_VARIABLE,
    MAX_JSON_DEPTH_VARIABLE,
)
from fastapi_lambda.openapi import detail_response, extend

if TYPE_CHECKING:
    from collections.abc import Iterable

    from starlette.types import Message, Receive, Scope, Send

    from fastapi_lambda.shapes import JsonValue


@functools.cache
def _surrogate_escape() -> re.Pattern[str]:
    """A JSON string escape of a UTF-16 surrogate: only these can make a string that UTF-8 cannot hold
    (compiled on first need: a quarter of a millisecond off the cold start)."""
    return re.compile(r"\\u[dD][89a-fA-F]")


# Plain classes, not NamedTuples: on the cold start, a NamedTuple costs ten times what a class does.
class Refusal:
    """Why a request is refused before the app sees it: its status and a message for the client."""

    __slots__ = ("status", "detail")

    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail

    @property
    def body(self) -> bytes:
        return json.dumps({"detail": self.detail}).encode()  # ASCII: whatever the detail holds


class _NotStrictJson(ValueError):
    pass


def _no_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _NotStrictJson(f"the number {text[:32]}{'...' if len(text) > 32 else ''} is out of range")
    return value


#: The strict parser: one decoder built once (``json.loads`` with hooks builds one per call).
STRICT_JSON = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def _positive_int(environ: Mapping[str, str], variable: str, default: int) -> int:
    try:
        value = int(environ.get(variable, "") or default)
    except ValueError:
        return default
    return value if value > 0 else default


class Limits:
    """What a request body may be; from ``INPUT_MAX_BODY_BYTES`` and ``INPUT_MAX_JSON_DEPTH``."""

    __slots__ = ("max_body_bytes", "max_json_depth")

    def __init__(self, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 max_json_depth: int = DEFAULT_MAX_JSON_DEPTH) -> None:
        self.max_body_bytes, self.max_json_depth = max_body_bytes, max_json_depth

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and (self.max_body_bytes, self.max_json_depth) == (
            other.max_body_bytes, other.max_json_depth)

    __hash__ = None  # type: ignore[assignment]  (mutable)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Limits | None:
        """The limits, or None when ``INPUT_GUARD=off`` opts out."""
        if environ.get(INPUT_GUARD_VARIABLE, "").strip().lower() in ("off", "false", "0"):
            return None
        return cls(_positive_int(environ, MAX_BODY_BYTES_VARIABLE, DEFAULT_MAX_BODY_BYTES),
                   _positive_int(environ, MAX_JSON_DEPTH_VARIABLE, DEFAULT_MAX_JSON_DEPTH))


def is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse a body of this content type as JSON (it does when there is none)."""
    if not content_type:
        return True
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


def check_body(body: bytes, content_type: str | None, limits: Limits) -> Refusal | None:
    """Why ``body`` must be refused, or None when the app may have it."""
    if len(body) > limits.max_body_bytes:
        return Refusal(413, f"The request body is larger than {limits.max_body_bytes} bytes")
    if not body or not is_json(content_type):
        return None
    try:
        text = body.decode(json.detect_encoding(body))
        value = STRICT_JSON.decode(text)
    except RecursionError:
        return Refusal(400, f"The JSON body is nested deeper than {limits.max_json_depth} levels")
    except UnicodeDecodeError:
        return Refusal(400, "The JSON body is not UTF-8 text")
    except ValueError as error:  # a syntax error, NaN/Infinity, a number out of range
        return Refusal(400, f"The request body is not valid JSON: {error}")
    # Counting is cheap; the walk below runs only where the text says it could find something.
    deep = text.count("[") + text.count("{") > limits.max_json_depth
    surrogates = "\\u" in text and _surrogate_escape().search(text) is not None
    if deep or surrogates:
        return _walk(value, limits.max_json_depth, surrogates)
    return None


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _walk(value: JsonValue, max_depth: int, strings: bool) -> Refusal | None:
    """Depth and (when ``strings``) text of a parsed JSON value, without recursion."""
    stack: list[tuple[JsonValue, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[JsonValue]
        if isinstance(item, dict):
            children = item.values()
            if strings and not all(_utf8(key) for key in item):
                return Refusal(400, "The JSON body holds a lone UTF-16 surrogate, which no UTF-8 text can")
        elif isinstance(item, list):
            children = item
        else:
            if strings and isinstance(item, str) and not _utf8(item):
                return Refusal(400, "The JSON body holds a lone UTF-16 surrogate, which no UTF-8 text can")
            continue
        if depth > max_depth:
            return Refusal(400, f"The JSON body is nested deeper than {max_depth} levels")
        stack.extend((child, depth + 1) for child in children
                     if isinstance(child, dict | list) or (strings and isinstance(child, str)))
    return None


# --- on Lambda: the event's body, before Mangum ---------------------------------------------------

def _header(event: Mapping[str, Any], name: str) -> str | None:
    """A request header of an API Gateway, Function URL or ALB event, whatever the case of its name."""
    # Declared as the events hold them; the checks below still hold whatever a malformed event has.
    headers: Mapping[object, object] | None = event.get("headers")
    if isinstance(headers, Mapping):
        value = headers.get(name)  # HTTP API, Function URLs and ALB give lowercase names: no loop
        if isinstance(value, str):
            return value
        for key, value in headers.items():
            if isinstance(key, str) and key.lower() == name:
                return value if isinstance(value, str) else None
    multi: Mapping[object, list[object] | None] | None = event.get("multiValueHeaders")
    if isinstance(multi, Mapping):
        for key, values in multi.items():
            if isinstance(key, str) and key.lower() == name and isinstance(values, list) and values:
                return values[-1] if isinstance(values[-1], str) else None
    return None


def check_event(event: Mapping[str, Any], limits: Limits) -> Refusal | None:
    """:func:`check_body` for an HTTP event's body (called only when it has one)."""
    body = event["body"]
    try:
        if event.get("isBase64Encoded"):
            data = base64.b64decode(body)  # as Mangum decodes it: what the app will get
        else:
            data = body.encode() if isinstance(body, str) else bytes(body)
    except (binascii.Error, TypeError, ValueError):
        return None  # a malformed event: Mangum fails on it, and the handler answers that with a 400
    return check_body(data, _header(event, "content-type"), limits)


def lambda_response(refusal: Refusal, kind: str) -> dict[str, Any]:
    """The answer to an API Gateway, Function URL or ALB event (``kind`` as dispatch names it)."""
    response = {"statusCode": refusal.status, "headers": {"content-type": "application/json"},
                "body": refusal.body.decode(), "isBase64Encoded": False}
    if kind == "alb":
        response["statusDescription"] = f"{refusal.status} {'Payload Too Large' if refusal.status == 413 else 'Bad Request'}"
    return response


# --- any ASGI server ----------------------------------------------------------------------------

class InputGuard:
    """ASGI middleware with the same checks, for servers other than Lambda (``uvicorn``, tests)."""

    def __init__(self, app: Any, limits: Limits | None = None) -> None:
        self.app = app
        self.limits = limits or Limits()
        protect(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                return await self.app(scope, _replay([], message, receive), send)
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limits.max_body_bytes:
                break
        body = b"".join(chunks)
        content_type = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k.lower() == b"content-type"),
                            None)
        refusal = check_body(body, content_type, self.limits)
        if refusal is not None:
            await send({"type": "http.response.start", "status": refusal.status,
                        "headers": [(b"content-type", b"application/json")]})
            return await send({"type": "http.response.body", "body": refusal.body})
        return await self.app(scope, _replay([body], None, receive), send)


def _replay(chunks: list[bytes], last: Message | None, receive: Receive) -> Receive:
    """A ``receive`` that first gives back what the guard read, then goes on with the real one."""
    pending: list[Message] = [{"type": "http.request", "body": chunk, "more_body": False} for chunk in chunks]
    if last is not None:
        pending.append(last)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


# --- a FastAPI app: its 422 answer, and its schema -----------------------------------------------

#: What the guard answers, as every operation with a request body documents it.
BODY_RESPONSES = {
    "400": detail_response("The body is not strict JSON (NaN, Infinity, a number beyond a double, a lone "
                           "surrogate, nesting past the limit, a syntax error)"),
    "413": detail_response("The body is larger than the limit"),
}


def protect(app: Any) -> None:
    """Give a FastAPI app the 422 handler of :func:`validation_error_response` (unless it has its own),
    and the guard's answers in its OpenAPI schema."""
    exceptions = sys.modules.get("fastapi.exceptions")  # loaded with FastAPI itself: no FastAPI, no app to protect
    handlers: dict[object, object] | None = getattr(app, "exception_handlers", None)  # Starlette's, by class
    if exceptions is None or not isinstance(handlers, dict):
        return
    from fastapi.exception_handlers import request_validation_exception_handler

    if handlers.get(exceptions.RequestValidationError) is request_validation_exception_handler:
        handlers[exceptions.RequestValidationError] = validation_error_response
        app.middleware_stack = None  # built with the handlers it had; built again on first use
    if callable(getattr(app, "openapi", None)):
        extend(app, "guard", _document_body_responses)


def _document_body_responses(schema: dict[str, Any]) -> None:
    """The guard's answers on every operation that takes a body."""
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                # An OpenAPI operation object: isinstance alone cannot name its keys' and values' types.
                responses: dict[str, Any] = cast("dict[str, Any]", operation).setdefault("responses", {})
                for status, response in BODY_RESPONSES.items():
                    responses.setdefault(status, response)


async def validation_error_response(request: Any, error: Any) -> Any:
    """FastAPI's 422 answer, from content that can always be serialized."""
    from starlette.responses import Response

    return Response(render_errors(error.errors()), status_code=422, media_type="application/json")


def _dumps(value: Any) -> bytes:
    # As Starlette's JSONResponse renders: no NaN, UTF-8 (which refuses lone surrogates).
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


def render_errors(errors: list[Any]) -> bytes:
    """``{"detail": errors}`` as FastAPI renders it; an error whose input or context cannot be
    serialized (NaN, a lone surrogate, undecodable bytes, deep nesting) loses them instead."""
    from fastapi.encoders import jsonable_encoder

    try:
        return _dumps({"detail": jsonable_encoder(errors)})
    except Exception:  # any failure to serialize: the safe form below
        pass
    detail: list[object] = []
    for error in errors:
        try:
            item = jsonable_encoder(error)
            _dumps(item)
        except Exception:
            item = {"type": _text(error.get("type")), "msg": _text(error.get("msg")),
                    "loc": [part if isinstance(part, int) else _text(part) for part in error.get("loc", ())]}
        detail.append(item)
    return _dumps({"detail": detail})


def _text(value: Any) -> str:
    """``value`` as text UTF-8 can hold (a lone surrogate becomes its escape)."""
    return str(value).encode("utf-8", "backslashreplace").decode()
