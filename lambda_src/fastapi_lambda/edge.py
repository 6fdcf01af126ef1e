"""What the HTTP edge asks of the app: the path prefix it is served under, and compression.

Several services share one API Gateway, each on a path prefix (``/billing``); a custom
domain's base path mapping adds one more (``/v1``). The gateway passes the whole path to the
function, so the app is served with that prefix as its ASGI ``root_path`` (the path stays
whole, as the ASGI spec wants): Starlette routes below it, and FastAPI's ``/docs`` loads
``<prefix>/openapi.json``. ``FASTAPI_LAMBDA_ROOT_PATH`` names the prefix (the construct that
mounts the service sets it). ``FASTAPI_LAMBDA_GZIP_MIN_BYTES`` turns on gzip for answers of at
least that size (an HTTP API cannot compress; a REST API does it at the gateway).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi_lambda.constants import GZIP_MIN_BYTES_VARIABLE, ROOT_PATH_VARIABLE

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
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


def mount(app: ASGIApp, environ: Mapping[str, str] = os.environ) -> ASGIApp:
    """``app`` as the edge variables say: below its root path, with gzip above the threshold (either or none)."""
    minimum = environ.get(GZIP_MIN_BYTES_VARIABLE)
    if minimum:
        from starlette.middleware.gzip import GZipMiddleware  # only where compression is on

        app = GZipMiddleware(app, minimum_size=int(minimum))
    prefix = root_path_of(environ.get(ROOT_PATH_VARIABLE))
    return RootPath(app, prefix) if prefix else app
