"""What the HTTP edge asks of the app: the path prefix it is served under, and compression.

Several services share one API Gateway, each on a path prefix (``/billing``); a custom
domain's base path mapping adds one more (``/v1``). The gateway passes the whole path to the
function, so the app is served with that prefix as its ASGI ``root_path`` (the path stays
whole, as the ASGI spec wants): Starlette routes below it, and FastAPI's ``/docs`` loads
``<prefix>/openapi.json``. ``FASTAPI_LAMBDA_ROOT_PATH`` names the prefix (the construct that
mounts the service sets it). ``FASTAPI_LAMBDA_GZIP_MIN_BYTES`` turns on gzip for answers of at
least that size (an HTTP API cannot compress; a REST API does it at the gateway): Starlette's
``GZipMiddleware`` answers the callers that accept gzip, and is loaded with the first of them (at init
in eager mode); the others get the answer as it is, with ``Vary: Accept-Encoding`` where a gzip caller
would have got it compressed, as the middleware sets it, at one header lookup per request.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi_lambda import lifecycle
from fastapi_lambda.constants import GZIP_MIN_BYTES_VARIABLE, ROOT_PATH_VARIABLE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def root_path_of(value: str | None) -> str:
    """``"billing/"`` -> ``"/billing"``; ``""``, ``"/"`` or None -> ``""`` (served at the root)."""
    parts = [part for part in (value or "").split("/") if part]
    return "/" + "/".join(parts) if parts else ""


class RootPath:
    """Serves ``app`` below ``prefix``: requests under it get ``root_path=prefix``, their path unchanged.

    A request for the prefix itself (``/billing``) is the app's root (``/billing/``). A request
    outside the prefix (a direct invocation, a test event) is passed on as it is.
    """

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app, self.prefix = app, root_path_of(prefix)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and self.prefix:
            path: str = scope.get("path", "")
            if path == self.prefix or path.startswith(self.prefix + "/"):
                scope = {**scope, "root_path": self.prefix, "path": path if path != self.prefix else path + "/"}
                if "raw_path" in scope and scope["raw_path"] is not None:
                    scope["raw_path"] = scope["path"].encode()
        await self.app(scope, receive, send)


def accepts_gzip(scope: Scope) -> bool:
    """Whether the request's ``Accept-Encoding`` names gzip (its first such header, as Starlette reads it)."""
    for name, value in scope.get("headers") or ():
        if name == b"accept-encoding":
            return b"gzip" in value
    return False


class Compression:
    """``app``'s answers of at least ``minimum_size`` bytes gzip-compressed for the callers that accept it.

    Those requests go through Starlette's ``GZipMiddleware`` (made once per instance: on the first
    of them, or at init in eager mode). Every other request costs one header lookup and a ``send``
    that holds the response's start until its first body: a complete body under ``minimum_size``
    passes untouched; a larger or streamed one gets ``Vary: Accept-Encoding`` exactly where the
    middleware would have compressed it for a gzip caller (no ``Content-Encoding`` yet, not a
    206, not a type it leaves alone), so caches keep the two answers apart.
    """

    def __init__(self, app: ASGIApp, minimum_size: int) -> None:
        self.app, self.minimum_size = app, minimum_size
        self.gzip = lifecycle.per_instance(self._gzip_middleware)

    def _gzip_middleware(self) -> ASGIApp:
        from starlette.middleware.gzip import GZipMiddleware

        return GZipMiddleware(self.app, minimum_size=self.minimum_size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif accepts_gzip(scope):
            await self.gzip.get()(scope, receive, send)
        else:
            await self.app(scope, receive, _VaryOnCompressible(send, self.minimum_size))


class _VaryOnCompressible:
    """The ``send`` of a request that does not accept gzip (see :class:`Compression`)."""

    __slots__ = ("minimum_size", "send", "start")

    def __init__(self, send: Send, minimum_size: int) -> None:
        self.send, self.minimum_size = send, minimum_size
        self.start: Message | None = None

    async def __call__(self, message: Message) -> None:
        start = self.start
        if message["type"] == "http.response.start":
            self.start = message  # held: whether it varies depends on the body
            return
        if start is not None:
            self.start = None
            if message["type"] == "http.response.body" and (
                    message.get("more_body", False) or len(message.get("body", b"")) >= self.minimum_size):
                _add_vary_if_compressible(start)
            await self.send(start)
        await self.send(message)


def _add_vary_if_compressible(start: Message) -> None:
    """``Vary: Accept-Encoding`` on a response start that GZipMiddleware would compress for a gzip caller."""
    from starlette.datastructures import MutableHeaders
    from starlette.middleware.gzip import DEFAULT_EXCLUDED_CONTENT_TYPES

    start.setdefault("headers", [])
    headers = MutableHeaders(raw=start["headers"])
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    media_types = {media_type, media_type.partition("/")[0] + "/*"}
    if media_type.startswith("application/grpc+"):
        media_types.add("application/grpc")
    if "content-encoding" in headers or start.get("status") == 206 \
            or not media_types.isdisjoint(DEFAULT_EXCLUDED_CONTENT_TYPES):
        return
    headers.add_vary_header("Accept-Encoding")


def mount(app: ASGIApp, environ: Mapping[str, str] = os.environ) -> ASGIApp:
    """``app`` as the edge variables say: below its root path, with gzip above the threshold (either or none)."""
    minimum = environ.get(GZIP_MIN_BYTES_VARIABLE)
    if minimum:
        app = Compression(app, int(minimum))
    prefix = root_path_of(environ.get(ROOT_PATH_VARIABLE))
    return RootPath(app, prefix) if prefix else app
